//! A holder whose answer cannot reach the reader (no connection between the two: a path
//! WebRTC cannot open, or a tab out of connections) hands the lookup on to the other replica
//! holders, or, answering from a cached copy, passes it on along its route; the reader gets
//! the file at once instead of after its request timeout. Each test runs with answers
//! straight to the reader and with answers back along the lookup's route (the default):
//! there a holder hands a lookup on only when the reader is its neighbor on the route.

use core::time::Duration;

use past_core::past::{Answers, FileId, OpId, PastConfig, Role};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim};

const NODES: usize = 100;
const FILES: u64 = 20;
const K: u8 = 3;
/// Files of 3 KiB.
const FILE_SIZE: u64 = 3 * 1024;

fn network(caching: bool, relay: bool) -> PastSim {
    PastSim::build(
        pastry_config(16),
        NODES,
        29,
        |_| 16 << 20,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.caching = caching;
            config.answers = if relay { Answers::AlongRouteToStrangers } else { Answers::Straight };
            config.audit_interval = None;
            config
        },
    )
}

/// Inserts `count` files of 3 KiB from random nodes; returns their fileIds.
#[test]
fn a_reader_that_cannot_connect_to_the_holder_that_answers_gets_the_file_from_another() {
    for relay in [false, true] {
        reader_reaching_one_holder(relay);
    }
}

fn reader_reaching_one_holder(relay: bool) {
    let mut sim = network(false, relay);
    let files = sim.insert_from_random_nodes(FILES, FILE_SIZE, K);
    assert_eq!(files.len(), FILES as usize);
    let mut lookups = Vec::new();
    for file in files {
        let holders = replica_holders(&sim, file);
        assert_eq!(holders.len(), usize::from(K), "{file:?}");
        // A reader of its own for each file, so that it can reach that file's last holder.
        let reader = loop {
            let node = sim.random_live();
            if !holders.contains(&node) && lookups.iter().all(|&(r, _)| r != node) {
                break node;
            }
        };
        // The reader can reach only the last of the holders.
        for &holder in &holders[..holders.len() - 1] {
            sim.network.set_unconnectable(reader, holder);
        }
        lookups.push((reader, sim.lookup(reader, file)));
    }
    assert_all_read_before_the_timeout(&mut sim, lookups);
    let handed_on = sim.total(|s| s.lookups_handed_on);
    if relay {
        // Answers go back along the route: only a holder next to the reader on the route
        // sends its answer straight, and some do.
        assert!(sim.total(|s| s.bytes_relayed) > 0, "some answers went along the route");
        assert!(handed_on > 0, "a holder next to the reader hands the lookup on");
    } else {
        assert!(handed_on >= FILES / 2, "most lookups first reach a holder the reader cannot connect to: {handed_on}");
    }
    // The holders asked together are not asked again by each other.
    assert!(handed_on <= FILES, "each lookup is handed on once at most: {handed_on}");
}

/// The holders of the replicas of `file`, by index, in id order.
fn replica_holders(sim: &PastSim, file: FileId) -> Vec<u32> {
    let ids = sim.network.live_ids();
    ids.iter().filter(|&&id| sim.holds_replica(id, file)).filter_map(|&id| sim.index_of(id)).collect()
}

/// Runs for less than the request timeout (so no lookup is routed a second time): each
/// lookup has ended with the right content.
fn assert_all_read_before_the_timeout(sim: &mut PastSim, lookups: Vec<(u32, OpId)>) {
    let request_timeout = PastConfig::new(sim.keys[0], 0).request_timeout;
    sim.run_for(request_timeout - Duration::from_secs(1));
    for (reader, op) in lookups {
        match sim.take(reader, op) {
            Some(Outcome::Lookup(outcome)) => {
                assert!(outcome.result.is_ok() && outcome.content_ok, "{outcome:?}")
            }
            other => panic!("the lookup at node {reader} has not ended: {other:?}"),
        }
    }
}

#[test]
fn a_reader_that_cannot_connect_to_the_cached_copy_that_answers_gets_the_file_further_on() {
    for relay in [false, true] {
        reader_reaching_no_cached_copy(relay);
    }
}

fn reader_reaching_no_cached_copy(relay: bool) {
    let mut sim = network(true, relay);
    let files = sim.insert_from_random_nodes(4, FILE_SIZE, K);
    // Popular files: read from many nodes, so that copies are cached along their routes.
    let warm: Vec<_> = (0..60)
        .map(|i| {
            let reader = sim.random_live();
            (reader, sim.lookup(reader, files[i % files.len()]))
        })
        .collect();
    sim.run_for(Duration::from_secs(60));
    for (reader, op) in warm {
        assert!(matches!(sim.take(reader, op), Some(Outcome::Lookup(o)) if o.content_ok));
    }
    let mut lookups = Vec::new();
    let mut cachers = Vec::new();
    for &file in &files {
        let holders = replica_holders(&sim, file);
        let cached: Vec<u32> =
            (0..NODES as u32).filter(|&n| matches!(sim.role_at(n, file), Some((Role::Cached, _)))).collect();
        assert!(!cached.is_empty(), "{file:?} was cached somewhere");
        for _ in 0..5 {
            let reader = loop {
                let node = sim.random_live();
                if !holders.contains(&node) && !cached.contains(&node) && lookups.iter().all(|&(r, _)| r != node) {
                    break node;
                }
            };
            // The reader can reach only the last of the replica holders.
            for &node in cached.iter().chain(&holders[..holders.len() - 1]) {
                sim.network.set_unconnectable(reader, node);
            }
            lookups.push((reader, sim.lookup(reader, file)));
        }
        cachers.extend(cached);
    }
    cachers.sort_unstable();
    cachers.dedup();
    assert_all_read_before_the_timeout(&mut sim, lookups);
    let passed_on: u64 = cachers.iter().map(|&n| sim.past(n).stats().lookups_handed_on).sum();
    assert!(passed_on > 0, "some lookups first met a cached copy the reader cannot connect to");
}
