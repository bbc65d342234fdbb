//! The reliability suite: wxgate under faults, crashes, outages, storms and
//! bad input, against the simulator. Each scenario prints its figures (run
//! with `--nocapture` to see them); `docs/reliability.md` records a run.
//!
//! `WXGATE_SOAK_DAYS` lengthens the soak (default 7 virtual days).

mod bad_input;
mod connections;
mod crash;
mod outage;
mod scale;
mod security;
mod soak;
mod spool;
mod sqlite;
mod storm;

/// Prints one figure line, prefixed so it can be grepped from the test output.
pub(crate) fn figure(scenario: &str, text: impl std::fmt::Display) {
    eprintln!("[reliability] {scenario}: {text}");
}
