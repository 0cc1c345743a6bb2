//! A last-resort bound on a whole browser test, outside the async runtime.
//!
//! Every browser step of the harness has its own bound, but a test that still hangs (a
//! future no bound covers, or a thread blocked outright) would otherwise run into CI's
//! limit with nothing said. The watchdog is a plain thread: when the test is not over
//! within its bound it writes so to the process's stderr (past the test harness's
//! capture), kills Chromium and ends the test process with a failure.

use std::io::Write as _;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// Exit status of a test process the watchdog ended (the test harness's own for a failure).
const EXIT_STATUS: i32 = 101;

/// Ends the process unless dropped within its bound.
pub struct Watchdog {
    _done: Sender<()>,
}

impl Watchdog {
    /// Starts watching: after `bound`, unless dropped first, says that `what` did not
    /// finish, kills the browser process `browser` (when known) and exits.
    pub fn start(what: String, bound: Duration, browser: Option<u32>) -> Self {
        let (done, wait) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if wait.recv_timeout(bound) == Err(RecvTimeoutError::Timeout) {
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: {what} did not finish in {bound:?}; ending the test process"
                );
                if let Some(pid) = browser {
                    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
                std::process::exit(EXIT_STATUS);
            }
        });
        Self { _done: done }
    }
}
