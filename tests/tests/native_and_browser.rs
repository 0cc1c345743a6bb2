//! A native node (the `webrtc` crate) and a page in headless Chromium (the wasm node) meet
//! through the signaling server, authenticate each other over the data channel (each proves
//! its nodeId, bound to the connection's DTLS fingerprints), and form one Pastry overlay (both
//! run `past_link::Stack`): the native node routes a payload to the page's id and the page
//! delivers it; the page routes one to the native node's id and it arrives there.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, ensure};
use past_e2e::{Chromium, deliveries, eval, node_state, parse_id, wait_for, wait_joined, with_browser};
use past_link::Payload;
use past_node::{NodeConfig, NodeEvent, start};
use tokio::sync::mpsc::UnboundedReceiver;

const TIMEOUT: Duration = Duration::from_secs(20);
const TEXT: &str = "héllo from native ✓ 🌍";
const REPLY: &str = "bonjour du navigateur ✓";

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
    let page_id = wait_joined(&page, "the page", TIMEOUT).await?;

    // The native node arrives second, so it offers to the page (its closest registered node).
    let (native, mut events) = start(NodeConfig::new(ws_url)).await?;
    let native_id = native.id().to_string();
    let opened = Instant::now();
    next_event(&mut events, "the native node to authenticate the page", |e| match e {
        NodeEvent::Connected(p) if p.as_str() == page_id => Some(()),
        _ => None,
    })
    .await
    .map_err(|e| anyhow!("{e:#}"))?;
    eprintln!("native <-> browser authenticated data channel in {:?}", opened.elapsed());
    next_event(&mut events, "the native node to join through the page", |e| (e == NodeEvent::Joined).then_some(()))
        .await?;
    eprintln!("native node joined in {:?}", opened.elapsed());

    // Native -> page: a payload routed to the page's id.
    let payload = Payload { origin: native.node_id(), text: true, data: TEXT.as_bytes().to_vec() };
    native.route(parse_id(&page_id)?, payload).await?;
    let got = wait_for(
        "the page to deliver the native node's payload",
        TIMEOUT,
        || async { Ok(deliveries(&page).await?.into_iter().find(|d| d.data == serde_json::json!(TEXT))) },
        || node_state(&page),
    )
    .await?;
    ensure!(got.origin == native_id, "delivered with origin {}", got.origin);

    // Page -> native: the page knows the native node now and routes to its id.
    let routed: bool = eval(&page, &format!("(window.past.node.route({native_id:?}, {REPLY:?}), true)")).await?;
    ensure!(routed);
    let (reply, verified) = next_event(&mut events, "the page's routed payload", |e| match e {
        NodeEvent::Delivered { key, payload, origin_verified, .. } if key == native.node_id() => {
            Some((payload, origin_verified))
        }
        _ => None,
    })
    .await?;
    ensure!(verified, "the page's payload arrived without a proven origin");
    ensure!(reply.data == REPLY.as_bytes() && reply.text && reply.origin == parse_id(&page_id)?, "got {reply:?}");
    native.close();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_node_and_browser_page_authenticate_and_exchange_pastry_messages() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin(), &server.ws_url()).await).await
}
