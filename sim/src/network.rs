//! The simulated network: real core nodes, an event queue in virtual time, and a latency
//! model. Deterministic for a given seed.
//!
//! Every message is delivered after the one-way latency of the [`Plane`] model plus, once
//! [`Network::set_jitter`] is called, a random extra delay ([`Jitter`]), so that round-trip
//! times measured by probes are noisy as on a real network.
//!
//! Each node's state comes only from the messages it receives; the simulator's global view
//! (all ids, who is alive) is used for nothing but choosing a nearby join contact, as the
//! Pastry paper assumes, and for measuring the results.

use core::time::Duration;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use past_core::wire::{Message, Routed, RoutedBody};
use past_core::{Application, Config, Event, Id, Net, Node, Rtt, SendFailure, Time, Transmit};
use past_link::manager::ManagerConfig;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::plane::{Plane, Point, SIDE_MS};
use crate::transfers::TransferCount;

/// Random extra delay added to every one-way delivery: exponentially distributed with a
/// mean of `relative` times the base latency plus `constant`, drawn from the network's
/// seeded jitter generator. Messages between two nodes may therefore overtake each other.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    /// Mean extra delay as a share of the base latency.
    pub relative: f64,
    /// Mean extra delay added whatever the latency.
    pub constant: Duration,
}

impl Jitter {
    /// The model of the Pastry experiments: a mean extra delay of 5 % of the latency plus
    /// 0.5 ms.
    pub const DEFAULT: Jitter = Jitter { relative: 0.05, constant: Duration::from_micros(500) };

    /// An extra delay for a message with base latency `latency`; `unit` is uniform in [0, 1).
    fn delay(&self, latency: Duration, unit: f64) -> Duration {
        let mean = latency.as_secs_f64() * self.relative + self.constant.as_secs_f64();
        Duration::from_secs_f64(-mean * (1.0 - unit).ln())
    }
}

/// A lookup in flight or done.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lookup {
    /// Node the lookup started at.
    pub source: u32,
    /// The key looked up.
    pub key: Id,
    /// Node it was delivered at, if delivered.
    pub delivered_at: Option<u32>,
    /// Hops taken.
    pub hops: u8,
    /// Sum of the model latencies of the hops taken (without jitter), plus the failure
    /// detection delay for each forward that failed.
    pub distance: Duration,
}

/// An application the simulator can run: it is created for each node, and may tell the
/// simulator which of its routed messages are lookups to measure.
pub trait SimApp: Application {
    /// The application of a new node.
    fn create(id: Id) -> Self;

    /// The lookup a routed message belongs to, to add up the latency of its hops.
    fn lookup_of(message: &Self::Message) -> Option<u32> {
        let _ = message;
        None
    }

    /// Lookups delivered at this node since last asked, with their hop counts.
    fn take_delivered(&mut self) -> Vec<(u32, u8)> {
        Vec::new()
    }
}

/// The Pastry experiments' application: lookups are numbered, and it records where they
/// are delivered.
#[derive(Debug, Default)]
pub struct LookupApp {
    delivered: Vec<(u32, u8)>,
}

impl Application for LookupApp {
    type Message = u32;

    fn deliver(&mut self, _: &mut dyn Net<u32>, _key: Id, lookup: u32, hops: u8) {
        self.delivered.push((lookup, hops));
    }
}

impl SimApp for LookupApp {
    fn create(_: Id) -> Self {
        LookupApp::default()
    }

    fn lookup_of(lookup: &u32) -> Option<u32> {
        Some(*lookup)
    }

    fn take_delivered(&mut self) -> Vec<(u32, u8)> {
        std::mem::take(&mut self.delivered)
    }
}

