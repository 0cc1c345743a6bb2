//! Measurements over a simulated network: lookup statistics, routing table completeness,
//! leaf set exactness. These use the simulator's global view, which no node has.

use core::time::Duration;

use past_core::{DigitBase, Id};

use crate::network::{Network, SimApp};

/// Statistics of a batch of lookups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LookupStats {
    /// Lookups made.
    pub count: usize,
    /// Lookups delivered somewhere.
    pub delivered: usize,
    /// Lookups delivered at the live node numerically closest to their key.
    pub correct: usize,
    /// `histogram[h]`: lookups delivered in `h` hops.
    pub histogram: Vec<usize>,
    /// Mean hops of delivered lookups.
    pub mean_hops: f64,
    /// Most hops of a delivered lookup.
    pub max_hops: usize,
    /// ceil(log_{2^b} N), the paper's bound on hops.
    pub hop_bound: usize,
    /// Lookups delivered in more than `hop_bound` hops.
    pub above_bound: usize,
    /// Mean over lookups of (route latency / direct latency from source to destination),
    /// leaving out lookups delivered at their source.
    pub relative_distance: f64,
    /// Sum of route latencies over sum of direct latencies.
    pub relative_distance_of_sums: f64,
}

impl LookupStats {
    /// Share of lookups delivered at the right node.
    pub fn correct_share(&self) -> f64 {
        if self.count == 0 { 1.0 } else { self.correct as f64 / self.count as f64 }
    }

    /// Share of lookups with `hops` hops.
    pub fn share(&self, hops: usize) -> f64 {
        let delivered = self.delivered.max(1) as f64;
        self.histogram.get(hops).copied().unwrap_or(0) as f64 / delivered
    }
}

/// ceil(log_{2^b} n).
pub fn hop_bound(n: usize, base: DigitBase) -> usize {
    let mut bound = 0;
    let mut reach = 1u128;
    while reach < n as u128 {
        reach <<= base.bits();
        bound += 1;
    }
    bound
}

/// The live id numerically closest to `key` among `sorted` ids.
pub fn closest_live(sorted: &[Id], key: Id) -> Option<Id> {
    if sorted.is_empty() {
        return None;
    }
    let i = sorted.partition_point(|&id| id < key);
    let after = sorted[i % sorted.len()];
    let before = sorted[(i + sorted.len() - 1) % sorted.len()];
    key.closest([before, after])
}

/// Statistics of the lookups made so far on `network`.
pub fn lookup_stats(network: &Network, base: DigitBase) -> LookupStats {
    let live = network.live_ids();
    let hop_bound = hop_bound(live.len(), base);
    let mut stats = LookupStats { count: network.lookups().len(), hop_bound, ..LookupStats::default() };
    let (mut hops_sum, mut ratio_sum, mut ratio_count) = (0usize, 0.0f64, 0usize);
    let (mut route_sum, mut direct_sum) = (Duration::ZERO, Duration::ZERO);
    for lookup in network.lookups() {
        let Some(at) = lookup.delivered_at else { continue };
        stats.delivered += 1;
        if Some(network.id(at)) == closest_live(&live, lookup.key) {
            stats.correct += 1;
        }
        let hops = lookup.hops as usize;
        if stats.histogram.len() <= hops {
            stats.histogram.resize(hops + 1, 0);
        }
        stats.histogram[hops] += 1;
        hops_sum += hops;
        stats.max_hops = stats.max_hops.max(hops);
        if hops > hop_bound {
            stats.above_bound += 1;
        }
        let direct = network.plane().latency(lookup.source, at);
        if at != lookup.source && !direct.is_zero() {
            ratio_sum += lookup.distance.as_secs_f64() / direct.as_secs_f64();
            ratio_count += 1;
            route_sum += lookup.distance;
            direct_sum += direct;
        }
    }
    stats.mean_hops = hops_sum as f64 / stats.delivered.max(1) as f64;
    stats.relative_distance = ratio_sum / ratio_count.max(1) as f64;
    stats.relative_distance_of_sums = route_sum.as_secs_f64() / direct_sum.as_secs_f64().max(f64::MIN_POSITIVE);
    stats
}

