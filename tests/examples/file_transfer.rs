//! Figures of PAST in the browser (a benchmark, not a test): lookup throughput of large
//! files between tabs against a bare data channel between two pages of the same browser,
//! the time to the first verified chunk, insert time with k = 3, and the memory of the tabs.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example file_transfer -- 100 1024'
//! ```
//! Arguments: file sizes in MiB (default `100`). For each size, in one browser:
//! 1. **raw**: two bare pages (one browser context) open an `RTCPeerConnection` with one
//!    ordered reliable data channel and send that many bytes in 64 KiB messages, pausing
//!    above 256 KiB buffered and resuming at 64 KiB; time from the first send to the last
//!    byte received.
//! 2. **PAST**: four tabs of the page (the browser's own profile, so IndexedDB is on disk;
//!    each tab its own identity slot and store) join; the first inserts the file
//!    (a `Blob` made of 16 MiB parts, so the page never holds the whole file) with k = 3,
//!    encrypted, then public; a tab holding no replica looks each up and reads the stream to
//!    its end (counting bytes and checking a sample, not keeping them). Lookup time runs
//!    from the `lookup()` call to the end of the stream; first chunk: from the call to the
//!    first chunk read from the stream.
//! 3. **small files**: lookup latency of a 1 KiB file (median and worst of 20, one hop: every
//!    tab is in every leaf set), from `lookup()` to the end of its stream.
//! 4. **memory**: the resident memory (VmRSS) of each Chromium renderer process, sampled
//!    every 200 ms; the largest of the tabs is reported for the insert and for the lookup.
//!    After each phase, a comment line gives every renderer's resident memory and each
//!    tab's wasm memory and JS heap (`past.memory()`). The browser process (which holds
//!    `Blob` data) and the GPU/network processes are left out.
//!
//! With `SOURCES=n` (1 to 3), the tabs read from n replica holders at once (the page's
//! `?sources=n`); otherwise the page's default.
//!
//! With `PROFILE=1`, each tab's JavaScript and wasm are sampled (CDP `Profiler`) during the
//! encrypted lookup, and the functions with the most self time are printed per tab. Build the
//! module with its name section (`PAST_WASM_NAMES=1 cargo xtask build-wasm`) to see wasm
//! function names.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chromiumoxide::Page;
use chromiumoxide::cdp::js_protocol::profiler;
use past_e2e::{Chromium, eval, eval_slow, start_server, wait_joined};
use serde::Deserialize;

/// The bare page pair's code.
const RAW: &str = r#"(() => {
window.raw = {
  async offer() {
    this.pc = new RTCPeerConnection();
    this.dc = this.pc.createDataChannel("raw", { ordered: true });
    this.dc.binaryType = "arraybuffer";
    this.dc.bufferedAmountLowThreshold = 64 * 1024;
    this.opened = new Promise((ok) => this.dc.onopen = ok);
    await this.pc.setLocalDescription();
    await new Promise((ok) => { if (this.pc.iceGatheringState === "complete") ok(); else this.pc.onicegatheringstatechange = () => this.pc.iceGatheringState === "complete" && ok(); });
    return this.pc.localDescription.sdp;
  },
  async answer(sdp, total) {
    this.pc = new RTCPeerConnection();
    this.done = new Promise((ok) => {
      this.pc.ondatachannel = (e) => {
        let got = 0;
        e.channel.binaryType = "arraybuffer";
        e.channel.onmessage = (m) => { got += m.data.byteLength; if (got >= total) ok(performance.timeOrigin + performance.now()); };
      };
    });
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription();
    await new Promise((ok) => { if (this.pc.iceGatheringState === "complete") ok(); else this.pc.onicegatheringstatechange = () => this.pc.iceGatheringState === "complete" && ok(); });
    return this.pc.localDescription.sdp;
  },
  async accept(sdp) { await this.pc.setRemoteDescription({ type: "answer", sdp }); await this.opened; return true; },
  send(total) {
    const message = new Uint8Array(64 * 1024);
    const started = performance.timeOrigin + performance.now();
    let sent = 0;
    const pump = () => {
      while (sent < total && this.dc.bufferedAmount <= 256 * 1024) { this.dc.send(message); sent += message.length; }
      if (sent < total) this.dc.onbufferedamountlow = pump;
    };
    pump();
    return started;
  },
};
return true;
})()"#;

