//! A native node (the `webrtc` crate) and a page in headless Chromium (the wasm node)
//! connect over WebRTC through the signaling server and exchange text and binary messages
//! both ways.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use chromiumoxide::Page;
use past_e2e::{Chromium, eval, init_tracing, start_server, wait_for};
use past_node::proto::PeerId;
use past_node::{Data, MAX_MESSAGE_BYTES, NodeConfig, NodeEvent, start};
use tokio::sync::mpsc::UnboundedReceiver;

const TIMEOUT: Duration = Duration::from_secs(20);
const TEXT: &str = "héllo from native ✓ 🌍";
const REPLY: &str = "bonjour du navigateur ✓";

async fn page_state(page: &Page) -> String {
    eval::<String>(
        page,
        "JSON.stringify({status: document.getElementById('status')?.textContent, \
         peers: window.past?.node?.peers() ?? null, \
         events: (window.past?.events ?? []).slice(-10)})",
    )
    .await
    .unwrap_or_else(|e| format!("(page unreadable: {e:#})"))
}

async fn next_event<T>(
    events: &mut UnboundedReceiver<NodeEvent>,
    what: &str,
    mut pick: impl FnMut(NodeEvent) -> Option<T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let event =
                events.recv().await.ok_or_else(|| anyhow!("the native node stopped while waiting for {what}"))?;
            if let Some(found) = pick(event) {
                return Ok(found);
            }
        }
    })
    .await
    .with_context(|| format!("timed out after {TIMEOUT:?} waiting for {what}"))?
}

async fn scenario(browser: &Chromium, origin: &str, ws_url: &str) -> anyhow::Result<()> {
    let page = browser.open_in_new_context(origin, &format!("{origin}/")).await?;
    let page_id: String = wait_for(
        "the page to register",
        TIMEOUT,
        || async { eval::<Option<String>>(&page, "window.past?.node?.id() ?? null").await },
        || page_state(&page),
    )
    .await?;
    let page_id = PeerId::new(page_id)?;

    // The native node arrives second, so it offers to the page.
    let (native, mut events) = start(NodeConfig::new(ws_url)).await?;
    let opened = Instant::now();
    let native_open = next_event(&mut events, "the native node's data channel to the page", |e| match e {
        NodeEvent::Connected(p) if p == page_id => Some(()),
        _ => None,
    })
    .await;
    if let Err(err) = native_open {
        return Err(err.context(format!("page state: {}", page_state(&page).await)));
    }
    let native_id = native.id().to_string();
    let expr = format!("(window.past?.node?.peers() ?? []).includes({native_id:?})");
    wait_for(
        "the page's data channel to the native node",
        TIMEOUT,
        || async { Ok(eval::<bool>(&page, &expr).await?.then_some(())) },
        || page_state(&page),
    )
    .await?;
    eprintln!("native <-> browser data channel open in {:?}", opened.elapsed());

    // Native -> page: text and the largest binary message the native node sends.
    native.send(&page_id, Data::Text(TEXT.into())).await?;
    let bytes: Vec<u8> = (0..MAX_MESSAGE_BYTES).map(|i| (i * 7 + 3) as u8).collect();
    native.send(&page_id, Data::Bytes(bytes.clone())).await?;
    let check = format!(
        "window.past.received.length >= 2 ? [ \
           window.past.received[0].peer === {native_id:?} && window.past.received[0].data === {TEXT:?}, \
           window.past.received[1].data instanceof Uint8Array \
             && window.past.received[1].data.length === {MAX_MESSAGE_BYTES} \
             && window.past.received[1].data.every((b, i) => b === ((i * 7 + 3) & 255)) ] : null"
    );
    let checks: Vec<bool> = wait_for(
        "the page to receive the native node's messages",
        TIMEOUT,
        || async { eval::<Option<Vec<bool>>>(&page, &check).await },
        || page_state(&page),
    )
    .await?;
    ensure!(checks == [true, true], "page received wrong content: {checks:?}");

    // Page -> native: text and binary.
    let send = format!(
        "(async () => {{ \
           await window.past.node.send({native_id:?}, {REPLY:?}); \
           const bytes = new Uint8Array({MAX_MESSAGE_BYTES}); \
           for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 255; \
           await window.past.node.send({native_id:?}, bytes); \
           return true; }})()"
    );
    ensure!(eval::<bool>(&page, &send).await?, "the page could not send");
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(
            next_event(&mut events, "the page's messages", |e| match e {
                NodeEvent::Message { from, data } => Some((from, data)),
                _ => None,
            })
            .await?,
        );
    }
    ensure!(
        got == [(page_id.clone(), Data::Text(REPLY.into())), (page_id.clone(), Data::Bytes(bytes)),],
        "native node received something else: {:?}",
        got.iter().map(|(p, d)| (p, d.len())).collect::<Vec<_>>()
    );

    native.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_node_and_browser_page_exchange_messages() -> anyhow::Result<()> {
    init_tracing();
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let result = scenario(&browser, &server.http_origin(), &server.ws_url()).await;
    browser.close().await;
    server.shutdown().await?;
    result
}
