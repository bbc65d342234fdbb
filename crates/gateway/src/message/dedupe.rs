//! WeChat retries a push it got no answer to within 5 s, up to three deliveries
//! (protocol reference §2.8). Each push is handled once: a retry that arrives
//! while the first delivery is still being handled waits for the same answer,
//! and a later retry gets the cached answer, for the window's length.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_util::future::{BoxFuture, FutureExt};

use super::keys::{Key, KeyHash};

/// What a push is answered with: the plaintext reply XML, or `None` for `success`.
pub type Answer = Option<String>;

/// Values by key for a window of seconds from their arrival, at most
/// `capacity` of them (past it the oldest are forgotten early), so memory
/// stays bounded under any load. Expiry looks at the oldest entry only: O(1).
///
/// Keys are 16-byte keyed digests ([`Key`]), hashed as they are: an entry
/// costs its table slot (`size_of::<(Key, V)>()` + 1 control byte) and its
/// place in the arrival order (`size_of::<(u64, Key)>()` = 24 bytes). For
/// `capacity` entries the key table holds at most twice the slots it needs
/// (`capacity` × 8/7, to a power of two: it may double once under churn),
/// the arrival order `capacity` to a power of two; the
/// `body_bindings_stay_within_their_bound` test checks it.
#[derive(Debug)]
pub struct Window<V> {
    /// Seconds an entry is kept.
    secs: u64,
    capacity: usize,
    entries: HashMap<Key, V, KeyHash>,
    /// Keys by arrival.
    order: VecDeque<(u64, Key)>,
}

impl<V: Clone> Window<V> {
    /// Entries kept for `secs` seconds, at most `capacity` (at least 1) of them.
    pub fn new(secs: u64, capacity: usize) -> Self {
        Self {
            secs,
            capacity: capacity.max(1),
            entries: HashMap::with_hasher(KeyHash),
            order: VecDeque::new(),
        }
    }

    /// The value kept for `key`, or `make`'s, kept from `now` on; `true` when
    /// `key` was there already.
    pub fn get_or_insert_with(
        &mut self,
        key: Key,
        now: u64,
        make: impl FnOnce() -> V,
    ) -> (V, bool) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(self.secs) > now {
                break;
            }
            let (_, old) = self.order.pop_front().expect("front exists");
            self.entries.remove(&old);
        }
        if let Some(value) = self.entries.get(&key) {
            return (value.clone(), true);
        }
        while self.order.len() >= self.capacity {
            let (_, old) = self.order.pop_front().expect("full, so not empty");
            self.entries.remove(&old);
        }
        let value = make();
        self.entries.insert(key, value.clone());
        self.order.push_back((now, key));
        (value, false)
    }

    /// Bytes the window holds in its two tables now (not counting what
    /// values point to): slots by capacity, so growth's spare room included.
    #[cfg(test)]
    pub fn table_bytes(&self) -> usize {
        // hashbrown keeps at most 7/8 of its (power-of-two) buckets full,
        // each a slot and a control byte.
        let buckets = (self.entries.capacity() * 8 / 7).next_power_of_two();
        buckets * (std::mem::size_of::<(Key, V)>() + 1)
            + self.order.capacity() * std::mem::size_of::<(u64, Key)>()
    }
}

/// One push's answer, shared by its deliveries: being worked out (with the
/// wakers of the retries waiting for it), or worked out.
#[derive(Debug)]
pub struct Slot(Mutex<SlotState>);

#[derive(Debug)]
enum SlotState {
    Running(Vec<Waker>),
    Done(Answer),
}

