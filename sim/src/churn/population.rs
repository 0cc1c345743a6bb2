//! The live node ids of a churning network: who is up, when each one leaves, and how many
//! live ids share each prefix (the sizes of the routing table's candidate groups).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use rustc_hash::FxHashMap;

use super::Sessions;

/// Rows of a routing table with b = 4 (128-bit ids).
pub(crate) const ROWS: usize = 32;

/// Prefix lengths (in digits) whose group sizes are kept up to date; longer groups are
/// counted on demand (they hold one or two ids at the sizes simulated).
const COUNTED_DIGITS: usize = 8;

/// Digit `row` of `id` (b = 4, most significant first).
pub(crate) fn digit(id: u128, row: usize) -> u128 {
    (id >> (124 - 4 * row)) & 0xF
}

/// Leading digits `a` and `b` share.
pub(crate) fn shared_digits(a: u128, b: u128) -> usize {
    ((a ^ b).leading_zeros() / 4) as usize
}

/// `id` with digit `row` replaced by `value`.
pub(crate) fn with_digit(id: u128, row: usize, value: u128) -> u128 {
    let shift = 124 - 4 * row;
    (id & !(0xF << shift)) | (value << shift)
}

/// The smallest and largest ids sharing the first `len` digits of `id`.
fn group_range(id: u128, len: usize) -> (u128, u128) {
    if len == 0 {
        return (0, u128::MAX);
    }
    let tail = u128::MAX >> (4 * len);
    (id & !tail, id | tail)
}

/// Key of the group of ids sharing the first `len` (1 to 8) digits of `id`.
fn group_key(id: u128, len: usize) -> u128 {
    let (low, _) = group_range(id, len);
    low | len as u128
}

/// A change of the live set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A node with this id arrived.
    Joined(u128),
    /// The node with this id left.
    Left(u128),
}

/// The live ids, their departures and arrivals to come.
pub(crate) struct Population {
    live: BTreeSet<u128>,
    groups: FxHashMap<u128, u32>,
    /// Departure time (ms) and id of every node that will leave.
    departures: BinaryHeap<Reverse<(u64, u128)>>,
    /// Time (ms) of the next arrival, if there is churn.
    next_arrival: Option<f64>,
    sessions: Option<Sessions>,
    /// Mean gap between arrivals (ms), so that N stays steady.
    arrival_gap: f64,
    rng: ChaCha8Rng,
}

impl Population {
    /// `nodes` live nodes in the steady state of the session model: each has the residual
    /// lifetime of a node seen at a random moment (a length-biased session, cut at a uniform
    /// point).
    pub(crate) fn new(nodes: usize, sessions: Option<Sessions>, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let arrival_gap = sessions.map_or(f64::INFINITY, |s| s.mean_minutes() * 60_000.0 / nodes as f64);
        let next_arrival = sessions.map(|_| exponential(&mut rng) * arrival_gap);
        let mut population = Population {
            live: BTreeSet::new(),
            groups: FxHashMap::default(),
            departures: BinaryHeap::new(),
            next_arrival,
            sessions,
            arrival_gap,
            rng,
        };
        for _ in 0..nodes {
            let id = population.random_id();
            let left = population.sessions.map(|s| s.residual_ms(&mut population.rng));
            population.insert(id, left);
        }
        population
    }

    /// A fresh random id (not live).
    pub(crate) fn random_id(&mut self) -> u128 {
        loop {
            let id = random_u128(&mut self.rng);
            if !self.live.contains(&id) {
                return id;
            }
        }
    }

    /// Adds a node that never leaves (an observed node).
    pub(crate) fn add_permanent(&mut self, id: u128) {
        self.insert(id, None);
    }

    /// Live ids sharing the first `len` digits of `id`.
    pub(crate) fn group_size(&self, id: u128, len: usize) -> usize {
        match len {
            0 => self.live.len(),
            1..=COUNTED_DIGITS => self.groups.get(&group_key(id, len)).map_or(0, |&c| c as usize),
            _ => {
                let (low, high) = group_range(id, len.min(ROWS));
                self.live.range(low..=high).count()
            }
        }
    }

    /// A live id sharing the first `len` digits of `id` (not uniform: the first live id at or
    /// after a random point of the group's range), if any.
    pub(crate) fn member(&self, id: u128, len: usize, rng: &mut ChaCha8Rng) -> Option<u128> {
        let (low, high) = group_range(id, len);
        let point = low + random_u128(rng) % (high - low).saturating_add(1).max(1);
        self.live.range(point..=high).next().or_else(|| self.live.range(low..point).next_back()).copied()
    }

    /// The leaf set of `id` with `half` ids on each side: the `half` live ids that follow it
    /// on the ring (nearest first), then the `half` that precede it (nearest first); every
    /// other live id when there are no more than `2 * half`.
    pub(crate) fn leaf_set(&self, id: u128, half: usize) -> Vec<u128> {
        let after = self.live.range(id.saturating_add(1)..).chain(self.live.range(..id));
        let others = self.live.len() - usize::from(self.live.contains(&id));
        if others <= 2 * half {
            return after.copied().filter(|&x| x != id).collect();
        }
        let before = self.live.range(..id).rev().chain(self.live.range(id.saturating_add(1)..).rev());
        after.take(half).chain(before.take(half)).copied().collect()
    }

    /// The next change before `until` (ms), applied to the live set, with its time.
    pub(crate) fn next_change(&mut self, until: f64) -> Option<(f64, Change)> {
        let departure = self.departures.peek().map(|Reverse((at, _))| *at as f64);
        match (departure, self.next_arrival) {
            (Some(d), a) if d < until && a.is_none_or(|a| d <= a) => {
                let Reverse((_, id)) = self.departures.pop()?;
                self.remove(id);
                Some((d, Change::Left(id)))
            }
            (_, Some(a)) if a < until => {
                self.next_arrival = Some(a + exponential(&mut self.rng) * self.arrival_gap);
                let id = self.random_id();
                let session = self.sessions.map(|s| s.session_ms(&mut self.rng));
                self.insert(id, session.map(|s| a + s));
                Some((a, Change::Joined(id)))
            }
            _ => None,
        }
    }

    fn insert(&mut self, id: u128, leaves_at: Option<f64>) {
        self.live.insert(id);
        for len in 1..=COUNTED_DIGITS {
            *self.groups.entry(group_key(id, len)).or_default() += 1;
        }
        if let Some(at) = leaves_at {
            self.departures.push(Reverse((at as u64, id)));
        }
    }

    fn remove(&mut self, id: u128) {
        self.live.remove(&id);
        for len in 1..=COUNTED_DIGITS {
            let key = group_key(id, len);
            if let Some(count) = self.groups.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.groups.remove(&key);
                }
            }
        }
    }
}

fn random_u128(rng: &mut ChaCha8Rng) -> u128 {
    (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
}

/// A uniform number in [0, 1).
pub(crate) fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// An exponential number of mean 1.
fn exponential(rng: &mut ChaCha8Rng) -> f64 {
    -(1.0 - uniform(rng)).ln()
}

/// A standard normal number (Box-Muller).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v) = (1.0 - uniform(rng), uniform(rng));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}
