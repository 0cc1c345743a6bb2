//! The routing table: for each prefix length, one node per next digit.
//!
//! Pastry section 2.1: the routing table R has ceil(128/b) rows of 2^b entries; "the 2^b - 1
//! entries at row n each refer to a node whose nodeId shares the present node's nodeId in the
//! first n digits, but whose n+1th digit has one of the 2^b - 1 possible values other than
//! the n+1th digit in the present node's id". Section 2.5: among the nodes that fit an entry,
//! the table keeps the one closest by the proximity metric.
//!
//! Rows are allocated when their first entry arrives: in a network of N nodes only about
//! log_{2^b} N rows are ever populated.

use serde::{Deserialize, Serialize};

use crate::id::{DigitBase, Id};
use crate::time::Rtt;

/// One routing table entry: a node and its measured round-trip time (sent as such in a
/// [`Message::RowReply`](crate::wire::Message::RowReply)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The node.
    pub id: Id,
    /// Its proximity, [`Rtt::UNKNOWN`] until measured.
    pub rtt: Rtt,
}

/// What [`RoutingTable::consider`] did with a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Considered {
    /// The slot was empty and now holds the candidate.
    Inserted,
    /// The candidate is closer than the previous holder, which was dropped.
    Replaced(Id),
    /// The candidate already held the slot; its round-trip time was updated.
    Updated,
    /// The slot keeps its closer holder (or the candidate is the owner).
    Rejected,
}

impl Considered {
    /// Whether the candidate now holds a slot.
    pub fn is_held(self) -> bool {
        !matches!(self, Considered::Rejected)
    }
}

/// A slot in compact form (24 bytes, no 16-byte alignment): the routing table is touched
/// on every message, so it is kept small and in one allocation.
#[derive(Clone, Copy, Debug)]
struct Slot {
    id: [u64; 2],
    rtt: Rtt,
    full: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot { id: [0; 2], rtt: Rtt::UNKNOWN, full: false }
    }
}

impl Slot {
    fn entry(self) -> Option<Entry> {
        self.full
            .then(|| Entry { id: Id::from_u128(u128::from(self.id[0]) << 64 | u128::from(self.id[1])), rtt: self.rtt })
    }

    fn holds(self, id: Id) -> bool {
        self.full && self.id == split(id)
    }

    fn set(&mut self, entry: Entry) {
        *self = Slot { id: split(entry.id), rtt: entry.rtt, full: true };
    }
}

fn split(id: Id) -> [u64; 2] {
    let raw = id.as_u128();
    [(raw >> 64) as u64, raw as u64]
}

/// The routing table of one node.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own: Id,
    base: DigitBase,
    /// Rows one after the other, `base.columns()` slots each.
    slots: Vec<Slot>,
    len: usize,
}

impl RoutingTable {
    /// An empty table for the node `own`.
    pub fn new(own: Id, base: DigitBase) -> Self {
        RoutingTable { own, base, slots: Vec::new(), len: 0 }
    }

    /// The owner's id.
    pub fn own(&self) -> Id {
        self.own
    }

    /// The digit base.
    pub fn base(&self) -> DigitBase {
        self.base
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of rows allocated (rows beyond hold nothing).
    pub fn row_count(&self) -> usize {
        self.slots.len() / self.base.columns()
    }

    /// The slot `(row, column)` where `id` belongs, `None` for the owner.
    pub fn slot_of(&self, id: Id) -> Option<(usize, usize)> {
        self.base.slot(self.own, id)
    }

    fn slot(&self, row: usize, column: usize) -> Option<Slot> {
        let columns = self.base.columns();
        if column >= columns {
            return None;
        }
        self.slots.get(row * columns + column).copied()
    }

    /// The entry at `(row, column)`.
    pub fn get(&self, row: usize, column: usize) -> Option<Entry> {
        self.slot(row, column).and_then(Slot::entry)
    }

    /// The entries of a row, with their columns.
    pub fn row(&self, row: usize) -> impl Iterator<Item = (usize, Entry)> + '_ {
        let columns = self.base.columns();
        let slots = self.slots.get(row * columns..(row + 1) * columns).unwrap_or(&[]);
        slots.iter().enumerate().filter_map(|(c, s)| s.entry().map(|e| (c, e)))
    }

