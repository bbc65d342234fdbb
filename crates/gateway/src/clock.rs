//! Wall time as a dependency: Unix seconds for WeChat's `expires_in` and the
//! persisted `expires_at`, and sleeping until such a time. [`SystemClock`] is the
//! one place that reads the system time; tests drive a [`ManualClock`].

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of Unix time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now, in Unix seconds.
    fn now(&self) -> u64;
    /// Completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: u64) -> Sleep<'_>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// Longest single sleep, so a wall-clock jump is noticed within a minute.
const MAX_SLEEP: Duration = Duration::from_secs(60);

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        #[expect(
            clippy::disallowed_methods,
            reason = "SystemClock is the one reader of wall time"
        )]
        let now = std::time::SystemTime::now();
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    fn sleep_until(&self, deadline: u64) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let now = self.now();
                if now >= deadline {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(deadline - now).min(MAX_SLEEP)).await;
            }
        })
    }
}

/// A clock that moves only when told to; sleepers wake when it passes their deadline.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
    moved: tokio::sync::watch::Sender<u64>,
    /// Every pending [`Clock::sleep_until`], by sleep.
    sleepers: std::sync::Mutex<std::collections::BTreeMap<u64, Sleeping>>,
    next_sleeper: AtomicU64,
}

/// A pending sleep: until when, and the task that sleeps (none outside a task).
#[derive(Debug, Clone, Copy)]
struct Sleeping {
    deadline: u64,
    task: Option<tokio::task::Id>,
}

/// The tasks a move of a [`ManualClock`] wakes (see [`ManualClock::woken_by`]).
#[derive(Debug, Default)]
pub struct Woken(std::collections::HashSet<tokio::task::Id>);

impl Woken {
    /// How many tasks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Takes a sleep off [`ManualClock::sleepers`] when it completes or is dropped.
struct Sleeper<'a> {
    clock: &'a ManualClock,
    id: u64,
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        self.clock.sleepers().remove(&self.id);
    }
}

impl ManualClock {
    /// A clock standing at `now` (Unix seconds).
    pub fn new(now: u64) -> Self {
        Self {
            now: AtomicU64::new(now),
            moved: tokio::sync::watch::Sender::new(now),
            sleepers: std::sync::Mutex::default(),
            next_sleeper: AtomicU64::new(0),
        }
    }

    fn sleepers(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Sleeping>> {
        self.sleepers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The tasks asleep on this clock until `at` or earlier: those a move to
    /// `at` wakes. Taken before the move, then [`ManualClock::asleep_again`]
    /// tells when they are done with that moment. By task, not by count, so a
    /// task stopped meanwhile (a refresher whose app a reload removed; tokio
    /// drops an aborted task's sleep a little later) is not awaited.
    pub fn woken_by(&self, at: u64) -> Woken {
        Woken(
            self.sleepers()
                .values()
                .filter(|s| s.deadline <= at)
                .filter_map(|s| s.task)
                .collect(),
        )
    }

    /// Whether each of `woken` sleeps on this clock again, until a time still
    /// ahead of it.
    pub fn asleep_again(&self, woken: &Woken) -> bool {
        let now = self.now();
        let sleepers = self.sleepers();
        let asleep: std::collections::HashSet<_> = sleepers
            .values()
            .filter(|s| s.deadline > now)
            .filter_map(|s| s.task)
            .collect();
        woken.0.is_subset(&asleep)
    }

    /// Moves the clock forward by `secs` and wakes the sleepers that are due.
    pub fn advance(&self, secs: u64) -> u64 {
        let now = self.now.fetch_add(secs, Ordering::SeqCst) + secs;
        self.moved.send_replace(now);
        now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline: u64) -> Sleep<'_> {
        let mut moved = self.moved.subscribe();
        let id = self.next_sleeper.fetch_add(1, Ordering::SeqCst);
        let task = tokio::task::try_id();
        self.sleepers().insert(id, Sleeping { deadline, task });
        let sleeper = Sleeper { clock: self, id };
        Box::pin(async move {
            let _sleeper = sleeper;
            while self.now() < deadline {
                if moved.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// Unix seconds as `2025-11-25 09:04:05 UTC`, for people (the status page,
/// the hints that name a time).
pub(crate) fn utc(at: u64) -> String {
    // Days to civil date: Howard Hinnant's algorithm, for the proleptic Gregorian calendar.
    let (days, secs) = (at / 86_400, at % 86_400);
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleepers_wake_when_their_deadline_passes() {
        let clock = std::sync::Arc::new(ManualClock::new(100));
        let (slept, mut sleeping) = tokio::sync::mpsc::channel(1);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move {
                let sleep = clock.sleep_until(160);
                slept.send(()).await.unwrap();
                sleep.await;
            }
        });
        sleeping.recv().await.unwrap();
        assert!(clock.woken_by(159).is_empty());
        assert_eq!(clock.woken_by(160).len(), 1);
        clock.advance(30);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(30);
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        assert!(
            clock.woken_by(u64::MAX).is_empty(),
            "a woken sleeper is off the list"
        );
    }

    #[tokio::test]
    async fn a_woken_task_counts_as_asleep_again_once_it_sleeps_until_later() {
        let clock = std::sync::Arc::new(ManualClock::new(100));
        let (step, mut stepped) = tokio::sync::mpsc::channel(1);
        let (slept, mut sleeping) = tokio::sync::mpsc::channel(2);
        let task = tokio::spawn({
            let (clock, slept) = (clock.clone(), slept.clone());
            async move {
                let first = clock.sleep_until(110);
                slept.send(()).await.unwrap();
                first.await;
                // Woken: busy with the moment until told to go on.
                stepped.recv().await.unwrap();
                let again = clock.sleep_until(200);
                slept.send(()).await.unwrap();
                again.await;
            }
        });
        // A task stopped before its deadline is not among those a move wakes.
        let stopped = tokio::spawn({
            let clock = clock.clone();
            async move {
                let sleep = clock.sleep_until(105);
                slept.send(()).await.unwrap();
                sleep.await;
            }
        });
        sleeping.recv().await.unwrap();
        sleeping.recv().await.unwrap();
        let woken = clock.woken_by(110);
        assert_eq!(woken.len(), 2, "both sleep until 110 or earlier");
        stopped.abort();
        assert!(stopped.await.unwrap_err().is_cancelled());
        let woken = clock.woken_by(110);
        assert_eq!(woken.len(), 1);
        clock.advance(10);
        assert!(!clock.asleep_again(&woken), "woken, busy");
        step.send(()).await.unwrap();
        sleeping.recv().await.unwrap();
        assert!(clock.asleep_again(&woken));
        task.abort();
    }

    #[test]
    fn formats_unix_seconds_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_061_445), "2025-11-25 09:04:05 UTC");
    }
}
