//! The Pastry core and the peer manager wired together, once for both drivers.
//!
//! [`Stack`] owns a `past_core::Node` running [`LinkApp`] and a [`PeerManager`], and moves
//! everything between them: what the core transmits goes to the manager; what authenticated
//! peers send goes to the core, with the peer that handed it over; messages that could not
//! be sent go back to the core; nodes the core gives up on lose their connection; overlay
//! signals delivered to this node go to the manager. It also runs the bootstrap: the
//! contacts the signaling server named are connected to, and the node joins through one of
//! them (preferably one that says it is joined), trying them again when all fail.
//! The PAST storage layer runs inside the node; its commands, its storage and signing
//! requests and their answers are in [`files`].
//!
//! A driver feeds the stack's `handle_*` methods (which mirror the manager's), carries out
//! [`Stack::poll_command`], reports [`Stack::poll_event`] to its user, and calls
//! [`Stack::handle_timeout`] at [`Stack::poll_timeout`]. It holds no protocol state.

use std::collections::VecDeque;
use std::time::Duration;

pub mod files;

use past_core::past::{Past, PastConfig, PastEvent};
use past_core::{Config, Event, Id, Node, Phase, Rtt, SendFailure, Time};
use past_signaling_proto::SignalPayload;

use crate::app::{AppMessage, OverlaySignal, Payload};
use crate::frame::Data;
use crate::host::LinkApp;
use crate::manager::{Command, ConnId, ManagerConfig, PeerEvent, PeerManager, Source};

/// How long a joining node waits for a joined contact before joining through any.
const CONTACT_GRACE: Duration = Duration::from_millis(1500);

/// How long a joining node waits before trying its contacts again when all failed.
const CONTACT_RETRY: Duration = Duration::from_secs(5);

/// Something routed to this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The key it was routed to.
    pub key: Id,
    /// Hops it took.
    pub hops: u8,
    /// What it carries. `payload.origin` is a claim of the sender.
    pub payload: Payload,
    /// The authenticated peer that handed it to us (`None`: this node routed it).
    pub last_hop: Option<Id>,
}

impl Delivery {
    /// Whether `payload.origin` is proven: the origin handed it to us itself, in its first
    /// hop, over a connection on which it proved its id (or it is our own).
    pub fn origin_verified(&self, own: Id) -> bool {
        match self.last_hop {
            Some(peer) => self.hops <= 1 && peer == self.payload.origin,
            None => self.payload.origin == own,
        }
    }
}

/// What the stack reports to the driver's user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackEvent {
    /// The node joined the overlay.
    Joined,
    /// A payload was routed to this node.
    Delivered(Delivery),
    /// A connection opened (the peer proved its id).
    Opened(Id),
    /// An open connection closed.
    Closed {
        /// The peer.
        peer: Id,
        /// Why.
        reason: String,
    },
    /// A peer broke the protocol and was dropped.
    Refused {
        /// The peer.
        peer: Id,
        /// Why.
        reason: String,
    },
    /// The connection budget is used up.
    BudgetExhausted,
    /// Little of the connection budget is left: the page should reload, keeping its identity
    /// and replicas, to start with a fresh one ([`PeerManager::reload_advised`]).
    ReloadAdvised,
    /// An outcome of the PAST storage layer (an insert, lookup or reclaim, a chunk).
    Past(PastEvent),
}

/// Why [`Stack::route`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The node has not joined the overlay.
    #[error("the node has not joined the overlay yet")]
    NotJoined,
    /// The payload is larger than [`crate::app::MAX_PAYLOAD_BYTES`].
    #[error("the payload is larger than {} bytes", crate::app::MAX_PAYLOAD_BYTES)]
    TooLarge,
}

/// The core, the manager and the bootstrap of one node. See the [module documentation](self).
pub struct Stack {
    node: Node<LinkApp>,
    manager: PeerManager,
    contacts: Vec<Id>,
    /// The contacts of a welcome that came while we were joining through another's (a
    /// second server): introduced to the core once joined.
    later: Vec<Id>,
    /// Until then a joining node waits for a joined contact.
    contact_deadline: Option<Time>,
    /// The grace is over: join through any open contact.
    late: bool,
    contact_retry: Option<Time>,
    events: VecDeque<StackEvent>,
    rtts: RttSources,
}

