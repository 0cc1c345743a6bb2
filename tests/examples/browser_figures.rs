//! Figures of the browser node (a benchmark, not a test): time from page open to joined in
//! a network of 8 tabs, and route latency by hop count.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example browser_figures'
//! ```
//! Network 1: 8 tabs (separate browser contexts), default parameters (l = 16, b = 4): every
//! node is in every leaf set, so every route takes 1 hop. Network 2: 8 tabs with a leaf set
//! of 2 and binary digits (b = 1), so routes take up to 3 hops. Latency is measured from
//! `route()` in the sending page to the `delivered` event in the receiving page, both as
//! `performance.timeOrigin + performance.now()` (one machine, one clock).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use chromiumoxide::Page;
use past_e2e::{Chromium, deliveries, eval, start_server, view, wait_joined};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn network(query: &str) -> anyhow::Result<(Chromium, past_signaling::ServerHandle, Vec<Page>, Vec<String>)> {
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let origin = server.http_origin();
    let mut pages = Vec::new();
    for _ in 0..8 {
        pages.push(browser.open_in_new_context(&origin, &format!("{origin}/?{query}")).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut ids = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        ids.push(wait_joined(page, &format!("n{i}"), Duration::from_secs(60)).await?);
    }
    // Let probes and leaf set pushes settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok((browser, server, pages, ids))
}

/// Routes `keys` from every page; returns latencies in ms grouped by hop count.
async fn latencies(pages: &[Page], keys: &[Vec<String>]) -> anyhow::Result<BTreeMap<u32, Vec<f64>>> {
    for (page, keys) in pages.iter().zip(keys) {
        for key in keys {
            eval::<Option<bool>>(
                page,
                &format!("(window.past.node.route({key:?}, String(performance.timeOrigin + performance.now())), true)"),
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut by_hops: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for page in pages {
        for d in deliveries(page).await? {
            let sent: f64 = d.data.as_str().context("text payload")?.parse()?;
            by_hops.entry(d.hops).or_default().push(d.at - sent);
        }
    }
    for v in by_hops.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    Ok(by_hops)
}

fn report(by_hops: &BTreeMap<u32, Vec<f64>>) {
    for (hops, v) in by_hops {
        println!(
            "  {hops} hop(s): {} routes, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Network 1: page open to joined, and 1-hop routes.
    let (browser, server, pages, ids) = network("").await?;
    let mut joined = Vec::new();
    for page in &pages {
        joined.push(eval::<f64>(page, "window.past.joinedAt").await?);
    }
    println!("network of 8 tabs (l = 16, b = 4)");
    println!(
        "  page open to joined (ms, in opening order): {}",
        joined.iter().map(|t| format!("{t:.0}")).collect::<Vec<_>>().join(", ")
    );
    let mut sorted = joined.clone();
    sorted.sort_by(f64::total_cmp);
    println!("  median {:.0} ms, max {:.0} ms", percentile(&sorted, 0.5), sorted[sorted.len() - 1]);
    let keys: Vec<Vec<String>> = (0..pages.len())
        .map(|i| {
            (0..3)
                .flat_map(|_| ids.iter().enumerate().filter(move |(j, _)| *j != i).map(|(_, id)| id.clone()))
                .collect()
        })
        .collect();
    report(&latencies(&pages, &keys).await?);
    let created: Vec<u32> = {
        let mut v = Vec::new();
        for page in &pages {
            v.push(view(page).await?.map_or(0, |v| v.peer_connections_created));
        }
        v
    };
    println!("  RTCPeerConnections created per tab: {created:?}");
    browser.close().await;
    server.shutdown().await?;

    // Network 2: small tables, routes of 1 to 3 hops.
    let (browser, server, pages, _ids) = network("leaf=2&bits=1").await?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let keys: Vec<Vec<String>> =
        (0..pages.len()).map(|_| (0..40).map(|_| format!("{:016x}{:016x}", next(), next())).collect()).collect();
    println!("network of 8 tabs (l = 2, b = 1): routes to random keys");
    report(&latencies(&pages, &keys).await?);
    browser.close().await;
    server.shutdown().await?;
    Ok(())
}