/// Completeness of the live nodes' routing tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Entries held, over all live nodes.
    pub entries: usize,
    /// Entries pointing at dead nodes.
    pub dead: usize,
    /// Slots with no live entry although a live node fits them.
    pub missing: usize,
    /// Missing entries by row.
    pub missing_by_row: Vec<usize>,
}

impl TableStats {
    fn add_missing(&mut self, row: usize, fits: bool) {
        if fits {
            self.missing += 1;
            if self.missing_by_row.len() <= row {
                self.missing_by_row.resize(row + 1, 0);
            }
            self.missing_by_row[row] += 1;
        }
    }
}

/// Counts routing table entries, dead entries and missing entries over the live nodes.
pub fn table_stats<A: SimApp>(network: &Network<A>, base: DigitBase) -> TableStats {
    let live = network.live_ids();
    let mut stats = TableStats::default();
    for node in network.live_nodes() {
        let n = network.node(node);
        let table = &n.state().table;
        let own = n.id();
        for row in 0..base.rows() {
            let mut any_fits_row = false;
            for column in 0..base.columns() {
                if base.digit(own, row) as usize == column {
                    continue;
                }
                let fits = slot_has_live_node(&live, base, own, row, column as u8);
                any_fits_row |= fits;
                match table.get(row, column) {
                    Some(e) if network.is_alive_id(e.id) => stats.entries += 1,
                    Some(_) => {
                        stats.entries += 1;
                        stats.dead += 1;
                        stats.add_missing(row, fits);
                    }
                    None => stats.add_missing(row, fits),
                }
            }
            if !any_fits_row && row >= table.row_count() {
                break;
            }
        }
    }
    stats
}

fn slot_has_live_node(sorted: &[Id], base: DigitBase, own: Id, row: usize, column: u8) -> bool {
    let low = base.key_in_slot(own, row, column, 0);
    let high = base.key_in_slot(own, row, column, u128::MAX);
    let i = sorted.partition_point(|&id| id < low);
    sorted.get(i).is_some_and(|&id| id <= high)
}

/// Number of live nodes whose leaf set differs from the exact one for the live ids.
pub fn leaf_set_errors<A: SimApp>(network: &Network<A>, leaf_set_size: usize) -> usize {
    let live = network.live_ids();
    let n = live.len();
    let half = leaf_set_size.div_ceil(2);
    let mut errors = 0;
    for node in network.live_nodes() {
        let set = &network.node(node).state().leaf_set;
        let own = set.own();
        let Ok(i) = live.binary_search(&own) else { continue };
        let take = half.min(n - 1);
        let cw: Vec<Id> = (1..=take).map(|k| live[(i + k) % n]).collect();
        let ccw: Vec<Id> = (1..=take).map(|k| live[(i + n - k) % n]).collect();
        if set.side(past_core::Side::Clockwise) != cw || set.side(past_core::Side::CounterClockwise) != ccw {
            errors += 1;
        }
    }
    errors
}

/// The live nodes' ids with their indexes, sorted by id: latencies between indexes come
/// straight from the plane, with no lookup of an id.
fn live_with_indexes<A: SimApp>(network: &Network<A>) -> Vec<(Id, u32)> {
    let mut live: Vec<(Id, u32)> = network.live_nodes().into_iter().map(|i| (network.id(i), i)).collect();
    live.sort_unstable();
    live
}

/// How close routing table entries are compared with the closest node that would fit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableLocality {
    /// `per_row[r]`: (mean latency of the entries of row r, mean latency of the closest
    /// live node fitting each of those slots), in milliseconds.
    pub per_row: Vec<(f64, f64)>,
}

