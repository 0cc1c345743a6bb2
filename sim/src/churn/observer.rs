//! One long-lived node in the churn model: its leaf set, its routing table, the peers that
//! keep it in their tables, and the peer connections all of that costs it under a policy.

use std::time::Duration;

use past_link::manager::Pace;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rustc_hash::FxHashMap;

use super::population::{Change, Population, ROWS, digit, shared_digits, uniform, with_digit};
use super::{Counts, Policy};

/// Leaf set half size (core `Config::default().leaf_set_size` is 16).
pub(crate) const LEAF_HALF: usize = 8;

/// Open connections above which the peer manager evicts idle ones it does not keep
/// (`ManagerConfig::default().max_connections`).
const MAX_CONNECTIONS: usize = 64;

/// Why a connection is open (bit flags).
const LEAF: u8 = 1;
const TABLE: u8 = 2;
const INCOMING: u8 = 4;

/// One observed node.
pub(crate) struct Observer {
    id: u128,
    policy: Policy,
    budget: u32,
    /// The paced policy's pace: the peer manager's own decision.
    pace: Pace,
    leaves: Vec<u128>,
    table: Vec<[Option<u128>; 16]>,
    /// Open connections and why.
    peers: FxHashMap<u128, u8>,
    /// Connections created since the last reload.
    created: u32,
    /// When the last (re)join happened (ms).
    joined_at: f64,
    /// New connections per hour of the run.
    pub(crate) per_hour: Vec<Counts>,
    /// Reloads so far.
    pub(crate) reloads: u32,
    /// When the budget first ran out (hours).
    pub(crate) first_exhausted: Option<f64>,
    /// Sums over the samples of table entries kept, entries that could be kept, and the
    /// estimated extra hops.
    pub(crate) kept: f64,
    pub(crate) could: f64,
    pub(crate) extra_hops: f64,
    pub(crate) samples: u32,
    now: f64,
    /// The node's own random choices (which candidate, whether a peer picks it).
    rng: ChaCha8Rng,
}