/// Who measured the round trips the node asked the driver for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttSources {
    /// Measured by the transport (the connection's statistics).
    pub transport: u64,
    /// Left to a probe, because the transport had no figure.
    pub probes: u64,
}

impl Stack {
    /// A node `own` (Ed25519 key `public_key`) storing files as `past` says; `seed` is 32
    /// random bytes from the OS.
    pub fn new(
        own: Id,
        public_key: [u8; 32],
        mut core: Config,
        manager: ManagerConfig,
        past: PastConfig,
        seed: [u8; 32],
        now: Time,
    ) -> Self {
        core.rng_seed = u64::from_le_bytes([seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6], seed[7]]);
        let mut manager_seed = seed;
        manager_seed[0] ^= 0x5a;
        Stack {
            node: Node::new(own, core, LinkApp::new(Past::new(past))),
            manager: PeerManager::new(own, public_key, manager, manager_seed, now),
            contacts: Vec::new(),
            later: Vec::new(),
            contact_deadline: None,
            late: false,
            contact_retry: None,
            events: VecDeque::new(),
            rtts: RttSources::default(),
        }
    }

    /// The Pastry node.
    pub fn node(&self) -> &Node<LinkApp> {
        &self.node
    }

    /// The peer manager.
    pub fn manager(&self) -> &PeerManager {
        &self.manager
    }

    /// This node's id.
    pub fn id(&self) -> Id {
        self.node.id()
    }

    /// Who measured the round trips so far.
    pub fn rtt_sources(&self) -> RttSources {
        self.rtts
    }

    /// The contacts the signaling server named.
    pub fn contacts(&self) -> &[Id] {
        &self.contacts
    }

    /// The next command for the driver.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.manager.poll_command()
    }

    /// The next event for the user.
    pub fn poll_event(&mut self) -> Option<StackEvent> {
        self.events.pop_front()
    }

    /// When [`Stack::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Time> {
        [self.node.poll_timeout(), self.manager.poll_timeout(), self.contact_deadline, self.contact_retry]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- the user -------------------------------------------------------------------

    /// Routes `payload` to the node closest to `key`.
    pub fn route(&mut self, key: Id, payload: Payload, now: Time) -> Result<(), RouteError> {
        if !self.node.is_joined() {
            return Err(RouteError::NotJoined);
        }
        let message = AppMessage::Payload(payload);
        if !message.within_bounds() {
            return Err(RouteError::TooLarge);
        }
        self.node.route(key, message, now);
        self.pump(now);
        Ok(())
    }

    /// Opens a connection to `peer` (a test and debugging hook).
    pub fn connect(&mut self, peer: Id, now: Time) {
        self.manager.connect(peer, Source::Local, &self.node, now);
        self.pump(now);
    }

    /// Tells the overlay we leave.
    pub fn leave(&mut self, now: Time) {
        if self.node.phase() == Phase::Joined {
            self.node.leave(now);
            self.pump(now);
        }
    }

    /// Closes every connection.
    pub fn close(&mut self, now: Time) {
        self.manager.close_all(now);
    }

    // ---- the signaling server -------------------------------------------------------

    /// Whether we are registered on the signaling server.
    pub fn set_server(&mut self, registered: bool) {
        self.manager.set_server(registered);
    }

    /// The server's welcome named `contacts` (the registered nodes closest to us): connect
    /// to them and join through one; with none, found the overlay. Once joined (a
    /// reconnection, or a second server), the contacts the core does not know are
    /// introduced to it: they may form a ring of their own, which then merges with ours. A
    /// second welcome while joining waits for the join to end.
    pub fn handle_welcome(&mut self, contacts: Vec<Id>, now: Time) {
        self.manager.set_server(true);
        if self.node.is_joined() {
            self.introduce(contacts, now);
            return self.pump(now);
        }
        if self.node.phase() != Phase::Idle || !self.contacts.is_empty() {
            return self.later.extend(contacts); // Joining through an earlier welcome's.
        }
        self.contacts = contacts.into_iter().filter(|&id| id != self.id()).collect();
        self.manager.set_protected(self.contacts.iter().copied());
        if self.contacts.is_empty() {
            tracing::info!("no other node registered: founding the overlay");
            self.node.join(None, now);
        } else {
            self.contact_deadline = Some(now + CONTACT_GRACE);
            self.late = false;
            self.contact_retry = None;
            for contact in self.contacts.clone() {
                self.manager.connect(contact, Source::Server, &self.node, now);
            }
        }
        self.pump(now);
    }

    /// Introduces the nodes of a welcome we do not know to the core; their connections
    /// are signalled through the server, since the overlay may not reach them yet.
    fn introduce(&mut self, contacts: Vec<Id>, now: Time) {
        let own = self.id();
        let unknown: Vec<Id> = contacts.into_iter().filter(|&id| id != own && !self.node.state().knows(id)).collect();
        self.manager.note_outsiders(&unknown, now);
        for id in unknown {
            self.node.introduce(id, now);
        }
    }

    /// A signal from `from` through the signaling server.
    pub fn handle_server_signal(&mut self, from: Id, payload: SignalPayload, now: Time) {
        self.manager.handle_server_signal(from, payload, &self.node, now);
        self.pump(now);
    }

    // ---- the transport --------------------------------------------------------------

    /// See [`PeerManager::handle_described`].
    pub fn handle_described(&mut self, conn: ConnId, result: Result<String, String>, now: Time) {
        self.manager.handle_described(conn, result, now);
        self.pump(now);
    }

    /// See [`PeerManager::handle_channel_open`].
    pub fn handle_channel_open(&mut self, conn: ConnId, local_sdp: &str, remote_sdp: &str, now: Time) {
        self.manager.handle_channel_open(conn, local_sdp, remote_sdp, &self.node, now);
        self.pump(now);
    }

    /// See [`PeerManager::handle_data`].
    pub fn handle_data(&mut self, conn: ConnId, data: &Data, now: Time) {
        self.manager.handle_data(conn, data, now);
        self.pump(now);
    }

    /// See [`PeerManager::handle_signed`].
    pub fn handle_signed(&mut self, conn: ConnId, result: Result<[u8; 64], String>, now: Time) {
        self.manager.handle_signed(conn, result, now);
        self.pump(now);
    }

    /// See [`PeerManager::handle_closed`].
    pub fn handle_closed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.manager.handle_closed(conn, reason, now);
        self.pump(now);
    }

    /// See [`PeerManager::handle_failed`].
    pub fn handle_failed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.manager.handle_failed(conn, reason, now);
        self.pump(now);
    }

    /// The transport's round-trip time of `conn` ([`Command::MeasureRtt`]), or `None` when
    /// it has none: the node then measures the peer with a probe.
    pub fn handle_rtt(&mut self, conn: ConnId, rtt: Option<Duration>, now: Time) {
        let Some(peer) = self.manager.peer_of(conn) else { return };
        match rtt {
            Some(rtt) => {
                self.rtts.transport += 1;
                self.node.handle_rtt(peer, Rtt::from_duration(rtt), now);
            }
            None => {
                self.rtts.probes += 1;
                self.node.handle_no_rtt(peer, now);
            }
        }
        self.pump(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.node.poll_timeout().is_some_and(|at| at <= now) {
            self.node.handle_timeout(now);
        }
        self.manager.handle_timeout(&self.node, now);
        self.retry_contacts(now);
        self.pump(now);
    }

    // ---- between the core and the manager -------------------------------------------

    /// Moves messages between the core and the manager until neither has anything more.
    fn pump(&mut self, now: Time) {
        loop {
            let mut moved = false;
            while let Some(transmit) = self.node.poll_transmit() {
                moved = true;
                self.manager.send(transmit.to, transmit.message, &self.node, now);
            }
            while let Some(event) = self.node.poll_event() {
                moved = true;
                self.on_core_event(event, now);
            }
            while let Some(peer) = self.node.poll_measure() {
                moved = true;
                self.manager.measure(peer);
            }
            moved |= self.take_deliveries(None, now);
            moved |= self.take_past_events();
            while let Some(event) = self.manager.poll_event() {
                moved = true;
                self.on_manager_event(event, now);
            }
            if !moved {
                break;
            }
        }
    }

    /// Hands what the core delivered to the manager (signals) or the user (payloads).
    fn take_deliveries(&mut self, last_hop: Option<Id>, now: Time) -> bool {
        let mut any = false;
        while let Some((key, hops, message)) = self.node.app_mut().delivered.pop_front() {
            any = true;
            match message {
                AppMessage::Signal(signal) => self.on_signal(signal, hops, last_hop, now),
                AppMessage::Payload(payload) => {
                    self.events.push_back(StackEvent::Delivered(Delivery { key, hops, payload, last_hop }));
                }
                AppMessage::Past(_) => {} // PAST takes its own.
            }
        }
        any
    }

    fn on_signal(&mut self, signal: OverlaySignal, hops: u8, last_hop: Option<Id>, now: Time) {
        self.manager.handle_overlay_signal(signal, hops, last_hop, &self.node, now);
    }

    fn on_core_event(&mut self, event: Event, now: Time) {
        match event {
            Event::Joined => {
                self.contact_deadline = None;
                self.events.push_back(StackEvent::Joined);
                let later = std::mem::take(&mut self.later);
                if !later.is_empty() {
                    self.introduce(later, now);
                }
            }
            Event::JoinFailed => {
                self.contacts.rotate_left(1);
                self.late = true;
                self.maybe_join(now);
            }
            Event::NodeLeft(id) => self.manager.handle_node_gone(id, true, now),
            Event::NodeFailed(id) => self.manager.handle_node_gone(id, false, now),
            _ => {}
        }
    }

    fn on_manager_event(&mut self, event: PeerEvent, now: Time) {
        match event {
            PeerEvent::Message { from, message } => {
                self.node.handle_message(from, message, now);
                self.take_deliveries(Some(from), now);
            }
            PeerEvent::SendFailed { to, message, peer_failed } => {
                let failure = if peer_failed { SendFailure::PeerFailed } else { SendFailure::Unreachable };
                self.node.handle_send_failed(to, message, failure, now)
            }
            PeerEvent::Opened { peer, .. } => {
                self.events.push_back(StackEvent::Opened(peer));
                self.maybe_join(now);
            }
            PeerEvent::Closed { peer, reason } => self.events.push_back(StackEvent::Closed { peer, reason }),
            PeerEvent::Refused { peer, reason } => self.events.push_back(StackEvent::Refused { peer, reason }),
            PeerEvent::BudgetExhausted => self.events.push_back(StackEvent::BudgetExhausted),
            PeerEvent::ReloadAdvised => self.events.push_back(StackEvent::ReloadAdvised),
        }
    }

    // ---- joining --------------------------------------------------------------------

    /// Joins through a contact once one is connected (preferably one that is joined).
    fn maybe_join(&mut self, now: Time) {
        if self.node.phase() != Phase::Idle || self.contacts.is_empty() {
            return;
        }
        let open: Vec<Id> = self.contacts.iter().copied().filter(|&c| self.manager.is_open(c)).collect();
        if self.contact_deadline.is_some_and(|t| t <= now) {
            self.contact_deadline = None;
            self.late = true;
        }
        let joined = open.iter().copied().find(|&c| self.manager.is_joined_peer(c));
        if let Some(contact) = joined.or(if self.late { open.first().copied() } else { None }) {
            tracing::info!(%contact, "joining");
            self.contact_deadline = None;
            self.node.join(Some(contact), now);
        }
    }

    /// Not joined yet and every connection to a contact failed: try them again (every
    /// [`CONTACT_RETRY`] at most; the manager's limits apply to each attempt).
    fn retry_contacts(&mut self, now: Time) {
        self.maybe_join(now);
        if self.node.phase() != Phase::Idle
            || self.contacts.is_empty()
            || self.contacts.iter().any(|&c| self.manager.has_connection(c))
        {
            self.contact_retry = None;
            return;
        }
        match self.contact_retry {
            Some(at) if at > now => {}
            Some(_) => {
                tracing::info!("every contact failed; trying them again");
                self.contact_retry = Some(now + CONTACT_RETRY);
                self.contact_deadline = Some(now + CONTACT_GRACE);
                self.late = false;
                for contact in self.contacts.clone() {
                    self.manager.connect(contact, Source::Server, &self.node, now);
                }
            }
            None => self.contact_retry = Some(now + CONTACT_RETRY),
        }
    }
}
