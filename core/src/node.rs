//! The node: the overlay plus the application above it, and the call contract drivers use.

use core::fmt::Debug;
use core::time::Duration;
use std::collections::VecDeque;

use crate::config::Config;
use crate::detour::MAX_DETOUR_HOPS;
use crate::id::Id;
use crate::net::Net;
use crate::overlay::{Event, Overlay, Phase, Trail, Transmit};
use crate::route::{Hop, RoutingState};
use crate::time::{Rtt, Time};
use crate::wire::{Message, Routed, RoutedBody};

/// What the application decides when a message passes through on its way to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Send it on to the next hop.
    Continue,
    /// Stop it here (the application answered it or dropped it).
    Stop,
}

/// Why the transport could not deliver a message ([`Node::handle_send_failed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// The peer itself failed: it stopped answering, or left, while a connection to it was
    /// open (or, in the simulator, it is dead). A routed message names it from then on, so
    /// that the nodes further on its route do not send it there too.
    PeerFailed,
    /// No connection to the peer could be used (refused, not set up, its queue full): the
    /// peer may well be reachable from other nodes, so it is only avoided here.
    Unreachable,
}

/// The layer above Pastry (PAST, or a test application), called back by the node.
///
/// These are the upcalls of the Pastry paper (section 2.1): `deliver` at the destination,
/// `forward` at every node a message passes through (the application may change or stop
/// it), and `leaf_set_changed` (the paper's `newLeafs`). During an upcall the application
/// routes and sends through the [`Overlay`] it is given.
pub trait Application {
    /// The application's messages.
    type Message: Clone + Debug;

    /// `message`, routed to `key`, arrived at the node numerically closest to `key`.
    fn deliver(&mut self, net: &mut dyn Net<Self::Message>, key: Id, message: Self::Message, hops: u8);

    /// `message` for `key` is about to be forwarded to `next`.
    fn forward(&mut self, net: &mut dyn Net<Self::Message>, key: Id, message: &mut Self::Message, next: Id) -> Forward {
        let _ = (net, key, message, next);
        Forward::Continue
    }

    /// A message sent straight to this node by `from`.
    fn receive(&mut self, net: &mut dyn Net<Self::Message>, from: Id, message: Self::Message) {
        let _ = (net, from, message);
    }

    /// A message this node sent straight to `to` could not be delivered.
    fn send_failed(&mut self, net: &mut dyn Net<Self::Message>, to: Id, message: Self::Message) {
        let _ = (net, to, message);
    }

    /// The leaf set changed.
    fn leaf_set_changed(&mut self, net: &mut dyn Net<Self::Message>) {
        let _ = net;
    }

    /// The earliest time the application wants [`Application::timeout`] called.
    fn poll_timeout(&self) -> Option<Time> {
        None
    }

    /// Time has reached the application's timeout.
    fn timeout(&mut self, net: &mut dyn Net<Self::Message>) {
        let _ = net;
    }
}

/// A Pastry node with its application: a deterministic state machine with no I/O.
///
/// The call contract (as in quinn-proto's `Connection`):
/// - getters take `&self`;
/// - `handle_*` take input from the network or a timer, each with the current time;
/// - commands ([`Node::join`], [`Node::route`], [`Node::send`], [`Node::leave`]) come
///   from the user;
/// - after any input or command, drain [`Node::poll_transmit`] (or [`Node::take_transmits`])
///   and [`Node::poll_event`]
///   (and [`Node::poll_measure`] when the driver measures proximity, answering with
///   [`Node::handle_rtt`]), then ask [`Node::poll_timeout`] when to call
///   [`Node::handle_timeout`] next.
///
/// The driver authenticates peers: the `from` it passes is the proven id of the sender.
pub struct Node<A: Application> {
    overlay: Overlay<A::Message>,
    app: A,
}

impl<A: Application> Node<A> {
    /// A node with id `own` (derived by the driver from the node's public key).
    pub fn new(own: Id, config: Config, app: A) -> Self {
        Node { overlay: Overlay::new(own, config), app }
    }

    /// The node's id.
    pub fn id(&self) -> Id {
        self.overlay.id()
    }

    /// The leaf set, routing table and neighborhood set.
    pub fn state(&self) -> &RoutingState {
        self.overlay.state()
    }

