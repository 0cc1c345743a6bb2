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
//! Limits: signaling messages larger than [`MAX_MESSAGE_BYTES`] get a JSON error (frames over
//! [`MAX_FRAME_BYTES`] close the socket), at most [`Config::max_peers`] clients are
//! registered at once (and [`EXTRA_SOCKETS`] more may wait to register, each for at most
//! [`Config::register_timeout`]), each client may send [`Config::rate_per_second`] messages a
//! second on average (a token bucket of [`Config::rate_burst`]; beyond, messages are dropped
//! with a `rate_limited` error), and each
//! client has a bounded outgoing queue ([`CLIENT_QUEUE`]) so a slow reader cannot make the
//! server buffer without bound. Malformed messages get a JSON [`ServerMessage::Error`]; they
//! never bring the server down.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use past_signaling::{Config, ServerHandle};
//! let server = ServerHandle::spawn(Config::loopback_ephemeral()).await?;
//! println!("ws://{}/ws", server.local_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::handler::Handler as _;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ed25519_dalek::{Signature, VerifyingKey};
use futures::{SinkExt, StreamExt};
use past_core::Id;
use past_signaling_proto::{
    CHALLENGE_BYTES, ClientMessage, ErrorCode, IceServer, MAX_MESSAGE_BYTES, MAX_WELCOME_PEERS, PROTOCOL_VERSION,
    PeerId, ServerMessage, from_hex, register_transcript, to_hex,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

mod static_files;

use static_files::StaticFiles;
pub use static_files::{Compression, MAX_IN_MEMORY, MIN_COMPRESS_BYTES};

/// Largest WebSocket frame or message accepted at all; a larger one closes the socket.
/// Between [`MAX_MESSAGE_BYTES`] and this, the client gets a JSON `too_large` error instead.
pub const MAX_FRAME_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

/// WebSockets allowed beyond [`Config::max_peers`] (sockets that have not registered yet;
/// each has [`Config::register_timeout`] to do so).
pub const EXTRA_SOCKETS: usize = 64;

/// Capacity of each client's outgoing message queue.
pub const CLIENT_QUEUE: usize = 256;

/// How long [`ServerHandle::shutdown`] and [`run`] wait for open WebSockets to close.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// What the server serves and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (see [`ServerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// ICE servers sent to every client in its welcome message. Empty by default: host
    /// candidates suffice on loopback and LANs, and nothing should contact a third party
    /// unless the operator says so.
    pub ice_servers: Vec<IceServer>,
    /// Directory served at `/` (the page), if any.
    pub web_dir: Option<PathBuf>,
    /// Directory served at `/pkg/` (the wasm-bindgen output), if any.
    pub pkg_dir: Option<PathBuf>,
    /// Most clients registered at once.
    pub max_peers: usize,
    /// How long a new socket may take to send `register`.
    pub register_timeout: Duration,
    /// Peers listed in a welcome message (at most [`MAX_WELCOME_PEERS`]).
    pub welcome_peers: usize,
    /// Messages a client may send per second, on average.
    pub rate_per_second: f64,
    /// Messages a client may send in a burst.
    pub rate_burst: f64,
    /// How the files of `web_dir` and `pkg_dir` are compressed ([`Compression::Best`] by
    /// default).
    pub compression: Compression,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ice_servers: Vec::new(),
            web_dir: None,
            pkg_dir: None,
            max_peers: 1024,
            register_timeout: Duration::from_secs(10),
            welcome_peers: 8,
            rate_per_second: 20.0,
            rate_burst: 60.0,
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
}

/// A registered client as the hub knows it.
struct Client {
    /// Distinguishes successive sockets that registered the same id.
    conn: u64,
    peer: PeerId,
    tx: mpsc::Sender<ServerMessage>,
}

/// Shared state: who is connected.
struct Hub {
    config: Config,
    /// Registered clients by nodeId, in ring order.
    clients: Mutex<BTreeMap<u128, Client>>,
    next_id: AtomicU64,
    /// Open WebSockets, registered or not.
    sockets: AtomicUsize,
    shutdown: watch::Receiver<bool>,
    /// Cloned into every socket task; [`run`] waits until all clones are gone.
    _alive: mpsc::Sender<()>,
}

