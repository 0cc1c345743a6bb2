//! Signaling: offers and answers through the server or the overlay, glare, and the first
//! hop of the signals we originate or relay.

use std::hash::{Hash as _, Hasher as _};
use std::time::Duration;

use past_core::wire::{Message, Routed, RoutedBody, ThinVec};
use past_core::{Id, Time};
use past_signaling_proto::SignalPayload;
use rand_core::Rng;

use super::limits::Outcome;
use super::{Admission, Attempt, Command, Conn, ConnId, PeerEvent, PeerManager, Role, State, Tables, Via};
use crate::app::{AppMessage, OverlaySignal, SignalKind};

/// Longest reason put in a reject.
const MAX_REASON: usize = 200;

/// Most times an unanswered overlay offer goes again along another first hop.
const MAX_RESENDS: u8 = 2;

impl PeerManager {
    /// The local description (offer or answer, candidates gathered) of `conn` is ready, or
    /// could not be made.
    pub fn handle_described(&mut self, conn: ConnId, result: Result<String, String>, now: Time) {
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        let sdp = match result {
            Ok(sdp) => sdp,
            Err(err) => return self.attempt_failed(peer, &format!("creating the session description: {err}"), now),
        };
        if c.state != State::Signaling {
            return;
        }
        let (role, session, via, transfer) = (c.role, c.session, c.via, c.transfer);
        c.local_sdp = Some(sdp.clone());
        match via {
            Via::Overlay => {
                let kind = match role {
                    Role::Offerer => SignalKind::Offer { sdp, transfer },
                    Role::Answerer => SignalKind::Answer { sdp },
                };
                self.send_signal(OverlaySignal { from: self.own, to: peer, session, kind }, now);
            }
            Via::Server if self.server => {
                let payload = match role {
                    Role::Offerer => SignalPayload::Offer { sdp },
                    Role::Answerer => SignalPayload::Answer { sdp },
                };
                self.commands.push_back(Command::ToServer { to: peer, payload });
            }
            Via::Server => self.attempt_failed(peer, "the signaling server is not connected", now),
        }
    }

    /// A signal from `from` through the signaling server (which checked `from`'s key when it
    /// registered).
    pub fn handle_server_signal(&mut self, from: Id, payload: SignalPayload, tables: &impl Tables, now: Time) {
        match payload {
            SignalPayload::Offer { sdp } => {
                self.peers.entry(from).or_default().known = true;
                let session = self.rng.next_u64();
                self.on_offer(
                    Offer { from, via: Via::Server, session, sdp, last_hop: None, transfer: false },
                    tables,
                    now,
                );
            }
            SignalPayload::Answer { sdp } => self.on_answer(from, None, sdp),
            candidate @ SignalPayload::Candidate { .. } => {
                if let Some(c) = self.conn(from).filter(|c| c.via == Via::Server && !c.is_open()) {
                    self.commands.push_back(Command::AddCandidate { conn: c.id, candidate });
                }
            }
            SignalPayload::Reject { reason } => {
                let ours = |c: &&Conn| c.role == Role::Offerer && c.via == Via::Server && !c.is_open();
                if self.conn(from).filter(ours).is_some() {
                    self.attempt_failed(from, &refused(&reason), now);
                }
            }
        }
    }

    /// A signal the overlay delivered to this node after `hops` hops; `last_hop` is the
    /// authenticated peer that handed it over (`None` when it came from this node).
    pub fn handle_overlay_signal(
        &mut self,
        signal: OverlaySignal,
        hops: u8,
        last_hop: Option<Id>,
        tables: &impl Tables,
        now: Time,
    ) {
        if signal.to != self.own && self.is_open(signal.to) {
            // Our tables do not hold its target, but we are connected to it (it just
            // joined, or it is a leaf we lost): hand it over.
            let body = RoutedBody::App(AppMessage::Signal(signal.clone()));
            let message = Message::Route(Routed {
                key: signal.to,
                hops: hops.saturating_add(1).max(2),
                attempt: 0,
                failed: ThinVec::new(),
                body,
            });
            return self.send_on(signal.to, &message, now);
        }
        if let SignalKind::Reject { reason } = &signal.kind {
            return self.on_reject(signal.session, signal.from, reason, now);
        }
        if let Some(hop) = last_hop.filter(|&h| h != signal.from) {
            self.mentions.record_latest(signal.from, hop); // A way back to its sender.
        }
        if signal.to != self.own {
            // It ended here because its target is not in the overlay: tell the sender.
            if signal.from == self.own {
                self.on_reject(signal.session, self.own, "the node is not in the overlay", now);
            } else {
                let reason = "the node is not in the overlay".to_string();
                let reject = OverlaySignal {
                    from: self.own,
                    to: signal.from,
                    session: signal.session,
                    kind: SignalKind::Reject { reason },
                };
                self.send_signal(reject, now);
            }
            return;
        }
        match signal.kind {
            SignalKind::Offer { sdp, transfer } => {
                let introducer = last_hop.unwrap_or(signal.from);
                if !self.peers.get(&signal.from).is_some_and(|p| p.known) {
                    self.introductions.record(signal.from, introducer);
                }
                let (from, session) = (signal.from, signal.session);
                let offer = Offer { from, via: Via::Overlay, session, sdp, last_hop, transfer };
                self.on_offer(offer, tables, now);
            }
            SignalKind::Answer { sdp } => self.on_answer(signal.from, Some(signal.session), sdp),
            SignalKind::Reject { .. } => {}
        }
    }

