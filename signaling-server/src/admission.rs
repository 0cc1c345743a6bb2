//! Admission: pools of slots bounded globally and per remote address. A connection or socket
//! holds a [`Slot`] for as long as it lives; dropping the slot gives it back.
//!
//! An "address" is an IPv4 address, or the /64 prefix of an IPv6 address (one subscriber
//! usually has a whole /64); IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The key per-address limits count by.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// Why a pool refused a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The pool is full.
    Global,
    /// This address holds its share of the pool.
    PerAddress,
}

/// A number of slots, at most `max_total` in use and at most `max_per_address` by one
/// address.
#[derive(Debug)]
pub(crate) struct Pool {
    max_total: usize,
    max_per_address: usize,
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Pool {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_address, inner: Mutex::new(Counts::default()) })
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Every critical section is a couple of integer updates: a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `ip`, if the pool and the address's share have room.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let key = address_key(ip);
        let mut counts = self.counts();
        let mine = counts.per_address.get(&key).copied().unwrap_or(0);
        if mine >= self.max_per_address {
            return Err(Refused::PerAddress);
        }
        if counts.total >= self.max_total {
            return Err(Refused::Global);
        }
        counts.total += 1;
        counts.per_address.insert(key, mine + 1);
        Ok(Slot { pool: self.clone(), key })
    }

    /// Slots in use.
    pub(crate) fn in_use(&self) -> usize {
        self.counts().total
    }

    fn give_back(&self, key: IpAddr) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_address.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&key);
            }
        }
    }
}

/// One slot of a [`Pool`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    pool: Arc<Pool>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.give_back(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn per_address_and_global_limits() {
        let pool = Pool::new(3, 2);
        let a1 = pool.take(ip("10.0.0.1")).expect("room");
        let _a2 = pool.take(ip("10.0.0.1")).expect("room");
        assert_eq!(pool.take(ip("10.0.0.1")).err(), Some(Refused::PerAddress));
        let _b1 = pool.take(ip("10.0.0.2")).expect("room");
        assert_eq!(pool.take(ip("10.0.0.3")).err(), Some(Refused::Global));
        drop(a1);
        assert_eq!(pool.in_use(), 2);
        let _c1 = pool.take(ip("10.0.0.3")).expect("a freed slot");
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), address_key(ip("2001:db8:1:2:bbbb::2")));
        assert_ne!(address_key(ip("2001:db8:1:2::1")), address_key(ip("2001:db8:1:3::1")));
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }
}
