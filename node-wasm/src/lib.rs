//! The PAST node in the browser: the driver a page loads as WebAssembly. Every tab is a
//! Pastry node and a PAST storage node of the overlay, talking to other nodes over
//! authenticated WebRTC data channels, bootstrapped by the signaling server and on its own
//! afterwards. It stores replicas in IndexedDB, signs certificates and receipts with the
//! tab's WebCrypto key, and encrypts files before they leave the tab.
//!
//! It is the **same** sans-IO core as the simulator (`past_core::Node` with PAST inside
//! `past_link::Stack`), driven by a thin event loop; it holds no protocol decision.
//!
//! # Shape (thin driver)
//! - `identity`: the Ed25519 key pair from WebCrypto in IndexedDB, one slot per live tab
//!   (Web Locks), kept across reloads (sessionStorage).
//! - `store`: the replica store in IndexedDB (one database per identity slot), restored into
//!   the core at start.
//! - `signaling`: the WebSocket client of the signaling server; callbacks push into the
//!   loop's channel.
//! - `transport`: one `RTCPeerConnection` per peer with one ordered reliable data channel;
//!   callbacks push into the same channel.
//! - `driver`: the event loop: the stack, connections, timers, the node view; `driver::files`
//!   carries out PAST's storage and signing requests and the file operations of the JS API
//!   (files read from the `File` chunk by chunk and sealed with WebCrypto AES-GCM, lookups
//!   streamed to the page).
//! - `api`: options and promises of the file operations; `files_glue`: their JS side
//!   (WebCrypto AES-GCM, reading a `File`, the lookup's `ReadableStream`, `blob()` and
//!   `save()` spooling large files to the origin private file system).
//! - `qr`: `qrSvg(text)`, the QR code of a share link as SVG, for the page.
//! - [`queue`]: backpressure (pause above 256 KiB buffered, resume at 64 KiB), pure and
//!   tested natively.
//! - This file: the JS API.
//!
//! # JS API
//! ```js
//! import init, { start } from "/pkg/past_node.js";
//! await init();
//! const node = await start({
//!   signalingUrl: `ws://${location.host}/ws`,
//!   onEvent: (e) => console.log(e),
//! });
//! node.id();                      // this node's id, 32 hex digits
//! node.status();                  // "joined (registered with the signaling server)"
//! node.view();                    // {nodeId, leafSet, routingTable, neighborhood, connections, ...}
//! const { link } = await node.insert(file, { k: 3 });       // encrypted unless encrypt: false
//! const found = await node.lookup(link);                      // {name, size, type, stream, blob(), ...}
//! await node.reclaim(fileId); await node.files(); node.stored();
//! node.route(keyHex, "payload");  // a "delivered" event fires at the node closest to the key
//! node.leave(); node.close();
//! ```
//! Events: `{type: "status", status, detail}` (`connecting`, `joining`, `joined`, `left`,
//! `closed`), `{type: "joined", nodeId}`, `{type: "peers", count}`, `{type: "connection",
//! peer, state, reason?}`, `{type: "delivered", key, origin, hops, data}`, `{type: "refused",
//! peer, reason}`, `{type: "badData", fileId, holder}` (a holder served a chunk that did not
//! match the owner's certificate; another is tried) and `{type: "error", message}`.
//!
//! On a native target the crate compiles (so `cargo test --workspace` builds it) and its
//! pure parts are tested, but the browser API is only usable on wasm32.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::channel::mpsc;
use js_sys::{ArrayBuffer, Function, Object, Reflect, Uint8Array};
use past_core::Id;
use past_core::past::Answers;
use past_link::Payload;
use past_signaling_proto::{IceServer, from_hex};
use serde::Deserialize;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;

mod api;
mod driver;
mod files_glue;
mod identity;
mod inputs;
mod logging;
mod page;
mod qr;
pub use qr::qr_svg;
pub mod queue;
mod signaling;
mod store;
mod transport;

use driver::{Command, Driver, Input, Settings};
use inputs::{Inputs, PushError};

