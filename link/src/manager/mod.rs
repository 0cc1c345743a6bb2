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
//!   hop over the peer that last named the target to us (it most likely is connected to
//!   it), else over the open connection closest to the target; a node connected to a
//!   signal's target hands it straight over, even where Pastry routing would end the signal
//!   at that node (two neighbours that lost each other are each other's closest node). A
//!   signal whose first hop is not its claimed sender, and an answer to no offer of ours,
//!   are dropped. An overlay offer still unanswered after a quarter of the connect timeout
//!   goes again along another first hop (twice at most), and a copy of an offer we answer
//!   already is answered again the way it came, so a lost signal costs a resend, not the
//!   attempt.
//! - **Glare**: when both sides offer at once, the smaller id's offer wins; both sides agree,
//!   so exactly one connection remains.
//! - **Queues**: messages for a peer wait (bounded) while its connection is set up; when it
//!   cannot be, each goes back to the core as [`PeerEvent::SendFailed`].
//! - **Cost**: new connections within the [`Limits`] (rate, failures, hearsay, backoff) and
//!   the lifetime budget; see [`limits`]. The budget is spent at a [`Pace`]: the leaf set
//!   always, other connections only at a pace that makes the budget last the target time
//!   (the routing table holds fewer entries instead), and a reload is advised when little
//!   is left; see [`pace`].
//! - **Eviction**: above `max_connections`, idle connections that are neither leaves nor
//!   routing table entries (nor protected, like the join contacts), and whose peers do not
//!   keep us in their own tables, close, least recently used first, with a close notice so
//!   the peer does not take us for failed; see [`retention`].
//!
//! It is **not** a transport: it never sees an `RTCPeerConnection`, only the SDP text and the
//! bytes of one data channel per peer. Backpressure on a channel is the driver's.

mod admission;
mod conn;
mod ending;
mod handshake;
pub mod limits;
pub mod liveness;
pub mod pace;
pub mod retention;
mod signal;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use past_core::past::PastMessage;
use past_core::wire::{self, Message, Routed, RoutedBody};
use past_core::{Application, Id, Node, Time};
use past_signaling_proto::SignalPayload;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::app::{AppMessage, SignalKind};
use crate::auth::{AuthError, AuthMessage, Handshake};
use crate::frame::{self, Data, FrameError, Incoming, Reassembler};
use admission::Attempt;
use conn::{Auth, Charge, Conn, Pending};
pub use conn::{ConnId, Role, State, Via};
use limits::{Backoff, Bucket, Introducers, Introductions, Outcome};
pub use limits::{Limits, Source};
pub use pace::{Pace, PaceError};
use signal::signal_target;

/// What the manager needs to know of the Pastry node.
pub trait Tables {
    /// Whether the node has joined the overlay (signals then go through it).
    fn is_joined(&self) -> bool;
    /// Whether the node keeps `id` in its leaf set or routing table (its connection is not
    /// evicted).
    fn keeps(&self, id: Id) -> bool;
    /// Whether `id` is in the node's leaf set or would enter it (it lies within the leaf
    /// set's range): its connection is never paced.
    fn is_leaf(&self, id: Id) -> bool;
}

impl<A: Application> Tables for Node<A> {
    fn is_joined(&self) -> bool {
        Node::is_joined(self)
    }

    fn keeps(&self, id: Id) -> bool {
        self.state().leaf_set.contains(id) || self.state().table.contains(id)
    }

