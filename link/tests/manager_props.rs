//! Issue 9, property test: random sequences of manager inputs (sends, server signals,
//! transport events, random bytes, signatures, closes, failures, timeouts with time jumps,
//! overlay signals with random fields) never panic, and after every step each peer is in at
//! most one state (`connections()` lists each peer once and each connection once, and
//! `peer_of` agrees) and the budget holds.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ed25519_dalek::Signer as _;
use ed25519_dalek::SigningKey;
use harness::{FakeTables, assert_one_state_per_peer, identity};
use past_core::wire::{self, Message};
use past_core::{Id, Time};
use past_link::auth::{self, AuthMessage};
use past_link::frame::{self, Data, Incoming, Reassembler};
use past_link::manager::{Source, State};
use past_link::{
    AppMessage, Command, ManagerConfig, OVERLAY_VERSION, OverlaySignal, Payload, PeerEvent, PeerManager, SignalKind,
};
use past_signaling_proto::SignalPayload;
use proptest::prelude::*;

const BUDGET: u32 = 6;
const PEERS: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Connect(usize),
    ServerOffer(usize, u8),
    ServerAnswer(usize, u8),
    ServerCandidate(usize),
    Described(u64, bool),
    ChannelOpen(u64, u8, bool),
    Hello(u64, usize, bool),
    /// The peer `usize`'s proof on a connection (valid when it is that connection's peer).
    Proof(u64, usize),
    /// A Pastry message, or a close notice, on a connection.
    Pastry(u64),
    CloseNotice(u64),
    /// Every step of a good handshake on a connection, with its real peer.
    Complete(u64),
    Data(u64, Vec<u8>),
    Signed(u64, bool),
    Closed(u64),
    Failed(u64),
    Timeout(u32),
    Overlay {
        from: usize,
        to_us: bool,
        session: u64,
        kind: u8,
        last_hop: Option<usize>,
        fp: u8,
    },
    NodeGone(usize, bool),
    Server(bool),
    Joined(bool),
    Keep(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0..PEERS;
    let conn = 1u64..8;
    prop_oneof![
        peer.clone().prop_map(Op::Send),
        peer.clone().prop_map(Op::Connect),
        (peer.clone(), any::<u8>()).prop_map(|(p, f)| Op::ServerOffer(p, f)),
        (peer.clone(), any::<u8>()).prop_map(|(p, f)| Op::ServerAnswer(p, f)),
        peer.clone().prop_map(Op::ServerCandidate),
        (conn.clone(), any::<bool>()).prop_map(|(c, ok)| Op::Described(c, ok)),
        (conn.clone(), any::<u8>(), any::<bool>()).prop_map(|(c, f, good)| Op::ChannelOpen(c, f, good)),
        (conn.clone(), peer.clone(), any::<bool>()).prop_map(|(c, p, j)| Op::Hello(c, p, j)),
        (conn.clone(), peer.clone()).prop_map(|(c, p)| Op::Proof(c, p)),
        (conn.clone(), peer.clone()).prop_map(|(c, p)| Op::Proof(c, p)),
        conn.clone().prop_map(Op::Pastry),
        conn.clone().prop_map(Op::CloseNotice),
        conn.clone().prop_map(Op::Complete),
        conn.clone().prop_map(Op::Complete),
        (conn.clone(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(c, b)| Op::Data(c, b)),
        (conn.clone(), any::<bool>()).prop_map(|(c, ok)| Op::Signed(c, ok)),
        conn.clone().prop_map(Op::Closed),
        conn.prop_map(Op::Failed),
        (0u32..40_000).prop_map(Op::Timeout),
        (peer.clone(), any::<bool>(), 0u64..4, 0u8..3, proptest::option::of(peer.clone()), any::<u8>()).prop_map(
            |(from, to_us, session, kind, last_hop, fp)| Op::Overlay { from, to_us, session, kind, last_hop, fp }
        ),
        (peer.clone(), any::<bool>()).prop_map(|(p, l)| Op::NodeGone(p, l)),
        any::<bool>().prop_map(Op::Server),
        any::<bool>().prop_map(Op::Joined),
        peer.prop_map(Op::Keep),
    ]
}

fn sdp(fp: u8) -> String {
    format!("v=0\r\na=fingerprint:sha-256 {fp:02X}:00:11\r\n")
}

fn payload() -> Message<AppMessage> {
    Message::Direct(AppMessage::Payload(Payload { origin: Id::ZERO, text: false, data: vec![1, 2, 3] }))
}

struct World {
    manager: PeerManager,
    tables: FakeTables,
    now: Time,
    peers: Vec<(Id, [u8; 32])>,
    keys: Vec<SigningKey>,
    created: BTreeSet<u64>,
    /// The descriptions given at channel opening, per connection.
    sdps: BTreeMap<u64, (String, String)>,
    /// Our nonce, from the hello we sent, per connection.
    nonces: BTreeMap<u64, [u8; 32]>,
    opened: u32,
    timed_out: bool,
}

impl World {
    fn new() -> Self {
        let own = identity(&SigningKey::from_bytes(&[1; 32]));
        let keys: Vec<SigningKey> = (0..PEERS).map(|i| SigningKey::from_bytes(&[10 + i as u8; 32])).collect();
        let peers = keys.iter().map(identity).collect();
        let config = ManagerConfig {
            connection_budget: BUDGET,
            reload_reserve: 2,
            max_connections: 3,
            max_pending: 4,
            liveness: Duration::from_secs(1),
            idle: Duration::from_secs(2),
            eviction_grace: Duration::from_secs(1),
            ..ManagerConfig::default()
        };
        World {
            manager: PeerManager::new(own.0, own.1, config, [7; 32], Time::ZERO),
            tables: FakeTables::default(),
            now: Time::ZERO,
            peers,
            keys,
            created: BTreeSet::new(),
            sdps: BTreeMap::new(),
            nonces: BTreeMap::new(),
            opened: 0,
            timed_out: false,
        }
    }

    fn apply(&mut self, op: Op) {
        if let Op::Complete(c) = op {
            let peer = self.manager.peer_of(c).and_then(|id| self.peers.iter().position(|(p, _)| *p == id));
            let steps = match peer {
                Some(p) => vec![
                    Op::ChannelOpen(c, c as u8 + 100, true),
                    Op::Hello(c, p, true),
                    Op::Signed(c, true),
                    Op::Proof(c, p),
                ],
                None => vec![Op::ChannelOpen(c, 0, true)],
            };
            for step in steps {
                self.apply(step);
                self.check();
            }
            return;
        }
        self.timed_out = matches!(op, Op::Timeout(_));
        let (m, t, now) = (&mut self.manager, &self.tables, self.now);
        let id = |p: usize| self.peers[p].0;
        match op {
            Op::Send(p) => m.send(id(p), payload(), t, now),
            Op::Connect(p) => m.connect(id(p), Source::Peer(id((p + 1) % PEERS)), t, now),
            Op::ServerOffer(p, fp) => m.handle_server_signal(id(p), SignalPayload::Offer { sdp: sdp(fp) }, t, now),
            Op::ServerAnswer(p, fp) => m.handle_server_signal(id(p), SignalPayload::Answer { sdp: sdp(fp) }, t, now),
            Op::ServerCandidate(p) => {
                let candidate =
                    SignalPayload::Candidate { candidate: "candidate:1".into(), sdp_mid: None, sdp_m_line_index: None };
                m.handle_server_signal(id(p), candidate, t, now);
            }
            Op::Described(c, ok) => m.handle_described(c, if ok { Ok(sdp(c as u8)) } else { Err("no".into()) }, now),
            Op::ChannelOpen(c, fp, good) => {
                let remote = if good { sdp(fp) } else { "v=0\r\n".to_string() };
                m.handle_channel_open(c, &sdp(c as u8), &remote, t, now);
                self.sdps.insert(c, (sdp(c as u8), remote));
            }
            Op::Hello(c, p, joined) => {
                let hello = AuthMessage::Hello {
                    version: OVERLAY_VERSION,
                    public_key: self.peers[p].1,
                    nonce: [3; 32],
                    joined,
                };
                m.handle_data(c, &Data::Bytes(frame::encode_auth(&hello)), now);
            }
            Op::Proof(c, p) => {
                let signature = match (self.sdps.get(&c), self.nonces.get(&c)) {
                    (Some((local, remote)), Some(own_nonce)) => {
                        let prints = |sdp: &str| auth::canonical_fingerprints(sdp, "x").unwrap_or_default();
                        let signed = auth::transcript(
                            &self.peers[p].1,
                            (&prints(remote), &[3; 32]),
                            (&prints(local), own_nonce),
                        );
                        self.keys[p].sign(&signed).to_bytes().to_vec()
                    }
                    _ => vec![5; 64],
                };
                m.handle_data(c, &Data::Bytes(frame::encode_auth(&AuthMessage::Proof { signature })), now);
            }
            Op::Pastry(c) => {
                let encoded = wire::encode(&payload()).expect("encode");
                for bytes in frame::encode_pastry(&encoded, wire::MAX_FRAME_BYTES).expect("frame") {
                    m.handle_data(c, &Data::Bytes(bytes), now);
                }
            }
            Op::CloseNotice(c) => m.handle_data(c, &Data::Bytes(frame::encode_close()), now),
            Op::Complete(_) => {}
            Op::Data(c, bytes) => m.handle_data(c, &Data::Bytes(bytes), now),
            Op::Signed(c, ok) => m.handle_signed(c, if ok { Ok([9; 64]) } else { Err("no".into()) }, now),
            Op::Closed(c) => m.handle_closed(c, "closed", now),
            Op::Failed(c) => m.handle_failed(c, "failed", now),
            Op::Timeout(ms) => {
                self.now = now + Duration::from_millis(u64::from(ms));
                self.manager.handle_timeout(&self.tables, self.now);
            }
            Op::Overlay { from, to_us, session, kind, last_hop, fp } => {
                let kind = match kind {
                    0 => SignalKind::Offer { sdp: sdp(fp), transfer: fp % 2 == 0 },
                    1 => SignalKind::Answer { sdp: sdp(fp) },
                    _ => SignalKind::Reject { reason: "no".into() },
                };
                let to = if to_us { m.id() } else { id((from + 1) % PEERS) };
                let signal = OverlaySignal { from: id(from), to, session, kind };
                m.handle_overlay_signal(signal, 2, last_hop.map(id), t, now);
            }
            Op::NodeGone(p, left) => m.handle_node_gone(id(p), left, now),
            Op::Server(on) => m.set_server(on),
            Op::Joined(joined) => self.tables.joined = joined,
            Op::Keep(p) => {
                let peer = id(p);
                if !self.tables.keeps.remove(&peer) {
                    self.tables.keeps.insert(peer);
                }
            }
        }
        while let Some(command) = self.manager.poll_command() {
            match command {
                Command::Create { conn, .. } => assert!(self.created.insert(conn), "connection {conn} created twice"),
                Command::Send { conn, bytes } => {
                    if let Ok(Some(Incoming::Auth(AuthMessage::Hello { nonce, .. }))) =
                        Reassembler::new(wire::MAX_FRAME_BYTES).push(&bytes)
                    {
                        self.nonces.insert(conn, nonce);
                    }
                }
                _ => {}
            }
        }
        while let Some(event) = self.manager.poll_event() {
            if matches!(event, PeerEvent::Opened { .. }) {
                self.opened += 1;
            }
        }
    }

    fn check(&self) {
        assert_one_state_per_peer(&self.manager);
        for c in self.manager.connections() {
            assert_eq!(self.manager.peer_of(c.conn), Some(c.peer));
        }
        assert!(self.manager.stats().created <= BUDGET);
        assert!(self.created.len() <= BUDGET as usize);
        assert_eq!(self.created.len(), self.manager.stats().created as usize);
        let open = self.manager.connections().filter(|c| c.state == State::Open).count();
        assert_eq!(open, self.manager.stats().open);
        if self.timed_out {
            // Right after `handle_timeout(now)`, nothing is due at `now` any more (else a
            // driver would spin).
            assert!(self.manager.poll_timeout().is_none_or(|at| at > self.now), "a timer still due");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_keep_one_state_per_peer(ops in proptest::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        world.check();
        for op in ops {
            world.apply(op);
            world.check();
        }
    }
}

/// The random inputs reach the open state (with valid proofs), so the property covers it.
#[test]
fn random_inputs_open_connections() {
    let mut world = World::new();
    let (c, p) = (1, 0);
    world.apply(Op::ServerOffer(p, 1));
    world.apply(Op::ChannelOpen(c, 2, true));
    world.apply(Op::Hello(c, p, true));
    world.apply(Op::Signed(c, true));
    world.apply(Op::Proof(c, p));
    world.check();
    assert_eq!(world.opened, 1);
    assert!(world.manager.is_open(world.peers[p].0));
}
