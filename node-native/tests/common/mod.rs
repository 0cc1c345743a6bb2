//! What the native node's file tests share: nodes with stores and fixed keys, waiting,
//! deterministic content.
#![allow(dead_code, unreachable_pub)] // Each test file uses a part.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use past_node::{NodeConfig, NodeEvent, NodeHandle, Status, start};
use tokio::sync::mpsc;

/// A node started through the library, and its store.
pub struct Node {
    pub handle: NodeHandle,
    pub store: PathBuf,
    pub seed: u8,
}

/// The key of test node `seed`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The configuration of node `seed` with its store in `store`.
pub fn config(url: &str, seed: u8, store: &Path) -> NodeConfig {
    let mut config = NodeConfig::new(url);
    config.key = Some(key(seed));
    config.store = Some(store.to_path_buf());
    config
}

impl Node {
    pub async fn start(config: NodeConfig, seed: u8) -> Node {
        let store = config.store.clone().expect("a store");
        let (handle, mut events) = start(config).await.expect("the node starts");
        tokio::spawn(async move { while events.recv().await.is_some_and(|e| e != NodeEvent::Closed) {} });
        Node { handle, store, seed }
    }

    pub async fn status(&self) -> Status {
        self.handle.status().await.expect("the node runs")
    }
}

/// Polls `done` every 100 ms until it holds; panics with `state()` after `limit`.
pub async fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl AsyncFnMut() -> bool,
    state: impl AsyncFn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !done().await {
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}; {}", state().await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every node has joined and has all the others in its leaf set.
pub async fn wait_for_ring(nodes: &[&NodeHandle]) {
    wait_for_leaves(nodes, nodes.len() - 1).await;
}

/// Waits until every node has joined and has at least `leaves` nodes in its leaf set.
pub async fn wait_for_leaves(nodes: &[&NodeHandle], leaves: usize) {
    wait_until(
        "every node to join with a full leaf set",
        Duration::from_secs(40),
        async || {
            for node in nodes {
                let Some(status) = node.status().await else { return false };
                if !status.joined || status.leaf_set.len() < leaves {
                    return false;
                }
            }
            true
        },
        async || {
            let mut state = String::new();
            for node in nodes {
                state.push_str(&format!("\n{:?}", node.status().await));
            }
            state
        },
    )
    .await;
}

/// `len` bytes of a fixed pseudo-random sequence (xorshift from `seed`).
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A progress channel whose receiver is drained in the background; the last progress seen.
pub fn progress()
-> (mpsc::UnboundedSender<past_node::Progress>, std::sync::Arc<std::sync::Mutex<Vec<past_node::Progress>>>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            sink.lock().expect("progress").push(p);
        }
    });
    (tx, seen)
}

/// How many of `nodes` list `file` among their replicas.
pub async fn holders(nodes: &[&NodeHandle], file: &str) -> Vec<String> {
    let mut holders = Vec::new();
    for node in nodes {
        if let Some(status) = node.status().await
            && status.replicas.iter().any(|f| f == file)
        {
            holders.push(status.node_id);
        }
    }
    holders
}

/// Starts nodes `seeds`, each offering `capacity` bytes with its store in `dir`, through the
/// server at `url`, and waits until they form one ring.
pub async fn ring(url: &str, dir: &Path, seeds: std::ops::RangeInclusive<u8>, capacity: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    for seed in seeds {
        let mut config = config(url, seed, &dir.join(format!("node{seed}")));
        config.capacity = capacity;
        nodes.push(Node::start(config, seed).await);
    }
    wait_for_ring(&nodes.iter().map(|n| &n.handle).collect::<Vec<_>>()).await;
    nodes
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// `VmRSS`.
    pub rss_kib: u64,
    /// `VmHWM`, the peak.
    pub peak_kib: u64,
}

impl Memory {
    /// Current and peak, in MiB.
    pub fn mib(self) -> (u64, u64) {
        (self.rss_kib / 1024, self.peak_kib / 1024)
    }
}

/// The memory of process `pid` (`/proc/<pid>/status`; `"self"` for this one); zeros when it
/// cannot be read.
pub fn memory(pid: &str) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Memory { rss_kib: field("VmRSS:").unwrap_or(0), peak_kib: field("VmHWM:").unwrap_or(0) }
}

/// The `past-node` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_past-node");

/// Standard output of a child process, line by line.
pub type ChildLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// Starts `past-node` with `args` as a child process (killed when dropped), its standard
/// error written to `log`; returns it and its standard output's lines.
pub fn spawn_node<I, S>(args: I, log: &Path) -> (tokio::process::Child, ChildLines)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use tokio::io::AsyncBufReadExt as _;
    let log = std::fs::File::create(log).expect("log file");
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("past-node starts");
    let stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, stdout)
}