    fn is_leaf(&self, id: Id) -> bool {
        let leaves = &self.state().leaf_set;
        leaves.contains(id) || leaves.covers(id)
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
    /// claiming to come from that peer cannot replace it, and the core's word that the peer
    /// failed does not close it. A live leaf is heard from at least once per keep-alive
    /// period: the default is the core's keep-alive period plus its probe timeout.
    pub liveness: Duration,
    /// A connection unused for this long may be evicted.
    pub idle: Duration,
    /// A connection younger than this is never evicted.
    pub eviction_grace: Duration,
    /// A connection this node opened for a PAST transfer closes once idle for this long
    /// (unless the peer has become a leaf or routing table entry meanwhile).
    pub transfer_idle: Duration,
    /// After an open connection fails, or its peer's node leaves, messages for that peer
    /// fail at once for this long.
    pub tombstone: Duration,
    /// Messages queued per peer while its connection is set up.
    pub max_pending: usize,
    /// Bytes queued per peer while its connection is set up.
    pub max_pending_bytes: usize,
    /// How long a closing connection lingers so its close notice goes out.
    pub linger: Duration,
    /// Limits on new connections.
    pub limits: Limits,
    /// How fast the budget may be spent on connections other than the leaf set's
    /// ([`pace`]); `None`: as fast as the limits allow.
    pub pace: Option<Pace>,
    /// Connections left in the budget at which a reload is advised
    /// ([`PeerEvent::ReloadAdvised`]): enough to keep the leaf set while the page reloads.
    /// At most a quarter of the budget is kept; with a [`Pace`], only the leaf set may use
    /// it.
    pub reload_reserve: u32,
    /// A peer that sent us a probe of its own within this keeps us in its leaf set, routing
    /// table or neighborhood set: its idle connection is not evicted ([`retention`]). The
    /// default is two and a half of the core's table probe periods (60 s).
    pub holder_memory: Duration,
    /// A peer that neither answers our ping nor sends anything for this long counts as
    /// failed: its connection closes and the messages it did not confirm go back to the
    /// node ([`liveness`]). The default is the core's probe timeout.
    pub confirm_timeout: Duration,
    /// The slowest rate, in bytes per second, at which a connection is expected to carry
    /// what was sent ahead of a ping: each byte adds its share of time to
    /// [`ManagerConfig::confirm_timeout`], so that a slow link is not taken for a dead peer.
    pub confirm_rate: u32,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            max_connections: 64,
            connection_budget: 480,
            connect_timeout: Duration::from_secs(10),
            liveness: Duration::from_secs(8),
            idle: Duration::from_secs(15),
            eviction_grace: Duration::from_secs(5),
            transfer_idle: Duration::from_secs(3),
            tombstone: Duration::from_secs(6),
            max_pending: 64,
            max_pending_bytes: 1 << 20,
            linger: Duration::from_secs(1),
            limits: Limits::default(),
            pace: Some(Pace::default()),
            reload_reserve: 16,
            holder_memory: Duration::from_secs(150),
            confirm_timeout: Duration::from_secs(3),
            confirm_rate: 64 * 1024,
        }
    }
}

