//! The overlay state of one node: its tables, what it has sent and is waiting for, and how
//! it takes in what it hears about other nodes.
//!
//! [`Overlay`] is what an [`Application`](crate::Application) sees during an upcall: it can
//! read the tables, route and send messages. The protocols built on it (join, probing,
//! repair) live in their own modules as further `impl Overlay` blocks.

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::config::{Config, Proximity};
use crate::id::Id;
use crate::leaf_set::Side;
use crate::refine::RowExchange;
use crate::repair::{DeferredReply, SlotRepair};
use crate::route::{Hop, RoutingState};
use crate::time::{Rtt, Time};
use crate::wire::{MAX_ROUTE_FAILED, Message, Probe, Routed, RoutedBody, ThinVec};

/// A message to hand to the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<M> {
    /// The node to send to.
    pub to: Id,
    /// The message.
    pub message: Message<M>,
}

/// Something the driver or the user may want to know about the overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The node has its state and takes part in routing.
    Joined,
    /// No join reply came after every retry: the driver should try another contact.
    JoinFailed,
    /// The leaf set changed.
    LeafSetChanged,
    /// A node stopped answering, or a message to it could not be sent; it was removed.
    NodeFailed(Id),
    /// A node announced it was leaving; it was removed.
    NodeLeft(Id),
    /// A routed message was dropped because it took too many hops.
    RouteDropped {
        /// Its key.
        key: Id,
        /// Hops it had taken.
        hops: u8,
    },
}

/// Where the node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Created, not joining yet.
    Idle,
    /// Waiting for the join reply from the node closest to our id.
    Joining {
        /// The contact that routes our join message.
        bootstrap: Id,
        /// When to send it again.
        retry_at: Time,
        /// Attempts made so far.
        attempts: u8,
    },
    /// Part of the overlay.
    Joined,
    /// Left for good.
    Left,
}

/// What an unanswered request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// A probe with this nonce.
    Probe(u64),
    /// The routing table entry at this slot.
    Entry(u8, u8),
    /// The peer's leaf set.
    LeafSet,
    /// The peer's routing table row (row exchange).
    Row(u8),
}

/// Where [`Overlay::learn`] put a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Learned {
    /// It entered the leaf set.
    pub(crate) leaf: bool,
    /// It filled an empty routing table slot.
    pub(crate) slot: bool,
}

/// A request awaiting its answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub(crate) peer: Id,
    pub(crate) waiting: Waiting,
    pub(crate) sent: Time,
}

/// Most messages waiting in the outbox for the driver. The driver drains it after every
/// input, so only an input that makes a node send this much at once fills it; then the
/// oldest waiting probe is dropped (its answer times out like a lost one), or, with no probe
/// waiting, the new message is dropped and counted ([`crate::Node::dropped_transmits`]).
pub const MAX_OUTBOX: usize = 16_384;

/// Most peers waiting for a probe to measure them because the driver could not.
const MAX_PROBE_MEASURED: usize = 256;

/// The overlay state of one node. Applications see it through [`Net`](crate::Net) in their
/// upcalls.
pub struct Overlay<M> {
    pub(crate) config: Config,
    pub(crate) state: RoutingState,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now: Time,
    pub(crate) phase: Phase,
    pub(crate) outbox: VecDeque<Transmit<M>>,
    /// Messages dropped because the outbox was full.
    pub(crate) dropped: u64,
    /// Peers whose round-trip time we ask the driver for ([`Proximity::Driver`]).
    pub(crate) measure: VecDeque<Id>,
    /// Peers the driver could not measure: their next probe answer measures them (at most
    /// [`MAX_PROBE_MEASURED`], oldest forgotten first).
    pub(crate) probe_measured: VecDeque<Id>,
    pub(crate) events: VecDeque<Event>,
    /// Application messages the application routed during an upcall (key, message,
    /// attempt), handled after it.
    pub(crate) routes: VecDeque<(Id, M, u8)>,
    pub(crate) pending: Vec<Pending>,
    pub(crate) repairs: Vec<SlotRepair>,
    /// Answers to entry requests waiting for our own repairs.
    pub(crate) deferred: Vec<DeferredReply>,
    /// Nodes found failed, when, and when last probed again because gossip named one for
    /// our leaf set ([`Overlay::recheck_failed`]; the failure time until then).
    pub(crate) failed: VecDeque<(Id, Time, Time)>,
    /// Peers no connection could be used to lately, and when ([`crate::detour`]).
    pub(crate) unreachable: VecDeque<(Id, Time)>,
    pub(crate) next_keepalive: Option<Time>,
    pub(crate) next_table_probe: Option<Time>,
    pub(crate) leaf_set_changed: bool,
    /// Row exchanges in progress (second phase of the join, periodic maintenance).
    pub(crate) exchanges: Vec<RowExchange>,
    pub(crate) next_row_exchange: Option<Time>,
    /// Slots whose last repair ended without finding a node, and when.
    pub(crate) vain: Vec<((u8, u8), Time)>,
}