/// Messages sent, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Join messages, hop by hop, and join replies.
    pub join: u64,
    /// Probes (liveness, proximity and announcements).
    pub probe: u64,
    /// Leaf sets pushed or requested.
    pub leaf_set: u64,
    /// New nodes passed along the ring.
    pub new_node: u64,
    /// Routing table repair: entry requests and replies, slot searches.
    pub repair: u64,
    /// Application messages (routed hops and direct messages).
    pub app: u64,
    /// Leave notices.
    pub leave: u64,
    /// Sends to failed nodes.
    pub failed_sends: u64,
    /// Of `failed_sends`: hops of routed messages (a route met a failed node).
    pub failed_forwards: u64,
    /// Of `leaf_set`: requests for a leaf set (leaf set repair).
    pub leaf_set_requests: u64,
    /// Of `leaf_set`: leaf sets sent in answer to a request.
    pub leaf_set_answers: u64,
    /// Of `repair`: entry requests (each may list several slots).
    pub entry_requests: u64,
    /// Of `repair`: entry replies that named no node for any slot asked (each names one or
    /// more slots).
    pub empty_entry_replies: u64,
    /// Of `repair`: hops of routed slot searches.
    pub find_slot_hops: u64,
}

impl Counters {
    /// Every message sent.
    pub fn total(&self) -> u64 {
        self.join + self.probe + self.leaf_set + self.new_node + self.repair + self.app + self.leave
    }

    /// Leaf sets pushed unasked (stabilization), the rest of `leaf_set`.
    pub fn leaf_set_pushes(&self) -> u64 {
        self.leaf_set - self.leaf_set_requests - self.leaf_set_answers
    }

    /// The counts of `self` minus those of `earlier`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            join: self.join - earlier.join,
            probe: self.probe - earlier.probe,
            leaf_set: self.leaf_set - earlier.leaf_set,
            new_node: self.new_node - earlier.new_node,
            repair: self.repair - earlier.repair,
            app: self.app - earlier.app,
            leave: self.leave - earlier.leave,
            failed_sends: self.failed_sends - earlier.failed_sends,
            failed_forwards: self.failed_forwards - earlier.failed_forwards,
            leaf_set_requests: self.leaf_set_requests - earlier.leaf_set_requests,
            leaf_set_answers: self.leaf_set_answers - earlier.leaf_set_answers,
            entry_requests: self.entry_requests - earlier.entry_requests,
            empty_entry_replies: self.empty_entry_replies - earlier.empty_entry_replies,
            find_slot_hops: self.find_slot_hops - earlier.find_slot_hops,
        }
    }

    fn count<M>(&mut self, message: &Message<M>) {
        self.count_detail(message);
        let slot = match message {
            Message::Route(Routed { body: RoutedBody::Join(_), .. }) | Message::JoinReply(_) => &mut self.join,
            Message::Route(Routed { body: RoutedBody::App(_), .. }) | Message::Direct(_) => &mut self.app,
            Message::Route(Routed { body: RoutedBody::FindSlot { .. }, .. })
            | Message::EntryRequest { .. }
            | Message::EntryReply { .. } => &mut self.repair,
            Message::Probe(_) => &mut self.probe,
            Message::LeafSet { .. } | Message::LeafSetRequest => &mut self.leaf_set,
            Message::NewNode { .. } => &mut self.new_node,
            Message::RowRequest { .. } | Message::RowReply { .. } => &mut self.join,
            Message::Leave => &mut self.leave,
        };
        *slot += 1;
    }

    fn count_detail<M>(&mut self, message: &Message<M>) {
        let detail = match message {
            Message::LeafSetRequest => &mut self.leaf_set_requests,
            Message::LeafSet { answer: true, .. } => &mut self.leaf_set_answers,
            Message::EntryRequest { .. } => &mut self.entry_requests,
            Message::EntryReply { entries } if entries.iter().all(|e| e.2.is_none()) => &mut self.empty_entry_replies,
            Message::Route(Routed { body: RoutedBody::FindSlot { .. }, .. }) => &mut self.find_slot_hops,
            _ => return,
        };
        *detail += 1;
    }
}

/// A queued event. A delivery carries the sender's id, which the receiver needs, rather
/// than its index: looking the id up when the message arrives would cost a cache miss.
enum Kind<M> {
    Deliver { from: Id, to: u32, message: Message<M> },
    SendFailed { from: u32, to: Id, message: Message<M> },
    Wake { node: u32 },
}

/// The event queue: a binary heap of small (time, sequence, slot) keys over a slab of
/// events, so that sifting moves 24 bytes, not whole messages.
struct Queue<M> {
    heap: BinaryHeap<Reverse<(Time, u64, u32)>>,
    slab: Vec<Option<Kind<M>>>,
    free: Vec<u32>,
    seq: u64,
}

