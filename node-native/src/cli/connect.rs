//! `connect`: join the overlay without a store and print the payloads routed to this node
//! (a debugging tool; the end-to-end tests use it).

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use past_link::Payload;
use past_node::proto::from_hex;
use past_node::{NodeConfig, NodeEvent, start};

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// WebSocket URL of the signaling server.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    signaling: String,
    /// File holding the node's Ed25519 secret key (32 bytes, raw or in hex); created with
    /// a fresh key, readable only by its owner, if it does not exist. An ephemeral key
    /// by default.
    #[arg(long, value_name = "PATH")]
    key_file: Option<std::path::PathBuf>,
    /// Text to route to every connected peer's nodeId once joined (a browser node shows
    /// it as delivered).
    #[arg(long)]
    send: Option<String>,
    /// Exit successfully after this many payloads were delivered to this node.
    #[arg(long)]
    expect: Option<usize>,
    /// Give up (exit status 1) after this many seconds; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 0)]
    timeout: u64,
}

pub(crate) async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let ConnectArgs { signaling, key_file, send, expect, timeout } = args;
    let mut config = NodeConfig::new(signaling);
    if let Some(path) = key_file {
        config.key = Some(past_node::key_file::load_or_create(&path)?);
    }
    let work = connect(config, send, expect);
    tokio::select! {
        result = work => result,
        () = deadline(timeout) => bail!("timed out after {timeout} s"),
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
    }
}

async fn deadline(secs: u64) {
    if secs == 0 {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

async fn connect(config: NodeConfig, send: Option<String>, expect: Option<usize>) -> anyhow::Result<()> {
    let (node, mut events) = start(config).await?;
    println!("registered as {}", node.id());
    let (mut joined, mut waiting, mut received) = (false, Vec::new(), 0);
    while let Some(event) = events.recv().await {
        match event {
            NodeEvent::Connected(peer) => {
                println!("connected to {peer} (authenticated)");
                waiting.push(peer);
            }
            NodeEvent::Joined => {
                println!("joined the overlay");
                joined = true;
            }
            NodeEvent::Delivered { key, hops, payload, origin_verified } => {
                let data = match payload.text {
                    true => format!("{:?}", String::from_utf8_lossy(&payload.data)),
                    false => format!("{} bytes", payload.data.len()),
                };
                let proof = if origin_verified { "verified" } else { "claimed" };
                println!("delivered (key {key}, {hops} hops) from {} ({proof}): {data}", payload.origin);
                received += 1;
                if expect.is_some_and(|n| received >= n) {
                    node.close();
                }
            }
            NodeEvent::Refused { peer, reason } => println!("refused {peer}: {reason}"),
            NodeEvent::Disconnected { peer, reason } => println!("disconnected from {peer}: {reason}"),
            NodeEvent::Error(message) => eprintln!("error: {message}"),
            NodeEvent::Closed => break,
            other => println!("{other:?}"),
        }
        if let Some(text) = send.as_deref().filter(|_| joined) {
            for peer in waiting.drain(..) {
                let key = from_hex::<16>(peer.as_str()).map(past_core::Id::from_bytes).context("a peer id")?;
                let payload = Payload { origin: node.node_id(), text: true, data: text.as_bytes().to_vec() };
                match node.route(key, payload).await {
                    Ok(()) => println!("routed to {peer}: {text}"),
                    Err(err) => eprintln!("cannot route to {peer}: {err}"),
                }
            }
        }
    }
    if let Some(n) = expect
        && received < n
    {
        bail!("the node stopped after {received} of {n} expected deliveries");
    }
    Ok(())
}
