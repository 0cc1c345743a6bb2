//! What an idle tab costs (a benchmark, not a test): the CPU time of every Chromium
//! process over a window, with N joined tabs left idle (default timers: 5 s keep-alives to
//! the leaf set), against N static pages in a fresh browser of the same build.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example idle_cost -- 20 60'
//! ```
//! Arguments: the number of tabs (20), the measured window in seconds (60) and, optionally,
//! the page's query string for the joined tabs (`keepalive=60000` to see what keep-alives
//! cost). Each phase
//! settles 20 s before its window. CPU time is `utime + stime` from `/proc/<pid>/stat` of
//! every process whose executable is Chromium's, so run nothing else with Chromium meanwhile.
//! Memory is the sum of their resident sets at the end of the window (shared pages counted
//! in every process, so it overstates; the difference between the phases is what matters).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use past_e2e::{Chromium, DEFAULT_CHROMIUM, start_server, wait_joined};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// Fields of a `/proc/.../stat` line after the command name (which is in parentheses and
/// may hold spaces), and that name.
fn stat_fields(path: &Path) -> Option<(String, Vec<u64>)> {
    let stat = std::fs::read_to_string(path.join("stat")).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    let name = head.split_once(" (")?.1.to_string();
    Some((name, rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect()))
}

/// What Chromium used so far: CPU ticks in all, CPU ticks per thread name and kind of
/// process (`--type=` of its command line: renderer, gpu-process, utility, or the browser
/// process), and the resident bytes of all its processes.
struct Usage {
    ticks: u64,
    threads: BTreeMap<String, u64>,
    rss: u64,
}

fn chromium_usage() -> Usage {
    let mut usage = Usage { ticks: 0, threads: BTreeMap::new(), rss: 0 };
    let Ok(dir) = std::fs::read_dir("/proc") else { return usage };
    for entry in dir.flatten() {
        let path = entry.path();
        let is_chromium =
            std::fs::read_link(path.join("exe")).is_ok_and(|exe| exe.to_string_lossy().starts_with(DEFAULT_CHROMIUM));
        let Some((_, fields)) = is_chromium.then(|| stat_fields(&path)).flatten() else { continue };
        let cpu = |f: &[u64]| f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        usage.ticks += cpu(&fields); // utime + stime (fields 14, 15 of stat)
        usage.rss += fields.get(21).copied().unwrap_or(0) * 4096; // rss in pages (field 24)
        // Chromium rewrites its command line with spaces between the arguments.
        let cmdline = std::fs::read_to_string(path.join("cmdline")).unwrap_or_default();
        let kind = cmdline.split(['\0', ' ']).find_map(|arg| arg.strip_prefix("--type=")).unwrap_or("browser");
        let Ok(tasks) = std::fs::read_dir(path.join("task")) else { continue };
        for task in tasks.flatten() {
            let Some((name, fields)) = stat_fields(&task.path()) else { continue };
            let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
            *usage.threads.entry(format!("{kind}/{name}")).or_default() += cpu(&fields);
        }
    }
    usage
}

/// Chromium over `window`: percent of one core in all, the threads that used the most
/// ("renderer/CrRendererMain 4.1 %, ..."), and the resident memory after it.
async fn measure(window: Duration) -> (f64, String, u64) {
    let before = chromium_usage();
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let after = chromium_usage();
    let seconds = start.elapsed().as_secs_f64();
    let percent = |ticks: u64| ticks as f64 / TICKS / seconds * 100.0;
    let mut threads: Vec<(f64, &String)> = after
        .threads
        .iter()
        .map(|(name, &t)| (percent(t.saturating_sub(before.threads.get(name).copied().unwrap_or(0))), name))
        .collect();
    threads.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top: Vec<String> = threads.iter().take(6).map(|(p, name)| format!("{name} {p:.1}")).collect();
    (percent(after.ticks - before.ticks), top.join(", "), after.rss)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tabs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let window = Duration::from_secs(args.next().map(|a| a.parse()).transpose()?.unwrap_or(60));
    let query = args.next().map(|q| format!("?{q}")).unwrap_or_default();
    let settle = Duration::from_secs(20);
    let server = start_server().await?;
    let origin = server.http_origin();

    let browser = Chromium::launch().await?;
    let mut pages = Vec::new();
    for _ in 0..tabs {
        pages.push(browser.open_in_new_context(&origin, &format!("{origin}/style.css")).await?);
    }
    tokio::time::sleep(settle).await;
    let (static_cpu, static_top, static_rss) = measure(window).await;
    drop(pages);
    browser.close().await;
    println!("{tabs} static pages: {static_cpu:.1} % of a core ({}), {} MiB resident", static_top, static_rss >> 20);

    let browser = Chromium::launch().await?;
    let mut pages = Vec::new();
    for _ in 0..tabs {
        pages.push(browser.open_in_new_context(&origin, &format!("{origin}/{query}")).await?);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (i, page) in pages.iter().enumerate() {
        wait_joined(page, &format!("n{i}"), Duration::from_secs(90)).await?;
    }
    tokio::time::sleep(settle).await;
    let (node_cpu, node_top, node_rss) = measure(window).await;
    browser.close().await;
    println!("{tabs} joined tabs, idle: {node_cpu:.1} % of a core ({}), {} MiB resident", node_top, node_rss >> 20);
    println!(
        "per idle tab above a static page: {:.2} % of a core, {:.1} MiB",
        (node_cpu - static_cpu) / tabs as f64,
        (node_rss as f64 - static_rss as f64) / tabs as f64 / f64::from(1 << 20)
    );
    drop(server);
    Ok(())
}
