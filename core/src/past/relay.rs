//! Answers along the route: a lookup's answer and content travel back hop by hop over the
//! connections the lookup came by, instead of straight to the reader.
//!
//! PAST answers a reader straight from the node that holds the file. In a browser that
//! costs both ends a connection of their own, taken from a lifetime budget of about 500,
//! and the holders of popular files would spend theirs within the hour
//! (docs/results-past.md). Every hop of a lookup's route, though, went over a connection
//! its sender holds for its own tables. So a holder that does not hold the reader in its
//! tables answers along the route backwards: it wraps its answer ([`PastMessage::Found`])
//! in a [`PastMessage::Relay`] naming the route's nodes, each passes it to the next, and the
//! reader learns from it the way back to the holder. The chunk requests of its pull then go
//! the same way, and the chunks come back along it. A node offered a copy to cache on the
//! route pulls it along the part of the route between itself and the holder, the way PAST
//! caches files "routed through" a node. What this costs instead of connections: every
//! node of the route carries the content once (the bytes are counted in
//! [`PastStats::bytes_relayed`](super::PastStats)).
//!
//! A way is kept per peer (`Ways`): learned when answering (from the route the lookup
//! carried), from a relayed answer, offer or request that arrived (its path reversed; a
//! relayed reply teaches nothing), and forgotten after [`WAY_IDLE`] unused. Only the
//! messages of an answer and a pull are relayed ([`relayable`]); the relayed message is
//! carried encoded, so a relay node neither decodes nor changes it, and it cannot nest. A
//! relay node only passes a message to the node after itself on the path. One that cannot
//! (the next node left) sends a request or an answer back to its origin
//! ([`PastMessage::Bounced`]), which forgets the way: a reader's pull routes its lookup
//! again, without counting the holder as failed (the next route goes around the node that
//! left, and may come back to the same holder, a file's only one), a holder hands its
//! answer on to the other holders. A reply lost with a node that left is not bounced
//! (its sender waits for nothing); instead a pull along a way that hears nothing for
//! [`PastConfig::reask_after`](super::PastConfig) asks again for what it waits for first
//! (`Past::reask`), and that request comes back bounced if the way broke, seconds later
//! rather than at the pull's stall timeout. A pull straight from its holder asks again the
//! same way, and a reader's pull that still hears nothing gives the way up
//! (`Past::give_up_way`), along a route or straight. [`PastConfig::answers`](super::PastConfig)
//! chooses: straight as in PAST, along the route to readers not in the tables (the
//! default), or along the route always. A node on the route could
//! misstate the origin of what it relays, as it could drop what it forwards: content is
//! checked against the signed certificate at the reader, and a lookup that is not answered
//! is routed again on a random route, whose answer teaches both ends a new way.
//!
//! An insert uses the same ways when no connection to its client opens: the insert carries
//! its route, its root keeps the way back to the client in reserve (`Ways::keep_in_reserve`),
//! and each [`Prepare`](super::messages::Prepare) gives its holder the way through the root.
//! A pull request, receipt or refusal that cannot be sent straight then goes along that way
//! (`Past::send_along_instead`), and the content comes back along it.
//!
//! A node that holds a pointer to a diverted replica answers the same way, naming the
//! diverted holder, one of its leaves: the reader's way to that holder is the way to the
//! answering node (or that node itself, if it answered straight) and one step more.
//!
//! What is not relayed: files larger than [`PastConfig::relay_max_size`](super::PastConfig)
//! (1 MiB: in a browser, carrying a file through the route's tabs made a 1 MiB read take
//! about 1.5 to 2 times as long as straight, a cost that grows with the file while a
//! connection's is fixed), unless the straight answer cannot be sent because no connection
//! to the reader opens (a path WebRTC cannot take, either end out of its connection
//! budget): then it goes back along the route whatever its size
//! (`Past::answer_along_route_instead`), and only if there is no such way is the lookup
//! handed on to the other holders; helpers of a pull from several sources (each would need
//! a connection of its own) and anything outside a lookup, except an insert's messages to
//! its client when no connection to it opens (above).

