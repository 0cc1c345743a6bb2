//! The driver: one event loop around `past_link::Stack` (the Pastry core and the peer
//! manager), with WebRTC, the signaling server, WebCrypto and a timer around it. It holds no
//! protocol decision: which connections exist, glare, the handshake, queues, eviction and
//! the connection budget are the manager's; joining is the stack's.
//!
//! Every browser callback only pushes an [`Input`] into one bounded queue
//! ([`crate::inputs`]); [`Driver::handle`] takes one input at a time, never awaits
//! (asynchronous browser work runs in spawned futures that push their result back as
//! another input), feeds the stack, carries out its commands and turns its events into the
//! page's events. One `setTimeout` is armed for the stack's next timeout (and the
//! signaling server's reconnection). Time is `performance.now()` in microseconds.

use litemap::LiteMap;
use std::time::Duration;

use js_sys::Object;
use past_core::past::{Answers, FileId, OpId, PastConfig, PublicKey, SignError, SignId, Signature};
use past_core::{Config, Id, Phase, Time};
use past_link::manager::{Command as Work, ConnId, ManagerConfig, Role};
use past_link::share::ShareLink;
use past_link::{Data, Payload, Stack, StackEvent};
use past_signaling_proto::{ClientMessage, IceServer, PeerId, SignalPayload, from_hex, to_hex};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::identity::{Identity, js_text};
use crate::inputs::Inputs;
use crate::page::{Page, Status};
use crate::signaling::{SignalingClient, SignalingEvent};
use crate::store::{Answer, Store};
use crate::transport::{Peer, TransportEvent};

mod files;
mod server;

pub(crate) use crate::files_glue::ApiError;
pub(crate) use files::{InsertRequest, Reply};

/// Chromium's lifetime limit of `RTCPeerConnection`s per tab, closed ones included.
pub(crate) const PEER_CONNECTION_LIMIT: u32 = 500;

/// Chunks a transfer requests ahead: 2 MiB in flight, so that the round trip of a request
/// through two event loops, IndexedDB or a `Blob` read does not bound the throughput.
const TRANSFER_WINDOW: u32 = 32;

/// Replica holders a lookup pulls from at once, by default (docs/results-browser.md).
pub(crate) const LOOKUP_SOURCES: u8 = 1;

/// Chunks a transfer requests at its start, so that the first ones are not queued behind a
/// whole window (the window then grows by one per chunk received).
const INITIAL_WINDOW: u32 = 2;

/// Longest wait before reconnecting to the signaling server.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Longest wait between two timer wake-ups while the signaling server is offline.
const OFFLINE_TICK: Duration = Duration::from_secs(1);

/// Everything the loop reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    /// From the signaling socket of a generation.
    Signaling(u32, SignalingEvent),
    /// From a connection.
    Transport(ConnId, TransportEvent),
    /// The SDP (offer or answer, ICE gathered) of a connection is ready, or failed.
    Described { conn: ConnId, result: Result<String, String> },
    /// Our offer's answer is applied.
    AnswerApplied { conn: ConnId },
    /// Setting up a connection failed (applying an answer or a candidate).
    Failed { conn: ConnId, reason: String },
    /// Our handshake proof for a connection is signed.
    Signed { conn: ConnId, result: Result<[u8; 64], String> },
    /// The round-trip time of a connection from its statistics.
    Rtt { conn: ConnId, rtt: Option<Duration> },
    /// Our registration is signed.
    RegisterSigned { generation: u32, result: Result<[u8; 64], String> },
    /// Storage requests were carried out.
    Stored(Vec<Answer>),
    /// A PAST signing request was answered by WebCrypto.
    PastSigned { id: SignId, result: Result<Signature, SignError> },
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
    /// Insert a file.
    Insert(InsertRequest),
    /// Look a file up.
    Lookup { link: ShareLink, on_progress: Option<js_sys::Function>, reply: Reply },
    /// The page's reader took a chunk of a lookup.
    LookupRead(OpId),
    /// The page's reader gave up a lookup.
    LookupCancel(OpId),
    /// Reclaim a file this identity inserted.
    Reclaim { file: FileId, reply: Reply },
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
    /// Gather relay (TURN) candidates only.
    pub(crate) relay_only: bool,
    pub(crate) manager: ManagerConfig,
    pub(crate) core: Config,
    /// Bytes offered to other nodes' replicas and cached copies (0: not decided yet).
    pub(crate) capacity: u64,
    /// Largest file stored or inserted (the core's default when `None`).
    pub(crate) max_file_size: Option<u64>,
    /// Bytes of replicas this identity may insert (unlimited when `None`).
    pub(crate) quota: Option<u64>,
    /// Replica holders a lookup pulls from at once.
    pub(crate) lookup_sources: u8,
    /// How lookups are answered.
    pub(crate) answers: Answers,
    /// Largest file answered along the route (the core's default when `None`).
    pub(crate) relay_max_size: Option<u64>,
}

