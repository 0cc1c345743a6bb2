//! The bootstrap signaling server of PAST in the browser, as a library (the `past-signaling`
//! binary is a thin CLI around it, and tests start it in-process on port 0).
//!
//! It does three things over HTTP on one address:
//! - `GET /ws`: WebSocket signaling. The server sends a challenge; a client registers its
//!   nodeId with its Ed25519 public key and a signature over the challenge (the server checks
//!   both, and that the nodeId is the one `past_core::Id::from_public_key` derives from the
//!   key), learns the registered nodes numerically closest to it (candidates for its join
//!   contact) and the configured ICE servers, and relays SDP offers, answers and ICE
//!   candidates to other registered clients. The messages are those of
//!   [`past_signaling_proto`]. A client is forgotten when its socket closes.
//! - `GET /` and `GET /pkg/...`: the static files of the page (`--web-dir`) and of the
//!   generated wasm package (`--pkg-dir`), with the right MIME types (`application/wasm`),
//!   compressed and revalidated as described below.
//! - `GET /health`: a JSON status for probes and tests.
//!
//! The page's files: text, JavaScript, JSON, SVG and wasm files of at least
//! [`MIN_COMPRESS_BYTES`] go out with brotli or gzip as the request's `Accept-Encoding`
//! allows (the higher weight, brotli on a tie; identity when neither is acceptable), with
//! `Vary: Accept-Encoding`. Each version of each file is compressed once and kept in memory
//! ([`Compression::Best`], the default: brotli 11 and gzip 9, every file compressed in the
//! background when the server starts; [`Compression::Fast`]: brotli 4 and gzip 6, when a
//! request first needs it), so no request pays for compression more than once. Every file
//! carries `Cache-Control: no-cache` and a strong `ETag`, for these files a hash of their
//! contents plus the coding: a returning browser revalidates each file on each visit and gets
//! `304 Not Modified` with no body while it is unchanged, and the new bytes as soon as it
//! changed (even with the same size and modification time), so the JS glue and the wasm it
//! runs always come from the same build. Other files (images, anything over
//! [`MAX_IN_MEMORY`]) are streamed as they are, with [`tower_http::services::ServeDir`]'s
//! validator. `/ws` and `/health` are never compressed. Sizes and second-visit bytes:
//! `docs/page-delivery.md`.
//!
//! It is **not** a Pastry node and never sees application data: it only introduces nodes to
//! each other for their first connection (once joined, nodes signal through the overlay). It
//! keeps no state beyond the connected sockets.
//!
//! Limits (every one a field of [`Config`] and a flag of the binary; what each defends
//! against: `docs/signaling-hardening.md`):
//! - admission by pools bounded globally and per remote address (an IPv4 address or an IPv6
//!   /64): HTTP connections not upgraded ([`Config::max_connections`], closed at once beyond),
//!   WebSockets not registered yet ([`Config::max_unregistered`], a pool of their own so they
//!   never take the registered peers' room; 429 or 503 beyond) and registered clients
//!   ([`Config::max_peers`]; `server_full` beyond). The caps are fitted to the open-file limit
//!   at start ([`raise_fd_limit`] raises it), and the accept loop survives `EMFILE`;
//! - time: request headers within [`Config::header_read_timeout`] (also the keep-alive idle
//!   time), `register` within [`Config::register_timeout`]; the server pings every socket every
//!   [`Config::ping_interval`] and closes a registered one silent for [`Config::idle_timeout`],
//!   so a dead connection frees its id within seconds (and a new registration of an id whose
//!   socket missed a ping replaces it at once);
//! - each client may send [`Config::rate_per_second`] frames a second on average (a token
//!   bucket of [`Config::rate_burst`]; pings and pongs count), frames up to
//!   [`Config::max_frame_bytes`] (1009 beyond; invalid UTF-8: 1007), and has an outgoing
//!   queue of [`Config::queue_bytes`] (a relay to a full queue gets `peer_busy`) and a
//!   kernel send buffer of [`Config::socket_send_buffer`];
//! - violations (malformed, oversized or binary messages, frames beyond the rate, failed
//!   registrations) are counted per client: past [`Config::max_violations`] within
//!   [`Config::violation_window`] the socket is closed with 1008;
//! - logging is summarized: at most one line per misbehaving client per
//!   [`Config::log_interval`], and one summary of refusals and departures per interval;
//! - only pages of the server's own origin (or of [`Config::allowed_origins`]) may open
//!   signaling sockets (403 otherwise); requests without `Origin` (native nodes) are allowed.
//!
//! Malformed messages get a JSON [`past_signaling_proto::ServerMessage::Error`]; they never
//! bring the server down.
//!
//! Modules, one concept each: `config` (the limits and their defaults), `server` (the accept
//! loop, [`run`], [`ServerHandle`]), `fd_limit` (the open-file limit), `admission` (pools
//! bounded globally and per address), `origin` (allowed origins), `upgrade` (the WebSocket
//! handshake), `socket` (one WebSocket: reader, writer, close codes), `hub` (who is
//! registered, relays, replacing silent sockets), `outbox` (queues bounded in bytes),
//! `conduct` (one client's rate limit, violations and log line), `stats` (the summary lines),
//! `static_files` (the page).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use past_signaling::{Config, ServerHandle};
//! let server = ServerHandle::spawn(Config::loopback_ephemeral()).await?;
//! println!("ws://{}/ws", server.local_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::handler::Handler as _;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use past_signaling_proto::PROTOCOL_VERSION;
use tokio::sync::{mpsc, watch};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

