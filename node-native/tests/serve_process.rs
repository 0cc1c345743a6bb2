//! `past-node serve` as a child process among four library nodes, driven through its CLI:
//! `status`, `insert` and `get` reach it over its control socket (JSON lines, exit codes).
//! Then it is killed with SIGKILL: replica maintenance restores k = 3 holders of its file on
//! the others and the file stays gettable; finally `get` on the dead node's store starts a
//! node of its own there (the stale socket is not in the way) and fetches the file too; a
//! serve started again there restores its replica, and on SIGTERM leaves gracefully (the
//! leaf sets drop it at once), removes its socket and exits 0.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{BIN, Node, config, content, holders, progress, spawn_node, wait_for_leaves, wait_until};
use past_signaling::{Config, ServerHandle};
use serde_json::Value;
use tokio::process::Command;

/// Runs the CLI; its exit code and the JSON lines it printed.
async fn cli(args: &[&str]) -> (i32, Vec<Value>, String) {
    let output = Command::new(BIN).args(args).arg("--json").output().await.expect("past-node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    (output.status.code().unwrap_or(-1), lines, String::from_utf8_lossy(&output.stderr).into_owned())
}

fn last(lines: &[Value]) -> &Value {
    lines.last().expect("a final line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_serve_loses_nothing_and_its_cli_works() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut nodes = Vec::new();
    for seed in 1..=4 {
        nodes.push(Node::start(config(&url, seed, &dir.path().join(format!("node{seed}"))), seed).await);
    }
    let store = dir.path().join("served");
    let store_arg = store.to_str().expect("a UTF-8 path");
    let serve = ["serve", "--store", store_arg, "--signaling", &url, "--json"];
    let (mut child, mut stdout) = spawn_node(serve, &dir.path().join("serve.log"));
    let line = stdout.next_line().await.expect("serve prints").expect("a line");
    let serving: Value = serde_json::from_str(&line).expect("JSON");
    let child_id = serving["node_id"].as_str().expect("its nodeId").to_string();
    let handles: Vec<_> = nodes.iter().map(|n| n.handle.clone()).collect();
    let live: Vec<_> = handles.iter().collect();
    wait_for_leaves(&live, 4).await;

    // status over the control socket, until its leaf set holds the four others.
    wait_until(
        "the serve's status to show a full leaf set",
        Duration::from_secs(20),
        async || {
            let (code, lines, stderr) = cli(&["status", "--store", store_arg]).await;
            assert_eq!(code, 0, "{stderr}");
            let status = last(&lines);
            assert_eq!((status["type"].as_str(), status["node_id"].as_str()), (Some("status"), Some(&*child_id)));
            status["leaf_set"].as_array().map(Vec::len) == Some(4)
        },
        async || format!("{:?}", cli(&["status", "--store", store_arg]).await),
    )
    .await;

    // insert through the serve until it holds one of its own files.
    let mut held = None;
    for attempt in 0..10u64 {
        let file = dir.path().join(format!("file{attempt}.bin"));
        std::fs::write(&file, content(1 << 20, attempt + 1)).expect("write");
        let (code, lines, stderr) =
            cli(&["insert", file.to_str().expect("path"), "--k", "3", "--store", store_arg]).await;
        assert_eq!(code, 0, "{stderr}");
        let inserted = last(&lines);
        assert_eq!(inserted["type"], "inserted", "{lines:?}");
        assert!(lines.iter().any(|l| l["type"] == "progress"), "progress lines: {lines:?}");
        let receipts: Vec<&str> =
            inserted["receipts"].as_array().expect("receipts").iter().filter_map(Value::as_str).collect();
        assert_eq!(receipts.len(), 3);
        if receipts.contains(&child_id.as_str()) {
            held = Some((
                file,
                inserted["link"].as_str().expect("link").to_string(),
                inserted["file_id"].as_str().expect("id").to_string(),
            ));
            break;
        }
    }
    let (file, link, file_id) = held.expect("the serve holds one of ten files");
    let data = std::fs::read(&file).expect("the file");

    // get through the serve; an unknown fileId is not found (exit code 2).
    let out = dir.path().join("out.bin");
    let (code, lines, stderr) = cli(&["get", &link, "-o", out.to_str().expect("path"), "--store", store_arg]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(last(&lines)["type"], "fetched");
    assert!(std::fs::read(&out).expect("output") == data, "bytes differ");
    let unknown = "ab".repeat(20);
    let (code, lines, _) =
        cli(&["get", &unknown, "-o", dir.path().join("none").to_str().expect("path"), "--store", store_arg]).await;
    assert_eq!((code, last(&lines)["kind"].as_str()), (2, Some("not-found")), "{lines:?}");

    // SIGKILL: the other nodes restore k = 3 holders, and the file stays gettable.
    child.start_kill().expect("kill");
    child.wait().await.expect("the serve ends");
    wait_until(
        "three live holders after maintenance",
        Duration::from_secs(60),
        async || holders(&live, &file_id).await.len() >= 3,
        async || format!("holders {:?}", holders(&live, &file_id).await),
    )
    .await;
    let (tx, _) = progress();
    let got = dir.path().join("after-kill.bin");
    nodes[1].handle.get(&link, Some(&got), tx).await.expect("gettable after the kill");
    assert!(std::fs::read(&got).expect("output") == data);

    // The dead node's store, with a stale socket: get starts a node of its own there.
    assert!(store.join(past_node::control::CONTROL_SOCKET).exists(), "SIGKILL leaves the socket");
    let again = dir.path().join("again.bin");
    let args = ["get", &link, "-o", again.to_str().expect("path"), "--store", store_arg, "--signaling", &url];
    let (code, lines, stderr) = cli(&args).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(last(&lines)["type"], "fetched");
    assert!(std::fs::read(&again).expect("output") == data);
    check_log(&dir.path().join("serve.log"));

    // serve again on the store the SIGKILL left: its replica is restored from disk; SIGTERM
    // then makes it leave gracefully (the leaf sets drop it at once) and exit 0.
    let (mut child, mut stdout) = spawn_node(serve, &dir.path().join("serve2.log"));
    stdout.next_line().await.expect("serve prints").expect("a line");
    let (code, lines, stderr) = cli(&["status", "--store", store_arg]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(last(&lines)["node_id"].as_str(), Some(&*child_id), "the same identity");
    let replicas = last(&lines)["replicas"].as_array().expect("replicas").clone();
    assert!(replicas.iter().any(|f| f.as_str() == Some(&file_id)), "restored after the crash: {lines:?}");
    wait_until(
        "the others to see the serve in their leaf sets",
        Duration::from_secs(20),
        async || in_leaf_sets(&live, &child_id).await == live.len(),
        async || String::new(),
    )
    .await;
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("exits").expect("status");
    assert_eq!(status.code(), Some(0));
    assert!(!store.join(past_node::control::CONTROL_SOCKET).exists(), "the socket is removed");
    wait_until(
        "the leaf sets to drop the serve that left",
        Duration::from_secs(3),
        async || in_leaf_sets(&live, &child_id).await == 0,
        async || String::new(),
    )
    .await;

    for node in &nodes {
        node.handle.shutdown().await;
    }
    server.shutdown().await.expect("server stops");
}

/// How many of `nodes` have `id` in their leaf set.
async fn in_leaf_sets(nodes: &[&past_node::NodeHandle], id: &str) -> usize {
    let mut count = 0;
    for node in nodes {
        if node.status().await.is_some_and(|s| s.leaf_set.iter().any(|l| l == id)) {
            count += 1;
        }
    }
    count
}

/// The serve logged its start (its stderr is kept for failures).
fn check_log(path: &Path) {
    let log = std::fs::read_to_string(path).expect("the serve's log");
    assert!(log.contains("registered"), "{log}");
}
