//! The native node: a full Pastry/PAST peer of the same network as the browser tabs, with
//! its replicas on disk, for machines that stay on (a home server, a VPS) and for scripts.
//!
//! It is a thin driver of [`past_link::Stack`], the Pastry core and PAST (`past-core`) and
//! the peer manager wired together once for both drivers: the browser tab (`past-node-wasm`)
//! runs the same stack, so both make the same decisions (glare, connection limits, the data
//! channel handshake, eviction, signaling through the overlay once joined, inserts, lookups,
//! replica maintenance). Only the browser's lifetime budget of peer connections, its pace
//! and its reloads are left out ([`past_link::ManagerConfig::native`]). The node registers with the signaling server over
//! a WebSocket as the nodeId of its Ed25519 key (signing the server's challenge), connects to
//! the contacts the server names and joins the overlay through one of them.
//!
//! What it adds to the stack:
//! - **Storage**: the core's storage requests are carried out by a [`disk_store::DiskStore`]
//!   (redb; durable across restarts and crashes, a damaged file refused) on a thread of its
//!   own, answers fed back to the loop as inputs; at start the store's committed records are
//!   restored into the stack before the node joins. Without [`NodeConfig::store`] replicas
//!   are kept in memory. [`NodeConfig::capacity`] is what the node offers to others.
//! - **Files** ([`files`]): [`NodeHandle::insert`] (a file read one chunk at a time from
//!   disk, encrypted with `past_link::seal` unless public; returns the fileId, the share link
//!   in the page's format and the store receipts), [`NodeHandle::get`] (by link or fileId;
//!   verified chunks opened with the link's key are streamed to a temporary file, fsynced and
//!   renamed: never the whole file in memory), [`NodeHandle::reclaim`] (reclaim receipts),
//!   [`NodeHandle::status`]; a tab opens the links this node prints and the other way round.
//! - **Identity** ([`key_file`]): the key in a file only its owner may read (0600).
//! - **Control** ([`control`]): a Unix socket in the store directory through which the CLI's
//!   one-shot commands reach a running `past-node serve`.
//! - **Several signaling servers** ([`NodeConfig::more_signaling_urls`], `--signaling`
//!   repeated): the node registers with each, and the contacts of every welcome after the
//!   first are introduced to the core, so networks bootstrapped through different servers
//!   merge into one ring; signals for a server go to all of them. A server whose socket
//!   closes is connected to again (after 2 s, doubling up to a minute).
//! - **Graceful shutdown**: [`NodeHandle::shutdown`] tells every node in its state that it
//!   leaves (their leaf sets drop it at once and replica maintenance restores k replicas of
//!   what it held from the other holders), closes its connections and its store.
//!
//! It also still routes test payloads ([`NodeHandle::route`], [`NodeEvent::Delivered`]).
//!
//! What it is **not**: it binds loopback only (below); it does not serve the page;
//! it hands nothing off actively when leaving: the others pull from the remaining holders,
//! so a file inserted with k = 1 is unavailable while its only holder is away.
//!
//! The loop (in `node.rs`) is the one the style guide asks of a driver: one task owns the
//! stack and handles one input at a time from one bounded channel (signaling socket, peer
//! connections, the handle, a timer), then carries out the stack's commands and reports its
//! events:
//!
//! ```text
//! loop {
//!     select! { input => stack.handle_*(input, now), sleep_until(stack.poll_timeout()) => stack.handle_timeout(now) }
//!     while let Some(command) = stack.poll_command() { execute(command) }  // create, send, sign, close...
//!     while let Some(event) = stack.poll_event() { events.send(NodeEvent::from(event)) }
//! }
//! ```
//!
//! WebRTC comes from the `webrtc` crate (0.21). Sockets bind to 127.0.0.1 only and mDNS is
//! disabled, so the node reaches peers on the same machine (and a browser started with the
//! flags of `shared/chromium-flags.md`); binding other interfaces is future work. Messages
//! on a data channel are at most [`MAX_MESSAGE_BYTES`] (the default SCTP limit of the crate);
//! the link framing chunks larger frames.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use past_node::{NodeConfig, NodeEvent, start};
//! let (node, mut events) = start(NodeConfig::new("ws://127.0.0.1:8080/ws")).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         NodeEvent::Joined => {
//!             let payload = past_link::Payload { origin: node.node_id(), text: true, data: b"hi".to_vec() };
//!             node.route(node.node_id(), payload).await?; // Delivered here: the closest node to our id.
//!         }
//!         NodeEvent::Delivered { payload, .. } => println!("{:?}", payload.data),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod control;
pub mod disk_store;
pub mod files;
pub mod key_file;
mod node;
mod signaling;
mod storage;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use past_core::Id;
use past_core::past::{Ed25519Signer, FileRecord, MemoryStore, PastConfig, PublicKey, Storage};
use past_link::{ManagerConfig, Payload, Stack};
use past_signaling_proto::{ErrorCode, PeerId, ServerMessage, to_hex};
use tokio::sync::mpsc::{self, Sender, UnboundedReceiver};
use tokio::sync::{Notify, oneshot, watch};

