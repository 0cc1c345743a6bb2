//! `past-node`: the native PAST node's command line. A thin CLI over the `past_node`
//! library; see its docs for what the node does and does not do yet.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use past_node::proto::PeerId;
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
        /// Peer id to register (random by default).
        #[arg(long)]
        peer_id: Option<String>,
        /// Text to send to every peer once its data channel opens.
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
        Cmd::Connect { signaling, peer_id, send, expect, timeout } => {
            let mut config = NodeConfig::new(signaling);
            config.peer_id = peer_id.map(PeerId::new).transpose()?;
            let work = connect(config, send, expect);
            tokio::select! {
                result = work => result,
                () = deadline(timeout) => bail!("timed out after {timeout} s"),
                result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
            }
        }
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
                println!("connected to {peer}");
                if let Some(text) = &send {
                    node.send(&peer, Data::Text(text.clone())).await?;
                    println!("sent to {peer}: {text}");
                }
            }
            NodeEvent::Message { from, data } => {
                match data {
                    Data::Text(text) => println!("message from {from}: {text}"),
                    Data::Bytes(bytes) => println!("message from {from}: <{} bytes>", bytes.len()),
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
