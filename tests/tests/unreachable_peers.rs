//! A tab on a network where no peer connection can open (here: ICE limited to relay
//! candidates with no TURN server, as on a network that needs one) says so instead of
//! "joined", and spends a bounded number of `RTCPeerConnection`s: its failed attempts back
//! off and draw on the peer manager's failure bucket (10, refilled at 0.8 a minute). The
//! other tabs are not disturbed.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use past_e2e::{Chromium, FAST_TIMERS, JOIN_TIMEOUT, eval, node_state, view, wait_for, wait_joined, with_browser};

/// Tabs that can reach each other.
const REACHABLE: usize = 4;

/// How long the unreachable tab is watched after it says so.
const WATCH: Duration = Duration::from_secs(25);

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let mut pages = Vec::new();
    for i in 0..REACHABLE {
        let page = browser.open_in_new_context(origin, &format!("{origin}/?{FAST_TIMERS}")).await?;
        wait_joined(&page, &format!("tab {i}"), JOIN_TIMEOUT).await?;
        pages.push(page);
    }
    let cut_off = browser.open_in_new_context(origin, &format!("{origin}/?{FAST_TIMERS}&icepolicy=relay")).await?;
    let detail = wait_for(
        "the cut-off tab to say peers cannot be reached",
        Duration::from_secs(30),
        || async { Ok(view(&cut_off).await?.filter(|v| v.status == "unreachable").map(|v| v.detail)) },
        || node_state(&cut_off),
    )
    .await?;
    ensure!(detail.contains("ICE server"), "the detail does not suggest an ICE server: {detail}");
    eprintln!("cut-off tab: {detail}");
    tokio::time::sleep(WATCH).await;
    let v = view(&cut_off).await?.context("no view of the cut-off tab")?;
    ensure!(!v.joined && v.status == "unreachable", "the cut-off tab shows {} (joined {})", v.status, v.joined);
    // The page says it in plain words, with the way out.
    let (state, help): (String, String) = eval(
        &cut_off,
        "[document.querySelector('[data-testid=status]').dataset.state,
          document.querySelector('[data-testid=status-help]').textContent]",
    )
    .await?;
    ensure!(state == "error" && help.contains("ICE server"), "the page shows {state}: {help:?}");
    ensure!(
        v.peer_connections_created <= 10,
        "the cut-off tab made {} RTCPeerConnections in about {} s",
        v.peer_connections_created,
        WATCH.as_secs() + 6
    );
    eprintln!("cut-off tab: {} RTCPeerConnections made", v.peer_connections_created);
    for (i, page) in pages.iter().enumerate() {
        let v = view(page).await?.context("no view")?;
        ensure!(v.joined && v.status == "joined", "tab {i} shows {} after the cut-off tab came", v.status);
        ensure!(v.open().len() == REACHABLE - 1, "tab {i} has {:?} open", v.open());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_whose_connections_never_open_says_so_and_spends_few_connections() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}
