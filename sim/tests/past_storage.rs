//! The storage experiment on a small network: diversion lets the network fill further with
//! fewer failed inserts, and a run is the same for the same seed, whether or not the nodes
//! share the certificates they verified, and whether or not a second thread signs and
//! verifies for them.

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
        share_verified: true,
        crypto_thread: false,
    }
}

#[test]
fn diversion_fills_the_network_further() {
    let none = storage(&params(50, Diversion::None));
    let both = storage(&params(50, Diversion::Both));
    let (none_last, both_last) = (none.last().unwrap(), both.last().unwrap());
    assert!(both_last.utilization > none_last.utilization, "{both_last:?} vs {none_last:?}");
    assert!(both.diverted_replicas > 0);
    // Compare where the run without diversion gave up (52 % full with this seed: 93 of 400
    // inserts failed); the run with diversion got there too, with fewer failures so far (146
    // of 860).
    let with = both.at(none_last.utilization).expect("with diversion the network fills as far");
    assert!(with.utilization >= none_last.utilization);
    let (n, b) = (none_last.failed_share(), with.failed_share());
    assert!(b < n, "fewer failures at {:.0}% with diversion: {b} vs {n}", none_last.utilization * 100.0);
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

#[test]
fn sharing_verified_certificates_changes_nothing() {
    let run = |share_verified| {
        let mut p = params(30, Diversion::Both);
        p.max_inserts = 300;
        p.share_verified = share_verified;
        let report = storage(&p);
        (report.points, report.diverted_replicas, report.file_diversions, report.errors)
    };
    assert_eq!(run(true), run(false));
}

#[test]
fn signing_on_the_crypto_thread_gives_the_same_run_every_time_and_verifying_ahead_changes_nothing() {
    let run = |share_verified| {
        let mut p = params(30, Diversion::Both);
        p.max_inserts = 300;
        p.share_verified = share_verified;
        p.crypto_thread = true;
        let report = storage(&p);
        (report.points, report.diverted_replicas, report.file_diversions, report.errors)
    };
    let first = run(true);
    assert_eq!(first, run(true), "the thread's speed does not change the run");
    assert_eq!(first, run(false), "verifying ahead of the nodes changes no outcome");
    let at_once = {
        let mut p = params(30, Diversion::Both);
        p.max_inserts = 300;
        storage(&p).points
    };
    // Answers 1 ms later move some events, not the outcome: with this seed both runs agree
    // for 260 inserts, then differ by one failed insert.
    let (threaded, at_once) = (first.0.last().expect("points"), at_once.last().expect("points"));
    assert_eq!((threaded.inserts, at_once.inserts), (300, 300));
    assert!(threaded.failed.abs_diff(at_once.failed) <= 5, "{threaded:?} vs {at_once:?}");
    assert!((threaded.utilization - at_once.utilization).abs() < 0.03, "{threaded:?} vs {at_once:?}");
}
