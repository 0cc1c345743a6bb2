//! A deterministic in-memory network for the peer manager and the stack: virtual time, a
//! fake signaling server and a fake WebRTC transport, no browser and no sockets.
//!
//! Each node has an Ed25519 key and an [`Endpoint`]: a full [`Stack`] (Pastry core + peer
//! manager) or a [`Bare`] manager with fake [`Tables`]. The harness carries out the
//! endpoints' [`Command`]s:
//!
//! - **server**: `ToServer { to, payload }` reaches `to`'s `handle_server_signal` when `to`
//!   is registered (and not muted); [`Net::join`] registers a node and welcomes it with the
//!   registered ids closest to it (as the real server, up to 8); [`Net::join_second`] does
//!   the same on a second server, and a signal goes through a server both ends share;
//! - **transport**: `Create` makes an SDP with a unique `a=fingerprint` (and a line naming
//!   the connection, so that the answerer's `Create`, which carries the offer, and the
//!   offerer's `ApplyAnswer` pair the two ends); once paired both ends get
//!   `handle_channel_open` after a round trip, unless ICE fails for the pair; `Send` is
//!   delivered to the other end after [`LATENCY`]; `Close` tells the other end
//!   `handle_closed`; `Sign` is answered with a real signature;
//! - **time**: [`Net::run_until`] jumps to the next delivery or the next `poll_timeout`.
//!
//! Every `Create` is counted per node (= RTCPeerConnections spent).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use past_core::past::{Ed25519Signer, MemoryStore, PastConfig, PublicKey, Signer as _, Storage as _};
use past_core::wire::{self, MAX_FRAME_BYTES, Message};
use past_core::{Config, Id, Time};
use past_link::frame::{self, Data, Incoming, Reassembler};
use past_link::manager::{ConnectionInfo, Source};
use past_link::{
    AppMessage, AuthMessage, Command, ConnId, ManagerConfig, PeerEvent, PeerManager, Stack, StackEvent, Tables,
};
use past_signaling_proto::SignalPayload;

/// One-way delay of a data channel message or a server signal.
pub const LATENCY: Duration = Duration::from_millis(5);
/// How much later a [`Net::late_open`] node hears that its channel opened.
pub const LATE_OPEN: Duration = Duration::from_millis(20);
/// The round trip a transport's statistics report (`MeasureRtt`): deliberately unlike a
/// probe's (2 × [`LATENCY`]) so that a test can tell who measured.
pub const STATS_RTT: Duration = Duration::from_millis(7);
/// Time to create a peer connection and gather its candidates.
pub const DESCRIBE: Duration = Duration::from_millis(1);
/// Contacts the server names in its welcome.
pub const WELCOME_PEERS: usize = 8;

/// PAST content (a message of no consequence): a connection opened for it is a transfer,
/// which a tab does not pace.
pub fn transfer() -> Message<AppMessage> {
    Message::Direct(AppMessage::from(past_core::past::PastMessage::Released { files: Vec::new() }))
}

/// Seconds as a [`Time`].
pub fn secs(s: f64) -> Time {
    Time::from_micros((s * 1e6) as u64)
}

/// What the harness needs of a node.
pub trait Endpoint {
    /// What the endpoint reports to its user.
    type Event: Clone + std::fmt::Debug;
    fn manager(&self) -> &PeerManager;
    fn welcome(&mut self, contacts: Vec<Id>, now: Time);
    fn server_signal(&mut self, from: Id, payload: SignalPayload, now: Time);
    fn described(&mut self, conn: ConnId, sdp: String, now: Time);
    fn channel_open(&mut self, conn: ConnId, local: &str, remote: &str, now: Time);
    fn data(&mut self, conn: ConnId, data: &Data, now: Time);
    fn signed(&mut self, conn: ConnId, signature: [u8; 64], now: Time);
    fn closed(&mut self, conn: ConnId, reason: &str, now: Time);
    fn timeout(&mut self, now: Time);
    fn poll_timeout(&self) -> Option<Time>;
    fn poll_command(&mut self) -> Option<Command>;
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// The answer to a `MeasureRtt` (only a stack asks).
    fn rtt(&mut self, _conn: ConnId, _rtt: Option<Duration>, _now: Time) {}
    /// Answers PAST's storage and signing requests from `store` and `key` (only a stack
    /// asks).
    fn complete_past(&mut self, _store: &mut MemoryStore, _key: &SigningKey, _now: Time) {}
}