impl<M> Default for Queue<M> {
    fn default() -> Self {
        Queue { heap: BinaryHeap::new(), slab: Vec::new(), free: Vec::new(), seq: 0 }
    }
}

impl<M> Queue<M> {
    fn push(&mut self, at: Time, kind: Kind<M>) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(kind);
                slot
            }
            None => {
                self.slab.push(Some(kind));
                (self.slab.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, slot)));
    }

    fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn pop(&mut self) -> Option<(Time, Kind<M>)> {
        let Reverse((at, _, slot)) = self.heap.pop()?;
        let kind = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((at, kind))
    }

    /// The node the next event is for.
    fn next_node(&self) -> Option<u32> {
        let Reverse((_, _, slot)) = self.heap.peek()?;
        match self.slab[*slot as usize].as_ref()? {
            Kind::Deliver { to, .. } => Some(*to),
            Kind::SendFailed { from, .. } => Some(*from),
            Kind::Wake { node } => Some(*node),
        }
    }
}

/// What the simulator keeps of each node beside the node itself, together so that handling
/// a message touches one cache line of it per node: its position (a copy of the plane's),
/// its timers, whether it is alive and whether it drops what it should forward.
#[repr(align(64))]
struct Peer {
    point: Point,
    /// The node's timeout as it stood after its last input (a node changes only on input),
    /// so that stale wake-ups are dropped without touching the node.
    deadline: Option<Time>,
    /// The earliest wake-up queued for the node.
    wake_at: Option<Time>,
    alive: bool,
    /// Whether it silently drops the routed messages it should forward.
    dropper: bool,
}

/// A node as a sender finds it by id: its index, whether it is alive and its position,
/// together so that a send costs one lookup (copies of what [`Peer`] holds).
#[derive(Clone, Copy, Debug)]
struct Target {
    node: u32,
    alive: bool,
    point: Point,
}

/// Mixed into the seed of the jitter generator.
const JITTER_SEED: u64 = 0x6a69_7474_6572;

/// A simulated Pastry network whose nodes run the application `A`.
pub struct Network<A: SimApp = LookupApp> {
    config: Config,
    rng: ChaCha8Rng,
    plane: Plane,
    nodes: Vec<Node<A>>,
    ids: Vec<Id>,
    /// The simulator's state of each node, by index.
    peers: Vec<Peer>,
    /// Each node by id, with what sending to it needs (see [`Target`]).
    index: FxHashMap<Id, Target>,
    queue: Queue<A::Message>,
    /// The buffer each node collects the messages of an input in ([`Node::lend_outbox`]):
    /// one for all, so that no node allocates one or keeps it.
    outbox: VecDeque<Transmit<A::Message>>,
    now: Time,
    in_flight: usize,
    /// How long a sender takes to notice that its peer is gone.
    failure_delay: Duration,
    /// Extra delay of every delivery, if any.
    jitter: Option<Jitter>,
    /// Draws the jitter, apart from `rng` so that ids and positions do not depend on it.
    jitter_rng: ChaCha8Rng,
    counters: Counters,
    lookups: Vec<Lookup>,
    events: Vec<(u32, Event)>,
    /// Routed messages the droppers dropped.
    dropped: u64,
    /// The transfer connections counted since [`Network::count_transfers`], if asked.
    transfers: Option<TransferCount>,
    /// Pairs of nodes (lower index first) between which no direct message gets through.
    unconnectable: FxHashSet<(u32, u32)>,
}

impl<A: SimApp> Network<A> {
    /// An empty network whose nodes will use `config` (each with its own seed), sized for
    /// about `expected` nodes, drawing positions and ids from `seed`.
    pub fn new(config: Config, expected: usize, seed: u64) -> Self {
        Network {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            plane: Plane::new(expected),
            nodes: Vec::with_capacity(expected),
            ids: Vec::with_capacity(expected),
            peers: Vec::with_capacity(expected),
            index: FxHashMap::default(),
            queue: Queue::default(),
            outbox: VecDeque::new(),
            now: Time::ZERO,
            in_flight: 0,
            failure_delay: Duration::from_millis(500),
            jitter: None,
            jitter_rng: ChaCha8Rng::seed_from_u64(seed ^ JITTER_SEED),
            counters: Counters::default(),
            lookups: Vec::new(),
            events: Vec::new(),
            dropped: 0,
            transfers: None,
            unconnectable: FxHashSet::default(),
        }
    }

