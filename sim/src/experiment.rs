//! The experiments of the Pastry paper: build a network by joins, route random lookups,
//! fail a share of the nodes, repair, route again.

use core::time::Duration;
use std::time::Instant;

use past_core::{Config, DigitBase, Proximity};

use crate::measure::{LookupStats, TableStats, leaf_set_errors, lookup_stats, table_stats};
use crate::network::{Counters, Jitter, Network};

/// Parameters of a Pastry experiment.
#[derive(Clone, Debug)]
pub struct Params {
    /// Nodes to build.
    pub nodes: usize,
    /// Digit size b.
    pub base: DigitBase,
    /// Leaf set size l.
    pub leaf_set_size: usize,
    /// Neighborhood set size M.
    pub neighborhood_size: usize,
    /// Random lookups per measurement.
    pub lookups: usize,
    /// Seed of the whole run.
    pub seed: u64,
    /// How nodes measure round-trip times: [`Proximity::Probes`] as deployed nodes do, or
    /// [`Proximity::Driver`], exact times from the latency model, instantly.
    pub proximity: Proximity,
}

impl Params {
    /// The node configuration for a simulation: no periodic maintenance while building (the
    /// network is static), failed table entries repaired, proximity measured as asked.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.base = self.base;
        config.leaf_set_size = self.leaf_set_size;
        config.neighborhood_size = self.neighborhood_size;
        config.keepalive_interval = None;
        config.table_probe_interval = None;
        config.row_exchange_interval = None;
        config.proximity = self.proximity;
        config
    }
}

/// How building the network went.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// Nodes joined.
    pub nodes: usize,
    /// Wall-clock time of the build.
    pub wall: Duration,
    /// Messages sent during the build.
    pub messages: Counters,
    /// Live nodes whose leaf set is not the exact one.
    pub leaf_set_errors: usize,
    /// Routing table completeness after the build.
    pub tables: TableStats,
}

/// Builds a network of `params.nodes` nodes, joining one by one through the real protocol,
/// every message delayed by [`Jitter::DEFAULT`] on top of the latency model.
pub fn build(params: &Params) -> (Network, BuildReport) {
    let started = Instant::now();
    let mut network = Network::new(params.config(), params.nodes, params.seed);
    network.set_jitter(Jitter::DEFAULT);
    for _ in 0..params.nodes {
        network.add_node();
    }
    let wall = started.elapsed();
    let report = BuildReport {
        nodes: params.nodes,
        wall,
        messages: network.counters(),
        leaf_set_errors: leaf_set_errors(&network, params.leaf_set_size),
        tables: table_stats(&network, params.base),
    };
    (network, report)
}

/// Runs `rounds` rounds of periodic row exchange on every live node (nothing else: no
/// keep-alives, no table probes), one every [`Config::row_exchange_interval`] of the
/// default configuration, and lets the last answers arrive. Returns the messages sent.
pub fn exchange_rows(network: &mut Network, rounds: u32) -> Counters {
    let before = network.counters();
    let interval = Config::default().row_exchange_interval.unwrap_or(Duration::from_secs(600));
    network.set_row_exchange(Some(interval));
    network.run_for(interval * rounds);
    network.set_row_exchange(None);
    network.run_until_quiet();
    network.counters().since(&before)
}

/// Lookups started at the same moment.
const LOOKUP_BATCH: usize = 10_000;

/// Routes `count` lookups of random keys from random live nodes, in batches started at the
/// same moment, and measures them. Returns the statistics and the wall time taken.
pub fn random_lookups(network: &mut Network, base: DigitBase, count: usize) -> (LookupStats, Duration) {
    let started = Instant::now();
    network.clear_lookups();
    let live = network.live_nodes();
    // In batches, so the event queue stays small.
    for batch in (0..count).step_by(LOOKUP_BATCH) {
        for _ in batch..(batch + LOOKUP_BATCH).min(count) {
            let source = live[(network.random() % live.len() as u64) as usize];
            let key = network.random_id();
            network.lookup(source, key);
        }
        network.run_until_quiet();
    }
    let wall = started.elapsed();
    (lookup_stats(network, base), wall)
}

/// The failure experiment of the Pastry paper (section 3.4).
#[derive(Clone, Debug)]
pub struct FailureReport {
    /// Nodes killed at once.
    pub killed: usize,
    /// Lookups before the failures.
    pub before: LookupStats,
    /// Routing tables before the failures.
    pub tables_before: TableStats,
    /// Lookups right after the failures, with no repair (nodes only drop entries whose
    /// messages fail; each failed forward counts as a hop, and the time the sender takes to
    /// learn it failed counts as its latency).
    pub no_repair: LookupStats,
    /// Messages sent while those lookups ran, by kind (the lookups' own hops as `app`;
    /// leaf set repair runs then, routing table repair does not).
    pub no_repair_messages: Counters,
    /// Routing tables after the failures, before repair.
    pub tables_failed: TableStats,
    /// Lookups after maintenance ran.
    pub after: LookupStats,
    /// Routing tables after repair.
    pub tables_after: TableStats,
    /// Leaf sets not exact after repair.
    pub leaf_set_errors_after: usize,
    /// Messages sent while maintenance ran, by kind.
    pub maintenance: Counters,
    /// Virtual time maintenance ran.
    pub maintenance_time: Duration,
}

impl FailureReport {
    /// Repair requests (entry requests, slot searches and leaf set requests, each with its
    /// answer: a remote procedure call) per failed node.
    pub fn repair_rpcs_per_failed_node(&self) -> f64 {
        (self.maintenance.repair + self.maintenance.leaf_set) as f64 / 2.0 / self.killed.max(1) as f64
    }
}

/// Kills `fraction` of the live nodes at random, measures lookups with no repair, lets
/// maintenance (keep-alives, table probes, repair) run for `maintenance` of virtual time,
/// and measures again.
pub fn fail_and_repair(network: &mut Network, params: &Params, fraction: f64, maintenance: Duration) -> FailureReport {
    let base = params.base;
    let (before, _) = random_lookups(network, base, params.lookups);
    let tables_before = table_stats(network, base);
    let mut live = network.live_nodes();
    let killed = ((live.len() as f64) * fraction).round() as usize;
    for _ in 0..killed {
        let i = (network.random() % live.len() as u64) as usize;
        network.kill(live.swap_remove(i));
    }
    network.set_maintenance(None, None, false);
    let counters_failed = network.counters();
    let (no_repair, _) = random_lookups(network, base, params.lookups);
    let no_repair_messages = network.counters().since(&counters_failed);
    let tables_failed = table_stats(network, base);

    let counters_before = network.counters();
    let probe_interval = maintenance / 2;
    network.set_maintenance(Some(probe_interval), Some(probe_interval), true);
    network.run_for(maintenance);
    network.set_maintenance(None, None, true);
    network.run_until_quiet();
    let maintenance_counters = network.counters().since(&counters_before);

    let (after, _) = random_lookups(network, base, params.lookups);
    FailureReport {
        killed,
        before,
        tables_before,
        no_repair,
        no_repair_messages,
        tables_failed,
        after,
        tables_after: table_stats(network, base),
        leaf_set_errors_after: leaf_set_errors(network, params.leaf_set_size),
        maintenance: maintenance_counters,
        maintenance_time: maintenance,
    }
}