impl Endpoint for Stack {
    type Event = StackEvent;
    fn complete_past(&mut self, store: &mut MemoryStore, key: &SigningKey, now: Time) {
        let signer = Ed25519Signer::from_seed(key.to_bytes());
        loop {
            if let Some(request) = self.poll_storage() {
                let result = store.perform(request.op);
                self.handle_storage(request.id, result, now);
            } else if let Some(request) = self.poll_sign() {
                let result = signer.complete(&request);
                self.handle_signature(request.id, result, now);
            } else {
                break;
            }
        }
    }
    fn rtt(&mut self, conn: ConnId, rtt: Option<Duration>, now: Time) {
        self.handle_rtt(conn, rtt, now);
    }
    fn manager(&self) -> &PeerManager {
        Stack::manager(self)
    }
    fn welcome(&mut self, contacts: Vec<Id>, now: Time) {
        self.handle_welcome(contacts, now);
    }
    fn server_signal(&mut self, from: Id, payload: SignalPayload, now: Time) {
        self.handle_server_signal(from, payload, now);
    }
    fn described(&mut self, conn: ConnId, sdp: String, now: Time) {
        self.handle_described(conn, Ok(sdp), now);
    }
    fn channel_open(&mut self, conn: ConnId, local: &str, remote: &str, now: Time) {
        self.handle_channel_open(conn, local, remote, now);
    }
    fn data(&mut self, conn: ConnId, data: &Data, now: Time) {
        self.handle_data(conn, data, now);
    }
    fn signed(&mut self, conn: ConnId, signature: [u8; 64], now: Time) {
        self.handle_signed(conn, Ok(signature), now);
    }
    fn closed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.handle_closed(conn, reason, now);
    }
    fn timeout(&mut self, now: Time) {
        self.handle_timeout(now);
    }
    fn poll_timeout(&self) -> Option<Time> {
        Stack::poll_timeout(self)
    }
    fn poll_command(&mut self) -> Option<Command> {
        Stack::poll_command(self)
    }
    fn poll_event(&mut self) -> Option<StackEvent> {
        Stack::poll_event(self)
    }
}

/// Tables the test sets by hand.
#[derive(Clone, Debug, Default)]
pub struct FakeTables {
    pub joined: bool,
    /// The leaves and routing table entries.
    pub keeps: BTreeSet<Id>,
    /// The leaves (also in `keeps`) and the ids that would enter the leaf set.
    pub leaves: BTreeSet<Id>,
}

impl Tables for FakeTables {
    fn is_joined(&self) -> bool {
        self.joined
    }
    fn keeps(&self, id: Id) -> bool {
        self.keeps.contains(&id)
    }
    fn is_leaf(&self, id: Id) -> bool {
        self.leaves.contains(&id)
    }
}

/// A peer manager on its own, with fake tables.
pub struct Bare {
    pub manager: PeerManager,
    pub tables: FakeTables,
}

impl Bare {
    pub fn new(id: Id, public_key: [u8; 32], config: ManagerConfig, seed: [u8; 32], now: Time) -> Self {
        Bare { manager: PeerManager::new(id, public_key, config, seed, now), tables: FakeTables::default() }
    }
}