use disk_store::{DiskStore, DiskStoreError};
use node::{Command, Driver, INPUT_CAPACITY, Input, Parts, Servers, id_of};
use signaling::{SignalingClient, SignalingEvent, registration};
use storage::StorageWorker;

pub use files::{ErrorKind, Fetched, InsertOptions, Inserted, Progress, ReclaimOutcome, Stage, Status};

pub use past_signaling_proto as proto;

/// Largest message on a data channel of this node: the `webrtc` crate's default SCTP
/// maximum message size.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Chunks a transfer requests ahead (the browser's figure).
const TRANSFER_WINDOW: u32 = 32;

pub use past_link::Data;

/// What the node reports to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A connection to `peer` opened: the peer proved its nodeId on the data channel.
    Connected(PeerId),
    /// The node joined the overlay: [`NodeHandle::route`] works from now on.
    Joined,
    /// A payload was routed to this node (it is the closest to `key`).
    Delivered {
        /// The key it was routed to.
        key: Id,
        /// Hops it took.
        hops: u8,
        /// What it carries; `payload.origin` is the sender's claim.
        payload: Payload,
        /// Whether `payload.origin` is proven: the origin handed it to us itself, over a
        /// connection on which it proved its id (or it is this node).
        origin_verified: bool,
    },
    /// A peer broke the protocol (failed the handshake, sent a bad frame); it was dropped.
    Refused {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// An open connection to `peer` closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// Something went wrong that did not stop the node.
    Error(String),
    /// The node stopped.
    Closed,
}

/// Why [`start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The signaling server could not be reached.
    #[error("cannot connect to the signaling server at {url}: {source}")]
    Connect {
        /// Its URL.
        url: String,
        /// The WebSocket error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server refused the registration.
    #[error("the signaling server refused to register us ({code}): {message}")]
    Refused {
        /// Its error code.
        code: ErrorCode,
        /// Its explanation.
        message: String,
    },
    /// The socket closed before the welcome message.
    #[error("the signaling connection closed before registration: {0}")]
    Closed(String),
    /// The server's challenge is malformed.
    #[error("the signaling server sent an unusable challenge")]
    BadChallenge,
    /// No welcome message within [`NodeConfig::register_timeout`].
    #[error("no answer to the registration within {0:?}")]
    Timeout(Duration),
    /// The store cannot be opened or restored (in use, corrupted, unreadable).
    #[error(transparent)]
    Store(#[from] DiskStoreError),
    /// The storage thread could not be started.
    #[error("cannot start the storage thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl StartError {
    /// What kind of failure it is: the store's are the user's to fix
    /// ([`ErrorKind::BadInput`]), the others the network's ([`ErrorKind::Unavailable`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            StartError::Store(_) => ErrorKind::BadInput,
            StartError::Thread(_) => ErrorKind::Io,
            _ => ErrorKind::Unavailable,
        }
    }
}

