//! Attack: registered peers that never read, and offers of the largest size sent to them
//! as fast as the server takes them. Before the fix each queue held 256 messages whatever
//! their size: 250 such peers took the server from 22 MB to 813 MB. Now a queue holds at
//! most `queue_bytes`; beyond, the sender gets `peer_busy`.

mod hostile;

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use hostile::{
    HOSTILE, Key, TestServer, Ws, honest_nodes_register_and_relay, small_config, tcp_from_small_window, try_register,
    ws_over,
};
use past_signaling::Config;
use past_signaling_proto::{ClientMessage, ErrorCode, MAX_SDP_BYTES, ServerMessage, SignalPayload};
use tokio_tungstenite::tungstenite::Message;

const READERS: u64 = 10;
/// What each queue held before the fix.
const OFFERS_EACH: usize = 256;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
}

/// Registers `key` over a connection with a small receive window, then never reads.
async fn non_reader(addr: std::net::SocketAddr, key: &Key) -> Ws {
    let stream = tcp_from_small_window(HOSTILE, addr).await.expect("connects");
    let mut ws = ws_over(stream, addr, None).await.expect("handshake");
    let ServerMessage::Challenge { nonce } = hostile::recv(&mut ws).await else { panic!("no challenge") };
    hostile::send(&mut ws, &key.register(&nonce)).await;
    assert!(matches!(hostile::recv(&mut ws).await, ServerMessage::Welcome { .. }));
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_bounded_in_bytes() {
    let config =
        Config { max_peers_per_address: 32, rate_per_second: 100_000.0, rate_burst: 100_000.0, ..small_config() };
    let queue_bytes = config.queue_bytes;
    let server = TestServer::start(config);
    let addr = server.addr();
    let before = rss_kib();

    let keys: Vec<Key> = (0..READERS).map(|n| Key::new(100 + n)).collect();
    let mut readers = Vec::new();
    for key in &keys {
        readers.push(non_reader(addr, key).await);
    }
    let sender = try_register(HOSTILE, addr, &Key::new(99)).await.expect("the sender registers");
    let (mut sink, mut stream) = sender.split();
    let replies = tokio::spawn(async move {
        let mut busy = 0usize;
        while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            match frame {
                Ok(Message::Text(text)) => {
                    if let Ok(ServerMessage::Error { code: ErrorCode::PeerBusy, .. }) = ServerMessage::from_json(&text)
                    {
                        busy += 1;
                    }
                }
                Err(err) => panic!("the sender's socket failed: {err}"),
                Ok(_) => {}
            }
        }
        busy
    });
    let sdp = "a".repeat(MAX_SDP_BYTES);
    let total = OFFERS_EACH * keys.len();
    let targets: Vec<_> = keys.iter().map(Key::peer).collect();
    let sending = tokio::spawn(async move {
        for i in 0..total {
            let to = targets[i % targets.len()].clone();
            let offer = ClientMessage::Signal { to, payload: SignalPayload::Offer { sdp: sdp.clone() } };
            sink.send(Message::text(offer.to_json())).await.expect("send");
        }
        sink
    });
    // Honest nodes are not slowed down by it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    honest_nodes_register_and_relay(addr, 0).await;
    let _sink = sending.await.expect("the sender");
    let busy = replies.await.expect("the reply reader");
    let after = rss_kib();
    let queued = total - busy;
    eprintln!(
        "{total} offers of {} KiB to {READERS} peers that never read: {queued} queued or in flight, {busy} peer_busy; \
         memory of this process (server and clients) {before} KiB -> {after} KiB",
        MAX_SDP_BYTES / 1024
    );
    // Each queue holds at most queue_bytes; the rest sits in the kernel's socket buffers.
    let per_reader = queued as f64 / READERS as f64;
    let bound = (queue_bytes + 256 * 1024) as f64 / MAX_SDP_BYTES as f64;
    assert!(per_reader <= bound, "{per_reader:.1} offers per non-reader got through (bound {bound:.1})");
    // Before the fix: 256 offers of 12 KiB queued per peer, 30 MiB.
    assert!(after.saturating_sub(before) < 16 * 1024, "memory grew by {} KiB", after - before);
    drop(readers);
    server.stop();
}