impl Endpoint for Bare {
    type Event = PeerEvent;
    fn manager(&self) -> &PeerManager {
        &self.manager
    }
    fn welcome(&mut self, contacts: Vec<Id>, now: Time) {
        self.manager.set_server(true);
        for contact in contacts {
            self.manager.connect(contact, Source::Server, &self.tables, now);
        }
    }
    fn server_signal(&mut self, from: Id, payload: SignalPayload, now: Time) {
        self.manager.handle_server_signal(from, payload, &self.tables, now);
    }
    fn described(&mut self, conn: ConnId, sdp: String, now: Time) {
        self.manager.handle_described(conn, Ok(sdp), now);
    }
    fn channel_open(&mut self, conn: ConnId, local: &str, remote: &str, now: Time) {
        self.manager.handle_channel_open(conn, local, remote, &self.tables, now);
    }
    fn data(&mut self, conn: ConnId, data: &Data, now: Time) {
        self.manager.handle_data(conn, data, now);
    }
    fn signed(&mut self, conn: ConnId, signature: [u8; 64], now: Time) {
        self.manager.handle_signed(conn, Ok(signature), now);
    }
    fn closed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.manager.handle_closed(conn, reason, now);
    }
    fn timeout(&mut self, now: Time) {
        self.manager.handle_timeout(&self.tables, now);
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.manager.poll_timeout()
    }
    fn poll_command(&mut self) -> Option<Command> {
        self.manager.poll_command()
    }
    fn poll_event(&mut self) -> Option<PeerEvent> {
        self.manager.poll_event()
    }
}

/// One node of the network.
pub struct Node<E: Endpoint> {
    pub key: SigningKey,
    pub id: Id,
    pub ep: E,
    /// `(time, peer, conn)` of every `Create` (RTCPeerConnections spent).
    pub creates: Vec<(Time, Id, ConnId)>,
    /// Every command but `Send`, with its time.
    pub commands: Vec<(Time, Command)>,
    /// Every event, with its time.
    pub events: Vec<(Time, E::Event)>,
    /// Pastry messages this node sent, decoded (when [`Net::record_sent`] is on).
    pub sent: Vec<(Time, Id, Message<AppMessage>)>,
    /// The node's PAST store (a stack's storage requests are answered from it).
    pub store: MemoryStore,
}

impl<E: Endpoint> Node<E> {
    /// The created connections to peers in `ids`.
    pub fn creates_for(&self, ids: &BTreeSet<Id>) -> usize {
        self.creates.iter().filter(|(_, peer, _)| ids.contains(peer)).count()
    }
}

/// The transport's view of one end of a peer connection.
#[derive(Debug)]
struct End {
    peer: Id,
    local: String,
    remote: Option<String>,
    /// The offerer's end, for an answerer.
    offer_from: Option<(usize, ConnId)>,
    paired: Option<(usize, ConnId)>,
    open: bool,
    closed: bool,
    /// Outgoing messages reassembled, to record what was sent.
    out: Reassembler,
}

#[derive(Debug)]
enum Delivery {
    Described(usize, ConnId),
    Server { to: usize, from: Id, payload: SignalPayload },
    Open(usize, ConnId),
    Data(usize, ConnId, Vec<u8>),
    Signed(usize, ConnId, [u8; 64]),
    Closed(usize, ConnId),
    Rtt(usize, ConnId, Option<Duration>),
}

impl Delivery {
    /// The node it is for.
    fn node(&self) -> usize {
        match self {
            Delivery::Described(i, _)
            | Delivery::Open(i, _)
            | Delivery::Data(i, _, _)
            | Delivery::Signed(i, _, _)
            | Delivery::Rtt(i, _, _)
            | Delivery::Closed(i, _) => *i,
            Delivery::Server { to, .. } => *to,
        }
    }
}

/// The network.
pub struct Net<E: Endpoint> {
    pub nodes: Vec<Node<E>>,
    pub now: Time,
    index: BTreeMap<Id, usize>,
    registered: BTreeSet<usize>,
    /// Nodes registered on a second signaling server ([`Net::join_second`]).
    second: BTreeSet<usize>,
    /// Server signals to these nodes are dropped (a peer that never answers).
    pub muted: BTreeSet<usize>,
    /// No connection of these nodes ever opens (ICE fails).
    pub ice_fails: BTreeSet<usize>,
    /// These nodes' transport reports a channel open [`LATE_OPEN`] after it opened, while
    /// its messages come at once (a browser running a channel's first messages before the
    /// promise that applied the answer).
    pub late_open: BTreeSet<usize>,
    /// The transport of these nodes has no statistics: `MeasureRtt` is answered `None`
    /// (the others answer [`STATS_RTT`]).
    pub no_stats: BTreeSet<usize>,
    /// No connection between these two nodes opens (smaller index first).
    pub blocked: BTreeSet<(usize, usize)>,
    /// These nodes take no input at all, as a tab that froze or crashed: what reaches them
    /// is lost, their timers do not run, and their connections stay open at the other end.
    pub frozen: BTreeSet<usize>,
    /// These nodes say this overlay version in their hellos, as nodes of other code would.
    pub versions: BTreeMap<usize, u32>,

