//! Replica diversion through the simulated network: primaries that refuse divert to a leaf
//! and keep a pointer; the file survives the loss of the diverted replica or of the primary,
//! and maintenance restores k replicas.

use core::time::Duration;

use past_core::past::{FileId, PastConfig, Role};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim};

/// Nodes whose key starts with an even byte refuse every replica as primaries (t_pri = 0),
/// so their replicas are diverted.
fn network() -> PastSim {
    PastSim::build(
        pastry_config(16),
        60,
        17,
        |_| 16 << 20,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.audit_interval = None;
            config.caching = false;
            if key.0[0] % 2 == 0 {
                config.t_pri = 0.0;
            }
            config
        },
    )
}

fn all_have_k(sim: &PastSim, files: &[FileId], k: u8) -> bool {
    let live = sim.network.live_ids();
    files.iter().all(|&f| sim.replicas(&live, f, k) == usize::from(k))
}

fn holders_with(sim: &PastSim, file: FileId, wanted: fn(Role) -> bool) -> Vec<u32> {
    sim.network
        .live_nodes()
        .into_iter()
        .filter(|&n| matches!(sim.role_at(n, file), Some((r, true)) if wanted(r)))
        .collect()
}

fn maintain(sim: &mut PastSim) {
    sim.network.set_maintenance(Some(Duration::from_secs(5)), Some(Duration::from_secs(30)), true);
    sim.run_for(Duration::from_secs(90));
    sim.network.set_maintenance(None, None, true);
    sim.run_for(Duration::from_secs(30));
    sim.run();
}

fn retrievable(sim: &mut PastSim, files: &[FileId]) -> usize {
    let reader = sim.random_live();
    let ops: Vec<_> = files.iter().map(|&f| sim.lookup(reader, f)).collect();
    sim.run();
    sim.run_for(Duration::from_secs(10));
    ops.into_iter()
        .filter(|&op| matches!(sim.take(reader, op), Some(Outcome::Lookup(o)) if o.result.is_ok() && o.content_ok))
        .count()
}

#[test]
fn diverted_replicas_survive_the_loss_of_either_side() {
    let mut sim = network();
    let mut files = Vec::new();
    for seed in 0..20 {
        let client = (seed % 60) as u32;
        let op = sim.insert(client, 500 + seed, 60_000, 3, None).unwrap();
        sim.run();
        match sim.take(client, op) {
            Some(Outcome::Insert(Ok(inserted))) => files.push(inserted.certificate.body.file),
            other => panic!("insert failed: {other:?}"),
        }
    }
    assert!(all_have_k(&sim, &files, 3));
    let diverted: Vec<FileId> = files
        .iter()
        .copied()
        .filter(|&f| !holders_with(&sim, f, |r| matches!(r, Role::Pointer { .. })).is_empty())
        .collect();
    assert!(diverted.len() >= 5, "many primaries diverted: {}", diverted.len());

    // Lose a diverted replica: the pointer's node fetches the file again. One at a time.
    for &file in diverted.iter().take(3) {
        let Some(&victim) = holders_with(&sim, file, |r| matches!(r, Role::Diverted { .. })).first() else {
            continue;
        };
        sim.network.kill(victim);
        assert_eq!(retrievable(&mut sim, &files), files.len(), "retrievable from the other replicas");
        maintain(&mut sim);
        assert!(all_have_k(&sim, &files, 3), "k replicas again after losing a diverted replica");
    }

    // Lose a primary holding a pointer: its diverted replica and the others remain.
    for &file in diverted.iter().skip(3).take(3) {
        let Some(&victim) = holders_with(&sim, file, |r| matches!(r, Role::Pointer { .. })).first() else {
            continue;
        };
        sim.network.kill(victim);
        assert_eq!(retrievable(&mut sim, &files), files.len());
        maintain(&mut sim);
        assert!(all_have_k(&sim, &files, 3), "k replicas again after losing a pointer's node");
    }
    assert_eq!(retrievable(&mut sim, &files), files.len());
}
