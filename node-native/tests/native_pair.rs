//! Two native nodes meet through an in-process signaling server and exchange messages over
//! a WebRTC data channel on 127.0.0.1.

use std::time::{Duration, Instant};

use past_node::proto::PeerId;
use past_node::{Data, MAX_MESSAGE_BYTES, NodeConfig, NodeEvent, SendError, start};
use past_signaling::{Config, ServerHandle};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(20);

async fn next_matching<T>(
    events: &mut UnboundedReceiver<NodeEvent>,
    what: &str,
    mut pick: impl FnMut(NodeEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("node running");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

async fn connected(events: &mut UnboundedReceiver<NodeEvent>, to: &PeerId) {
    next_matching(events, &format!("a connection to {to}"), |e| match e {
        NodeEvent::Connected(p) if p == *to => Some(()),
        _ => None,
    })
    .await;
}

async fn message(events: &mut UnboundedReceiver<NodeEvent>) -> (PeerId, Data) {
    next_matching(events, "a message", |e| match e {
        NodeEvent::Message { from, data } => Some((from, data)),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_native_nodes_exchange_messages() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let (a, mut a_events) = start(NodeConfig::new(server.ws_url())).await.expect("A registers");
    let (b, mut b_events) = start(NodeConfig::new(server.ws_url())).await.expect("B registers");

    let opened = Instant::now();
    connected(&mut b_events, a.id()).await;
    connected(&mut a_events, b.id()).await;
    eprintln!("native data channel open in {:?}", opened.elapsed());

    let text = "héllo from B ✓";
    let bytes: Vec<u8> = (0..MAX_MESSAGE_BYTES).map(|i| (i * 7 + 3) as u8).collect();
    b.send(a.id(), Data::Text(text.into())).await.expect("send text");
    b.send(a.id(), Data::Bytes(bytes.clone())).await.expect("send bytes");
    assert_eq!(message(&mut a_events).await, (b.id().clone(), Data::Text(text.into())));
    assert_eq!(message(&mut a_events).await, (b.id().clone(), Data::Bytes(bytes)));

    a.send(b.id(), Data::Text("and back".into())).await.expect("send reply");
    assert_eq!(message(&mut b_events).await, (a.id().clone(), Data::Text("and back".into())));
    assert_eq!(
        a.send(b.id(), Data::Bytes(vec![0; MAX_MESSAGE_BYTES + 1])).await,
        Err(SendError::TooLarge(MAX_MESSAGE_BYTES + 1))
    );
    assert_eq!(a.peers().await, vec![b.id().clone()]);

    // B leaves: A sees the disconnect.
    b.close();
    next_matching(&mut b_events, "B to close", |e| (e == NodeEvent::Closed).then_some(())).await;
    next_matching(&mut a_events, "A to see B leave", |e| match e {
        NodeEvent::Disconnected { peer, .. } if peer == *b.id() => Some(()),
        _ => None,
    })
    .await;
    a.close();
    server.shutdown().await.expect("server stops");
}
