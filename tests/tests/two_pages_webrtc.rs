//! Two pages in two browser contexts of headless Chromium become Pastry nodes: the first
//! founds the overlay, the second joins through it over an authenticated WebRTC data
//! channel, and messages routed to each other's ids arrive intact (non-ASCII text, and bytes
//! up to the payload limit), with the delivery shown on the page. Closing one page is seen
//! by the other.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use past_e2e::{Chromium, connected_pair, deliveries, eval, node_state, route, view, wait_for, with_browser};

const TEXT: &str = "héllo, peer ✓ — 你好 🌍";
const BINARY_LEN: usize = 60 * 1024;

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let (a, id_a, b, id_b, joined) = connected_pair(browser, origin).await?;
    eprintln!("second page joined {joined:?} after it opened");

    // The page shows the other node on its ring.
    let shown: String = eval(&a, "document.querySelector('[data-testid=ring]').innerHTML").await?;
    ensure!(shown.contains(&id_b[..8]), "page A's ring does not show B: {shown:?}");

    let start = Instant::now();
    route(&a, &id_b, TEXT).await?;
    let binary = format!(
        "(() => {{ const bytes = new Uint8Array({BINARY_LEN}); \
           for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 255; \
           window.past.node.route({id_a:?}, bytes); return true; }})()"
    );
    ensure!(eval::<bool>(&b, &binary).await?, "B could not route bytes");
    let got = wait_for(
        "the text to arrive at B",
        Duration::from_secs(10),
        || async { Ok(deliveries(&b).await?.into_iter().find(|d| d.data == serde_json::json!(TEXT))) },
        || node_state(&b),
    )
    .await?;
    ensure!(got.origin == id_a && got.key == id_b && got.hops == 1, "unexpected delivery {got:?}");
    eprintln!("A -> B delivered in {:?}", start.elapsed());
    let check = format!(
        "(window.past.delivered.find(d => d.data instanceof Uint8Array) ?? null) && \
         window.past.delivered.some(d => d.data instanceof Uint8Array && d.data.length === {BINARY_LEN} \
           && d.data.every((b, i) => b === ((i * 7 + 3) & 255)) && d.origin === {id_b:?})"
    );
    let ok = wait_for(
        "the bytes to arrive at A",
        Duration::from_secs(10),
        || async { Ok(eval::<Option<bool>>(&a, &check).await?.filter(|ok| *ok)) },
        || node_state(&a),
    )
    .await?;
    ensure!(ok);

    // A payload over the limit is refused, not sent.
    let refused: String = eval(
        &a,
        &format!(
            "(() => {{ try {{ window.past.node.route({id_b:?}, new Uint8Array(61 * 1024)); return 'sent'; }} \
                   catch (e) {{ return String(e.message ?? e); }} }})()"
        ),
    )
    .await?;
    ensure!(refused.contains("exceeds"), "oversized route: {refused}");
    let log: String = eval(&b, "document.getElementById('log').textContent").await?;
    ensure!(log.contains(TEXT), "page B's log does not show the text: {log:?}");

    // Closing A's page is seen by B.
    a.close().await.context("closing page A")?;
    wait_for(
        "B to forget A",
        Duration::from_secs(15),
        || async {
            let v = view(&b).await?;
            Ok(v.filter(|v| v.open().is_empty() && v.leaf_set.clockwise.is_empty()).map(|_| ()))
        },
        || node_state(&b),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_join_and_route_to_each_other() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}
