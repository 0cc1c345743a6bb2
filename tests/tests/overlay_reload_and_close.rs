//! A reloaded tab keeps its nodeId (its identity slot is remembered in sessionStorage and its
//! key in IndexedDB) and rejoins; a closed tab is detected and leaves every leaf set within a
//! bound: one closed normally (its page tells the others on `pagehide`), one whose renderer
//! crashes (found by keep-alives and the closed connections). Issue 14: a hidden tab whose
//! connection budget is nearly used up reloads itself, keeps its nodeId and rejoins, and does
//! not reload again at once when the fresh budget is too small to last.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::page::CrashParams;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, eval, node_state, wait_for, wait_joined, wait_leaf_sets_exact, with_browser,
};

/// Bound for the overlay to notice a closed tab (keep-alive 0.5 s, probe timeout 2.5 s).
const DETECTION_BOUND: Duration = Duration::from_secs(15);

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}");
    let mut pages: Vec<(String, Page)> = Vec::new();
    for i in 0..5 {
        let page = browser.open_in_new_context(origin, &url).await?;
        wait_joined(&page, &format!("n{i}"), JOIN_TIMEOUT).await?;
        pages.push((format!("n{i}"), page));
    }
    wait_leaf_sets_exact(&pages, 16, Duration::from_secs(20)).await?;

    // Reload n2: same id, joined again, leaf sets exact again.
    let before = wait_joined(&pages[2].1, "n2", JOIN_TIMEOUT).await?;
    let start = Instant::now();
    pages[2].1.reload().await.context("reloading n2")?;
    let after = wait_joined(&pages[2].1, "n2 after the reload", JOIN_TIMEOUT).await?;
    ensure!(before == after, "the reloaded tab changed its nodeId from {before} to {after}");
    eprintln!("reloaded tab rejoined as {} in {:?}", &after[..8], start.elapsed());
    wait_leaf_sets_exact(&pages, 16, Duration::from_secs(20)).await?;

    // Close n3: it leaves every leaf set.
    let (_, closed) = pages.remove(3);
    let start = Instant::now();
    closed.close().await.context("closing n3")?;
    wait_leaf_sets_exact(&pages, 16, DETECTION_BOUND).await?;
    eprintln!("closed tab gone from every leaf set in {:?}", start.elapsed());

    // Crash n1's renderer: no goodbye.
    let (_, crashed) = pages.remove(1);
    let start = Instant::now();
    // The command never gets an answer from a crashed page: do not wait for it.
    let crash = tokio::spawn(async move { crashed.execute(CrashParams::default()).await.map(|_| ()) });
    wait_leaf_sets_exact(&pages, 16, DETECTION_BOUND).await?;
    crash.abort();
    eprintln!("crashed tab gone from every leaf set in {:?}", start.elapsed());
    hidden_tab_reloads_itself(browser, origin, &url).await
}

/// A hidden tab with a budget of 4 peer connections (a reload is advised at the third) among
/// three others: it reloads itself once, keeping its nodeId, and not again at once.
async fn hidden_tab_reloads_itself(browser: &Chromium, origin: &str, url: &str) -> anyhow::Result<()> {
    let context = browser.new_context(origin).await?;
    let page = browser.open_in_context(&context, "about:blank").await?;
    // The page sees itself hidden, as a background tab does, from its first script on.
    let hide = "Object.defineProperty(document, 'hidden', { get: () => true, configurable: true })";
    page.evaluate_on_new_document(hide).await.context("hiding the tab")?;
    page.goto(format!("{url}&budget=4")).await.context("opening the hidden tab")?;
    let reloaded = || async {
        let kind = "performance.getEntriesByType('navigation')[0]?.type";
        // During the reload the page may not answer: not reloaded yet.
        Ok(eval::<Option<String>>(&page, kind).await.ok().flatten().filter(|k| k == "reload"))
    };
    let start = Instant::now();
    wait_for("the hidden tab to reload itself", JOIN_TIMEOUT * 2, reloaded, || node_state(&page)).await?;
    let id = wait_joined(&page, "the hidden tab after its reload", JOIN_TIMEOUT).await?;
    eprintln!("hidden tab reloaded itself and rejoined as {} in {:?}", &id[..8], start.elapsed());
    let stamp: Option<String> = eval(&page, "sessionStorage.getItem('past-auto-reload-at')").await?;
    ensure!(stamp.is_some(), "the reload was not the page's own");
    // The fresh budget is advised to reload again at once: the page waits instead.
    let origin_time: f64 = eval(&page, "performance.timeOrigin").await?;
    let advised = || async { Ok(eval::<bool>(&page, "window.past.node.view().reloadAdvised").await?.then_some(())) };
    wait_for("a reload to be advised again", JOIN_TIMEOUT, advised, || node_state(&page)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now_origin: f64 = eval(&page, "performance.timeOrigin").await?;
    ensure!(now_origin == origin_time, "the tab reloaded itself again right after a reload");
    ensure!(wait_joined(&page, "the hidden tab", JOIN_TIMEOUT).await? == id, "its nodeId changed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_tab_keeps_its_id_and_a_closed_tab_leaves_every_leaf_set() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}
