//! Replica maintenance through the simulated network, with fixed seeds: what nodes know about
//! who holds a file stays true when a holder gives its replica up.

use std::time::Duration;

use past_core::Id;
use past_core::past::{CHUNK_SIZE, Ed25519Signer, FileId, PastConfig, Role};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim};

fn config(key: past_core::past::PublicKey) -> PastConfig {
    let mut config = PastConfig::new(key, 64 << 20);
    config.audit_interval = None;
    config
}

/// A network whose nodes detect failures: keep-alives every 5 s.
fn network(nodes: usize, seed: u64) -> PastSim {
    let mut sim = PastSim::build(pastry_config(16), nodes, seed, |_| 64 << 20, |key, _| config(key));
    sim.network.set_maintenance(Some(Duration::from_secs(5)), None, true);
    sim
}

/// A key whose node id lands closer to `key` than the farthest of `holders`.
fn key_among(holders: &[Id], key: Id) -> Ed25519Signer {
    (0u64..)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            Ed25519Signer::from_seed(seed)
        })
        .find(|k| holders.iter().any(|h| k.node_id().ring_distance(key) < h.ring_distance(key)))
        .expect("some key lands among the holders")
}

fn insert(sim: &mut PastSim, client: u32) -> FileId {
    let op = sim.insert(client, 91, 4 * CHUNK_SIZE as u64, 3, None).expect("insert starts");
    sim.run();
    let Some(Outcome::Insert(Ok(inserted))) = sim.take(client, op) else { panic!("insert failed") };
    inserted.certificate.body.file
}

/// A newcomer joins among the 3 closest to a file; the holder it pushes out gives its
/// replica up (keeping a cached copy) once the newcomer holds one. Then the newcomer and
/// the closest holder fail, and the pushed-out node is among the 3 closest again. The
/// remaining holder must not count it as a holder from what it said before: maintenance
/// has three live nodes hold a replica again.
#[test]
fn a_node_that_gave_its_replica_up_is_asked_again_when_it_is_among_the_k_closest() {
    let mut sim = network(60, 41);
    let file = insert(&mut sim, 5);
    let key = file.key();
    let holders = sim.closest_live(&sim.network.live_ids(), key, 3);
    let index = |sim: &PastSim, id: Id| sim.index_of(id).expect("a known node");
    let newcomer_key = key_among(&holders, key);
    let newcomer = sim.spawn(newcomer_key.clone(), config(newcomer_key.public_key()));
    sim.run_for(Duration::from_secs(30));
    let live = sim.network.live_ids();
    assert_eq!(sim.replicas(&live, file, 3), 3, "the newcomer pulled its replica");
    let closest = sim.closest_live(&live, key, 3);
    let pushed_out = *holders.iter().find(|h| !closest.contains(h)).expect("a holder was pushed out");
    assert_eq!(
        sim.role_at(index(&sim, pushed_out), file),
        Some((Role::Cached, true)),
        "the node pushed out of the 3 closest keeps a cached copy only"
    );

    sim.network.kill(newcomer);
    let other = *holders.iter().find(|&&h| h != pushed_out).expect("another holder");
    sim.network.kill(index(&sim, other));
    sim.run_for(Duration::from_secs(60));
    let live = sim.network.live_ids();
    let closest = sim.closest_live(&live, key, 3);
    assert!(closest.contains(&pushed_out), "the pushed-out node is among the 3 closest again");
    assert_eq!(
        sim.replicas(&live, file, 3),
        3,
        "replicas at the 3 closest: {:?}",
        closest.iter().map(|&id| sim.role_at(index(&sim, id), file)).collect::<Vec<_>>()
    );
}

/// One holder of a file fails and the next node is offered the file by both others. One of
/// them serves a corrupted chunk. Whichever the newcomer pulls from first, it ends up with a
/// verified replica: a failed pull goes on from the other source it was offered, instead of
/// trying the bad one again and giving up.
#[test]
fn a_maintenance_pull_that_fails_goes_on_from_another_offered_source() {
    let mut saw_bad_data = false;
    for corrupted in 0..2 {
        let mut sim = network(60, 43);
        let file = insert(&mut sim, 5);
        let key = file.key();
        let mut closest = sim.closest_live(&sim.network.live_ids(), key, 4);
        closest.sort_by_key(|&id| id.ring_distance(key));
        let index = |sim: &PastSim, id: Id| sim.index_of(id).expect("a known node");
        let survivors = [closest[0], closest[1]];
        let next = index(&sim, closest[3]);
        let bad = index(&sim, survivors[corrupted]);
        sim.network.node_mut(bad).app_mut().store.corrupt(file, 1);
        sim.network.kill(index(&sim, closest[2]));
        sim.run_for(Duration::from_secs(60));
        saw_bad_data |= sim.past(next).stats().bad_chunks > 0;
        let live = sim.network.live_ids();
        assert_eq!(
            sim.role_at(next, file),
            Some((Role::Primary, true)),
            "with holder {corrupted} corrupted, the next closest holds a replica"
        );
        assert_eq!(sim.replicas(&live, file, 3), 3);
    }
    assert!(saw_bad_data, "in one of the two runs the next closest pulled from the corrupted holder first");
}