    /// Decode and keep every Pastry message sent.
    pub record_sent: bool,
    ends: BTreeMap<(usize, ConnId), End>,
    queue: BTreeMap<(Time, u64), Delivery>,
    seq: u64,
    fingerprints: u64,
}

/// `bytes`, or the hello they carry with `version` in it.
fn with_version(bytes: Vec<u8>, version: u32) -> Vec<u8> {
    match Reassembler::new(MAX_FRAME_BYTES).push(&bytes) {
        Ok(Some(Incoming::Auth(AuthMessage::Hello { public_key, nonce, joined, .. }))) => {
            frame::encode_auth(&AuthMessage::Hello { version, public_key, nonce, joined })
        }
        _ => bytes,
    }
}

fn key_for(seed: u64, i: usize) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    bytes[16] = 0xa5;
    SigningKey::from_bytes(&bytes)
}

/// A node id and its key's public half.
pub fn identity(key: &SigningKey) -> (Id, [u8; 32]) {
    let public = key.verifying_key().to_bytes();
    (Id::from_public_key(&public), public)
}

impl Net<Stack> {
    /// `n` stacks (not registered yet).
    pub fn stacks(n: usize, seed: u64, core: &Config, manager: &ManagerConfig) -> Self {
        Net::new(n, seed, |id, public, node_seed, now| {
            let past = PastConfig::new(PublicKey(public), 1 << 30);
            Stack::new(id, public, core.clone(), manager.clone(), past, node_seed, now)
        })
    }

    /// Joins every node, one after the other 300 ms apart, then lets the tables settle for
    /// `settle`; asserts that all joined.
    pub fn join_in_turn(&mut self, settle: Duration) {
        for i in 0..self.nodes.len() {
            self.join(i);
            self.run_for(Duration::from_millis(300));
        }
        self.run_for(settle);
        assert!(self.all_joined(0..self.nodes.len()));
    }

    /// Whether every node in `which` has joined.
    pub fn all_joined(&self, which: impl IntoIterator<Item = usize>) -> bool {
        which.into_iter().all(|i| self.nodes[i].ep.node().is_joined())
    }

    /// Routes a text payload from `from` to `key`.
    pub fn route(&mut self, from: usize, key: Id, text: &str) {
        let now = self.now;
        let origin = self.nodes[from].id;
        let payload = past_link::Payload { origin, text: true, data: text.as_bytes().to_vec() };
        self.nodes[from].ep.route(key, payload, now).expect("route");
        self.drain(from);
    }

    /// The payloads delivered to `i` with this text.
    pub fn delivered(&self, i: usize, text: &str) -> usize {
        self.nodes[i]
            .events
            .iter()
            .filter(|(_, e)| matches!(e, StackEvent::Delivered(d) if d.payload.data == text.as_bytes()))
            .count()
    }
}

impl Net<Bare> {
    /// `n` bare managers (not registered yet).
    pub fn bare(n: usize, seed: u64, manager: &ManagerConfig) -> Self {
        Net::new(n, seed, |id, public, node_seed, now| Bare::new(id, public, manager.clone(), node_seed, now))
    }
}