/// Where a routed message stands on its way: hops taken, attempt number, and the nodes
/// found failed on the way (see [`Routed::failed`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Trail {
    pub(crate) hops: u8,
    pub(crate) attempt: u8,
    pub(crate) failed: ThinVec<Id>,
}

impl Trail {
    /// A message about to take its first hop on attempt `attempt`.
    pub(crate) fn start(attempt: u8) -> Self {
        Trail { hops: 0, attempt, failed: ThinVec::new() }
    }

    /// The trail of a message for `key` as received, keeping at most [`MAX_ROUTE_FAILED`]
    /// failed nodes, and never the node whose id is the key: a message for a node itself (a
    /// signal, a join) must still reach it through others when one node could not.
    pub(crate) fn received(key: Id, hops: u8, attempt: u8, mut failed: ThinVec<Id>) -> Self {
        failed.retain(|id| *id != key);
        failed.truncate(MAX_ROUTE_FAILED);
        Trail { hops, attempt, failed }
    }

    /// Notes that sending the message to `peer` failed (the newest kept).
    pub(crate) fn failed_at(&mut self, peer: Id) {
        if !self.failed.contains(&peer) {
            if self.failed.len() >= MAX_ROUTE_FAILED {
                self.failed.remove(0);
            }
            self.failed.push(peer);
        }
    }
}

