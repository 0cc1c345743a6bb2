//! The leaf set: the nodes numerically closest to a node, half on each side.
//!
//! Pastry section 2.1: "The leaf set L is the set of nodes with the |L|/2 numerically
//! closest larger nodeIds, and the |L|/2 nodes with numerically closest smaller nodeIds,
//! relative to the present node's nodeId." Ids wrap around, so "larger" means clockwise on
//! the ring and "smaller" counter-clockwise. In a network of at most |L|/2 other nodes every
//! node is in both halves; the halves then cover the whole ring.
//!
//! Invariants (checked by [`LeafSet::check`] in tests): each half is sorted by distance from
//! the owner, nearest first, holds no duplicates, never holds the owner, and holds exactly the
//! `half` nearest ids on its side of all ids inserted and not removed.

use serde::{Deserialize, Serialize};

use crate::filter::IdFilter;
use crate::id::Id;

/// One side of the leaf set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// Larger ids, clockwise from the owner.
    Clockwise,
    /// Smaller ids, counter-clockwise from the owner.
    CounterClockwise,
}

/// The leaf set of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSet {
    own: Id,
    half: usize,
    clockwise: Vec<Id>,
    counter_clockwise: Vec<Id>,
    /// Kept beside the lists so that the common "not a leaf" answers touch no list:
    /// which ids are in, and how far each half reaches (`u128::MAX` while it has room).
    filter: IdFilter,
    reach: [u128; 2],
}

impl LeafSet {
    /// An empty leaf set of `size` (= l) entries for the node `own`; `size` is rounded up to
    /// an even number.
    pub fn new(own: Id, size: usize) -> Self {
        let half = size.div_ceil(2).max(1);
        LeafSet {
            own,
            half,
            clockwise: Vec::with_capacity(half),
            counter_clockwise: Vec::with_capacity(half),
            filter: IdFilter::default(),
            reach: [u128::MAX; 2],
        }
    }

    /// The leaf set `own` has when the live nodes are exactly `ids` (which may include `own`):
    /// the same as inserting them one by one into an empty set (whose halves hold the same
    /// ids until both are full), built by one sort instead.
    pub fn from_ids<I: IntoIterator<Item = Id>>(own: Id, size: usize, ids: I) -> Self {
        let mut set = LeafSet::new(own, size);
        // Clockwise distances, nearest first; the reverse is nearest counter-clockwise first.
        let mut all: Vec<u128> = ids.into_iter().filter(|&id| id != own).map(|id| own.clockwise_to(id)).collect();
        all.sort_unstable();
        all.dedup();
        let id_at = |distance: &u128| Id::from_u128(own.as_u128().wrapping_add(*distance));
        set.clockwise.extend(all.iter().take(set.half).map(id_at));
        set.counter_clockwise.extend(all.iter().rev().take(set.half).map(id_at));
        set.reindex();
        set
    }

    /// The owner's id.
    pub fn own(&self) -> Id {
        self.own
    }

    /// l/2, the capacity of each half.
    pub fn half(&self) -> usize {
        self.half
    }

    /// The ids on one side, nearest first.
    pub fn side(&self, side: Side) -> &[Id] {
        match side {
            Side::Clockwise => &self.clockwise,
            Side::CounterClockwise => &self.counter_clockwise,
        }
    }

