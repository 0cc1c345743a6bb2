//! Browser nodes refuse peers that cannot prove their nodeId, and drop authenticated peers
//! that send garbage or oversized frames, while the rest of the overlay goes on.
//!
//! The misbehaving peers are native nodes (`past-node`): they register with the signaling
//! server properly (the server checks their key), then on the data channel one presents
//! another key than the nodeId it registered and signalled, and one authenticates honestly
//! and then sends an undecodable Pastry frame to one page and a chunk announcing 100 MB to
//! the other.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use chromiumoxide::Page;
use ed25519_dalek::SigningKey;
use past_e2e::{Chromium, check_routing, connected_pair, eval, node_state, view, wait_for, with_browser};
use past_link::frame;
use past_node::{Data, NodeConfig, NodeEvent, start};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(20);

/// Waits until `page` reports that it refused `peer`, with a reason containing `why`.
async fn refused(page: &Page, name: &str, peer: &str, why: &str) -> anyhow::Result<String> {
    let expr = format!(
        "(window.past?.events ?? []).filter(e => e.type === 'refused' && e.peer === {peer:?}) \
           .map(e => e.reason).find(r => r.includes({why:?})) ?? null"
    );
    let reason = wait_for(
        &format!("{name} to refuse {peer} ({why})"),
        WAIT,
        || async { eval::<Option<String>>(page, &expr).await },
        || node_state(page),
    )
    .await?;
    let open = view(page).await?.map(|v| v.open()).unwrap_or_default();
    anyhow::ensure!(!open.contains(&peer.to_string()), "{name} still has {peer} open after refusing it");
    Ok(reason)
}

async fn next<T>(
    events: &mut UnboundedReceiver<NodeEvent>,
    what: &str,
    mut pick: impl FnMut(NodeEvent) -> Option<T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.ok_or_else(|| anyhow!("the native node stopped waiting for {what}"))?;
            if let Some(found) = pick(event) {
                return Ok(found);
            }
        }
    })
    .await
    .with_context(|| format!("timed out after {WAIT:?} waiting for {what}"))?
}

async fn scenario(browser: &Chromium, origin: &str, ws_url: &str) -> anyhow::Result<()> {
    let (a, id_a, b, id_b, _) = connected_pair(browser, origin).await?;
    let pages = vec![("A".to_string(), a.clone()), ("B".to_string(), b.clone())];

    // An impostor: registered as the nodeId of one key, it presents another on the channel.
    let mut config = NodeConfig::new(ws_url);
    config.key = Some(SigningKey::from_bytes(&[41; 32]));
    config.handshake_key = Some(SigningKey::from_bytes(&[42; 32]));
    let (impostor, _events) = start(config).await?;
    let impostor_id = impostor.id().to_string();
    for (name, page) in &pages {
        let reason = refused(page, name, &impostor_id, "authentication failed").await?;
        eprintln!("{name} refused the impostor: {reason}");
    }
    impostor.close();

    // An honest peer that turns bad after authenticating.
    let mut config = NodeConfig::new(ws_url);
    config.key = Some(SigningKey::from_bytes(&[43; 32]));
    let (rogue, mut events) = start(config).await?;
    let rogue_id = rogue.id().to_string();
    let mut authenticated = Vec::new();
    while authenticated.len() < 2 {
        let peer = next(&mut events, "authenticated connections to both pages", |e| match e {
            NodeEvent::Connected(peer) => Some(peer),
            _ => None,
        })
        .await?;
        authenticated.push(peer.to_string());
    }
    let a_peer = rogue.peers().await.into_iter().find(|p| p.as_str() == id_a).context("rogue connected to A")?;
    let b_peer = rogue.peers().await.into_iter().find(|p| p.as_str() == id_b).context("rogue connected to B")?;
    // Garbage in a Pastry frame to A.
    rogue.send_raw(&a_peer, Data::Bytes(vec![frame::PASTRY, 0xde, 0xad, 0xbe, 0xef])).await?;
    let reason = refused(&a, "A", &rogue_id, "undecodable Pastry frame").await?;
    eprintln!("A dropped the rogue: {reason}");
    // A chunked frame announcing 100 MB to B: refused before anything is allocated.
    let mut huge = vec![frame::CHUNK_START];
    huge.extend_from_slice(&(100u32 << 20).to_be_bytes());
    huge.extend_from_slice(&[0; 1000]);
    rogue.send_raw(&b_peer, Data::Bytes(huge)).await?;
    let reason = refused(&b, "B", &rogue_id, "over the limit").await?;
    eprintln!("B dropped the rogue: {reason}");
    rogue.close();

    // The overlay goes on.
    past_e2e::wait_connected(&a, "A", &id_b).await?;
    past_e2e::wait_connected(&b, "B", &id_a).await?;
    check_routing(&pages, 7, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impostors_are_refused_and_misbehaving_peers_dropped() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin(), &server.ws_url()).await).await
}
