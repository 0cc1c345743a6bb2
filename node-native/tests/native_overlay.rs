//! Four native nodes meet through an in-process signaling server, join one Pastry overlay
//! over WebRTC data channels on 127.0.0.1 (the shared `past_link::Stack`), and route a
//! payload from every node to every other node's id: each arrives once, at that node, with
//! its origin proven when the origin handed it over itself. No browser is involved.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use past_core::{DigitBase, Id};
use past_link::Payload;
use past_node::{NodeConfig, NodeEvent, NodeHandle, start};
use past_signaling::{Config, ServerHandle};

const NODES: usize = 4;
const WAIT: Duration = Duration::from_secs(20);

/// A node and everything it reported so far.
struct Running {
    handle: NodeHandle,
    log: Arc<Mutex<Vec<NodeEvent>>>,
}

impl Running {
    async fn start(url: &str) -> Self {
        Self::start_with(NodeConfig::new(url)).await
    }

    async fn start_with(config: NodeConfig) -> Self {
        let (handle, mut events) = start(config).await.expect("the node registers");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                sink.lock().expect("the log").push(event);
            }
        });
        Running { handle, log }
    }

    fn events(&self) -> Vec<NodeEvent> {
        self.log.lock().expect("the log").clone()
    }

    fn joined(&self) -> bool {
        self.events().contains(&NodeEvent::Joined)
    }

    /// The deliveries: (key, hops, payload, origin_verified).
    fn deliveries(&self) -> Vec<(Id, u8, Payload, bool)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::Delivered { key, hops, payload, origin_verified } => {
                    Some((key, hops, payload, origin_verified))
                }
                _ => None,
            })
            .collect()
    }
}

/// Polls `done` until it holds or [`WAIT`] passes; `state` describes the failure.
async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool, state: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}; {}", state());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn data(from: usize, to: usize) -> Vec<u8> {
    format!("{from} -> {to}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_nodes_join_one_overlay_and_route_to_each_other() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let started = Instant::now();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Running::start(&server.ws_url()).await);
    }
    let ids: Vec<Id> = nodes.iter().map(|n| n.handle.node_id()).collect();
    let state =
        |nodes: &[Running]| nodes.iter().map(|n| format!("\n{}: {:?}", n.handle.id(), n.events())).collect::<String>();

    // Everyone joins, and everyone is connected to everyone (each is in every leaf set).
    wait_until(
        "every node to join and connect to every other",
        async || {
            for node in &nodes {
                let peers: BTreeSet<String> = node.handle.peers().await.iter().map(|p| p.to_string()).collect();
                let others = nodes.iter().filter(|o| o.handle.id() != node.handle.id());
                if !node.joined() || !others.into_iter().all(|o| peers.contains(o.handle.id().as_str())) {
                    return false;
                }
            }
            true
        },
        || state(&nodes),
    )
    .await;
    eprintln!("{NODES} native nodes joined and fully connected in {:?}", started.elapsed());

    // From every node to every node's id (its own included: delivered locally).
    for (i, node) in nodes.iter().enumerate() {
        for (j, &key) in ids.iter().enumerate() {
            let payload = Payload { origin: ids[i], text: false, data: data(i, j) };
            node.handle.route(key, payload).await.expect("route");
        }
    }
    wait_until(
        "every payload to arrive",
        async || nodes.iter().all(|n| n.deliveries().len() >= NODES),
        || state(&nodes),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await; // Duplicates would show by now.

    for (j, node) in nodes.iter().enumerate() {
        let deliveries = node.deliveries();
        assert_eq!(deliveries.len(), NODES, "node {j} got {deliveries:?}");
        for (i, &origin) in ids.iter().enumerate() {
            let (key, hops, payload, verified) = deliveries
                .iter()
                .find(|(_, _, p, _)| p.origin == origin)
                .unwrap_or_else(|| panic!("node {j} got nothing from node {i}: {deliveries:?}"));
            assert_eq!(*key, ids[j], "node {j} got a payload for another key");
            assert_eq!(payload.data, data(i, j), "node {j} got the wrong payload from node {i}");
            if i == j {
                assert_eq!(*hops, 0, "a node's own payload is delivered locally");
            }
            if *hops <= 1 {
                assert!(*verified, "node {j}: the payload of node {i} came in {hops} hop(s) but is not verified");
            }
            eprintln!("{i} -> {j}: {hops} hop(s), origin verified: {verified}");
        }
    }

    // A node that closes leaves: the others see its connection close.
    let leaving = nodes.pop().expect("nodes");
    leaving.handle.close();
    let gone = leaving.handle.id().clone();
    wait_until(
        "the others to see the last node go",
        async || {
            nodes
                .iter()
                .all(|n| n.events().iter().any(|e| matches!(e, NodeEvent::Disconnected { peer, .. } if *peer == gone)))
                && leaving.events().contains(&NodeEvent::Closed)
        },
        || state(&nodes),
    )
    .await;
    for node in &nodes {
        node.handle.close();
    }
    server.shutdown().await.expect("server stops");
}

