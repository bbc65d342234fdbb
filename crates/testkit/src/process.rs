//! A server process (`wxgate serve`, `wxgate sim`…) started for a test, read
//! for the URL it prints, signalled like an operator would, killed when dropped.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running server process, killed when dropped.
#[derive(Debug)]
pub struct Server {
    /// The process.
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Starts `bin` with `args` and extra environment variables; stderr goes to
    /// `stderr` when given (to read the logs), else nowhere.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)], stderr: Option<&Path>) -> Self {
        let stderr = match stderr {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("a log file")),
            None => Stdio::null(),
        };
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let lines = BufReader::new(stdout).lines();
        Self { child, lines }
    }

    /// The first `http://…` URL printed on a line containing `marker`.
    pub fn url_after(&mut self, marker: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("utf-8 output");
            if line.contains(marker) {
                let start = line.find("http://").expect("a URL on the line");
                return line[start..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
        panic!("the server exited before printing {marker:?}");
    }

    /// The lines it prints from now on (blocking until each arrives).
    pub fn lines(&mut self) -> impl Iterator<Item = String> + '_ {
        self.lines.by_ref().map(|l| l.expect("utf-8 output"))
    }

    /// Sends a signal (`TERM`, `KILL`…) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, failing the test after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        // Counted in attempts of 20 ms: no clock needed.
        for _ in 0..limit.as_millis().div_ceil(20) {
            if let Some(status) = self.child.try_wait().expect("the process can be waited on") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the process did not exit within {limit:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