use core::time::Duration;
use std::collections::BTreeMap;

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::FileCertificate;
use crate::past::config::Answers;
use crate::past::messages::PastMessage;
use crate::past::node::Past;
use crate::past::transfer::{Sink, Transfer};
use crate::time::Time;

/// Most nodes a relayed message passes (longer routes answer directly).
pub const MAX_VIA: usize = 16;

/// Most peers a node keeps a way to.
const MAX_WAYS: usize = 256;

/// How long an unused way is kept.
pub const WAY_IDLE: Duration = Duration::from_secs(60);

/// The way to a peer: the nodes to pass, in order, and when it was last used.
#[derive(Clone, Debug)]
struct Way {
    via: Vec<Id>,
    used: Time,
}

/// The peers this node reaches along a route rather than straight, and those it may
/// reach so if no connection to them opens (ways in reserve).
#[derive(Clone, Debug, Default)]
pub(crate) struct Ways {
    ways: BTreeMap<Id, Way>,
    reserve: BTreeMap<Id, Way>,
}

impl Ways {
    /// Keeps `via` as the way to `to` (the least recently used way makes room); an empty
    /// `via` is no way.
    pub(crate) fn learn(&mut self, to: Id, via: Vec<Id>, now: Time) {
        keep(&mut self.ways, to, via, now);
    }

    /// Keeps `via` in reserve as the way to `to`, for when a message to `to` cannot be sent
    /// straight ([`Ways::take_reserve`]).
    pub(crate) fn keep_in_reserve(&mut self, to: Id, via: Vec<Id>, now: Time) {
        keep(&mut self.reserve, to, via, now);
    }

    /// Makes the way kept in reserve for `to` (within [`WAY_IDLE`]) the way to it; whether
    /// there was one.
    pub(crate) fn take_reserve(&mut self, to: Id, now: Time) -> bool {
        match self.reserve.remove(&to) {
            Some(way) if now.since(way.used) < WAY_IDLE => {
                self.learn(to, way.via, now);
                true
            }
            _ => false,
        }
    }

    /// The way to `to` in use or in reserve, without using it.
    pub(crate) fn known(&self, to: Id) -> Option<&[Id]> {
        self.ways.get(&to).or_else(|| self.reserve.get(&to)).map(|w| w.via.as_slice())
    }

    /// The way to `to`, if one was used within [`WAY_IDLE`]; using it keeps it.
    pub(crate) fn via(&mut self, to: Id, now: Time) -> Option<Vec<Id>> {
        let way = self.ways.get_mut(&to)?;
        if now.since(way.used) >= WAY_IDLE {
            self.ways.remove(&to);
            return None;
        }
        way.used = now;
        Some(way.via.clone())
    }

    /// Whether this node reaches `to` along a route.
    pub(crate) fn has(&self, to: Id) -> bool {
        self.ways.contains_key(&to)
    }

    /// Forgets the way to `to`.
    pub(crate) fn forget(&mut self, to: Id) {
        self.ways.remove(&to);
    }
}

/// Keeps `via` as the way to `to` in `ways` (the least recently used way makes room); an
/// empty `via` is no way.
fn keep(ways: &mut BTreeMap<Id, Way>, to: Id, via: Vec<Id>, now: Time) {
    if via.is_empty() {
        return;
    }
    if ways.len() >= MAX_WAYS
        && !ways.contains_key(&to)
        && let Some(oldest) = ways.iter().min_by_key(|(_, w)| w.used).map(|(&id, _)| id)
    {
        ways.remove(&oldest);
    }
    ways.insert(to, Way { via, used: now });
}