/// Why [`NodeHandle::route`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The stack refused it (not joined yet, too large).
    #[error(transparent)]
    Refused(#[from] past_link::RouteError),
    /// Too many inputs wait for the node; try again later.
    #[error("the node is overloaded: too many requests are waiting")]
    Overloaded,
    /// The node stopped.
    #[error("the node is closed")]
    Closed,
}

/// Why [`NodeHandle::send_raw`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No open, authenticated connection to that peer.
    #[error("not connected to that peer")]
    NotConnected,
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge(usize),
    /// The peer's send queue is full; try again later.
    #[error("the send queue to that peer is full")]
    QueueFull,
    /// Too many inputs wait for the node; try again later.
    #[error("the node is overloaded: too many requests are waiting")]
    Overloaded,
    /// The node stopped.
    #[error("the node is closed")]
    Closed,
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `ws://host:port/ws` of the signaling server, registered with at start.
    pub signaling_url: String,
    /// More signaling servers to register with once started, so that networks bootstrapped
    /// through different servers form one ring with ours.
    pub more_signaling_urls: Vec<String>,
    /// The node's key; its nodeId is derived from it. A fresh one when `None`.
    pub key: Option<SigningKey>,
    /// Test hook: the key presented in the data channel handshake, when it is not `key` (an
    /// impostor claiming another identity than the one it registered).
    pub handshake_key: Option<SigningKey>,
    /// How long to wait for the server's welcome.
    pub register_timeout: Duration,
    /// The Pastry core's settings (`rng_seed` is drawn at start).
    pub core: past_core::Config,
    /// The peer manager's settings.
    pub manager: ManagerConfig,
    /// Bytes offered to other nodes' replicas and cached copies.
    pub capacity: u64,
    /// The directory of the durable store ([`DiskStore`]); `None`: replicas are kept in
    /// memory and lost when the node stops.
    pub store: Option<PathBuf>,
    /// The page's address that share links start with; by default the signaling server's
    /// (which serves the page): `ws://host:port/ws` gives `http://host:port/`.
    pub page_url: Option<String>,
    /// ICE servers (`stun:`/`turn:` URLs) used besides those the signaling server names.
    pub ice_servers: Vec<String>,
}

impl NodeConfig {
    /// Defaults for the server at `signaling_url`.
    pub fn new(signaling_url: impl Into<String>) -> Self {
        // Round trips come from the connections' statistics, probes where they have none.
        let mut core = past_core::Config::default();
        core.proximity = past_core::Proximity::Driver;
        Self {
            signaling_url: signaling_url.into(),
            more_signaling_urls: Vec::new(),
            key: None,
            handshake_key: None,
            register_timeout: Duration::from_secs(10),
            core,
            // No tab's lifetime budget: an always-on storage peer must keep making connections.
            manager: ManagerConfig::native(),
            capacity: 1 << 30,
            store: None,
            page_url: None,
            ice_servers: Vec::new(),
        }
    }

    /// The page's address for share links.
    fn page_url(&self) -> String {
        if let Some(url) = &self.page_url {
            return url.clone();
        }
        let url = &self.signaling_url;
        let (scheme, rest) = match url.split_once("://") {
            Some(("wss", rest)) => ("https", rest),
            Some((_, rest)) => ("http", rest),
            None => ("http", url.as_str()),
        };
        let host = rest.split('/').next().unwrap_or(rest);
        format!("{scheme}://{host}/")
    }
}

/// An id as 32 hex digits.
pub(crate) fn hex_id(id: Id) -> String {
    to_hex(&id.to_bytes())
}

/// The nodeId of `key`.
pub fn node_id(key: &SigningKey) -> Id {
    Id::from_public_key(&key.verifying_key().to_bytes())
}

