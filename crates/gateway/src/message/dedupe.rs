//! WeChat retries a push it got no answer to within 5 s, up to three deliveries
//! (protocol reference §2.8). Each push is handled once: a retry that arrives
//! while the first delivery is still being handled waits for the same answer,
//! and a later retry gets the cached answer, for the window's length.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use futures_util::future::{BoxFuture, FutureExt, Shared};

/// What a push is answered with: the plaintext reply XML, or `None` for `success`.
pub type Answer = Option<String>;

type SharedAnswer = Shared<BoxFuture<'static, Answer>>;

/// In-process dedupe of pushes by key.
#[derive(Debug)]
pub struct Dedupe {
    /// Seconds an answer stays cached.
    window: u64,
    /// Most pushes remembered; past it the oldest are forgotten early.
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    answers: HashMap<String, SharedAnswer>,
    /// Keys by arrival, so expiry looks at the oldest only.
    order: VecDeque<(u64, String)>,
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
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Seconds an answer stays cached.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The answer for `key`: the one already computed or being computed, or
    /// `work`'s, which then runs to completion even if the caller goes away
    /// (WeChat drops connections after 5 s). `true` when `key` was seen before.
    pub fn answer(
        &self,
        key: String,
        now: u64,
        work: impl Future<Output = Answer> + Send + 'static,
    ) -> (SharedAnswer, bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((at, _)) = entries.order.front() {
            if at.saturating_add(self.window) > now {
                break;
            }
            let (_, old) = entries.order.pop_front().expect("front exists");
            entries.answers.remove(&old);
        }
        if let Some(answer) = entries.answers.get(&key) {
            return (answer.clone(), true);
        }
        while entries.order.len() >= self.capacity {
            let (_, old) = entries.order.pop_front().expect("full, so not empty");
            entries.answers.remove(&old);
        }
        let task = tokio::spawn(work);
        let answer = async move { task.await.unwrap_or(None) }.boxed().shared();
        entries.answers.insert(key.clone(), answer.clone());
        entries.order.push_back((now, key));
        (answer, false)
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
        // After the window the key is new again.
        let (_, dup) = dedupe.answer("k".into(), 160, work());
        assert!(!dup);
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
