//! `past-signaling`: the bootstrap signaling server and static file server of PAST in the
//! browser. A thin CLI over the `past_signaling` library; see its docs for what it serves.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use past_signaling::{Compression, Config, run, shutdown_signal};
use past_signaling_proto::IceServer;
use tracing_subscriber::EnvFilter;

/// Signaling server for PAST nodes: WebSocket at /ws, the page at /, the wasm package at
/// /pkg/, health at /health.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A STUN or TURN URL sent to clients as an ICE server (repeatable). None by default:
    /// host candidates are enough on loopback and LANs.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
    /// Directory of the page, served at /.
    #[arg(long, value_name = "DIR")]
    web_dir: Option<PathBuf>,
    /// Directory of the generated wasm package, served at /pkg/.
    #[arg(long, value_name = "DIR")]
    pkg_dir: Option<PathBuf>,
    /// Most clients registered at once.
    #[arg(long, default_value_t = 1024)]
    max_peers: usize,
    /// Compression of the page and the wasm package: `best` (brotli 11 and gzip 9, computed
    /// in the background at start and when a file changes), `fast` (brotli 4 and gzip 6, on
    /// the first request) or `off`.
    #[arg(long, value_enum, default_value_t = Level::Best)]
    compression: Level,
}

/// The values of `--compression`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Level {
    Best,
    Fast,
    Off,
}

impl From<Level> for Compression {
    fn from(level: Level) -> Self {
        match level {
            Level::Best => Compression::Best,
            Level::Fast => Compression::Fast,
            Level::Off => Compression::Off,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let args = Args::parse();
    for dir in [&args.web_dir, &args.pkg_dir].into_iter().flatten() {
        anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    }
    let config = Config {
        listen: args.listen,
        ice_servers: args.ice_servers.into_iter().map(IceServer::new).collect(),
        web_dir: args.web_dir,
        pkg_dir: args.pkg_dir,
        max_peers: args.max_peers,
        compression: args.compression.into(),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("serving http://{addr}/ (signaling at ws://{addr}/ws); Ctrl-C to stop");
    run(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
