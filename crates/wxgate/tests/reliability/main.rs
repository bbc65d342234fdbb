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

/// Held by the scenarios that time answers under an attack and by the one
/// that loads both cores for minutes (200,000 apps), so that neither runs
/// beside the other: a latency bound measured while another test holds the
/// machine says nothing about wxgate (a probe once met a 1 s SYN
/// retransmission that way).
pub(crate) static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A field of `/proc/{pid}/status` in KiB (`VmRSS`, `VmHWM`…).
pub(crate) fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = (status.lines())
        .find(|l| {
            l.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Prints one figure line, prefixed so it can be grepped from the test output.
pub(crate) fn figure(scenario: &str, text: impl std::fmt::Display) {
    eprintln!("[reliability] {scenario}: {text}");
}