impl Hub {
    fn clients(&self) -> MutexGuard<'_, BTreeMap<u128, Client>> {
        // A panic while holding the lock cannot leave the map inconsistent (every critical
        // section is a single insert/remove/lookup), so a poisoned lock is still usable.
        self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn register(
        &self,
        peer: &PeerId,
        conn: u64,
        tx: &mpsc::Sender<ServerMessage>,
    ) -> Result<Vec<PeerId>, (ErrorCode, String)> {
        let id = node_id(peer).ok_or_else(|| (ErrorCode::Unauthenticated, format!("{peer} is not a hex nodeId")))?;
        let mut clients = self.clients();
        if clients.contains_key(&id) {
            return Err((ErrorCode::PeerIdTaken, format!("peer id {peer} is already registered")));
        }
        if clients.len() >= self.config.max_peers {
            return Err((
                ErrorCode::ServerFull,
                format!("the server holds its maximum of {} peers", self.config.max_peers),
            ));
        }
        let closest = closest(&clients, id, self.config.welcome_peers.min(MAX_WELCOME_PEERS));
        clients.insert(id, Client { conn, peer: peer.clone(), tx: tx.clone() });
        Ok(closest)
    }

    fn unregister(&self, peer: &PeerId, conn: u64) {
        let Some(id) = node_id(peer) else { return };
        let mut clients = self.clients();
        if clients.get(&id).is_some_and(|c| c.conn == conn) {
            clients.remove(&id);
        }
    }

    fn relay(&self, from: &PeerId, to: &PeerId, msg: ServerMessage) -> Result<(), ErrorCode> {
        let clients = self.clients();
        let Some(client) = node_id(to).and_then(|id| clients.get(&id)) else {
            return Err(ErrorCode::UnknownPeer);
        };
        client.tx.try_send(msg).map_err(|_| {
            tracing::warn!(%from, %to, "recipient's queue is full; signal dropped");
            ErrorCode::PeerBusy
        })
    }

    fn peer_count(&self) -> usize {
        self.clients().len()
    }
}

/// The nodeId a registered peer id stands for (32 hex digits).
fn node_id(peer: &PeerId) -> Option<u128> {
    from_hex::<16>(peer.as_str()).map(u128::from_be_bytes)
}

/// Up to `count` registered ids numerically closest to `id` on the ring, closest first.
fn closest(clients: &BTreeMap<u128, Client>, id: u128, count: usize) -> Vec<PeerId> {
    let own = Id::from_u128(id);
    // The closest on each side are among the `count` successors and `count` predecessors.
    let after = clients.range(id..).chain(clients.range(..id)).take(count);
    let before = clients.range(..id).rev().chain(clients.range(id..).rev()).take(count);
    let mut found: Vec<(u128, &PeerId)> = after.chain(before).map(|(k, c)| (*k, &c.peer)).collect();
    found.sort_unstable_by_key(|(k, _)| (own.ring_distance(Id::from_u128(*k)), *k));
    found.dedup_by_key(|(k, _)| *k);
    found.into_iter().take(count).map(|(_, p)| p.clone()).collect()
}

/// Checks a registration: `peer` is the nodeId of `public_key`, and `signature` signs the
/// challenge.
fn verify_registration(nonce: &str, peer: &PeerId, public_key: &str, signature: &str) -> Result<(), String> {
    let key = from_hex::<32>(public_key).ok_or("public_key is not 32 bytes of hex")?;
    let signature = from_hex::<64>(signature).ok_or("signature is not 64 bytes of hex")?;
    let derived = Id::from_public_key(&key);
    if to_hex(&derived.to_bytes()) != peer.as_str() {
        return Err(format!("{peer} is not the nodeId of this key (that is {derived:?})"));
    }
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "public_key is not a valid Ed25519 key")?;
    key.verify_strict(&register_transcript(nonce, peer), &Signature::from_bytes(&signature))
        .map_err(|_| "the signature does not verify".to_string())
}

