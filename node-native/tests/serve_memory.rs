//! Measurement, ignored by default: the resident memory of `past-node serve` (a child
//! process, the build's own binary: run in release) while it stores a large file another
//! node inserts, and while another node gets that file from it. Run with
//! `cargo test -p past-node --release --test serve_memory -- --ignored --nocapture` (size in
//! MiB from `PAST_MIB`, default 1024).
//!
//! Three nodes: the serve (capacity 1 TiB) and two library nodes in this process, the
//! inserter and the reader, each offering 1 MiB. Whichever node is the root of the fileId,
//! the file ends on the serve: a library node that is the root refuses a replica that large
//! (size / free space > t_pri) and diverts it to the leaf with the most free space, the
//! serve, keeping a pointer that answers lookups with it. The serve's `VmRSS` and `VmHWM`
//! are read from `/proc/<pid>/status` every 100 ms.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, content, memory, progress, ring, spawn_node, wait_until};
use past_node::files::InsertOptions;
use past_signaling::{Config, ServerHandle};

/// Resident memory of process `pid` in KiB (current, peak).
fn sample(pid: u32) -> (u64, u64) {
    let m = memory(&pid.to_string());
    (m.rss_kib, m.peak_kib)
}

/// What the sampler saw during one phase: `VmRSS` at the start, its least and greatest
/// value, at the end, and `VmHWM` at the end (MiB), and how many samples.
struct Phase {
    samples: Vec<(u64, u64)>,
}

impl Phase {
    fn describe(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let rss: Vec<u64> = self.samples.iter().map(|s| s.0).collect();
        let (first, last) = (rss.first().copied().unwrap_or(0), rss.last().copied().unwrap_or(0));
        let (least, most) = (rss.iter().min().copied().unwrap_or(0), rss.iter().max().copied().unwrap_or(0));
        let hwm = self.samples.last().map_or(0, |s| s.1);
        format!(
            "VmRSS start {:.1}, min {:.1}, max {:.1}, end {:.1} MiB; VmHWM {:.1} MiB ({} samples)",
            mib(first),
            mib(least),
            mib(most),
            mib(last),
            mib(hwm),
            rss.len()
        )
    }
}

/// Runs `work` while sampling the memory of `pid` every 100 ms.
async fn sampled<T>(pid: u32, work: impl Future<Output = T>) -> (T, Phase) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let sampler = tokio::spawn(async move {
        let mut samples = vec![sample(pid)];
        while !flag.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            samples.push(sample(pid));
        }
        samples
    });
    let value = work.await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("the sampler");
    (value, Phase { samples })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
async fn serve_memory_during_a_large_transfer() {
    let mib: usize = std::env::var("PAST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("served");
    let capacity = (1u64 << 40).to_string();
    let args = ["serve", "--store", store.to_str().expect("path"), "--signaling", &url, "--json"];
    let args = args.into_iter().chain(["--capacity", &capacity, "--log-level", "warn"]);
    let (mut child, mut stdout) = spawn_node(args, &dir.path().join("serve.log"));
    let pid = child.id().expect("running");
    let line = stdout.next_line().await.expect("serve prints").expect("a line");
    let serve_id = serde_json::from_str::<serde_json::Value>(&line).expect("JSON")["node_id"]
        .as_str()
        .expect("its nodeId")
        .to_string();
    let nodes = ring(&url, dir.path(), 1..=2, 1 << 20).await;
    let (inserter, reader) = (&nodes[0].handle, &nodes[1].handle);

    let source = dir.path().join("big.bin");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&source).expect("create");
        for i in 0..mib {
            file.write_all(&content(1 << 20, i as u64 + 11)).expect("write");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = sample(pid);

    let started = Instant::now();
    let (tx, _) = progress();
    let (inserted, storing) = sampled(pid, inserter.insert(&source, InsertOptions { k: 1, encrypt: true }, tx)).await;
    let inserted = inserted.expect("insert");
    let insert = started.elapsed();
    // The serve lists the file among its replicas (primary or diverted).
    let store_arg = store.to_str().expect("path").to_string();
    wait_until(
        "the serve to list the file",
        Duration::from_secs(10),
        async || {
            let output = tokio::process::Command::new(BIN)
                .args(["status", "--json", "--store", &store_arg])
                .output()
                .await
                .expect("status runs");
            let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
            status["replicas"].as_array().is_some_and(|r| r.iter().any(|f| f.as_str() == Some(&*inserted.file_id)))
        },
        async || String::new(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_insert = sample(pid);

    let started = Instant::now();
    let (tx, _) = progress();
    let out = dir.path().join("out.bin");
    let (fetched, serving) = sampled(pid, reader.get(&inserted.link, Some(&out), tx)).await;
    let fetched = fetched.expect("get");
    let get = started.elapsed();
    assert_eq!(fetched.holder, serve_id, "the serve sent the file");
    assert_eq!(std::fs::metadata(&out).expect("output").len(), (mib << 20) as u64);
    let rate = |d: Duration| mib as f64 * 1.048_576 / d.as_secs_f64();
    eprintln!(
        "{mib} MiB, encrypted, k = 1; serve {} (pid {pid}) holds it, receipts {:?}\n  serve idle before: VmRSS {:.1} MiB, \
         VmHWM {:.1} MiB\n  while storing it (insert {insert:.1?}, {:.1} MB/s): {}\n  after: VmRSS {:.1} MiB\n  while \
         serving it (get {get:.1?}, {:.1} MB/s): {}",
        &serve_id[..8],
        inserted.receipts.iter().map(|r| &r[..8]).collect::<Vec<_>>(),
        idle.0 as f64 / 1024.0,
        idle.1 as f64 / 1024.0,
        rate(insert),
        storing.describe(),
        after_insert.0 as f64 / 1024.0,
        rate(get),
        serving.describe(),
    );
    for node in &nodes {
        node.handle.shutdown().await;
    }
    child.start_kill().expect("kill");
    server.shutdown().await.expect("server stops");
}
