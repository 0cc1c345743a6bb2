//! Issue 12, several signaling servers: three native nodes bootstrap through server A and
//! three through server B, forming two rings that know nothing of each other. A seventh
//! node registers with both (`--signaling A --signaling B`): every node ends up in one ring
//! (each leaf set exact over all seven ids, with leaf sets of four so that exact means
//! something), and a file inserted on A's side is fetched on B's.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Node, config, content, progress, wait_for_ring, wait_until};
use past_core::{Id, LeafSet};
use past_node::files::InsertOptions;
use past_signaling::{Config, ServerHandle};

const L: usize = 4;

fn id(hex: &str) -> Id {
    Id::from_u128(u128::from_str_radix(hex, 16).expect("a hex nodeId"))
}

/// The nodes whose leaf set is not what the core computes from `all` ids.
async fn inexact(nodes: &[&Node]) -> Vec<String> {
    let mut statuses = Vec::new();
    for node in nodes {
        statuses.push(node.status().await);
    }
    let all: Vec<Id> = statuses.iter().map(|s| id(&s.node_id)).collect();
    statuses
        .iter()
        .filter(|s| {
            let expected: BTreeSet<Id> = LeafSet::from_ids(id(&s.node_id), L, all.iter().copied()).ids().collect();
            s.leaf_set.iter().map(|h| id(h)).collect::<BTreeSet<Id>>() != expected
        })
        .map(|s| format!("{} has {:?}", &s.node_id[..8], s.leaf_set.iter().map(|h| &h[..8]).collect::<Vec<_>>()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_two_servers_joins_their_networks_into_one_ring() {
    let a = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server A starts");
    let b = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server B starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let start = async |url: &str, seed: u8, more: Vec<String>| {
        let mut config = config(url, seed, &dir.path().join(format!("node{seed}")));
        config.core.leaf_set_size = L;
        config.more_signaling_urls = more;
        Node::start(config, seed).await
    };
    let mut side_a = Vec::new();
    let mut side_b = Vec::new();
    for seed in 1..=3 {
        side_a.push(start(&a.ws_url(), seed, Vec::new()).await);
        side_b.push(start(&b.ws_url(), seed + 10, Vec::new()).await);
    }
    wait_for_ring(&side_a.iter().map(|n| &n.handle).collect::<Vec<_>>()).await;
    wait_for_ring(&side_b.iter().map(|n| &n.handle).collect::<Vec<_>>()).await;
    let ids_a: BTreeSet<String> = side_a.iter().map(|n| n.handle.id().to_string()).collect();
    for node in &side_b {
        let leaves = node.status().await.leaf_set;
        assert!(leaves.iter().all(|l| !ids_a.contains(l)), "B's ring knows nothing of A's: {leaves:?}");
    }

    let bridge = start(&a.ws_url(), 20, vec![b.ws_url()]).await;
    let all: Vec<&Node> = side_a.iter().chain(&side_b).chain([&bridge]).collect();
    wait_until(
        "one ring over both servers' nodes",
        Duration::from_secs(60),
        async || inexact(&all).await.is_empty(),
        async || format!("{:#?}", inexact(&all).await),
    )
    .await;

    let data = content(256 << 10, 3);
    let source = dir.path().join("from-a.bin");
    std::fs::write(&source, &data).expect("write the file");
    let (tx, _) = progress();
    let inserted = side_a[0].handle.insert(&source, InsertOptions { k: 3, encrypt: true }, tx).await.expect("insert");
    let out = dir.path().join("on-b.bin");
    let (tx, _) = progress();
    let fetched = side_b[0].handle.get(&inserted.link, Some(&out), tx).await.expect("B's side gets A's file");
    assert!(std::fs::read(&fetched.path).expect("the file") == data, "bytes differ");
}
