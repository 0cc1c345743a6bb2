//! A tab left open across an update. The signaling server restarts on the same address
//! serving a page of another overlay version (`past_link::version`); the tab, which
//! reconnects to it on its own, learns from the welcome that the nodes of the new page cannot
//! talk to it, says so in its status with what to do, and, once hidden, reloads itself.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, eval, init_tracing, node_state, start_server, start_server_with, wait_for,
    wait_joined,
};
use past_link::OVERLAY_VERSION;
use past_link::version::version_text;

/// How long the tab may take to reconnect to the restarted server.
const RECONNECT_BOUND: Duration = Duration::from_secs(30);

async fn outdated(page: &Page) -> anyhow::Result<bool> {
    eval(page, "window.past.node.view().outdated").await
}

async fn scenario(browser: &Chromium) -> anyhow::Result<()> {
    let old = start_server().await?;
    let (address, origin) = (old.local_addr(), old.http_origin());
    let page = browser.open_in_new_context(&origin, &format!("{origin}/?{FAST_TIMERS}")).await?;
    wait_joined(&page, "the tab", JOIN_TIMEOUT).await?;
    ensure!(!outdated(&page).await?, "the tab of the server's own page is not outdated");
    let running: String = eval(&page, "window.past.node.view().overlayVersion").await?;
    ensure!(running == version_text(OVERLAY_VERSION), "the tab runs overlay {running}");

    old.shutdown().await?;
    let newer = OVERLAY_VERSION + 1;
    let new = start_server_with(|config| {
        config.listen = address;
        config.overlay_version = newer;
    })
    .await?;
    let learned = || async { Ok(outdated(&page).await?.then_some(())) };
    let result = async {
        wait_for("the tab to learn of the new version", RECONNECT_BOUND, learned, || node_state(&page)).await?;
        let event: serde_json::Value = eval(&page, "window.past.events.filter(e => e.type === 'outdated')").await?;
        let expected = serde_json::json!([{ "type": "outdated", "served": version_text(newer), "running": running }]);
        ensure!(event == expected, "the page was told once, with both versions: {event}");
        let shown = || async {
            let text: String = eval(&page, "document.querySelector('[data-testid=status]').textContent").await?;
            Ok(text.contains("A new version of this page is out.").then_some(text))
        };
        let text = wait_for("the status to say so", Duration::from_secs(5), shown, || node_state(&page)).await?;
        let help: String = eval(&page, "document.querySelector('[data-testid=status-help]').textContent").await?;
        ensure!(help.starts_with("Reload the page to update"), "the status says what to do: {text} / {help}");

        // Hidden, as a background tab: it reloads itself, once.
        let hide = "(Object.defineProperty(document, 'hidden', { get: () => true, configurable: true }), \
                    document.dispatchEvent(new Event('visibilitychange')), true)";
        let _: bool = eval(&page, hide).await.context("hiding the tab")?;
        let reloaded = || async {
            let kind = "performance.getEntriesByType('navigation')[0]?.type";
            Ok(eval::<Option<String>>(&page, kind).await.ok().flatten().filter(|k| k == "reload"))
        };
        wait_for("the hidden tab to reload itself", RECONNECT_BOUND, reloaded, || node_state(&page)).await?;
        let stamp: Option<String> = eval(&page, "sessionStorage.getItem('past-auto-reload-at')").await?;
        ensure!(stamp.is_some(), "the reload was the page's own");
        Ok(())
    }
    .await;
    new.shutdown().await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_left_open_across_an_update_says_so_and_reloads_itself_when_hidden() -> anyhow::Result<()> {
    init_tracing();
    let browser = Chromium::launch().await?;
    let result = scenario(&browser).await;
    browser.close().await;
    result
}