/// Options of [`start`], read from a JS object (camelCase keys). Timers are in
/// milliseconds; every option but `signalingUrl` has a default.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartOptions {
    /// `ws://host/ws` of the signaling server.
    signaling_url: String,
    /// ICE servers (`RTCIceServer` dictionaries); the server's list (empty unless its
    /// operator set one) when absent.
    #[serde(default)]
    ice_servers: Option<Vec<IceServer>>,
    /// Keep-alive period of the leaf set.
    #[serde(default)]
    keepalive_ms: Option<u64>,
    /// How long a probe may go unanswered.
    #[serde(default)]
    probe_timeout_ms: Option<u64>,
    /// Routing table probe period.
    #[serde(default)]
    table_probe_ms: Option<u64>,
    /// How long a join may wait for its reply (4 s by default).
    #[serde(default)]
    join_timeout_ms: Option<u64>,
    /// How long a failed node is kept out of the tables when others still mention it.
    #[serde(default)]
    failed_memory_ms: Option<u64>,
    /// Leaf set size l.
    #[serde(default)]
    leaf_set_size: Option<usize>,
    /// Digit size b in bits.
    #[serde(default)]
    digit_bits: Option<u8>,
    /// Most open connections before others than leaves and table entries are closed.
    #[serde(default)]
    max_connections: Option<usize>,
    /// `RTCPeerConnection`s this page may create (at most 500, Chromium's limit).
    #[serde(default)]
    connection_budget: Option<u32>,
    /// Hours over which the budget is spent on connections other than the leaf set's (8 by
    /// default; 0: not paced).
    #[serde(default)]
    pace_hours: Option<f64>,
    /// How long a connection may take to open and authenticate.
    #[serde(default)]
    connect_timeout_ms: Option<u64>,
    /// `RTCIceTransportPolicy`: `"all"` (default) or `"relay"` (TURN candidates only).
    #[serde(default)]
    ice_transport_policy: Option<String>,
    /// Separates identities of different uses of one origin (tests); empty by default.
    #[serde(default)]
    identity_namespace: Option<String>,
    /// Bytes offered to other nodes' replicas and cached copies; by default a quarter of
    /// what `navigator.storage.estimate()` says is free.
    #[serde(default)]
    capacity_bytes: Option<u64>,
    /// Largest file this node stores or inserts, in bytes.
    #[serde(default)]
    max_file_bytes: Option<u64>,
    /// Bytes of replicas (k x size) this identity may insert through this tab.
    #[serde(default)]
    quota_bytes: Option<u64>,
    /// Replica holders a lookup pulls from at once (1 to 3; see `LOOKUP_SOURCES`).
    #[serde(default)]
    lookup_sources: Option<u8>,
    /// How this node answers lookups: `"auto"` (default: back along the route to a reader
    /// not in its tables), `"route"` (along the route always) or `"straight"` (as PAST).
    #[serde(default)]
    answers: Option<String>,
    /// Largest file whose content a holder sends back along the route rather than straight
    /// (1 MiB by default; see `PastConfig::relay_max_size`).
    #[serde(default)]
    relay_max_bytes: Option<u64>,
}

