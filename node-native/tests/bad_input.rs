//! Bad input gives clear errors and exit codes, and loses nothing already stored: a key file
//! others may read, one that cannot be read, one that is not a key; a corrupted store (left
//! as it was for recovery); a store in use by another node; an insert too large for the
//! storing nodes' capacity (refused, the earlier file intact).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::{Node, config, content, holders, progress, ring, wait_for_ring};
use past_node::disk_store::{DATABASE_FILE, DiskStoreError};
use past_node::files::InsertOptions;
use past_node::key_file::KEY_FILE;
use past_node::{ErrorKind, StartError};
use past_signaling::{Config, ServerHandle};

const BIN: &str = env!("CARGO_BIN_EXE_past-node");

/// Runs the CLI: exit code and stderr.
fn cli(args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(BIN).args(args).output().expect("past-node runs");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// `status` on `store`, with a signaling server nobody listens on.
fn status(store: &Path) -> (i32, String) {
    cli(&["status", "--store", store.to_str().expect("path"), "--signaling", "ws://127.0.0.1:9/ws"])
}

#[test]
fn key_files_others_can_read_or_that_hold_no_key_are_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key = dir.path().join(KEY_FILE);
    std::fs::write(&key, "11".repeat(32)).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stderr) = status(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("accessible to other users") && stderr.contains("chmod 600"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&key).expect("kept"), "11".repeat(32), "the key is left as it was");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&key, "not a key").expect("write");
    let (code, stderr) = status(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("neither 32 bytes nor 64 hex digits"), "{stderr}");

    std::fs::remove_file(&key).expect("remove");
    std::fs::create_dir(&key).expect("a directory where the key should be");
    let (code, stderr) = status(dir.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot read the key file"), "{stderr}");

    // A valid private key passes the key check: the failure is then the network's (3).
    std::fs::remove_dir(&key).expect("remove");
    let (code, stderr) = status(dir.path());
    assert_eq!(code, 3, "{stderr}");
    let mode = std::fs::metadata(&key).expect("created").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a new key file is private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_or_busy_store_is_refused_and_left_as_it_was() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("store");

    // One node alone holds a file (k = 1).
    let node = Node::start(config(&url, 1, &store), 1).await;
    wait_for_ring(&[&node.handle]).await;
    let source = dir.path().join("kept.bin");
    std::fs::write(&source, content(1 << 20, 3)).expect("write");
    let (tx, _) = progress();
    node.handle.insert(&source, InsertOptions { k: 1, encrypt: true }, tx).await.expect("insert");

    // A second node on the same store is refused while the first runs (library and CLI).
    let err = past_node::start(config(&url, 1, &store)).await.expect_err("the store is in use");
    assert!(matches!(err, StartError::Store(DiskStoreError::InUse { .. })), "{err}");
    let (code, stderr) = cli(&["serve", "--store", store.to_str().expect("path"), "--signaling", &url]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");
    node.handle.shutdown().await;

    // Damage the database: refused as corrupted, and the file is not touched.
    let path = store.join(DATABASE_FILE);
    let mut bytes = std::fs::read(&path).expect("the database");
    let (from, to) = (bytes.len() / 4, bytes.len() * 3 / 4);
    for byte in &mut bytes[from..to] {
        *byte ^= 0x5a;
    }
    std::fs::write(&path, &bytes).expect("damage");
    let err = past_node::start(config(&url, 1, &store)).await.expect_err("corrupted");
    assert!(matches!(err, StartError::Store(DiskStoreError::Corrupted { .. })), "{err}");
    assert_eq!(err.kind(), ErrorKind::BadInput);
    let (code, stderr) = cli(&["status", "--store", store.to_str().expect("path"), "--signaling", &url]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is corrupted") && stderr.contains("move it away"), "{stderr}");
    assert!(std::fs::read(&path).expect("still there") == bytes, "the damaged store is left for recovery");
    server.shutdown().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_larger_than_the_capacity_is_refused_and_nothing_stored_is_lost() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let nodes = ring(&url, dir.path(), 1..=3, 4 << 20).await;
    let handles: Vec<_> = nodes.iter().map(|n| &n.handle).collect();

    let small = dir.path().join("small.bin");
    let data = content(128 << 10, 5);
    std::fs::write(&small, &data).expect("write");
    let (tx, _) = progress();
    let kept = nodes[0].handle.insert(&small, InsertOptions { k: 3, encrypt: true }, tx).await.expect("fits");
    let used: Vec<u64> = bytes_stored(&handles).await;

    let large = dir.path().join("large.bin");
    std::fs::write(&large, content(3 << 20, 6)).expect("write");
    let (tx, _) = progress();
    let err = nodes[1].handle.insert(&large, InsertOptions { k: 3, encrypt: true }, tx).await.expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");

    assert_eq!(holders(&handles, &kept.file_id).await.len(), 3, "the earlier file keeps its replicas");
    assert_eq!(bytes_stored(&handles).await, used, "the refused insert left nothing stored");
    let out = dir.path().join("out.bin");
    let (tx, _) = progress();
    nodes[2].handle.get(&kept.link, Some(&out), tx).await.expect("the earlier file");
    assert!(std::fs::read(&out).expect("output") == data);
    for node in &nodes {
        node.handle.shutdown().await;
    }
    server.shutdown().await.expect("server stops");
}

/// Bytes each node stores.
async fn bytes_stored(nodes: &[&past_node::NodeHandle]) -> Vec<u64> {
    let mut used = Vec::new();
    for node in nodes {
        used.push(node.status().await.expect("running").bytes_stored);
    }
    used
}
