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
//! ([`PastMessage::Bounced`]), which forgets the way and acts as if its own send had
//! failed: a reader's pull drops that holder and routes the lookup again, a holder hands
//! its answer on to the other holders. A reply lost with a node that left is not bounced
//! (its sender waits for nothing); instead a pull along a way that hears nothing for
//! [`PastConfig::reask_after`](super::PastConfig) asks again for what it waits for first
//! (`Past::reask`), and that request comes back bounced if the way broke, seconds later
//! rather than at the pull's stall timeout. [`PastConfig::answers`](super::PastConfig)
//! chooses: straight as in PAST, along the route to readers not in the tables (the
//! default), or along the route always. A node on the route could
//! misstate the origin of what it relays, as it could drop what it forwards: content is
//! checked against the signed certificate at the reader, and a lookup that is not answered
//! is routed again on a random route, whose answer teaches both ends a new way.
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
//! a connection of its own) and anything outside a lookup.

use core::time::Duration;
use std::collections::BTreeMap;

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::FileCertificate;
use crate::past::config::Answers;
use crate::past::messages::PastMessage;
use crate::past::node::Past;
use crate::past::transfer::Transfer;
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

/// The peers this node reaches along a route rather than straight.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ways {
    ways: BTreeMap<Id, Way>,
}

impl Ways {
    /// Keeps `via` as the way to `to` (the least recently used way makes room); an empty
    /// `via` is no way.
    pub(crate) fn learn(&mut self, to: Id, via: Vec<Id>, now: Time) {
        if via.is_empty() {
            return;
        }
        if self.ways.len() >= MAX_WAYS
            && !self.ways.contains_key(&to)
            && let Some(oldest) = self.ways.iter().min_by_key(|(_, w)| w.used).map(|(&id, _)| id)
        {
            self.ways.remove(&oldest);
        }
        self.ways.insert(to, Way { via, used: now });
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

/// Whether `message` may be relayed: the messages of a lookup's answer and of a pull.
pub fn relayable(message: &PastMessage) -> bool {
    matches!(
        message,
        PastMessage::Found { .. }
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
    /// that way.
    pub(crate) fn learn_ways_back(&mut self, o: &dyn Net<PastMessage>, route: &[Id], peers: &[Id]) {
        let answers = self.config.answers;
        if answers == Answers::Straight {
            return;
        }
        let own = o.id();
        for &peer in peers {
            if peer == own || (answers == Answers::AlongRouteToStrangers && o.state().knows(peer)) {
                continue;
            }
            if let Some(via) = way_back(route, own, peer) {
                self.ways.learn(peer, via, o.now());
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

    /// When pull `t` is to ask again: `reask_after` after its last progress, if its main
    /// source is reached along a way and it has not asked again since.
    pub(crate) fn reask_at(&self, t: &Transfer) -> Option<Time> {
        let after = self.config.reask_after?;
        (self.ways.has(t.peer) && t.reasked != Some(t.last_progress)).then(|| t.last_progress + after)
    }

    /// Pull `id` from a peer along a way heard nothing for `reask_after`: it asks again for
    /// what it waits for first, once until its next progress. If a node of the way left
    /// with the answers, the request comes back ([`PastMessage::Bounced`]) and the pull
    /// goes on without that peer; if the answer was only slow, its copy is ignored.
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

    /// What this node sent to `target` along a way did not arrive: the way is forgotten,
    /// and the message is handled as one that could not be sent (an answer as one that
    /// reaches its reader neither straight nor along the route).
    pub(crate) fn on_bounced(&mut self, o: &mut dyn Net<PastMessage>, target: Id, inner: &[u8]) {
        self.ways.forget(target);
        match postcard::from_bytes::<PastMessage>(inner) {
            Ok(found @ PastMessage::Found { .. }) => self.answer_unreachable(o, target, found),
            Ok(message) if bounces(&message) => self.on_send_failed(o, target, message),
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