/// A token bucket: `rate` tokens a second, at most `burst`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(burst: f64) -> Self {
        Bucket { tokens: burst, at: Instant::now() }
    }

    fn take(&mut self, rate: f64, burst: f64) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The axum router of the server, with its shared state. `shutdown` turning `true` makes
/// every WebSocket close (and stops the warm-up of the page's files); `alive` is held by
/// every socket task until it ends.
fn router(config: Config, shutdown: watch::Receiver<bool>, alive: mpsc::Sender<()>) -> Router {
    let dirs = [("/pkg", config.pkg_dir.clone()), ("", config.web_dir.clone())];
    let compression = config.compression;
    let hub = Arc::new(Hub {
        config,
        clients: Mutex::new(BTreeMap::new()),
        next_id: AtomicU64::new(1),
        sockets: AtomicUsize::new(0),
        shutdown: shutdown.clone(),
        _alive: alive,
    });
    let mut app = Router::new().route("/ws", get(ws_handler)).route("/health", get(health));
    for (mount, dir) in dirs {
        let Some(dir) = dir else { continue };
        let files = Arc::new(StaticFiles::new(dir, mount, compression));
        if compression == Compression::Best {
            tokio::spawn(files.clone().warm(shutdown.clone()));
        }
        let service = static_files::serve.with_state(files);
        app = if mount.is_empty() { app.fallback_service(service) } else { app.nest_service(mount, service) };
    }
    app.with_state(hub)
        // The page's files set their own `no-cache` (with an ETag); everything else gets it here.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(TraceLayer::new_for_http())
}

async fn health(State(hub): State<Arc<Hub>>) -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "ok",
        "protocol": PROTOCOL_VERSION,
        "peers": hub.peer_count(),
        "sockets": hub.sockets.load(Ordering::Relaxed),
        "max_peers": hub.config.max_peers,
    }))
}

/// Counts one open WebSocket for as long as it lives.
struct SocketSlot(Arc<Hub>);

impl SocketSlot {
    fn take(hub: &Arc<Hub>) -> Option<Self> {
        let max = hub.config.max_peers.saturating_add(EXTRA_SOCKETS);
        hub.sockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Self(hub.clone()))
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn ws_handler(ws: WebSocketUpgrade, State(hub): State<Arc<Hub>>) -> axum::response::Response {
    let Some(slot) = SocketSlot::take(&hub) else {
        tracing::warn!("refusing a WebSocket: too many open");
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "too many signaling connections").into_response();
    };
    // Small buffers: a signaling message is about 1 KB, and a thousand idle sockets should
    // not each hold tungstenite's default 128 KiB read buffer.
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_FRAME_BYTES * 4)
        .on_upgrade(move |socket| async move {
            handle_socket(socket, hub).await;
            drop(slot);
        })
}