/// Whether `message` may be relayed: the messages of a lookup's answer and of a pull, and
/// what an insert's holders and root tell its client.
pub fn relayable(message: &PastMessage) -> bool {
    matches!(
        message,
        PastMessage::Found { .. }
            | PastMessage::Receipt { .. }
            | PastMessage::InsertFailed { .. }
            | PastMessage::CacheOffer { .. }
            | PastMessage::HashRequest { .. }
            | PastMessage::HashReply { .. }
            | PastMessage::ChunkRequest { .. }
            | PastMessage::ChunkReply { .. }
            | PastMessage::TransferFailed { .. }
            | PastMessage::Bounced { .. }
    )
}

/// Whether a relay node that cannot pass `message` on sends it back to its origin: the
/// requests and answers whose sender acts on a failure at once.
fn bounces(message: &PastMessage) -> bool {
    matches!(message, PastMessage::Found { .. } | PastMessage::HashRequest { .. } | PastMessage::ChunkRequest { .. })
}

/// Whether `message` asks something of its receiver (which answers along the way it came).
fn asks(message: &PastMessage) -> bool {
    bounces(message) || matches!(message, PastMessage::CacheOffer { .. })
}

/// The way from `own` back to `to` along `route` (the nodes a lookup went through after its
/// reader, `own` possibly last): the route's nodes after `to` (all of them if `to` is the
/// reader, which is not in it), last first. `None` if that is no node, too many, or
/// passes `own`.
pub(crate) fn way_back(route: &[Id], own: Id, to: Id) -> Option<Vec<Id>> {
    let route = route.strip_suffix(&[own]).unwrap_or(route);
    let start = route.iter().position(|&n| n == to).map_or(0, |i| i + 1);
    let via: Vec<Id> = route.get(start..)?.iter().rev().copied().collect();
    let ok = !via.is_empty() && via.len() <= MAX_VIA && !via.contains(&own) && !via.contains(&to);
    ok.then_some(via)
}

impl Past {
    /// Whether the answer to a lookup of `cert`'s file may go along the route: answers are
    /// not straight, and the file is at most `relay_max_size`.
    pub(crate) fn relays(&self, cert: &FileCertificate) -> bool {
        self.config.answers != Answers::Straight && cert.body.size <= self.config.relay_max_size
    }

    /// Before answering a lookup that went along `route`: for each of `peers` (the reader,
    /// the nodes offered a copy to cache) not in this node's tables (any, with
    /// [`Answers::AlongRoute`]), keeps the way back along the route, so the answer goes
    /// that way. A peer this answer goes to straight (in the tables, or next to this node
    /// on the route) loses any older way kept to it: that way may pass a node that has
    /// left since.
    pub(crate) fn learn_ways_back(&mut self, o: &dyn Net<PastMessage>, route: &[Id], peers: &[Id]) {
        let answers = self.config.answers;
        if answers == Answers::Straight {
            return;
        }
        let own = o.id();
        for &peer in peers.iter().filter(|&&peer| peer != own) {
            let along = answers == Answers::AlongRoute || !o.state().knows(peer);
            match way_back(route, own, peer).filter(|_| along) {
                Some(via) => self.ways.learn(peer, via, o.now()),
                None => self.ways.forget(peer),
            }
        }
    }

    /// Sends `message` to `to` along the way kept for it, if it is relayable and there is
    /// one; returns it otherwise.
    pub(crate) fn send_along(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        to: Id,
        message: PastMessage,
    ) -> Option<PastMessage> {
        if !relayable(&message) {
            return Some(message);
        }
        let Some(via) = self.ways.via(to, o.now()) else {
            return Some(message);
        };
        let Some(&first) = via.first() else {
            return Some(message);
        };
        let Ok(inner) = postcard::to_allocvec(&message) else {
            return Some(message);
        };
        o.send(first, PastMessage::Relay { origin: o.id(), target: to, via, inner });
        None
    }