    /// Counts, from now on, the transfer connections direct messages need, each closing
    /// after the browser node's `transfer_idle` unused (see [`crate::transfers`]); a count
    /// already running starts again from zero. With a `budget`, a node that has opened that
    /// many opens no more: a direct message that would need one fails as if its receiver
    /// were gone, as when a tab's manager refuses a connection.
    pub fn count_transfers(&mut self, budget: Option<u32>) {
        self.transfers = Some(TransferCount::new(ManagerConfig::default().transfer_idle, budget));
    }

    /// Exempts `nodes` from the budget of transfer connections (native storage peers), if
    /// [`Network::count_transfers`] counts them.
    pub fn exempt_from_transfer_budget(&mut self, nodes: &[u32]) {
        if let Some(transfers) = &mut self.transfers {
            for &node in nodes {
                transfers.exempt(node);
            }
        }
    }

    /// The transfer connections counted since [`Network::count_transfers`], which stops
    /// counting.
    pub fn take_transfers(&mut self) -> Option<TransferCount> {
        self.transfers.take()
    }

    /// Adds a random extra delay to every message delivered from now on.
    pub fn set_jitter(&mut self, jitter: Jitter) {
        self.jitter = Some(jitter);
    }

    /// How long a sender takes to learn that a message to a dead node failed.
    pub fn failure_delay(&self) -> Duration {
        self.failure_delay
    }

    /// Current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Messages sent so far, by kind.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Number of nodes ever added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node.
    pub fn node(&self, index: u32) -> &Node<A> {
        &self.nodes[index as usize]
    }

    /// A node, mutably (to give its application commands).
    pub fn node_mut(&mut self, index: u32) -> &mut Node<A> {
        &mut self.nodes[index as usize]
    }

    /// A node's id.
    pub fn id(&self, index: u32) -> Id {
        self.ids[index as usize]
    }

    /// Whether a node is alive.
    pub fn is_alive(&self, index: u32) -> bool {
        self.peers[index as usize].alive
    }

    /// The index of the node with this id.
    pub fn index_of(&self, id: Id) -> Option<u32> {
        self.index.get(&id).map(|t| t.node)
    }

    /// One-way latency from a node to the node with id `to`.
    pub fn latency_to(&self, from: u32, to: Id) -> Duration {
        self.index.get(&to).map_or(Duration::MAX, |t| self.latency(from, t.node))
    }

    /// Whether the node with this id is alive.
    pub fn is_alive_id(&self, id: Id) -> bool {
        self.index.get(&id).is_some_and(|t| t.alive)
    }

    /// Indexes of the live nodes.
    pub fn live_nodes(&self) -> Vec<u32> {
        (0..self.nodes.len() as u32).filter(|&i| self.peers[i as usize].alive).collect()
    }

    /// Ids of the live nodes, sorted.
    pub fn live_ids(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self.live_nodes().into_iter().map(|i| self.ids[i as usize]).collect();
        ids.sort_unstable();
        ids
    }

    /// The latency model.
    pub fn plane(&self) -> &Plane {
        &self.plane
    }

    /// Makes a node faulty or malicious (or honest again): it silently drops every routed
    /// message it should forward for others, and behaves normally otherwise (its own routed
    /// messages, deliveries and answers, direct messages). A message forwarded for another
    /// node is one that has taken at least one hop already (the first relay of a join, which
    /// arrives with 0 hops, is let through).
    pub fn set_dropper(&mut self, node: u32, drops: bool) {
        self.peers[node as usize].dropper = drops;
    }

    /// Makes every direct message between nodes `a` and `b` fail as if its receiver were
    /// gone, as between two browser nodes that cannot open a connection to each other (a
    /// path WebRTC cannot traverse, or no connection left in one end's budget). The
    /// overlay's messages, which go over the connections its tables hold, get through.
    pub fn set_unconnectable(&mut self, a: u32, b: u32) {
        self.unconnectable.insert((a.min(b), a.max(b)));
    }