    /// Whether `offer` is a copy of the one we answer already (it came another way: the
    /// peer sent it again because our answer had not arrived).
    fn is_answered(&self, offer: &Offer) -> bool {
        self.conn(offer.from).is_some_and(|c| {
            c.role == Role::Answerer && c.state == State::Signaling && c.offer_digest == Some(sdp_digest(&offer.sdp))
        })
    }

    /// Sends our answer again the way the copy `offer` came: through the server, or over
    /// the overlay first back through its last hop.
    fn answer_again(&mut self, offer: Offer, now: Time) {
        let Some(sdp) = self.conn(offer.from).and_then(|c| c.local_sdp.clone()) else {
            return; // Not described yet: it goes out then.
        };
        if offer.via == Via::Server {
            let payload = SignalPayload::Answer { sdp };
            return self.commands.push_back(Command::ToServer { to: offer.from, payload });
        }
        let kind = SignalKind::Answer { sdp };
        let signal = OverlaySignal { from: self.own, to: offer.from, session: offer.session, kind };
        match offer.last_hop.filter(|&hop| self.is_open(hop)) {
            Some(hop) => {
                let body = RoutedBody::App(AppMessage::Signal(signal));
                self.send_on(
                    hop,
                    &Message::Route(Routed { key: offer.from, hops: 1, attempt: 0, failed: ThinVec::new(), body }),
                    now,
                );
            }
            None => self.send_signal(signal, now),
        }
    }

    /// Overlay offers of ours still unanswered a quarter of the connect timeout after the
    /// last went out go again along the next first hop of [`PeerManager::signal_ways`], at
    /// most [`MAX_RESENDS`] times: the path of the first may end at a node that has no
    /// connection to the target yet (a node that just joined, two rings merging).
    pub(super) fn resend_offers(&mut self, now: Time) {
        let interval = self.config.connect_timeout / 4;
        let mut due = Vec::new();
        for (peer, record) in &mut self.peers {
            let Some(c) = record.conn.as_mut().filter(|c| resend_at(c, interval).is_some_and(|at| at <= now)) else {
                continue;
            };
            if let Some(sdp) = c.local_sdp.clone() {
                c.resends += 1;
                let nth = c.resends;
                // A late timer (a suspended tab) sends the offer once, not once per
                // interval it missed, and leaves nothing due now.
                while resend_at(c, interval).is_some_and(|at| at <= now) {
                    c.resends += 1;
                }
                let kind = SignalKind::Offer { sdp, transfer: c.transfer };
                due.push((OverlaySignal { from: self.own, to: *peer, session: c.session, kind }, nth));
            }
        }
        for (signal, nth) in due {
            self.send_signal_along(signal, usize::from(nth), now);
        }
    }

    /// When the next unanswered overlay offer goes again.
    pub(super) fn next_resend(&self) -> Option<Time> {
        let interval = self.config.connect_timeout / 4;
        self.peers.values().filter_map(|p| p.conn.as_ref()).filter_map(|c| resend_at(c, interval)).min()
    }

    /// An attempt of ours was refused by `by`: its target, or a node where the offer ended
    /// because the target is not in its tables. The latter may only lack a connection that
    /// the target's other neighbours have or will have in a moment (a node that just
    /// joined, two rings merging): the offer goes through the server if we have one (and
    /// again over the overlay later, in case the server does not know the target), and
    /// without a server the attempt waits for the offer to go again ([`MAX_RESENDS`]).
    fn on_reject(&mut self, session: u64, by: Id, reason: &str, now: Time) {
        let found = self.peers.iter().find_map(|(id, p)| {
            p.conn
                .as_ref()
                .filter(|c| c.session == session && c.role == Role::Offerer && c.via == Via::Overlay && !c.is_open())
                .map(|c| (*id, c.resends))
        });
        let Some((peer, resends)) = found else { return };
        if by != peer && resends < MAX_RESENDS && !self.server {
            return tracing::debug!(%peer, "overlay offer refused on the way ({reason}); it goes again later");
        }
        self.attempt_failed(peer, &refused(reason), now);
    }