    /// At the root of an insert from `client` that came along `route`: keeps in reserve the
    /// way back to `client` along the route, for what this node must tell it if no
    /// connection to it opens. Nothing with [`Answers::Straight`].
    pub(crate) fn keep_way_back(&mut self, o: &dyn Net<PastMessage>, route: &[Id], client: Id) {
        if self.config.answers == Answers::Straight {
            return;
        }
        if let Some(via) = way_back(route, o.id(), client) {
            self.ways.keep_in_reserve(client, via, o.now());
        }
    }

    /// The way for `to` to reach `source` through this node (along this node's own way to
    /// `source`, if it has one), for a [`Prepare`](super::messages::Prepare) that has `to`
    /// pull from `source`: empty if there is none or with [`Answers::Straight`].
    pub(crate) fn way_through(&self, o: &dyn Net<PastMessage>, to: Id, source: Id) -> Vec<Id> {
        let own = o.id();
        if self.config.answers == Answers::Straight || source == own {
            return Vec::new();
        }
        let mine = self.ways.known(source).unwrap_or_default();
        let via: Vec<Id> = if to == own { mine.to_vec() } else { [own].iter().chain(mine).copied().collect() };
        let ok = via.len() <= MAX_VIA && !via.contains(&to) && !via.contains(&source);
        if ok { via } else { Vec::new() }
    }

    /// Keeps in reserve `via`, the way a [`Prepare`](super::messages::Prepare) gave to the
    /// node to pull from, if it is one (it passes neither this node nor `source`).
    pub(crate) fn keep_source_way(&mut self, o: &dyn Net<PastMessage>, source: Id, via: &[Id]) {
        let own = o.id();
        if self.config.answers == Answers::Straight || via.contains(&own) || via.contains(&source) {
            return;
        }
        self.ways.keep_in_reserve(source, via.to_vec(), o.now());
    }

    /// `message` could not be sent straight to `to` (no connection opened): it goes along
    /// the way to `to`, the one kept in reserve becoming it if need be (an insert's client,
    /// reached back along the insert's route). Returns the message if there is no way.
    pub(crate) fn send_along_instead(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        to: Id,
        message: PastMessage,
    ) -> Option<PastMessage> {
        if !relayable(&message) || !(self.ways.has(to) || self.ways.take_reserve(to, o.now())) {
            return Some(message);
        }
        self.stats.sends_rerouted += 1;
        self.send(o, to, message);
        None
    }

    /// A relayed message arrived: pass it on, or, at its target, learn the way back to its
    /// origin and handle it as the origin's.
    pub(crate) fn on_relay(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        origin: Id,
        target: Id,
        via: Vec<Id>,
        inner: Vec<u8>,
    ) {
        let own = o.id();
        if target != own {
            let Some(at) = via.iter().position(|&n| n == own) else {
                return;
            };
            let next = via.get(at + 1).copied().unwrap_or(target);
            self.stats.bytes_relayed += inner.len() as u64;
            o.send(next, PastMessage::Relay { origin, target, via, inner });
            return;
        }
        let Ok(message) = postcard::from_bytes::<PastMessage>(&inner) else {
            return;
        };
        if !relayable(&message) || origin == own || via.contains(&own) || via.contains(&origin) {
            return;
        }
        // What asks something of this node is answered the way it came (if it passed any
        // node); a reply comes back along a way this node chose, and teaches nothing.
        if asks(&message) && !via.is_empty() {
            self.ways.learn(origin, via.into_iter().rev().collect(), o.now());
        }
        self.on_message(o, origin, message);
    }