/// One client: a writer task drains its queue into the socket; this task reads.
async fn handle_socket(socket: WebSocket, hub: Arc<Hub>) {
    let conn = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<ServerMessage>(CLIENT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let text = Utf8Bytes::from(msg.to_json());
            if sink.send(Message::Text(text)).await.is_err() {
                return;
            }
        }
        // Queue closed: the reader is done. Say goodbye properly.
        let _ = sink.send(Message::Close(Some(CloseFrame { code: 1000, reason: Utf8Bytes::from_static("bye") }))).await;
        let _ = sink.close().await;
    });

    let mut shutdown = hub.shutdown.clone();
    let register_deadline = tokio::time::sleep(hub.config.register_timeout);
    tokio::pin!(register_deadline);
    let mut me: Option<PeerId> = None;
    let nonce = to_hex(&rand::random::<[u8; CHALLENGE_BYTES]>());
    let _ = tx.try_send(ServerMessage::Challenge { nonce: nonce.clone() });
    let mut bucket = Bucket::new(hub.config.rate_burst);
    tracing::debug!(conn, "socket opened");

    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = &mut register_deadline, if me.is_none() => {
                let _ = tx.try_send(ServerMessage::error(
                    ErrorCode::RegisterTimeout,
                    "no register message in time",
                ));
                break;
            }
            _ = shutdown.wait_for(|down| *down) => break,
        };
        let text = match frame {
            None => break,
            Some(Err(err)) => {
                tracing::debug!(conn, "socket error: {err}");
                break;
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                if bucket.take(hub.config.rate_per_second, hub.config.rate_burst) {
                    reply_error(&tx, ErrorCode::Malformed, "binary frames are not accepted");
                }
                continue;
            }
            Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        };
        if !bucket.take(hub.config.rate_per_second, hub.config.rate_burst) {
            tracing::debug!(conn, "rate limited");
            reply_error(&tx, ErrorCode::RateLimited, "too many messages; this one was dropped");
            continue;
        }
        let msg = match ClientMessage::from_json(text.as_str()) {
            Ok(msg) => msg,
            Err(err) => {
                tracing::debug!(conn, "rejected message: {err}");
                reply_error(&tx, err.code(), &err.to_string());
                continue;
            }
        };
        match (msg, &me) {
            (ClientMessage::Register { peer, public_key, signature }, None) => {
                if let Err(why) = verify_registration(&nonce, &peer, &public_key, &signature) {
                    tracing::info!(conn, %peer, "registration refused: {why}");
                    reply_error(&tx, ErrorCode::Unauthenticated, &why);
                    continue;
                }
                match hub.register(&peer, conn, &tx) {
                    Ok(peers) => {
                        tracing::info!(conn, %peer, present = peers.len(), "peer registered");
                        let _ = tx.try_send(ServerMessage::Welcome {
                            peer: peer.clone(),
                            protocol: PROTOCOL_VERSION,
                            ice_servers: hub.config.ice_servers.clone(),
                            peers,
                        });
                        me = Some(peer);
                    }
                    Err((code, message)) => reply_error(&tx, code, &message),
                }
            }
            (ClientMessage::Register { .. }, Some(peer)) => reply_error(
                &tx,
                ErrorCode::AlreadyRegistered,
                &format!("this connection is already registered as {peer}"),
            ),
            (ClientMessage::Signal { .. }, None) => {
                reply_error(&tx, ErrorCode::NotRegistered, "register before signalling");
            }
            (ClientMessage::Signal { to, payload }, Some(from)) => {
                let relayed = ServerMessage::Signal { from: from.clone(), payload };
                if let Err(code) = hub.relay(from, &to, relayed) {
                    reply_error(&tx, code, &format!("cannot relay to {to}"));
                }
            }
            // A message type added to the protocol crate but not yet served here.
            (other, _) => reply_error(&tx, ErrorCode::Malformed, &format!("unsupported message: {other:?}")),
        }
    }

    if let Some(peer) = &me {
        hub.unregister(peer, conn);
        tracing::info!(conn, %peer, "peer left");
    }
    drop(tx);
    let _ = tokio::time::timeout(CLOSE_GRACE, writer).await;
    tracing::debug!(conn, "socket closed");
}

fn reply_error(tx: &mpsc::Sender<ServerMessage>, code: ErrorCode, message: &str) {
    if tx.try_send(ServerMessage::error(code, message)).is_err() {
        tracing::warn!(%code, "could not queue an error reply: {message}");
    }
}

/// Serves `config` on `listener` until `shutdown` completes, then closes every WebSocket
/// (waiting up to a few seconds for them) and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (down_tx, down_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let app = router(config, down_rx, alive_tx);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = down_tx.send(true);
        })
        .await;
    // Upgraded WebSockets outlive the HTTP server: wait for their tasks to say goodbye.
    if tokio::time::timeout(CLOSE_GRACE, alive_rx.recv()).await.is_err() {
        tracing::warn!("some WebSockets did not close in time");
    }
    result
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A server running on the current tokio runtime (for tests and embedding).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// Binds `config.listen` and serves in a spawned task.
    pub async fn spawn(config: Config) -> io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop: Some(stop), task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the origin of the served page.
    pub fn http_origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://<addr>/ws`, the signaling endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops accepting, closes every WebSocket and waits for the server task.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(err) => Err(io::Error::other(err)),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