mod admission;
mod conduct;
mod config;
mod fd_limit;
mod hub;
mod origin;
mod outbox;
mod server;
mod socket;
mod static_files;
mod stats;
mod upgrade;

pub use config::{Config, MAX_FRAME_BYTES, QUEUE_BYTES, SOCKET_SEND_BUFFER};
pub use fd_limit::raise_fd_limit;
pub use server::{ServerHandle, bind, run, shutdown_signal};
use static_files::StaticFiles;
pub use static_files::{Compression, MAX_IN_MEMORY, MIN_COMPRESS_BYTES};

/// What every connection and socket of one server shares.
pub(crate) struct Shared {
    /// The configuration, its caps fitted to the open-file limit.
    pub(crate) config: Config,
    pub(crate) hub: hub::Hub,
    /// HTTP connections not upgraded.
    pub(crate) connections: Arc<admission::Pool>,
    /// WebSockets not registered yet.
    pub(crate) unregistered: Arc<admission::Pool>,
    pub(crate) stats: stats::Stats,
    pub(crate) origins: origin::AllowedOrigins,
    pub(crate) clock: hub::Clock,
    pub(crate) next_conn: AtomicU64,
    /// Turns `true` at shutdown: every WebSocket closes (and the page's warm-up stops).
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Cloned by every connection and socket task; [`run`] waits until all clones are gone.
    pub(crate) alive: mpsc::Sender<()>,
}

impl Shared {
    fn new(config: Config, shutdown: watch::Receiver<bool>, alive: mpsc::Sender<()>) -> Arc<Self> {
        let clock = hub::Clock::new();
        Arc::new(Self {
            hub: hub::Hub::new(&config, clock),
            connections: admission::Pool::new(config.max_connections, config.max_connections_per_address),
            unregistered: admission::Pool::new(config.max_unregistered, config.max_unregistered_per_address),
            stats: stats::Stats::new(config.log_lines_per_interval),
            origins: origin::AllowedOrigins::new(&config.allowed_origins),
            clock,
            next_conn: AtomicU64::new(1),
            shutdown,
            alive,
            config,
        })
    }

    fn gauges(&self) -> stats::Gauges {
        stats::Gauges {
            peers: self.hub.peer_count(),
            unregistered: self.unregistered.in_use(),
            connections: self.connections.in_use(),
        }
    }
}

/// The axum router of the server: `/ws`, `/health`, and the page's files.
fn router(shared: Arc<Shared>) -> Router {
    let config = &shared.config;
    let dirs = [("/pkg", config.pkg_dir.clone()), ("", config.web_dir.clone())];
    let compression = config.compression;
    let mut app = Router::new().route("/ws", get(socket::ws_handler)).route("/health", get(health));
    for (mount, dir) in dirs {
        let Some(dir) = dir else { continue };
        let files = Arc::new(StaticFiles::new(dir, mount, compression));
        if compression == Compression::Best {
            tokio::spawn(files.clone().warm(shared.shutdown.clone()));
        }
        let service = static_files::serve.with_state(files);
        app = if mount.is_empty() { app.fallback_service(service) } else { app.nest_service(mount, service) };
    }
    app.with_state(shared)
        // The page's files set their own `no-cache` (with an ETag); everything else gets it here.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(TraceLayer::new_for_http())
}

async fn health(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let gauges = shared.gauges();
    Json(serde_json::json!({
        "status": "ok",
        "protocol": PROTOCOL_VERSION,
        "overlay": past_link::version::version_text(shared.config.overlay_version),
        "peers": gauges.peers,
        "sockets": gauges.peers + gauges.unregistered,
        "unregistered": gauges.unregistered,
        "connections": gauges.connections,
        "max_peers": shared.config.max_peers,
    }))
}