    /// Routed messages dropped by droppers so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Counts the transfer connection a direct message from `from` to `to` needs when
    /// neither holds the other, if transfers are counted; false when an end has no budget
    /// left for it.
    fn open_transfer(&mut self, from: u32, to: u32, transmit: &Transmit<A::Message>) -> bool {
        let Some(transfers) = &mut self.transfers else {
            return true;
        };
        if !matches!(transmit.message, Message::Direct(_))
            || self.nodes[from as usize].state().knows(transmit.to)
            || self.nodes[to as usize].state().knows(self.ids[from as usize])
        {
            return true;
        }
        transfers.record(from, to, self.now)
    }

    /// Whether `message` is direct and `from` and `to` cannot connect.
    fn cannot_connect(&self, from: u32, to: u32, message: &Message<A::Message>) -> bool {
        !self.unconnectable.is_empty()
            && matches!(message, Message::Direct(_))
            && self.unconnectable.contains(&(from.min(to), from.max(to)))
    }

    /// Whether `from` drops this message instead of sending it.
    fn drops(&self, from: u32, message: &Message<A::Message>) -> bool {
        self.peers[from as usize].dropper && matches!(message, Message::Route(Routed { hops, .. }) if *hops >= 2)
    }

    /// Lookups made so far.
    pub fn lookups(&self) -> &[Lookup] {
        &self.lookups
    }

    /// Forgets the lookups made so far.
    pub fn clear_lookups(&mut self) {
        self.lookups.clear();
    }

    /// Overlay events seen so far, with the node that raised them.
    pub fn take_events(&mut self) -> Vec<(u32, Event)> {
        std::mem::take(&mut self.events)
    }

