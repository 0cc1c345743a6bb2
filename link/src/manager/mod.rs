//! The peer manager: which connections a node has, written once for both drivers.
//!
//! A Pastry node talks to the nodes of its leaf set and routing table, over one WebRTC data
//! channel each. [`PeerManager`] decides everything about those connections, as a sans-IO
//! state machine in the style of `str0m`'s `Rtc`: the driver hands it what happened (the
//! core wants to send a message, a signal arrived, a data channel opened, bytes arrived, a
//! signature is ready, time passed), with the time, and carries out the [`Command`]s it
//! returns (create a peer connection, apply an answer, send bytes, sign, close); the
//! [`PeerEvent`]s go to the core (messages from authenticated peers, messages that could not
//! be sent) and to the user. It never touches a socket or a clock.
//!
//! What it decides:
//! - **States**: each connection is signaling, authenticating, open or closing ([`State`]),
//!   never two at once; a peer has at most one connection.
//! - **Handshake**: no Pastry frame is handled before the peer proved its nodeId
//!   ([`crate::auth`]), and none is sent before our own proof went out.
//! - **Signaling**: through the signaling server before the node has joined, through the
//!   overlay afterwards (an offer routed with key = the target's id); an overlay offer that
//!   gets no answer goes once more through the server. Signals we originate take their first
//!   hop over the open connection closest to the target. A signal whose first hop is not its
//!   claimed sender, and an answer to no offer of ours, are dropped.
//! - **Glare**: when both sides offer at once, the smaller id's offer wins; both sides agree,
//!   so exactly one connection remains.
//! - **Queues**: messages for a peer wait (bounded) while its connection is set up; when it
//!   cannot be, each goes back to the core as [`PeerEvent::SendFailed`].
//! - **Cost**: new connections within the [`Limits`] (rate, failures, hearsay, backoff) and
//!   the lifetime budget; see [`limits`].
//! - **Eviction**: above `max_connections`, idle connections that are neither leaves nor
//!   routing table entries (nor protected, like the join contacts) close, least recently
//!   used first, with a close notice so the peer does not take us for failed.
//!
//! It is **not** a transport: it never sees an `RTCPeerConnection`, only the SDP text and the
//! bytes of one data channel per peer. Backpressure on a channel is the driver's.

mod conn;
pub mod limits;
mod signal;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use past_core::wire::{self, Message, Routed, RoutedBody};
use past_core::{Application, Id, Node, Time};
use past_signaling_proto::SignalPayload;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::app::{AppMessage, SignalKind};
use crate::auth::{AuthMessage, Handshake};
use crate::frame::{self, Data, Incoming, Reassembler};
use conn::{Auth, Charge, Conn, Pending};
pub use conn::{ConnId, Role, State, Via};
use limits::{Backoff, Bucket, Introducers, Introductions};
pub use limits::{Limits, Source};

/// What the manager needs to know of the Pastry node.
pub trait Tables {
    /// Whether the node has joined the overlay (signals then go through it).
    fn is_joined(&self) -> bool;
    /// Whether the node keeps `id` in its leaf set or routing table (its connection is not
    /// evicted).
    fn keeps(&self, id: Id) -> bool;
}

impl<A: Application> Tables for Node<A> {
    fn is_joined(&self) -> bool {
        Node::is_joined(self)
    }

    fn keeps(&self, id: Id) -> bool {
        self.state().leaf_set.contains(id) || self.state().table.contains(id)
    }
}

/// The manager's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagerConfig {
    /// Open connections above which idle, non-essential ones close.
    pub max_connections: usize,
    /// Peer connections this node may create in its life (Chromium: 500 per tab).
    pub connection_budget: u32,
    /// An attempt that has not authenticated after this has failed.
    pub connect_timeout: Duration,
    /// An open connection the peer was heard on within this is alive: an overlay offer
    /// claiming to come from that peer cannot replace it.
    pub liveness: Duration,
    /// A connection unused for this long may be evicted.
    pub idle: Duration,
    /// A connection younger than this is never evicted.
    pub eviction_grace: Duration,
    /// After an open connection fails, messages for its peer fail at once for this long.
    pub tombstone: Duration,
    /// Messages queued per peer while its connection is set up.
    pub max_pending: usize,
    /// Bytes queued per peer while its connection is set up.
    pub max_pending_bytes: usize,
    /// How long a closing connection lingers so its close notice goes out.
    pub linger: Duration,
    /// Limits on new connections.
    pub limits: Limits,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            max_connections: 64,
            connection_budget: 480,
            connect_timeout: Duration::from_secs(10),
            liveness: Duration::from_secs(3),
            idle: Duration::from_secs(15),
            eviction_grace: Duration::from_secs(5),
            tombstone: Duration::from_secs(6),
            max_pending: 64,
            max_pending_bytes: 1 << 20,
            linger: Duration::from_secs(1),
            limits: Limits::default(),
        }
    }
}

