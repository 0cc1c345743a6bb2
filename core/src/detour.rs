//! Routing around a node that is live but cannot be reached from here.
//!
//! A send that cannot use a connection ([`SendFailure::Unreachable`](crate::SendFailure):
//! no connection left in the budget, a path WebRTC cannot open) makes the node drop the peer
//! from its tables, as for a failed one, and route the message another way. When the peer
//! was the node closest to the key, that leaves this node as the closest it knows, and it
//! would deliver the message to itself: a lookup would then hear "not found" from a node
//! that is not the file's root. So a node remembers the peers it could not reach lately,
//! and a message it would deliver to itself while one of them is closer to the key goes to
//! the known node closest to the key instead, which can likely reach the root. The detour
//! is taken only in the first hops of a message, so two nodes that each think the other
//! closer pass it back and forth a few times at most, and the last one delivers it.

use crate::id::Id;
use crate::overlay::Overlay;
use crate::time::Time;

/// Most peers remembered as unreachable; the oldest is forgotten first.
const MAX_UNREACHABLE: usize = 32;

/// A message takes a detour only while it has taken fewer hops than this.
pub(crate) const MAX_DETOUR_HOPS: u8 = 4;

impl<M> Overlay<M> {
    /// No connection to `peer` could be used just now.
    pub(crate) fn note_unreachable(&mut self, peer: Id) {
        let (now, memory) = (self.now, self.config.failed_memory);
        self.unreachable.retain(|&(id, at)| id != peer && at + memory > now);
        if self.unreachable.len() >= MAX_UNREACHABLE {
            self.unreachable.pop_front();
        }
        self.unreachable.push_back((peer, now));
    }

    /// `peer` contacted us, so a connection to it works.
    pub(crate) fn reached(&mut self, peer: Id) {
        if !self.unreachable.is_empty() {
            self.unreachable.retain(|&(id, _)| id != peer);
        }
    }

    /// Where a message for `key` that this node would deliver to itself goes instead, when a
    /// peer it could not reach lately is closer to the key: the known node closest to the
    /// key, none of `avoid` nor unreachable. `None` when this node may deliver it.
    pub(crate) fn detour(&self, key: Id, avoid: &[Id]) -> Option<Id> {
        let own = self.state.own();
        let unreachable = |id: Id| self.unreachable.iter().any(|&(u, at)| u == id && self.is_recent(at));
        let closer = key.ring_distance(own);
        let passed_over = self.unreachable.iter().any(|&(u, at)| self.is_recent(at) && key.ring_distance(u) < closer);
        if !passed_over {
            return None;
        }
        self.state
            .known()
            .filter(|&id| id != own && !avoid.contains(&id) && !unreachable(id))
            .min_by_key(|&id| (key.ring_distance(id), id))
    }

    fn is_recent(&self, at: Time) -> bool {
        at + self.config.failed_memory > self.now
    }
}
