//! Storage quotas.
//!
//! PAST section 2.2: "the client's storage quota is debited by k times the file size" when
//! an insert is accepted and credited when reclaim receipts come back. In PAST a smartcard
//! keeps the quota; here the owner's own node keeps it ([`Quotas`]), and since nothing stops
//! a client from lying about its own quota, every storing node also enforces a per-owner
//! limit on what it stores for one owner ([`OwnerUsage`]).

use std::collections::BTreeMap;

use crate::past::crypto::PublicKey;

/// The quota of each owner inserting through this node.
#[derive(Clone, Debug)]
pub struct Quotas {
    limit: u64,
    used: BTreeMap<PublicKey, u64>,
}

impl Quotas {
    /// Quotas of `limit` bytes per owner.
    pub fn new(limit: u64) -> Self {
        Quotas { limit, used: BTreeMap::new() }
    }

    /// Bytes still available to `owner`.
    pub fn available(&self, owner: &PublicKey) -> u64 {
        self.limit.saturating_sub(self.used(owner))
    }

    /// Bytes debited to `owner`.
    pub fn used(&self, owner: &PublicKey) -> u64 {
        self.used.get(owner).copied().unwrap_or(0)
    }

    /// Debits `amount`, or returns the bytes available when that is not enough.
    pub fn debit(&mut self, owner: &PublicKey, amount: u64) -> Result<(), u64> {
        let available = self.available(owner);
        if amount > available {
            return Err(available);
        }
        *self.used.entry(*owner).or_insert(0) += amount;
        Ok(())
    }

    /// Credits `amount` back.
    pub fn credit(&mut self, owner: &PublicKey, amount: u64) {
        if let Some(used) = self.used.get_mut(owner) {
            *used = used.saturating_sub(amount);
            if *used == 0 {
                self.used.remove(owner);
            }
        }
    }
}

/// Bytes this node stores (or has reserved) for each owner, against a per-owner limit.
#[derive(Clone, Debug)]
pub struct OwnerUsage {
    limit: u64,
    stored: BTreeMap<PublicKey, u64>,
}

impl OwnerUsage {
    /// At most `limit` bytes per owner.
    pub fn new(limit: u64) -> Self {
        OwnerUsage { limit, stored: BTreeMap::new() }
    }

    /// The per-owner limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes stored for `owner`.
    pub fn stored(&self, owner: &PublicKey) -> u64 {
        self.stored.get(owner).copied().unwrap_or(0)
    }

    /// Whether `size` more bytes for `owner` stay within the limit.
    pub fn admits(&self, owner: &PublicKey, size: u64) -> bool {
        self.stored(owner).saturating_add(size) <= self.limit
    }

    /// Counts `size` bytes for `owner`.
    pub fn add(&mut self, owner: &PublicKey, size: u64) {
        *self.stored.entry(*owner).or_insert(0) += size;
    }

    /// Stops counting `size` bytes for `owner`.
    pub fn release(&mut self, owner: &PublicKey, size: u64) {
        if let Some(stored) = self.stored.get_mut(owner) {
            *stored = stored.saturating_sub(size);
            if *stored == 0 {
                self.stored.remove(owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_debits_and_credits() {
        let owner = PublicKey([1; 32]);
        let mut quotas = Quotas::new(100);
        assert_eq!(quotas.debit(&owner, 60), Ok(()));
        assert_eq!(quotas.debit(&owner, 60), Err(40));
        quotas.credit(&owner, 30);
        assert_eq!(quotas.available(&owner), 70);
        let mut usage = OwnerUsage::new(10);
        assert!(usage.admits(&owner, 10));
        usage.add(&owner, 8);
        assert!(!usage.admits(&owner, 3));
        usage.release(&owner, 8);
        assert_eq!(usage.stored(&owner), 0);
    }
}