/// Work for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Create a peer connection `conn` to `peer` with one ordered, reliable data channel.
    /// Without `offer`, create the channel and an offer; with it, apply it and create an
    /// answer. Then gather the ICE candidates and report the local description with
    /// [`PeerManager::handle_described`]; report the channel's opening with
    /// [`PeerManager::handle_channel_open`].
    Create {
        /// The connection.
        conn: ConnId,
        /// The node at the other end.
        peer: Id,
        /// The peer's offer, when we answer.
        offer: Option<String>,
    },
    /// Apply the peer's answer to our offer.
    ApplyAnswer {
        /// The connection.
        conn: ConnId,
        /// The SDP.
        sdp: String,
    },
    /// Add a candidate the peer trickled through the signaling server.
    AddCandidate {
        /// The connection.
        conn: ConnId,
        /// A [`SignalPayload::Candidate`].
        candidate: SignalPayload,
    },
    /// Send this to the signaling server, for `to`.
    ToServer {
        /// The node it is for.
        to: Id,
        /// What to send.
        payload: SignalPayload,
    },
    /// Send one data channel message.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message (at most [`frame::MAX_MESSAGE_BYTES`]).
        bytes: Vec<u8>,
    },
    /// Sign `transcript` with the node's key; answer with [`PeerManager::handle_signed`].
    Sign {
        /// The connection.
        conn: ConnId,
        /// What to sign.
        transcript: Vec<u8>,
    },
    /// Close the peer connection and forget it.
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// What the manager reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// A Pastry message from an authenticated peer: hand it to the core.
    Message {
        /// The peer (proven).
        from: Id,
        /// The message.
        message: Message<AppMessage>,
    },
    /// A message the core wanted to send could not be: hand it back to the core.
    SendFailed {
        /// Its destination.
        to: Id,
        /// The message.
        message: Message<AppMessage>,
    },
    /// A connection opened: the peer proved its id.
    Opened {
        /// The peer.
        peer: Id,
        /// Whether it said it was joined.
        joined: bool,
    },
    /// An open connection closed.
    Closed {
        /// The peer.
        peer: Id,
        /// Why.
        reason: String,
    },
    /// A peer broke the protocol (failed authentication, bad frame); it was dropped.
    Refused {
        /// The peer.
        peer: Id,
        /// Why.
        reason: String,
    },
    /// The connection budget is used up: no new peer connection will be made.
    BudgetExhausted,
}

/// What the manager knows of one peer.
#[derive(Debug, Default)]
struct Peer {
    conn: Option<Conn>,
    pending: Pending,
    /// Messages wait since then for the limits to let an attempt start.
    waiting: Option<Time>,
    backoff: Backoff,
    /// The peer once proved its id to us, or the server introduced it.
    known: bool,
    hearsay_attempts: u8,
    tombstone: Option<Time>,
}

impl Peer {
    fn is_idle(&self, now: Time) -> bool {
        self.conn.is_none()
            && self.pending.is_empty()
            && !self.backoff.blocks(now)
            && self.tombstone.is_none_or(|t| t <= now)
    }
}

/// A summary of a connection, for the page and the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The peer.
    pub peer: Id,
    /// The connection.
    pub conn: ConnId,
    /// Its state.
    pub state: State,
    /// Who offered.
    pub role: Role,
    /// How it was signalled.
    pub via: Via,
    /// Messages waiting for it.
    pub pending: usize,
}

/// Counters of the manager.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Peer connections created (counted against the budget).
    pub created: u32,
    /// Connections open now.
    pub open: usize,
    /// Attempts that failed.
    pub failed: u32,
    /// Attempts that failed since the last one that opened.
    pub failure_streak: u32,
    /// Attempts that opened.
    pub opened: u32,
    /// Attempts refused by the limits (the messages went back to the core).
    pub refused: u32,
}

/// Most peers remembered while idle.
const MAX_IDLE_PEERS: usize = 2048;

/// Consecutive failures after which peers are said to be unreachable.
const UNREACHABLE_STREAK: u32 = 3;

/// The peer manager. See the [module documentation](self).
///
/// The call contract: every `handle_*` and [`PeerManager::send`] takes the time; after any
/// of them, drain [`PeerManager::poll_command`] and [`PeerManager::poll_event`], and call
/// [`PeerManager::handle_timeout`] at [`PeerManager::poll_timeout`].
pub struct PeerManager {
    own: Id,
    public_key: [u8; 32],
    config: ManagerConfig,
    rng: ChaCha20Rng,
    peers: BTreeMap<Id, Peer>,
    by_conn: BTreeMap<ConnId, Id>,
    closing: Vec<(ConnId, Time)>,
    /// Over `max_connections` with connections that become evictable later: look again then.
    evict_at: Option<Time>,
    next_conn: ConnId,
    attempts: Bucket,
    failures: Bucket,
    introducers: Introducers,
    introductions: Introductions,
    protected: BTreeSet<Id>,
    server: bool,
    stats: Stats,
    commands: VecDeque<Command>,
    events: VecDeque<PeerEvent>,
}