impl ManagerConfig {
    /// The settings of a native node: the defaults without the browser's lifetime limit.
    ///
    /// Chromium lets a tab create 500 `RTCPeerConnection`s in its life, so a tab's budget,
    /// its pace and its reload reserve exist to make those last. A native node's
    /// connections are sockets of its own process, closed and reused like any other, and
    /// an always-on storage peer runs for days: spending a tab's budget would leave it,
    /// after some hours of churn, unable to reach new leaves or answer new readers. Here
    /// no budget is set that a node could use up, nothing is paced and no reload is ever
    /// advised; the number of connections open at once stays bounded by
    /// [`ManagerConfig::max_connections`], and new ones by [`ManagerConfig::limits`].
    pub fn native() -> Self {
        ManagerConfig { connection_budget: u32::MAX, pace: None, reload_reserve: 0, ..ManagerConfig::default() }
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
    /// Read the round-trip time of the connection's selected candidate pair from the
    /// transport's statistics; answer with [`crate::Stack::handle_rtt`] (`None` when the
    /// transport has none, and the node then measures with a probe).
    MeasureRtt {
        /// The connection.
        conn: ConnId,
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
        /// Whether the peer failed on an open connection (it stopped answering, closed it
        /// or left) rather than being out of reach from here (no connection could be used).
        peer_failed: bool,
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
    /// At most [`ManagerConfig::reload_reserve`] connections are left in the budget: the
    /// page should reload (keeping its identity and replicas) to start with a fresh one.
    ReloadAdvised,
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
    /// The peer spoke another overlay version: no connection to it, either way, before then.
    other_version_until: Option<Time>,
    /// The node wants the round-trip time once the connection is open.
    wants_rtt: bool,
}

impl Peer {
    fn is_idle(&self, now: Time) -> bool {
        self.conn.is_none()
            && self.pending.is_empty()
            && !self.backoff.blocks(now)
            && self.tombstone.is_none_or(|t| t <= now)
            && self.other_version_until.is_none_or(|t| t <= now)
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
    /// Open connections closed because the peer stopped answering ([`liveness`]).
    pub silent: u32,
    /// Peers dropped because they run another overlay version ([`crate::version`]).
    pub other_version: u32,
}

/// Why an attempt failed or was not made, for people and benchmarks that ask why two nodes
/// are not connected ([`PeerManager::recent_trouble`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trouble {
    /// The peer.
    pub peer: Id,
    /// When.
    pub at: Time,
    /// What happened.
    pub what: String,
}

/// Most [`Trouble`]s kept.
const MAX_TROUBLE: usize = 32;

/// How long a node whose join message passed by is taken for a newcomer.
const JOINER_MEMORY: Duration = Duration::from_secs(10);

/// Most newcomers remembered.
const MAX_JOINERS: usize = 64;

/// Most peers remembered while idle.
const MAX_IDLE_PEERS: usize = 2048;

/// How long a peer that spoke another overlay version gets no connection: long enough not
/// to spend the budget on it again and again, short enough to meet it again once it reloaded.
const OTHER_VERSION_MEMORY: Duration = Duration::from_secs(600);

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
    /// When the manager started (the page load): the pace counts from then.
    started: Time,
    rng: ChaCha20Rng,
    peers: BTreeMap<Id, Peer>,
    by_conn: litemap::LiteMap<ConnId, Id>,
    closing: Vec<(ConnId, Time)>,
    /// Over `max_connections` with connections that become evictable later: look again then.
    evict_at: Option<Time>,
    next_conn: ConnId,
    attempts: Bucket,
    failures: Bucket,
    introducers: Introducers,
    introductions: Introductions,
    /// The peer that last named each id (in a leaf set, a row, a relayed signal): it most
    /// likely has a connection to it, so a signal to that id goes to it first.
    mentions: Introductions,
    protected: BTreeSet<Id>,
    /// Nodes whose join message passed by, or that a server named after we joined, and when
    /// (they are not in the overlay yet, or not in ours).
    joiners: VecDeque<(Id, Time)>,
    server: bool,
    stats: Stats,
    trouble: VecDeque<Trouble>,
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
            started: now,
            attempts: Bucket::new(limits.attempts_burst, limits.attempts_per_minute, now),
            failures: Bucket::new(limits.failures_burst, limits.failures_per_minute, now),
            config,
            rng: ChaCha20Rng::from_seed(seed),
            peers: BTreeMap::new(),
            by_conn: litemap::LiteMap::new(),
            closing: Vec::new(),
            evict_at: None,
            next_conn: 0,
            introducers: Introducers::default(),
            introductions: Introductions::default(),
            mentions: Introductions::default(),
            protected: BTreeSet::new(),
            joiners: VecDeque::new(),
            server: false,
            stats: Stats::default(),
            trouble: VecDeque::new(),
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

    /// The latest attempts that failed or were not made, oldest first.
    pub fn recent_trouble(&self) -> impl Iterator<Item = &Trouble> + '_ {
        self.trouble.iter()
    }

    /// Keeps a [`Trouble`] and logs it.
    pub(super) fn note_trouble(&mut self, peer: Id, what: String, now: Time) {
        tracing::debug!(%peer, "{what}");
        if self.trouble.len() >= MAX_TROUBLE {
            self.trouble.pop_front();
        }
        self.trouble.push_back(Trouble { peer, at: now, what });
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
        let transfers = self
            .peers
            .values()
            .filter_map(|p| p.conn.as_ref())
            .filter(|c| c.transfer && c.is_open())
            .map(|c| c.last_used.max(c.last_heard) + self.config.transfer_idle);
        let resend = self.next_resend();
        deadlines
            .chain(closing)
            .chain(waiting)
            .chain(tokens)
            .chain(self.evict_at)
            .chain(transfers)
            .chain(resend)
            .chain(self.next_silence())
            .min()
    }

    // ---- inputs from the node -------------------------------------------------------

    /// The node wants the round-trip time to `peer` from the transport: asked for at once
    /// when a connection is open, else when one opens (the node's message that asked for
    /// the measurement is opening it).
    pub fn measure(&mut self, peer: Id) {
        let record = self.peers.entry(peer).or_default();
        match record.conn.as_ref() {
            Some(c) if c.is_open() => {
                let conn = c.id;
                record.wants_rtt = false;
                self.commands.push_back(Command::MeasureRtt { conn });
            }
            _ => record.wants_rtt = true,
        }
    }

    /// Whether the signaling server is connected and we are registered on it.
    pub fn set_server(&mut self, registered: bool) {
        self.server = registered;
    }

    /// A signaling server named `peers` after we joined: they may not be in our overlay
    /// (yet), so connections to them are signalled through the server for a while.
    pub fn note_outsiders(&mut self, peers: &[Id], now: Time) {
        for &peer in peers {
            self.peers.entry(peer).or_default().known = true;
            self.note_joiner(peer, now);
        }
    }

