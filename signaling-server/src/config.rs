//! What the server serves and every limit it enforces ([`Config`]), with the defaults.
//!
//! Each limit is a flag of the `past-signaling` binary (`src/main.rs`); what each one defends
//! against is in `docs/signaling-hardening.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use past_signaling_proto::{IceServer, MAX_MESSAGE_BYTES};

use crate::static_files::Compression;

/// Default largest WebSocket frame or message accepted at all ([`Config::max_frame_bytes`]);
/// a larger one closes the socket with 1009. Between [`MAX_MESSAGE_BYTES`] and this, the
/// client gets a JSON `too_large` error instead (and a violation is counted).
pub const MAX_FRAME_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

/// Default bytes of signaling messages queued for one client ([`Config::queue_bytes`]):
/// four offers of the largest SDP, or hundreds of ICE candidates.
pub const QUEUE_BYTES: usize = 64 * 1024;

/// Default kernel send buffer of a WebSocket ([`Config::socket_send_buffer`]).
pub const SOCKET_SEND_BUFFER: usize = 32 * 1024;

/// What the server serves and how, and its limits. Build one with struct update syntax:
/// `Config { max_peers: 64, ..Config::loopback_ephemeral() }`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (see [`crate::ServerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Connections the kernel holds for `accept` ([`crate::bind`]; Linux caps it at
    /// `net.core.somaxconn`, 4096 by default): a burst of connections beyond it has its SYNs
    /// dropped, and everyone's connection, honest ones too, waits for a retransmission (1 s).
    pub listen_backlog: u32,
    /// ICE servers sent to every client in its welcome message. Empty by default: host
    /// candidates suffice on loopback and LANs, and nothing should contact a third party
    /// unless the operator says so.
    pub ice_servers: Vec<IceServer>,
    /// The overlay version of the page it serves, announced in every welcome so that a tab
    /// of another version learns it should reload: this build's
    /// [`past_link::OVERLAY_VERSION`] by default, which is right when the page comes from the
    /// same checkout (`cargo xtask run`).
    pub overlay_version: u32,
    /// Directory served at `/` (the page), if any.
    pub web_dir: Option<PathBuf>,
    /// Directory served at `/pkg/` (the wasm-bindgen output), if any.
    pub pkg_dir: Option<PathBuf>,
    /// Most clients registered at once, from all addresses.
    pub max_peers: usize,
    /// Most clients registered at once from one address (an IPv4 address, or an IPv6 /64).
    pub max_peers_per_address: usize,
    /// Most WebSockets open but not registered yet, from all addresses: a pool of its own,
    /// so sockets that never register cannot take the room of registered peers.
    pub max_unregistered: usize,
    /// Most WebSockets open but not registered yet from one address.
    pub max_unregistered_per_address: usize,
    /// Most HTTP connections accepted and not (yet) upgraded to a WebSocket, from all
    /// addresses (page loads, `/health`, handshakes in progress, idle keep-alive).
    pub max_connections: usize,
    /// Most such HTTP connections from one address; beyond, a new connection is closed at
    /// once.
    pub max_connections_per_address: usize,
    /// How long a client may take to send a request's headers (and how long an idle
    /// keep-alive connection stays open); then the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a new socket may take to send `register`.
    pub register_timeout: Duration,
    /// The server pings every socket this often (browsers and tokio-tungstenite answer by
    /// themselves).
    pub ping_interval: Duration,
    /// A registered socket that sent nothing (no message, no pong) for this long is closed
    /// (1001) and its id freed.
    pub idle_timeout: Duration,
    /// Peers listed in a welcome message (at most [`past_signaling_proto::MAX_WELCOME_PEERS`]).
    pub welcome_peers: usize,
    /// Frames (messages, pings, pongs) a client may send per second, on average.
    pub rate_per_second: f64,
    /// Frames a client may send in a burst.
    pub rate_burst: f64,
    /// Bytes of messages queued for one client; a relay to a client whose queue is full gets
    /// `peer_busy`.
    pub queue_bytes: usize,
    /// Largest WebSocket frame or message; a larger one closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// The kernel's send buffer of each WebSocket (`SO_SNDBUF`, which Linux doubles), in
    /// bytes; 0 leaves the kernel's default, which grows to megabytes for a client that does
    /// not read. Signaling needs little: its messages are small and few.
    pub socket_send_buffer: usize,
    /// Violations (malformed or oversized messages, binary frames, frames beyond the rate,
    /// failed registrations) a client may commit within [`Config::violation_window`]; one
    /// more and its socket is closed with 1008.
    pub max_violations: u32,
    /// The window of [`Config::max_violations`] (the allowance refills at that many per
    /// window).
    pub violation_window: Duration,
    /// At most one log line per misbehaving client per interval, and one summary of
    /// refusals and departures per interval.
    pub log_interval: Duration,
    /// Most per-client summary lines in one [`Config::log_interval`]; the rest are folded
    /// into the interval's summary line.
    pub log_lines_per_interval: u32,
    /// Origins (`scheme://host[:port]`) whose pages may open signaling sockets, besides the
    /// server's own origin (an `Origin` whose host and port are the request's `Host`). `*`
    /// allows any. Requests without an `Origin` header (native nodes, scripts) are always
    /// allowed.
    pub allowed_origins: Vec<String>,
    /// How the files of `web_dir` and `pkg_dir` are compressed ([`Compression::Best`] by
    /// default).
    pub compression: Compression,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            listen_backlog: 4096,
            ice_servers: Vec::new(),
            overlay_version: past_link::OVERLAY_VERSION,
            web_dir: None,
            pkg_dir: None,
            max_peers: 1024,
            max_peers_per_address: 64,
            max_unregistered: 64,
            max_unregistered_per_address: 16,
            max_connections: 1024,
            max_connections_per_address: 128,
            header_read_timeout: Duration::from_secs(10),
            register_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            welcome_peers: 8,
            rate_per_second: 20.0,
            rate_burst: 60.0,
            queue_bytes: QUEUE_BYTES,
            max_frame_bytes: MAX_FRAME_BYTES,
            socket_send_buffer: SOCKET_SEND_BUFFER,
            max_violations: 50,
            violation_window: Duration::from_secs(60),
            log_interval: Duration::from_secs(10),
            log_lines_per_interval: 20,
            allowed_origins: Vec::new(),
            compression: Compression::Best,
        }
    }
}

impl Config {
    /// The defaults, listening on 127.0.0.1 with a port chosen by the OS, and
    /// [`Compression::Fast`] (for tests: brotli's best level takes about 20 s for the 1 MB
    /// module in a debug build, and would run at every start).
    pub fn loopback_ephemeral() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 0)), compression: Compression::Fast, ..Self::default() }
    }

    /// How long a registered socket must have been silent for a new registration of its id
    /// to replace it: one and a half ping intervals (a live client answers every ping), at
    /// least a second, at most the idle timeout.
    pub(crate) fn takeover_after(&self) -> Duration {
        (self.ping_interval * 3 / 2).max(Duration::from_secs(1)).min(self.idle_timeout)
    }
}