/// The tabs' helpers: a large Blob without holding it, and a reader that keeps nothing.
const HELPERS: &str = r#"(() => {
window.b = {
  part(seed) {
    const bytes = new Uint8Array(16 << 20);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < bytes.length; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; bytes[i] = x & 255; bytes[i + 1] = (x >> 8) & 255; }
    return bytes;
  },
  blob(mib, seed) {
    const part = this.part(seed), parts = [];
    for (let left = mib; left > 0; left -= 16) parts.push(left >= 16 ? part : part.subarray(0, left << 20));
    return new Blob(parts);
  },
  stage(mib) { this.staged = this.blob(mib, 5); return true; },
  async insert(mib, encrypt) {
    const started = performance.now();
    const r = await past.node.insert(this.staged, { k: 3, encrypt, name: `bench-${mib}.bin` })
      .catch((e) => { throw new Error(`insert: ${e.code}: ${e.message}`); });
    return { link: r.link, receipts: r.receipts, ms: performance.now() - started };
  },
  // Median and worst time of `n` lookups of a small file, each read to its end.
  async small(link, n) {
    const times = [];
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      const r = await past.node.lookup(link);
      await new Response(r.stream).arrayBuffer();
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return [times[Math.floor(n / 2)], times[n - 1]];
  },
  async read(link) {
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
    const expected = Array.from(this.part(5).subarray(0, 8));
    return { bytes, ms: performance.now() - started, firstMs: first, sampleOk: JSON.stringify(sample) === JSON.stringify(expected) };
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
    sample_ok: bool,
}

/// The browser process whose renderers are measured (set once at start).
static BROWSER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Whether process `pid` descends from the measured browser.
fn in_browser(mut pid: u32) -> bool {
    let Some(&root) = BROWSER_PID.get() else { return true };
    while pid > 1 {
        if pid == root {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // "pid (comm) state ppid ...": the parent is the second field after the comm.
        let after = stat.rsplit_once(')').map_or("", |p| p.1);
        pid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    }
    false
}

/// Resident memory of each renderer process of the measured browser now: (pid, MiB),
/// largest first.
fn renderer_rss_mib() -> Vec<(u32, f64)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if !in_browser(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else { continue };
        if !String::from_utf8_lossy(&cmdline).contains("--type=renderer") {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(path.join("status")) else { continue };
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        all.push((pid, rss as f64 / 1024.0));
    }
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all
}

/// Prints each renderer's resident memory and each tab's wasm memory and JS heap now.
async fn memory_report(phase: &str, pages: &[Page]) -> anyhow::Result<()> {
    let rss: Vec<String> = renderer_rss_mib().iter().map(|(pid, m)| format!("{pid}: {m:.0}")).collect();
    let mut tabs = Vec::new();
    for page in pages {
        let (wasm, js): (f64, Option<f64>) =
            eval(page, "(() => { const m = past.memory(); return [m.wasmBytes, m.jsHeapBytes]; })()").await?;
        tabs.push(format!("{:.0}/{:.0}", wasm / 1048576.0, js.unwrap_or(f64::NAN) / 1048576.0));
    }
    println!("# after {phase}: renderers RSS [{}] MiB; tabs wasm/JS heap [{}] MiB", rss.join(", "), tabs.join(", "));
    Ok(())
}

/// Runs `work` while sampling renderer memory; returns its value and the peak in MiB of
/// the renderer that grew most, after printing each renderer's peak (`pid: MiB`).
async fn with_memory<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<(T, f64)> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let sampler = tokio::spawn(async move {
        let mut peaks: HashMap<u32, f64> = HashMap::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            for (pid, mib) in renderer_rss_mib() {
                let peak = peaks.entry(pid).or_default();
                *peak = peak.max(mib);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        peaks
    });
    let value = work.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut peaks: Vec<(u32, f64)> = sampler.await.unwrap_or_default().into_iter().collect();
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1));
    let listed: Vec<String> = peaks.iter().map(|(pid, m)| format!("{pid}: {m:.0}")).collect();
    println!("# renderer peaks [{}] MiB", listed.join(", "));
    Ok((value?, peaks.first().map_or(f64::NAN, |p| p.1)))
}

