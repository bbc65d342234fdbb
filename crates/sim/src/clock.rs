//! The simulator's virtual clock: real time plus an offset that tests and
//! `POST /sim/clock` move forward, so a 2-hour token lifetime passes in a request.

use std::sync::atomic::{AtomicU64, Ordering};

/// Unix seconds as the simulated WeChat sees them.
#[derive(Debug)]
pub struct VirtualClock {
    /// Wall time when the clock was made, Unix seconds.
    start_unix: u64,
    /// Monotonic instant the clock was made (tokio's, so a paused runtime pauses it).
    start: tokio::time::Instant,
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

    /// A clock that starts at `start_unix` (for reproducible tests).
    pub fn starting_at(start_unix: u64) -> Self {
        Self {
            start_unix,
            start: tokio::time::Instant::now(),
            offset: AtomicU64::new(0),
        }
    }

    /// The current virtual time, Unix seconds.
    pub fn now(&self) -> u64 {
        self.start_unix + self.start.elapsed().as_secs() + self.offset.load(Ordering::SeqCst)
    }

    /// Moves virtual time forward by `secs` and returns the new time.
    pub fn advance(&self, secs: u64) -> u64 {
        self.offset.fetch_add(secs, Ordering::SeqCst);
        self.now()
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}
