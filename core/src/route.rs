//! The routing procedure: where a message for a key goes next.
//!
//! Pastry section 2.2, Table 1. Given a key D at node A:
//! 1. if D is within the range of A's leaf set, deliver to the numerically closest member
//!    of the leaf set, A included;
//! 2. otherwise, with l the length of the prefix A shares with D, forward to the routing
//!    table entry R[l][D_l] if it exists;
//! 3. otherwise (the rare case) forward to any known node T (leaf set, routing table,
//!    neighborhood set) that shares at least l digits with D and is numerically closer to D
//!    than A. We take the one with the longest shared prefix, then the closest.
//!
//! Each hop therefore lengthens the prefix shared with the key, or keeps it and gets
//! numerically closer, so a route ends in O(log_{2^b} N) hops.

use crate::id::{DigitBase, Id};
use crate::leaf_set::LeafSet;
use crate::neighborhood::NeighborhoodSet;
use crate::routing_table::RoutingTable;

/// Where a message goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// This node is the numerically closest it knows of: deliver here.
    Local,
    /// Forward to this node.
    Forward(Id),
}

/// The three tables a node routes with.
#[derive(Clone, Debug)]
pub struct RoutingState {
    /// The leaf set.
    pub leaf_set: LeafSet,
    /// The routing table.
    pub table: RoutingTable,
    /// The neighborhood set.
    pub neighborhood: NeighborhoodSet,
}

impl RoutingState {
    /// Empty tables for the node `own`.
    pub fn new(own: Id, base: DigitBase, leaf_set_size: usize, neighborhood_size: usize) -> Self {
        RoutingState {
            leaf_set: LeafSet::new(own, leaf_set_size),
            table: RoutingTable::new(own, base),
            neighborhood: NeighborhoodSet::new(own, neighborhood_size),
        }
    }

    /// The owner's id.
    pub fn own(&self) -> Id {
        self.leaf_set.own()
    }

    /// The next hop for `key`, never `avoid` (a joining node is not routed to itself).
    pub fn next_hop(&self, key: Id, avoid: Option<Id>) -> Hop {
        self.step(key, avoid).0
    }

    /// The next hop for `key`, with the routing table slot it needed when that slot was
    /// empty (the key outside the leaf set and no entry for its next digit): a slot worth
    /// repairing.
    pub fn step(&self, key: Id, avoid: Option<Id>) -> (Hop, Option<(usize, usize)>) {
        let own = self.own();
        let usable = |id: Id| Some(id) != avoid;
        if self.leaf_set.covers(key) {
            let best = if avoid.is_some_and(|a| self.leaf_set.contains(a)) {
                key.closest(self.leaf_set.ids().filter(|&id| usable(id)).chain([own])).unwrap_or(own)
            } else {
                self.leaf_set.closest(key)
            };
            return (if best == own { Hop::Local } else { Hop::Forward(best) }, None);
        }
        let base = self.table.base();
        let shared = base.shared_prefix(own, key);
        if shared >= base.rows() {
            return (Hop::Local, None);
        }
        let column = base.digit(key, shared) as usize;
        let missing = match self.table.get(shared, column) {
            Some(entry) if usable(entry.id) => return (Hop::Forward(entry.id), None),
            Some(_) => None,
            None => Some((shared, column)),
        };
        (self.rare_case(key, shared, avoid), missing)
    }

    fn rare_case(&self, key: Id, shared: usize, avoid: Option<Id>) -> Hop {
        let base = self.table.base();
        let own_distance = key.ring_distance(self.own());
        let mut best: Option<(usize, u128, Id)> = None;
        for id in self.known() {
            if Some(id) == avoid {
                continue;
            }
            let prefix = base.shared_prefix(id, key);
            let distance = key.ring_distance(id);
            if prefix < shared || distance >= own_distance {
                continue;
            }
            let better = best
                .is_none_or(|(p, d, b)| (prefix, core::cmp::Reverse((distance, id))) > (p, core::cmp::Reverse((d, b))));
            if better {
                best = Some((prefix, distance, id));
            }
        }
        best.map_or(Hop::Local, |(_, _, id)| Hop::Forward(id))
    }

