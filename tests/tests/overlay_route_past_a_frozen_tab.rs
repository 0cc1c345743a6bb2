//! A message routed to a key whose root is a tab that has just frozen still arrives, at the
//! tab that is the key's root without it. Six tabs with the default timers (keep-alive 5 s),
//! each in every other's leaf set. One tab is frozen (CDP `Page.setWebLifecycleState`: no
//! script runs in it, its data channels stay open at the other end, as for a tab the browser
//! froze in the background or a page that hung), and at once another routes a message to
//! the key one above the frozen tab's id. The sender's connection to it is open, so the
//! message goes there and is lost with no error. The sender's peer manager pings behind what
//! it sends; with no answer in 3 s it takes the tab for failed and hands the message back to
//! the core, which routes it to the closest live tab, naming the frozen one in it so that
//! the next tab does not send it there again. The test asks that the message is delivered
//! there, once, in at most two hops (the lost one counted) and within 10 s, and that the
//! sender found the frozen tab silent. It prints how long delivery took.
//!
//! A key that is the frozen tab's own id would take one more wait of 3 s: the node a
//! message is addressed to is never named as failed (docs/results.md, "Failed nodes named
//! along the route"), so the next tab, which has not noticed yet, sends it there too.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chromiumoxide::Page;
use past_e2e::{
    Chromium, JOIN_TIMEOUT, closest, deliveries, found_silent, freeze, hex, node_state, open_network, parse_id, route,
    view, wait_for, with_browser,
};

const TABS: usize = 6;
/// Every tab in every other's leaf set.
const LEAF_SET: usize = 16;
/// Longest the message may take to arrive.
const DELIVERY_BOUND: Duration = Duration::from_secs(10);
const TEXT: &str = "routed past a frozen tab";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_routed_to_a_tab_that_froze_reaches_the_next_closest_tab() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/");
    let mut pages =
        open_network(browser, origin, &url, (TABS, Duration::from_millis(200)), LEAF_SET, JOIN_TIMEOUT).await?;
    let mut ids = Vec::new();
    for (name, page) in &pages {
        ids.push(view(page).await?.with_context(|| format!("{name} has a node"))?.node_id);
    }
    let (sender, frozen) = (pages[0].1.clone(), 1);
    let sender_view = view(&sender).await?.context("the sender has a node")?;
    ensure!(sender_view.open().contains(&ids[frozen]), "the sender has no open connection to the tab to freeze");

    let key = hex(past_core::Id::from_u128(parse_id(&ids[frozen])?.as_u128().wrapping_add(1)));
    ensure!(closest(&key, &ids)? == ids[frozen], "the key's root is not the tab to freeze");
    let ((frozen_name, frozen_page), frozen_id) = (pages.remove(frozen), ids.remove(frozen));
    freeze(&frozen_page).await?;
    let started = Instant::now();
    route(&sender, &key, TEXT).await?;
    let root = closest(&key, &ids)?;
    let at = ids.iter().position(|id| *id == root).context("the root is a tab")?;
    let (root_name, root_page) = &pages[at];
    let got = wait_for(
        &format!("the message to arrive at {root_name}, the closest live tab to {frozen_name}"),
        DELIVERY_BOUND,
        || async { Ok(deliveries(root_page).await?.into_iter().find(|d| d.data == serde_json::json!(TEXT))) },
        || node_state(&sender),
    )
    .await?;
    eprintln!("delivered at {root_name} {:.1?} after it was routed ({} hops)", started.elapsed(), got.hops);
    ensure!(got.key == key, "delivered for another key: {got:?}");
    ensure!(got.hops <= 2, "{} hops: the message went to the frozen tab again after the sender named it", got.hops);
    ensure!(
        found_silent(&sender, &frozen_id).await?,
        "the sender did not find {frozen_name} silent: {}",
        node_state(&sender).await
    );
    ensure!(deliveries_of_the_message(&pages).await? == 1, "the message was delivered more than once");
    Ok(())
}

/// How many times the message was delivered at `pages`.
async fn deliveries_of_the_message(pages: &[(String, Page)]) -> anyhow::Result<usize> {
    let mut count = 0;
    for (_, page) in pages {
        count += deliveries(page).await?.iter().filter(|d| d.data == serde_json::json!(TEXT)).count();
    }
    Ok(count)
}