    /// `peer` is not in the overlay yet (its join passed by, or a server named it).
    pub(super) fn note_joiner(&mut self, peer: Id, now: Time) {
        if self.joiners.len() >= MAX_JOINERS {
            self.joiners.pop_front();
        }
        self.joiners.push_back((peer, now));
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
        match self.admission(peer, Attempt::outgoing(false), tables, now) {
            Admission::Start(charge) => self.start(peer, charge, tables, now),
            Admission::Wait => {
                self.peers.entry(peer).or_default().waiting.get_or_insert(now);
            }
            Admission::Refuse(reason) => self.note_trouble(peer, format!("no connection attempt: {reason}"), now),
        }
    }

    /// The core wants `message` to reach `to`: sent on its open connection, queued while one
    /// is set up, or given back as [`PeerEvent::SendFailed`].
    pub fn send(&mut self, to: Id, message: Message<AppMessage>, tables: &impl Tables, now: Time) {
        if to == self.own {
            return;
        }
        if let Some(target) = signal_target(&message).filter(|&t| t != to && self.is_open(t)) {
            return self.send_on(target, &message, now); // Its last hop: we are connected to its target.
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
            let transfer = matches!(message, Message::Direct(AppMessage::Past(_)));
            match self.admission(to, Attempt::outgoing(transfer), tables, now) {
                Admission::Start(charge) => {
                    self.queue(to, message, size);
                    return self.start(to, charge, tables, now);
                }
                Admission::Wait => {
                    self.peers.entry(to).or_default().waiting.get_or_insert(now);
                }
                Admission::Refuse(reason) => {
                    self.note_trouble(to, format!("message not sent: {reason}"), now);
                    self.stats.refused += 1;
                    return self.events.push_back(PeerEvent::SendFailed { to, message, peer_failed: false });
                }
            }
        }
        self.queue(to, message, size);
    }

    fn queue(&mut self, to: Id, message: Message<AppMessage>, size: usize) {
        let (max, max_bytes) = (self.config.max_pending, self.config.max_pending_bytes);
        if let Err(message) = self.peers.entry(to).or_default().pending.push(message, size, max, max_bytes) {
            self.events.push_back(PeerEvent::SendFailed { to, message, peer_failed: false });
        }
    }

    /// The core says `peer` left or failed: close its open connection (an attempt still
    /// under way goes on: its slowness may be what made a probe time out).
    /// A connection the peer was heard on within `liveness` stays: the core's probe may have
    /// waited behind a burst of data on that very connection. A node that left is gone, so
    /// messages for it fail at once for [`ManagerConfig::tombstone`] rather than wait out
    /// an attempt to reach it (a relay node passing a request on to it sends the request
    /// back to its origin at once).
    pub fn handle_node_gone(&mut self, peer: Id, left: bool, now: Time) {
        let heard = self.conn(peer).is_some_and(|c| now.since(c.last_heard) < self.config.liveness);
        if self.is_open(peer) && (left || !heard) {
            let reason = if left { "the node left" } else { "the node failed" };
            self.drop_failed(peer, reason, left, now);
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
        let bytes = frames.iter().map(Vec::len).sum();
        self.commands.extend(frames.into_iter().map(|bytes| Command::Send { conn, bytes }));
        self.sent_on(to, message, bytes, now);
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
            SignalKind::Offer { sdp, .. } | SignalKind::Answer { sdp } => sdp.len() + 64,
            SignalKind::Reject { reason } => reason.len() + 64,
        },
        Some(AppMessage::Past(p)) => match p.as_ref() {
            PastMessage::ChunkReply { data, .. } => data.len() + 64,
            _ => 1024,
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
        Message::RowReply { entries, .. } => entries.iter().map(|e| e.id).collect(),
        Message::NewNode { id, .. } => vec![*id],
        Message::EntryReply { entries } => entries.iter().filter_map(|&(_, _, id)| id).collect(),
        Message::Route(Routed { key, body: RoutedBody::Join(request), .. }) => {
            request.rows.iter().flatten().chain(&request.neighborhood).chain([key]).copied().collect()
        }
        Message::Route(Routed { body: RoutedBody::FindSlot { origin, .. }, .. }) => vec![*origin],
        Message::Route(Routed { body: RoutedBody::App(AppMessage::Past(past)), .. })
        | Message::Direct(AppMessage::Past(past)) => past.nodes(),
        _ => Vec::new(),
    }
}