impl StartOptions {
    fn settings(self) -> Result<Settings, String> {
        let mut core = past_core::Config::default();
        if let Some(ms) = self.keepalive_ms {
            core.keepalive_interval = Some(Duration::from_millis(ms.max(50)));
        }
        if let Some(ms) = self.probe_timeout_ms {
            core.probe_timeout = Duration::from_millis(ms.max(50));
        }
        if let Some(ms) = self.table_probe_ms {
            core.table_probe_interval = Some(Duration::from_millis(ms.max(50)));
        }
        // A join reply can be lost while the connections of a newcomer are still being set
        // up; retrying is one routed message, so do not wait the core's default 10 s.
        core.join_timeout = Duration::from_millis(self.join_timeout_ms.unwrap_or(4000).max(50));
        if let Some(ms) = self.failed_memory_ms {
            core.failed_memory = Duration::from_millis(ms);
        }
        // Round trips come from the connections' statistics (getStats), probes where none.
        core.proximity = past_core::Proximity::Driver;
        if let Some(l) = self.leaf_set_size {
            core.leaf_set_size = l.clamp(2, 64);
        }
        if let Some(b) = self.digit_bits {
            core.base = past_core::DigitBase::new(b).map_err(|e| e.to_string())?;
        }
        let budget = self.connection_budget.unwrap_or(480).min(driver::PEER_CONNECTION_LIMIT);
        let mut manager = past_link::ManagerConfig {
            max_connections: self.max_connections.unwrap_or(64).max(4),
            connection_budget: budget,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms.unwrap_or(10_000).max(500)),
            // A live leaf is heard from at least once per keep-alive period.
            liveness: core.keepalive_interval.unwrap_or(Duration::from_secs(5)) + core.probe_timeout,
            tombstone: core.probe_timeout * 2,
            ..Default::default()
        };
        manager.pace = match self.pace_hours {
            Some(0.0) => None,
            Some(hours) => Some(past_link::manager::Pace::over_hours(hours).map_err(|e| e.to_string())?),
            None => manager.pace,
        };
        if let Some(probes) = core.table_probe_interval {
            // A peer keeps us in its tables while it probes us: at least once per period.
            manager.holder_memory = probes * 5 / 2;
        }
        if let Some(keepalive) = core.keepalive_interval {
            manager.idle = (keepalive * 3).max(manager.eviction_grace);
            // A peer that failed is tried again after three keep-alive periods (15 s by
            // default), so faster keep-alives (tests) do not wait out a 15 s backoff.
            manager.limits.backoff_base = keepalive * 3;
        }
        let relay_only = match self.ice_transport_policy.as_deref() {
            None | Some("all") => false,
            Some("relay") => true,
            Some(other) => return Err(format!("iceTransportPolicy must be \"all\" or \"relay\", not {other:?}")),
        };
        let answers = match self.answers.as_deref() {
            None | Some("auto") => Answers::AlongRouteToStrangers,
            Some("route") => Answers::AlongRoute,
            Some("straight") => Answers::Straight,
            Some(other) => return Err(format!("answers must be \"auto\", \"route\" or \"straight\", not {other:?}")),
        };
        Ok(Settings {
            signaling_url: self.signaling_url,
            ice_servers: self.ice_servers,
            relay_only,
            manager,
            core,
            capacity: self.capacity_bytes.unwrap_or(0),
            max_file_size: self.max_file_bytes,
            quota: self.quota_bytes,
            lookup_sources: self.lookup_sources.unwrap_or(driver::LOOKUP_SOURCES).clamp(1, 3),
            answers,
            relay_max_size: self.relay_max_bytes,
        })
    }
}

/// Starts a node: claims an identity, then connects to the signaling server, joins the
/// overlay and keeps going on its own. Resolves to a [`Node`] as soon as the identity is
/// claimed; progress arrives as `status` events (the server may be unreachable: the node
/// says so and retries with backoff).
///
/// `config`: `{ signalingUrl, iceServers?, keepaliveMs?, probeTimeoutMs?, tableProbeMs?,
/// joinTimeoutMs?, failedMemoryMs?, leafSetSize?, digitBits?, maxConnections?, connectionBudget?,
/// paceHours?, connectTimeoutMs?, iceTransportPolicy?, identityNamespace?, capacityBytes?,
/// maxFileBytes?, quotaBytes?, lookupSources?, answers?, relayMaxBytes?, onEvent? }`.
#[wasm_bindgen]
pub async fn start(config: JsValue) -> Result<Node, JsError> {
    logging::init();
    let options: StartOptions = serde_wasm_bindgen::from_value(config.clone())
        .map_err(|e| JsError::new(&format!("invalid start options: {e}")))?;
    let on_event =
        Reflect::get(&config, &JsValue::from_str("onEvent")).ok().and_then(|f| f.dyn_into::<Function>().ok());
    let namespace = options.identity_namespace.clone().unwrap_or_default();
    let settings = options.settings().map_err(|e| JsError::new(&e))?;
    let mut settings = settings;
    let identity = identity::Identity::claim(&namespace).await.map_err(|e| JsError::new(&e))?;
    tracing::info!(id = ?identity.id, slot = identity.slot, "identity claimed");
    let store = store::Store::open(&namespace, identity.slot).await.map_err(|e| JsError::new(&e))?;
    let records = store.restore().await.map_err(|e| JsError::new(&e))?;
    let estimate = store::estimate().await;
    if let Some(e) = estimate {
        tracing::info!(quota = e.quota, usage = e.usage, persisted = e.persisted, "browser storage");
    }
    if settings.capacity == 0 {
        settings.capacity = default_capacity(estimate);
    }

    let (tx, rx) = inputs::channel();
    let mut node = Driver::new(identity, settings, store.clone(), tx.clone());
    tracing::info!(files = records.len(), "restoring the replica store");
    for record in records {
        node.stack.restore(record);
    }
    let driver = Rc::new(RefCell::new(node));
    let id = driver.borrow().id();
    wasm_bindgen_futures::spawn_local(run(driver.clone(), rx, on_event));
    Ok(Node { id, inputs: tx, driver, store })
}

