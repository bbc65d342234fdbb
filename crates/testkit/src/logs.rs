//! Captures everything the gateway logs in this test binary, so tests can
//! check that no secret ever reaches the logs.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn buffer() -> &'static Mutex<Vec<u8>> {
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        buffer().lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per test binary).
pub fn capture() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("wxgate_gateway=debug")
        .with_ansi(false)
        .with_writer(|| Capture)
        .fmt_fields(wxgate_gateway::logs::fields())
        .event_format(wxgate_gateway::logs::Lines::human())
        .try_init();
}

/// Everything logged so far.
pub fn text() -> String {
    String::from_utf8_lossy(&buffer().lock().unwrap()).into_owned()
}
