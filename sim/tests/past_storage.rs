//! The storage experiment on a small network: diversion lets the network fill further with
//! fewer failed inserts, and a run is the same for the same seed.

use past_sim::past::experiment::{Diversion, StorageParams, storage};
use past_sim::past::workload::{FileSizes, TruncatedNormal};

fn params(nodes: usize, diversion: Diversion) -> StorageParams {
    StorageParams {
        nodes,
        leaf_set: 16,
        k: 3,
        seed: 5,
        capacity: TruncatedNormal::past_d1(150.0),
        sizes: FileSizes::web(1.0),
        diversion,
        batch: 20,
        max_inserts: 100_000,
        window: 100,
    }
}

#[test]
fn diversion_fills_the_network_further() {
    let none = storage(&params(50, Diversion::None));
    let both = storage(&params(50, Diversion::Both));
    let (none_last, both_last) = (none.last().unwrap(), both.last().unwrap());
    assert!(both_last.utilization > none_last.utilization, "{both_last:?} vs {none_last:?}");
    let at = |r: &past_sim::past::experiment::StorageReport| r.at(0.8).map(|p| p.failed_share());
    assert!(both.diverted_replicas > 0);
    if let (Some(n), Some(b)) = (at(&none), at(&both)) {
        assert!(b <= n, "fewer failures at 80% with diversion: {b} vs {n}");
    }
}

#[test]
fn same_seed_same_run() {
    let run = || {
        let mut p = params(30, Diversion::Both);
        p.max_inserts = 300;
        storage(&p).points
    };
    assert_eq!(run(), run());
}
