//! Browser nodes refuse peers that cannot prove their nodeId, and drop authenticated peers
//! that send garbage or oversized frames, while the rest of the overlay goes on.
//!
//! The misbehaving peers are native nodes (`past-node`): they register with the signaling
//! server properly (the server checks their key), then on the data channel one presents
//! another key than the nodeId it registered and signalled, one authenticates honestly and
//! then sends a frame of another wire version to one page and a chunk announcing 100 MB to
//! the other, and one sends frames with a valid header (data channel type, wire version,
//! message and application tags) and a malformed body: a bad value to one page, a byte
//! string announcing 4 GiB to the other. Each page drops the rogue, keeps its connection to
//! the other page, and both still route.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use chromiumoxide::Page;
use ed25519_dalek::SigningKey;
use past_core::Id;
use past_core::wire::{self, Message};
use past_e2e::{Chromium, check_routing, connected_pair, eval, node_state, view, wait_for, with_browser};
use past_link::{AppMessage, Payload, frame};
use past_node::proto::PeerId;
use past_node::{Data, NodeConfig, NodeEvent, NodeHandle, start};
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

/// Starts a native node with `seed`'s key and waits until it has authenticated connections
/// to both pages; returns it, its id and its peer ids for the pages.
async fn start_rogue(
    ws_url: &str,
    seed: u8,
    id_a: &str,
    id_b: &str,
) -> anyhow::Result<(NodeHandle, String, PeerId, PeerId)> {
    let mut config = NodeConfig::new(ws_url);
    config.key = Some(SigningKey::from_bytes(&[seed; 32]));
    let (node, mut events) = start(config).await?;
    let id = node.id().to_string();
    let mut authenticated = 0;
    while authenticated < 2 {
        next(&mut events, "authenticated connections to both pages", |e| match e {
            NodeEvent::Connected(_) => Some(()),
            _ => None,
        })
        .await?;
        authenticated += 1;
    }
    let a_peer = node.peers().await.into_iter().find(|p| p.as_str() == id_a).context("rogue connected to A")?;
    let b_peer = node.peers().await.into_iter().find(|p| p.as_str() == id_b).context("rogue connected to B")?;
    Ok((node, id, a_peer, b_peer))
}

/// Fails unless `page` still has an authenticated connection to `peer`.
async fn still_connected(page: &Page, name: &str, peer: &str) -> anyhow::Result<()> {
    let open = view(page).await?.map(|v| v.open()).unwrap_or_default();
    anyhow::ensure!(open.iter().any(|p| p == peer), "{name} lost its connection to {peer} with the rogue: {open:?}");
    Ok(())
}

/// Two data channel messages whose header is right (Pastry frame, this wire version, a
/// direct message carrying a payload) and whose body is not: a bool that is 7, and a byte
/// string announcing 2^32 - 1 bytes in a frame of a dozen.
fn malformed_bodies() -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let valid =
        Message::<AppMessage>::Direct(AppMessage::Payload(Payload { origin: Id::ZERO, text: false, data: vec![] }));
    let frame = wire::encode(&valid)?;
    // ..., origin 0, text false, data length 0.
    anyhow::ensure!(frame.ends_with(&[0, 0, 0]), "the payload's last fields moved: {frame:?}");
    let mut bad_bool = frame.clone();
    let text = bad_bool.len() - 2;
    bad_bool[text] = 7;
    let mut huge = frame[..frame.len() - 1].to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3, 4]);
    for bad in [&bad_bool, &huge] {
        anyhow::ensure!(
            matches!(wire::decode::<Message<AppMessage>>(bad), Err(wire::DecodeError::Malformed(_))),
            "not a malformed body: {bad:?}"
        );
    }
    let message = |frame: Vec<u8>| [vec![frame::PASTRY], frame].concat();
    Ok((message(bad_bool), message(huge)))
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
    let (rogue, rogue_id, a_peer, b_peer) = start_rogue(ws_url, 43, &id_a, &id_b).await?;
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

    // Valid headers, malformed bodies: decoding fails after the header, and nothing of the
    // announced 4 GiB is allocated.
    let (bad_bool, huge) = malformed_bodies()?;
    let (rogue, rogue_id, a_peer, b_peer) = start_rogue(ws_url, 44, &id_a, &id_b).await?;
    rogue.send_raw(&a_peer, Data::Bytes(bad_bool)).await?;
    let reason = refused(&a, "A", &rogue_id, "undecodable Pastry frame").await?;
    eprintln!("A dropped the rogue sending a malformed body: {reason}");
    still_connected(&a, "A", &id_b).await?;
    rogue.send_raw(&b_peer, Data::Bytes(huge)).await?;
    let reason = refused(&b, "B", &rogue_id, "undecodable Pastry frame").await?;
    eprintln!("B dropped the rogue announcing 4 GiB: {reason}");
    still_connected(&b, "B", &id_a).await?;
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