    /// Where the node is in its life.
    pub fn phase(&self) -> Phase {
        self.overlay.phase()
    }

    /// Whether the node takes part in routing.
    pub fn is_joined(&self) -> bool {
        self.overlay.phase() == Phase::Joined
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.overlay.config()
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application, mutably (to poll its events).
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The overlay and the application together, for application commands that route.
    /// Call [`Node::dispatch`] after using them.
    pub fn parts_mut(&mut self) -> (&mut Overlay<A::Message>, &mut A) {
        (&mut self.overlay, &mut self.app)
    }

    /// Changes how the node maintains its state from now on: keep-alive and routing table
    /// probe intervals (`None` turns them off) and whether failed table entries are repaired.
    pub fn set_maintenance(
        &mut self,
        keepalive: Option<Duration>,
        table_probe: Option<Duration>,
        table_repair: bool,
        now: Time,
    ) {
        self.overlay.now = now;
        let config = &mut self.overlay.config;
        config.keepalive_interval = keepalive;
        config.table_probe_interval = table_probe;
        config.table_repair = table_repair;
        if self.overlay.phase == Phase::Joined {
            self.overlay.schedule_maintenance();
        }
    }

    /// Changes how often the node exchanges routing table rows from now on (`None` turns
    /// it off; see [`Config::row_exchange_interval`]).
    pub fn set_row_exchange(&mut self, interval: Option<Duration>, now: Time) {
        self.overlay.now = now;
        self.overlay.config.row_exchange_interval = interval;
        if self.overlay.phase == Phase::Joined {
            self.overlay.next_row_exchange = interval.map(|i| now + i);
        }
    }

    /// Joins the overlay through `bootstrap` (a node the driver can reach), or founds a new
    /// overlay with `None`.
    pub fn join(&mut self, bootstrap: Option<Id>, now: Time) {
        self.overlay.now = now;
        self.overlay.start_join(bootstrap);
        self.dispatch();
    }

    /// A node named from outside the overlay once we joined (a second signaling server's
    /// welcome): it may belong to a ring bootstrapped apart from ours. It is taken into our
    /// tables where it belongs, probed, and sent our leaf set, which it answers with its own
    /// when ours misses nodes it knows; the leaf set pushes that follow, one keep-alive
    /// round after another, merge the two rings.
    pub fn introduce(&mut self, id: Id, now: Time) {
        self.overlay.now = now;
        if self.overlay.phase == Phase::Joined && id != self.id() {
            self.overlay.learn_and_probe(id, false);
            self.overlay.send_leaf_set(id, false);
            self.dispatch();
        }
    }

    /// Leaves the overlay for good, telling every node in our state.
    pub fn leave(&mut self, now: Time) {
        self.overlay.now = now;
        self.overlay.leave();
    }

    /// Routes an application message to the node numerically closest to `key`.
    pub fn route(&mut self, key: Id, message: A::Message, now: Time) {
        self.overlay.now = now;
        self.overlay.route(key, message);
        self.dispatch();
    }

    /// Sends an application message straight to `to`.
    pub fn send(&mut self, to: Id, message: A::Message, now: Time) {
        self.overlay.now = now;
        self.overlay.send(to, message);
    }

    /// A message arrived from the authenticated peer `from`.
    pub fn handle_message(&mut self, from: Id, message: Message<A::Message>, now: Time) {
        self.overlay.now = now;
        if self.overlay.phase == Phase::Left || from == self.id() {
            return;
        }
        self.overlay.reached(from);
        match message {
            Message::Route(routed) => self.on_routed(from, routed),
            Message::Direct(message) => {
                self.overlay.heard_from(from);
                self.app.receive(&mut self.overlay, from, message);
            }
            Message::JoinReply(reply) => self.overlay.on_join_reply(from, reply),
            Message::Probe(probe) => self.overlay.on_probe(from, probe),
            Message::LeafSet { leaves, answer } => self.overlay.on_leaf_set(from, leaves, answer),
            Message::LeafSetRequest => self.overlay.on_leaf_set_request(from),
            Message::NewNode { id, row } => self.overlay.on_new_node(from, id, row),
            Message::RowRequest { row } => self.overlay.on_row_request(from, row),
            Message::RowReply { row, entries } => self.overlay.on_row_reply(from, row, entries),
            Message::EntryRequest { slots } => self.overlay.on_entry_request(from, slots),
            Message::EntryReply { entries } => self.overlay.on_entry_reply(from, entries),
            Message::Leave => self.overlay.on_leave(from),
        }
        self.dispatch();
    }

    /// The transport could not deliver `message` to `to`, for the reason `failure`. The
    /// peer is marked failed and a routed message is routed again around it; if the peer
    /// itself failed, the message names it so that the rest of its route avoids it too. The
    /// failed forward stays counted as a hop of the route: it cost a send and the time to
    /// learn that it failed.
    pub fn handle_send_failed(&mut self, to: Id, message: Message<A::Message>, failure: SendFailure, now: Time) {
        self.overlay.now = now;
        if self.overlay.phase == Phase::Left {
            return;
        }
        if failure == SendFailure::Unreachable {
            self.overlay.note_unreachable(to);
        }
        self.overlay.node_failed(to, None);
        match message {
            Message::Route(Routed { key, hops, attempt, failed, body }) => {
                let mut trail = Trail::received(key, hops, attempt, failed);
                if failure == SendFailure::PeerFailed && to != key {
                    trail.failed_at(to);
                }
                match body {
                    RoutedBody::App(message) => self.route_app(key, message, trail),
                    body => self.overlay.reroute(key, trail, body),
                }
            }
            Message::Direct(message) => self.app.send_failed(&mut self.overlay, to, message),
            _ => {}
        }
        self.dispatch();
    }

    /// The driver measured the round-trip time to `peer` itself (for instance from the
    /// transport's statistics).
    pub fn handle_rtt(&mut self, peer: Id, rtt: Rtt, now: Time) {
        self.overlay.now = now;
        if self.overlay.phase == Phase::Joined && peer != self.id() {
            self.overlay.measured(peer, rtt);
            self.dispatch();
        }
    }

    /// The driver was asked for the round-trip time to `peer` ([`Node::poll_measure`]) but
    /// has none (its transport gives no statistics): the node measures with a probe.
    pub fn handle_no_rtt(&mut self, peer: Id, now: Time) {
        self.overlay.now = now;
        if self.overlay.phase == Phase::Joined && peer != self.id() {
            self.overlay.measure_by_probe(peer);
            self.dispatch();
        }
    }

    /// Time has reached [`Node::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Time) {
        self.overlay.now = now;
        self.overlay.join_timeout();
        self.overlay.maintenance_timeout();
        if self.app.poll_timeout().is_some_and(|t| t <= now) {
            self.app.timeout(&mut self.overlay);
        }
        self.dispatch();
    }

