//! WeChat retries a push it got no answer to within 5 s, up to three deliveries
//! (protocol reference §2.8). Each push is handled once: a retry that arrives
//! while the first delivery is still being handled waits for the same answer,
//! and a later retry gets the cached answer, for the window's length.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, FutureExt, Shared};

/// What a push is answered with: the plaintext reply XML, or `None` for `success`.
pub type Answer = Option<String>;

type SharedAnswer = Shared<BoxFuture<'static, Answer>>;

/// Values by key for a window of seconds from their arrival, at most
/// `capacity` of them (past it the oldest are forgotten early), so memory
/// stays bounded under any load. Expiry looks at the oldest entry only: O(1).
#[derive(Debug)]
pub struct Window<V> {
    /// Seconds an entry is kept.
    secs: u64,
    capacity: usize,
    entries: HashMap<String, V>,
    /// Keys by arrival.
    order: VecDeque<(u64, String)>,
}

impl<V: Clone> Window<V> {
    /// Entries kept for `secs` seconds, at most `capacity` (at least 1) of them.
    pub fn new(secs: u64, capacity: usize) -> Self {
        Self {
            secs,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The value kept for `key`, or `make`'s, kept from `now` on; `true` when
    /// `key` was there already.
    pub fn get_or_insert_with(
        &mut self,
        key: String,
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
        self.entries.insert(key.clone(), value.clone());
        self.order.push_back((now, key));
        (value, false)
    }
}

/// In-process dedupe of pushes by key.
#[derive(Debug)]
pub struct Dedupe {
    /// Seconds an answer stays cached.
    window: u64,
    answers: Mutex<Window<SharedAnswer>>,
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

    /// The answer for `key`: the one already computed or being computed, or
    /// `work`'s, which then runs to completion even if the caller goes away
    /// (WeChat drops connections after 5 s). `true` when `key` was seen before.
    ///
    /// The work runs in the caller's task while the caller waits, so a push
    /// answered at once (a rule) costs no task of its own; see [`PendingAnswer`].
    pub fn answer(
        &self,
        key: String,
        now: u64,
        work: impl Future<Output = Answer> + Send + 'static,
    ) -> (PendingAnswer, bool) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        let (answer, seen) = answers.get_or_insert_with(key, now, || {
            // A panic while handling answers `success`, as WeChat expects,
            // instead of taking the connection down.
            AssertUnwindSafe(work)
                .catch_unwind()
                .map(|done| done.unwrap_or(None))
                .boxed()
                .shared()
        });
        (PendingAnswer(Some(answer)), seen)
    }
}

/// A push's answer being awaited. Polling it drives the push's handling;
/// dropped before the answer is ready (the caller went away), it hands the
/// rest of the work to a task of its own, so every push is handled to the end
/// and its answer cached for WeChat's retry.
pub struct PendingAnswer(Option<SharedAnswer>);

impl Future for PendingAnswer {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        let shared = self
            .0
            .as_mut()
            .expect("PendingAnswer polled after completion");
        let answer = std::task::ready!(shared.poll_unpin(cx));
        // A finished `Shared` must not be polled again, nor handed on.
        self.0 = None;
        Poll::Ready(answer)
    }
}

impl Drop for PendingAnswer {
    fn drop(&mut self) {
        let Some(shared) = self.0.take() else {
            return;
        };
        if shared.peek().is_some() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                shared.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

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
        let (a, first_dup) = dedupe.answer("k".into(), 100, work());
        let (b, second_dup) = dedupe.answer("k".into(), 101, work());
        assert!(!first_dup && second_dup);
        assert_eq!(a.await, b.await);
        let (c, _) = dedupe.answer("k".into(), 150, work());
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
        let (_, dup) = dedupe.answer("k".into(), 160, work());
        assert!(!dup);
    }

    #[tokio::test]
    async fn work_goes_on_when_the_caller_goes_away() {
        let dedupe = Dedupe::new(60, 100);
        let finished = Arc::new(AtomicU32::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let flag = finished.clone();
        let (answer, _) = dedupe.answer("k".into(), 100, async move {
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
        let (retry, dup) = dedupe.answer("k".into(), 101, async { None });
        assert!(dup);
        let mut retry = Box::pin(retry);
        assert_eq!(retry.as_mut().now_or_never(), Some(Some("late".to_owned())));
    }

    #[tokio::test]
    async fn a_panic_while_handling_answers_success() {
        let dedupe = Dedupe::new(60, 100);
        let (answer, _) = dedupe.answer("k".into(), 100, async { panic!("handler bug") });
        assert_eq!(answer.await, None);
    }

    #[tokio::test]
    async fn memory_is_bounded_by_forgetting_the_oldest_first() {
        let dedupe = Dedupe::new(600, 3);
        for key in ["a", "b", "c", "d"] {
            let (answer, dup) = dedupe.answer(key.into(), 100, async { None });
            assert!(!dup);
            answer.await;
        }
        // "a" was forgotten to make room; "b" to "d" are remembered.
        assert!(dedupe.answer("d".into(), 101, async { None }).1);
        assert!(dedupe.answer("b".into(), 101, async { None }).1);
        assert!(!dedupe.answer("a".into(), 101, async { None }).1);
    }
}
