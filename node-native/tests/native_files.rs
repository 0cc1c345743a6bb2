//! Five native nodes with disk stores meet through the real signaling server on loopback and
//! form one ring over WebRTC. One inserts an encrypted file of 3 MiB with k = 3 and a small
//! public one; others fetch them by link and by fileId (bytes equal, streamed to disk); a
//! holder that leaves gracefully is dropped from the leaf sets at once (within 3 s; a killed
//! node takes about 6 s) and its replica is handed to another node; restarted on its store it
//! keeps its nodeId and its replica; the owner reclaims the file (reclaim receipts), no node
//! holds it after, and a later get ends with not found.

mod common;

use std::time::Duration;

use common::{Node, config, content, holders, progress, wait_for_ring, wait_until};
use past_node::files::{GetError, InsertOptions};
use past_node::{ErrorKind, Stage};
use past_signaling::{Config, ServerHandle};

const NODES: u8 = 5;
const SIZE: usize = 3 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_insert_get_restart_and_reclaim() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut nodes = Vec::new();
    for seed in 1..=NODES {
        let store = dir.path().join(format!("node{seed}"));
        nodes.push(Node::start(config(&url, seed, &store), seed).await);
    }
    wait_for_ring(&nodes.iter().map(|n| &n.handle).collect::<Vec<_>>()).await;

    // An encrypted insert of 3 MiB, k = 3.
    let data = content(SIZE, 7);
    let source = dir.path().join("report.bin");
    std::fs::write(&source, &data).expect("write the file");
    let (tx, seen) = progress();
    let inserted =
        nodes[0].handle.insert(&source, InsertOptions { k: 3, encrypt: true }, tx).await.expect("the insert succeeds");
    assert_eq!(inserted.receipts.len(), 3, "{inserted:?}");
    assert!(inserted.encrypted && inserted.link.starts_with("http://127.0.0.1:"), "{inserted:?}");
    let fragment = inserted.link.split_once('#').expect("a fragment").1;
    assert_eq!(fragment.split_once('.').map(|(f, _)| f), Some(inserted.file_id.as_str()), "fileId.key");
    let last = *seen.lock().expect("progress").last().expect("insert progress");
    assert_eq!((last.stage, last.bytes, last.total), (Stage::Storing, SIZE as u64 * 3, SIZE as u64 * 3));

    // Fetched elsewhere by its link, into a directory: under its own name, bytes equal.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("output directory");
    let (tx, seen) = progress();
    let fetched = nodes[3].handle.get(&inserted.link, Some(&out), tx).await.expect("the get succeeds");
    assert_eq!(fetched.path, out.join("report.bin"));
    assert!(std::fs::read(&fetched.path).expect("the file") == data, "bytes differ");
    assert_eq!(seen.lock().expect("progress").last().map(|p| p.bytes), Some(SIZE as u64));
    let leftovers: Vec<_> = std::fs::read_dir(&out).expect("list").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left: {leftovers:?}");

    // A public file by its bare fileId; the wrong key for it is refused.
    let small = dir.path().join("notes.txt");
    std::fs::write(&small, b"public notes").expect("write");
    let (tx, _) = progress();
    let public = nodes[1].handle.insert(&small, InsertOptions { k: 2, encrypt: false }, tx).await.expect("insert");
    let target = out.join("copy.txt");
    let (tx, _) = progress();
    nodes[4].handle.get(&public.file_id, Some(&target), tx).await.expect("get by fileId");
    assert_eq!(std::fs::read(&target).expect("copy"), b"public notes");
    let (tx, _) = progress();
    let with_key = format!("{}.{}", public.file_id, fragment.split_once('.').expect("key").1);
    let err = nodes[4].handle.get(&with_key, Some(&out.join("x")), tx).await.expect_err("a key on a public file");
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(!out.join("x").exists());

    // A holder (not the owner) restarts on its store: same nodeId, its replica restored.
    let handles: Vec<_> = nodes.iter().map(|n| n.handle.clone()).collect();
    let all: Vec<_> = handles.iter().collect();
    let holding = holders(&all, &inserted.file_id).await;
    assert_eq!(holding.len(), 3, "{holding:?}");
    let at = nodes.iter().position(|n| n.seed != 1 && holding.contains(&n.handle.id().to_string()));
    let at = at.expect("a holder other than the owner");
    let old = nodes.remove(at);
    let id = old.handle.id().clone();
    old.handle.shutdown().await;
    // It left gracefully: the others' leaf sets drop it at once (0.2 s measured; a killed node
    // takes about 6 s, found by keep-alives), and
    // maintenance hands its replica to another node.
    let others: Vec<_> = nodes.iter().map(|n| n.handle.clone()).collect();
    let others: Vec<_> = others.iter().collect();
    wait_until(
        "the leaf sets to drop the node that left",
        Duration::from_secs(3),
        async || {
            for node in &others {
                if node.status().await.is_none_or(|s| s.leaf_set.contains(&id.to_string())) {
                    return false;
                }
            }
            true
        },
        async || String::new(),
    )
    .await;
    wait_until(
        "three holders among the others",
        Duration::from_secs(15),
        async || holders(&others, &inserted.file_id).await.len() == 3,
        async || format!("{:?}", holders(&others, &inserted.file_id).await),
    )
    .await;
    let restarted = Node::start(config(&url, old.seed, &old.store), old.seed).await;
    assert_eq!(restarted.handle.id(), &id, "the key file's identity");
    let status = restarted.status().await;
    assert!(status.replicas.contains(&inserted.file_id), "replica restored: {status:?}");
    assert!(status.bytes_stored >= SIZE as u64, "{status:?}");
    nodes.push(restarted);
    wait_for_ring(&nodes.iter().map(|n| &n.handle).collect::<Vec<_>>()).await;

    // The owner reclaims it: receipts from its holders, then nobody holds it.
    let owner = nodes.iter().find(|n| n.seed == 1).expect("the owner");
    let reclaimed = owner.handle.reclaim(&inserted.file_id).await.expect("the reclaim succeeds");
    assert!(reclaimed.receipts.len() >= 3, "{reclaimed:?}");
    let handles: Vec<_> = nodes.iter().map(|n| n.handle.clone()).collect();
    let all: Vec<_> = handles.iter().collect();
    wait_until(
        "no node to hold the reclaimed file",
        Duration::from_secs(10),
        async || holders(&all, &inserted.file_id).await.is_empty(),
        async || format!("{:?}", holders(&all, &inserted.file_id).await),
    )
    .await;
    let (tx, _) = progress();
    let started = std::time::Instant::now();
    let err = nodes[2].handle.get(&inserted.link, Some(&out.join("gone")), tx).await.expect_err("reclaimed");
    assert!(matches!(err, GetError::NotFound { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "not found within seconds");
    assert!(!out.join("gone").exists());

    for node in &nodes {
        node.handle.shutdown().await;
    }
    server.shutdown().await.expect("server stops");
}