impl Settings {
    /// PAST's settings for a node with key `key`.
    fn past_config(&self, key: PublicKey) -> PastConfig {
        let mut past = PastConfig::new(key, self.capacity);
        past.window = TRANSFER_WINDOW;
        past.initial_window = INITIAL_WINDOW;
        past.paced_reads = true;
        past.sources = self.lookup_sources;
        past.answers = self.answers;
        if let Some(max) = self.relay_max_size {
            past.relay_max_size = max;
        }
        if let Some(max) = self.max_file_size {
            past.max_file_size = max.min(past.max_file_size);
        }
        if let Some(quota) = self.quota {
            past.owner_quota = quota;
        }
        past
    }
}

/// The signaling connection's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Signaling {
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
    pub(crate) identity: Identity,
    pub(crate) settings: Settings,
    pub(crate) stack: Stack,
    inputs: Inputs,
    socket: Option<SignalingClient>,
    generation: u32,
    pub(crate) signaling: Signaling,
    backoff: Duration,
    ice_servers: Vec<IceServer>,
    pub(crate) conns: LiteMap<ConnId, Peer>,
    pub(crate) page: Page,
    timer: Timer,
    pub(crate) closed: bool,
    /// The replica store.
    pub(crate) store: Store,
    /// File operations asked for before the node joined.
    before_join: Vec<Command>,
    files: files::Files,
}

/// Microseconds since the page's time origin.
pub(crate) fn now() -> Time {
    let ms = web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now());
    Time::from_micros((ms * 1000.0) as u64)
}

