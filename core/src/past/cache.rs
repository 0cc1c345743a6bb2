//! The cache of files routed through a node, with GreedyDual-Size replacement.
//!
//! PAST section 4.3: nodes cache files in the storage they do not use for replicas, and
//! "the GreedyDual-Size (GD-S) policy is used for replacement": each cached file d carries a
//! weight H(d) = L + c(d)/s(d), where s(d) is its size, c(d) a cost (here 1, which maximizes
//! the hit rate) and L an inflation value. The file with the smallest H is evicted, and L
//! becomes its H; a hit sets H(d) = L + c(d)/s(d) again. Small files and recently used files
//! stay. Cao & Irani, "Cost-aware WWW proxy caching algorithms", USITS 1997.
//!
//! This is a plain data structure: which files are cached and in what order they go. How
//! much space the cache may use (the node's unused space) is decided by the node.

use std::collections::{BTreeMap, BTreeSet};

use crate::past::file_id::FileId;

/// An H value with a total order (H is never negative or NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Weight(u64);

impl Weight {
    fn of(h: f64) -> Weight {
        // The IEEE bits of a non-negative double sort like the double.
        Weight(h.max(0.0).to_bits())
    }

    fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// GreedyDual-Size bookkeeping of cached files.
#[derive(Clone, Debug, Default)]
pub struct GreedyDualSize {
    inflation: f64,
    entries: BTreeMap<FileId, (Weight, u64)>,
    order: BTreeSet<(Weight, FileId)>,
    bytes: u64,
}

impl GreedyDualSize {
    /// An empty cache.
    pub fn new() -> Self {
        GreedyDualSize::default()
    }

    fn weight(&self, size: u64) -> Weight {
        Weight::of(self.inflation + 1.0 / size.max(1) as f64)
    }

    /// Adds a file (or refreshes it, as a hit).
    pub fn insert(&mut self, file: FileId, size: u64) {
        self.remove(&file);
        let weight = self.weight(size);
        self.entries.insert(file, (weight, size));
        self.order.insert((weight, file));
        self.bytes += size;
    }

    /// A hit: the file's weight is set afresh. Returns whether it is cached.
    pub fn touch(&mut self, file: &FileId) -> bool {
        match self.entries.get(file) {
            Some(&(_, size)) => {
                self.insert(*file, size);
                true
            }
            None => false,
        }
    }

    /// Forgets a file; returns its size if it was cached.
    pub fn remove(&mut self, file: &FileId) -> Option<u64> {
        let (weight, size) = self.entries.remove(file)?;
        self.order.remove(&(weight, *file));
        self.bytes -= size;
        Some(size)
    }

    /// Evicts the file of smallest weight, raising the inflation value to its weight.
    pub fn evict(&mut self) -> Option<(FileId, u64)> {
        let (weight, file) = self.order.pop_first()?;
        let (_, size) = self.entries.remove(&file)?;
        self.bytes -= size;
        self.inflation = self.inflation.max(weight.value());
        Some((file, size))
    }

    /// Whether a file is cached.
    pub fn contains(&self, file: &FileId) -> bool {
        self.entries.contains_key(file)
    }

    /// Bytes cached.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Files cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The inflation value L.
    pub fn inflation(&self) -> f64 {
        self.inflation
    }

    /// Checks the invariants: the order holds exactly the entries, every weight is at least
    /// L, and the byte count is the sum of the sizes.
    pub fn check(&self) -> Result<(), String> {
        if self.order.len() != self.entries.len() {
            return Err("order and entries differ in length".into());
        }
        let mut bytes = 0;
        for (file, &(weight, size)) in &self.entries {
            if !self.order.contains(&(weight, *file)) {
                return Err(format!("{file:?} missing from the order"));
            }
            if weight.value() < self.inflation {
                return Err(format!("{file:?} has weight {} below L = {}", weight.value(), self.inflation));
            }
            bytes += size;
        }
        if bytes != self.bytes {
            return Err(format!("byte count {} is not the sum {bytes}", self.bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(i: u8) -> FileId {
        FileId([i; 20])
    }

    #[test]
    fn small_and_recent_files_stay() {
        let mut cache = GreedyDualSize::new();
        cache.insert(file(1), 1000);
        cache.insert(file(2), 10);
        cache.insert(file(3), 1000);
        // The large files go first; of equal weight, the smaller fileId.
        assert_eq!(cache.evict(), Some((file(1), 1000)));
        cache.touch(&file(3));
        // A hit raises file 3 to L + 1/1000 = 0.002, still far below file 2's 0.1.
        assert_eq!(cache.evict(), Some((file(3), 1000)));
        assert_eq!(cache.evict(), Some((file(2), 10)));
        assert!(cache.is_empty() && cache.bytes() == 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u64),
        Touch(u8),
        Remove(u8),
        Evict,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..20, 0u64..100_000).prop_map(|(f, s)| Op::Insert(f, s)),
            (0u8..20).prop_map(Op::Touch),
            (0u8..20).prop_map(Op::Remove),
            Just(Op::Evict),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold(ops in prop::collection::vec(op(), 0..200)) {
            let mut cache = GreedyDualSize::new();
            let mut last_l = 0.0;
            for op in ops {
                match op {
                    Op::Insert(f, s) => cache.insert(file(f), s),
                    Op::Touch(f) => { cache.touch(&file(f)); }
                    Op::Remove(f) => { cache.remove(&file(f)); }
                    Op::Evict => {
                        let min = cache.order.first().map(|(w, _)| w.value());
                        if let Some((f, _)) = cache.evict() {
                            prop_assert!(!cache.contains(&f));
                            prop_assert_eq!(Some(cache.inflation()), min, "evicts the smallest weight and L becomes it");
                        }
                    }
                }
                prop_assert!(cache.inflation() >= last_l, "L never decreases");
                last_l = cache.inflation();
                cache.check().map_err(TestCaseError::fail)?;
            }
        }
    }
}
