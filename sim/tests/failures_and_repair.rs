//! A deterministic simulation of 1,000 nodes: joins, lookups, 10% of the nodes failing at
//! once, repair, lookups again.

use core::time::Duration;

use past_core::DigitBase;
use past_sim::experiment::{Params, build, fail_and_repair};
use past_sim::measure::hop_bound;

fn params() -> Params {
    Params { nodes: 1000, base: DigitBase::DEFAULT, leaf_set_size: 16, neighborhood_size: 32, lookups: 20_000, seed: 7 }
}

#[test]
fn network_routes_correctly_through_failures_and_repairs_itself() {
    let params = params();
    let (mut network, built) = build(&params);
    assert_eq!(built.leaf_set_errors, 0, "every leaf set is exact after the joins");
    assert_eq!(built.tables.missing, 0, "no routing table slot is empty while a node fits it");

    let report = fail_and_repair(&mut network, &params, 0.1, Duration::from_secs(60));
    assert_eq!(report.killed, 100);

    let bound = hop_bound(1000, params.base);
    for (phase, stats) in [("before", &report.before), ("no repair", &report.no_repair), ("after", &report.after)] {
        assert_eq!(stats.correct, stats.count, "{phase}: every lookup reaches the closest live node");
    }
    assert!(report.before.max_hops <= bound + 1, "before failures no route exceeds ceil(log16 N) + 1");
    assert!(report.before.mean_hops < 2.6, "mean hops {} at N=1000", report.before.mean_hops);
    assert!(report.tables_failed.dead > 0, "failures leave dead entries until maintenance runs");

    assert_eq!(report.leaf_set_errors_after, 0, "repair restores the exact leaf sets");
    assert_eq!(report.tables_after.dead, 0, "maintenance finds every dead entry");
    assert!(report.tables_after.missing <= 10, "repair refills the tables: {} missing", report.tables_after.missing);
    assert!(report.after.mean_hops <= report.no_repair.mean_hops, "repair does not make routes longer");
}

#[test]
fn same_seed_same_run() {
    let mut small = params();
    small.nodes = 300;
    small.lookups = 2000;
    let run = || {
        let (mut network, _) = build(&small);
        let report = fail_and_repair(&mut network, &small, 0.1, Duration::from_secs(30));
        (report.before, report.after, report.maintenance, network.live_ids())
    };
    assert_eq!(run(), run());
}