/// 32 random bytes from `crypto.getRandomValues`.
pub(crate) fn random_seed() -> [u8; 32] {
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

impl Driver {
    pub(crate) fn new(identity: Identity, settings: Settings, store: Store, inputs: Inputs) -> Self {
        let stack = Stack::new(
            identity.id,
            identity.public_key,
            settings.core.clone(),
            settings.manager.clone(),
            settings.past_config(PublicKey(identity.public_key)),
            random_seed(),
            now(),
        );
        let tx = inputs.clone();
        let callback = Closure::<dyn FnMut()>::new(move || {
            let _ = tx.push(Input::Timer);
        });
        Driver {
            ice_servers: settings.ice_servers.clone().unwrap_or_default(),
            identity,
            settings,
            stack,
            inputs,
            socket: None,
            generation: 0,
            signaling: Signaling::Connecting,
            backoff: Duration::from_secs(1),
            conns: LiteMap::new(),
            page: Page::default(),
            timer: Timer { callback, handle: None, at: None },
            closed: false,
            store,
            files: files::Files::default(),
            before_join: Vec::new(),
        }
    }

    /// This node's id.
    pub(crate) fn id(&self) -> Id {
        self.identity.id
    }

    /// Events for the page, emitted by the loop once it no longer borrows the driver.
    pub(crate) fn take_events(&mut self) -> Vec<Object> {
        self.page.take_events()
    }

    /// Connects to the signaling server.
    pub(crate) fn start(&mut self) {
        self.connect_signaling();
        self.arm_timer();
    }

    /// Handles one input.
    pub(crate) fn handle(&mut self, input: Input) {
        self.inputs.taken(&input);
        if self.closed {
            return;
        }
        let t = now();
        match input {
            Input::Signaling(generation, event) if generation == self.generation => self.on_signaling(event, t),
            Input::Signaling(..) => {}
            Input::Transport(conn, event) => self.on_transport(conn, event, t),
            Input::Described { conn, result } => self.stack.handle_described(conn, result, t),
            Input::Failed { conn, reason } => self.stack.handle_failed(conn, &reason, t),
            Input::AnswerApplied { conn } => {
                if self.conns.get(&conn).is_some_and(Peer::channel_ready) {
                    self.channel_open(conn, t);
                }
            }
            Input::Signed { conn, result } => self.stack.handle_signed(conn, result, t),
            Input::Rtt { conn, rtt } => self.stack.handle_rtt(conn, rtt, t),
            Input::RegisterSigned { generation, result } if generation == self.generation => {
                self.on_register_signed(result);
            }
            Input::RegisterSigned { .. } => {}
            Input::Stored(answers) => self.on_stored(answers, t),
            Input::PastSigned { id, result } => self.stack.handle_signature(id, result, t),
            Input::Timer => self.on_timer(t),
            Input::Command(command) => self.on_command(command, t),
        }
        for conn in self.inputs.take_overwhelmed() {
            self.stack.handle_closed(conn, "the peer sends faster than this node can handle", t);
        }
        self.run();
    }

    /// Carries out the stack's commands and reports its events until it has none.
    fn run(&mut self) {
        if self.closed {
            return;
        }
        loop {
            let mut any = false;
            while let Some(work) = self.stack.poll_command() {
                any = true;
                self.execute(work);
            }
            self.dispatch_past();
            while let Some(event) = self.stack.poll_event() {
                any = true;
                self.on_stack_event(event);
            }
            if !any {
                break;
            }
        }
        self.page.refresh(&self.stack, &self.signaling, self.settings.manager.connection_budget);
        self.arm_timer();
    }

    fn execute(&mut self, work: Work) {
        match work {
            Work::Create { conn, offer, .. } => self.create(conn, offer),
            Work::ApplyAnswer { conn, sdp } => {
                let Some(pc) = self.conns.get(&conn).map(Peer::handle) else { return };
                let tx = self.inputs.clone();
                spawn_local(async move {
                    let input = match Peer::accept_answer(pc, sdp).await {
                        Ok(()) => Input::AnswerApplied { conn },
                        Err(err) => Input::Failed { conn, reason: format!("applying the answer: {}", js_text(&err)) },
                    };
                    let _ = tx.push(input);
                });
            }
            Work::AddCandidate {
                conn,
                candidate: SignalPayload::Candidate { candidate, sdp_mid, sdp_m_line_index },
            } => {
                let Some(pc) = self.conns.get(&conn).map(Peer::handle) else { return };
                spawn_local(async move {
                    if let Err(err) = Peer::add_candidate(pc, candidate, sdp_mid, sdp_m_line_index).await {
                        tracing::debug!("a trickled candidate was refused: {}", js_text(&err));
                    }
                });
            }
            Work::ToServer { to, payload } => {
                let (Some(socket), Some(to)) = (&self.socket, peer_id(to)) else { return };
                if let Err(err) = socket.send(&ClientMessage::Signal { to, payload }) {
                    self.signaling_lost(&js_text(&err), now());
                }
            }
            Work::Send { conn, bytes } => {
                let Some(peer) = self.conns.get_mut(&conn) else { return };
                if let Err(err) = peer.send(Data::Bytes(bytes)) {
                    self.stack.handle_closed(conn, &err, now());
                }
            }
            Work::Sign { conn, transcript } => {
                let (signing, tx) = (self.identity.sign(&transcript), self.inputs.clone());
                spawn_local(async move {
                    let result = signing.await;
                    let _ = tx.push(Input::Signed { conn, result });
                });
            }
            Work::MeasureRtt { conn } => {
                let Some(pc) = self.conns.get(&conn).map(Peer::handle) else { return };
                let tx = self.inputs.clone();
                spawn_local(async move {
                    let rtt = Peer::selected_rtt(pc).await;
                    let _ = tx.push(Input::Rtt { conn, rtt });
                });
            }
            Work::Close { conn } => {
                self.conns.remove(&conn);
            }
            other => tracing::debug!("unknown work {other:?}"),
        }
    }

    /// Creates the `RTCPeerConnection` of `conn` and starts its offer (or its answer to
    /// `offer`).
    fn create(&mut self, conn: ConnId, offer: Option<String>) {
        let role = if offer.is_some() { Role::Answerer } else { Role::Offerer };
        let peer = match Peer::new(conn, role, &self.ice_servers, self.settings.relay_only, &self.inputs) {
            Ok(peer) => peer,
            Err(err) => {
                let reason = format!("RTCPeerConnection: {}", js_text(&err));
                return self.stack.handle_failed(conn, &reason, now());
            }
        };
        let (pc, tx) = (peer.handle(), self.inputs.clone());
        self.conns.insert(conn, peer);
        spawn_local(async move {
            let result = match offer {
                None => Peer::create_offer(pc).await,
                Some(sdp) => Peer::accept_offer(pc, sdp).await,
            };
            let _ = tx.push(Input::Described { conn, result: result.map_err(|e| js_text(&e)) });
        });
    }

    fn on_stack_event(&mut self, event: StackEvent) {
        let own = self.id();
        match event {
            StackEvent::Joined => {
                self.page.emit("joined", &[("nodeId", hex(own).into())]);
                for command in std::mem::take(&mut self.before_join) {
                    self.on_command(command, now());
                }
            }
            StackEvent::Delivered(delivery) => self.page.delivered(&delivery, own),
            StackEvent::Opened(peer) => self.page.connection(peer, "open", None),
            StackEvent::Closed { peer, reason } => self.page.connection(peer, "closed", Some(&reason)),
            StackEvent::Refused { peer, reason } => {
                self.page.emit("refused", &[("peer", hex(peer).into()), ("reason", reason.into())]);
            }
            StackEvent::Past(event) => self.on_past_event(event),
            StackEvent::BudgetExhausted => self.page.error(&format!(
                "connection budget used up ({} RTCPeerConnections made): routing through the open \
                 connections; reload the page to renew it",
                self.stack.manager().stats().created
            )),
            StackEvent::ReloadAdvised => {
                let stats = self.stack.manager().stats();
                let budget = self.settings.manager.connection_budget;
                self.page.emit("reloadAdvised", &[("created", stats.created.into()), ("budget", budget.into())]);
            }
            other => tracing::debug!("unhandled stack event {other:?}"),
        }
    }

    // ---- transport --------------------------------------------------------------------

    fn on_transport(&mut self, conn: ConnId, event: TransportEvent, t: Time) {
        let Some(peer) = self.conns.get_mut(&conn) else { return };
        match event {
            TransportEvent::Channel(channel) => {
                if peer.set_channel(channel) {
                    self.channel_open(conn, t);
                }
            }
            TransportEvent::Open => self.channel_open(conn, t),
            TransportEvent::Message(data) => self.stack.handle_data(conn, &data, t),
            TransportEvent::BufferedLow => {
                if let Err(err) = peer.flush() {
                    self.stack.handle_closed(conn, &err, t);
                }
            }
            TransportEvent::Closed(reason) => self.stack.handle_closed(conn, &reason, t),
        }
    }

    /// The data channel of `conn` opened: the manager starts the handshake.
    fn channel_open(&mut self, conn: ConnId, t: Time) {
        let Some(peer) = self.conns.get_mut(&conn) else { return };
        if peer.answer_pending() {
            return; // Again once the answer is applied (`Input::AnswerApplied`).
        }
        if !peer.mark_open() {
            return;
        }
        match peer.descriptions() {
            Ok((local, remote)) => self.stack.handle_channel_open(conn, &local, &remote, t),
            Err(missing) => self.stack.handle_failed(conn, &missing, t),
        }
    }

    // ---- timer, commands --------------------------------------------------------------

    fn on_timer(&mut self, t: Time) {
        self.timer.handle = None;
        self.timer.at = None;
        self.stack.handle_timeout(t);
        if let Signaling::Offline { retry_at } = self.signaling
            && retry_at <= t
        {
            self.connect_signaling();
        }
    }

    fn arm_timer(&mut self) {
        if self.closed {
            return;
        }
        let t = now();
        let offline = matches!(self.signaling, Signaling::Offline { .. }).then_some(t + OFFLINE_TICK);
        let Some(at) = [self.stack.poll_timeout(), offline].into_iter().flatten().min() else { return };
        if self.timer.handle.is_some() && self.timer.at.is_some_and(|armed| armed <= at) {
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

    fn on_command(&mut self, command: Command, t: Time) {
        match command {
            Command::Route { key, payload } => {
                if let Err(err) = self.stack.route(key, payload, t) {
                    self.page.error(&format!("cannot route: {err}"));
                }
            }
            Command::Connect(id) => self.stack.connect(id, t),
            // A file operation needs the overlay: until the node has joined (a share link is
            // opened as the page loads) it waits.
            file @ (Command::Insert(_) | Command::Lookup { .. } | Command::Reclaim { .. })
                if !self.stack.node().is_joined() =>
            {
                self.before_join.push(file);
            }
            Command::Insert(request) => self.insert(request, t),
            Command::Lookup { link, on_progress, reply } => self.lookup(link, on_progress, reply, t),
            Command::Reclaim { file, reply } => self.reclaim(file, reply, t),
            Command::LookupRead(op) => self.stack.lookup_consumed(op, t),
            Command::LookupCancel(op) => self.cancel_lookup(op, t),
            Command::Leave => self.leave(),
            Command::Close => self.close(),
        }
    }

    /// Tells the nodes we know that we leave.
    pub(crate) fn leave(&mut self) {
        if self.stack.node().phase() == Phase::Joined {
            self.stack.leave(now());
            self.run();
        }
        self.page.set_final(Status::Left);
        self.page.refresh(&self.stack, &self.signaling, self.settings.manager.connection_budget);
    }

    fn close(&mut self) {
        self.stack.close(now());
        self.conns.clear();
        self.socket = None;
        if let (Some(window), Some(handle)) = (web_sys::window(), self.timer.handle.take()) {
            window.clear_timeout_with_handle(handle);
        }
        self.page.set_final(Status::Closed);
        self.page.refresh(&self.stack, &self.signaling, self.settings.manager.connection_budget);
        self.closed = true;
    }

    /// The status as one line.
    pub(crate) fn status_line(&self) -> String {
        self.page.status_line()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let (Some(window), Some(handle)) = (web_sys::window(), self.timer.handle.take()) {
            window.clear_timeout_with_handle(handle);
        }
    }
}
