//! A small membership filter over ids: "certainly not a member" in one word test.
//!
//! The leaf set and the neighborhood set are asked "is this node one of yours?" for nearly
//! every message, and usually the answer is no. Scanning them touches up to a kilobyte of
//! memory; this 256-bit filter, kept beside them, answers most of those questions without
//! touching the lists. It has no false negatives; false positives fall back to the scan.

use crate::id::Id;

/// A 256-bit filter of ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IdFilter([u64; 4]);

impl IdFilter {
    fn bit(id: Id) -> (usize, u64) {
        // Ids are uniformly random (SHA-1), so their low bits spread evenly.
        let low = id.as_u128() as u8;
        ((low >> 6) as usize, 1u64 << (low & 63))
    }

    /// A filter of exactly these ids.
    pub(crate) fn of(ids: impl IntoIterator<Item = Id>) -> Self {
        let mut filter = IdFilter::default();
        for id in ids {
            filter.add(id);
        }
        filter
    }

    /// Adds `id`.
    pub(crate) fn add(&mut self, id: Id) {
        let (word, mask) = Self::bit(id);
        self.0[word] |= mask;
    }

    /// False when `id` is certainly not among the ids.
    pub(crate) fn may_contain(self, id: Id) -> bool {
        let (word, mask) = Self::bit(id);
        self.0[word] & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn members_are_never_missed(ids in prop::collection::vec(any::<u128>(), 0..40), other in any::<u128>()) {
            let filter = IdFilter::of(ids.iter().map(|&x| Id::from_u128(x)));
            for &x in &ids {
                prop_assert!(filter.may_contain(Id::from_u128(x)));
            }
            if !filter.may_contain(Id::from_u128(other)) {
                prop_assert!(!ids.contains(&other));
            }
        }
    }
}
