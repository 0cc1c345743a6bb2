//! Ten browser nodes form one Pastry overlay: eight in separate browser contexts and two
//! tabs sharing a context (and so IndexedDB: each claims its own identity slot). Every node
//! joins; each node's leaf set becomes exactly what the core computes from the set of live
//! ids; a message routed from every node to a random key is delivered at the node
//! numerically closest to it. Round-trip times come from the connections' statistics.

use std::time::{Duration, Instant};

use anyhow::ensure;
use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, check_routing, view, wait_joined, wait_leaf_sets_exact, with_browser,
};

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}");
    let mut pages: Vec<(String, Page)> = Vec::new();
    // The first node founds the overlay; the others arrive while it grows.
    let first = browser.open_in_new_context(origin, &url).await?;
    wait_joined(&first, "n0", JOIN_TIMEOUT).await?;
    pages.push(("n0".into(), first));
    let start = Instant::now();
    let mut opened = Vec::new();
    for i in 1..8 {
        pages.push((format!("n{i}"), browser.open_in_new_context(origin, &url).await?));
        opened.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shared = browser.new_context(origin).await?;
    for name in ["tab-a", "tab-b"] {
        pages.push((name.into(), browser.open_in_context(&shared, &url).await?));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut ids = Vec::new();
    for (name, page) in &pages {
        ids.push(wait_joined(page, name, JOIN_TIMEOUT).await?);
    }
    eprintln!("10 nodes joined {:?} after the second page opened", start.elapsed());

    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    ensure!(distinct.len() == ids.len(), "two nodes share an id: {ids:?}");
    let slot = |page: &Page| {
        let page = page.clone();
        async move { past_e2e::eval::<u32>(&page, "window.past.node.view().slot").await }
    };
    let (a, b) = (slot(&pages[8].1).await?, slot(&pages[9].1).await?);
    ensure!(a != b, "the two tabs of one context claimed the same identity slot {a}");

    wait_leaf_sets_exact(&pages, 16, Duration::from_secs(30)).await?;
    for seed in 1..=3 {
        check_routing(&pages, seed, Duration::from_secs(15)).await?;
    }
    for (name, page) in &pages {
        let v = view(page).await?.ok_or_else(|| anyhow::anyhow!("{name} has no node"))?;
        eprintln!(
            "{name} {}: {} open connections, {} created; round trips from getStats {}, by probe {}",
            &v.node_id[..8],
            v.open().len(),
            v.peer_connections_created,
            v.rtts_from_transport,
            v.rtts_by_probe
        );
        // Proximity comes from the connections' statistics; probes only where they had none.
        ensure!(v.rtts_from_transport > 0, "{name}: no round trip came from getStats");
        ensure!(v.rtts_by_probe <= v.rtts_from_transport, "{name}: most round trips were left to probes");
        let measured = v.connections.iter().filter(|c| c.state == "open" && c.rtt_ms.is_some()).count();
        ensure!(measured > 0, "{name}: no open connection has a round-trip time");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_browser_nodes_join_have_exact_leaf_sets_and_route_to_the_closest_node() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}