    /// An offer.
    fn on_offer(&mut self, offer: Offer, tables: &impl Tables, now: Time) {
        if offer.from == self.own {
            return;
        }
        if self.is_answered(&offer) {
            return self.answer_again(offer, now);
        }
        let Offer { from, via, session, sdp, transfer, .. } = offer;
        if let Some(existing) = self.conn(from) {
            // Whoever sends an overlay offer may write any `from` into it: it may not tear
            // down a connection over which that peer is heard from (a peer that restarted
            // falls silent there first).
            let alive = existing.is_open() && now.since(existing.last_heard) < self.config.liveness;
            if via == Via::Overlay && alive {
                tracing::warn!(peer = %from, "an overlay offer names a peer we hear from on an open connection: ignored");
                return;
            }
            let glare = existing.role == Role::Offerer && existing.state == State::Signaling;
            if glare && self.own < from {
                return; // Both offered: the smaller id's offer wins; the peer answers ours.
            }
            // The peer's offer replaces what we had (its messages stay queued).
            self.replace_conn(from, now);
        }
        let admission = self.admission(from, Attempt::incoming(transfer), tables, now);
        match admission {
            Admission::Start(charge) => self.create(from, Role::Answerer, via, session, charge, Some(sdp), tables, now),
            Admission::Wait | Admission::Refuse(_) => {
                let reason = match admission {
                    Admission::Refuse(reason) => reason,
                    _ => "too many new connections right now",
                };
                self.note_trouble(from, format!("its offer is refused: {reason}"), now);
                self.stats.refused += 1;
                if via == Via::Overlay {
                    let reject = OverlaySignal {
                        from: self.own,
                        to: from,
                        session,
                        kind: SignalKind::Reject { reason: reason.into() },
                    };
                    self.send_signal(reject, now);
                } else if self.server {
                    let payload = SignalPayload::Reject { reason: reason.into() };
                    self.commands.push_back(Command::ToServer { to: from, payload });
                }
                self.fail_pending(from);
            }
        }
    }

    /// Removes the current connection to `peer` without failing its messages.
    fn replace_conn(&mut self, peer: Id, _now: Time) {
        let Some(record) = self.peers.get_mut(&peer) else { return };
        let Some(c) = record.conn.take() else { return };
        self.by_conn.remove(&c.id);
        self.settle(c.charge, Outcome::Withdrawn);
        self.commands.push_back(Command::Close { conn: c.id });
        if c.is_open() {
            self.events.push_back(PeerEvent::Closed { peer, reason: "replaced by a new offer".into() });
        }
    }

    /// An answer from `from`: applied only to an offer of ours still waiting for one (and,
    /// through the overlay, of the same session).
    fn on_answer(&mut self, from: Id, session: Option<u64>, sdp: String) {
        let Some(c) = self.conn(from) else {
            return tracing::debug!(peer = %from, "an answer to no offer of ours: dropped");
        };
        let expected = c.role == Role::Offerer
            && c.state == State::Signaling
            && c.local_sdp.is_some()
            && session.is_none_or(|s| s == c.session);
        if !expected {
            return tracing::debug!(peer = %from, "an answer that matches no offer of ours: dropped");
        }
        let conn = c.id;
        if let Some(record) = self.peers.get_mut(&from)
            && let Some(c) = record.conn.as_mut()
        {
            c.local_sdp = None; // One answer per offer.
        }
        self.commands.push_back(Command::ApplyAnswer { conn, sdp });
    }

    /// Routes a signal we originate with key = its target. Our tables may not lead to the
    /// target at all (we answer a node that has just learnt of us, or it is a leaf we lost:
    /// routing would end here), so the first hop is the peer that last named the target to
    /// us, which most likely is connected to it, or else the open connection numerically
    /// closest to the target; Pastry routing takes it on from there.
    fn send_signal(&mut self, signal: OverlaySignal, now: Time) {
        self.send_signal_along(signal, 0, now);
    }

