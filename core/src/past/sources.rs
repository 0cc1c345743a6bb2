//! A reader pulling one file from several replica holders at once.
//!
//! The holder that answers a lookup names the other nodes that should hold replicas
//! ([`PastMessage::Found`]); with [`PastConfig::sources`](crate::past::PastConfig::sources)
//! above 1 the reader asks some of them for chunks too. The answering holder stays the
//! transfer's main source (it alone sends the chunk hash list); every chunk requested goes to
//! the source with the fewest chunks outstanding, so a slower source gets fewer. Every chunk
//! is checked against the certificate's hashes whoever sends it. A helper that refuses,
//! cannot be reached, serves a bad chunk or holds up the stream is dropped and its
//! outstanding chunks go to the others; only a failure of the main source fails the pull.

use crate::id::Id;
use crate::net::Net;
use crate::past::messages::PastMessage;
use crate::past::node::Past;
use crate::past::transfer::Transfer;

impl Transfer {
    /// The source to ask for the next chunk: the one with the fewest chunks outstanding,
    /// the main source on a tie.
    pub(crate) fn next_source(&self) -> Id {
        let load = |node: Id| self.assigned.values().filter(|&&p| p == node).count();
        std::iter::once(self.peer).chain(self.helpers.iter().copied()).min_by_key(|&n| load(n)).unwrap_or(self.peer)
    }
}

impl Past {
    /// Adds `helpers` as further sources of transfer `id`.
    pub(crate) fn add_sources(&mut self, o: &mut dyn Net<PastMessage>, id: u64, helpers: Vec<Id>) {
        if helpers.is_empty() {
            return;
        }
        if let Some(t) = self.transfers.get_mut(&id) {
            t.helpers = helpers;
        }
        self.pump_transfer(o, id);
    }

    /// Stops asking `node` for chunks of transfer `id` and asks the other sources for the
    /// chunks it owed. Returns `false` (and does nothing) if `node` is not a helper of it.
    pub(crate) fn drop_source(&mut self, o: &mut dyn Net<PastMessage>, id: u64, node: Id) -> bool {
        let Some(t) = self.transfers.get_mut(&id) else {
            return false;
        };
        let Some(position) = t.helpers.iter().position(|&h| h == node) else {
            return false;
        };
        t.helpers.remove(position);
        let owed: Vec<u32> = t.assigned.iter().filter(|&(_, &p)| p == node).map(|(&i, _)| i).collect();
        let mut requests = Vec::new();
        for index in owed {
            let to = t.next_source();
            t.assigned.insert(index, to);
            requests.push((to, index));
        }
        let source = t.source;
        for (to, index) in requests {
            self.send(o, to, PastMessage::ChunkRequest { transfer: id, source, index });
        }
        true
    }

    /// The source owing the oldest chunk still awaited (the one holding up the stream).
    pub(crate) fn slowest_source(&self, id: u64) -> Option<Id> {
        self.transfers.get(&id).and_then(|t| t.assigned.first_key_value().map(|(_, &p)| p))
    }
}
