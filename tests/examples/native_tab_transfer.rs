//! Figures of a native node and a tab (a benchmark, not a test): lookup throughput of large
//! files from a native node (`past-node` as a library, disk store) to a headless Chromium tab,
//! and from a tab to the native node.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example native_tab_transfer -- 100 1024'
//! ```
//! Arguments: file sizes in MiB (default `100`). For each size, in one browser, two networks
//! of two nodes each, one after the other (each its own signaling server, so its own origin):
//! 1. **native to tab**: a native node offering 1 TiB and a tab (the browser's own profile)
//!    offering 1 MiB. The native node inserts the file (read from disk, encrypted, k = 1).
//!    It ends on the native node: if the tab is the root it refuses a replica that large
//!    (size / free space > t_pri) and diverts it to the native node, keeping a pointer that
//!    answers lookups with it. The tab looks it up by its link and reads the stream to its
//!    end, counting bytes and checking the first ones, keeping nothing; time from the
//!    `lookup()` call to the end of the stream (the page's clock); first chunk: from the
//!    call to the first chunk read.
//! 2. **tab to native**: a tab offering 40 GiB and a native node offering 1 MiB. The tab
//!    inserts a `Blob` made of 16 MiB parts (encrypted, k = 1); it ends on the tab (the same
//!    way round). The native node gets it by its link with `NodeHandle::get` (verified,
//!    written to a temporary file, fsynced, renamed); timed around that call. The output's
//!    length and its first 16 MiB are compared with what the tab inserted.
//!
//! The bare data channel between two pages of the browser is `file_transfer`'s `raw`
//! figure (`RAW_ONLY=1 ... --example file_transfer -- 100 1024`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chromiumoxide::Page;
use past_e2e::{Chromium, eval, eval_slow, start_server, wait_joined};
use past_node::files::InsertOptions;
use past_node::{NodeConfig, NodeEvent, NodeHandle, start};
use serde::Deserialize;

/// The tab's helpers: a large Blob without holding it, and a reader that keeps nothing.
const HELPERS: &str = r#"(() => {
window.b = {
  part(seed) {
    const bytes = new Uint8Array(16 << 20);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < bytes.length; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; bytes[i] = x & 255; bytes[i + 1] = (x >> 8) & 255; }
    return bytes;
  },
  async insert(mib, seed) {
    const part = this.part(seed), parts = [];
    for (let left = mib; left > 0; left -= 16) parts.push(left >= 16 ? part : part.subarray(0, left << 20));
    const blob = new Blob(parts);
    const started = performance.now();
    const r = await past.node.insert(blob, { k: 1, encrypt: true, name: `tab-${mib}.bin` })
      .catch((e) => { throw new Error(`insert: ${e.code}: ${e.message}`); });
    return { link: r.link, receipts: r.receipts, ms: performance.now() - started };
  },
  async read(link, expected) {
    const started = performance.now();
    const r = await past.node.lookup(link);
    const reader = r.stream.getReader();
    let bytes = 0, first = null, sample = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (first === null) { first = performance.now() - started; sample = Array.from(value.subarray(0, 8)); }
      bytes += value.length;
    }
    return { bytes, ms: performance.now() - started, firstMs: first, verified: r.verified, sampleOk: JSON.stringify(sample) === JSON.stringify(expected) };
  },
};
return true;
})()"#;