    /// Messages dropped because the outbox was full (see [`crate::MAX_OUTBOX`]).
    pub fn dropped_transmits(&self) -> u64 {
        self.overlay.dropped
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<A::Message>> {
        let transmit = self.overlay.outbox.pop_front();
        if transmit.is_none() && self.overlay.outbox.capacity() > 0 {
            // Drained: give the memory back. Most nodes are idle between inputs, and a buffer
            // freshly allocated for the next message is in the cache where a kept one is not.
            self.overlay.outbox = Default::default();
        }
        transmit
    }

    /// Starts fetching into the CPU cache the parts of the node that handling any input
    /// reads first (the node's first bytes, its outbox, leaf set and routing table
    /// headers). It changes nothing: a driver of many nodes, whose states do not fit the
    /// cache, calls it for the node of its next input while it handles the current one, so
    /// that the two nodes' cache misses overlap instead of following each other.
    pub fn prefetch(&self) {
        let overlay = &self.overlay;
        fetch(self);
        fetch(&overlay.outbox);
        fetch(&overlay.state.leaf_set);
        fetch(&overlay.state.table);
    }

    /// Swaps in the empty `buffer` for the node to collect the messages of its next input in,
    /// so that it allocates none: a driver of many nodes lends each, before its input, the
    /// one buffer it takes back with [`Node::take_transmits`]. Nothing is swapped while
    /// messages wait or when `buffer` is not empty.
    pub fn lend_outbox(&mut self, buffer: &mut VecDeque<Transmit<A::Message>>) {
        if self.overlay.outbox.is_empty() && buffer.is_empty() {
            std::mem::swap(&mut self.overlay.outbox, buffer);
        }
    }

    /// Every message to send, in order, at once (instead of [`Node::poll_transmit`]); the
    /// node keeps no buffer.
    pub fn take_transmits(&mut self) -> VecDeque<Transmit<A::Message>> {
        std::mem::take(&mut self.overlay.outbox)
    }

    /// The next peer whose round-trip time the node wants from the driver (with
    /// [`Proximity::Driver`](crate::Proximity::Driver)); answer with [`Node::handle_rtt`].
    pub fn poll_measure(&mut self) -> Option<Id> {
        self.overlay.measure.pop_front()
    }

    /// The next overlay event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.overlay.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        let overlay = &self.overlay;
        let join = match overlay.phase {
            Phase::Joining { retry_at, .. } => Some(retry_at),
            _ => None,
        };
        [
            join,
            overlay.next_keepalive,
            overlay.next_table_probe,
            overlay.next_row_exchange,
            overlay.next_expiry(),
            self.app.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the work queued during upcalls and the input: messages the application routed,
    /// the leaf set upcall, and the requests of routing table repairs (sent together, one
    /// per peer). Commands on [`Node::parts_mut`] call this when done.
    pub fn dispatch(&mut self) {
        loop {
            if let Some((key, message, attempt)) = self.overlay.routes.pop_front() {
                self.route_app(key, message, Trail::start(attempt));
            } else if self.overlay.leaf_set_changed {
                self.overlay.leaf_set_changed = false;
                self.overlay.emit(Event::LeafSetChanged);
                self.app.leaf_set_changed(&mut self.overlay);
            } else {
                break;
            }
        }
        self.overlay.send_slot_requests();
    }

    fn on_routed(&mut self, from: Id, routed: Routed<A::Message>) {
        let Routed { key, hops, attempt, failed, body } = routed;
        if hops > self.overlay.config.max_hops {
            self.overlay.emit(Event::RouteDropped { key, hops });
            return;
        }
        if self.overlay.phase != Phase::Joined {
            return;
        }
        let trail = Trail::received(key, hops, attempt, failed);
        self.overlay.check_named_failed(&trail.failed);
        match body {
            RoutedBody::Join(request) => self.overlay.on_join_request(from, key, trail, request),
            body => {
                self.overlay.passed_by(from);
                match body {
                    RoutedBody::App(message) => self.route_app(key, message, trail),
                    body => self.overlay.reroute(key, trail, body),
                }
            }
        }
    }

    /// One routing step for an application message at this node, on its `trail` so far.
    fn route_app(&mut self, key: Id, mut message: A::Message, trail: Trail) {
        let (hop, missing) = self.overlay.hop(key, &trail.failed, trail.attempt);
        if let Some((row, column)) = missing {
            self.overlay.repair_missing(row, column);
        }
        let hop = match hop {
            Hop::Local if trail.hops < MAX_DETOUR_HOPS => {
                self.overlay.detour(key, &trail.failed).map_or(Hop::Local, Hop::Forward)
            }
            hop => hop,
        };
        match hop {
            Hop::Local => self.app.deliver(&mut self.overlay, key, message, trail.hops),
            Hop::Forward(next) => {
                if self.app.forward(&mut self.overlay, key, &mut message, next) == Forward::Continue {
                    self.overlay.forward(next, key, trail, RoutedBody::App(message));
                }
            }
        }
    }
}

impl<M> Overlay<M> {
    /// One routing step for an overlay message (join, slot search) at this node.
    pub(crate) fn reroute(&mut self, key: Id, trail: Trail, body: RoutedBody<M>) {
        match body {
            RoutedBody::Join(request) => self.route_join(key, trail, request),
            RoutedBody::FindSlot { origin, row, column } => {
                let mut avoid = trail.failed.clone();
                avoid.push(origin);
                match self.hop(key, &avoid, trail.attempt).0 {
                    Hop::Local => self.on_find_slot(origin, row, column),
                    Hop::Forward(next) => self.forward(next, key, trail, RoutedBody::FindSlot { origin, row, column }),
                }
            }
            RoutedBody::App(_) => {}
        }
    }
}

/// Prefetches the cache line holding the start of `value`.
fn fetch<T>(value: &T) {
    prefetch_index::prefetch_index(std::slice::from_ref(value), 0);
}