impl<M> Overlay<M> {
    pub(crate) fn new(own: Id, config: Config) -> Self {
        let state = RoutingState::new(own, config.base, config.leaf_set_size, config.neighborhood_size);
        let rng = ChaCha8Rng::seed_from_u64(config.rng_seed ^ (own.as_u128() as u64));
        Overlay {
            config,
            state,
            rng,
            now: Time::ZERO,
            phase: Phase::Idle,
            outbox: VecDeque::new(),
            dropped: 0,
            measure: VecDeque::new(),
            probe_measured: VecDeque::new(),
            events: VecDeque::new(),
            routes: VecDeque::new(),
            pending: Vec::new(),
            repairs: Vec::new(),
            deferred: Vec::new(),
            failed: VecDeque::new(),
            unreachable: VecDeque::new(),
            next_keepalive: None,
            next_table_probe: None,
            leaf_set_changed: false,
            exchanges: Vec::new(),
            next_row_exchange: None,
            vain: Vec::new(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> Id {
        self.state.own()
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The leaf set, routing table and neighborhood set.
    pub fn state(&self) -> &RoutingState {
        &self.state
    }

    /// Where the node is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The time of the input being handled.
    pub fn now(&self) -> Time {
        self.now
    }

    /// A random number from the node's seeded generator.
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Routes an application message towards the node numerically closest to `key`. If that
    /// is this node, the message is delivered here once the current upcall returns.
    pub fn route(&mut self, key: Id, message: M) {
        self.route_attempt(key, message, 0);
    }

    /// Routes an application message again: `attempt` 1 and up makes every node on the way
    /// choose at random among the next hops that make progress (see
    /// [`Config::retry_best_hop_chance`]), so the retry likely avoids a node that dropped an
    /// earlier attempt.
    pub fn route_attempt(&mut self, key: Id, message: M, attempt: u8) {
        self.routes.push_back((key, message, attempt));
    }

    /// Sends an application message straight to `to`.
    pub fn send(&mut self, to: Id, message: M) {
        self.transmit(to, Message::Direct(message));
    }

    /// Where a message for `key` would go from here.
    pub fn next_hop(&self, key: Id) -> Hop {
        self.state.next_hop(key, &[])
    }

    pub(crate) fn transmit(&mut self, to: Id, message: Message<M>) {
        if self.outbox.len() >= MAX_OUTBOX {
            match self.outbox.iter().position(|t| matches!(t.message, Message::Probe(_))) {
                Some(oldest_probe) => {
                    self.outbox.remove(oldest_probe);
                }
                None => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        self.outbox.push_back(Transmit { to, message });
    }

    pub(crate) fn forward(&mut self, to: Id, key: Id, trail: Trail, body: RoutedBody<M>) {
        let Trail { hops, attempt, failed } = trail;
        let hops = hops.saturating_add(1);
        self.transmit(to, Message::Route(Routed { key, hops, attempt, failed, body }));
    }

    /// The next hop for `key` (none of `avoid`): the best one for a first attempt, a random
    /// one that makes progress for a retry. Returns the empty routing table slot the best
    /// hop needed, if any.
    pub(crate) fn hop(&mut self, key: Id, avoid: &[Id], attempt: u8) -> (Hop, Option<(usize, usize)>) {
        if attempt == 0 {
            return self.state.step(key, avoid);
        }
        let rng = &mut self.rng;
        self.state.random_step(key, avoid, self.config.retry_best_hop_chance, || rng.next_u64())
    }

    pub(crate) fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Whether `id` failed within the last `failed_memory` (and gossip about it should be
    /// ignored). Entries are purged only when another node fails, so the time is checked
    /// here: otherwise two nodes that once failed each other would ignore each other for
    /// good in a network where nothing else fails.
    #[inline]
    pub(crate) fn recently_failed(&self, id: Id) -> bool {
        !self.failed.is_empty()
            && self.failed.iter().any(|&(f, at, _)| f == id && at + self.config.failed_memory > self.now)
    }

    /// Whether we hold a round-trip measurement of `id`, or it is a leaf, whose proximity
    /// does not matter: probing it again would teach us nothing.
    pub(crate) fn has_measured(&self, id: Id) -> bool {
        match self.state.table.rtt_of(id) {
            Some(rtt) => rtt.is_known(),
            None => self.state.leaf_set.contains(id) || self.state.neighborhood.contains(id),
        }
    }

    /// Our measured round-trip time to `id`, [`Rtt::UNKNOWN`] when we hold none.
    pub(crate) fn known_rtt(&self, id: Id) -> Rtt {
        self.state
            .table
            .rtt_of(id)
            .filter(|rtt| rtt.is_known())
            .or_else(|| self.state.neighborhood.entries().iter().find(|e| e.id == id).map(|e| e.rtt))
            .unwrap_or(Rtt::UNKNOWN)
    }

    /// Takes in a node this one has heard of: into the leaf set if it belongs there, into
    /// its routing table slot if that is empty.
    pub(crate) fn learn(&mut self, id: Id) -> Learned {
        self.learn_from(id, false)
    }

    /// [`Overlay::learn`], for an id from the leaf set of one of our leaves, which may extend
    /// a short half of our leaf set ([`LeafSet::insert_contiguous`](crate::LeafSet::insert_contiguous)).
    pub(crate) fn learn_from(&mut self, id: Id, contiguous: bool) -> Learned {
        if id == self.id() || self.recently_failed(id) {
            return Learned::default();
        }
        let leaf = if contiguous { self.state.leaf_set.insert_contiguous(id) } else { self.state.leaf_set.insert(id) };
        if leaf {
            self.leaf_set_changed = true;
        }
        let slot = self.state.table.consider(id, Rtt::UNKNOWN) == crate::routing_table::Considered::Inserted;
        if slot && let Some((row, _)) = self.state.table.slot_of(id) {
            self.filled_slot_in(row);
        }
        Learned { leaf, slot }
    }

    /// Takes in a node from gossip, and probes it when it is new to us: the probe checks it
    /// is alive, measures it and tells it about us.
    pub(crate) fn learn_and_probe(&mut self, id: Id, contiguous: bool) -> Learned {
        if self.recently_failed(id) {
            self.recheck_failed(id);
            return Learned::default();
        }
        let learned = self.learn_from(id, contiguous);
        if learned.leaf || learned.slot {
            self.introduce(id);
        }
        learned
    }

    /// Gossip names `id`, which we found failed, for a place in our leaf set. It may only
    /// have been slow: two nodes whose probes of each other timed out at once (a loaded
    /// machine) each drop the other and ignore gossip about it for `failed_memory`, with
    /// nothing left to bring them together. So while gossip names it, it is probed again
    /// at most once per keep-alive period and probe timeout (time for a broken connection
    /// to be replaced; the peer manager's backoff bounds the connections this tries); an
    /// answer ([`Overlay::heard_from`]) ends the failure.
    pub(crate) fn recheck_failed(&mut self, id: Id) {
        let now = self.now;
        let wait = self.config.probe_timeout + self.config.keepalive_interval.unwrap_or_default();
        let Some(at) = self.failed.iter().position(|&(f, _, last)| f == id && last + wait <= now) else {
            return;
        };
        if self.state.leaf_set.clone().insert(id) {
            self.failed[at].2 = now;
            self.probe(id);
        }
    }

    /// Takes in a node that contacted us directly: it is alive. A node new to our leaf set
    /// gets our leaf set back, so that nodes joining at the same time learn of each other;
    /// a node that fills an empty routing table slot is passed along the ring
    /// ([`Message::NewNode`]), since our neighbors likely lack it too.
    pub(crate) fn heard_from(&mut self, id: Id) -> bool {
        if !self.failed.is_empty() {
            self.failed.retain(|&(f, _, _)| f != id);
        }
        let learned = self.learn(id);
        if learned.leaf {
            self.send_leaf_set(id, false);
        }
        if learned.slot
            && let Some((row, _)) = self.state.table.slot_of(id)
        {
            self.pass_along(id, row as u8, None);
            if self.config.proximity == Proximity::Driver {
                self.measure.push_back(id);
            }
        }
        learned.leaf || learned.slot
    }

    /// A routed message came from `from`: it is alive and part of the overlay. Only the leaf
    /// set takes it in here (a node missing from it would be a gap that the sender just
    /// revealed); the routing table is kept complete by joins and repairs, and looking up
    /// the sender's slot on every hop would cost a cache miss per message.
    pub(crate) fn passed_by(&mut self, from: Id) {
        if from != self.id() && !self.recently_failed(from) && self.state.leaf_set.insert(from) {
            self.leaf_set_changed = true;
            self.send_leaf_set(from, false);
            self.introduce(from);
        }
    }

    /// Tells the nearest leaf on each side (or only on the side away from `came_from`) of a
    /// node that filled an empty slot of ours in row `row`.
    pub(crate) fn pass_along(&mut self, id: Id, row: u8, came_from: Option<Id>) {
        let from_side = came_from.and_then(|f| self.state.leaf_set.side_of(f));
        for side in [Side::Clockwise, Side::CounterClockwise] {
            if from_side == Some(side) {
                continue;
            }
            if let Some(&next) = self.state.leaf_set.side(side).first()
                && next != id
                && Some(next) != came_from
            {
                self.transmit(next, Message::NewNode { id, row });
            }
        }
    }

    /// A round-trip time to `peer` was measured.
    pub(crate) fn measured(&mut self, peer: Id, rtt: Rtt) {
        self.heard_from(peer);
        self.state.table.consider(peer, rtt);
        self.state.neighborhood.consider(peer, rtt);
        self.refine_with(peer);
    }

    /// Tells `peer` about us and gets it measured: with [`Proximity::Probes`] a probe, whose
    /// answer measures the round trip; with [`Proximity::Driver`] an announcement (a probe
    /// that asks nothing) and a measurement request to the driver.
    pub(crate) fn introduce(&mut self, peer: Id) {
        match self.config.proximity {
            Proximity::Probes => self.probe(peer),
            Proximity::Driver => {
                self.transmit(peer, Message::Probe(Probe { ask: None, answer: None }));
                self.measure.push_back(peer);
            }
        }
    }

    /// The driver has no round-trip time for `peer`: a probe measures it.
    pub(crate) fn measure_by_probe(&mut self, peer: Id) {
        if !self.probe_measured.contains(&peer) {
            if self.probe_measured.len() >= MAX_PROBE_MEASURED {
                self.probe_measured.pop_front();
            }
            self.probe_measured.push_back(peer);
        }
        self.probe(peer);
    }

    /// Whether a probe answer from `peer` is to measure it (and forgets that it was).
    pub(crate) fn take_probe_measured(&mut self, peer: Id) -> bool {
        let Some(at) = self.probe_measured.iter().position(|&p| p == peer) else { return false };
        self.probe_measured.remove(at);
        true
    }

    /// Sends a probe asking for an answer, unless one to `peer` is already pending.
    pub(crate) fn probe(&mut self, peer: Id) {
        if self.is_waiting(peer, |w| matches!(w, Waiting::Probe(_))) {
            return;
        }
        let nonce = self.rng.next_u64();
        self.wait_for(peer, Waiting::Probe(nonce));
        self.transmit(peer, Message::Probe(Probe { ask: Some(nonce), answer: None }));
    }

    /// Sends our leaf set to `to`: pushed (`answer` false) or answering (true).
    pub(crate) fn send_leaf_set(&mut self, to: Id, answer: bool) {
        let mut ids: Vec<Id> = Vec::with_capacity(2 * self.state.leaf_set.half() + 1);
        ids.extend(self.state.leaf_set.ids());
        ids.push(self.id());
        self.transmit(to, Message::LeafSet { leaves: ids, answer });
    }

    pub(crate) fn wait_for(&mut self, peer: Id, waiting: Waiting) {
        self.pending.push(Pending { peer, waiting, sent: self.now });
    }

    pub(crate) fn is_waiting(&self, peer: Id, what: impl Fn(Waiting) -> bool) -> bool {
        self.pending.iter().any(|p| p.peer == peer && what(p.waiting))
    }

    /// Removes the pending request matching `what` from `peer`; returns when it was sent.
    pub(crate) fn answered(&mut self, peer: Id, what: impl Fn(Waiting) -> bool) -> Option<Time> {
        let index = self.pending.iter().position(|p| p.peer == peer && what(p.waiting))?;
        let sent = self.pending.swap_remove(index).sent;
        // Most nodes wait for nothing: a fresh buffer for the next request is in the cache
        // where a kept one is not.
        if self.pending.is_empty() && self.pending.capacity() > 0 {
            self.pending = Vec::new();
        }
        Some(sent)
    }

    /// The earliest time a pending request expires, or a deferred answer is due.
    pub(crate) fn next_expiry(&self) -> Option<Time> {
        // The earliest sent expires first: one addition, not one per request.
        let expiry = self.pending.iter().map(|p| p.sent).min().map(|sent| sent + self.config.probe_timeout);
        expiry.into_iter().chain(self.next_deferred_reply()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_outbox_drops_the_oldest_probe_then_new_messages() {
        let mut overlay: Overlay<u8> = Overlay::new(Id::from_u128(1), Config::with_seed(1));
        let to = Id::from_u128(2);
        overlay.transmit(to, Message::Probe(Probe { ask: Some(7), answer: None }));
        for _ in 1..MAX_OUTBOX {
            overlay.transmit(to, Message::Direct(1));
        }
        assert_eq!(overlay.outbox.len(), MAX_OUTBOX);
        overlay.transmit(to, Message::Direct(2));
        assert_eq!(overlay.outbox.len(), MAX_OUTBOX);
        assert!(!overlay.outbox.iter().any(|t| matches!(t.message, Message::Probe(_))), "the probe made room");
        assert_eq!(overlay.outbox.back().map(|t| &t.message), Some(&Message::Direct(2)));
        assert_eq!(overlay.dropped, 0);
        overlay.transmit(to, Message::Direct(3));
        assert_eq!(overlay.outbox.len(), MAX_OUTBOX);
        assert_eq!(overlay.dropped, 1, "no probe left: the new message is dropped and counted");
    }

    #[test]
    fn a_trail_names_each_failed_node_once_and_keeps_the_newest() {
        let ids: Vec<Id> = (1..=6).map(Id::from_u128).collect();
        let mut trail = Trail::received(Id::MAX, 2, 0, ids.iter().copied().collect());
        assert_eq!(trail.failed, ids[..MAX_ROUTE_FAILED], "a received trail keeps at most the limit");
        trail.failed_at(ids[1]);
        assert_eq!(trail.failed, ids[..MAX_ROUTE_FAILED], "a node named already is not named twice");
        trail.failed_at(ids[5]);
        assert_eq!(trail.failed, [ids[1], ids[2], ids[3], ids[5]], "the oldest makes room for the newest");
        let for_a_node = Trail::received(ids[0], 2, 0, ids.iter().copied().collect());
        assert_eq!(for_a_node.failed, ids[1..=MAX_ROUTE_FAILED], "the node a message is for is never avoided");
    }
}
