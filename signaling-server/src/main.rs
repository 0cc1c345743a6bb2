//! `past-signaling`: the bootstrap signaling server and static file server of PAST in the
//! browser. A thin CLI over the `past_signaling` library; see its docs for what it serves.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use past_signaling::{Compression, Config, bind, raise_fd_limit, run, shutdown_signal};
use past_signaling_proto::IceServer;
use tracing_subscriber::EnvFilter;

/// The defaults of the flags: those of the library.
fn defaults() -> Config {
    Config::default()
}

/// Signaling server for PAST nodes: WebSocket at /ws, the page at / and the wasm package at
/// /pkg/, health at /health. Every limit below is per server unless it says "per address"
/// (an IPv4 address, or an IPv6 /64). Durations are in seconds (fractions allowed).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Connections the kernel queues for accept (capped by net.core.somaxconn); a burst
    /// beyond has its SYNs dropped and everyone waits for a retransmission.
    #[arg(long, default_value_t = defaults().listen_backlog)]
    listen_backlog: u32,
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
    /// Compression of the page and the wasm package: `best` (brotli 11 and gzip 9, computed
    /// in the background at start and when a file changes), `fast` (brotli 4 and gzip 6, on
    /// the first request) or `off`.
    #[arg(long, value_enum, default_value_t = Level::Best)]
    compression: Level,
    /// An origin (`https://host[:port]`) whose pages may open signaling sockets, besides the
    /// server's own (repeatable; `*` allows any). Requests without an Origin header (native
    /// nodes) are always allowed; others get 403.
    #[arg(long = "allowed-origin", value_name = "URL")]
    allowed_origins: Vec<String>,
    /// Most clients registered at once.
    #[arg(long, default_value_t = defaults().max_peers)]
    max_peers: usize,
    /// Most clients registered at once per address.
    #[arg(long, default_value_t = defaults().max_peers_per_address)]
    max_peers_per_address: usize,
    /// Most WebSockets waiting to register (a pool apart from the registered peers'); 503
    /// beyond.
    #[arg(long, default_value_t = defaults().max_unregistered)]
    max_unregistered: usize,
    /// Most WebSockets waiting to register per address; 429 beyond.
    #[arg(long, default_value_t = defaults().max_unregistered_per_address)]
    max_unregistered_per_address: usize,
    /// Most HTTP connections not upgraded to a WebSocket (page loads, /health, idle
    /// keep-alive); a new connection beyond is closed at once.
    #[arg(long, default_value_t = defaults().max_connections)]
    max_connections: usize,
    /// Most HTTP connections not upgraded per address.
    #[arg(long, default_value_t = defaults().max_connections_per_address)]
    max_connections_per_address: usize,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, value_name = "SECS", default_value_t = Secs(defaults().header_read_timeout))]
    header_read_timeout: Secs,
    /// Seconds a new WebSocket has to register (then closed with 1008).
    #[arg(long, value_name = "SECS", default_value_t = Secs(defaults().register_timeout))]
    register_timeout: Secs,
    /// Seconds between the server's pings on every WebSocket.
    #[arg(long, value_name = "SECS", default_value_t = Secs(defaults().ping_interval))]
    ping_interval: Secs,
    /// Seconds of silence (no message, no pong) after which a registered WebSocket is closed
    /// (1001) and its id freed.
    #[arg(long, value_name = "SECS", default_value_t = Secs(defaults().idle_timeout))]
    idle_timeout: Secs,
    /// Peers listed in a welcome message.
    #[arg(long, default_value_t = defaults().welcome_peers)]
    welcome_peers: usize,
    /// Frames (messages, pings, pongs) a client may send per second on average.
    #[arg(long, default_value_t = defaults().rate_per_second)]
    rate_per_second: f64,
    /// Frames a client may send in a burst.
    #[arg(long, default_value_t = defaults().rate_burst)]
    rate_burst: f64,
    /// Bytes of messages queued for one client; relays to a full queue get `peer_busy`.
    #[arg(long, value_name = "BYTES", default_value_t = defaults().queue_bytes)]
    queue_bytes: usize,
    /// Largest WebSocket frame or message; beyond, the socket is closed with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = defaults().max_frame_bytes)]
    max_frame_bytes: usize,
    /// The kernel's send buffer of each WebSocket (SO_SNDBUF); 0 keeps the kernel's default,
    /// which grows to megabytes for a client that does not read.
    #[arg(long, value_name = "BYTES", default_value_t = defaults().socket_send_buffer)]
    socket_send_buffer: usize,
    /// Violations (malformed, oversized or binary messages, frames beyond the rate, failed
    /// registrations) a client may commit per --violation-window; one more closes its socket
    /// with 1008.
    #[arg(long, default_value_t = defaults().max_violations)]
    max_violations: u32,
    /// The window of --max-violations, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = Secs(defaults().violation_window))]
    violation_window: Secs,
    /// Seconds between summary log lines; a misbehaving client gets at most one line per
    /// interval.
    #[arg(long, value_name = "SECS", default_value_t = Secs(defaults().log_interval))]
    log_interval: Secs,
    /// Most per-client log lines per interval (the rest are counted in the summary).
    #[arg(long, default_value_t = defaults().log_lines_per_interval)]
    log_lines_per_interval: u32,
}

/// A duration given in seconds on the command line.
#[derive(Clone, Copy, Debug)]
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

impl FromStr for Secs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
        Duration::try_from_secs_f64(secs).map(Secs).map_err(|_| format!("{s:?} is not a duration"))
    }
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
        listen_backlog: args.listen_backlog,
        ice_servers: args.ice_servers.into_iter().map(IceServer::new).collect(),
        web_dir: args.web_dir,
        pkg_dir: args.pkg_dir,
        compression: args.compression.into(),
        allowed_origins: args.allowed_origins,
        max_peers: args.max_peers,
        max_peers_per_address: args.max_peers_per_address,
        max_unregistered: args.max_unregistered,
        max_unregistered_per_address: args.max_unregistered_per_address,
        max_connections: args.max_connections,
        max_connections_per_address: args.max_connections_per_address,
        header_read_timeout: args.header_read_timeout.0,
        register_timeout: args.register_timeout.0,
        ping_interval: args.ping_interval.0,
        idle_timeout: args.idle_timeout.0,
        welcome_peers: args.welcome_peers,
        rate_per_second: args.rate_per_second,
        rate_burst: args.rate_burst,
        queue_bytes: args.queue_bytes,
        max_frame_bytes: args.max_frame_bytes,
        socket_send_buffer: args.socket_send_buffer,
        max_violations: args.max_violations,
        violation_window: args.violation_window.0,
        log_interval: args.log_interval.0,
        log_lines_per_interval: args.log_lines_per_interval,
        ..defaults()
    };
    // Room for the caps: the server sizes them to the open-file limit.
    match raise_fd_limit() {
        Ok(limit) => tracing::info!("open-file limit: {limit}"),
        Err(err) => tracing::warn!("cannot raise the open-file limit: {err}"),
    }
    let listener = bind(&config).with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!("serving http://{addr}/ (signaling at ws://{addr}/ws); Ctrl-C to stop");
    run(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
