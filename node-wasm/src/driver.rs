//! The driver: one event loop around the sans-IO Pastry core (`past_core::Node`), as in the
//! simulator, with WebRTC, the signaling server, WebCrypto and timers around it.
//!
//! Every browser callback only pushes an [`Input`] into one channel; [`Driver::handle`]
//! takes one input at a time, never awaits (asynchronous browser work runs in spawned
//! futures that push their result back as another input), feeds the core and drains its
//! output: `Transmit{to, message}` goes to the connection for that nodeId (opened on demand,
//! the message queued meanwhile; when the connection cannot be opened or closes with
//! messages queued, each of them goes back to the core with `handle_send_failed`). One
//! `setTimeout` is armed for the earliest of the core's `poll_timeout` and the driver's own
//! housekeeping. Time is `performance.now()` in microseconds.
//!
//! Connections: a peer's messages are handled only after it proved its nodeId
//! (`past_link::auth`); before that, and on any malformed frame, the connection is dropped.
//! A new connection is signalled through the signaling server before this node has joined,
//! and through the overlay afterwards (an SDP offer routed with key = the target's nodeId,
//! the answer routed back; see `past_link::app`). Signals travel over existing connections:
//! the first hop is the open connection numerically closest to the target, and a node whose
//! next hop has no open connection passes the signal to its open connection closest to the
//! target if that is closer than itself, or else (when the next hop is not the target)
//! queues it on a connection to the next hop like any other message. Connections to the leaf set and routing table are kept; when
//! more than `max_connections` are open, others are closed, least recently used first. Every
//! `RTCPeerConnection` created counts against Chromium's limit of 500 per tab: past the
//! budget no new one is made and the node routes through those open.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use js_sys::{Array, Object, Reflect, Uint8Array};
use past_core::wire::{Message, Routed, RoutedBody};
use past_core::{Config, Event, Id, Node, Phase, Time, Transmit};
use past_link::frame::{self, Incoming, Reassembler};
use past_link::{AppMessage, AuthMessage, Handshake, OverlaySignal, Payload, SignalKind};
use past_signaling_proto::{
    ClientMessage, IceServer, PeerId, ServerMessage, SignalPayload, from_hex, register_transcript, to_hex,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::app::{BrowserApp, Delivered};
use crate::identity::{Identity, js_text};
use crate::queue::Data;
use crate::signaling::{SignalingClient, SignalingEvent};
use crate::transport::{Peer, Role, TransportEvent};

/// Chromium's lifetime limit of `RTCPeerConnection`s per tab, closed ones included.
pub(crate) const PEER_CONNECTION_LIMIT: u32 = 500;

/// Messages queued for a peer whose connection is being set up.
const MAX_PENDING: usize = 256;

/// Longest wait before reconnecting to the signaling server.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long a joining node waits for a joined contact before joining through any.
const CONTACT_GRACE: Duration = Duration::from_millis(1500);

/// How long a joining node waits before trying its contacts again when all failed.
const CONTACT_RETRY: Duration = Duration::from_secs(5);

/// Housekeeping period.
const TICK: Duration = Duration::from_millis(500);

/// An open connection is never evicted sooner than this after it opened.
const EVICTION_GRACE: Duration = Duration::from_secs(5);

/// Everything the loop reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    /// From the signaling socket of a generation.
    Signaling(u32, SignalingEvent),
    /// From the connection `serial` to a peer.
    Transport(Id, u64, TransportEvent),
    /// The SDP (offer or answer, ICE gathered) of a connection is ready, or failed.
    Described { peer: Id, serial: u64, result: Result<String, String> },
    /// A peer's answer or candidate could not be applied.
    SignalFailed { peer: Id, serial: u64, reason: String },
    /// Our handshake proof for a connection is signed.
    Signed { peer: Id, serial: u64, result: Result<[u8; 64], String> },
    /// Our registration is signed.
    RegisterSigned { generation: u32, nonce: String, result: Result<[u8; 64], String> },
    /// The timer fired.
    Timer,
    /// From the JS API.
    Command(Command),
}

/// Requests from the JS API.
#[derive(Debug)]
pub(crate) enum Command {
    /// Route a payload to the node closest to `key`.
    Route { key: Id, payload: Payload },
    /// Open a connection to a node (test and debugging hook).
    Connect(Id),
    /// Leave the overlay (tell the nodes we know), keep the page's connections.
    Leave,
    /// Close everything and stop.
    Close,
}

/// The settings of [`crate::start`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) signaling_url: String,
    /// ICE servers from the page; the server's (from its welcome) when `None`.
    pub(crate) ice_servers: Option<Vec<IceServer>>,
    pub(crate) max_connections: usize,
    pub(crate) connection_budget: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) core: Config,
}

/// How a connection is being signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Server,
    Overlay,
}

/// Where a connection is in its life.
#[derive(Debug)]
enum Stage {
    /// Offer/answer under way.
    Signaling,
    /// The channel is open; the handshake runs.
    Authenticating(Box<Handshake>),
    /// The peer proved its id.
    Open,
}

/// A connection to one peer.
struct Conn {
    serial: u64,
    peer: Peer,
    role: Role,
    via: Via,
    session: u64,
    stage: Stage,
    frames: Reassembler,
    pending: Vec<Message<AppMessage>>,
    created: Time,
    last_used: Time,
    /// When the peer last sent us a Pastry frame (or proved its id).
    last_heard: Time,
    /// The peer said it was joined when it said hello.
    joined: bool,
    /// An overlay attempt already fell back to the server.
    retried: bool,
}

impl Conn {
    fn is_open(&self) -> bool {
        matches!(self.stage, Stage::Open)
    }
}

/// The node's lifecycle as shown to the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Connecting,
    Joining,
    Joined,
    Left,
    Closed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Joining => "joining",
            Status::Joined => "joined",
            Status::Left => "left",
            Status::Closed => "closed",
        }
    }
}

