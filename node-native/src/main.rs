//! `past-node`: the native node's command line. A thin CLI over the `past_node` library (a
//! Pastry node of the browsers' overlay; not yet a PAST storage node): see its docs.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use past_link::Payload;
use past_node::proto::{from_hex, to_hex};
use past_node::{NodeConfig, NodeEvent, start};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(version, about = "The native PAST node")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Register with a signaling server, join the Pastry overlay through the nodes it names
    /// (WebRTC data channels), print every payload routed to this node, and optionally route
    /// one to each peer that connects.
    Connect {
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
    },
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rtc=warn,rtc_ice=error,rtc_dtls=error,webrtc=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Connect { signaling, key_file, send, expect, timeout } => {
            let mut config = NodeConfig::new(signaling);
            if let Some(path) = key_file {
                config.key = Some(load_or_create_key(&path)?);
            }
            let work = connect(config, send, expect);
            tokio::select! {
                result = work => result,
                () = deadline(timeout) => bail!("timed out after {timeout} s"),
                result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
            }
        }
    }
}

/// Reads the key file, or writes a fresh key to it (mode 0600 on Unix).
fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let seed: [u8; 32] = match bytes.len() {
                32 => bytes.as_slice().try_into()?,
                _ => from_hex::<32>(text.trim())
                    .with_context(|| format!("{} holds neither 32 bytes nor 64 hex digits", path.display()))?,
            };
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let seed = rand::random::<[u8; 32]>();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
            std::io::Write::write_all(&mut file, to_hex(&seed).as_bytes())?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
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
