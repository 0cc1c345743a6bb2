//! Attack: tiny frames as fast as possible, from one address, reconnecting whenever the
//! server closes the socket. Before the fix the server accepted 1.1 M frames in 5 s, wrote
//! one WARN line for each (158 MB of log), spent a full core, and never disconnected the
//! client. Now frames beyond the rate are violations, a client past its allowance is closed
//! with 1008, and the log gets at most one line per client per interval (within a budget)
//! plus a summary.

mod hostile;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hostile::{LogCapture, TestServer, flood, honest_nodes_register_and_relay, small_config};
use tokio_tungstenite::tungstenite::Message;

const ATTACK: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_disconnected_and_the_log_stays_small() {
    let log = LogCapture::install();
    let server = TestServer::start(small_config());
    let server_addr = server.addr();
    let started = Instant::now();
    let sockets = Arc::new(AtomicUsize::new(0));
    let attack = {
        let sockets = sockets.clone();
        tokio::spawn(async move {
            let mut floods = Vec::new();
            while started.elapsed() < ATTACK {
                match flood(server_addr, Message::text("x"), ATTACK).await {
                    Some(f) => {
                        sockets.fetch_add(1, Ordering::Relaxed);
                        floods.push(f);
                    }
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            floods
        })
    };
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        honest_nodes_register_and_relay(server.addr(), round).await;
    }
    let floods = attack.await.expect("the attacker");
    let elapsed = started.elapsed();
    let sent: usize = floods.iter().map(|f| f.sent).sum();
    let closed_1008 = floods.iter().filter(|f| f.close_code == Some(1008)).count();
    let longest = floods.iter().map(|f| f.lasted).max().unwrap_or_default();
    eprintln!(
        "{} flooding sockets over {elapsed:?}, {sent} frames sent, {closed_1008} closed with 1008, the longest lasted \
         {longest:?}; log: {} lines, {} bytes",
        floods.len(),
        log.lines().len(),
        log.bytes()
    );
    assert!(!floods.is_empty());
    assert!(closed_1008 * 10 >= floods.len() * 9, "nearly every flooding socket sees 1008");
    assert!(longest < Duration::from_secs(2), "a flooding socket lasted {longest:?}");

    // Give the summary of the last interval time to come out, then count.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let lines = log.lines();
    let client_lines = lines.iter().filter(|l| l.contains("frames dropped")).count();
    let summaries = log.lines_with("sockets closed for violations");
    let seconds = started.elapsed().as_secs() + 1;
    assert!(!summaries.is_empty(), "the summary counts the disconnections");
    // At most 20 client lines and 2 summary lines per 1 s interval.
    assert!(lines.len() as u64 <= 22 * seconds + 4, "{} log lines: {:#?}", lines.len(), &lines[..10]);
    assert!(client_lines as u64 <= 20 * seconds + 2, "{client_lines} client lines");
    server.stop();
}