/// The signaling peer id of `id`: its 32 hex digits.
pub fn peer_id(id: Id) -> PeerId {
    // 32 hex digits always make a valid peer id.
    PeerId::new(to_hex(&id.to_bytes())).unwrap_or_else(|_| unreachable!("hex is a valid peer id"))
}

/// Controls a running node. Dropping every handle does not stop it; [`NodeHandle::close`]
/// does.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    me: PeerId,
    id: Id,
    inputs: Sender<Input>,
    close: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

impl NodeHandle {
    /// This node's peer id (its nodeId in hex).
    pub fn id(&self) -> &PeerId {
        &self.me
    }

    /// This node's nodeId.
    pub fn node_id(&self) -> Id {
        self.id
    }

    /// Routes `payload` to the node numerically closest to `key` (once joined). Fails at
    /// once, without waiting, when the node is overloaded.
    pub async fn route(&self, key: Id, payload: Payload) -> Result<(), RouteError> {
        let (reply, replied) = oneshot::channel();
        self.inputs.try_send(Input::Command(Command::Route { key, payload, reply })).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RouteError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => RouteError::Closed,
        })?;
        replied.await.map_err(|_| RouteError::Closed)?
    }

    /// Test hook: writes `data` straight on the open data channel to `peer`, bypassing the
    /// stack (to send a misbehaving peer's frames).
    pub async fn send_raw(&self, peer: &PeerId, data: Data) -> Result<(), SendError> {
        let peer = id_of(peer).ok_or(SendError::NotConnected)?;
        let (reply, replied) = oneshot::channel();
        self.inputs.try_send(Input::Command(Command::SendRaw { peer, data, reply })).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })?;
        replied.await.map_err(|_| SendError::Closed)?
    }

    /// Peers with an open, authenticated connection (waits while the node is overloaded;
    /// empty once it is closed).
    pub async fn peers(&self) -> Vec<PeerId> {
        let (reply, replied) = oneshot::channel();
        if self.inputs.send(Input::Command(Command::Peers(reply))).await.is_err() {
            return Vec::new();
        }
        replied.await.unwrap_or_default()
    }

    /// Leaves the overlay, closes every connection and the signaling socket;
    /// [`NodeEvent::Closed`] follows.
    pub fn close(&self) {
        self.close.notify_one();
    }

    /// Leaves the overlay gracefully (every node in its state learns it at once, so the
    /// leaf sets repair and replica maintenance restores k replicas of what it held on the
    /// others), closes its connections, and returns once the node has stopped and its store
    /// is closed (another node may open it then).
    pub async fn shutdown(&self) {
        self.close();
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

/// Opens the store (restoring its committed records) or an empty one in memory.
async fn open_store(dir: Option<PathBuf>) -> Result<(Box<dyn Storage + Send>, Vec<FileRecord>), StartError> {
    let Some(dir) = dir else { return Ok((Box::new(MemoryStore::new()), Vec::new())) };
    let opened = tokio::task::spawn_blocking(move || {
        let mut store = DiskStore::open(&dir)?;
        let records = store.restore()?;
        Ok::<_, DiskStoreError>((store, records))
    })
    .await
    .map_err(|e| StartError::Thread(std::io::Error::other(e.to_string())))?;
    let (store, records) = opened?;
    Ok((Box::new(store), records))
}

/// Connects to the signaling server, registers, and starts the node's event loop on the
/// current tokio runtime. Returns once registered; the node then joins the overlay by itself
/// ([`NodeEvent::Joined`]).
pub async fn start(config: NodeConfig) -> Result<(NodeHandle, UnboundedReceiver<NodeEvent>), StartError> {
    let started = tokio::time::Instant::now();
    let key = config.key.clone().unwrap_or_else(|| SigningKey::from_bytes(&rand::random::<[u8; 32]>()));
    let id = node_id(&key);
    let me = peer_id(id);
    let (store, records) = open_store(config.store.clone()).await?;
    tracing::info!(records = records.len(), "store opened");
    let (tx, mut rx) = mpsc::channel::<Input>(INPUT_CAPACITY);
    let mut signaling = SignalingClient::connect(&config.signaling_url, 0, tx.clone())
        .await
        .map_err(|e| StartError::Connect { url: config.signaling_url.clone(), source: Box::new(e) })?;

    let welcome = tokio::time::timeout(config.register_timeout, async {
        loop {
            match rx.recv().await {
                Some(Input::Signaling(_, SignalingEvent::Message(ServerMessage::Challenge { nonce }))) => {
                    let register = registration(&key, &me, &nonce).ok_or(StartError::BadChallenge)?;
                    signaling.send(&register).await.map_err(|e| StartError::Closed(e.to_string()))?;
                }
                Some(Input::Signaling(
                    _,
                    SignalingEvent::Message(ServerMessage::Welcome { ice_servers, peers, overlay, .. }),
                )) => {
                    if let Some(why) = node::outdated(overlay) {
                        tracing::warn!(url = %config.signaling_url, "{why}");
                    }
                    return Ok((ice_servers, peers));
                }
                Some(Input::Signaling(_, SignalingEvent::Message(ServerMessage::Error { code, message }))) => {
                    return Err(StartError::Refused { code, message });
                }
                Some(Input::Signaling(_, SignalingEvent::Closed(reason))) => {
                    return Err(StartError::Closed(reason));
                }
                Some(other) => tracing::debug!("before registration, ignoring {other:?}"),
                None => return Err(StartError::Closed("input channel closed".into())),
            }
        }
    })
    .await
    .map_err(|_| StartError::Timeout(config.register_timeout));
    let (mut ice_servers, present) = match welcome.and_then(|w| w) {
        Ok(welcome) => welcome,
        Err(err) => {
            signaling.close().await;
            return Err(err);
        }
    };
    tracing::info!(peer = %me, present = present.len(), "registered");
    if !config.ice_servers.is_empty() {
        ice_servers.push(past_signaling_proto::IceServer {
            urls: config.ice_servers.clone(),
            username: None,
            credential: None,
        });
    }

    let page_url = config.page_url();
    let handshake_key = config.handshake_key.unwrap_or_else(|| key.clone());
    let now = past_core::Time::from_micros(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    let public_key = handshake_key.verifying_key().to_bytes();
    let mut past = PastConfig::new(PublicKey(key.verifying_key().to_bytes()), config.capacity);
    // A get writes each chunk before the next is pulled: memory stays flat.
    past.paced_reads = true;
    past.window = TRANSFER_WINDOW;
    let mut stack = Stack::new(id, public_key, config.core, config.manager, past, rand::random::<[u8; 32]>(), now);
    for record in records {
        stack.restore(record);
    }
    let storage = match StorageWorker::start(store, tx.clone()) {
        Ok(storage) => storage,
        Err(err) => {
            signaling.close().await;
            return Err(StartError::Thread(err));
        }
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (stopped_tx, stopped) = watch::channel(false);
    let keys = Ed25519Signer::from_seed(key.to_bytes());
    let parts = Parts { key: handshake_key, keys, storage, page_url, stopped: stopped_tx };
    let urls = std::iter::once(config.signaling_url).chain(config.more_signaling_urls).collect();
    let servers = Servers::new(urls, signaling.into_writer(), key, tx.clone());
    let driver = Driver::new(parts, stack, started, tx.clone(), servers, ice_servers, events_tx);
    let close = Arc::new(Notify::new());
    let contacts = present.iter().filter_map(id_of).collect();
    tokio::spawn(driver.run(contacts, rx, close.clone()));
    Ok((NodeHandle { me, id, inputs: tx, close, stopped }, events_rx))
}