async fn raw(browser: &Chromium, origin: &str, bytes: u64) -> anyhow::Result<f64> {
    // Any document of the origin (camera permission is granted to it, so Chromium gathers
    // loopback candidates) that does not start a node: the stylesheet.
    let url = format!("{origin}/style.css");
    let context = browser.new_context(origin).await?;
    let (a, b) = (browser.open_in_context(&context, &url).await?, browser.open_in_context(&context, &url).await?);
    for page in [&a, &b] {
        eval::<bool>(page, RAW).await?;
    }
    let offer: String = eval(&a, "raw.offer()").await?;
    let answer: String = eval(&b, &format!("raw.answer({offer:?}, {bytes})")).await?;
    eval::<bool>(&a, &format!("raw.accept({answer:?})")).await?;
    let started: f64 = eval(&a, &format!("raw.send({bytes})")).await?;
    let done: f64 = eval_slow(&b, "raw.done").await?;
    for page in [a, b] {
        page.close().await.ok();
    }
    Ok(bytes as f64 / ((done - started) / 1000.0) / 1e6)
}

async fn tabs(browser: &Chromium, origin: &str) -> anyhow::Result<Vec<Page>> {
    // Room for a 1 GiB replica under t_pri = 0.1 (size / free space), files up to 2 GiB.
    let mut url = format!("{origin}/?capacity={}&maxfile={}", 40u64 << 30, 2u64 << 30);
    if let Ok(sources) = std::env::var("SOURCES") {
        url.push_str(&format!("&sources={sources}"));
    }
    let mut pages = Vec::new();
    for i in 0..4 {
        // The browser's own profile: IndexedDB on disk (the test contexts keep it in memory).
        let page = browser.open_in_profile(origin, &url).await?;
        wait_joined(&page, &format!("t{i}"), Duration::from_secs(60)).await?;
        eval::<bool>(&page, HELPERS).await?;
        pages.push(page);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(pages)
}

/// Replicas each tab holds.
async fn replica_counts(pages: &[Page]) -> anyhow::Result<Vec<u32>> {
    let mut counts = Vec::new();
    for page in pages {
        counts.push(eval::<u32>(page, "past.node.stored().replicas").await?);
    }
    Ok(counts)
}

/// A tab that gained no replica since `before` (so it holds none of the file just inserted).
async fn non_holder<'a>(pages: &'a [Page], before: &[u32]) -> anyhow::Result<&'a Page> {
    let after = replica_counts(pages).await?;
    let i = (1..pages.len()).chain([0]).find(|&i| after[i] == before[i]).context("every tab took a replica")?;
    Ok(&pages[i])
}

/// Lookup latency of a 1 KiB encrypted file (every tab is in every leaf set: one hop).
async fn small_lookups(pages: &[Page]) -> anyhow::Result<()> {
    let before = replica_counts(pages).await?;
    let insert =
        "past.node.insert(new Blob([new Uint8Array(1024)]), {k: 1, name: 'small'}).then((r) => [r.link, r.fileId])";
    let (link, file): (String, String) = eval(&pages[0], insert).await?;
    let reader = non_holder(pages, &before).await?;
    let (median, worst): (f64, f64) = eval(reader, &format!("b.small({link:?}, 20)")).await?;
    eprintln!("1 KiB lookup, 1 hop, 20 runs: median {median:.1} ms, worst {worst:.1} ms");
    println!("# 1 KiB lookup (1 hop, 20 runs): median {median:.1} ms, worst {worst:.1} ms");
    eval::<u32>(&pages[0], &format!("past.node.reclaim({file:?}).then((r) => r.receipts)")).await?;
    Ok(())
}

/// Starts sampling every tab's JavaScript and wasm every 100 µs.
async fn profile_start(pages: &[Page]) -> anyhow::Result<()> {
    for page in pages {
        page.execute(profiler::EnableParams::default()).await?;
        page.execute(profiler::SetSamplingIntervalParams::new(100)).await?;
        page.execute(profiler::StartParams::default()).await?;
    }
    Ok(())
}

