//! At the open-file limit `accept` fails with EMFILE. Before the fix the server stopped
//! answering `/ws` and `/health` for good once that happened. Now the accept loop logs it
//! (once per interval), waits a little, and goes on as soon as descriptors are free again.
//!
//! The process's own soft limit is lowered to just above what it uses while a child shell
//! opens connections (so they wait in the listen backlog), then restored.

#![cfg(target_os = "linux")]

mod hostile;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostile::{HONEST, LogCapture, TestServer, http_get};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use past_signaling::Config;

const CONNECTIONS: usize = 30;

fn open_fds() -> u64 {
    // One descriptor is the directory being listed.
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count() as u64 - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accept_loop_survives_running_out_of_file_descriptors() {
    let log = LogCapture::install();
    let server = TestServer::start(Config {
        header_read_timeout: Duration::from_secs(30),
        log_interval: Duration::from_secs(30),
        ..Config::loopback_ephemeral()
    });
    let port = server.addr().port();
    // The child waits for "go", then opens its connections and keeps them open.
    let script = format!(
        "read go; for i in $(seq {CONNECTIONS}); do exec {{fd}}<>/dev/tcp/127.0.0.1/{port} || exit 1; done; \
         echo ready; sleep 30"
    );
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let tight = open_fds() + 4;
    setrlimit(Resource::RLIMIT_NOFILE, tight, hard).expect("lower the soft limit");
    writeln!(stdin, "go").expect("tell the child");
    let mut ready = String::new();
    stdout.read_line(&mut ready).expect("the child reports");
    assert_eq!(ready.trim(), "ready", "the child opened its connections");
    // The server accepts a few, then runs out of descriptors and keeps retrying.
    tokio::time::sleep(Duration::from_secs(1)).await;
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");

    let restored = Instant::now();
    let health = http_get(HONEST, server.addr(), "/health").await.expect("/health answers again");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    eprintln!("/health answered {:?} after the limit was restored", restored.elapsed());
    assert!(restored.elapsed() < Duration::from_secs(1));
    let failures = log.lines_with("accept failed");
    assert_eq!(failures.len(), 1, "one line per interval, not one per retry: {failures:?}");
    assert!(failures[0].contains("Too many open files"), "{failures:?}");

    let _ = child.kill();
    let _ = child.wait();
    server.stop();
}