    /// Every node in any of the three tables (a node may appear more than once).
    pub fn known(&self) -> impl Iterator<Item = Id> + '_ {
        self.leaf_set
            .ids()
            .chain(self.table.entries().map(|(_, _, e)| e.id))
            .chain(self.neighborhood.entries().iter().map(|e| e.id))
    }

    /// Whether `id` is in any of the three tables.
    pub fn knows(&self, id: Id) -> bool {
        self.leaf_set.contains(id) || self.table.contains(id) || self.neighborhood.contains(id)
    }

    /// Forgets `id` everywhere; returns the routing table slot it held, if any, and whether
    /// it was a leaf.
    pub fn remove(&mut self, id: Id) -> (Option<(usize, usize)>, bool) {
        let slot = self.table.remove(id);
        let leaf = self.leaf_set.remove(id);
        self.neighborhood.remove(id);
        (slot, leaf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Rtt;
    use proptest::prelude::*;

    fn id(x: u128) -> Id {
        Id::from_u128(x)
    }

    fn state_with(own: Id, ids: &[Id]) -> RoutingState {
        let mut state = RoutingState::new(own, DigitBase::DEFAULT, 16, 32);
        for &x in ids {
            state.leaf_set.insert(x);
            state.table.consider(x, Rtt::UNKNOWN);
        }
        state
    }

    #[test]
    fn small_network_delivers_to_closest() {
        let own = id(100);
        let state = state_with(own, &[id(200), id(300)]);
        assert_eq!(state.next_hop(id(110), None), Hop::Local);
        assert_eq!(state.next_hop(id(260), None), Hop::Forward(id(300)));
        assert_eq!(state.next_hop(id(260), Some(id(300))), Hop::Forward(id(200)));
    }

    #[test]
    fn rare_case_finds_a_numerically_closer_node() {
        let own = id(0x1000u128 << 112);
        let mut state = RoutingState::new(own, DigitBase::DEFAULT, 2, 32);
        // Leaf set: one close node on each side, so far keys are outside its range.
        state.leaf_set.insert(id((0x1000u128 << 112) + 1));
        state.leaf_set.insert(id((0x1000u128 << 112) - 1));
        // A node sharing the first digit "1" with key 0x18.. sits in row 1 column 7, not 8.
        let t = id(0x1700u128 << 112);
        state.table.consider(t, Rtt::UNKNOWN);
        let key = id(0x1800u128 << 112);
        assert_eq!(state.next_hop(key, None), Hop::Forward(t));
    }

    /// A network where every node knows exactly its correct leaf set and a routing table
    /// filled from the live ids, leaving out every `sparse`-th id (all of them for 1).
    fn network(ids: &[Id], leaf_set_size: usize, sparse: usize) -> Vec<RoutingState> {
        ids.iter()
            .map(|&own| {
                let mut state = RoutingState::new(own, DigitBase::DEFAULT, leaf_set_size, 32);
                for (i, &x) in ids.iter().enumerate() {
                    state.leaf_set.insert(x);
                    if sparse == 0 || i % sparse != 0 {
                        state.table.consider(x, Rtt::UNKNOWN);
                    }
                }
                state
            })
            .collect()
    }

    proptest! {
        #[test]
        fn routes_end_at_closest_node_and_always_progress(
            raw in prop::collection::btree_set(any::<u128>(), 1..200),
            keys in prop::collection::vec(any::<u128>(), 1..20),
            leaf_set_size in prop::sample::select(vec![2usize, 4, 8, 16]),
            sparse in 0usize..4,
        ) {
            let ids: Vec<Id> = raw.into_iter().map(id).collect();
            let nodes = network(&ids, leaf_set_size, sparse);
            let base = DigitBase::DEFAULT;
            for (k, key) in keys.into_iter().enumerate() {
                let key = id(key);
                let mut at = k % ids.len();
                let mut path = vec![ids[at]];
                loop {
                    match nodes[at].next_hop(key, None) {
                        Hop::Local => break,
                        Hop::Forward(next) => {
                            let here = ids[at];
                            let longer = base.shared_prefix(next, key) > base.shared_prefix(here, key);
                            let closer = key.ring_distance(next) < key.ring_distance(here);
                            prop_assert!(longer || closer, "hop {:?} -> {:?} made no progress", here, next);
                            at = ids.binary_search(&next).unwrap();
                            prop_assert!(!path.contains(&next), "route loops back to {:?}", next);
                            path.push(next);
                        }
                    }
                }
                prop_assert_eq!(ids[at], key.closest(ids.iter().copied()).unwrap());
            }
        }
    }
}
