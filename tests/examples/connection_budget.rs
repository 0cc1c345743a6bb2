//! How many `RTCPeerConnection`s a tab spends (a benchmark, not a test): 8 tabs (separate
//! browser contexts, default parameters: l = 16, 5 s keep-alives) join, then stay idle with
//! their keep-alives running; the count each tab has made (`view().peerConnectionsCreated`,
//! Chromium allows 500 in a tab's life) is printed after the joins and every minute.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example connection_budget -- 10'
//! ```
//! The argument is the idle time in minutes (10 by default).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use past_e2e::{Chromium, eval, start_server, view, wait_joined};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let minutes: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(10);
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let origin = server.http_origin();
    let mut pages = Vec::new();
    for _ in 0..8 {
        pages.push(browser.open_in_new_context(&origin, &format!("{origin}/")).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (i, page) in pages.iter().enumerate() {
        wait_joined(page, &format!("n{i}"), Duration::from_secs(60)).await?;
    }
    let start = Instant::now();
    for minute in 0..=minutes {
        let mut created = Vec::new();
        let mut open = Vec::new();
        for page in &pages {
            let v = view(page).await?.context("no node view")?;
            created.push(v.peer_connections_created);
            open.push(v.open().len());
        }
        println!(
            "after {minute:>2} min idle: RTCPeerConnections created per tab {created:?} (max {}), open connections {open:?}",
            created.iter().max().unwrap_or(&0)
        );
        if minute < minutes {
            let next = Duration::from_secs(60 * (minute + 1));
            tokio::time::sleep(next.saturating_sub(start.elapsed())).await;
        }
    }
    // Why connections closed during the run (from each tab's events).
    let reasons = "(() => { const n = {}; for (const e of window.past.events) \
        if (e.type === 'connection' && e.state === 'closed') n[e.reason] = (n[e.reason] ?? 0) + 1; \
        return JSON.stringify(n); })()";
    for (i, page) in pages.iter().enumerate() {
        let closed: String = eval(page, reasons).await?;
        println!("tab {i}: connections closed by reason {closed}");
    }
    browser.close().await;
    drop(server);
    Ok(())
}