impl Observer {
    /// A node with `id` (already live in `population`) joining at time 0; `seed` seeds its
    /// random choices.
    pub(crate) fn join(id: u128, policy: Policy, budget: u32, pace: &Pace, seed: u64, population: &Population) -> Self {
        let mut observer = Observer {
            id,
            policy,
            budget,
            pace: pace.clone(),
            leaves: Vec::new(),
            table: vec![[None; 16]; ROWS],
            peers: FxHashMap::default(),
            created: 0,
            joined_at: 0.0,
            per_hour: Vec::new(),
            reloads: 0,
            first_exhausted: None,
            kept: 0.0,
            could: 0.0,
            extra_hops: 0.0,
            samples: 0,
            now: 0.0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        observer.rebuild(population, &[]);
        observer
    }

    /// Reacts to a change of the live set at `now` (ms).
    pub(crate) fn on_change(&mut self, change: Change, now: f64, population: &Population) {
        self.now = now;
        match change {
            Change::Joined(id) => self.on_joined(id, population),
            Change::Left(id) => self.on_left(id, population),
        }
        if self.created >= self.budget {
            self.reload(population);
        }
    }

    /// Once a minute: samples the table, evicts and refills as the policy says.
    pub(crate) fn tick(&mut self, now: f64, population: &Population) {
        self.now = now;
        if self.policy == Policy::Today {
            self.evict_incoming();
        }
        if self.policy == Policy::Paced {
            self.refill(population);
        }
        self.sample(population);
        if self.created >= self.budget {
            self.reload(population);
        }
    }

    fn on_joined(&mut self, id: u128, population: &Population) {
        if self.in_leaf_range(id) {
            self.refresh_leaves(population);
        }
        let row = shared_digits(self.id, id);
        let column = digit(id, row) as usize;
        if self.table[row][column].is_none() {
            self.fill(row, column, id);
        }
        // The newcomer's entry for our group: it picks one of the group's live members.
        if uniform(&mut self.rng) * (population.group_size(self.id, row + 1) as f64) < 1.0 {
            self.incoming(id);
        }
    }

    fn on_left(&mut self, id: u128, population: &Population) {
        self.peers.remove(&id);
        if self.leaves.contains(&id) {
            self.refresh_leaves(population);
        }
        let row = shared_digits(self.id, id);
        let column = digit(id, row) as usize;
        if self.table[row][column] == Some(id) {
            self.table[row][column] = None;
            if let Some(next) = self.candidate(id, row, population) {
                self.fill(row, column, next);
            }
        }
        self.replacements_naming_us(id, row, population);
    }

    /// The nodes that kept `gone` in their table replace it by another member of its group;
    /// for each group that contains us, some of them (in expectation) pick us.
    fn replacements_naming_us(&mut self, gone: u128, shared: usize, population: &Population) {
        for row in 0..shared {
            let candidates = population.group_size(gone, row + 1);
            let pointing = population.group_size(gone, row).saturating_sub(candidates);
            let expected = pointing as f64 / ((candidates + 1) * candidates.max(1)) as f64;
            let count = expected.floor() as usize + usize::from(uniform(&mut self.rng) < expected.fract());
            for _ in 0..count {
                if let Some(peer) = self.outside_member(gone, row, population) {
                    self.incoming(peer);
                }
            }
        }
    }

    /// A live candidate for the entry of row `row` that `id` belongs to: under the reuse
    /// policies a peer already connected if there is one, else any live member.
    fn candidate(&mut self, id: u128, row: usize, population: &Population) -> Option<u128> {
        let reused = match self.policy.reuses() {
            true => self.peers.keys().copied().find(|&p| shared_digits(p, id) > row),
            false => None,
        };
        reused.or_else(|| population.member(id, row + 1, &mut self.rng))
    }

    /// A live id sharing exactly `row` digits with `id`, if one is found in a few tries.
    fn outside_member(&mut self, id: u128, row: usize, population: &Population) -> Option<u128> {
        (0..8).find_map(|_| population.member(id, row, &mut self.rng).filter(|&m| shared_digits(m, id) == row))
    }

    /// A peer put us in its routing table and connects to us.
    fn incoming(&mut self, peer: u128) {
        if peer == self.id || (self.policy == Policy::Paced && !self.peers.contains_key(&peer) && !self.within_pace()) {
            return;
        }
        self.open(peer, INCOMING);
    }

    /// Puts `peer` in the table entry if the policy allows the connection.
    fn fill(&mut self, row: usize, column: usize, peer: u128) {
        if self.policy == Policy::Paced && !self.peers.contains_key(&peer) && !self.within_pace() {
            return;
        }
        self.table[row][column] = Some(peer);
        self.open(peer, TABLE);
    }

    /// Whether the paced policy may spend a connection on something other than the leaf set:
    /// the peer manager's [`Pace::allows`], counted from the last (re)join.
    fn within_pace(&self) -> bool {
        let elapsed = Duration::from_secs_f64((self.now - self.joined_at).max(0.0) / 1000.0);
        self.pace.allows(self.budget, self.created, elapsed)
    }

    fn in_leaf_range(&self, id: u128) -> bool {
        if self.leaves.len() < 2 * LEAF_HALF {
            return true;
        }
        let (far_after, far_before) = (self.leaves[LEAF_HALF - 1], self.leaves[2 * LEAF_HALF - 1]);
        id.wrapping_sub(far_before) < far_after.wrapping_sub(far_before)
    }

    fn refresh_leaves(&mut self, population: &Population) {
        let leaves = population.leaf_set(self.id, LEAF_HALF);
        for old in std::mem::take(&mut self.leaves) {
            if !leaves.contains(&old) {
                self.close(old, LEAF);
            }
        }
        for &leaf in &leaves {
            self.open(leaf, LEAF);
        }
        self.leaves = leaves;
    }

    /// Fills empty entries, row 0 first, while the policy allows.
    fn refill(&mut self, population: &Population) {
        for row in 0..ROWS {
            if population.group_size(self.id, row) <= 1 {
                break;
            }
            for column in 0..16u128 {
                let entry = with_digit(self.id, row, column);
                if column != digit(self.id, row)
                    && self.table[row][column as usize].is_none()
                    && let Some(peer) = self.candidate(entry, row, population)
                {
                    self.fill(row, column as usize, peer);
                }
            }
        }
    }

    /// Today's manager: above `MAX_CONNECTIONS`, idle connections of peers we do not keep
    /// close; a peer that keeps us in its table reconnects at its next table probe (60 s).
    fn evict_incoming(&mut self) {
        let open = self.peers.len();
        let others: Vec<u128> = self.peers.iter().filter(|(_, f)| **f == INCOMING).map(|(p, _)| *p).collect();
        let evicted = open.saturating_sub(MAX_CONNECTIONS).min(others.len());
        for _ in 0..evicted {
            self.spend(|c| c.reconnected += 1.0);
        }
    }

    /// Records the table's fill and the extra hops its gaps cost a route's first hop.
    fn sample(&mut self, population: &Population) {
        let (mut kept, mut could, mut extra) = (0u32, 0u32, 0.0);
        for row in 0..ROWS {
            if population.group_size(self.id, row) <= 1 {
                break;
            }
            for column in (0..16u128).filter(|&c| c != digit(self.id, row)) {
                if population.group_size(with_digit(self.id, row, column), row + 1) > 0 {
                    could += 1;
                    if self.table[row][column as usize].is_some() {
                        kept += 1;
                    } else {
                        extra += 16f64.powi(-(row as i32 + 1));
                    }
                }
            }
        }
        self.kept += f64::from(kept);
        self.could += f64::from(could);
        self.extra_hops += extra;
        self.samples += 1;
    }

    /// The tab reloads: same id, a fresh budget; it joins again and the peers that keep it
    /// in their tables reconnect.
    fn reload(&mut self, population: &Population) {
        self.first_exhausted.get_or_insert(self.now / 3_600_000.0);
        self.reloads += 1;
        let incoming: Vec<u128> = self.peers.iter().filter(|(_, f)| **f & INCOMING != 0).map(|(p, _)| *p).collect();
        self.rebuild(population, &incoming);
    }

    fn rebuild(&mut self, population: &Population, incoming: &[u128]) {
        self.peers.clear();
        self.leaves.clear();
        self.table = vec![[None; 16]; ROWS];
        self.created = 0;
        self.joined_at = self.now;
        self.refresh_leaves(population);
        self.refill(population);
        for &peer in incoming {
            self.incoming(peer);
        }
    }

    fn open(&mut self, peer: u128, why: u8) {
        let flags = self.peers.entry(peer).or_insert(0);
        let new = *flags == 0;
        *flags |= why;
        if new {
            self.spend(|c| match why {
                LEAF => c.leaf += 1.0,
                TABLE => c.table += 1.0,
                _ => c.incoming += 1.0,
            });
        }
    }

    fn close(&mut self, peer: u128, why: u8) {
        if let Some(flags) = self.peers.get_mut(&peer) {
            *flags &= !why;
            if *flags == 0 {
                self.peers.remove(&peer);
            }
        }
    }

    fn spend(&mut self, count: impl FnOnce(&mut Counts)) {
        self.created += 1;
        let hour = (self.now / 3_600_000.0) as usize;
        if self.per_hour.len() <= hour {
            self.per_hour.resize(hour + 1, Counts::default());
        }
        count(&mut self.per_hour[hour]);
    }
}