impl PeerManager {
    /// A manager for the node `own` with Ed25519 key `public_key`; `seed` (32 random bytes
    /// from the OS) seeds the handshake nonces and signaling sessions.
    pub fn new(own: Id, public_key: [u8; 32], config: ManagerConfig, seed: [u8; 32], now: Time) -> Self {
        let limits = &config.limits;
        PeerManager {
            own,
            public_key,
            attempts: Bucket::new(limits.attempts_burst, limits.attempts_per_minute, now),
            failures: Bucket::new(limits.failures_burst, limits.failures_per_minute, now),
            config,
            rng: ChaCha20Rng::from_seed(seed),
            peers: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            closing: Vec::new(),
            evict_at: None,
            next_conn: 0,
            introducers: Introducers::default(),
            introductions: Introductions::default(),
            protected: BTreeSet::new(),
            server: false,
            stats: Stats::default(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ---- getters --------------------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> Id {
        self.own
    }

    /// The settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let open = self.peers.values().filter(|p| p.conn.as_ref().is_some_and(Conn::is_open)).count();
        Stats { open, ..self.stats }
    }

    /// Whether the last attempts all failed (peers cannot be reached: the network may need
    /// an ICE server).
    pub fn unreachable(&self) -> bool {
        self.stats.failure_streak >= UNREACHABLE_STREAK
    }

    /// Whether the budget of peer connections is used up.
    pub fn budget_exhausted(&self) -> bool {
        self.stats.created >= self.config.connection_budget
    }

    /// Whether `peer` has an open, authenticated connection.
    pub fn is_open(&self, peer: Id) -> bool {
        self.conn(peer).is_some_and(Conn::is_open)
    }

    /// Whether `peer` has a connection in any state.
    pub fn has_connection(&self, peer: Id) -> bool {
        self.conn(peer).is_some()
    }

    /// Whether `peer` said it was joined when it authenticated.
    pub fn is_joined_peer(&self, peer: Id) -> bool {
        self.conn(peer).is_some_and(|c| c.is_open() && c.joined)
    }

    /// The open peers.
    pub fn open_peers(&self) -> impl Iterator<Item = Id> + '_ {
        self.peers.iter().filter(|(_, p)| p.conn.as_ref().is_some_and(Conn::is_open)).map(|(id, _)| *id)
    }

    /// Every connection.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionInfo> + '_ {
        self.peers.iter().filter_map(|(id, p)| {
            p.conn.as_ref().map(|c| ConnectionInfo {
                peer: *id,
                conn: c.id,
                state: c.state,
                role: c.role,
                via: c.via,
                pending: p.pending.len(),
            })
        })
    }

    /// The peer of a connection, while it is current.
    pub fn peer_of(&self, conn: ConnId) -> Option<Id> {
        self.by_conn.get(&conn).copied()
    }

    fn conn(&self, peer: Id) -> Option<&Conn> {
        self.peers.get(&peer).and_then(|p| p.conn.as_ref())
    }

    fn conn_mut(&mut self, conn: ConnId) -> Option<(Id, &mut Conn)> {
        let peer = *self.by_conn.get(&conn)?;
        let c = self.peers.get_mut(&peer)?.conn.as_mut().filter(|c| c.id == conn)?;
        Some((peer, c))
    }

    // ---- output ---------------------------------------------------------------------

