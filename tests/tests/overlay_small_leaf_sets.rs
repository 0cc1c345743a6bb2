//! A network larger than the leaf set (10 tabs, l = 4): no node holds all others, so each
//! leaf set must be found by the join and the leaf set exchange, not by knowing everyone.
//! Every leaf set becomes exactly what the core computes from the live ids, and routes reach
//! the numerically closest node. The time it takes is printed (usually 0.3 s here); the
//! 10 s goal of issue 9 is a figure of the `leaf_set_convergence` benchmark, not a timed
//! assertion (under the full suite's load one run in several took longer): this test waits
//! up to 30 s.

use std::time::{Duration, Instant};

use past_e2e::{Chromium, FAST_TIMERS, JOIN_TIMEOUT, check_routing, wait_joined, wait_leaf_sets_exact, with_browser};

const TABS: usize = 10;
const LEAF_SET: usize = 4;

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}&leaf={LEAF_SET}");
    let mut pages = Vec::new();
    for i in 0..TABS {
        pages.push((format!("n{i}"), browser.open_in_new_context(origin, &url).await?));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, page) in &pages {
        wait_joined(page, name, JOIN_TIMEOUT).await?;
    }
    let last_join = Instant::now();
    wait_leaf_sets_exact(&pages, LEAF_SET, Duration::from_secs(30)).await?;
    eprintln!("{TABS} leaf sets of {LEAF_SET} exact {:?} after the last join", last_join.elapsed());
    for seed in 1..=2 {
        check_routing(&pages, seed, Duration::from_secs(15)).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_tabs_with_a_leaf_set_of_four_converge_to_exact_leaf_sets() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}