#[derive(Debug, Deserialize)]
struct InsertFigure {
    link: String,
    receipts: u32,
    ms: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadFigure {
    bytes: u64,
    ms: f64,
    first_ms: f64,
    verified: bool,
    sample_ok: bool,
}

/// `len` bytes of the native side's pseudo-random sequence (xorshift64 from `seed`).
fn native_content(len: usize, seed: u64) -> Vec<u8> {
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

/// The tab helper's `b.part(seed)`: 16 MiB, two pseudo-random bytes of every four.
fn tab_part(seed: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; 16 << 20];
    let mut x = if seed == 0 { 1 } else { seed };
    for chunk in bytes.chunks_mut(4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        chunk[0] = x as u8;
        chunk[1] = (x >> 8) as u8;
    }
    bytes
}

async fn native(ws_url: &str, store: &Path, capacity: u64) -> anyhow::Result<NodeHandle> {
    let mut config = NodeConfig::new(ws_url);
    config.store = Some(store.to_path_buf());
    config.capacity = capacity;
    let (node, mut events) = start(config).await?;
    tokio::spawn(async move { while events.recv().await.is_some_and(|e| e != NodeEvent::Closed) {} });
    Ok(node)
}

/// A tab of the browser's own profile (IndexedDB on disk) offering `capacity` bytes, joined
/// with the native node in its leaf set.
async fn tab(browser: &Chromium, origin: &str, capacity: u64, node: &NodeHandle) -> anyhow::Result<Page> {
    let url = format!("{origin}/?capacity={capacity}&maxfile={}", 2u64 << 30);
    let page = browser.open_in_profile(origin, &url).await?;
    wait_joined(&page, "tab", Duration::from_secs(60)).await?;
    eval::<bool>(&page, HELPERS).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = node.status().await.context("the native node stopped")?;
        if status.joined && !status.leaf_set.is_empty() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the native node did not see the tab: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(page)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Native to tab; the lookup's MB/s.
async fn native_to_tab(browser: &Chromium, mib: u64) -> anyhow::Result<()> {
    let server = start_server().await?;
    let dir = tempfile::tempdir()?;
    let node = native(&server.ws_url(), &dir.path().join("native"), 1 << 40).await?;
    let page = tab(browser, &server.http_origin(), 1 << 20, &node).await?;
    let source = dir.path().join("native.bin");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&source)?;
        for i in 0..mib {
            file.write_all(&native_content(1 << 20, i + 11))?;
        }
    }
    let expected: Vec<u8> = native_content(8, 11);
    let (progress, _) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let inserted = node.insert(&source, InsertOptions { k: 1, encrypt: true }, progress).await?;
    let insert = started.elapsed();
    // The receipt names the root, which may be the tab keeping a pointer: ask the holder.
    let status = node.status().await.context("the native node stopped")?;
    anyhow::ensure!(status.bytes_stored >= mib << 20, "the native node does not hold it: {status:?}");
    std::fs::remove_file(&source)?;
    let read: ReadFigure = eval_slow(&page, &format!("b.read({:?}, {expected:?})", inserted.link)).await?;
    anyhow::ensure!(
        read.bytes == mib << 20 && read.sample_ok && read.verified,
        "read {} bytes, sample ok {}, verified {}",
        read.bytes,
        read.sample_ok,
        read.verified
    );
    let mb_s = (mib << 20) as f64 / (read.ms / 1000.0) / 1e6;
    println!("{mib},native-to-tab,{:.1},{mb_s:.1},{:.0},{}", insert.as_secs_f64(), read.first_ms, load());
    page.close().await.ok();
    node.shutdown().await;
    server.shutdown().await?;
    Ok(())
}

/// Tab to native; the get's MB/s.
async fn tab_to_native(browser: &Chromium, mib: u64) -> anyhow::Result<()> {
    let server = start_server().await?;
    let dir = tempfile::tempdir()?;
    let node = native(&server.ws_url(), &dir.path().join("native"), 1 << 20).await?;
    let page = tab(browser, &server.http_origin(), 40 << 30, &node).await?;
    let inserted: InsertFigure = eval_slow(&page, &format!("b.insert({mib}, 5)")).await?;
    anyhow::ensure!(inserted.receipts == 1, "{} receipts", inserted.receipts);
    let status = node.status().await.context("the native node stopped")?;
    anyhow::ensure!(status.bytes_stored < 1 << 20, "the native node holds it: {status:?}");
    let (progress, _) = tokio::sync::mpsc::unbounded_channel();
    let out = dir.path().join("out");
    std::fs::create_dir(&out)?;
    let started = Instant::now();
    let fetched = node.get(&inserted.link, Some(&out), progress).await?;
    let get = started.elapsed();
    anyhow::ensure!(fetched.holder != node.id().as_str(), "read from itself");
    let meta = std::fs::metadata(&fetched.path)?;
    anyhow::ensure!(meta.len() == mib << 20, "wrote {} bytes", meta.len());
    {
        use std::io::Read as _;
        let part = tab_part(5);
        let mut head = vec![0u8; part.len().min((mib << 20) as usize)];
        std::fs::File::open(&fetched.path)?.read_exact(&mut head)?;
        anyhow::ensure!(head == part[..head.len()], "the native node wrote other bytes");
    }
    let mb_s = (mib << 20) as f64 / get.as_secs_f64() / 1e6;
    println!("{mib},tab-to-native,{:.1},{mb_s:.1},,{}", inserted.ms / 1000.0, load());
    page.close().await.ok();
    node.shutdown().await;
    server.shutdown().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> =
        std::env::args().skip(1).map(|a| a.parse().context("sizes in MiB")).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![100] } else { sizes };
    let browser = Chromium::launch().await?;
    println!("size_mib,direction,insert_s,lookup_mb_s,first_chunk_ms,loadavg");
    for &mib in &sizes {
        native_to_tab(&browser, mib).await?;
        tab_to_native(&browser, mib).await?;
    }
    browser.close().await;
    Ok(())
}
