//! Inserts and reclaims routed again on randomized routes: with 10 % of the nodes silently
//! dropping what they should forward, an insert or reclaim whose route meets one is routed
//! again after `request_timeout`, and gets through where a retry on the same route does not.

use core::time::Duration;

use past_core::Config;
use past_core::past::{FileId, PastConfig};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim};

const NODES: usize = 200;
const FILES: usize = 150;

/// Inserts and reclaims acknowledged, with a tenth of the nodes dropping.
#[derive(Debug, PartialEq, Eq)]
struct Done {
    inserted: usize,
    reclaimed: usize,
    dropped: u64,
}

/// Seeds run: a sum over several networks, so that the comparison does not rest on how
/// many operations one network's droppers happen to meet.
const SEEDS: core::ops::Range<u64> = 11..16;

fn run(seed: u64, best_hop_chance: f64) -> Done {
    let mut config = pastry_config(16);
    config.retry_best_hop_chance = best_hop_chance;
    let mut sim = PastSim::build(
        config,
        NODES,
        seed,
        |_| 16 << 20,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.caching = false;
            config.audit_interval = None;
            config
        },
    );
    // Files inserted while every node is honest, to reclaim while some drop.
    let before = insert(&mut sim, 0..FILES as u64);
    assert_eq!(before.len(), FILES);
    // Every tenth node (indexes say nothing of ids or places).
    for node in (0..NODES as u32).step_by(10) {
        sim.network.set_dropper(node, true);
    }
    let inserted = insert(&mut sim, FILES as u64..2 * FILES as u64).len();
    let reclaims: Vec<_> = before.iter().map(|&(client, file)| (client, sim.reclaim(client, file, None))).collect();
    sim.run_for(Duration::from_secs(120));
    let reclaimed =
        reclaims.into_iter().filter(|&(c, op)| matches!(sim.take(c, op), Some(Outcome::Reclaim(Ok(_))))).count();
    Done { inserted, reclaimed, dropped: sim.network.dropped() }
}

/// Inserts a file of 2 KiB from a random node for each seed; returns the clients and files
/// inserted.
fn insert(sim: &mut PastSim, seeds: core::ops::Range<u64>) -> Vec<(u32, FileId)> {
    let ops: Vec<_> = seeds
        .map(|seed| {
            let client = sim.random_live();
            (client, sim.insert(client, seed, 2048, 3, None).expect("a valid insert"))
        })
        .collect();
    sim.run_for(Duration::from_secs(120));
    ops.into_iter()
        .filter_map(|(client, op)| match sim.take(client, op) {
            Some(Outcome::Insert(Ok(inserted))) => Some((client, inserted.certificate.body.file)),
            _ => None,
        })
        .collect()
}

#[test]
fn inserts_and_reclaims_get_past_nodes_that_drop() {
    let (mut same_missed, mut randomized_missed) = (0, 0);
    for seed in SEEDS {
        let same = run(seed, 1.0);
        let randomized = run(seed, Config::default().retry_best_hop_chance);
        assert!(same.dropped > 0 && randomized.dropped > 0);
        eprintln!("seed {seed}: same route {same:?}, randomized routes {randomized:?}");
        same_missed += 2 * FILES - same.inserted - same.reclaimed;
        randomized_missed += 2 * FILES - randomized.inserted - randomized.reclaimed;
    }
    // 750 inserts and 750 reclaims on each side; 2026-12-01: 125 not acknowledged on the
    // same route (66 inserts, 59 reclaims), 59 on randomized routes (27 and 32).
    assert!(same_missed >= 40, "retries on the same route meet the same dropper: {same_missed} missed");
    assert!(
        randomized_missed * 3 <= same_missed * 2,
        "randomized retries miss at most two thirds as many: {randomized_missed} vs {same_missed}"
    );
}
