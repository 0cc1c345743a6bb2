//! Attack: one address opens many HTTP connections and sends nothing, or half a request,
//! and keeps them open. Before the fix none was ever closed (no header-read timeout, no cap
//! before the upgrade), and at the open-file limit `accept` failed: `/ws` and `/health`
//! stopped answering. Now an address holds at most its share of connections not upgraded
//! (a connection beyond is closed at once), and headers must arrive within the header-read
//! timeout.

mod hostile;

use std::time::{Duration, Instant};

use hostile::{HONEST, HOSTILE, TestServer, honest_nodes_register_and_relay, http_get, small_config, tcp_from};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CONNECTIONS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_are_capped_and_time_out() {
    let config = small_config();
    let header_timeout = config.header_read_timeout;
    let server = TestServer::start(config);
    let addr = server.addr();

    // Half the connections send nothing, half send the start of a request, never its end.
    let started = Instant::now();
    let mut connections = Vec::new();
    for i in 0..CONNECTIONS {
        let Ok(mut stream) = tcp_from(HOSTILE, addr).await else { continue };
        if i % 2 == 1 {
            let _ = stream.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes()).await;
        }
        connections.push(stream);
    }
    eprintln!("{} connections opened in {:?}", connections.len(), started.elapsed());

    // Meanwhile the server answers others: /health, and two nodes register and relay.
    let health = http_get(HONEST, addr, "/health").await.expect("/health answers during the attack");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    honest_nodes_register_and_relay(addr, 0).await;

    // Every attacking connection ends: most at once (over the address's share), the rest
    // when their headers do not arrive in time.
    let deadline = started + header_timeout + Duration::from_secs(3);
    let watchers: Vec<_> = connections
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let read_to_end = async {
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                };
                tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), read_to_end).await.ok()?;
                Some(started.elapsed())
            })
        })
        .collect();
    let mut closed_at = Vec::new();
    for watcher in watchers {
        let closed = watcher.await.expect("a watcher");
        closed_at.push(closed.expect("every attacking connection is closed within the header timeout and slack"));
    }
    let late = closed_at.iter().filter(|t| **t >= header_timeout.mul_f64(0.9)).count();
    eprintln!("{} closed before the header timeout, {late} at it", closed_at.len() - late);
    assert!(late <= 8 + 2, "only the address's share waited for the timeout: {late}");
    server.stop();
}