    /// Every distinct id in the leaf set, counter-clockwise half first (farthest to
    /// nearest), then the clockwise half (nearest to farthest): ring order.
    pub fn ids(&self) -> impl Iterator<Item = Id> + '_ {
        // The halves share ids only when the clockwise one reaches as far as the farthest
        // counter-clockwise leaf (a network of at most l other nodes); otherwise nothing of
        // one half is looked for in the other.
        let own = self.own;
        let overlap = match (self.clockwise.last(), self.counter_clockwise.last()) {
            (Some(&cw), Some(&ccw)) => own.clockwise_to(cw) >= own.clockwise_to(ccw),
            _ => false,
        };
        let ccw = self.counter_clockwise.iter().rev().copied();
        let cw = self.clockwise.iter().copied().filter(move |id| !overlap || !self.counter_clockwise.contains(id));
        ccw.chain(cw)
    }

    /// Number of distinct ids.
    pub fn len(&self) -> usize {
        self.ids().count()
    }

    /// Whether the leaf set is empty (the node knows nobody).
    pub fn is_empty(&self) -> bool {
        self.clockwise.is_empty()
    }

    /// Whether `id` is in the leaf set.
    pub fn contains(&self, id: Id) -> bool {
        self.filter.may_contain(id) && (self.clockwise.contains(&id) || self.counter_clockwise.contains(&id))
    }

    fn reindex(&mut self) {
        self.filter = IdFilter::of(self.clockwise.iter().chain(&self.counter_clockwise).copied());
        let own = self.own;
        let reach = |list: &[Id], distance: &dyn Fn(Id) -> u128| match list.last() {
            Some(&far) if list.len() >= self.half => distance(far),
            _ => u128::MAX,
        };
        self.reach = [
            reach(&self.clockwise, &|x| own.clockwise_to(x)),
            reach(&self.counter_clockwise, &|x| x.clockwise_to(own)),
        ];
    }

    /// Adds `id` where it belongs; returns whether the leaf set changed. An id pushed out of a
    /// full half is dropped.
    ///
    /// Once the network is larger than the leaf set, a half that is short (its members
    /// failed) is not extended beyond its farthest member: the ids between that member and
    /// `id` are unknown, and a leaf set with a hole would deliver keys in the hole to the
    /// wrong node. Ids whose neighborhood is known extend it through
    /// [`LeafSet::insert_contiguous`].
    pub fn insert(&mut self, id: Id) -> bool {
        self.insert_with(id, false)
    }

    /// Adds `id`, which comes from the leaf set of one of our leaves (or of the node that
    /// answered our join): that leaf set holds every node around its owner, so it may extend
    /// a short half without leaving a hole.
    pub fn insert_contiguous(&mut self, id: Id) -> bool {
        self.insert_with(id, true)
    }

    fn insert_with(&mut self, id: Id, contiguous: bool) -> bool {
        let own = self.own;
        // A half takes `id` only if it is no farther than the half's farthest leaf, or the
        // half has room: the cheap test that turns away most ids, side by side.
        let reach = [own.clockwise_to(id) <= self.reach[0], id.clockwise_to(own) <= self.reach[1]];
        if id == own || reach == [false, false] {
            return false;
        }
        // Only a half with room looks at `extend` (for an id beyond its farthest leaf).
        let room = self.clockwise.len() < self.half || self.counter_clockwise.len() < self.half;
        let extend = contiguous || (room && self.covers_ring());
        let cw = reach[0] && insert_sorted(&mut self.clockwise, self.half, id, extend, |x| own.clockwise_to(x));
        let ccw =
            reach[1] && insert_sorted(&mut self.counter_clockwise, self.half, id, extend, |x| x.clockwise_to(own));
        if cw || ccw {
            self.reindex();
        }
        cw || ccw
    }

    /// Removes `id`; returns whether it was there.
    pub fn remove(&mut self, id: Id) -> bool {
        if !self.contains(id) {
            return false;
        }
        let before = self.clockwise.len() + self.counter_clockwise.len();
        self.clockwise.retain(|&x| x != id);
        self.counter_clockwise.retain(|&x| x != id);
        self.reindex();
        before != self.clockwise.len() + self.counter_clockwise.len()
    }

    /// Whether the two halves together span the whole ring: true when they overlap (the
    /// network has at most l other nodes, all known) or when the node knows nobody. A half
    /// that is short because its members failed does not make the leaf set span the ring.
    pub fn covers_ring(&self) -> bool {
        (self.clockwise.is_empty() && self.counter_clockwise.is_empty())
            || self.counter_clockwise.last().is_some_and(|ccw| self.clockwise.contains(ccw))
    }

    /// Whether `key` lies within the range of the leaf set (between its farthest members on
    /// either side, through the owner), where the closest leaf is the closest node.
    pub fn covers(&self, key: Id) -> bool {
        // When the halves overlap, their two arcs cover the ring between them. A full half's
        // reach is kept beside the lists, so routing a key that is not a leaf's touches
        // neither list.
        let own = self.own;
        let (cw, ccw) = (own.clockwise_to(key), key.clockwise_to(own));
        let in_cw = match self.reach[0] {
            u128::MAX => self.clockwise.last().is_some_and(|&far| cw <= own.clockwise_to(far)),
            reach => cw <= reach,
        };
        let in_ccw = match self.reach[1] {
            u128::MAX => self.counter_clockwise.last().is_some_and(|&far| ccw <= far.clockwise_to(own)),
            reach => ccw <= reach,
        };
        in_cw || in_ccw || key == self.own || (self.clockwise.is_empty() && self.counter_clockwise.is_empty())
    }

    /// The id numerically closest to `key` among the owner and its leaves.
    pub fn closest(&self, key: Id) -> Id {
        let mut best = self.own;
        for &id in self.clockwise.iter().chain(&self.counter_clockwise) {
            if key.prefers(id, best) {
                best = id;
            }
        }
        best
    }

    /// The farthest leaf on a side.
    pub fn farthest(&self, side: Side) -> Option<Id> {
        self.side(side).last().copied()
    }

    /// Which side `id` is on, if it is a leaf (clockwise when on both).
    pub fn side_of(&self, id: Id) -> Option<Side> {
        if self.clockwise.contains(&id) {
            Some(Side::Clockwise)
        } else if self.counter_clockwise.contains(&id) {
            Some(Side::CounterClockwise)
        } else {
            None
        }
    }

    /// Checks the invariants; returns a description of the first one broken.
    pub fn check(&self) -> Result<(), String> {
        let own = self.own;
        check_half(&self.clockwise, self.half, own, |x| own.clockwise_to(x))?;
        check_half(&self.counter_clockwise, self.half, own, |x| x.clockwise_to(own))
    }
}

