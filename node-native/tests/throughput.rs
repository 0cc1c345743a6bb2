//! Measurement, ignored by default: native-to-native insert and get of a large file between
//! three nodes of one process on loopback, with the process's peak resident memory. Run with
//! `cargo test -p past-node --release --test throughput -- --ignored --nocapture` (size in
//! MiB from `PAST_MIB`, default 100).

mod common;

use std::time::Instant;

use common::{Node, config, content, holders, progress, wait_for_ring};
use past_node::files::InsertOptions;
use past_signaling::{Config, ServerHandle};

/// The process's peak and current resident memory in MiB (`/proc/self/status`).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn throughput() {
    let mib: usize = std::env::var("PAST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut nodes = Vec::new();
    for seed in 1..=3 {
        let mut config = config(&url, seed, &dir.path().join(format!("node{seed}")));
        config.capacity = 1 << 40;
        nodes.push(Node::start(config, seed).await);
    }
    let handles: Vec<_> = nodes.iter().map(|n| &n.handle).collect();
    wait_for_ring(&handles).await;

    let source = dir.path().join("big.bin");
    {
        // Written 1 MiB at a time, so the peak memory reflects the node only.
        use std::io::Write as _;
        let mut file = std::fs::File::create(&source).expect("create");
        for i in 0..mib {
            file.write_all(&content(1 << 20, i as u64 + 11)).expect("write");
        }
    }
    let before = memory();
    let started = Instant::now();
    let (tx, _) = progress();
    let inserted = nodes[0].handle.insert(&source, InsertOptions { k: 1, encrypt: true }, tx).await.expect("insert");
    let insert = started.elapsed();
    let holder = holders(&handles, &inserted.file_id).await;
    let reader = nodes.iter().find(|n| !holder.contains(&n.handle.id().to_string())).expect("a node without it");
    let after_insert = memory();
    let started = Instant::now();
    let (tx, _) = progress();
    let out = dir.path().join("out.bin");
    reader.handle.get(&inserted.link, Some(&out), tx).await.expect("get");
    let get = started.elapsed();
    let after_get = memory();
    let rate = |d: std::time::Duration| mib as f64 * 1.048_576 / d.as_secs_f64();
    eprintln!(
        "{mib} MiB, encrypted, k = 1, holder {}, inserter {}, reader {}:\n  insert {insert:.2?} ({:.1} MB/s)\n  \
         get {get:.2?} ({:.1} MB/s)\n  memory MiB (peak, current): before {before:?}, after insert {after_insert:?}, \
         after get {after_get:?}",
        &holder[0][..8],
        &nodes[0].handle.id().as_str()[..8],
        &reader.handle.id().as_str()[..8],
        rate(insert),
        rate(get),
    );
    assert_eq!(std::fs::metadata(&out).expect("output").len(), (mib << 20) as u64);
    for node in &nodes {
        node.handle.shutdown().await;
    }
    server.shutdown().await.expect("server stops");
}
