//! Which idle connections stay above `max_connections`, and which are evicted.
//!
//! An idle connection is evicted (least recently used first) only when the node keeps its
//! peer neither in its leaf set nor in its routing table ([`Tables::keeps`]), the peer is
//! not protected (a join contact), and the peer does not keep **us**: a peer that sent us a
//! probe of its own (a keep-alive, a table probe, an announcement; not an answer to ours)
//! within [`ManagerConfig::holder_memory`] holds us in its leaf set, routing table or
//! neighborhood set, and would only connect again at its next probe. The churn study
//! (`docs/results-churn-scale.md`) found that evicting those peers costs 1,300 to 6,200
//! reconnections per hour at 100,000 nodes; the number of such peers is bounded by the pace
//! ([`super::pace`]), which refuses their offers beyond it.
//!
//! [`ManagerConfig::holder_memory`]: super::ManagerConfig::holder_memory

use past_core::wire::{Message, Probe};
use past_core::{Id, Time};

use super::{Conn, PeerManager, Tables};
use crate::app::AppMessage;

impl PeerManager {
    /// Notes that `peer` keeps us in its tables when `message` is a probe of its own.
    pub(super) fn note_holder(&mut self, peer: Id, message: &Message<AppMessage>, now: Time) {
        if let Message::Probe(Probe { answer: None, .. }) = message
            && let Some(c) = self.peers.get_mut(&peer).and_then(|p| p.conn.as_mut())
        {
            c.probed_us = Some(now);
        }
    }

    /// Whether `peer` probed us within `holder_memory` (it keeps us in its tables).
    pub fn holds_us(&self, peer: Id, now: Time) -> bool {
        self.conn(peer).and_then(|c| c.probed_us).is_some_and(|at| now.since(at) < self.config.holder_memory)
    }

    /// When the open connection `c` may be evicted: once past its grace, idle, and no
    /// longer held by its peer.
    fn evictable_at(&self, c: &Conn) -> Time {
        let config = &self.config;
        let idle = (c.created + config.eviction_grace).max(c.last_used + config.idle);
        c.probed_us.map_or(idle, |at| idle.max(at + config.holder_memory))
    }

    /// Closes idle connections that neither side keeps, least recently used first, until
    /// `room` more fit under the limit.
    pub(super) fn evict(&mut self, room: usize, tables: &impl Tables, now: Time) {
        let count = self.peers.values().filter(|p| p.conn.is_some()).count();
        let excess = (count + room).saturating_sub(self.config.max_connections);
        if excess == 0 {
            self.evict_at = None;
            return;
        }
        // Open connections without queued messages that the node does not keep, with when
        // they may go.
        let candidates: Vec<(Time, Id, Time)> = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.conn.as_ref().filter(|_| p.pending.is_empty()).map(|c| (*id, c)))
            .filter(|(id, c)| c.is_open() && !tables.keeps(*id) && !self.protected.contains(id))
            .map(|(id, c)| (c.last_used, id, self.evictable_at(c)))
            .collect();
        let (mut victims, later): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|(_, _, at)| *at <= now);
        victims.sort_unstable();
        // Not enough can go now: look again when the next one may (`handle_timeout` is only
        // called at `poll_timeout`, and a driver of the manager alone has no other timer).
        self.evict_at = (victims.len() < excess).then(|| later.iter().map(|(_, _, at)| *at).min()).flatten();
        for (_, peer, _) in victims.into_iter().take(excess) {
            self.close_gracefully(peer, "evicted", now);
        }
    }
}