    /// Sends a signal we originate along the `nth` of [`PeerManager::signal_ways`] (the
    /// first again when there are fewer).
    fn send_signal_along(&mut self, signal: OverlaySignal, nth: usize, now: Time) {
        let key = signal.to;
        let message = Message::Route(Routed {
            key,
            hops: 1,
            attempt: 0,
            failed: ThinVec::new(),
            body: RoutedBody::App(AppMessage::Signal(signal)),
        });
        let ways = self.signal_ways(key);
        match ways.get(nth).or(ways.first()) {
            Some(&first) => self.send_on(first, &message, now),
            None => tracing::debug!(to = %key, "no open connection to send a signal through; dropped"),
        }
    }

    /// The open connections a signal to `key` may take as its first hop when we have none
    /// to `key` itself, best first: the peer that last named `key` (it most likely is
    /// connected to it), then the others from the numerically closest to `key`.
    fn signal_ways(&self, key: Id) -> Vec<Id> {
        let named_by = self.mentions.introducer(key).filter(|&id| self.is_open(id));
        let mut ways: Vec<Id> = self.open_peers().filter(|&id| Some(id) != named_by).collect();
        ways.sort_unstable_by_key(|&id| (key.ring_distance(id), id));
        ways.truncate(MAX_RESENDS.into());
        named_by.into_iter().chain(ways).collect()
    }

    /// The open peer numerically closest to `key`, other than `except`.
    fn closest_open(&self, key: Id, except: Option<Id>) -> Option<Id> {
        self.open_peers().filter(|id| Some(*id) != except).min_by_key(|id| (key.ring_distance(*id), *id))
    }

    /// A signal the core forwards to `next`, which has no open connection: it goes to the
    /// open connection closest to its target if that is closer than this node (or at the
    /// signal's first hop). Otherwise, when `next` is not the target, it is given back to
    /// wait for a connection to `next` like any message; a signal for its unconnected target
    /// goes to the peer that named the target to us, and with no such peer it is dropped
    /// (its sender's attempt times out). A signal of ours come back is dropped. Other
    /// messages are given back unchanged.
    pub(super) fn relay_signal(
        &mut self,
        next: Id,
        message: Message<AppMessage>,
        now: Time,
    ) -> Option<Message<AppMessage>> {
        let Message::Route(Routed { key, hops, body: RoutedBody::App(AppMessage::Signal(signal)), .. }) = &message
        else {
            return Some(message);
        };
        let (key, first_hop) = (*key, *hops <= 1);
        if !first_hop && signal.from == self.own {
            return None; // Our own, come back: the offer goes again along another first hop.
        }
        let own = key.ring_distance(self.own);
        match self.closest_open(key, Some(next)) {
            Some(via) if first_hop || key.ring_distance(via) < own => {
                self.send_on(via, &message, now);
                None
            }
            _ if next != key => Some(message),
            _ => {
                match self.mentions.introducer(key).filter(|&m| m != next && self.is_open(m)) {
                    Some(named_by) => self.send_on(named_by, &message, now),
                    None => tracing::debug!(to = %key, "no open connection to relay a signal through; dropped"),
                }
                None
            }
        }
    }
}

/// An offer that arrived, through the server or the overlay.
struct Offer {
    from: Id,
    via: Via,
    /// The overlay session (ours for a server offer).
    session: u64,
    sdp: String,
    /// The peer that handed an overlay offer to us.
    last_hop: Option<Id>,
    /// The peer says the connection is for PAST content.
    transfer: bool,
}

/// A digest of a session description (each offer's is unique: its fingerprint and ICE
/// credentials).
pub(super) fn sdp_digest(sdp: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    sdp.hash(&mut hasher);
    hasher.finish()
}

/// When `c`, an overlay offer of ours still unanswered, goes again (`None`: it does not).
/// One that went once more through the server goes on along the overlay too: the server
/// may not know the target (it registered with another server).
fn resend_at(c: &Conn, interval: Duration) -> Option<Time> {
    let overlay = c.via == Via::Overlay || c.retried;
    let unanswered = c.role == Role::Offerer && overlay && c.state == State::Signaling;
    (unanswered && c.local_sdp.is_some() && c.resends < MAX_RESENDS)
        .then(|| c.created + interval * u32::from(c.resends + 1))
}

/// Why an attempt failed, given the reason its peer sent (cut to [`MAX_REASON`] characters).
fn refused(reason: &str) -> String {
    let reason: String = reason.chars().take(MAX_REASON).collect();
    format!("refused: {reason}")
}

/// The target of a routed signal.
pub(super) fn signal_target(message: &Message<AppMessage>) -> Option<Id> {
    match message {
        Message::Route(Routed { body: RoutedBody::App(AppMessage::Signal(signal)), .. }) => Some(signal.to),
        _ => None,
    }
}
