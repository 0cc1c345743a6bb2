//! A holder whose answer cannot reach the reader (no connection between the two: a path
//! WebRTC cannot open, or a tab out of connections) hands the lookup on to the other replica
//! holders, and the reader gets the file at once instead of after its request timeout.

use core::time::Duration;

use past_core::past::{FileId, PastConfig};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim};

const NODES: usize = 100;
const FILES: u64 = 20;
const K: u8 = 3;

fn network() -> PastSim {
    PastSim::build(
        pastry_config(16),
        NODES,
        29,
        |_| 16 << 20,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.caching = false;
            config.audit_interval = None;
            config
        },
    )
}

/// Inserts files of 3 KiB from random nodes; returns their fileIds.
fn insert(sim: &mut PastSim) -> Vec<FileId> {
    let ops: Vec<_> = (0..FILES)
        .map(|seed| {
            let client = sim.random_live();
            (client, sim.insert(client, seed, 3 * 1024, K, None).expect("a valid insert"))
        })
        .collect();
    sim.run_for(Duration::from_secs(60));
    ops.into_iter()
        .filter_map(|(client, op)| match sim.take(client, op) {
            Some(Outcome::Insert(Ok(inserted))) => Some(inserted.certificate.body.file),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reader_that_cannot_connect_to_the_holder_that_answers_gets_the_file_from_another() {
    let mut sim = network();
    let files = insert(&mut sim);
    assert_eq!(files.len(), FILES as usize);
    let ids = sim.network.live_ids();
    let request_timeout = PastConfig::new(sim.keys[0], 0).request_timeout;
    let mut lookups = Vec::new();
    for file in files {
        let holders: Vec<u32> =
            ids.iter().filter(|&&id| sim.holds_replica(id, file)).filter_map(|&id| sim.index_of(id)).collect();
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
    // Less than the request timeout: no lookup is routed a second time.
    sim.run_for(request_timeout - Duration::from_secs(1));
    for (reader, op) in lookups {
        match sim.take(reader, op) {
            Some(Outcome::Lookup(outcome)) => {
                assert!(outcome.result.is_ok() && outcome.content_ok, "{outcome:?}")
            }
            other => panic!("the lookup at node {reader} has not ended: {other:?}"),
        }
    }
    let handed_on = sim.total(|s| s.lookups_handed_on);
    assert!(handed_on >= FILES / 2, "most lookups first reach a holder the reader cannot connect to: {handed_on}");
}
