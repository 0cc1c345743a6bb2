//! `past-node`: the native PAST node's command line. A thin CLI over the `past_node`
//! library; see its docs for what the node does and does not do yet.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use past_core::Id;
use past_core::wire::{self, Message, Routed, RoutedBody};
use past_link::{AppMessage, Payload, frame};
use past_node::proto::{PeerId, from_hex, to_hex};
use past_node::{Data, NodeConfig, NodeEvent, start};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(version, about = "The native PAST node")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Join through a signaling server, connect to the peers it introduces over WebRTC data
    /// channels, print every message received, and optionally send one to each new peer.
    Connect {
        /// WebSocket URL of the signaling server.
        #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
        signaling: String,
        /// File holding the node's Ed25519 secret key (32 bytes, raw or in hex); created with
        /// a fresh key, readable only by its owner, if it does not exist. An ephemeral key
        /// by default.
        #[arg(long, value_name = "PATH")]
        key_file: Option<std::path::PathBuf>,
        /// Text to route to every peer's nodeId once the peer is authenticated (a browser
        /// node shows it as delivered).
        #[arg(long)]
        send: Option<String>,
        /// Exit successfully after receiving this many messages.
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

/// The link messages carrying a Pastry message that routes `text` to `peer`'s nodeId.
fn routed_payload(me: &PeerId, peer: &PeerId, text: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let id = |p: &PeerId| from_hex::<16>(p.as_str()).map(Id::from_bytes).context("a peer id is not a nodeId");
    let payload = Payload { origin: id(me)?, text: true, data: text.as_bytes().to_vec() };
    let message: Message<AppMessage> =
        Message::Route(Routed { key: id(peer)?, hops: 0, body: RoutedBody::App(AppMessage::Payload(payload)) });
    Ok(frame::encode_pastry(&wire::encode(&message)?, wire::MAX_FRAME_BYTES)?)
}

/// A one-line description of a link message.
fn describe(bytes: &[u8]) -> String {
    let mut frames = frame::Reassembler::new(wire::MAX_FRAME_BYTES);
    match frames.push(bytes) {
        Ok(Some(frame::Incoming::Pastry(pastry))) => match wire::decode::<Message<AppMessage>>(&pastry) {
            Ok(Message::Route(Routed { body: RoutedBody::App(AppMessage::Payload(p)), .. })) => {
                format!("routed payload {:?}", String::from_utf8_lossy(&p.data))
            }
            Ok(message) => format!("{message:?}").chars().take(120).collect(),
            Err(err) => format!("undecodable Pastry frame: {err}"),
        },
        Ok(other) => format!("{other:?}"),
        Err(err) => format!("bad link message: {err}"),
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
    let mut received = 0;
    while let Some(event) = events.recv().await {
        match event {
            NodeEvent::Connected(peer) => {
                println!("connected to {peer} (authenticated)");
                if let Some(text) = &send {
                    for bytes in routed_payload(node.id(), &peer, text)? {
                        node.send(&peer, Data::Bytes(bytes)).await?;
                    }
                    println!("routed to {peer}: {text}");
                }
            }
            NodeEvent::AuthFailed { peer, reason } => println!("{peer} failed to authenticate: {reason}"),
            NodeEvent::Message { from, data } => {
                match data {
                    Data::Text(text) => println!("text from {from}: {text}"),
                    Data::Bytes(bytes) => println!("from {from}: {}", describe(&bytes)),
                }
                received += 1;
                if expect.is_some_and(|n| received >= n) {
                    node.close();
                }
            }
            NodeEvent::Disconnected { peer, reason } => {
                println!("disconnected from {peer}: {reason}");
            }
            NodeEvent::Error(message) => eprintln!("error: {message}"),
            NodeEvent::Closed => break,
            other => println!("{other:?}"),
        }
    }
    if let Some(n) = expect
        && received < n
    {
        bail!("the node stopped after {received} of {n} expected messages");
    }
    Ok(())
}