fn insert_sorted(list: &mut Vec<Id>, capacity: usize, id: Id, extend: bool, distance: impl Fn(Id) -> u128) -> bool {
    let d = distance(id);
    let position = list.partition_point(|&x| distance(x) < d);
    if position >= capacity || list.get(position) == Some(&id) || (position == list.len() && !extend) {
        return false;
    }
    list.insert(position, id);
    list.truncate(capacity);
    true
}

fn check_half(list: &[Id], capacity: usize, own: Id, distance: impl Fn(Id) -> u128) -> Result<(), String> {
    if list.len() > capacity {
        return Err(format!("half holds {} ids, more than {capacity}", list.len()));
    }
    if list.contains(&own) {
        return Err("the owner is in its own leaf set".into());
    }
    if list.windows(2).any(|w| distance(w[0]) >= distance(w[1])) {
        return Err("half not strictly sorted by distance (or duplicate)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(x: u128) -> Id {
        Id::from_u128(x)
    }

    #[test]
    fn halves_hold_nearest_on_each_side() {
        let mut set = LeafSet::new(id(100), 4);
        for x in [90, 95, 105, 110, 120, 80, 99, 101] {
            set.insert(id(x));
        }
        assert_eq!(set.side(Side::Clockwise), &[id(101), id(105)]);
        assert_eq!(set.side(Side::CounterClockwise), &[id(99), id(95)]);
        assert!(set.covers(id(104)) && set.covers(id(96)));
        assert!(!set.covers(id(106)) && !set.covers(id(94)));
        assert_eq!(set.closest(id(104)), id(105));
        assert_eq!(set.closest(id(100)), id(100));
    }

    #[test]
    fn small_ring_covers_everything_and_wraps() {
        let mut set = LeafSet::new(id(5), 16);
        set.insert(id(u128::MAX - 1));
        set.insert(id(1000));
        assert!(set.covers_ring());
        assert_eq!(set.side(Side::CounterClockwise)[0], id(u128::MAX - 1));
        assert_eq!(set.len(), 2);
        assert_eq!(set.closest(id(3)), id(5));
        assert_eq!(set.closest(id(0)), id(u128::MAX - 1));
        assert_eq!(set.closest(id(u128::MAX)), id(u128::MAX - 1));
    }

    #[test]
    fn owner_and_duplicates_are_refused() {
        let mut set = LeafSet::new(id(7), 8);
        assert!(!set.insert(id(7)));
        assert!(set.insert(id(9)));
        assert!(!set.insert(id(9)));
        assert!(set.remove(id(9)));
        assert!(!set.remove(id(9)));
        assert!(set.is_empty());
    }

    fn expected_half(own: Id, ids: &[Id], half: usize, distance: impl Fn(Id) -> u128) -> Vec<Id> {
        let mut others: Vec<Id> = ids.iter().copied().filter(|&x| x != own).collect();
        others.sort_by_key(|&x| distance(x));
        others.dedup();
        others.truncate(half);
        others
    }

    /// Every distinct leaf in ring order, the plain way: the counter-clockwise half from its
    /// far end, then each clockwise leaf not seen yet.
    fn distinct_ids(set: &LeafSet) -> Vec<Id> {
        let ccw = set.side(Side::CounterClockwise);
        let mut ids: Vec<Id> = ccw.iter().rev().copied().collect();
        ids.extend(set.side(Side::Clockwise).iter().filter(|x| !ccw.contains(x)));
        ids
    }

    proptest! {
        #[test]
        fn insertion_order_does_not_matter(own in any::<u128>(), raw in prop::collection::vec(any::<u128>(), 0..60), size in 2usize..34) {
            let own = id(own);
            let ids: Vec<Id> = raw.into_iter().map(id).collect();
            let set = LeafSet::from_ids(own, size, ids.iter().copied());
            set.check().map_err(TestCaseError::fail)?;
            let mut inserted = LeafSet::new(own, size);
            for &x in &ids {
                inserted.insert(x);
            }
            prop_assert_eq!(&inserted, &set, "one by one as at once");
            prop_assert_eq!(set.ids().collect::<Vec<Id>>(), distinct_ids(&set));
            let half = size.div_ceil(2);
            prop_assert_eq!(set.side(Side::Clockwise), &expected_half(own, &ids, half, |x| own.clockwise_to(x))[..]);
            prop_assert_eq!(set.side(Side::CounterClockwise), &expected_half(own, &ids, half, |x| x.clockwise_to(own))[..]);
        }

        #[test]
        fn closest_leaf_is_closest_node_for_covered_keys(own in any::<u128>(), raw in prop::collection::vec(any::<u128>(), 1..60), key in any::<u128>()) {
            let own = id(own);
            let ids: Vec<Id> = raw.into_iter().map(id).collect();
            let set = LeafSet::from_ids(own, 16, ids.iter().copied());
            let key = id(key);
            if set.covers(key) {
                let best = key.closest(ids.iter().copied().chain([own])).unwrap();
                prop_assert_eq!(set.closest(key), best);
            }
        }

        #[test]
        fn removal_keeps_invariants(own in any::<u128>(), raw in prop::collection::vec(any::<u128>(), 0..40), remove in prop::collection::vec(any::<prop::sample::Index>(), 0..20)) {
            let own = id(own);
            let ids: Vec<Id> = raw.into_iter().map(id).collect();
            let mut set = LeafSet::from_ids(own, 8, ids.iter().copied());
            for index in remove {
                if ids.is_empty() { break; }
                let victim = ids[index.index(ids.len())];
                set.remove(victim);
                prop_assert!(!set.contains(victim));
                set.check().map_err(TestCaseError::fail)?;
                prop_assert_eq!(set.ids().collect::<Vec<Id>>(), distinct_ids(&set));
            }
        }
    }
}