    /// `named_by` answered a lookup, or offered a copy to cache, naming `holder` as the node
    /// to pull from: a diverted holder, one of its leaves. Unless this node holds `holder`
    /// in its tables (or answers go along the route always), the way to it passes
    /// `named_by` (along the way to `named_by`, if there is one).
    pub(crate) fn learn_way_past(&mut self, o: &dyn Net<PastMessage>, named_by: Id, holder: Id) {
        let own = o.id();
        let answers = self.config.answers;
        if answers == Answers::Straight || holder == named_by || holder == own || named_by == own {
            return;
        }
        if answers == Answers::AlongRouteToStrangers && o.state().knows(holder) {
            return;
        }
        let mut via = self.ways.via(named_by, o.now()).unwrap_or_default();
        if via.len() >= MAX_VIA || via.contains(&holder) || via.contains(&own) {
            return;
        }
        via.push(named_by);
        self.ways.learn(holder, via, o.now());
    }

    /// A relayed message could not be passed to the next node: at its origin, what was
    /// wrapped failed to reach its target; on the way, a request or answer goes back to its
    /// origin ([`PastMessage::Bounced`]), along the part of the way it came by, and
    /// anything else is dropped.
    pub(crate) fn relay_failed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        (origin, target): (Id, Id),
        via: &[Id],
        inner: Vec<u8>,
    ) {
        let own = o.id();
        if origin == own {
            return self.on_bounced(o, target, &inner);
        }
        let Some(at) = via.iter().position(|&n| n == own) else {
            return;
        };
        if !postcard::from_bytes::<PastMessage>(&inner).is_ok_and(|m| bounces(&m)) {
            return;
        }
        let bounced = PastMessage::Bounced { target, inner };
        let back: Vec<Id> = via[..at].iter().rev().copied().collect();
        match back.first() {
            None => o.send(origin, bounced),
            Some(&first) => {
                let Ok(inner) = postcard::to_allocvec(&bounced) else {
                    return;
                };
                o.send(first, PastMessage::Relay { origin: own, target: origin, via: back, inner });
            }
        }
    }

    /// When pull `t` is to act on silence: `reask_after` after its last progress it asks
    /// again ([`Past::reask`]). If that brings nothing either, `reask_after` later it gives
    /// up its way ([`Past::give_up_way`]) if its main source is reached along one, or if it
    /// reads for a lookup; a replica's or a cached copy's pull straight from its source
    /// waits for the stall timeout (no lookup can go on from another holder for it).
    pub(crate) fn reask_at(&self, t: &Transfer) -> Option<Time> {
        let after = self.config.reask_after?;
        let again = self.ways.has(t.peer) || matches!(t.sink, Sink::Reader(_));
        match (t.reasked == Some(t.last_progress), again) {
            (false, _) => Some(t.last_progress + after),
            (true, true) => Some(t.last_progress + after * 2),
            (true, false) => None,
        }
    }

    /// Pull `id` asked again and still heard nothing: its source, or a node of its way, is
    /// gone without any node noticing yet (a closed tab whose connections have not closed
    /// yet drops what it gets). The way, if any, is forgotten and the pull handled as one
    /// whose request came back: a reader goes on straight from the spare holder its answer
    /// named, if any, else routes its lookup again, which goes around a node that is gone
    /// and comes back to the same holder if it is alive.
    pub(crate) fn give_up_way(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let Some(peer) = self.transfers.get(&id).map(|t| t.peer) else {
            return;
        };
        self.ways.forget(peer);
        self.transfer_way_broke(o, id, peer);
    }

    /// Pull `id` heard nothing for `reask_after`: it asks again for what it waits for
    /// first, once until its next progress. If a node of its way left with the answers, the
    /// request comes back ([`PastMessage::Bounced`]) and the pull goes on by another way;
    /// if its source left, the request cannot be sent and the pull goes on without that
    /// source; if the answer was only slow, its copy is ignored.
    pub(crate) fn reask(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let Some(t) = self.transfers.get_mut(&id) else {
            return;
        };
        t.reasked = Some(t.last_progress);
        let peer = t.peer;
        let requests = self.first_awaited(id);
        if !requests.is_empty() {
            self.stats.reasked += 1;
        }
        for request in requests {
            self.send(o, peer, request);
        }
    }

    /// What this node sent to `target` along a way did not arrive: the way is forgotten.
    /// An answer is handled as one that reaches its reader neither straight nor along the
    /// route; a pull's request as one that lost its way, not its holder.
    pub(crate) fn on_bounced(&mut self, o: &mut dyn Net<PastMessage>, target: Id, inner: &[u8]) {
        self.ways.forget(target);
        match postcard::from_bytes::<PastMessage>(inner) {
            Ok(found @ PastMessage::Found { .. }) => self.answer_unreachable(o, target, found),
            Ok(PastMessage::ChunkRequest { transfer, .. } | PastMessage::HashRequest { transfer, .. }) => {
                self.transfer_way_broke(o, transfer, target)
            }
            _ => {}
        }
    }

    /// This node's answer `found` could not be sent straight to `reader` (no connection
    /// opened: a path WebRTC cannot take, or a node out of its connection budget): unless
    /// answers are straight, it goes back along the lookup's route instead, whatever the
    /// file's size, and the content follows it. Returns the answer if there is no such way
    /// (the reader was next to this node on the route).
    pub(crate) fn answer_along_route_instead(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        reader: Id,
        found: PastMessage,
    ) -> Option<PastMessage> {
        let PastMessage::Found { route, .. } = &found else {
            return Some(found);
        };
        if self.config.answers == Answers::Straight || self.ways.has(reader) {
            return Some(found);
        }
        let Some(via) = way_back(route, o.id(), reader) else {
            return Some(found);
        };
        self.ways.learn(reader, via, o.now());
        self.stats.answers_rerouted += 1;
        self.send(o, reader, found);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 16])
    }

    #[test]
    fn the_way_back_to_the_reader_is_the_route_reversed() {
        let route = [id(1), id(2), id(3)];
        assert_eq!(way_back(&route, id(9), id(0)), Some(vec![id(3), id(2), id(1)]));
        // The root noted itself last.
        let route = [id(1), id(2), id(9)];
        assert_eq!(way_back(&route, id(9), id(0)), Some(vec![id(2), id(1)]));
    }

    #[test]
    fn the_way_back_to_a_node_of_the_route_is_the_part_after_it() {
        let route = [id(1), id(2), id(3)];
        assert_eq!(way_back(&route, id(9), id(2)), Some(vec![id(3)]));
        assert_eq!(way_back(&route, id(9), id(3)), None, "adjacent: nothing to pass");
    }

    #[test]
    fn no_way_passes_its_own_node_or_exceeds_the_bound() {
        assert_eq!(way_back(&[id(1), id(9), id(2)], id(9), id(0)), None);
        let long: Vec<Id> = (1..=17).map(id).collect();
        assert_eq!(way_back(&long, id(99), id(0)), None);
        assert_eq!(way_back(&long[..16], id(99), id(0)).map(|v| v.len()), Some(16));
    }

    #[test]
    fn ways_expire_unused_and_make_room_for_new_ones() {
        let mut ways = Ways::default();
        let t0 = Time::ZERO;
        ways.learn(id(1), vec![id(2)], t0);
        assert_eq!(ways.via(id(1), t0 + Duration::from_secs(59)), Some(vec![id(2)]));
        assert_eq!(ways.via(id(1), t0 + Duration::from_secs(59) + WAY_IDLE), None);
        assert!(!ways.has(id(1)));
        for n in 0..=MAX_WAYS as u32 {
            let peer = Id::from_u128(u128::from(n) + 1000);
            ways.learn(peer, vec![id(2)], t0 + Duration::from_millis(u64::from(n)));
        }
        assert_eq!(ways.ways.len(), MAX_WAYS);
        assert!(!ways.has(Id::from_u128(1000)), "the least recently used way made room");
        assert!(ways.has(Id::from_u128(1000 + MAX_WAYS as u128)));
    }
}
