//! What an idle tab costs (a benchmark, not a test): the CPU time of every Chromium
//! process over a window, with N joined tabs left idle (default timers: 5 s keep-alives to
//! the leaf set), against N static pages in a fresh browser of the same build.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example idle_cost -- 20 60'
//! ```
//! Arguments: the number of tabs (20) and the measured window in seconds (60). Each phase
//! settles 20 s before its window. CPU time is `utime + stime` from `/proc/<pid>/stat` of
//! every process whose executable is Chromium's, so run nothing else with Chromium meanwhile.
//! Memory is the sum of their resident sets at the end of the window (shared pages counted
//! in every process, so it overstates; the difference between the phases is what matters).

use std::time::{Duration, Instant};

use past_e2e::{Chromium, DEFAULT_CHROMIUM, start_server, wait_joined};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU ticks used so far and resident bytes of every Chromium process.
fn chromium_usage() -> (u64, u64) {
    let (mut ticks, mut rss) = (0, 0);
    let Ok(dir) = std::fs::read_dir("/proc") else { return (0, 0) };
    for entry in dir.flatten() {
        let path = entry.path();
        let is_chromium = std::fs::read_link(path.join("exe"))
            .is_ok_and(|exe| exe.to_string_lossy().starts_with(DEFAULT_CHROMIUM));
        if !is_chromium {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        ticks += field(11) + field(12); // utime, stime (fields 14 and 15 of stat)
        rss += field(21) * 4096; // rss in pages (field 24)
    }
    (ticks, rss)
}

/// Percent of one core used by Chromium over `window`, and its resident memory after it.
async fn measure(window: Duration) -> (f64, u64) {
    let (before, _) = chromium_usage();
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let (after, rss) = chromium_usage();
    let seconds = start.elapsed().as_secs_f64();
    ((after - before) as f64 / TICKS / seconds * 100.0, rss)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let tabs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let window = Duration::from_secs(args.next().map(|a| a.parse()).transpose()?.unwrap_or(60));
    let settle = Duration::from_secs(20);
    let server = start_server().await?;
    let origin = server.http_origin();

    let browser = Chromium::launch().await?;
    let mut pages = Vec::new();
    for _ in 0..tabs {
        pages.push(browser.open_in_new_context(&origin, &format!("{origin}/style.css")).await?);
    }
    tokio::time::sleep(settle).await;
    let (static_cpu, static_rss) = measure(window).await;
    drop(pages);
    browser.close().await;
    println!("{tabs} static pages: {static_cpu:.1} % of a core, {} MiB resident", static_rss >> 20);

    let browser = Chromium::launch().await?;
    let mut pages = Vec::new();
    for _ in 0..tabs {
        pages.push(browser.open_in_new_context(&origin, &format!("{origin}/")).await?);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (i, page) in pages.iter().enumerate() {
        wait_joined(page, &format!("n{i}"), Duration::from_secs(90)).await?;
    }
    tokio::time::sleep(settle).await;
    let (node_cpu, node_rss) = measure(window).await;
    browser.close().await;
    println!("{tabs} joined tabs, idle: {node_cpu:.1} % of a core, {} MiB resident", node_rss >> 20);
    println!(
        "per idle tab above a static page: {:.2} % of a core, {:.1} MiB",
        (node_cpu - static_cpu) / tabs as f64,
        (node_rss as f64 - static_rss as f64) / tabs as f64 / f64::from(1 << 20)
    );
    drop(server);
    Ok(())
}
