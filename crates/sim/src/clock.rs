//! The simulator's virtual clock: real time plus an offset that tests and
//! `POST /sim/clock` move forward, so a 2-hour token lifetime passes in a request.

use std::sync::atomic::{AtomicU64, Ordering};

/// The largest single step of [`VirtualClock::advance`]: ten years.
pub const MAX_ADVANCE: u64 = 10 * 366 * 86_400;

/// Unix seconds as the simulated WeChat sees them.
#[derive(Debug)]
pub struct VirtualClock {
    /// Wall time when the clock was made, Unix seconds.
    start_unix: u64,
    /// Monotonic instant the clock was made (tokio's, so a paused runtime pauses it);
    /// `None` for a manual clock that only [`VirtualClock::advance`] moves.
    start: Option<tokio::time::Instant>,
    /// Seconds added by [`VirtualClock::advance`].
    offset: AtomicU64,
}

impl VirtualClock {
    /// A clock that starts at the current wall time.
    pub fn new() -> Self {
        #[expect(
            clippy::disallowed_methods,
            reason = "the simulator's one reading of wall time; everything else is relative to it"
        )]
        let now = std::time::SystemTime::now();
        let start_unix = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::starting_at(start_unix)
    }

    /// A clock that starts at `start_unix` and then runs in real time.
    pub fn starting_at(start_unix: u64) -> Self {
        Self {
            start_unix,
            start: Some(tokio::time::Instant::now()),
            offset: AtomicU64::new(0),
        }
    }

    /// A clock that stands still at `start_unix` until advanced, so a test can
    /// keep it in step with the gateway's manual clock.
    pub fn manual(start_unix: u64) -> Self {
        Self {
            start_unix,
            start: None,
            offset: AtomicU64::new(0),
        }
    }

    /// The current virtual time, Unix seconds.
    pub fn now(&self) -> u64 {
        let elapsed = self.start.map_or(0, |s| s.elapsed().as_secs());
        self.start_unix
            .saturating_add(elapsed)
            .saturating_add(self.offset.load(Ordering::SeqCst))
    }

    /// Moves virtual time forward by `secs` (at most [`MAX_ADVANCE`] at once) and
    /// returns the new time.
    pub fn advance(&self, secs: u64) -> u64 {
        self.offset
            .fetch_add(secs.min(MAX_ADVANCE), Ordering::SeqCst);
        self.now()
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}