/// A quarter of the free space the browser grants this origin (256 MiB when it does not
/// say).
fn default_capacity(estimate: Option<store::Estimate>) -> u64 {
    match estimate {
        Some(e) if e.quota > 0 => e.quota.saturating_sub(e.usage) / 4,
        _ => 256 << 20,
    }
}

/// The loop: one input at a time; events go to the page once the driver is released, so
/// the page's callback may call the node.
async fn run(driver: Rc<RefCell<Driver>>, mut inputs: mpsc::UnboundedReceiver<Input>, on_event: Option<Function>) {
    driver.borrow_mut().start();
    emit(&driver, on_event.as_ref());
    while let Some(input) = inputs.next().await {
        let closed = {
            let mut driver = driver.borrow_mut();
            driver.handle(input);
            driver.closed
        };
        emit(&driver, on_event.as_ref());
        if closed {
            break;
        }
    }
}

fn emit(driver: &Rc<RefCell<Driver>>, on_event: Option<&Function>) {
    let events = driver.borrow_mut().take_events();
    let Some(callback) = on_event else { return };
    for event in events {
        if let Err(err) = callback.call1(&JsValue::NULL, &event) {
            web_sys::console::warn_2(&"past: onEvent threw".into(), &err);
        }
    }
}

/// A running node, handed to the page by [`start`].
#[wasm_bindgen]
pub struct Node {
    id: Id,
    inputs: Inputs,
    driver: Rc<RefCell<Driver>>,
    store: store::Store,
}

#[wasm_bindgen]
impl Node {
    /// This node's id: 32 hex digits (first 16 bytes of SHA-1 of its public key).
    pub fn id(&self) -> String {
        driver::hex(self.id)
    }

    /// The status as one line, e.g. `joined (registered with the signaling server)`.
    pub fn status(&self) -> String {
        self.driver.try_borrow().map(|d| d.status_line()).unwrap_or_default()
    }

    /// The node view: `{nodeId, slot, status, detail, joined, signaling ("connecting",
    /// "registering", "registered" or "offline"), signalingRetryMs (when offline),
    /// openConnections, digitBits, leafSetSize, leafSet: {counterClockwise,
    /// clockwise}, routingTable: [{row, column, id, rttMs}], neighborhood: [{id, rttMs}],
    /// connections: [{id, state, direction, via, rttMs, leaf, table, backlog}],
    /// peerConnectionsCreated, peerConnectionLimit, connectionBudget, maxConnections,
    /// reloadAdvised}`.
    pub fn view(&self) -> Object {
        self.driver.try_borrow().map(|d| page::view(&d)).unwrap_or_default()
    }

    /// Routes `payload` (a string, a `Uint8Array` or an `ArrayBuffer` of at most 60 KiB) to
    /// the node numerically closest to `key` (32 hex digits), where a `delivered` event
    /// fires.
    pub fn route(&self, key: String, payload: JsValue) -> Result<(), JsError> {
        let key =
            from_hex::<16>(&key).map(Id::from_bytes).ok_or_else(|| JsError::new("the key must be 32 hex digits"))?;
        let (text, data) = if let Some(text) = payload.as_string() {
            (true, text.into_bytes())
        } else if let Some(bytes) = payload.dyn_ref::<Uint8Array>() {
            (false, bytes.to_vec())
        } else if let Some(buffer) = payload.dyn_ref::<ArrayBuffer>() {
            (false, Uint8Array::new(buffer).to_vec())
        } else {
            return Err(JsError::new("route takes a string, a Uint8Array or an ArrayBuffer"));
        };
        if data.len() > past_link::app::MAX_PAYLOAD_BYTES {
            return Err(JsError::new(&format!(
                "payload of {} bytes exceeds {} bytes",
                data.len(),
                past_link::app::MAX_PAYLOAD_BYTES
            )));
        }
        let payload = Payload { origin: self.id, text, data };
        self.command(Command::Route { key, payload })
    }

    /// Opens a connection to the node `id` (32 hex digits) if there is none, signalled
    /// through the overlay once joined. A debugging and test hook: the node opens the
    /// connections it needs by itself.
    pub fn connect(&self, id: String) -> Result<(), JsError> {
        let id = from_hex::<16>(&id).map(Id::from_bytes).ok_or_else(|| JsError::new("the id must be 32 hex digits"))?;
        self.command(Command::Connect(id))
    }