    /// The next command for the driver.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// When [`PeerManager::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Time> {
        let attempts = self.peers.values().filter_map(|p| p.conn.as_ref()).filter(|c| !c.is_open());
        let deadlines = attempts.map(|c| c.created + self.config.connect_timeout);
        let closing = self.closing.iter().map(|(_, at)| *at);
        let waiting = self.peers.values().filter_map(|p| p.waiting).map(|since| since + self.config.connect_timeout);
        let tokens = self
            .peers
            .values()
            .any(|p| p.waiting.is_some())
            .then(|| self.attempts.next_token().max(self.failures.next_token()))
            .flatten();
        deadlines.chain(closing).chain(waiting).chain(tokens).chain(self.evict_at).min()
    }

    // ---- inputs from the node -------------------------------------------------------

    /// Whether the signaling server is connected and we are registered on it.
    pub fn set_server(&mut self, registered: bool) {
        self.server = registered;
    }

    /// Peers whose connections are never evicted besides the tables' (the join contacts).
    pub fn set_protected(&mut self, peers: impl IntoIterator<Item = Id>) {
        self.protected = peers.into_iter().collect();
    }

    /// Opens a connection to `peer` (no message yet): `source` says who named it.
    pub fn connect(&mut self, peer: Id, source: Source, tables: &impl Tables, now: Time) {
        if peer == self.own || self.has_connection(peer) {
            return;
        }
        if source == Source::Server {
            self.peers.entry(peer).or_default().known = true;
        }
        match self.admission(peer, false, now) {
            Admission::Start(charge) => self.start(peer, charge, tables, now),
            Admission::Wait => {
                self.peers.entry(peer).or_default().waiting.get_or_insert(now);
            }
            Admission::Refuse(reason) => tracing::debug!(%peer, reason, "no connection attempt"),
        }
    }

    /// The core wants `message` to reach `to`: sent on its open connection, queued while one
    /// is set up, or given back as [`PeerEvent::SendFailed`].
    pub fn send(&mut self, to: Id, message: Message<AppMessage>, tables: &impl Tables, now: Time) {
        if to == self.own {
            return;
        }
        if self.is_open(to) {
            return self.send_on(to, &message, now);
        }
        let message = match self.relay_signal(to, message, now) {
            Some(message) => message,
            None => return,
        };
        if matches!(message, Message::Leave) {
            return; // Not worth a new connection.
        }
        let size = message_size(&message);
        let has_attempt = self.peers.get(&to).is_some_and(|p| p.conn.is_some() || p.waiting.is_some());
        if !has_attempt {
            match self.admission(to, false, now) {
                Admission::Start(charge) => {
                    self.queue(to, message, size);
                    return self.start(to, charge, tables, now);
                }
                Admission::Wait => {
                    self.peers.entry(to).or_default().waiting.get_or_insert(now);
                }
                Admission::Refuse(reason) => {
                    tracing::debug!(peer = %to, reason, "message not sent");
                    self.stats.refused += 1;
                    return self.events.push_back(PeerEvent::SendFailed { to, message });
                }
            }
        }
        self.queue(to, message, size);
    }

    fn queue(&mut self, to: Id, message: Message<AppMessage>, size: usize) {
        let (max, max_bytes) = (self.config.max_pending, self.config.max_pending_bytes);
        if let Err(message) = self.peers.entry(to).or_default().pending.push(message, size, max, max_bytes) {
            self.events.push_back(PeerEvent::SendFailed { to, message });
        }
    }

    /// The core says `peer` left or failed: close its open connection (an attempt still
    /// under way goes on: its slowness may be what made a probe time out).
    /// A connection the peer was heard on within `liveness` stays: the core's probe may have
    /// waited behind a burst of data on that very connection.
    pub fn handle_node_gone(&mut self, peer: Id, left: bool, now: Time) {
        let heard = self.conn(peer).is_some_and(|c| now.since(c.last_heard) < self.config.liveness);
        if self.is_open(peer) && (left || !heard) {
            let reason = if left { "the node left" } else { "the node failed" };
            self.drop_conn(peer, reason, false, now);
        }
    }

    /// Closes every connection.
    pub fn close_all(&mut self, now: Time) {
        let peers: Vec<Id> = self.peers.iter().filter(|(_, p)| p.conn.is_some()).map(|(id, _)| *id).collect();
        for peer in peers {
            self.drop_conn(peer, "closing", false, now);
        }
        for (conn, _) in std::mem::take(&mut self.closing) {
            self.commands.push_back(Command::Close { conn });
        }
    }

    // ---- admission ------------------------------------------------------------------

    /// Whether an attempt to `peer` may start. `incoming`: the peer offered (it is alive, so
    /// our backoff for it does not apply; the other limits do, since answering costs a peer
    /// connection too).
    fn admission(&mut self, peer: Id, incoming: bool, now: Time) -> Admission {
        if self.budget_exhausted() {
            return Admission::Refuse("the connection budget is used up");
        }
        let record = self.peers.get(&peer);
        if !incoming && record.is_some_and(|p| p.tombstone.is_some_and(|t| t > now)) {
            return Admission::Refuse("its connection failed a moment ago");
        }
        if !incoming && record.is_some_and(|p| p.backoff.blocks(now)) {
            return Admission::Refuse("backing off after failed attempts");
        }
        let known = record.is_some_and(|p| p.known);
        if !known && record.is_some_and(|p| p.hearsay_attempts >= self.config.limits.hearsay_attempts) {
            return Admission::Refuse("known only by hearsay and tried enough");
        }
        if !self.attempts.ready(now) {
            return Admission::Wait;
        }
        if known {
            return if self.failures.ready(now) { Admission::Start(Charge::Failures) } else { Admission::Wait };
        }
        let introducer = self.introductions.introducer(peer).unwrap_or(Id::ZERO);
        match self.introducers.refusal(introducer, &self.config.limits, now) {
            Some(reason) => Admission::Refuse(reason),
            None => Admission::Start(Charge::Introducer(introducer)),
        }
    }

    /// Starts an admitted attempt to `peer` as the offerer.
    fn start(&mut self, peer: Id, charge: Charge, tables: &impl Tables, now: Time) {
        let via = self.choose_via(peer, tables);
        let Some(via) = via else {
            self.fail_pending(peer);
            return;
        };
        let session = self.rng.next_u64();
        self.create(peer, Role::Offerer, via, session, charge, None, tables, now);
    }

    /// How to signal a new connection to `peer`.
    fn choose_via(&self, peer: Id, tables: &impl Tables) -> Option<Via> {
        let any_open = self.open_peers().next().is_some();
        // A node that is joining is not in the overlay yet: signals routed to it end
        // elsewhere, so its join reply goes through the server when we can.
        let to_joiner = self
            .peers
            .get(&peer)
            .is_some_and(|p| p.pending.messages.iter().any(|(m, _)| matches!(m, Message::JoinReply(_))));
        if tables.is_joined() && any_open && !(to_joiner && self.server) {
            Some(Via::Overlay)
        } else if self.server {
            Some(Via::Server)
        } else if any_open {
            Some(Via::Overlay)
        } else {
            None
        }
    }

    /// Creates connection state and tells the driver to create the peer connection.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        peer: Id,
        role: Role,
        via: Via,
        session: u64,
        charge: Charge,
        offer: Option<String>,
        tables: &impl Tables,
        now: Time,
    ) {
        self.evict(1, tables, now);
        self.attempts.take(now);
        match charge {
            Charge::Failures => {
                self.failures.take(now);
            }
            Charge::Introducer(introducer) => self.introducers.charge(introducer, &self.config.limits, now),
            Charge::Settled => {}
        }
        self.stats.created += 1;
        if self.budget_exhausted() {
            self.events.push_back(PeerEvent::BudgetExhausted);
        }
        self.next_conn += 1;
        let id = self.next_conn;
        let record = self.peers.entry(peer).or_default();
        record.waiting = None;
        if !record.known {
            record.hearsay_attempts = record.hearsay_attempts.saturating_add(1);
        }
        record.conn = Some(Conn {
            id,
            role,
            via,
            session,
            state: State::Signaling,
            auth: None,
            frames: Reassembler::new(wire::MAX_FRAME_BYTES),
            local_sdp: None,
            charge,
            retried: false,
            created: now,
            last_used: now,
            last_heard: now,
            joined: false,
        });
        self.by_conn.insert(id, peer);
        self.commands.push_back(Command::Create { conn: id, peer, offer });
    }

    /// Starts the attempts that waited for the limits, oldest first; fails messages that
    /// waited too long.
    fn admit_waiting(&mut self, tables: &impl Tables, now: Time) {
        let mut waiting: Vec<(Time, Id)> =
            self.peers.iter().filter_map(|(id, p)| p.waiting.map(|since| (since, *id))).collect();
        waiting.sort_unstable();
        for (since, peer) in waiting {
            if now.since(since) >= self.config.connect_timeout {
                self.peers.entry(peer).or_default().waiting = None;
                self.fail_pending(peer);
                continue;
            }
            match self.admission(peer, false, now) {
                Admission::Start(charge) => self.start(peer, charge, tables, now),
                Admission::Wait => break,
                Admission::Refuse(reason) => {
                    tracing::debug!(%peer, reason, "a waiting attempt is refused");
                    self.stats.refused += 1;
                    self.peers.entry(peer).or_default().waiting = None;
                    self.fail_pending(peer);
                }
            }
        }
    }

    // ---- the transport --------------------------------------------------------------

    /// The data channel of `conn` opened; `local_sdp` and `remote_sdp` are the connection's
    /// descriptions (their DTLS fingerprints bind the handshake to it).
    pub fn handle_channel_open(
        &mut self,
        conn: ConnId,
        local_sdp: &str,
        remote_sdp: &str,
        tables: &impl Tables,
        now: Time,
    ) {
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        let own_key = self.public_key;
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        if c.state != State::Signaling {
            return;
        }
        match Handshake::new(own_key, nonce, local_sdp, remote_sdp, peer) {
            Ok(handshake) => {
                let hello = frame::encode_auth(&handshake.hello(tables.is_joined()));
                c.state = State::Authenticating;
                c.auth = Some(Auth { handshake: Box::new(handshake), proof_sent: false, peer_proved: false });
                self.commands.push_back(Command::Send { conn, bytes: hello });
            }
            Err(err) => self.attempt_failed(peer, &format!("authentication: {err}"), now),
        }
    }

    /// A data channel message on `conn`.
    pub fn handle_data(&mut self, conn: ConnId, data: &Data, now: Time) {
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        let Data::Bytes(bytes) = data else {
            return self.refuse(peer, "a text message", now);
        };
        if c.state == State::Signaling {
            return self.refuse(peer, "data before the channel opened", now);
        }
        let incoming = match c.frames.push(bytes) {
            Ok(Some(incoming)) => incoming,
            Ok(None) => return,
            Err(err) => return self.refuse(peer, &format!("bad frame: {err}"), now),
        };
        match incoming {
            Incoming::Auth(message) => self.on_auth(peer, conn, message, now),
            Incoming::Pastry(frame) if c.is_open() => {
                c.last_used = now;
                c.last_heard = now;
                self.on_pastry(peer, &frame, now);
            }
            Incoming::Close if c.is_open() => self.drop_conn(peer, "closed by the peer", false, now),
            Incoming::Pastry(_) | Incoming::Close => self.refuse(peer, "a Pastry frame before authentication", now),
        }
    }

    fn on_auth(&mut self, peer: Id, conn: ConnId, message: AuthMessage, now: Time) {
        let Some((_, c)) = self.conn_mut(conn) else { return };
        let Some(auth) = c.auth.as_mut().filter(|_| c.state == State::Authenticating) else {
            return self.refuse(peer, "an unexpected handshake message", now);
        };
        match message {
            AuthMessage::Hello { public_key, nonce, joined } => {
                match auth.handshake.on_hello(public_key, nonce, joined) {
                    Ok(transcript) => {
                        c.joined = joined;
                        self.commands.push_back(Command::Sign { conn, transcript });
                    }
                    Err(err) => self.refuse(peer, &format!("authentication failed: {err}"), now),
                }
            }
            AuthMessage::Proof { signature } => match auth.handshake.on_proof(&signature) {
                Ok(_) => {
                    auth.peer_proved = true;
                    self.maybe_authenticated(peer, now);
                }
                Err(err) => self.refuse(peer, &format!("authentication failed: {err}"), now),
            },
        }
    }

    /// Our signature over the handshake transcript of `conn` is ready.
    pub fn handle_signed(&mut self, conn: ConnId, result: Result<[u8; 64], String>, now: Time) {
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        let Some(auth) = c.auth.as_mut().filter(|a| !a.proof_sent) else { return };
        match result {
            Ok(signature) => {
                auth.proof_sent = true;
                let bytes = frame::encode_auth(&Handshake::proof(signature));
                self.commands.push_back(Command::Send { conn, bytes });
                self.maybe_authenticated(peer, now);
            }
            Err(err) => self.attempt_failed(peer, &format!("signing: {err}"), now),
        }
    }

    /// Opens the connection once the peer proved its id and our proof went out.
    fn maybe_authenticated(&mut self, peer: Id, now: Time) {
        let Some(record) = self.peers.get_mut(&peer) else { return };
        let Some(c) = record.conn.as_mut() else { return };
        if !c.auth.as_ref().is_some_and(|a| a.proof_sent && a.peer_proved) {
            return;
        }
        c.auth = None;
        c.state = State::Open;
        c.last_used = now;
        c.last_heard = now;
        let (joined, charge) = (c.joined, std::mem::replace(&mut c.charge, Charge::Settled));
        // Over the limit, this connection may be evicted once idle: look again then.
        let evictable = (c.created + self.config.eviction_grace).max(now + self.config.idle);
        record.known = true;
        record.hearsay_attempts = 0;
        record.backoff = Backoff::default();
        record.tombstone = None;
        record.waiting = None;
        let pending: Vec<_> = record.pending.take().collect();
        self.settle(charge, true);
        if self.peers.values().filter(|p| p.conn.is_some()).count() > self.config.max_connections {
            self.evict_at = Some(self.evict_at.map_or(evictable, |at| at.min(evictable)));
        }
        self.introductions.forget(peer);
        self.stats.opened += 1;
        self.stats.failure_streak = 0;
        self.events.push_back(PeerEvent::Opened { peer, joined });
        for message in pending {
            self.send_on(peer, &message, now);
        }
    }

    fn settle(&mut self, charge: Charge, succeeded: bool) {
        match charge {
            Charge::Failures if succeeded => self.failures.give_back(),
            Charge::Introducer(introducer) => self.introducers.settle(introducer, succeeded),
            Charge::Failures | Charge::Settled => {}
        }
    }

    /// A Pastry frame from an authenticated peer.
    fn on_pastry(&mut self, peer: Id, frame: &[u8], now: Time) {
        let message = match wire::decode::<Message<AppMessage>>(frame) {
            Ok(message) => message,
            Err(err) => return self.refuse(peer, &format!("undecodable Pastry frame: {err}"), now),
        };
        if app_of(&message).is_some_and(|app| !app.within_bounds()) {
            return self.refuse(peer, "an application message over its limits", now);
        }
        if let Message::Route(Routed { hops, body: RoutedBody::App(AppMessage::Signal(signal)), .. }) = &message
            && *hops <= 1
            && signal.from != peer
            && !matches!(signal.kind, SignalKind::Reject { .. })
        {
            tracing::warn!(%peer, claimed = %signal.from, "a signal whose first hop is not its sender: dropped");
            return;
        }
        for id in mentioned(&message) {
            if id != self.own && !self.peers.get(&id).is_some_and(|p| p.known) {
                self.introductions.record(id, peer);
            }
        }
        self.events.push_back(PeerEvent::Message { from: peer, message });
    }

    /// The connection closed under us (the channel or the peer connection).
    pub fn handle_closed(&mut self, conn: ConnId, reason: &str, now: Time) {
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        if c.is_open() {
            self.drop_conn(peer, reason, true, now);
        } else {
            self.attempt_failed(peer, reason, now);
        }
    }

    /// Setting up `conn` failed in the driver (creating the peer connection, a
    /// description, applying an answer).
    pub fn handle_failed(&mut self, conn: ConnId, reason: &str, now: Time) {
        if let Some(peer) = self.peer_of(conn) {
            self.attempt_failed(peer, reason, now);
        }
    }

    /// Time passed: attempts time out, closing connections close, waiting attempts start,
    /// idle connections are evicted.
    pub fn handle_timeout(&mut self, tables: &impl Tables, now: Time) {
        let stale: Vec<Id> = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.conn.as_ref().map(|c| (id, c)))
            .filter(|(_, c)| !c.is_open() && now.since(c.created) >= self.config.connect_timeout)
            .map(|(id, _)| *id)
            .collect();
        for peer in stale {
            self.attempt_failed(peer, "timed out", now);
        }
        let (done, closing): (Vec<_>, Vec<_>) = self.closing.drain(..).partition(|(_, at)| *at <= now);
        self.closing = closing;
        self.commands.extend(done.into_iter().map(|(conn, _)| Command::Close { conn }));
        self.admit_waiting(tables, now);
        self.evict(0, tables, now);
        if self.peers.len() > MAX_IDLE_PEERS {
            self.peers.retain(|_, p| !p.is_idle(now) || p.known);
        }
        if self.peers.len() > MAX_IDLE_PEERS {
            self.peers.retain(|_, p| !p.is_idle(now));
        }
    }

    // ---- ending connections ---------------------------------------------------------

    /// An attempt failed: an overlay offer goes once more through the server; otherwise the
    /// attempt ends, its peer backs off and its messages fail.
    fn attempt_failed(&mut self, peer: Id, reason: &str, now: Time) {
        let server = self.server;
        let Some(record) = self.peers.get_mut(&peer) else { return };
        let Some(c) = record.conn.as_mut() else { return };
        if c.role == Role::Offerer
            && c.via == Via::Overlay
            && !c.retried
            && server
            && c.state == State::Signaling
            && let Some(sdp) = c.local_sdp.clone()
        {
            tracing::debug!(%peer, reason, "overlay signaling failed; the offer goes through the server");
            c.via = Via::Server;
            c.retried = true;
            c.created = now;
            self.commands.push_back(Command::ToServer { to: peer, payload: SignalPayload::Offer { sdp } });
            return;
        }
        tracing::debug!(%peer, reason, "connection attempt failed");
        record.backoff.failed(&self.config.limits, now);
        self.stats.failed += 1;
        self.stats.failure_streak += 1;
        self.drop_conn(peer, reason, false, now);
    }

    /// Ends the connection to `peer`; its queued messages fail. `tombstone`: the peer
    /// vanished, so messages for it fail at once for a while.
    fn drop_conn(&mut self, peer: Id, reason: &str, tombstone: bool, now: Time) {
        let Some(record) = self.peers.get_mut(&peer) else { return };
        let Some(c) = record.conn.take() else { return };
        self.by_conn.remove(&c.id);
        if tombstone && c.is_open() {
            record.tombstone = Some(now + self.config.tombstone);
        }
        self.settle(c.charge, false);
        self.commands.push_back(Command::Close { conn: c.id });
        if c.is_open() {
            self.events.push_back(PeerEvent::Closed { peer, reason: reason.to_string() });
        }
        self.fail_pending(peer);
    }

    fn fail_pending(&mut self, peer: Id) {
        let Some(record) = self.peers.get_mut(&peer) else { return };
        for message in record.pending.take() {
            self.events.push_back(PeerEvent::SendFailed { to: peer, message });
        }
    }

    /// Drops a peer that broke the protocol.
    fn refuse(&mut self, peer: Id, reason: &str, now: Time) {
        tracing::warn!(%peer, "dropping the peer: {reason}");
        self.events.push_back(PeerEvent::Refused { peer, reason: reason.to_string() });
        if let Some(record) = self.peers.get_mut(&peer) {
            record.backoff.failed(&self.config.limits, now);
        }
        self.drop_conn(peer, reason, false, now);
    }

    /// Closes idle connections that the node does not keep, least recently used first,
    /// until `room` more fit under the limit.
    fn evict(&mut self, room: usize, tables: &impl Tables, now: Time) {
        let count = self.peers.values().filter(|p| p.conn.is_some()).count();
        let excess = (count + room).saturating_sub(self.config.max_connections);
        if excess == 0 {
            self.evict_at = None;
            return;
        }
        // Open, idle-able connections the node does not keep, with when they may go.
        let candidates: Vec<(Time, Id, Time)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.conn.as_ref().filter(|_| p.pending.is_empty()).map(|c| (*id, c)))
            .filter(|(id, c)| c.is_open() && !tables.keeps(*id) && !self.protected.contains(id))
            .map(|(id, c)| {
                (c.last_used, id, (c.created + self.config.eviction_grace).max(c.last_used + self.config.idle))
            })
            .collect();
        let (mut victims, later): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|(_, _, at)| *at <= now);
        victims.sort_unstable();
        // Not enough can go now: look again when the next one may (`handle_timeout` is only
        // called at `poll_timeout`, and a driver of the manager alone has no other timer).
        self.evict_at = (victims.len() < excess).then(|| later.iter().map(|(_, _, at)| *at).min()).flatten();
        for (_, peer, _) in victims.into_iter().take(excess) {
            self.close_gracefully(peer, now);
        }
    }

    /// Closes an open connection on purpose: the peer is told first, and the connection
    /// lingers a moment so the notice goes out.
    fn close_gracefully(&mut self, peer: Id, now: Time) {
        let Some(c) = self.peers.get_mut(&peer).and_then(|p| p.conn.take()) else { return };
        tracing::debug!(%peer, "evicting: neither a leaf nor a routing table entry");
        self.by_conn.remove(&c.id);
        self.commands.push_back(Command::Send { conn: c.id, bytes: frame::encode_close() });
        self.closing.push((c.id, now + self.config.linger));
        self.events.push_back(PeerEvent::Closed { peer, reason: "evicted".into() });
    }

    // ---- sending --------------------------------------------------------------------

    /// Encodes and sends a Pastry message on the open connection to `to`.
    fn send_on(&mut self, to: Id, message: &Message<AppMessage>, now: Time) {
        let frames = wire::encode(message)
            .map_err(|e| e.to_string())
            .and_then(|f| frame::encode_pastry(&f, wire::MAX_FRAME_BYTES).map_err(|e| e.to_string()));
        let frames = match frames {
            Ok(frames) => frames,
            Err(err) => return tracing::error!(peer = %to, "cannot encode a message: {err}"),
        };
        let Some(c) = self.peers.get_mut(&to).and_then(|p| p.conn.as_mut()).filter(|c| c.is_open()) else {
            return;
        };
        c.last_used = now;
        let conn = c.id;
        self.commands.extend(frames.into_iter().map(|bytes| Command::Send { conn, bytes }));
    }
}