impl Slot {
    fn new() -> Self {
        Self(Mutex::new(SlotState::Running(Vec::new())))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the answer (once) and wakes the deliveries waiting for it.
    fn finish(&self, answer: &Answer) {
        let mut state = self.state();
        if let SlotState::Running(waiting) = &mut *state {
            let waiting = std::mem::take(waiting);
            *state = SlotState::Done(answer.clone());
            drop(state);
            for waker in waiting {
                waker.wake();
            }
        }
    }

    fn poll_answer(&self, cx: &mut Context<'_>) -> Poll<Answer> {
        match &mut *self.state() {
            SlotState::Done(answer) => Poll::Ready(answer.clone()),
            SlotState::Running(waiting) => {
                if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    waiting.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// How a delivery of a push begins: the first works its answer out, any
/// other waits for (or finds) the first's.
#[derive(Debug)]
pub enum Delivery {
    /// The first delivery in the window: work the answer out, then [`Lead::finish`].
    First(Lead),
    /// A retry: its answer is the first delivery's ([`Delivery::wait`]).
    Again(Arc<Slot>),
}

/// The first delivery's duty to answer for every delivery: dropped
/// unfinished (its work panicked), it answers `success` (`None`).
#[derive(Debug)]
pub struct Lead(Arc<Slot>);

impl Lead {
    /// Records `answer` for the push's retries, and hands it back.
    pub fn finish(self, answer: Answer) -> Answer {
        self.0.finish(&answer);
        answer
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        // A no-op once finished.
        self.0.finish(&None);
    }
}

/// In-process dedupe of pushes by key.
#[derive(Debug)]
pub struct Dedupe {
    /// Seconds an answer stays cached.
    window: u64,
    answers: Mutex<Window<Arc<Slot>>>,
}

impl Dedupe {
    /// A dedupe remembering answers for `window` seconds: at least WeChat's
    /// retry span (about 15 s) and the accepted timestamp age, so a replayed
    /// push is recognised as long as its signature is accepted.
    ///
    /// At most `capacity` pushes are remembered, so memory stays bounded
    /// under any load: past it the oldest is forgotten before its window
    /// ends (a retry of it would then be handled again).
    pub fn new(window: u64, capacity: usize) -> Self {
        Self {
            window,
            answers: Mutex::new(Window::new(window, capacity)),
        }
    }

    /// Seconds an answer stays cached.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// A delivery of the push `key` at `now`: the first one leads (and must
    /// answer for all), the others follow.
    ///
    /// A push the leader answers at once (a rule) costs a small allocation
    /// and no task, boxed future or shared future: see [`PendingAnswer::lead`]
    /// for work that waits on something.
    pub fn begin(&self, key: Key, now: u64) -> Delivery {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let (slot, seen) = answers.get_or_insert_with(key, now, || Arc::new(Slot::new()));
        drop(answers);
        if seen {
            Delivery::Again(slot)
        } else {
            Delivery::First(Lead(slot))
        }
    }

    /// The answer for `key`: the one already computed or being computed, or
    /// `work`'s, which then runs to completion even if the caller goes away
    /// (WeChat drops connections after 5 s). `true` when `key` was seen before.
    ///
    /// The work runs in the caller's task while the caller waits, so a push
    /// answered quickly costs no task of its own; see [`PendingAnswer`].
    /// (The dispatcher calls [`Dedupe::begin`] itself, to answer a rule's
    /// push without boxing: this is the tests' way in.)
    #[cfg(test)]
    pub fn answer(
        &self,
        key: Key,
        now: u64,
        work: impl Future<Output = Answer> + Send + 'static,
    ) -> (PendingAnswer, bool) {
        match self.begin(key, now) {
            Delivery::First(lead) => (PendingAnswer::lead(lead, work), false),
            Delivery::Again(slot) => (Delivery::wait(slot), true),
        }
    }
}

impl Delivery {
    /// A retry's wait for the first delivery's answer.
    pub fn wait(slot: Arc<Slot>) -> PendingAnswer {
        PendingAnswer(Pending::Follow(slot))
    }
}

/// A push's answer being awaited. The first delivery's drives the push's
/// handling; dropped before the answer is ready (the caller went away), it
/// hands the rest of the work to a task of its own, so every push is handled
/// to the end and its answer cached for WeChat's retry. A retry's waits.
pub struct PendingAnswer(Pending);

enum Pending {
    Lead(Lead, BoxFuture<'static, Answer>),
    Follow(Arc<Slot>),
    Over,
}

impl PendingAnswer {
    /// The first delivery's answer: `work`'s, recorded for the retries.
    pub fn lead(lead: Lead, work: impl Future<Output = Answer> + Send + 'static) -> Self {
        // A panic while handling answers `success`, as WeChat expects,
        // instead of taking the connection down.
        let work = AssertUnwindSafe(work)
            .catch_unwind()
            .map(|done| done.unwrap_or(None));
        PendingAnswer(Pending::Lead(lead, work.boxed()))
    }
}

impl Future for PendingAnswer {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let answer = match &mut self.0 {
            Pending::Lead(_, work) => std::task::ready!(work.as_mut().poll(cx)),
            Pending::Follow(slot) => std::task::ready!(slot.poll_answer(cx)),
            Pending::Over => panic!("PendingAnswer polled after completion"),
        };
        match std::mem::replace(&mut self.0, Pending::Over) {
            Pending::Lead(lead, _) => Poll::Ready(lead.finish(answer)),
            _ => Poll::Ready(answer),
        }
    }
}

impl Drop for PendingAnswer {
    fn drop(&mut self) {
        let Pending::Lead(lead, work) = std::mem::replace(&mut self.0, Pending::Over) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let answer = work.await;
                    lead.finish(answer);
                });
            }
            // No runtime to finish it on: the retries get `success`.
            Err(_) => drop(lead),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::super::keys::Keys;
    use super::*;

    fn key(name: &str) -> Key {
        static KEYS: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(Keys::random);
        KEYS.body(name.as_bytes())
    }

    #[tokio::test]
    async fn concurrent_and_later_duplicates_share_one_run() {
        let dedupe = Dedupe::new(60, 100);
        let runs = Arc::new(AtomicU32::new(0));
        let work = || {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Some("<xml/>".to_owned())
            }
        };
        let (a, first_dup) = dedupe.answer(key("k"), 100, work());
        let (b, second_dup) = dedupe.answer(key("k"), 101, work());
        assert!(!first_dup && second_dup);
        assert_eq!(a.await, b.await);
        let (c, _) = dedupe.answer(key("k"), 150, work());
        assert_eq!(c.await.as_deref(), Some("<xml/>"));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Answered while the callers waited: no task was needed for any of it.
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            0
        );
        // After the window the key is new again.
        let (_, dup) = dedupe.answer(key("k"), 160, work());
        assert!(!dup);
    }

    #[tokio::test]
    async fn work_goes_on_when_the_caller_goes_away() {
        let dedupe = Dedupe::new(60, 100);
        let finished = Arc::new(AtomicU32::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let flag = finished.clone();
        let (answer, _) = dedupe.answer(key("k"), 100, async move {
            rx.await.ok();
            flag.fetch_add(1, Ordering::SeqCst);
            Some("late".to_owned())
        });
        // The caller polls once, then hangs up, as WeChat does after 5 s.
        let mut answer = Box::pin(answer);
        assert_eq!(answer.as_mut().now_or_never(), None);
        drop(answer);
        tx.send(()).unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // Finished with nobody waiting for it.
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        // And the retry gets the cached answer at once.
        let (retry, dup) = dedupe.answer(key("k"), 101, async { None });
        assert!(dup);
        let mut retry = Box::pin(retry);
        assert_eq!(retry.as_mut().now_or_never(), Some(Some("late".to_owned())));
    }

    #[tokio::test]
    async fn a_panic_while_handling_answers_success() {
        let dedupe = Dedupe::new(60, 100);
        let (answer, _) = dedupe.answer(key("k"), 100, async { panic!("handler bug") });
        assert_eq!(answer.await, None);
    }

    #[tokio::test]
    async fn memory_is_bounded_by_forgetting_the_oldest_first() {
        let dedupe = Dedupe::new(600, 3);
        for name in ["a", "b", "c", "d"] {
            let (answer, dup) = dedupe.answer(key(name), 100, async { None });
            assert!(!dup);
            answer.await;
        }
        // "a" was forgotten to make room; "b" to "d" are remembered.
        assert!(dedupe.answer(key("d"), 101, async { None }).1);
        assert!(dedupe.answer(key("b"), 101, async { None }).1);
        assert!(!dedupe.answer(key("a"), 101, async { None }).1);
    }

    #[tokio::test]
    async fn a_lead_answered_at_once_serves_waiting_and_later_retries() {
        let dedupe = Dedupe::new(60, 100);
        let Delivery::First(lead) = dedupe.begin(key("k"), 100) else {
            panic!("the first delivery leads");
        };
        // A retry while the first is being worked out waits for its answer.
        let Delivery::Again(slot) = dedupe.begin(key("k"), 100) else {
            panic!("a retry follows");
        };
        let mut waiting = Box::pin(Delivery::wait(slot));
        assert_eq!(waiting.as_mut().now_or_never(), None);
        assert_eq!(
            lead.finish(Some("<xml/>".into())).as_deref(),
            Some("<xml/>")
        );
        assert_eq!(waiting.await.as_deref(), Some("<xml/>"));
        // A later one finds it at once.
        let Delivery::Again(slot) = dedupe.begin(key("k"), 130) else {
            panic!("a retry follows");
        };
        assert_eq!(
            Delivery::wait(slot).now_or_never(),
            Some(Some("<xml/>".into()))
        );
    }

    #[tokio::test]
    async fn a_lead_dropped_unfinished_answers_success() {
        let dedupe = Dedupe::new(60, 100);
        let Delivery::First(lead) = dedupe.begin(key("k"), 100) else {
            panic!("the first delivery leads");
        };
        let Delivery::Again(slot) = dedupe.begin(key("k"), 100) else {
            panic!("a retry follows");
        };
        let waiting = Delivery::wait(slot);
        drop(lead); // as a panic while answering would
        assert_eq!(waiting.await, None);
    }

    #[test]
    fn body_bindings_stay_within_their_bound() {
        // The plain-mode body bindings: a 16-byte key and a 16-byte digest,
        // a 33-byte table slot (with its control byte), and 24 bytes of
        // arrival order, whatever the query or body.
        assert_eq!(std::mem::size_of::<(u64, Key)>(), 24);
        assert_eq!(std::mem::size_of::<(Key, Key)>() + 1, 33);
        let capacity = 10_000;
        let mut window = Window::<Key>::new(60, capacity);
        let mut most = 0;
        // Churn, 30 times the capacity: forgotten first by capacity (many a
        // second), then by age (a few a second).
        for n in 0..300_000u32 {
            let k = key(&n.to_string());
            let now = if n < 150_000 {
                100 + u64::from(n / 1_000)
            } else {
                1_000 + u64::from(n / 100)
            };
            window.get_or_insert_with(k, now, || k);
            assert!(window.entries.len() <= capacity);
            most = most.max(window.table_bytes());
        }
        // 10,000 entries need 16,384 slots (7/8 of them usable). Under
        // churn the key table may double once (hashbrown's way out of
        // deleted slots), and then cleans up in place: at most 32,768
        // slots of 33 bytes; the arrival order, at most 16,384 of 24.
        // So at most 1,474,560 bytes: 148 a binding.
        let bound = 2 * 16_384 * 33 + 16_384 * 24;
        assert!(most <= bound, "{most} bytes for {capacity} bindings");
    }
}
