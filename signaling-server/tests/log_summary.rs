//! Logging is summarized: 10,000 bad frames from one client (allowed to go on: rate and
//! violation limits set out of the way) give a handful of lines, each counting what was
//! dropped since the last; 1,000 refused handshakes give one summary line per interval.
//! Before the fix each bad frame was a WARN line of its own.

mod hostile;

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use hostile::{HONEST, HOSTILE, LogCapture, TestServer, refused_status, small_config, ws_from};
use past_signaling::Config;
use tokio_tungstenite::tungstenite::Message;

const BAD_FRAMES: usize = 10_000;

/// The count right before `suffix` in `line` (`1,234` read as 1234).
fn count_before(line: &str, suffix: &str) -> u64 {
    let head = &line[..line.find(suffix).expect("the suffix")];
    let digits: String = head.chars().rev().take_while(|c| c.is_ascii_digit() || *c == ',').collect();
    digits.chars().rev().filter(char::is_ascii_digit).collect::<String>().parse().expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_frames_make_a_handful_of_lines() {
    let log = LogCapture::install();
    let server = TestServer::start(Config {
        rate_per_second: 1e9,
        rate_burst: 1e9,
        max_violations: 1_000_000,
        log_interval: Duration::from_millis(500),
        register_timeout: Duration::from_secs(60),
        ..small_config()
    });
    let addr = server.addr();
    let started = Instant::now();

    let ws = ws_from(HOSTILE, addr, None).await.expect("handshake");
    let (mut sink, mut stream) = ws.split();
    // Every bad frame gets a JSON error (dropped when the client's queue is full): read them.
    let replies = tokio::spawn(async move {
        let mut errors = 0;
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(Message::Text(text)))) if text.contains("\"error\"") => errors += 1,
                Ok(Some(Ok(_))) => {}
                other => break format!("{other:?}"),
            }
        };
        (errors, end)
    });
    for i in 0..BAD_FRAMES {
        sink.feed(Message::text(format!("not json {i}"))).await.expect("send");
    }
    sink.flush().await.expect("flush");
    // Wait until the server has read them all (its counts reach the log at the close).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = sink.close().await;
    let (answered, end) = replies.await.expect("the reader");
    assert!(answered > 0, "bad frames are answered with errors (the reader ended with {end})");

    // 1,000 handshakes from other origins.
    for _ in 0..1_000 {
        assert_eq!(refused_status(&ws_from(HONEST, addr, Some("http://evil.example")).await), Some(403));
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let elapsed = started.elapsed();

    let client_lines = log.lines_with("frames dropped");
    let dropped: u64 = client_lines.iter().map(|l| count_before(l, " frames dropped")).sum();
    let origin_lines = log.lines_with("other origin (403)");
    let refused: u64 = origin_lines.iter().map(|l| count_before(l, " WebSockets refused: other origin")).sum();
    eprintln!("{} lines ({} bytes) in {elapsed:?}:\n{}", log.lines().len(), log.bytes(), log.lines().join("\n"));
    assert_eq!(dropped, BAD_FRAMES as u64, "the client's lines count every bad frame: {client_lines:#?}");
    let intervals = elapsed.as_millis() as usize / 500 + 1;
    assert!(client_lines.len() <= intervals + 1, "{} client lines in {intervals} intervals", client_lines.len());
    assert_eq!(refused, 1_000, "the summaries count every refusal: {origin_lines:#?}");
    assert!(origin_lines.len() <= intervals, "{} summary lines in {intervals} intervals", origin_lines.len());
    assert!(log.lines().len() <= 3 * intervals + 2, "{} lines in all", log.lines().len());
    server.stop();
}