/// The outcome of the limits for a new attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    Start(Charge),
    Wait,
    Refuse(&'static str),
}

fn app_of(message: &Message<AppMessage>) -> Option<&AppMessage> {
    match message {
        Message::Route(Routed { body: RoutedBody::App(app), .. }) | Message::Direct(app) => Some(app),
        _ => None,
    }
}

/// Roughly what a message weighs in a queue.
fn message_size(message: &Message<AppMessage>) -> usize {
    match app_of(message) {
        Some(AppMessage::Payload(p)) => p.data.len() + 64,
        Some(AppMessage::Signal(s)) => match &s.kind {
            SignalKind::Offer { sdp } | SignalKind::Answer { sdp } => sdp.len() + 64,
            SignalKind::Reject { reason } => reason.len() + 64,
        },
        _ => 256,
    }
}

/// The node ids a message names (candidates for the receiver's tables).
fn mentioned(message: &Message<AppMessage>) -> Vec<Id> {
    match message {
        Message::JoinReply(reply) => {
            reply.rows.iter().flatten().chain(&reply.leaf_set).chain(&reply.neighborhood).copied().collect()
        }
        Message::LeafSet { leaves, .. } => leaves.clone(),
        Message::RowReply { ids, .. } => ids.clone(),
        Message::NewNode { id, .. } => vec![*id],
        Message::EntryReply { id, .. } => id.iter().copied().collect(),
        Message::Route(Routed { key, body: RoutedBody::Join(request), .. }) => {
            request.rows.iter().flatten().chain(&request.neighborhood).chain([key]).copied().collect()
        }
        Message::Route(Routed { body: RoutedBody::FindSlot { origin, .. }, .. }) => vec![*origin],
        _ => Vec::new(),
    }
}