/// The signaling connection's state.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Signaling {
    Connecting,
    Registering,
    Registered,
    Offline { retry_at: Time },
}

/// The one armed `setTimeout`.
struct Timer {
    callback: Closure<dyn FnMut()>,
    handle: Option<i32>,
    at: Option<Time>,
}

/// The loop's state.
pub(crate) struct Driver {
    identity: Identity,
    settings: Settings,
    node: Node<BrowserApp>,
    inputs: UnboundedSender<Input>,
    socket: Option<SignalingClient>,
    generation: u32,
    signaling: Signaling,
    backoff: Duration,
    ice_servers: Vec<IceServer>,
    contacts: Vec<Id>,
    contact_deadline: Option<Time>,
    /// When to open connections to the contacts again if every one failed.
    contact_retry: Option<Time>,
    conns: BTreeMap<Id, Conn>,
    serial: u64,
    created: u32,
    tombstones: BTreeMap<Id, Time>,
    status: Status,
    detail: String,
    events: Vec<Object>,
    timer: Timer,
    authenticated: usize,
    pub(crate) closed: bool,
}

/// Microseconds since the page's time origin.
fn now() -> Time {
    let ms = web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now());
    Time::from_micros((ms * 1000.0) as u64)
}

/// 8 random bytes from `crypto.getRandomValues`.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if let Some(crypto) = web_sys::window().and_then(|w| w.crypto().ok()) {
        let _ = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    u64::from_le_bytes(bytes)
}

fn random_nonce() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    if let Some(crypto) = web_sys::window().and_then(|w| w.crypto().ok()) {
        let _ = crypto.get_random_values_with_u8_array(&mut bytes);
    }
    bytes
}

/// The hex of an id (what the page and the signaling server use).
pub(crate) fn hex(id: Id) -> String {
    to_hex(&id.to_bytes())
}

/// The id of a signaling peer id.
fn id_of(peer: &PeerId) -> Option<Id> {
    from_hex::<16>(peer.as_str()).map(Id::from_bytes)
}

fn peer_id(id: Id) -> Option<PeerId> {
    PeerId::new(hex(id)).ok()
}

fn is_signal(message: &Message<AppMessage>) -> bool {
    matches!(message, Message::Route(Routed { body: RoutedBody::App(AppMessage::Signal(_)), .. }))
}

fn app_of(message: &Message<AppMessage>) -> Option<&AppMessage> {
    match message {
        Message::Route(Routed { body: RoutedBody::App(app), .. }) | Message::Direct(app) => Some(app),
        _ => None,
    }
}

impl Driver {
    pub(crate) fn new(identity: Identity, settings: Settings, inputs: UnboundedSender<Input>) -> Self {
        let mut config = settings.core.clone();
        config.rng_seed = random_u64();
        let node = Node::new(identity.id, config, BrowserApp::default());
        let tx = inputs.clone();
        let callback = Closure::<dyn FnMut()>::new(move || {
            let _ = tx.unbounded_send(Input::Timer);
        });
        Driver {
            ice_servers: settings.ice_servers.clone().unwrap_or_default(),
            identity,
            settings,
            node,
            inputs,
            socket: None,
            generation: 0,
            signaling: Signaling::Connecting,
            backoff: Duration::from_secs(1),
            contacts: Vec::new(),
            contact_deadline: None,
            contact_retry: None,
            conns: BTreeMap::new(),
            serial: 0,
            created: 0,
            tombstones: BTreeMap::new(),
            status: Status::Connecting,
            detail: String::new(),
            events: Vec::new(),
            timer: Timer { callback, handle: None, at: None },
            authenticated: 0,
            closed: false,
        }
    }

    /// This node's id.
    pub(crate) fn id(&self) -> Id {
        self.identity.id
    }

    /// Events for the page, emitted by the loop once it no longer borrows the driver.
    pub(crate) fn take_events(&mut self) -> Vec<Object> {
        std::mem::take(&mut self.events)
    }

    /// Connects to the signaling server.
    pub(crate) fn start(&mut self) {
        self.connect_signaling();
        self.arm_timer();
    }

    /// Handles one input.
    pub(crate) fn handle(&mut self, input: Input) {
        if self.closed {
            return;
        }
        match input {
            Input::Signaling(generation, event) if generation == self.generation => self.on_signaling(event),
            Input::Signaling(..) => {}
            Input::Transport(peer, serial, event) => {
                if self.conns.get(&peer).is_some_and(|c| c.serial == serial) {
                    self.on_transport(peer, event);
                }
            }
            Input::Described { peer, serial, result } => self.on_described(peer, serial, result),
            Input::SignalFailed { peer, serial, reason } => {
                if self.conns.get(&peer).is_some_and(|c| c.serial == serial) {
                    self.attempt_failed(peer, &reason);
                }
            }
            Input::Signed { peer, serial, result } => self.on_signed(peer, serial, result),
            Input::RegisterSigned { generation, nonce, result } => {
                if generation == self.generation {
                    self.on_register_signed(&nonce, result);
                }
            }
            Input::Timer => self.on_timer(),
            Input::Command(command) => self.on_command(command),
        }
        self.run_node();
    }

    // ---- the core ---------------------------------------------------------------------