impl<E: Endpoint> Net<E> {
    /// `n` nodes made by `make(id, public_key, seed, now)`.
    pub fn new(n: usize, seed: u64, mut make: impl FnMut(Id, [u8; 32], [u8; 32], Time) -> E) -> Self {
        let now = Time::ZERO;
        let nodes: Vec<Node<E>> = (0..n)
            .map(|i| {
                let key = key_for(seed, i);
                let (id, public) = identity(&key);
                let mut node_seed = [0u8; 32];
                node_seed[..8].copy_from_slice(&seed.to_le_bytes());
                node_seed[8..16].copy_from_slice(&(i as u64).to_le_bytes());
                let ep = make(id, public, node_seed, now);
                Node {
                    key,
                    id,
                    ep,
                    creates: Vec::new(),
                    commands: Vec::new(),
                    events: Vec::new(),
                    sent: Vec::new(),
                    store: MemoryStore::new(),
                }
            })
            .collect();
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        Net {
            nodes,
            now,
            index,
            registered: BTreeSet::new(),
            second: BTreeSet::new(),
            muted: BTreeSet::new(),
            ice_fails: BTreeSet::new(),
            late_open: BTreeSet::new(),
            no_stats: BTreeSet::new(),
            blocked: BTreeSet::new(),
            frozen: BTreeSet::new(),
            versions: BTreeMap::new(),

            record_sent: false,
            ends: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            fingerprints: 0,
        }
    }

    pub fn id(&self, i: usize) -> Id {
        self.nodes[i].id
    }

    pub fn ids(&self) -> Vec<Id> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn index_of(&self, id: Id) -> Option<usize> {
        self.index.get(&id).copied()
    }

    pub fn manager(&self, i: usize) -> &PeerManager {
        self.nodes[i].ep.manager()
    }

    /// Registers `i` on the server without a welcome.
    pub fn register(&mut self, i: usize) {
        self.registered.insert(i);
    }

    /// The registered ids closest to `i` (what the server's welcome names).
    pub fn contacts_for(&self, i: usize) -> Vec<Id> {
        let own = self.nodes[i].id;
        let mut ids: Vec<Id> = self.registered.iter().filter(|&&j| j != i).map(|&j| self.nodes[j].id).collect();
        ids.sort_by_key(|id| (own.ring_distance(*id), *id));
        ids.truncate(WELCOME_PEERS);
        ids
    }

    /// Registers `i` on the server and hands it the welcome.
    pub fn join(&mut self, i: usize) {
        let contacts = self.contacts_for(i);
        self.registered.insert(i);
        let now = self.now;
        self.nodes[i].ep.welcome(contacts, now);
        self.drain(i);
    }

    /// Registers `i` on a second signaling server and hands it that server's welcome (the
    /// ids registered there closest to it); signals go through a server both ends share.
    pub fn join_second(&mut self, i: usize) {
        let own = self.nodes[i].id;
        let mut contacts: Vec<Id> = self.second.iter().filter(|&&j| j != i).map(|&j| self.nodes[j].id).collect();
        contacts.sort_by_key(|id| (own.ring_distance(*id), *id));
        contacts.truncate(WELCOME_PEERS);
        self.second.insert(i);
        let now = self.now;
        self.nodes[i].ep.welcome(contacts, now);
        self.drain(i);
    }