    /// Leaves the overlay: every node in this node's state is told at once (call it from
    /// `pagehide`). The page keeps its connections until [`Node::close`].
    pub fn leave(&self) {
        match self.driver.try_borrow_mut() {
            Ok(mut driver) => driver.leave(),
            Err(_) => {
                let _ = self.command(Command::Leave);
            }
        }
    }

    /// Inserts a file: `options` `{k = 3, encrypt = true, name = file.name, onProgress}`.
    /// Resolves to `{fileId, key, link, receipts, receiptNodes, name, size, type, k,
    /// encrypted, created, attempts}` once k storing nodes sent signed receipts; rejects
    /// with an `Error` whose `code` is `over-quota`, `too-large`, `storage-full`, `refused`
    /// or `failed`. `onProgress({stage: "hashing" | "storing", bytes, total})`.
    pub fn insert(&self, file: web_sys::Blob, options: JsValue) -> Result<js_sys::Promise, JsError> {
        let options = api::InsertOptions::read(&file, &options).map_err(|e| JsError::new(&e))?;
        let (reply, answer) = futures::channel::oneshot::channel();
        let request = driver::InsertRequest {
            blob: file,
            name: options.name,
            mime: options.mime,
            k: options.k,
            encrypt: options.encrypt,
            on_progress: options.on_progress,
            reply,
        };
        self.command(Command::Insert(request))?;
        Ok(api::promise(answer))
    }

    /// Looks a file up by its share link (an address with `#<fileId>[.<key>]`, a fragment,
    /// or a bare fileId; `key` overrides the link's). Resolves, once a holder's certificate
    /// is verified, to `{fileId, name, size, type, owner, created, k, encrypted, verified,
    /// stream, blob(), save()}`: `stream` is a `ReadableStream` of the content, each chunk
    /// checked against the signed certificate (and opened with the key) before it is
    /// enqueued. Rejects with `code` `bad-link`, `not-found`, `unavailable`, `wrong-key` or
    /// `key-needed`. `options`: `{onProgress({stage: "receiving", bytes, total})}`.
    pub fn lookup(&self, link: String, key: Option<String>, options: JsValue) -> Result<js_sys::Promise, JsError> {
        let (reply, answer) = futures::channel::oneshot::channel();
        let mut link = match past_link::share::ShareLink::parse(&link) {
            Ok(link) => link,
            Err(err) => return Ok(api::rejected("bad-link", &err.to_string())),
        };
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            match past_link::seal::FileKey::from_text(&key) {
                Some(key) => link.key = Some(key),
                None => return Ok(api::rejected("bad-link", "the key is malformed")),
            }
        }
        let on_progress = api::callback(&options, "onProgress");
        self.command(Command::Lookup { link, on_progress, reply })?;
        Ok(api::promise(answer))
    }

    /// Reclaims a file this identity inserted: resolves to `{fileId, receipts,
    /// receiptNodes}` (signed reclaim receipts); rejects with `code` `not-owner`,
    /// `not-found` or `failed`.
    pub fn reclaim(&self, file_id: String) -> Result<js_sys::Promise, JsError> {
        let (reply, answer) = futures::channel::oneshot::channel();
        let Some(file) = past_link::share::parse_file_id(&file_id) else {
            return Ok(api::rejected("bad-link", "a fileId is 40 hex digits"));
        };
        self.command(Command::Reclaim { file, reply })?;
        Ok(api::promise(answer))
    }

    /// The files this identity inserted (kept in this browser): `[{fileId, name, size,
    /// type, k, encrypted, created, link, receipts}]`.
    pub fn files(&self) -> js_sys::Promise {
        let store = self.store.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            store.owned().await.map(JsValue::from).map_err(|e| JsValue::from(js_sys::Error::new(&e)))
        })
    }

    /// What this tab holds for other nodes: `{replicas, cached, pointers, bytesUsed,
    /// bytesCached, capacity, free, bytesRelayed}` (`bytesRelayed`: bytes it passed on along
    /// lookup routes, answers and content of other nodes' lookups).
    pub fn stored(&self) -> Object {
        self.driver.try_borrow().map(|d| d.stored()).unwrap_or_default()
    }

    /// Closes every connection and the signaling socket, and stops the node.
    pub fn close(&self) {
        let _ = self.command(Command::Close);
    }

    fn command(&self, command: Command) -> Result<(), JsError> {
        self.inputs.push(Input::Command(command)).map_err(|e| match e {
            PushError::Full => JsError::new("the node is busy: too many requests are waiting; try again"),
            PushError::Closed => JsError::new("the node is closed"),
        })
    }
}