/// Stops sampling and prints, per tab, the functions with the most self time.
async fn profile_report(pages: &[Page]) -> anyhow::Result<()> {
    for (i, page) in pages.iter().enumerate() {
        let profile = page.execute(profiler::StopParams::default()).await?.result.profile;
        let names: HashMap<i64, String> = profile
            .nodes
            .iter()
            .map(|n| {
                let file = n.call_frame.url.rsplit('/').next().unwrap_or_default();
                (n.id, format!("{} ({file})", n.call_frame.function_name))
            })
            .collect();
        let mut self_ms: HashMap<&str, f64> = HashMap::new();
        let samples = profile.samples.unwrap_or_default();
        let deltas = profile.time_deltas.unwrap_or_default();
        // A sample's time is the gap to the next one.
        for (node, delta) in samples.iter().zip(deltas.iter().skip(1)) {
            let name = names.get(node).map_or("?", String::as_str);
            *self_ms.entry(name).or_default() += *delta as f64 / 1000.0;
        }
        let total = (profile.end_time - profile.start_time) / 1000.0;
        let mut top: Vec<_> = self_ms.into_iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("# tab {i}: {total:.0} ms profiled; self time:");
        for (name, ms) in top.into_iter().take(15) {
            println!("#   {ms:8.0} ms {:5.1} %  {name}", 100.0 * ms / total);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> =
        std::env::args().skip(1).map(|a| a.parse().context("sizes in MiB")).collect::<Result<_, _>>()?;
    let sizes = if sizes.is_empty() { vec![100] } else { sizes };
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    if let Some(pid) = browser.pid() {
        let _ = BROWSER_PID.set(pid);
    }
    let origin = server.http_origin();
    println!(
        "size_mib,mode,raw_mb_s,insert_s,lookup_mb_s,share_of_raw,first_chunk_ms,insert_peak_rss_mib,lookup_peak_rss_mib"
    );
    for &mib in &sizes {
        let bytes = mib << 20;
        let raw_mb_s = raw(&browser, &origin, bytes).await?;
        if std::env::var_os("RAW_ONLY").is_some() {
            println!("{mib},raw,{raw_mb_s:.1}");
            continue;
        }
        let pages = tabs(&browser, &origin).await?;
        for encrypt in [true, false] {
            let mode = if encrypt { "encrypted" } else { "public" };
            let started = Instant::now();
            let before = replica_counts(&pages).await?;
            eval::<bool>(&pages[0], &format!("b.stage({mib})")).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            memory_report(&format!("making the {mode} Blob"), &pages).await?;
            let (inserted, insert_peak) = with_memory(async {
                let inserted: InsertFigure = eval_slow(&pages[0], &format!("b.insert({mib}, {encrypt})")).await?;
                anyhow::ensure!(inserted.receipts == 3, "{} receipts", inserted.receipts);
                Ok(inserted)
            })
            .await?;
            eprintln!("({mode} {mib} MiB inserted in {:.1} s)", inserted.ms / 1000.0);
            memory_report(&format!("{mode} insert"), &pages).await?;
            let reader = non_holder(&pages, &before).await?;
            let profile = encrypt && std::env::var_os("PROFILE").is_some();
            if profile {
                profile_start(&pages).await?;
            }
            let (read, lookup_peak) =
                with_memory(async { eval_slow::<ReadFigure>(reader, &format!("b.read({:?})", inserted.link)).await })
                    .await?;
            if profile {
                profile_report(&pages).await?;
            }
            memory_report(&format!("{mode} lookup"), &pages).await?;
            anyhow::ensure!(
                read.bytes == bytes && read.sample_ok,
                "read {} bytes, sample ok {}",
                read.bytes,
                read.sample_ok
            );
            let mb_s = bytes as f64 / (read.ms / 1000.0) / 1e6;
            println!(
                "{mib},{mode},{raw_mb_s:.1},{:.1},{mb_s:.1},{:.0}%,{:.0},{insert_peak:.0},{lookup_peak:.0}",
                inserted.ms / 1000.0,
                100.0 * mb_s / raw_mb_s,
                read.first_ms
            );
            eprintln!("({mode} {mib} MiB: {:.0} s in all)", started.elapsed().as_secs_f64());
            let reclaimed: u32 = eval(
                &pages[0],
                &format!(
                    "past.node.reclaim({:?}).then((r) => r.receipts)",
                    inserted.link.rsplit('#').next().unwrap_or_default().split('.').next().unwrap_or_default()
                ),
            )
            .await?;
            anyhow::ensure!(reclaimed == 3, "{reclaimed} reclaim receipts");
        }
        if mib == sizes[0] {
            small_lookups(&pages).await?;
        }
        for page in pages {
            page.close().await.ok();
        }
    }
    browser.close().await;
    server.shutdown().await?;
    Ok(())
}
