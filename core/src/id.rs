//! Identifiers on the Pastry ring and the digit arithmetic of prefix routing.
//!
//! Pastry (Rowstron & Druschel, 2001, section 2) places nodes and keys on a circular
//! 128-bit identifier space. Ids are read as a sequence of digits of `b` bits, most
//! significant first; routing resolves one more digit of the key per hop, and "numerically
//! closest" means closest on the ring, where the largest id is next to the smallest.

use core::fmt;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// A 128-bit position on the Pastry ring: a nodeId or a routing key.
///
/// A node's id is derived from its public key ([`Id::from_public_key`]) so that nobody can
/// choose where on the ring they sit, and any peer can check a claimed id.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id(u128);

impl Id {
    /// The smallest id.
    pub const ZERO: Id = Id(0);
    /// The largest id.
    pub const MAX: Id = Id(u128::MAX);

    /// Wraps a raw 128-bit value.
    pub const fn from_u128(value: u128) -> Self {
        Id(value)
    }

    /// The raw 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// Reads an id from 16 big-endian bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Id(u128::from_be_bytes(bytes))
    }

    /// The id as 16 big-endian bytes.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The nodeId of the node holding this Ed25519 public key: the first 16 bytes of
    /// SHA-1(public key).
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let digest = Sha1::digest(public_key);
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Id::from_bytes(bytes)
    }

    /// Distance walking clockwise (towards larger ids, wrapping) from `self` to `to`.
    pub const fn clockwise_to(self, to: Id) -> u128 {
        to.0.wrapping_sub(self.0)
    }

    /// Distance on the ring: the shorter of the two ways round.
    pub const fn ring_distance(self, other: Id) -> u128 {
        let cw = self.clockwise_to(other);
        let ccw = other.clockwise_to(self);
        if cw < ccw { cw } else { ccw }
    }

    /// Whether `a` is numerically closer to `self` than `b` is, with a total order: on equal
    /// ring distance the smaller id counts as closer. Every node therefore agrees on which
    /// node is "the numerically closest" to a key.
    pub fn prefers(self, a: Id, b: Id) -> bool {
        (self.ring_distance(a), a) < (self.ring_distance(b), b)
    }

    /// The id of this set closest to `self` under [`Id::prefers`], if any.
    pub fn closest<I: IntoIterator<Item = Id>>(self, ids: I) -> Option<Id> {
        ids.into_iter().reduce(|best, id| if self.prefers(id, best) { id } else { best })
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for Id {
    /// The first 8 hex digits: enough to tell nodes apart in logs and on the page.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0 >> 96)
    }
}

/// The digit size `b` of a Pastry network: ids are read as digits of `b` bits.
///
/// `b` is in `1..=8`; the default is 4 (hexadecimal digits). When `b` does not divide 128
/// the last digit is shorter. A routing table has [`DigitBase::rows`] rows of
/// [`DigitBase::columns`] entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigitBase(u8);

/// `b` outside `1..=8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("digit size b = {0} is not supported: it must be between 1 and 8 bits")]
pub struct InvalidDigitBase(pub u8);

impl DigitBase {
    /// Hexadecimal digits, as in the Pastry paper's experiments.
    pub const DEFAULT: DigitBase = DigitBase(4);

    /// A digit size of `bits` bits.
    pub const fn new(bits: u8) -> Result<Self, InvalidDigitBase> {
        if bits >= 1 && bits <= 8 { Ok(DigitBase(bits)) } else { Err(InvalidDigitBase(bits)) }
    }

    /// `b`, the number of bits per digit.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Number of digits in an id, ceil(128 / b): the number of routing table rows.
    pub const fn rows(self) -> usize {
        self.per_digit(128 + self.0 as usize - 1)
    }

    /// `bits / b`: a shift when `b` is a power of two, as it nearly always is. Routing
    /// asks for a slot several times per message, and divisions in a row are slow.
    const fn per_digit(self, bits: usize) -> usize {
        let b = self.0 as usize;
        if b.is_power_of_two() { bits >> b.trailing_zeros() } else { bits / b }
    }

    /// Number of values a digit takes, 2^b: the number of routing table columns.
    pub const fn columns(self) -> usize {
        1 << self.0
    }

    /// Digit `index` (0 = most significant) of `id`.
    pub const fn digit(self, id: Id, index: usize) -> u8 {
        let b = self.0 as usize;
        let start = index * b;
        if start >= 128 {
            return 0;
        }
        let width = if start + b > 128 { 128 - start } else { b };
        // The digit's bits to the top, then down: two shifts and no mask, of the high half
        // alone when the digit lies in it (the rows a routing table fills).
        if start + width <= 64 {
            (((id.0 >> 64) as u64) << start >> (64 - width)) as u8
        } else {
            ((id.0 << start) >> (128 - width)) as u8
        }
    }

    /// Number of leading digits `a` and `b` share.
    pub const fn shared_prefix(self, a: Id, b: Id) -> usize {
        let bits = (a.0 ^ b.0).leading_zeros() as usize;
        if bits == 128 { self.rows() } else { self.per_digit(bits) }
    }

    /// The routing table slot `(row, column)` that `other` takes in the table of `own`,
    /// or `None` when they are the same id.
    pub const fn slot(self, own: Id, other: Id) -> Option<(usize, usize)> {
        let differ = own.0 ^ other.0;
        if differ == 0 {
            return None;
        }
        // Distinct ids share fewer than 128 bits, so the row is below `rows()`.
        let row = self.per_digit(differ.leading_zeros() as usize);
        Some((row, self.digit(other, row) as usize))
    }

