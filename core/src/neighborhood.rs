//! The neighborhood set: the M nodes closest by the proximity metric.
//!
//! Pastry section 2.1: "The neighborhood set M contains the nodeIds and IP addresses of the
//! |M| nodes that are closest (according to the proximity metric) to the local node." It is
//! not used in routing; a joining node takes its first one from its bootstrap contact, which
//! is close to it, and it seeds the routing table repair and the rare routing case.
//!
//! Invariant: sorted by round-trip time (ties by id), no duplicates, never the owner, only
//! measured entries, at most M of them.

use crate::filter::IdFilter;
use crate::id::Id;
use crate::routing_table::Entry;
use crate::time::Rtt;

/// The neighborhood set of one node.
#[derive(Clone, Debug)]
pub struct NeighborhoodSet {
    own: Id,
    capacity: usize,
    entries: Vec<Entry>,
    /// Kept beside the list so that most candidates are turned away without touching it:
    /// which ids are in, and the farthest entry once the set is full.
    filter: IdFilter,
    farthest: Option<(Rtt, Id)>,
}

impl NeighborhoodSet {
    /// An empty set of at most `capacity` (= M) nodes for the node `own`.
    pub fn new(own: Id, capacity: usize) -> Self {
        NeighborhoodSet {
            own,
            capacity,
            entries: Vec::with_capacity(capacity),
            filter: IdFilter::default(),
            farthest: None,
        }
    }

    /// The nodes, closest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of nodes held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: Id) -> bool {
        self.filter.may_contain(id) && self.entries.iter().any(|e| e.id == id)
    }

    fn reindex(&mut self) {
        self.filter = IdFilter::of(self.entries.iter().map(|e| e.id));
        self.farthest = self.entries.last().filter(|_| self.entries.len() >= self.capacity).map(|e| (e.rtt, e.id));
    }

    /// Offers `id` measured at `rtt`; returns whether the set changed. Unmeasured candidates
    /// are refused.
    pub fn consider(&mut self, id: Id, rtt: Rtt) -> bool {
        if id == self.own || !rtt.is_known() || self.capacity == 0 {
            return false;
        }
        if self.farthest.is_some_and(|far| far < (rtt, id)) && !self.contains(id) {
            return false; // Too far to enter.
        }
        let held = if self.filter.may_contain(id) { self.entries.iter().position(|e| e.id == id) } else { None };
        if let Some(position) = held {
            if self.entries[position].rtt == rtt {
                return false;
            }
            self.entries.remove(position);
        } else if self.farthest.is_some_and(|far| far <= (rtt, id)) {
            return false;
        }
        // A linear scan rather than a binary search: its loads do not wait on one another,
        // so the cache misses on a list nobody touched for a while overlap.
        let position = self.entries.iter().position(|e| (e.rtt, e.id) >= (rtt, id)).unwrap_or(self.entries.len());
        self.entries.insert(position, Entry { id, rtt });
        if self.entries.len() > self.capacity {
            self.entries.truncate(self.capacity);
            self.reindex();
        } else {
            // Nobody left: the filter only gains `id` (it held it already if it moved).
            self.filter.add(id);
            self.farthest = self.entries.last().filter(|_| self.entries.len() >= self.capacity).map(|e| (e.rtt, e.id));
        }
        true
    }

    /// Removes `id`; returns whether it was there.
    pub fn remove(&mut self, id: Id) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.entries.retain(|e| e.id != id);
        self.reindex();
        true
    }

    /// Checks the invariants.
    pub fn check(&self) -> Result<(), String> {
        if self.entries.len() > self.capacity {
            return Err("neighborhood set over capacity".into());
        }
        if self.entries.iter().any(|e| e.id == self.own || !e.rtt.is_known()) {
            return Err("neighborhood set holds the owner or an unmeasured node".into());
        }
        if self.entries.windows(2).any(|w| (w[0].rtt, w[0].id) >= (w[1].rtt, w[1].id)) {
            return Err("neighborhood set not sorted by proximity".into());
        }
        if self.filter != IdFilter::of(self.entries.iter().map(|e| e.id)) {
            return Err("neighborhood set filter out of date".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn keeps_the_closest_measured_nodes(
            ops in prop::collection::vec((0u128..50, prop::option::of(0u32..100), any::<bool>()), 0..200),
        ) {
            let own = Id::from_u128(0);
            let mut set = NeighborhoodSet::new(own, 8);
            let mut latest: std::collections::BTreeMap<u128, u32> = Default::default();
            for (raw, rtt, remove) in ops {
                let id = Id::from_u128(raw);
                if remove {
                    set.remove(id);
                    latest.remove(&raw);
                } else if let Some(rtt) = rtt {
                    set.consider(id, Rtt::from_micros(rtt));
                    if raw != 0 { latest.insert(raw, rtt); }
                } else {
                    prop_assert!(!set.consider(id, Rtt::UNKNOWN) || set.contains(id));
                }
                set.check().map_err(TestCaseError::fail)?;
                // Every held node is held with its latest measurement.
                for e in set.entries() {
                    prop_assert_eq!(e.rtt.micros(), latest.get(&e.id.as_u128()).copied());
                }
            }
        }
    }
}
