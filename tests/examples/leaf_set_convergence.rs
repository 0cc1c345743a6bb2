//! How long after the last join every leaf set is exact, in a network larger than a leaf
//! set (a benchmark, not a test; the README's test command has the 10-tab, l = 4 version).
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example leaf_set_convergence -- 20 16 3'
//! ```
//! Arguments: tabs (20), leaf set size l (16), runs (3), and optionally more of the page's
//! query string (`failedmemory=10000`). Each run opens the tabs in separate
//! browser contexts 300 ms apart with default timers, waits until all joined, then until
//! every leaf set is what the core computes from all the ids. The figure is the time from
//! the last `joined` event (each page's `performance.timeOrigin + joinedAt`) to the first
//! poll (every 200 ms, all tabs read in turn) that found every leaf set exact, so it
//! overstates by up to one poll round. Tabs whose leaf set is still wrong 15 s after the
//! checks began are printed with their state and the recent trouble of their connection
//! attempts to the nodes they lack.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use chromiumoxide::Page;
use past_e2e::{Chromium, eval, expected_leaf_set, node_state, start_server, view, wait_joined, wait_leaf_sets_exact};

/// Milliseconds since the Unix epoch, as the pages' clocks count.
fn epoch_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// An attempt that failed or was not made (`view().recentTrouble`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Trouble {
    peer: String,
    what: String,
    ago_ms: f64,
}

/// Prints each tab whose leaf set is not exact: what it lacks and holds instead, and its
/// state (connections, recent trouble).
async fn report_wrong(pages: &[(String, Page)], leaf: usize) -> anyhow::Result<()> {
    let mut views = Vec::new();
    for (_, page) in pages {
        views.push(view(page).await?.context("a page without a node")?);
    }
    let live: Vec<String> = views.iter().map(|v| v.node_id.clone()).collect();
    let short = |ids: Vec<&String>| ids.into_iter().map(|id| id[..8].to_string()).collect::<Vec<_>>();
    for ((name, page), v) in pages.iter().zip(&views) {
        let expected = expected_leaf_set(&v.node_id, &live, leaf)?;
        let want: Vec<&String> = expected.counter_clockwise.iter().chain(&expected.clockwise).collect();
        let got: Vec<&String> = v.leaf_set.counter_clockwise.iter().chain(&v.leaf_set.clockwise).collect();
        let missing = short(want.iter().filter(|id| !got.contains(id)).copied().collect());
        if !missing.is_empty() {
            let extra = short(got.iter().filter(|id| !want.contains(id)).copied().collect());
            println!(
                "15 s after the checks began, {name} ({}) lacks {missing:?}, holds {extra:?} instead",
                &v.node_id[..8]
            );
            println!("  {}", node_state(page).await);
            let trouble: Vec<Trouble> = eval(page, "window.past.node.view().recentTrouble").await?;
            for t in trouble.iter().filter(|t| missing.iter().any(|m| t.peer.starts_with(m.as_str()))) {
                println!("  {:.1} s ago, {}: {}", t.ago_ms / 1000.0, &t.peer[..8], t.what);
            }
        }
    }
    Ok(())
}

/// Seconds from the last join to exact leaf sets in one network of `tabs` tabs.
async fn run(tabs: usize, leaf: usize, query: &str) -> anyhow::Result<f64> {
    let server = start_server().await?;
    let origin = server.http_origin();
    let browser = Chromium::launch().await?;
    let mut pages: Vec<(String, Page)> = Vec::new();
    for i in 0..tabs {
        let page = browser.open_in_new_context(&origin, &format!("{origin}/?leaf={leaf}{query}")).await?;
        pages.push((format!("n{i}"), page));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut last_join: f64 = 0.0;
    for (name, page) in &pages {
        wait_joined(page, name, Duration::from_secs(120)).await?;
        let joined_at: f64 = eval(page, "performance.timeOrigin + window.past.joinedAt").await?;
        last_join = last_join.max(joined_at);
    }
    if wait_leaf_sets_exact(&pages, leaf, Duration::from_secs(15)).await.is_err() {
        report_wrong(&pages, leaf).await?;
        wait_leaf_sets_exact(&pages, leaf, Duration::from_secs(180)).await?;
    }
    let seconds = (epoch_ms() - last_join) / 1000.0;
    let mut failed = Vec::new();
    for (_, page) in &pages {
        failed.push(eval::<u32>(page, "window.past.node.view().connectionAttemptsFailed").await?);
    }
    println!("connection attempts that failed, per tab: {failed:?}");
    browser.close().await;
    drop(server);
    Ok(seconds)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut next = |default: usize| args.next().map(|a| a.parse()).transpose().map(|v| v.unwrap_or(default));
    let (tabs, leaf, runs) = (next(20)?, next(16)?, next(3)?);
    let query = args.next().map(|q| format!("&{q}")).unwrap_or_default();
    for i in 1..=runs {
        let seconds = run(tabs, leaf, &query).await?;
        println!("run {i}: {tabs} tabs, l = {leaf}: every leaf set exact {seconds:.1} s after the last join");
    }
    Ok(())
}