    /// Every entry with its slot, row by row.
    pub fn entries(&self) -> impl Iterator<Item = (usize, usize, Entry)> + '_ {
        let columns = self.base.columns();
        self.slots.iter().enumerate().filter_map(move |(i, s)| s.entry().map(|e| (i / columns, i % columns, e)))
    }

    /// Whether `id` holds its slot.
    pub fn contains(&self, id: Id) -> bool {
        self.slot_of(id).and_then(|(r, c)| self.slot(r, c)).is_some_and(|s| s.holds(id))
    }

    /// The measured round-trip time of `id`, if it holds its slot.
    pub fn rtt_of(&self, id: Id) -> Option<Rtt> {
        self.slot_of(id).and_then(|(r, c)| self.slot(r, c)).filter(|s| s.holds(id)).map(|s| s.rtt)
    }

    /// Offers `id`, at proximity `rtt`, for its slot: it takes an empty slot, and replaces
    /// the holder only when measured closer.
    pub fn consider(&mut self, id: Id, rtt: Rtt) -> Considered {
        let Some((row, column)) = self.slot_of(id) else {
            return Considered::Rejected;
        };
        let columns = self.base.columns();
        if self.slots.len() <= row * columns {
            // Exactly the rows needed: doubling would hold 8 rows for the usual 5.
            self.slots.reserve_exact((row + 1) * columns - self.slots.len());
            self.slots.resize((row + 1) * columns, Slot::default());
        }
        let slot = &mut self.slots[row * columns + column];
        if !slot.full {
            slot.set(Entry { id, rtt });
            self.len += 1;
            Considered::Inserted
        } else if slot.holds(id) {
            if rtt.is_known() {
                slot.rtt = rtt;
            }
            Considered::Updated
        } else if rtt < slot.rtt {
            let old = slot.entry().map_or(id, |e| e.id);
            slot.set(Entry { id, rtt });
            Considered::Replaced(old)
        } else {
            Considered::Rejected
        }
    }

    /// Removes `id`; returns the slot it held.
    pub fn remove(&mut self, id: Id) -> Option<(usize, usize)> {
        let (row, column) = self.slot_of(id)?;
        let columns = self.base.columns();
        let slot = self.slots.get_mut(row * columns + column)?;
        if slot.holds(id) {
            *slot = Slot::default();
            self.len -= 1;
            Some((row, column))
        } else {
            None
        }
    }

    /// Checks that every entry sits in its own slot and that the count is right.
    pub fn check(&self) -> Result<(), String> {
        let mut count = 0;
        for (row, column, entry) in self.entries() {
            count += 1;
            if self.slot_of(entry.id) != Some((row, column)) {
                return Err(format!("{:?} sits in ({row}, {column}) but belongs elsewhere", entry.id));
            }
        }
        if count != self.len {
            return Err(format!("len says {} but the table holds {count}", self.len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(x: u128) -> Id {
        Id::from_u128(x)
    }

    #[test]
    fn entries_go_to_prefix_row_and_digit_column() {
        let own = id(0x1234u128 << 112);
        let mut table = RoutingTable::new(own, DigitBase::DEFAULT);
        assert_eq!(table.consider(id(0x5000u128 << 112), Rtt::UNKNOWN), Considered::Inserted);
        assert_eq!(table.consider(id(0x1290u128 << 112), Rtt::UNKNOWN), Considered::Inserted);
        assert_eq!(table.get(0, 5).map(|e| e.id), Some(id(0x5000u128 << 112)));
        assert_eq!(table.get(2, 9).map(|e| e.id), Some(id(0x1290u128 << 112)));
        assert_eq!(table.consider(own, Rtt::from_micros(1)), Considered::Rejected);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn proximity_decides_between_candidates() {
        let own = id(0);
        let mut table = RoutingTable::new(own, DigitBase::DEFAULT);
        let (a, b, c) = (id(0xa1u128 << 120), id(0xa2u128 << 120), id(0xa3u128 << 120));
        table.consider(a, Rtt::UNKNOWN);
        assert_eq!(table.consider(b, Rtt::UNKNOWN), Considered::Rejected);
        assert_eq!(table.consider(b, Rtt::from_micros(900)), Considered::Replaced(a));
        assert_eq!(table.consider(c, Rtt::from_micros(950)), Considered::Rejected);
        assert_eq!(table.consider(c, Rtt::from_micros(100)), Considered::Replaced(b));
        assert_eq!(table.consider(c, Rtt::from_micros(120)), Considered::Updated);
        assert_eq!(table.get(0, 0xa), Some(Entry { id: c, rtt: Rtt::from_micros(120) }));
        assert_eq!(table.remove(c), Some((0, 0xa)));
        assert!(table.is_empty());
    }

    proptest! {
        #[test]
        fn entries_always_sit_in_their_slot(
            own in any::<u128>(),
            bits in 1u8..=8,
            ops in prop::collection::vec((any::<u128>(), prop::option::of(0u32..1000), any::<bool>()), 0..200),
        ) {
            let base = DigitBase::new(bits).unwrap();
            let own = id(own);
            let mut table = RoutingTable::new(own, base);
            for (raw, rtt, remove) in ops {
                // Cluster ids near the owner sometimes so deep rows get exercised.
                let candidate = id(if raw % 3 == 0 { own.as_u128() ^ (raw >> (raw % 120)) } else { raw });
                if remove {
                    table.remove(candidate);
                    prop_assert!(!table.contains(candidate));
                } else {
                    let rtt = rtt.map_or(Rtt::UNKNOWN, Rtt::from_micros);
                    let before = table.slot_of(candidate).and_then(|(r, c)| table.get(r, c));
                    let outcome = table.consider(candidate, rtt);
                    if let (Some(old), Considered::Replaced(_)) = (before, outcome) {
                        prop_assert!(rtt < old.rtt);
                    }
                }
                table.check().map_err(TestCaseError::fail)?;
                for (row, column, entry) in table.entries() {
                    prop_assert_eq!(base.shared_prefix(own, entry.id), row);
                    prop_assert_eq!(base.digit(entry.id, row) as usize, column);
                }
            }
        }
    }
}