    /// Runs `f` on node `i`'s endpoint now, then carries out its commands.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut E, Time) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i].ep, now);
        self.drain(i);
        r
    }

    /// Open connections (both ends open in the transport) between `a` and `b`: `(conn of
    /// a, conn of b)`.
    pub fn links(&self, a: usize, b: usize) -> Vec<(ConnId, ConnId)> {
        let peer = self.nodes[b].id;
        self.ends
            .range((a, 0)..(a + 1, 0))
            .filter(|(_, e)| e.peer == peer && e.open && !e.closed)
            .filter_map(|((_, c), e)| {
                let (j, cj) = e.paired?;
                let other = self.ends.get(&(j, cj))?;
                (j == b && other.open && !other.closed).then_some((*c, cj))
            })
            .collect()
    }

    /// The manager's connection to `peer` at node `i`.
    pub fn connection(&self, i: usize, peer: Id) -> Option<ConnectionInfo> {
        self.manager(i).connections().find(|c| c.peer == peer)
    }

    /// Hands `message` to `to` as if `from` had sent it on their open connection (a peer
    /// with a modified client).
    pub fn inject(&mut self, from: usize, to: usize, message: &Message<AppMessage>) {
        let (_, conn) = *self.links(from, to).first().expect("no open connection to inject on");
        let encoded = wire::encode(message).expect("encode");
        let frames = frame::encode_pastry(&encoded, wire::MAX_FRAME_BYTES).expect("frame");
        let now = self.now;
        for bytes in frames {
            self.nodes[to].ep.data(conn, &Data::Bytes(bytes), now);
        }
        self.drain(to);
    }

    /// The transport between `a` and `b` breaks: both ends are told at once.
    pub fn break_link(&mut self, a: usize, b: usize) {
        let now = self.now;
        for (ca, cb) in self.links(a, b) {
            for (node, conn) in [(a, ca), (b, cb)] {
                if let Some(end) = self.ends.get_mut(&(node, conn)) {
                    end.closed = true;
                }
                self.nodes[node].ep.closed(conn, "the transport broke", now);
                self.drain(node);
            }
        }
    }

    fn schedule(&mut self, at: Time, delivery: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), delivery);
    }

    /// Carries out every command of node `i` and keeps its events.
    pub fn drain(&mut self, i: usize) {
        let (now, node) = (self.now, &mut self.nodes[i]);
        node.ep.complete_past(&mut node.store, &node.key, now);
        while let Some(command) = self.nodes[i].ep.poll_command() {
            self.execute(i, command);
        }
        let now = self.now;
        while let Some(event) = self.nodes[i].ep.poll_event() {
            self.nodes[i].events.push((now, event));
        }
    }

    fn sdp(&mut self, i: usize, conn: ConnId, kind: &str) -> String {
        self.fingerprints += 1;
        let bytes = self.fingerprints.to_be_bytes();
        let hex: Vec<String> =
            bytes.iter().cycle().take(32).enumerate().map(|(k, b)| format!("{:02X}", b ^ k as u8)).collect();
        format!(
            "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\na=x-harness:{kind}:{i}:{conn}\r\na=fingerprint:sha-256 {}\r\nm=application 9\r\n",
            self.fingerprints,
            hex.join(":")
        )
    }

    fn parse(sdp: &str) -> Option<(usize, ConnId)> {
        let line = sdp.lines().find_map(|l| l.strip_prefix("a=x-harness:"))?;
        let mut parts = line.split(':').skip(1);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }

    fn execute(&mut self, i: usize, command: Command) {
        let now = self.now;
        if !matches!(command, Command::Send { .. }) {
            self.nodes[i].commands.push((now, command.clone()));
        }
        match command {
            Command::Create { conn, peer, offer } => {
                self.nodes[i].creates.push((now, peer, conn));
                let kind = if offer.is_some() { "answer" } else { "offer" };
                let local = self.sdp(i, conn, kind);
                let offer_from = offer.as_deref().and_then(Self::parse);
                let end = End {
                    peer,
                    local,
                    remote: offer,
                    offer_from,
                    paired: None,
                    open: false,
                    closed: false,
                    out: Reassembler::new(wire::MAX_FRAME_BYTES),
                };
                assert!(self.ends.insert((i, conn), end).is_none(), "a ConnId was reused");
                self.schedule(now + DESCRIBE, Delivery::Described(i, conn));
            }
            Command::ApplyAnswer { conn, sdp } => {
                let Some((j, cj)) = Self::parse(&sdp) else { return };
                let ok = self.ends.get(&(j, cj)).is_some_and(|e| !e.closed && e.offer_from == Some((i, conn)))
                    && self.ends.get(&(i, conn)).is_some_and(|e| !e.closed && e.paired.is_none());
                if !ok {
                    return;
                }
                self.ends.get_mut(&(i, conn)).expect("end").remote = Some(sdp);
                self.ends.get_mut(&(i, conn)).expect("end").paired = Some((j, cj));
                self.ends.get_mut(&(j, cj)).expect("end").paired = Some((i, conn));
                let pair = (i.min(j), i.max(j));
                if self.ice_fails.contains(&i) || self.ice_fails.contains(&j) || self.blocked.contains(&pair) {
                    return;
                }
                let late = |k: usize| if self.late_open.contains(&k) { LATE_OPEN } else { Duration::ZERO };
                let (late_i, late_j) = (late(i), late(j));
                self.schedule(now + LATENCY + late_i, Delivery::Open(i, conn));
                self.schedule(now + LATENCY + late_j, Delivery::Open(j, cj));
            }
            Command::AddCandidate { .. } => {}
            Command::ToServer { to, payload } => {
                let from = self.nodes[i].id;
                let shares_a_server = |j: &usize| {
                    (self.registered.contains(&i) && self.registered.contains(j))
                        || (self.second.contains(&i) && self.second.contains(j))
                };
                if let Some(j) = self.index_of(to).filter(|j| shares_a_server(j) && !self.muted.contains(j)) {
                    self.schedule(now + LATENCY, Delivery::Server { to: j, from, payload });
                }
            }
            Command::Send { conn, bytes } => {
                let record = self.record_sent;
                let Some(end) = self.ends.get_mut(&(i, conn)) else { return };
                if record
                    && let Ok(Some(Incoming::Pastry(f))) = end.out.push(&bytes)
                    && let Ok(message) = wire::decode::<Message<AppMessage>>(&f)
                {
                    let peer = end.peer;
                    self.nodes[i].sent.push((now, peer, message));
                }
                let Some(end) = self.ends.get(&(i, conn)) else { return };
                if end.open
                    && !end.closed
                    && let Some((j, cj)) = end.paired
                {
                    let bytes = match self.versions.get(&i) {
                        Some(&version) => with_version(bytes, version),
                        None => bytes,
                    };
                    self.schedule(now + LATENCY, Delivery::Data(j, cj, bytes));
                }
            }
            Command::Sign { conn, transcript } => {
                let signature = self.nodes[i].key.sign(&transcript).to_bytes();
                self.schedule(now, Delivery::Signed(i, conn, signature));
            }
            Command::MeasureRtt { conn } => {
                let rtt = (!self.no_stats.contains(&i)).then_some(STATS_RTT);
                self.schedule(now, Delivery::Rtt(i, conn, rtt));
            }
            Command::Close { conn } => {
                let Some(end) = self.ends.get_mut(&(i, conn)) else { return };
                let was_open = end.open && !end.closed;
                end.closed = true;
                if was_open && let Some((j, cj)) = end.paired {
                    self.schedule(now + LATENCY, Delivery::Closed(j, cj));
                }
            }
            other => panic!("unknown command {other:?}"),
        }
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now;
        if self.frozen.contains(&delivery.node()) {
            return;
        }
        let node = match delivery {
            Delivery::Described(i, conn) => {
                let Some(sdp) = self.ends.get(&(i, conn)).filter(|e| !e.closed).map(|e| e.local.clone()) else {
                    return;
                };
                self.nodes[i].ep.described(conn, sdp, now);
                i
            }
            Delivery::Server { to, from, payload } => {
                self.nodes[to].ep.server_signal(from, payload, now);
                to
            }
            Delivery::Open(i, conn) => {
                let Some(end) = self.ends.get_mut(&(i, conn)).filter(|e| !e.closed) else { return };
                end.open = true;
                let (local, remote) = (end.local.clone(), end.remote.clone().unwrap_or_default());
                self.nodes[i].ep.channel_open(conn, &local, &remote, now);
                i
            }
            Delivery::Data(i, conn, bytes) => {
                let late = self.late_open.contains(&i);
                if !self.ends.get(&(i, conn)).is_some_and(|e| !e.closed && (e.open || late && e.paired.is_some())) {
                    return;
                }
                self.nodes[i].ep.data(conn, &Data::Bytes(bytes), now);
                i
            }
            Delivery::Signed(i, conn, signature) => {
                self.nodes[i].ep.signed(conn, signature, now);
                i
            }
            Delivery::Rtt(i, conn, rtt) => {
                self.nodes[i].ep.rtt(conn, rtt, now);
                i
            }
            Delivery::Closed(i, conn) => {
                let Some(end) = self.ends.get_mut(&(i, conn)).filter(|e| !e.closed) else { return };
                end.closed = true;
                self.nodes[i].ep.closed(conn, "closed by the peer", now);
                i
            }
        };
        self.drain(node);
    }

    /// The open connections between nodes `i` and `j` break (ICE consent lost): both ends
    /// are told the connection closed.
    pub fn break_connections(&mut self, i: usize, j: usize) {
        let ends: Vec<(usize, ConnId)> = self
            .ends
            .iter()
            .filter(|((n, _), e)| {
                e.open && !e.closed && e.paired.is_some_and(|(m, _)| (*n, m) == (i, j) || (*n, m) == (j, i))
            })
            .map(|(&key, _)| key)
            .collect();
        for (n, conn) in ends {
            self.schedule(self.now, Delivery::Closed(n, conn));
        }
    }

    /// When the next thing happens.
    pub fn next_time(&self) -> Option<Time> {
        let queued = self.queue.keys().next().map(|(t, _)| *t);
        let running = (0..self.nodes.len()).filter(|i| !self.frozen.contains(i));
        let timers = running.filter_map(|i| self.nodes[i].ep.poll_timeout()).min();
        [queued, timers].into_iter().flatten().min()
    }

    /// Runs until `end`, calling `check` after each instant.
    pub fn run_until_with(&mut self, end: Time, mut check: impl FnMut(&Self)) {
        let mut spins = 0u32;
        while let Some(next) = self.next_time().filter(|t| *t <= end) {
            if next > self.now {
                self.now = next;
                spins = 0;
            } else {
                spins += 1;
                assert!(spins < 100_000, "the network spins at {:?} (a timer that is never cleared?)", self.now);
            }
            let now = self.now;
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let delivery = entry.remove();
                self.deliver(delivery);
            }
            for i in 0..self.nodes.len() {
                if !self.frozen.contains(&i) && self.nodes[i].ep.poll_timeout().is_some_and(|t| t <= now) {
                    self.nodes[i].ep.timeout(now);
                    self.drain(i);
                }
            }
            check(self);
        }
        self.now = self.now.max(end);
    }

    /// Runs until `end`.
    pub fn run_until(&mut self, end: Time) {
        self.run_until_with(end, |_| {});
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }
}

