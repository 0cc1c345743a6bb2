//! Two pages in two browser contexts of headless Chromium connect over WebRTC through the
//! signaling server, and messages cross the data channel intact: a non-ASCII text and a
//! 100 KiB binary message, in both directions.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chromiumoxide::Page;
use past_e2e::{CONNECT_TIMEOUT, Chromium, connected_pair, eval, init_tracing, page_state, start_server, wait_for};

/// Bound for a sent message to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

const TEXT: &str = "héllo, peer ✓ — 你好 🌍";
const BINARY_LEN: usize = 100 * 1024;

/// Waits until `page` has received `count` messages and returns them as
/// `{peer, kind, text, len, checksum}` descriptions.
async fn received(page: &Page, name: &str, count: usize) -> anyhow::Result<serde_json::Value> {
    let expr = format!(
        "window.past.received.length >= {count} ? JSON.stringify(window.past.received.map(m => \
           typeof m.data === 'string' \
             ? {{peer: m.peer, kind: 'text', text: m.data}} \
             : {{peer: m.peer, kind: m.data.constructor.name, len: m.data.length, \
                 pattern_ok: m.data.every((b, i) => b === ((i * 7 + 3) & 255))}})) : null"
    );
    let json = wait_for(
        &format!("page {name} to receive {count} messages"),
        DELIVERY_TIMEOUT,
        || async { eval::<Option<String>>(page, &expr).await },
        || page_state(page),
    )
    .await?;
    serde_json::from_str(&json).context("parsing the received messages")
}

async fn send_both_kinds(page: &Page, to: &str) -> anyhow::Result<()> {
    let script = format!(
        "(async () => {{ \
           await window.past.node.send({to:?}, {TEXT:?}); \
           const bytes = new Uint8Array({BINARY_LEN}); \
           for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 255; \
           await window.past.node.send({to:?}, bytes); \
           return true; \
         }})()"
    );
    ensure!(eval::<bool>(page, &script).await?, "send did not complete");
    Ok(())
}

fn check_received(got: &serde_json::Value, from: &str) -> anyhow::Result<()> {
    let expected = serde_json::json!([
        {"peer": from, "kind": "text", "text": TEXT},
        {"peer": from, "kind": "Uint8Array", "len": BINARY_LEN, "pattern_ok": true},
    ]);
    ensure!(*got == expected, "received {got:#} but expected {expected:#}");
    Ok(())
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let (a, id_a, b, id_b, opened) = connected_pair(browser, origin).await?;
    eprintln!("data channel open in {opened:?} after both pages registered");

    // The page shows what the test sees.
    let shown: String = eval(&a, "document.getElementById('peers').textContent").await?;
    ensure!(shown.contains(&id_b), "page A lists its peers as {shown:?}");

    let start = Instant::now();
    send_both_kinds(&a, &id_b).await?;
    check_received(&received(&b, "B", 2).await?, &id_a)?;
    eprintln!("A -> B text + {BINARY_LEN} bytes delivered in {:?}", start.elapsed());
    send_both_kinds(&b, &id_a).await?;
    check_received(&received(&a, "A", 2).await?, &id_b)?;

    // A message over the data channel limit is refused, not sent.
    let refused: String = eval(
        &a,
        &format!(
            "window.past.node.send({id_b:?}, new Uint8Array(256 * 1024 + 1)) \
               .then(() => 'sent', e => String(e.message ?? e))"
        ),
    )
    .await?;
    ensure!(refused.contains("exceeds"), "oversized send: {refused}");

    let log: String = eval(&b, "document.getElementById('log').textContent").await?;
    ensure!(log.contains(TEXT), "page B's log does not show the text: {log:?}");

    // Closing A's page is seen by B as a disconnect.
    a.close().await.context("closing page A")?;
    wait_for(
        "page B to notice A left",
        CONNECT_TIMEOUT,
        || async { Ok(eval::<bool>(&b, "window.past.node.peers().length === 0").await?.then_some(())) },
        || page_state(&b),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_connect_over_webrtc_and_exchange_messages() -> anyhow::Result<()> {
    init_tracing();
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let result = scenario(&browser, &server.http_origin()).await;
    browser.close().await;
    server.shutdown().await?;
    result
}