/// A sparse overlay: one-bit digits and a leaf set of two, so most nodes reach most keys
/// through others. Payloads are routed in rounds until one round arrives entirely at the
/// right nodes (the tables converge after the joins: an early payload may end at the closest
/// node known then); every payload ever delivered must be proven when it came in one hop, and
/// never claimed proven when it came in more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_native_overlay_routes_over_several_hops() {
    const SPARSE: usize = 7;
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let mut nodes = Vec::new();
    for _ in 0..SPARSE {
        let mut config = NodeConfig::new(server.ws_url());
        config.core.base = DigitBase::new(1).expect("one-bit digits");
        config.core.leaf_set_size = 2;
        config.core.neighborhood_size = 2;
        nodes.push(Running::start_with(config).await);
    }
    let ids: Vec<Id> = nodes.iter().map(|n| n.handle.node_id()).collect();
    let state = || nodes.iter().map(|n| format!("\n{}: {:?}", n.handle.id(), n.events())).collect::<String>();
    wait_until("every node to join", async || nodes.iter().all(Running::joined), state).await;

    let started = Instant::now();
    let mut round = 0u32;
    let converged = loop {
        round += 1;
        let tag = |i: usize, j: usize| format!("{round}: {i} -> {j}").into_bytes();
        for (i, node) in nodes.iter().enumerate() {
            for (j, &key) in ids.iter().enumerate().filter(|&(j, _)| j != i) {
                let payload = Payload { origin: ids[i], text: false, data: tag(i, j) };
                node.handle.route(key, payload).await.expect("route");
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let complete = nodes.iter().enumerate().all(|(j, node)| {
            let got: Vec<Vec<u8>> = node.deliveries().into_iter().map(|(_, _, p, _)| p.data).collect();
            let all_mine = (0..SPARSE).filter(|&i| i != j).all(|i| got.contains(&tag(i, j)));
            let none_other = !got
                .iter()
                .any(|d| (0..SPARSE).any(|i| (0..SPARSE).any(|other| other != j && other != i && *d == tag(i, other))));
            all_mine && none_other
        });
        if complete {
            break round;
        }
        assert!(started.elapsed() < WAIT, "no round arrived entirely at the right nodes in {WAIT:?}; {}", state());
    };
    let mut hops = std::collections::BTreeMap::<u8, usize>::new();
    for node in &nodes {
        for (key, hop_count, payload, verified) in node.deliveries() {
            let last = format!("{converged}: ");
            if payload.data.starts_with(last.as_bytes()) {
                assert_eq!(key, node.handle.node_id(), "delivered with the key of another node");
            }
            assert_eq!(verified, hop_count <= 1, "{hop_count} hop(s) from {}, verified: {verified}", payload.origin);
            *hops.entry(hop_count).or_default() += 1;
        }
    }
    eprintln!("{SPARSE} nodes: round {converged} arrived entirely; deliveries by hops: {hops:?}");
    for node in &nodes {
        node.handle.close();
    }
    server.shutdown().await.expect("server stops");
}