    /// A random number from the simulator's generator.
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A random 128-bit id (as SHA-1 of a fresh public key would be).
    pub fn random_id(&mut self) -> Id {
        Id::from_u128(u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64()))
    }

    /// Adds a node at a random point with a random id; it joins through the present node
    /// nearest to it, and the network runs until the join has settled. Returns its index.
    pub fn add_node(&mut self) -> u32 {
        let node = self.spawn();
        self.run_until_quiet();
        self.plane.add_present(node);
        node
    }

    /// Adds a node that starts joining now, through the present node nearest to it, without
    /// running the network: several nodes spawned in a row join concurrently. It becomes a
    /// contact for later nodes once [`Network::mark_present`] is called.
    pub fn spawn(&mut self) -> u32 {
        let id = loop {
            let id = self.random_id();
            if !self.index.contains_key(&id) {
                break id;
            }
        };
        self.spawn_with(id, A::create(id))
    }

    /// Adds a node with a given id and application (for applications that need per-node
    /// parameters, such as a key from which the id is derived) and runs the network until
    /// its join has settled, like [`Network::add_node`]. The id must be new.
    pub fn add_node_with(&mut self, id: Id, app: A) -> u32 {
        let node = self.spawn_with(id, app);
        self.run_until_quiet();
        self.plane.add_present(node);
        node
    }

    /// [`Network::spawn`] with a given id and application. The id must be new.
    pub fn spawn_with(&mut self, id: Id, app: A) -> u32 {
        let point = Point { x: self.unit() * SIDE_MS, y: self.unit() * SIDE_MS };
        let contact = self.plane.nearest(point);
        let node = self.plane.place(point);
        let mut config = self.config.clone();
        config.rng_seed = self.rng.next_u64();
        self.nodes.push(Node::new(id, config, app));
        self.ids.push(id);
        self.peers.push(Peer { point, deadline: None, wake_at: None, alive: true, dropper: false });
        self.index.insert(id, Target { node, alive: true, point });
        let bootstrap = contact.map(|c| self.ids[c as usize]);
        self.nodes[node as usize].join(bootstrap, self.now);
        self.after_input(node);
        node
    }

    /// Makes a spawned node a join contact for later nodes.
    pub fn mark_present(&mut self, node: u32) {
        self.plane.add_present(node);
    }

    /// The node leaves gracefully, telling every node in its state.
    pub fn leave(&mut self, node: u32) {
        self.nodes[node as usize].leave(self.now);
        self.after_input(node);
        self.set_dead(node);
        self.plane.remove_present(node);
    }

    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Kills a node at once, without a goodbye.
    pub fn kill(&mut self, node: u32) {
        self.set_dead(node);
        self.plane.remove_present(node);
    }

    /// Changes maintenance on every live node from now on.
    pub fn set_maintenance(&mut self, keepalive: Option<Duration>, table_probe: Option<Duration>, table_repair: bool) {
        for node in self.live_nodes() {
            self.nodes[node as usize].set_maintenance(keepalive, table_probe, table_repair, self.now);
            self.after_input(node);
        }
    }

    /// Changes how often every live node exchanges routing table rows from now on.
    pub fn set_row_exchange(&mut self, interval: Option<Duration>) {
        for node in self.live_nodes() {
            self.nodes[node as usize].set_row_exchange(interval, self.now);
            self.after_input(node);
        }
    }

    /// Collects the output of a node after the caller gave it an input through
    /// [`Network::node_mut`].
    pub fn flush(&mut self, node: u32) {
        self.after_input(node);
    }

    fn schedule(&mut self, at: Time, kind: Kind<A::Message>) {
        if !matches!(kind, Kind::Wake { .. }) {
            self.in_flight += 1;
        }
        self.queue.push(at, kind);
    }

    /// Collects what a node produced after an input.
    fn after_input(&mut self, node: u32) {
        self.measure(node);
        let from = node;
        let from_id = self.nodes[node as usize].id();
        let mut outbox = self.nodes[node as usize].take_transmits();
        self.touch_targets(&outbox);
        while let Some(transmit) = outbox.pop_front() {
            if self.drops(from, &transmit.message) {
                self.dropped += 1;
                continue;
            }
            self.counters.count(&transmit.message);
            let target = self
                .index
                .get(&transmit.to)
                .filter(|t| t.alive && !self.cannot_connect(from, t.node, &transmit.message))
                .map(|t| (t.node, t.point))
                .filter(|&(to, _)| self.open_transfer(from, to, &transmit));
            match target {
                Some((to, point)) => {
                    let latency = self.peers[from as usize].point.latency(point);
                    self.add_distance(&transmit.message, latency);
                    let jitter = self.jitter.map_or(Duration::ZERO, |j| {
                        let unit = (self.jitter_rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                        j.delay(latency, unit)
                    });
                    self.schedule(
                        self.now + latency + jitter,
                        Kind::Deliver { from: from_id, to, message: transmit.message },
                    );
                }
                None => {
                    self.counters.failed_sends += 1;
                    self.counters.failed_forwards += u64::from(matches!(transmit.message, Message::Route(_)));
                    self.add_distance(&transmit.message, self.failure_delay);
                    let at = self.now + self.failure_delay;
                    self.schedule(at, Kind::SendFailed { from, to: transmit.to, message: transmit.message });
                }
            }
        }
        self.outbox = outbox;
        while let Some(event) = self.nodes[node as usize].poll_event() {
            self.events.push((node, event));
        }
        let delivered = self.nodes[node as usize].app_mut().take_delivered();
        for (lookup, hops) in delivered {
            if let Some(l) = self.lookups.get_mut(lookup as usize) {
                l.delivered_at = Some(node);
                l.hops = hops;
            }
        }
        self.reschedule_wake(node);
    }

    /// Looks up the target of every message of an input first, in a loop of nothing else,
    /// so that their cache misses overlap; the lookup of each send then hits the cache
    /// (keeping the results instead measured slower). `black_box` keeps the compiler from
    /// dropping lookups whose result is unused.
    fn touch_targets(&self, outbox: &VecDeque<Transmit<A::Message>>) {
        if outbox.len() > 1 {
            let alive = outbox.iter().filter(|t| self.index.get(&t.to).is_some_and(|t| t.alive)).count();
            std::hint::black_box(alive);
        }
    }

    /// Lends the node the buffer for the messages of its next input, taken back by
    /// [`Network::after_input`].
    fn lend_outbox(&mut self, node: u32) {
        self.nodes[node as usize].lend_outbox(&mut self.outbox);
    }

    /// Adds `latency` to the distance of the lookup `message` belongs to, if any.
    fn add_distance(&mut self, message: &Message<A::Message>, latency: Duration) {
        if let Message::Route(Routed { body: RoutedBody::App(message), .. }) = message
            && let Some(l) = A::lookup_of(message).and_then(|i| self.lookups.get_mut(i as usize))
        {
            l.distance += latency;
        }
    }

    /// Answers the node's requests for round-trip times from the latency model, as a
    /// transport would from its connections (FreePastry's simulator does the same).
    fn measure(&mut self, node: u32) {
        while let Some(peer) = self.nodes[node as usize].poll_measure() {
            let Some(&Target { node: other, alive, .. }) = self.index.get(&peer) else { continue };
            if alive {
                let rtt = Rtt::from_duration(self.latency(node, other) * 2);
                self.nodes[node as usize].handle_rtt(peer, rtt, self.now);
            }
        }
    }

    fn reschedule_wake(&mut self, node: u32) {
        self.peers[node as usize].deadline = self.nodes[node as usize].poll_timeout();
        self.ensure_wake(node);
    }

    /// Marks a node dead, for deliveries and for senders.
    fn set_dead(&mut self, node: u32) {
        self.peers[node as usize].alive = false;
        if let Some(target) = self.index.get_mut(&self.ids[node as usize]) {
            target.alive = false;
        }
    }

    /// One-way latency between two nodes, as [`Plane::latency`].
    fn latency(&self, a: u32, b: u32) -> Duration {
        self.peers[a as usize].point.latency(self.peers[b as usize].point)
    }

    /// Queues a wake-up for the node's deadline unless one at or before it is queued.
    fn ensure_wake(&mut self, node: u32) {
        let peer = &mut self.peers[node as usize];
        let Some(at) = peer.deadline else {
            return;
        };
        let at = at.max(self.now);
        if peer.wake_at.is_none_or(|w| at < w) {
            peer.wake_at = Some(at);
            self.schedule(at, Kind::Wake { node });
        }
    }

    /// Runs until no message is in flight (timers further ahead stay queued).
    pub fn run_until_quiet(&mut self) {
        while self.in_flight > 0 {
            if !self.step() {
                break;
            }
        }
    }

    /// Runs as [`Network::run_until_quiet`] does, but stops before the first event after
    /// `until`; returns whether no message is in flight.
    pub fn run_until_quiet_or(&mut self, until: Time) -> bool {
        while self.in_flight > 0 && self.queue.peek_time().is_some_and(|at| at <= until) {
            self.step();
        }
        self.in_flight == 0 || self.queue.peek_time().is_none()
    }

    /// Runs everything scheduled up to `duration` from now, then sets the clock there.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.queue.peek_time().is_some_and(|at| at <= end) {
            self.step();
        }
        self.now = end;
    }

    /// Starts fetching the state of the node the next event is for, so that its cache misses
    /// overlap the handling of this one (nodes are too many for the cache, and each event
    /// is for a node at random).
    fn prefetch_next(&self) {
        if let Some(next) = self.queue.next_node() {
            let next = next as usize;
            prefetch_index::prefetch_index(&self.peers, next);
            self.nodes[next].prefetch();
        }
    }

    fn step(&mut self) -> bool {
        let Some((at, kind)) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        self.prefetch_next();
        match kind {
            Kind::Deliver { from, to, message } => {
                self.in_flight -= 1;

                if self.peers[to as usize].alive {
                    self.lend_outbox(to);
                    self.nodes[to as usize].handle_message(from, message, now);
                    self.after_input(to);
                }
            }
            Kind::SendFailed { from, to, message } => {
                self.in_flight -= 1;
                if self.peers[from as usize].alive {
                    self.lend_outbox(from);
                    self.nodes[from as usize].handle_send_failed(to, message, SendFailure::PeerFailed, now);
                    self.after_input(from);
                }
            }
            Kind::Wake { node } => {
                let peer = &mut self.peers[node as usize];
                if peer.wake_at == Some(at) {
                    peer.wake_at = None;
                }
                if !peer.alive {
                    return true;
                }
                if peer.deadline.is_some_and(|t| t <= now) {
                    self.lend_outbox(node);
                    self.nodes[node as usize].handle_timeout(now);
                    self.after_input(node);
                } else {
                    self.ensure_wake(node);
                }
            }
        }
        true
    }
}

impl Network<LookupApp> {
    /// Starts a lookup of `key` at `source` now.
    pub fn lookup(&mut self, source: u32, key: Id) {
        let lookup = self.lookups.len() as u32;
        self.lookups.push(Lookup { source, key, ..Lookup::default() });
        self.lend_outbox(source);
        self.nodes[source as usize].route(key, lookup, self.now);
        self.after_input(source);
    }
}
