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
//!
//! # Randomized routing
//! PAST (SOSP 2001, section 2.3, security): "the choice among multiple nodes that make
//! progress is randomized ... so that repeated queries take different routes", and a node
//! that drops or corrupts the messages it should forward cannot block a client that tries
//! again. A message routed the first time takes the best hop above; a retry
//! ([`RoutingState::random_step`]) takes the best hop with a given chance, and otherwise a
//! node drawn uniformly among the other known nodes that make progress
//! ([`RoutingState::progress_hops`]): a longer prefix shared with the key, or the same prefix
//! and numerically closer (and, once the key is within the leaf set, numerically closer
//! always). Every hop still makes progress, so retried routes end too, a hop or two longer.

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

    /// The next hop for `key`, never one of `avoid` (a joining node is not routed to
    /// itself, a message not to a node found failed on its way).
    pub fn next_hop(&self, key: Id, avoid: &[Id]) -> Hop {
        self.step(key, avoid).0
    }

    /// The next hop for `key`, with the routing table slot it needed when that slot was
    /// empty (the key outside the leaf set and no entry for its next digit): a slot worth
    /// repairing.
    pub fn step(&self, key: Id, avoid: &[Id]) -> (Hop, Option<(usize, usize)>) {
        let own = self.own();
        let usable = |id: Id| !avoid.contains(&id);
        if self.leaf_set.covers(key) {
            let best = if avoid.iter().any(|&a| self.leaf_set.contains(a)) {
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

    /// The next hop for a retried message: the best hop ([`RoutingState::step`]) with
    /// chance `best_chance`, otherwise one drawn uniformly from the other
    /// [`RoutingState::progress_hops`] (the best hop when there is no other). `random` gives
    /// uniform random numbers (the node's seeded generator). Delivery here is never
    /// randomized away.
    pub fn random_step(
        &self,
        key: Id,
        avoid: &[Id],
        best_chance: f64,
        mut random: impl FnMut() -> u64,
    ) -> (Hop, Option<(usize, usize)>) {
        let (best, missing) = self.step(key, avoid);
        let Hop::Forward(best_id) = best else {
            return (best, missing);
        };
        if unit(random()) < best_chance {
            return (best, missing);
        }
        let others: Vec<Id> = self.progress_hops(key, avoid).into_iter().filter(|&id| id != best_id).collect();
        if others.is_empty() {
            return (best, missing);
        }
        let pick = others[(random() % others.len() as u64) as usize];
        (Hop::Forward(pick), missing)
    }

    /// Every known node (none of `avoid`) a message for `key` may go to next and make progress:
    /// it shares a longer prefix with the key than this node does, or the same prefix and is
    /// numerically closer. Once the key is within the leaf set range, only numerically closer
    /// nodes (with at least the same prefix) count, so the route keeps closing in. Sorted, no
    /// duplicates.
    pub fn progress_hops(&self, key: Id, avoid: &[Id]) -> Vec<Id> {
        let own = self.own();
        let base = self.table.base();
        let shared = base.shared_prefix(own, key);
        let own_distance = key.ring_distance(own);
        let covered = self.leaf_set.covers(key);
        let progress = |id: Id| {
            let prefix = base.shared_prefix(id, key);
            let closer = key.ring_distance(id) < own_distance;
            (closer && prefix >= shared) || (!covered && prefix > shared)
        };
        let mut hops: Vec<Id> = self.known().filter(|&id| id != own && !avoid.contains(&id) && progress(id)).collect();
        hops.sort_unstable();
        hops.dedup();
        hops
    }

    fn rare_case(&self, key: Id, shared: usize, avoid: &[Id]) -> Hop {
        let base = self.table.base();
        let own_distance = key.ring_distance(self.own());
        let mut best: Option<(usize, u128, Id)> = None;
        for id in self.known() {
            if avoid.contains(&id) {
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

/// A random number as a fraction in [0, 1).
fn unit(random: u64) -> f64 {
    (random >> 11) as f64 / (1u64 << 53) as f64
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
        assert_eq!(state.next_hop(id(110), &[]), Hop::Local);
        assert_eq!(state.next_hop(id(260), &[]), Hop::Forward(id(300)));
        assert_eq!(state.next_hop(id(260), &[id(300)]), Hop::Forward(id(200)));
        assert_eq!(state.next_hop(id(260), &[id(300), id(200)]), Hop::Local, "every node avoided but this one");
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
        assert_eq!(state.next_hop(key, &[]), Hop::Forward(t));
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

    /// Follows the route of `key` from node `start`, each hop chosen by `step` (given the
    /// node and its best hop), and checks that every hop lengthens the prefix shared with
    /// the key or gets numerically closer (a hop other than the best keeps the prefix at
    /// least), that the route never loops, and that it ends at the node closest to the key.
    fn walk(
        ids: &[Id],
        nodes: &[RoutingState],
        key: Id,
        start: usize,
        mut step: impl FnMut(&RoutingState, Hop) -> Hop,
    ) -> Result<(), TestCaseError> {
        let base = DigitBase::DEFAULT;
        let mut at = start;
        let mut path = vec![ids[at]];
        loop {
            let best = nodes[at].next_hop(key, &[]);
            let Hop::Forward(next) = step(&nodes[at], best) else {
                prop_assert_eq!(best, Hop::Local, "a route is delivered only where the best hop delivers");
                break;
            };
            let here = ids[at];
            let (mine, theirs) = (base.shared_prefix(here, key), base.shared_prefix(next, key));
            let closer = key.ring_distance(next) < key.ring_distance(here);
            prop_assert!(theirs > mine || closer, "hop {:?} -> {:?} made no progress", here, next);
            if best != Hop::Forward(next) {
                prop_assert!(theirs >= mine, "random hop {:?} -> {:?} shortened the prefix", here, next);
            }
            at = ids.binary_search(&next).unwrap();
            prop_assert!(!path.contains(&next), "route loops back to {:?}", next);
            path.push(next);
        }
        prop_assert_eq!(ids[at], key.closest(ids.iter().copied()).unwrap());
        Ok(())
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
            for (k, key) in keys.into_iter().enumerate() {
                walk(&ids, &nodes, id(key), k % ids.len(), |_, best| best)?;
            }
        }

        #[test]
        fn randomized_routes_progress_at_every_hop_and_end_at_closest_node(
            raw in prop::collection::btree_set(any::<u128>(), 1..200),
            keys in prop::collection::vec(any::<u128>(), 1..20),
            leaf_set_size in prop::sample::select(vec![2usize, 4, 8, 16]),
            sparse in 0usize..4,
            best_chance in prop::sample::select(vec![0.0, 0.5]),
            seed in any::<u64>(),
        ) {
            use rand_core::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let ids: Vec<Id> = raw.into_iter().map(id).collect();
            let nodes = network(&ids, leaf_set_size, sparse);
            for (k, key) in keys.into_iter().enumerate() {
                let key = id(key);
                walk(&ids, &nodes, key, k % ids.len(), |node, _| {
                    node.random_step(key, &[], best_chance, || rng.next_u64()).0
                })?;
            }
        }
    }

    #[test]
    fn a_retry_takes_another_hop_that_makes_progress() {
        let own = id(0x1000u128 << 112);
        let mut state = RoutingState::new(own, DigitBase::DEFAULT, 2, 32);
        let (after, before) = (id((0x1000u128 << 112) + 1), id((0x1000u128 << 112) - 1));
        state.leaf_set.insert(after);
        state.leaf_set.insert(before);
        // R[1][8] shares two digits with the key; the others share one, like us, and are
        // closer to it (the leaf `before` is farther: no progress).
        let (best, other, away) = (id(0x1800u128 << 112), id(0x1700u128 << 112), id(0x1200u128 << 112));
        for x in [best, other, away] {
            state.table.consider(x, Rtt::UNKNOWN);
        }
        let key = id(0x1810u128 << 112);
        assert_eq!(state.progress_hops(key, &[]), vec![after, away, other, best]);
        let mut counter = 0u64;
        let mut random = || {
            counter += 1;
            counter
        };
        assert_eq!(state.random_step(key, &[], 1.0, &mut random).0, Hop::Forward(best));
        let picks: Vec<Hop> = (0..4).map(|_| state.random_step(key, &[], 0.0, &mut random).0).collect();
        for x in [after, away, other] {
            assert!(picks.contains(&Hop::Forward(x)), "{x:?} never picked: {picks:?}");
        }
        assert!(!picks.contains(&Hop::Forward(best)), "{picks:?}");
    }
}
