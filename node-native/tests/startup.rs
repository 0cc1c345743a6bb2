//! Measurement, ignored by default: a store of many small files. One node alone (it is the
//! root and the only replica, k = 1) inserts `PAST_FILES` (default 10,000) public files of
//! 1 KiB and stops; then `past-node serve` starts on that store: the time until it serves
//! (store opened, integrity checked, records restored, registered) and until its status lists
//! every replica, and its resident memory. Run with
//! `cargo test -p past-node --release --test startup -- --ignored --nocapture`.

mod common;

use std::process::Stdio;
use std::time::Instant;

use common::{Node, config, content, memory, progress, wait_for_ring};
use past_node::files::InsertOptions;
use past_signaling::{Config, ServerHandle};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_past-node");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn startup_with_many_files() {
    let files: usize = std::env::var("PAST_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("store");
    let node = Node::start(config(&url, 1, &store), 1).await;
    wait_for_ring(&[&node.handle]).await;
    let source = dir.path().join("small.bin");
    let started = Instant::now();
    for i in 0..files {
        std::fs::write(&source, content(1024, i as u64 + 1)).expect("write");
        let (tx, _) = progress();
        node.handle.insert(&source, InsertOptions { k: 1, encrypt: false }, tx).await.expect("insert");
    }
    let inserting = started.elapsed();
    node.handle.shutdown().await;
    let database = std::fs::metadata(store.join(past_node::disk_store::DATABASE_FILE)).expect("database").len();

    let started = Instant::now();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--store", store.to_str().expect("path"), "--signaling", &url, "--log-level", "warn"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    stdout.next_line().await.expect("serve prints").expect("a line");
    let serving = started.elapsed();
    let output = tokio::process::Command::new(BIN)
        .args(["status", "--json", "--store", store.to_str().expect("path")])
        .output()
        .await
        .expect("status runs");
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let listed = started.elapsed();
    let replicas = status["replicas"].as_array().map_or(0, Vec::len);
    let (rss, peak) = memory(&child.id().expect("running").to_string()).mib();
    eprintln!(
        "{files} files of 1 KiB inserted in {inserting:.1?} ({:.1} ms each), database {:.1} MiB;\n  serve: \
         serving after {serving:.2?}, status with {replicas} replicas after {listed:.2?}, resident {rss} MiB \
         (peak {peak} MiB)",
        inserting.as_secs_f64() * 1000.0 / files as f64,
        database as f64 / 1048576.0,
    );
    assert_eq!(replicas, files);
    child.start_kill().expect("kill");
    server.shutdown().await.expect("server stops");
}