    /// Drains the core's output until it has none, then re-arms the timer.
    fn run_node(&mut self) {
        if self.closed {
            return;
        }
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.node.poll_transmit() {
                progressed = true;
                self.transmit(transmit);
            }
            while let Some(event) = self.node.poll_event() {
                progressed = true;
                self.on_core_event(event);
            }
            while let Some(delivered) = self.node.app_mut().take() {
                progressed = true;
                self.on_delivered(delivered);
            }
            if !progressed {
                break;
            }
        }
        self.refresh_status();
        self.arm_timer();
    }

    fn transmit(&mut self, Transmit { to, message }: Transmit<AppMessage>) {
        let open = self.conns.get(&to).is_some_and(Conn::is_open);
        if open {
            self.send_message(to, &message);
            return;
        }
        let message = if is_signal(&message) {
            match self.relay_signal(to, message) {
                Some(message) => message,
                None => return,
            }
        } else {
            message
        };
        if matches!(message, Message::Leave) {
            return; // Not worth a new connection.
        }
        if let Some(conn) = self.conns.get_mut(&to) {
            if conn.pending.len() < MAX_PENDING {
                conn.pending.push(message);
            } else {
                self.send_failed(to, message);
            }
            return;
        }
        if self.tombstones.get(&to).is_some_and(|&until| until > now()) {
            self.send_failed(to, message);
            return;
        }
        self.connect(to, vec![message]);
    }

    fn send_failed(&mut self, to: Id, message: Message<AppMessage>) {
        self.node.handle_send_failed(to, message, now());
    }

    /// Sends a signal whose next hop `next` has no open connection to the open connection
    /// numerically closest to the target: only if closer than this node, except at the
    /// signal's first hop. Otherwise, when `next` is not the signal's target, gives the
    /// signal back to wait for a connection to `next` like any message (that connection is
    /// signalled on its own); a signal for an unconnected target with no way on is dropped,
    /// and its sender's attempt times out.
    fn relay_signal(&mut self, next: Id, message: Message<AppMessage>) -> Option<Message<AppMessage>> {
        let Message::Route(Routed { key, hops, .. }) = &message else { return None };
        let (key, first_hop) = (*key, *hops <= 1);
        let own = key.ring_distance(self.id());
        let best = self
            .conns
            .iter()
            .filter(|(id, c)| c.is_open() && **id != next)
            .map(|(id, _)| *id)
            .min_by_key(|id| (key.ring_distance(*id), *id));
        match best {
            Some(via) if first_hop || key.ring_distance(via) < own => {
                self.send_message(via, &message);
                None
            }
            _ if next != key => Some(message),
            _ => {
                tracing::debug!(to = %key, "no open connection to relay a signal through; dropped");
                None
            }
        }
    }

    fn on_core_event(&mut self, event: Event) {
        match event {
            Event::Joined => {
                self.contact_deadline = None;
                self.emit("joined", &[("nodeId", hex(self.id()).into())]);
            }
            Event::JoinFailed => {
                // Try the next contact.
                if !self.contacts.is_empty() {
                    self.contacts.rotate_left(1);
                }
                self.contact_deadline = Some(now());
                self.maybe_join();
            }
            Event::NodeLeft(id) => self.drop_conn(id, "the node left", false),
            // A connection still being set up goes on: its slowness may be what made the
            // core's probe time out, and once open the node proves itself alive again.
            Event::NodeFailed(id) if self.conns.get(&id).is_some_and(Conn::is_open) => {
                self.drop_conn(id, "the node failed", false);
            }
            _ => {}
        }
    }

    fn on_delivered(&mut self, delivered: Delivered) {
        match delivered {
            Delivered::Payload { key, hops, payload } => {
                let data: JsValue = if payload.text {
                    String::from_utf8_lossy(&payload.data).into_owned().into()
                } else {
                    Uint8Array::from(payload.data.as_slice()).into()
                };
                self.emit(
                    "delivered",
                    &[
                        ("key", hex(key).into()),
                        ("origin", hex(payload.origin).into()),
                        ("hops", hops.into()),
                        ("data", data),
                    ],
                );
            }
            Delivered::Signal(signal) => self.on_overlay_signal(signal),
        }
    }

    // ---- connections ------------------------------------------------------------------

    /// Opens a connection to `to`, with `pending` messages for it.
    fn connect(&mut self, to: Id, pending: Vec<Message<AppMessage>>) {
        let any_open = self.conns.values().any(Conn::is_open);
        let via = if self.node.is_joined() && any_open {
            Via::Overlay
        } else if self.signaling == Signaling::Registered {
            Via::Server
        } else if any_open {
            Via::Overlay
        } else {
            for message in pending {
                self.send_failed(to, message);
            }
            return;
        };
        self.open_conn(to, Role::Offerer, via, random_u64(), pending, None);
    }

    /// Creates the connection and starts its offer (or its answer to `offer`).
    fn open_conn(
        &mut self,
        to: Id,
        role: Role,
        via: Via,
        session: u64,
        pending: Vec<Message<AppMessage>>,
        offer: Option<String>,
    ) {
        if self.created >= self.settings.connection_budget {
            self.error(&format!(
                "connection budget used up ({} of {PEER_CONNECTION_LIMIT} RTCPeerConnections made): routing \
                 through the {} open connections; reload the page to renew it",
                self.created,
                self.conns.len()
            ));
            for message in pending {
                self.send_failed(to, message);
            }
            return;
        }
        self.evict(1);
        self.serial += 1;
        let serial = self.serial;
        let peer = match Peer::new(to, serial, role, &self.ice_servers, &self.inputs) {
            Ok(peer) => peer,
            Err(err) => {
                self.error(&format!("RTCPeerConnection for {}: {}", hex(to), js_text(&err)));
                for message in pending {
                    self.send_failed(to, message);
                }
                return;
            }
        };
        self.created += 1;
        let pc = peer.handle();
        let tx = self.inputs.clone();
        spawn_local(async move {
            let result = match offer {
                None => Peer::create_offer(pc).await,
                Some(sdp) => Peer::accept_offer(pc, sdp).await,
            };
            let result = result.map_err(|e| js_text(&e));
            let _ = tx.unbounded_send(Input::Described { peer: to, serial, result });
        });
        let t = now();
        self.conns.insert(
            to,
            Conn {
                serial,
                peer,
                role,
                via,
                session,
                stage: Stage::Signaling,
                frames: Reassembler::new(past_core::wire::MAX_FRAME_BYTES),
                pending,
                created: t,
                last_used: t,
                last_heard: t,
                joined: false,
                retried: false,
            },
        );
    }

    /// Closes idle connections that are neither leaves nor routing table entries (least
    /// recently used first) until `room` more fit under the limit. Idle: nothing sent or
    /// received for three keep-alive periods, so a peer that keeps us in its own leaf set
    /// (and probes us) keeps its connection.
    fn evict(&mut self, room: usize) {
        let t = now();
        let idle = self.settings.core.keepalive_interval.map_or(EVICTION_GRACE, |k| (k * 3).max(EVICTION_GRACE));
        while self.conns.len() + room > self.settings.max_connections {
            let state = self.node.state();
            let victim = self
                .conns
                .iter()
                .filter(|(id, c)| {
                    c.is_open()
                        && c.pending.is_empty()
                        && t.since(c.created) >= EVICTION_GRACE
                        && t.since(c.last_used) >= idle
                        && !state.leaf_set.contains(**id)
                        && !state.table.contains(**id)
                        && !self.contacts.contains(id)
                })
                .min_by_key(|(_, c)| c.last_used)
                .map(|(id, _)| *id);
            match victim {
                Some(id) => self.close_gracefully(id),
                None => break,
            }
        }
    }

    /// Removes a connection; its queued messages fail. `tombstone`: the peer vanished, so
    /// messages for it fail at once for a while instead of opening a new connection.
    fn drop_conn(&mut self, peer: Id, reason: &str, tombstone: bool) {
        let Some(conn) = self.conns.remove(&peer) else { return };
        let was_open = conn.is_open();
        tracing::debug!(peer = %peer, reason, "connection closed");
        let Conn { pending, peer: handle, .. } = conn;
        drop(handle);
        if was_open {
            if tombstone {
                let ttl = self.settings.core.probe_timeout * 2;
                self.tombstones.insert(peer, now() + ttl);
            }
            self.emit(
                "connection",
                &[("peer", hex(peer).into()), ("state", "closed".into()), ("reason", reason.into())],
            );
        }
        for message in pending {
            self.send_failed(peer, message);
        }
    }

    /// Closes an open connection on purpose: the peer is told first (so it does not take us
    /// for failed), and the connection is torn down a moment later, once the notice is out.
    fn close_gracefully(&mut self, peer: Id) {
        let Some(mut conn) = self.conns.remove(&peer) else { return };
        tracing::debug!(peer = %peer, "evicting: neither a leaf nor a routing table entry");
        let _ = conn.peer.send(Data::Bytes(frame::encode_close()));
        self.emit(
            "connection",
            &[("peer", hex(peer).into()), ("state", "closed".into()), ("reason", "evicted".into())],
        );
        let pending = std::mem::take(&mut conn.pending);
        spawn_local(async move {
            crate::transport::sleep_ms(1000).await;
            drop(conn);
        });
        for message in pending {
            self.send_failed(peer, message);
        }
    }

    /// A connection attempt failed: an overlay attempt falls back to the server once, if
    /// registered; otherwise the connection is dropped.
    fn attempt_failed(&mut self, peer: Id, reason: &str) {
        let Some(conn) = self.conns.get(&peer) else { return };
        let fallback = conn.role == Role::Offerer
            && conn.via == Via::Overlay
            && !conn.retried
            && !conn.is_open()
            && self.signaling == Signaling::Registered;
        if fallback {
            let pending = self.conns.remove(&peer).map(|c| c.pending).unwrap_or_default();
            tracing::debug!(peer = %peer, reason, "overlay signaling failed; trying the signaling server");
            self.open_conn(peer, Role::Offerer, Via::Server, random_u64(), pending, None);
            if let Some(conn) = self.conns.get_mut(&peer) {
                conn.retried = true;
            }
        } else {
            self.drop_conn(peer, reason, false);
        }
    }

    fn on_described(&mut self, peer: Id, serial: u64, result: Result<String, String>) {
        let Some(conn) = self.conns.get(&peer).filter(|c| c.serial == serial) else { return };
        let sdp = match result {
            Ok(sdp) => sdp,
            Err(err) => return self.attempt_failed(peer, &format!("creating the session description: {err}")),
        };
        let (role, via, session) = (conn.role, conn.via, conn.session);
        match via {
            Via::Overlay => {
                let kind = match role {
                    Role::Offerer => SignalKind::Offer { sdp },
                    Role::Answerer => SignalKind::Answer { sdp },
                };
                let signal = OverlaySignal { from: self.id(), to: peer, session, kind };
                self.send_signal(signal);
            }
            Via::Server => {
                let payload = match role {
                    Role::Offerer => SignalPayload::Offer { sdp },
                    Role::Answerer => SignalPayload::Answer { sdp },
                };
                let sent = match (&self.socket, peer_id(peer)) {
                    (Some(socket), Some(to)) => {
                        socket.send(&ClientMessage::Signal { to, payload }).map_err(|e| js_text(&e))
                    }
                    _ => Err("the signaling server is not connected".into()),
                };
                if let Err(err) = sent {
                    self.attempt_failed(peer, &format!("signaling: {err}"));
                }
            }
        }
    }

    /// Routes a signal we originate with key = its target. The first hop is the open
    /// connection numerically closest to the target (our own tables may not know the target
    /// at all, e.g. when answering a node that has just learnt of us: routing would end
    /// here); Pastry routing takes it on from there.
    fn send_signal(&mut self, signal: OverlaySignal) {
        let key = signal.to;
        let message = Message::Route(Routed { key, hops: 1, body: RoutedBody::App(AppMessage::Signal(signal)) });
        let first = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_open())
            .map(|(id, _)| *id)
            .min_by_key(|id| (key.ring_distance(*id), *id));
        match first {
            Some(first) => self.send_message(first, &message),
            None => tracing::debug!(to = %key, "no open connection to send a signal through; dropped"),
        }
    }

    /// An offer from `from` (through the server or the overlay).
    fn on_offer(&mut self, from: Id, via: Via, session: u64, sdp: String) {
        if from == self.id() {
            return;
        }
        let mut pending = Vec::new();
        if let Some(existing) = self.conns.get(&from) {
            // Whoever sends an overlay offer may write any `from` into it: it may not tear
            // down a connection over which that peer is heard from (a peer that restarted
            // falls silent there first).
            let alive = existing.is_open() && now().since(existing.last_heard) < self.settings.core.probe_timeout;
            if via == Via::Overlay && alive {
                tracing::warn!(peer = %from, "an overlay offer names a peer we hear from on an open connection: ignored");
                return;
            }
            let glare = existing.role == Role::Offerer && !existing.is_open();
            if glare && self.id() < from {
                return; // Both offered: the smaller id's offer wins; the peer answers ours.
            }
            if let Some(conn) = self.conns.remove(&from) {
                pending = conn.pending;
            }
        }
        if self.created >= self.settings.connection_budget {
            if via == Via::Overlay {
                let reject = OverlaySignal {
                    from: self.id(),
                    to: from,
                    session,
                    kind: SignalKind::Reject { reason: "no connection budget left".into() },
                };
                self.send_signal(reject);
            }
            for message in pending {
                self.send_failed(from, message);
            }
            return;
        }
        self.open_conn(from, Role::Answerer, via, session, pending, Some(sdp));
    }

    /// An answer from `from`; `session` is checked for overlay answers.
    fn on_answer(&mut self, from: Id, session: Option<u64>, sdp: String) {
        let Some(conn) = self.conns.get(&from) else { return };
        if conn.role != Role::Offerer || !matches!(conn.stage, Stage::Signaling) {
            return;
        }
        if session.is_some_and(|s| s != conn.session) {
            return;
        }
        let (pc, serial, tx) = (conn.peer.handle(), conn.serial, self.inputs.clone());
        spawn_local(async move {
            if let Err(err) = Peer::accept_answer(pc, sdp).await {
                let reason = format!("applying the answer: {}", js_text(&err));
                let _ = tx.unbounded_send(Input::SignalFailed { peer: from, serial, reason });
            }
        });
    }

    fn on_overlay_signal(&mut self, signal: OverlaySignal) {
        let me = self.id();
        if signal.to != me {
            // It reached us because its target is not in the overlay: tell the sender.
            if signal.from == me {
                if let Some(conn) = self.conns.get(&signal.to)
                    && conn.session == signal.session
                {
                    self.attempt_failed(signal.to, "the node is not in the overlay");
                }
            } else if !matches!(signal.kind, SignalKind::Reject { .. }) {
                let reject = OverlaySignal {
                    from: signal.to,
                    to: signal.from,
                    session: signal.session,
                    kind: SignalKind::Reject { reason: "the node is not in the overlay".into() },
                };
                self.send_signal(reject);
            }
            return;
        }
        match signal.kind {
            SignalKind::Offer { sdp } => self.on_offer(signal.from, Via::Overlay, signal.session, sdp),
            SignalKind::Answer { sdp } => self.on_answer(signal.from, Some(signal.session), sdp),
            SignalKind::Reject { reason } => {
                if self.conns.get(&signal.from).is_some_and(|c| c.session == signal.session && !c.is_open()) {
                    self.attempt_failed(signal.from, &format!("refused: {reason}"));
                }
            }
        }
    }

    fn on_transport(&mut self, peer: Id, event: TransportEvent) {
        match event {
            TransportEvent::Channel(channel) => {
                if let Some(conn) = self.conns.get_mut(&peer)
                    && conn.peer.set_channel(channel)
                {
                    self.on_channel_open(peer);
                }
            }
            TransportEvent::Open => self.on_channel_open(peer),
            TransportEvent::Message(data) => self.on_data(peer, data),
            TransportEvent::BufferedLow => {
                if let Some(conn) = self.conns.get_mut(&peer)
                    && let Err(err) = conn.peer.flush()
                {
                    self.drop_conn(peer, &err, true);
                }
            }
            TransportEvent::Closed(reason) => {
                let open = self.conns.get(&peer).is_some_and(Conn::is_open);
                if open {
                    self.drop_conn(peer, &reason, true);
                } else {
                    self.attempt_failed(peer, &reason);
                }
            }
        }
    }

    /// The data channel opened: start the handshake.
    fn on_channel_open(&mut self, peer: Id) {
        let joined = self.node.is_joined();
        let own_key = self.identity.public_key;
        let Some(conn) = self.conns.get_mut(&peer) else { return };
        if !conn.peer.mark_open() {
            return;
        }
        let Some((local, remote)) = conn.peer.descriptions() else {
            return self.drop_conn(peer, "no session descriptions", false);
        };
        match Handshake::new(own_key, random_nonce(), &local, &remote, peer) {
            Ok(handshake) => {
                let hello = frame::encode_auth(&handshake.hello(joined));
                conn.stage = Stage::Authenticating(Box::new(handshake));
                if let Err(err) = conn.peer.send(Data::Bytes(hello)) {
                    self.drop_conn(peer, &err, false);
                }
            }
            Err(err) => self.drop_conn(peer, &format!("authentication: {err}"), false),
        }
    }

    /// A data channel message from `peer`.
    fn on_data(&mut self, peer: Id, data: Data) {
        let Some(conn) = self.conns.get_mut(&peer) else { return };
        let Data::Bytes(bytes) = data else {
            return self.refuse(peer, "a text message");
        };
        let incoming = match conn.frames.push(&bytes) {
            Ok(Some(incoming)) => incoming,
            Ok(None) => return,
            Err(err) => return self.refuse(peer, &format!("bad frame: {err}")),
        };
        match (incoming, &mut conn.stage) {
            (Incoming::Auth(AuthMessage::Hello { public_key, nonce, joined }), Stage::Authenticating(handshake)) => {
                match handshake.on_hello(public_key, nonce, joined) {
                    Ok(transcript) => {
                        conn.joined = joined;
                        let (serial, tx) = (conn.serial, self.inputs.clone());
                        let signing = self.identity.sign(&transcript);
                        spawn_local(async move {
                            let result = signing.await;
                            let _ = tx.unbounded_send(Input::Signed { peer, serial, result });
                        });
                    }
                    Err(err) => self.refuse(peer, &format!("authentication failed: {err}")),
                }
            }
            (Incoming::Auth(AuthMessage::Proof { signature }), Stage::Authenticating(handshake)) => {
                match handshake.on_proof(&signature) {
                    Ok(_) => self.on_authenticated(peer),
                    Err(err) => self.refuse(peer, &format!("authentication failed: {err}")),
                }
            }
            (Incoming::Pastry(frame), Stage::Open) => {
                conn.last_used = now();
                conn.last_heard = conn.last_used;
                match past_core::wire::decode::<Message<AppMessage>>(&frame) {
                    Ok(message) if app_of(&message).is_none_or(AppMessage::within_bounds) => {
                        self.node.handle_message(peer, message, now());
                    }
                    Ok(_) => self.refuse(peer, "an application message over its limits"),
                    Err(err) => self.refuse(peer, &format!("undecodable Pastry frame: {err}")),
                }
            }
            (Incoming::Close, Stage::Open) => self.drop_conn(peer, "closed by the peer", false),
            (Incoming::Pastry(_) | Incoming::Close, _) => self.refuse(peer, "a Pastry frame before authentication"),
            (Incoming::Auth(_), _) => self.refuse(peer, "an unexpected handshake message"),
        }
    }

    /// Drops a peer that broke the protocol.
    fn refuse(&mut self, peer: Id, reason: &str) {
        tracing::warn!(peer = %peer, "dropping the peer: {reason}");
        self.emit("refused", &[("peer", hex(peer).into()), ("reason", reason.into())]);
        self.drop_conn(peer, reason, false);
    }

    fn on_signed(&mut self, peer: Id, serial: u64, result: Result<[u8; 64], String>) {
        let Some(conn) = self.conns.get_mut(&peer).filter(|c| c.serial == serial) else { return };
        let sent = match result {
            Ok(signature) => conn.peer.send(Data::Bytes(frame::encode_auth(&Handshake::proof(signature)))),
            Err(err) => Err(format!("signing: {err}")),
        };
        if let Err(err) = sent {
            self.drop_conn(peer, &err, false);
        }
    }

    /// The peer proved its id: flush what waited for it.
    fn on_authenticated(&mut self, peer: Id) {
        self.tombstones.remove(&peer);
        let Some(conn) = self.conns.get_mut(&peer) else { return };
        conn.stage = Stage::Open;
        conn.last_used = now();
        conn.last_heard = conn.last_used;
        let pending = std::mem::take(&mut conn.pending);
        self.emit("connection", &[("peer", hex(peer).into()), ("state", "open".into())]);
        for message in pending {
            self.send_message(peer, &message);
        }
        self.maybe_join();
    }

    /// Encodes and sends a Pastry message on an open connection.
    fn send_message(&mut self, to: Id, message: &Message<AppMessage>) {
        let frame = match past_core::wire::encode(message) {
            Ok(frame) => frame,
            Err(err) => {
                self.error(&format!("cannot encode a message for {}: {err}", hex(to)));
                return;
            }
        };
        let messages = match frame::encode_pastry(&frame, past_core::wire::MAX_FRAME_BYTES) {
            Ok(messages) => messages,
            Err(err) => {
                self.error(&format!("cannot frame a message for {}: {err}", hex(to)));
                return;
            }
        };
        let Some(conn) = self.conns.get_mut(&to) else { return };
        conn.last_used = now();
        for bytes in messages {
            if let Err(err) = conn.peer.send(Data::Bytes(bytes)) {
                self.drop_conn(to, &err, true);
                return;
            }
        }
    }

    // ---- joining ----------------------------------------------------------------------

    /// Joins through a contact once one is connected (preferably one that is joined).
    fn maybe_join(&mut self) {
        if self.node.phase() != Phase::Idle || self.contacts.is_empty() {
            return;
        }
        let open: Vec<(Id, bool)> = self
            .contacts
            .iter()
            .filter_map(|id| self.conns.get(id).filter(|c| c.is_open()).map(|c| (*id, c.joined)))
            .collect();
        let late = self.contact_deadline.is_some_and(|t| t <= now());
        let contact = open.iter().find(|(_, joined)| *joined).or(if late { open.first() } else { None });
        if let Some(&(contact, _)) = contact {
            tracing::info!(contact = %contact, "joining");
            self.node.join(Some(contact), now());
        }
    }

    /// Not joined yet and every connection to a contact failed: try them again (every
    /// [`CONTACT_RETRY`] at most, each attempt costs connections of the budget).
    fn retry_contacts(&mut self, t: Time) {
        if self.node.phase() != Phase::Idle
            || self.contacts.is_empty()
            || self.signaling != Signaling::Registered
            || self.contacts.iter().any(|c| self.conns.contains_key(c))
        {
            return;
        }
        match self.contact_retry {
            Some(at) if at > t => {}
            Some(_) => {
                tracing::info!("every contact failed; trying them again");
                self.contact_retry = Some(t + CONTACT_RETRY);
                self.contact_deadline = Some(t + CONTACT_GRACE);
                for contact in self.contacts.clone() {
                    self.open_conn(contact, Role::Offerer, Via::Server, random_u64(), Vec::new(), None);
                }
            }
            None => self.contact_retry = Some(t + CONTACT_RETRY),
        }
    }

    // ---- signaling server -------------------------------------------------------------

    fn connect_signaling(&mut self) {
        self.generation += 1;
        self.signaling = Signaling::Connecting;
        match SignalingClient::connect(&self.settings.signaling_url, self.generation, self.inputs.clone()) {
            Ok(socket) => self.socket = Some(socket),
            Err(err) => {
                let reason = js_text(&err);
                self.signaling_lost(&reason);
            }
        }
    }

    fn signaling_lost(&mut self, reason: &str) {
        self.socket = None;
        let retry_at = now() + self.backoff;
        self.error(&format!("signaling server unreachable ({reason}); retrying in {} s", self.backoff.as_secs()));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.signaling = Signaling::Offline { retry_at };
    }

    fn on_signaling(&mut self, event: SignalingEvent) {
        match event {
            SignalingEvent::Open => self.signaling = Signaling::Registering,
            SignalingEvent::Message(message) => self.on_server_message(message),
            SignalingEvent::Undecodable(err) => self.error(&format!("unreadable signaling message: {err}")),
            SignalingEvent::Closed { code, reason } => {
                self.signaling_lost(&format!(
                    "closed, code {code}{}{reason}",
                    if reason.is_empty() { "" } else { ": " }
                ));
            }
        }
    }

    fn on_server_message(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Challenge { nonce } => {
                let Some(peer) = peer_id(self.id()) else { return };
                let signing = self.identity.sign(&register_transcript(&nonce, &peer));
                let (generation, tx) = (self.generation, self.inputs.clone());
                spawn_local(async move {
                    let result = signing.await;
                    let _ = tx.unbounded_send(Input::RegisterSigned { generation, nonce, result });
                });
            }
            ServerMessage::Welcome { ice_servers, peers, .. } => {
                self.signaling = Signaling::Registered;
                self.backoff = Duration::from_secs(1);
                if self.settings.ice_servers.is_none() {
                    self.ice_servers = ice_servers;
                }
                if self.node.phase() != Phase::Idle {
                    return; // Joined already (a reconnection): the server is for newcomers now.
                }
                self.contacts = peers.iter().filter_map(id_of).filter(|&id| id != self.id()).collect();
                if self.contacts.is_empty() {
                    tracing::info!("no other node registered: founding the overlay");
                    self.node.join(None, now());
                    return;
                }
                self.contact_deadline = Some(now() + CONTACT_GRACE);
                self.contact_retry = None;
                for contact in self.contacts.clone() {
                    if !self.conns.contains_key(&contact) {
                        self.open_conn(contact, Role::Offerer, Via::Server, random_u64(), Vec::new(), None);
                    }
                }
                self.maybe_join();
            }
            ServerMessage::Signal { from, payload } => {
                let Some(from) = id_of(&from) else { return };
                match payload {
                    SignalPayload::Offer { sdp } => self.on_offer(from, Via::Server, random_u64(), sdp),
                    SignalPayload::Answer { sdp } => self.on_answer(from, None, sdp),
                    SignalPayload::Candidate { candidate, sdp_mid, sdp_m_line_index } => {
                        let Some(conn) = self.conns.get(&from) else { return };
                        let pc = conn.peer.handle();
                        spawn_local(async move {
                            if let Err(err) = Peer::add_candidate(pc, candidate, sdp_mid, sdp_m_line_index).await {
                                tracing::debug!("a candidate from {from:?} was refused: {}", js_text(&err));
                            }
                        });
                    }
                }
            }
            ServerMessage::Error { code, message } => {
                self.error(&format!("signaling error {code}: {message}"));
            }
            other => tracing::debug!("unexpected signaling message {other:?}"),
        }
    }

    fn on_register_signed(&mut self, nonce: &str, result: Result<[u8; 64], String>) {
        let (Some(peer), Some(socket)) = (peer_id(self.id()), &self.socket) else { return };
        let signature = match result {
            Ok(signature) => signature,
            Err(err) => return self.error(&format!("cannot sign the registration: {err}")),
        };
        let _ = nonce;
        let register = ClientMessage::Register {
            peer,
            public_key: to_hex(&self.identity.public_key),
            signature: to_hex(&signature),
        };
        if let Err(err) = socket.send(&register) {
            let reason = js_text(&err);
            self.signaling_lost(&reason);
        }
    }

    // ---- timer, commands --------------------------------------------------------------

    fn on_timer(&mut self) {
        self.timer.handle = None;
        self.timer.at = None;
        let t = now();
        if self.node.poll_timeout().is_some_and(|at| at <= t) {
            self.node.handle_timeout(t);
        }
        if let Signaling::Offline { retry_at } = self.signaling
            && retry_at <= t
        {
            self.connect_signaling();
        }
        let stale: Vec<Id> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.is_open() && t.since(c.created) > self.settings.connect_timeout)
            .map(|(id, _)| *id)
            .collect();
        for peer in stale {
            self.attempt_failed(peer, "timed out");
        }
        self.tombstones.retain(|_, until| *until > t);
        self.evict(0);
        self.retry_contacts(t);
        self.maybe_join();
    }

    fn arm_timer(&mut self) {
        if self.closed {
            return;
        }
        let t = now();
        let at = self.node.poll_timeout().map_or(t + TICK, |n| n.min(t + TICK));
        if self.timer.at.is_some_and(|armed| armed <= at) && self.timer.handle.is_some() {
            return;
        }
        let Some(window) = web_sys::window() else { return };
        if let Some(handle) = self.timer.handle.take() {
            window.clear_timeout_with_handle(handle);
        }
        let delay_ms = at.since(t).as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        match window.set_timeout_with_callback_and_timeout_and_arguments_0(
            self.timer.callback.as_ref().unchecked_ref(),
            delay_ms,
        ) {
            Ok(handle) => {
                self.timer.handle = Some(handle);
                self.timer.at = Some(at);
            }
            Err(err) => tracing::error!("setTimeout failed: {}", js_text(&err)),
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Route { key, payload } => {
                if self.node.is_joined() {
                    self.node.route(key, AppMessage::Payload(payload), now());
                } else {
                    self.error("cannot route: the node has not joined yet");
                }
            }
            Command::Connect(id) => {
                if id != self.id() && !self.conns.contains_key(&id) {
                    self.connect(id, Vec::new());
                }
            }
            Command::Leave => self.leave(),
            Command::Close => self.close(),
        }
    }

    /// Tells the nodes we know that we leave.
    pub(crate) fn leave(&mut self) {
        if matches!(self.node.phase(), Phase::Joined) {
            self.node.leave(now());
            self.run_node();
        }
        self.status = Status::Left;
        self.refresh_status();
    }

    fn close(&mut self) {
        self.conns.clear();
        self.socket = None;
        if let (Some(window), Some(handle)) = (web_sys::window(), self.timer.handle.take()) {
            window.clear_timeout_with_handle(handle);
        }
        self.status = Status::Closed;
        self.refresh_status();
        self.closed = true;
    }

    // ---- what the page sees -----------------------------------------------------------

    fn refresh_status(&mut self) {
        let status = match (self.status, self.node.phase()) {
            (Status::Left | Status::Closed, _) => self.status,
            (_, Phase::Joined) => Status::Joined,
            (_, Phase::Joining { .. }) => Status::Joining,
            _ if self.signaling == Signaling::Registered => Status::Joining,
            _ => Status::Connecting,
        };
        let signaling = match &self.signaling {
            Signaling::Connecting => "connecting to the signaling server".to_string(),
            Signaling::Registering => "registering with the signaling server".to_string(),
            Signaling::Registered => "registered with the signaling server".to_string(),
            Signaling::Offline { retry_at } => {
                format!("signaling server unreachable, retrying in {} s", retry_at.since(now()).as_secs() + 1)
            }
        };
        let budget = if self.created >= self.settings.connection_budget {
            "; connection budget used up, routing through open connections"
        } else {
            ""
        };
        let detail = format!("{signaling}{budget}");
        if status != self.status || detail != self.detail {
            self.status = status;
            self.detail = detail.clone();
            self.emit("status", &[("status", status.as_str().into()), ("detail", detail.into())]);
        }
        let authenticated = self.conns.values().filter(|c| c.is_open()).count();
        if authenticated != self.authenticated {
            self.authenticated = authenticated;
            self.emit("peers", &[("count", (authenticated as u32).into())]);
        }
    }

    /// The status as one line.
    pub(crate) fn status_line(&self) -> String {
        format!("{} ({})", self.status.as_str(), self.detail)
    }

    fn error(&mut self, message: &str) {
        tracing::warn!("{message}");
        self.emit("error", &[("message", message.into())]);
    }

    fn emit(&mut self, kind: &str, fields: &[(&str, JsValue)]) {
        let event = Object::new();
        let _ = Reflect::set(&event, &"type".into(), &kind.into());
        for (key, value) in fields {
            let _ = Reflect::set(&event, &(*key).into(), value);
        }
        self.events.push(event);
    }

    /// The node view: identity, status, tables, connections, connection budget.
    pub(crate) fn view(&self) -> Object {
        let state = self.node.state();
        let ids = |ids: &[Id]| ids.iter().map(|id| JsValue::from(hex(*id))).collect::<Array>();
        let rtt_ms = |rtt: past_core::Rtt| rtt.micros().map_or(JsValue::NULL, |us| (f64::from(us) / 1000.0).into());
        let leaf_set = Object::new();
        set(&leaf_set, "counterClockwise", ids(state.leaf_set.side(past_core::Side::CounterClockwise)).into());
        set(&leaf_set, "clockwise", ids(state.leaf_set.side(past_core::Side::Clockwise)).into());
        let table: Array = state
            .table
            .entries()
            .map(|(row, column, entry)| {
                let e = Object::new();
                set(&e, "row", (row as u32).into());
                set(&e, "column", (column as u32).into());
                set(&e, "id", hex(entry.id).into());
                set(&e, "rttMs", rtt_ms(entry.rtt));
                JsValue::from(e)
            })
            .collect();
        let neighborhood: Array = state
            .neighborhood
            .entries()
            .iter()
            .map(|entry| {
                let e = Object::new();
                set(&e, "id", hex(entry.id).into());
                set(&e, "rttMs", rtt_ms(entry.rtt));
                JsValue::from(e)
            })
            .collect();
        let connections: Array = self
            .conns
            .iter()
            .map(|(id, c)| {
                let e = Object::new();
                set(&e, "id", hex(*id).into());
                let stage = match c.stage {
                    Stage::Signaling => "signaling",
                    Stage::Authenticating(_) => "authenticating",
                    Stage::Open => "open",
                };
                set(&e, "state", stage.into());
                set(&e, "direction", if c.role == Role::Offerer { "out" } else { "in" }.into());
                set(&e, "via", if c.via == Via::Server { "server" } else { "overlay" }.into());
                let rtt = state
                    .table
                    .rtt_of(*id)
                    .filter(|r| r.is_known())
                    .or_else(|| state.neighborhood.entries().iter().find(|e| e.id == *id).map(|e| e.rtt))
                    .unwrap_or(past_core::Rtt::UNKNOWN);
                set(&e, "rttMs", rtt_ms(rtt));
                set(&e, "leaf", state.leaf_set.contains(*id).into());
                set(&e, "table", state.table.contains(*id).into());
                set(&e, "backlog", (c.peer.backlog() as u32).into());
                JsValue::from(e)
            })
            .collect();
        let view = Object::new();
        set(&view, "nodeId", hex(self.id()).into());
        set(&view, "slot", self.identity.slot.into());
        set(&view, "status", self.status.as_str().into());
        set(&view, "detail", self.detail.clone().into());
        set(&view, "joined", self.node.is_joined().into());
        set(&view, "leafSet", leaf_set.into());
        set(&view, "routingTable", table.into());
        set(&view, "neighborhood", neighborhood.into());
        set(&view, "connections", connections.into());
        set(&view, "peerConnectionsCreated", self.created.into());
        set(&view, "peerConnectionLimit", PEER_CONNECTION_LIMIT.into());
        set(&view, "connectionBudget", self.settings.connection_budget.into());
        set(&view, "maxConnections", (self.settings.max_connections as u32).into());
        view
    }
}

fn set(object: &Object, key: &str, value: JsValue) {
    let _ = Reflect::set(object, &key.into(), &value);
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let (Some(window), Some(handle)) = (web_sys::window(), self.timer.handle.take()) {
            window.clear_timeout_with_handle(handle);
        }
    }
}
