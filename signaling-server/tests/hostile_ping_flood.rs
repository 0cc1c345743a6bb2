//! Attack: pings as fast as possible. Before the fix every one was answered, without limit.
//! Now pings draw on the client's rate limit like any frame; beyond it they are violations,
//! and the client is closed with 1008.

mod hostile;

use std::time::{Duration, Instant};

use hostile::{TestServer, flood, honest_nodes_register_and_relay, small_config};
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_cut_off() {
    let config = small_config();
    // The burst, the allowance of violations, and the ping that ran it out.
    let most_answered = (config.rate_burst as usize) + config.max_violations as usize + 1;
    let server = TestServer::start(config);
    let addr = server.addr();
    let attack = tokio::spawn(async move {
        let started = Instant::now();
        let mut floods = Vec::new();
        while started.elapsed() < Duration::from_secs(2) {
            if let Some(f) = flood(addr, Message::Ping(Bytes::from_static(b"ping")), Duration::from_secs(2)).await {
                floods.push(f);
            }
        }
        floods
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    honest_nodes_register_and_relay(addr, 0).await;
    let floods = attack.await.expect("the attacker");
    for f in &floods {
        assert_eq!(f.close_code, Some(1008), "closed for its violations");
        // tungstenite answers the pings it reads (keeping one answer pending at most); the
        // server stops reading past the allowance.
        assert!(f.pongs <= most_answered, "{} pongs for {} pings", f.pongs, f.sent);
        assert!(f.lasted < Duration::from_secs(1), "lasted {:?}", f.lasted);
    }
    let (sent, pongs): (usize, usize) = floods.iter().fold((0, 0), |(s, p), f| (s + f.sent, p + f.pongs));
    eprintln!("{} sockets sent {sent} pings and got {pongs} pongs", floods.len());
    server.stop();
}