/// Checks that each peer and each connection appears once in a manager's connections.
pub fn assert_one_state_per_peer(manager: &PeerManager) {
    let mut peers = BTreeSet::new();
    let mut conns = BTreeSet::new();
    for c in manager.connections() {
        assert!(peers.insert(c.peer), "peer {} listed twice", c.peer);
        assert!(conns.insert(c.conn), "connection {} listed twice", c.conn);
    }
}

/// What a tab makes of the browser tests' `FAST_TIMERS` (node-wasm's settings) with leaf
/// sets of `leaf_set_size` and at most `max_connections` connections.
pub fn fast_timers(leaf_set_size: usize, max_connections: usize) -> (Config, ManagerConfig) {
    let mut core = Config::default();
    core.leaf_set_size = leaf_set_size;
    core.keepalive_interval = Some(Duration::from_millis(500));
    core.probe_timeout = Duration::from_millis(2500);
    core.failed_memory = Duration::from_millis(5000);
    core.join_timeout = Duration::from_millis(2000);
    let mut manager =
        ManagerConfig { max_connections, connect_timeout: Duration::from_secs(6), ..ManagerConfig::default() };
    manager.liveness = Duration::from_millis(3000);
    manager.tombstone = Duration::from_millis(5000);
    manager.idle = Duration::from_millis(1500).max(manager.eviction_grace);
    manager.limits.backoff_base = Duration::from_millis(1500);
    (core, manager)
}

/// The next of a sequence of pseudo-random keys drawn from `state`.
pub fn random_key(state: &mut u64) -> Id {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Id::from_u128((u128::from(*state) << 64) | u128::from(state.rotate_left(17)))
}

/// The index of the id in `ids` numerically closest to `key`.
pub fn closest(ids: &[Id], key: Id) -> usize {
    (0..ids.len()).min_by_key(|&i| (key.ring_distance(ids[i]), ids[i])).expect("some ids")
}
