//! PAST through the simulated network: insert, lookup and reclaim with fixed seeds.

use past_core::past::{CHUNK_SIZE, Ed25519Signer, PastConfig, Role};
use past_core::{DigitBase, Id};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim};

fn network(nodes: usize, seed: u64) -> PastSim {
    PastSim::build(
        pastry_config(16),
        nodes,
        seed,
        |_| 64 << 20,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.audit_interval = None;
            config
        },
    )
}

#[test]
fn insert_lookup_reclaim() {
    let mut sim = network(60, 11);
    let size = 3 * CHUNK_SIZE as u64 + 17;
    let client = 5;
    let op = sim.insert(client, 42, size, 3, None).unwrap();
    sim.run();
    let Some(Outcome::Insert(Ok(inserted))) = sim.take(client, op) else { panic!("insert failed") };
    assert_eq!(inserted.receipts.len(), 3);
    let file = inserted.certificate.body.file;
    let live = sim.network.live_ids();
    assert_eq!(sim.replicas(&live, file, 3), 3, "the 3 closest nodes hold it");

    let reader = 40;
    let op = sim.lookup(reader, file);
    sim.run();
    let Some(Outcome::Lookup(outcome)) = sim.take(reader, op) else { panic!("lookup did not end") };
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert!(outcome.content_ok);
    assert_eq!(outcome.bytes, size);
    // The route the reader is told: the nodes the lookup went through, in order, each
    // sharing at least as long a prefix with the fileId as the one before (or, at the
    // end, numerically closer from the leaf set), ending at the node that answered.
    let Ok(found) = &outcome.result else { unreachable!() };
    let key = file.key();
    assert_eq!(outcome.route.len(), usize::from(found.hops), "route {:?}", outcome.route);
    assert!(!outcome.route.is_empty(), "reader {reader} holds no replica, so the lookup went somewhere");
    assert_eq!(outcome.route.last(), Some(&found.holder), "the route ends at the holder");
    let path: Vec<Id> = std::iter::once(sim.network.id(reader)).chain(outcome.route.iter().copied()).collect();
    for pair in path.windows(2) {
        let prefix = |id: Id| DigitBase::DEFAULT.shared_prefix(id, key);
        let closer = prefix(pair[1]) > prefix(pair[0]) || pair[1].ring_distance(key) < pair[0].ring_distance(key);
        assert!(closer, "hop {:?} -> {:?} made no progress towards {key:?}", pair[0], pair[1]);
    }

    let op = sim.reclaim(client, file, None);
    sim.run();
    let Some(Outcome::Reclaim(Ok(reclaimed))) = sim.take(client, op) else { panic!("reclaim failed") };
    assert_eq!(reclaimed.receipts.len(), 3);
    for node in sim.network.live_nodes() {
        assert!(!matches!(
            sim.role_at(node, file),
            Some((Role::Primary | Role::Diverted { .. } | Role::Pointer { .. }, _))
        ));
    }
}

/// A node joins among the k closest to a file and starts pulling its replica; the owner
/// reclaims the file before the pull ends. The pull is stopped, the node the newcomer pushed
/// out of the k closest (still holding its replica) is asked too, and once maintenance has
/// run no node holds a replica of the reclaimed file.
#[test]
fn a_reclaim_while_a_newcomer_pulls_the_replica_leaves_no_replica() {
    let mut sim = network(60, 23);
    let size = 40 * CHUNK_SIZE as u64;
    let client = 5;
    let op = sim.insert(client, 77, size, 3, None).unwrap();
    sim.run();
    let Some(Outcome::Insert(Ok(inserted))) = sim.take(client, op) else { panic!("insert failed") };
    let file = inserted.certificate.body.file;
    let key = file.key();
    let holders = sim.closest_live(&sim.network.live_ids(), key, 3);
    // A key whose node id lands among the 3 closest to the file.
    let newcomer_key = (0u64..)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&i.to_le_bytes());
            Ed25519Signer::from_seed(seed)
        })
        .find(|k| holders.iter().any(|h| k.node_id().ring_distance(key) < h.ring_distance(key)))
        .unwrap();
    let public = newcomer_key.public_key();
    let mut config = PastConfig::new(public, 64 << 20);
    config.audit_interval = None;
    let newcomer = sim.spawn(newcomer_key, config);
    // Until the newcomer is pulling its replica (maintenance starts a second after the leaf
    // set changed).
    let mut pulling = false;
    for _ in 0..400 {
        sim.run_for(std::time::Duration::from_millis(10));
        // Held as a replica, not yet committed: still arriving.
        if matches!(sim.role_at(newcomer, file), Some((Role::Primary | Role::Diverted { .. }, false))) {
            pulling = true;
            break;
        }
    }
    assert!(pulling, "the newcomer never started pulling the replica");

    let op = sim.reclaim(client, file, None);
    sim.run();
    let Some(Outcome::Reclaim(Ok(reclaimed))) = sim.take(client, op) else { panic!("reclaim failed") };
    assert_eq!(reclaimed.receipts.len(), 3, "the three earlier holders each sign a receipt; the newcomer has none");
    sim.run_for(std::time::Duration::from_secs(60));
    for node in sim.network.live_nodes() {
        assert!(
            !matches!(sim.role_at(node, file), Some((Role::Primary | Role::Diverted { .. } | Role::Pointer { .. }, _))),
            "node {node} still holds a replica of the reclaimed file: {:?}",
            sim.role_at(node, file)
        );
    }
}