    /// An id sharing the first `row` digits with `own`, having `column` as digit `row`, and
    /// the rest of its bits from `rest`: a key that routes towards slot `(row, column)`.
    pub const fn key_in_slot(self, own: Id, row: usize, column: u8, rest: u128) -> Id {
        let b = self.0 as usize;
        let start = row * b;
        let width = if start + b > 128 { 128 - start } else { b };
        let tail_bits = 128 - start - width;
        let prefix = if start == 0 { 0 } else { own.0 >> (128 - start) << (128 - start) };
        let digit = (column as u128 & ((1u128 << width) - 1)) << tail_bits;
        let tail = if tail_bits == 0 { 0 } else { rest & ((1u128 << tail_bits) - 1) };
        Id(prefix | digit | tail)
    }
}

impl Default for DigitBase {
    fn default() -> Self {
        DigitBase::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_of_hex_ids() {
        let base = DigitBase::DEFAULT;
        let id = Id::from_u128(0x0123_4567_89ab_cdef_0000_0000_0000_00ffu128);
        assert_eq!(base.digit(id, 0), 0x0);
        assert_eq!(base.digit(id, 1), 0x1);
        assert_eq!(base.digit(id, 15), 0xf);
        assert_eq!(base.digit(id, 31), 0xf);
        assert_eq!(base.rows(), 32);
        assert_eq!(base.columns(), 16);
    }

    #[test]
    fn digits_when_b_does_not_divide_128() {
        let base = DigitBase::new(3).unwrap();
        assert_eq!(base.rows(), 43);
        let id = Id::MAX;
        assert_eq!(base.digit(id, 0), 0b111);
        // The last digit holds the remaining 2 bits.
        assert_eq!(base.digit(id, 42), 0b11);
        assert_eq!(base.digit(Id::from_u128(1), 42), 0b01);
    }

    #[test]
    fn invalid_bases_are_refused() {
        assert_eq!(DigitBase::new(0), Err(InvalidDigitBase(0)));
        assert_eq!(DigitBase::new(9), Err(InvalidDigitBase(9)));
        assert!(DigitBase::new(1).is_ok() && DigitBase::new(8).is_ok());
    }

    #[test]
    fn shared_prefix_counts_whole_digits() {
        let base = DigitBase::DEFAULT;
        let a = Id::from_u128(0xabcd << 112);
        let b = Id::from_u128(0xabce << 112);
        assert_eq!(base.shared_prefix(a, b), 3);
        assert_eq!(base.shared_prefix(a, a), 32);
        assert_eq!(base.slot(a, b), Some((3, 0xe)));
        assert_eq!(base.slot(a, a), None);
    }

    proptest::proptest! {
        #[test]
        fn slot_is_the_shared_prefix_and_the_next_digit(bits in 1u8..=8, a: u128, b: u128, shared in 0u32..=128) {
            let base = DigitBase::new(bits).unwrap();
            // `b` shares at least `shared` leading bits with `a`.
            let mask = u128::MAX.checked_shr(shared).unwrap_or(0);
            let (a, b) = (Id::from_u128(a), Id::from_u128(a & !mask | b & mask));
            let row = base.shared_prefix(a, b);
            // Digit `row` of `b`, its bits shifted down and masked.
            let digit = |row: usize| {
                let start = row * usize::from(bits);
                let width = usize::from(bits).min(128 - start);
                (b.as_u128() >> (128 - start - width) & ((1u128 << width) - 1)) as usize
            };
            let expected = (row < base.rows()).then(|| (row, digit(row)));
            proptest::prop_assert_eq!(base.slot(a, b), expected);
            proptest::prop_assert!(expected.is_none_or(|(_, column)| column < base.columns()));
        }
    }

    #[test]
    fn ring_distance_wraps_around() {
        let low = Id::from_u128(5);
        let high = Id::from_u128(u128::MAX - 4);
        assert_eq!(low.ring_distance(high), 10);
        assert_eq!(high.clockwise_to(low), 10);
        assert_eq!(low.clockwise_to(high), u128::MAX - 9);
    }

    #[test]
    fn ties_go_to_the_smaller_id() {
        let key = Id::from_u128(10);
        let (a, b) = (Id::from_u128(8), Id::from_u128(12));
        assert!(key.prefers(a, b));
        assert!(!key.prefers(b, a));
        assert_eq!(key.closest([b, a]), Some(a));
    }

    #[test]
    fn key_in_slot_lands_in_that_slot() {
        let base = DigitBase::DEFAULT;
        let own = Id::from_u128(0x1234_5678u128 << 96);
        for row in [0usize, 1, 5, 31] {
            for column in 0..16u8 {
                let key = base.key_in_slot(own, row, column, 0x5555_5555);
                if base.digit(own, row) == column {
                    continue;
                }
                assert_eq!(base.slot(own, key), Some((row, column as usize)));
            }
        }
    }

    #[test]
    fn node_id_is_sha1_prefix_of_public_key() {
        let key = [7u8; 32];
        let digest = Sha1::digest(key);
        let id = Id::from_public_key(&key);
        assert_eq!(&id.to_bytes()[..], &digest[..16]);
    }
}