/// Compares the entries of `sample` live nodes with the closest live node fitting each slot.
pub fn table_locality<A: SimApp>(network: &Network<A>, base: DigitBase, sample: usize) -> TableLocality {
    let live = live_with_indexes(network);
    let nodes = network.live_nodes();
    let step = (nodes.len() / sample.max(1)).max(1);
    let mut sums: Vec<(f64, f64, usize)> = Vec::new();
    for &node in nodes.iter().step_by(step) {
        let n = network.node(node);
        for (row, column, entry) in n.state().table.entries() {
            if !network.is_alive_id(entry.id) {
                continue;
            }
            let low = base.key_in_slot(n.id(), row, column as u8, 0);
            let high = base.key_in_slot(n.id(), row, column as u8, u128::MAX);
            let start = live.partition_point(|&(id, _)| id < low);
            let best = live[start..]
                .iter()
                .take_while(|&&(id, _)| id <= high)
                .map(|&(_, other)| network.plane().latency(node, other).as_secs_f64())
                .fold(f64::MAX, f64::min);
            let actual = network.latency_to(node, entry.id).as_secs_f64();
            if sums.len() <= row {
                sums.resize(row + 1, (0.0, 0.0, 0));
            }
            sums[row].0 += actual * 1000.0;
            sums[row].1 += best * 1000.0;
            sums[row].2 += 1;
        }
    }
    TableLocality { per_row: sums.into_iter().map(|(a, b, n)| (a / n.max(1) as f64, b / n.max(1) as f64)).collect() }
}

/// The route distance relative to the direct distance that Pastry would reach with perfect
/// tables in this latency model: every routing table slot holding the live node nearest to
/// its owner, every leaf set exact. Walks `samples` random routes with the global view.
/// Returns (mean of ratios, ratio of sums).
pub fn ideal_relative_distance<A: SimApp>(
    network: &mut Network<A>,
    base: DigitBase,
    leaf_set_size: usize,
    samples: usize,
) -> (f64, f64) {
    let live = network.live_ids();
    let by_id = live_with_indexes(network);
    let nodes = network.live_nodes();
    let n = live.len();
    let half = leaf_set_size.div_ceil(2);
    let (mut ratio_sum, mut count, mut route_sum, mut direct_sum) = (0.0, 0usize, 0.0, 0.0);
    for _ in 0..samples {
        let source = nodes[(network.random() % nodes.len() as u64) as usize];
        let key = network.random_id();
        let Some(target) = closest_live(&live, key) else { continue };
        let mut at = network.id(source);
        let mut distance = 0.0;
        while at != target {
            let i = live.binary_search(&at).unwrap_or(0);
            let in_leaf_set =
                (1..=half.min(n - 1)).any(|k| live[(i + k) % n] == target || live[(i + n - k) % n] == target);
            let from = network.index_of(at).unwrap_or(source);
            let next = if in_leaf_set {
                target
            } else {
                let row = base.shared_prefix(at, key);
                let low = base.key_in_slot(at, row, base.digit(key, row), 0);
                let high = base.key_in_slot(at, row, base.digit(key, row), u128::MAX);
                let start = by_id.partition_point(|&(id, _)| id < low);
                by_id[start..]
                    .iter()
                    .take_while(|&&(id, _)| id <= high)
                    .min_by_key(|&&(_, other)| network.plane().latency(from, other))
                    .map_or(target, |&(id, _)| id)
            };
            distance += network.latency_to(from, next).as_secs_f64();
            at = next;
        }
        let direct = network.latency_to(source, target).as_secs_f64();
        if direct > 0.0 {
            ratio_sum += distance / direct;
            count += 1;
            route_sum += distance;
            direct_sum += direct;
        }
    }
    (ratio_sum / count.max(1) as f64, route_sum / direct_sum.max(f64::MIN_POSITIVE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_bound_is_ceil_log() {
        let b = DigitBase::DEFAULT;
        assert_eq!(hop_bound(1, b), 0);
        assert_eq!(hop_bound(16, b), 1);
        assert_eq!(hop_bound(17, b), 2);
        assert_eq!(hop_bound(100_000, b), 5);
        assert_eq!(hop_bound(1_000, b), 3);
    }

    #[test]
    fn closest_live_wraps() {
        let ids = [Id::from_u128(10), Id::from_u128(u128::MAX - 10)];
        assert_eq!(closest_live(&ids, Id::from_u128(0)), Some(Id::from_u128(10)));
        assert_eq!(closest_live(&ids, Id::from_u128(u128::MAX - 2)), Some(Id::from_u128(u128::MAX - 10)));
    }
}
