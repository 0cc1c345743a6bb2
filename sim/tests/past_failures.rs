//! Failures during an insert and bad data during a lookup, through the simulated network:
//! an insert interrupted by a failed node is never claimed as a success and leaves nothing
//! stored; a holder serving bad data is detected and another is read.

use core::time::Duration;

use past_core::past::certificate::{ContentHasher, chunk_list_digest};
use past_core::past::{
    CHUNK_SIZE, Ed25519Signer, FileCertificate, FileCertificateBody, FileId, InsertError, PastConfig, PastEvent,
    Signed, SignedBody,
};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim, closest_in, content, file_name};

const CLIENT: u32 = 4;
const SIZE: u64 = 40 * CHUNK_SIZE as u64;

fn network(seed: u64) -> PastSim {
    PastSim::build(
        pastry_config(16),
        50,
        seed,
        |_| 64 << 20,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.audit_interval = None;
            config
        },
    )
}

fn certificate(key: &Ed25519Signer, seed: u64, size: u64, k: u8) -> FileCertificate {
    let mut hasher = ContentHasher::new();
    for chunk in content(seed, size).chunks(CHUNK_SIZE) {
        hasher.update(chunk);
    }
    let (content_hash, hashes, _) = hasher.finish();
    let owner = key.public_key();
    let name = file_name(seed);
    let body = FileCertificateBody {
        file: FileId::derive(&name, &owner, 3),
        content_hash,
        chunk_list: chunk_list_digest(&hashes),
        k,
        salt: 3,
        created: 1,
        size,
        name,
        owner,
    };
    let signature = key.sign_message(&body.signing_bytes());
    Signed { body, signer: owner, signature }
}

/// Whether any live node holds the file in any state.
fn anywhere(sim: &PastSim, file: FileId) -> Vec<u32> {
    sim.network.live_nodes().into_iter().filter(|&n| sim.role_at(n, file).is_some()).collect()
}

/// Starts an insert of a 40-chunk file with k = 3 and kills `pick(holders, client)` once
/// the content is flowing; returns the client's outcome and the file.
fn insert_and_kill(seed: u64, pick: impl Fn(&[u32]) -> u32) -> (PastSim, Option<Outcome>, FileId, u32) {
    let mut sim = network(seed);
    let owner = Ed25519Signer::from_seed([50; 32]);
    sim.add_key(CLIENT, owner.clone());
    let cert = certificate(&owner, seed, SIZE, 3);
    let file = cert.body.file;
    let live = sim.network.live_ids();
    let holders: Vec<u32> =
        closest_in(&live, file.key(), 3).into_iter().map(|id| sim.index_of(id).expect("known node")).collect();
    let victim = pick(&holders);
    let op = sim.insert_certificate(CLIENT, cert, seed);
    sim.run_for(Duration::from_millis(300));
    assert!(sim.outcomes.is_empty(), "the insert is still running when the node fails");
    sim.network.kill(victim);
    sim.run_for(Duration::from_secs(400));
    sim.run();
    let outcome = if victim == CLIENT { None } else { sim.take(CLIENT, op) };
    (sim, outcome, file, victim)
}

#[test]
fn a_primary_failing_mid_insert_fails_the_insert_and_leaves_nothing() {
    let (sim, outcome, file, victim) =
        insert_and_kill(31, |holders| *holders.iter().rev().find(|&&h| h != CLIENT).unwrap());
    match outcome {
        Some(Outcome::Insert(Err(InsertError::NodeFailed { node }))) => assert_eq!(sim.index_of(node), Some(victim)),
        Some(Outcome::Insert(Err(InsertError::Timeout { .. }))) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(anywhere(&sim, file), Vec::<u32>::new(), "no replica stays, committed or not");
}

#[test]
fn the_root_failing_mid_insert_fails_the_insert_and_leaves_nothing() {
    let (sim, outcome, file, _) = insert_and_kill(32, |holders| holders[0]);
    match outcome {
        Some(Outcome::Insert(Err(InsertError::Timeout { receipts: 0, .. } | InsertError::NodeFailed { .. }))) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(anywhere(&sim, file), Vec::<u32>::new());
}

#[test]
fn the_client_failing_mid_insert_leaves_nothing() {
    let (sim, _, file, _) = insert_and_kill(33, |_| CLIENT);
    assert_eq!(anywhere(&sim, file), Vec::<u32>::new());
}

#[test]
fn a_holder_serving_bad_data_is_detected_and_another_is_read() {
    let mut sim = network(34);
    let size = 5 * CHUNK_SIZE as u64 + 3;
    let op = sim.insert(CLIENT, 77, size, 3, None).unwrap();
    sim.run();
    let Some(Outcome::Insert(Ok(inserted))) = sim.take(CLIENT, op) else { panic!("insert failed") };
    let file = inserted.certificate.body.file;
    let live = sim.network.live_ids();
    let holders: Vec<u32> = closest_in(&live, file.key(), 3).into_iter().map(|id| sim.index_of(id).unwrap()).collect();
    // Two of the three replicas go bad in chunk 2.
    for &h in &holders[..2] {
        sim.network.node_mut(h).app_mut().store.corrupt(file, 2);
    }
    let reader = (0..50).find(|n| !holders.contains(n) && *n != CLIENT).unwrap();
    let op = sim.lookup(reader, file);
    sim.run_for(Duration::from_secs(5));
    sim.run();
    let Some(Outcome::Lookup(outcome)) = sim.take(reader, op) else { panic!("lookup did not end") };
    let found = outcome.result.expect("the good replica is found");
    assert_eq!(sim.index_of(found.holder), Some(holders[2]), "read from the good replica");
    assert!(outcome.content_ok, "every chunk handed over matches");
    assert_eq!(outcome.bytes, size);
    assert!(sim.past(reader).stats().bad_chunks >= 1, "the bad chunk was seen and refused");
}

#[test]
fn lookups_report_bad_data_events() {
    let mut sim = network(35);
    let op = sim.insert(CLIENT, 78, 1000, 1, None).unwrap();
    sim.run();
    let Some(Outcome::Insert(Ok(inserted))) = sim.take(CLIENT, op) else { panic!("insert failed") };
    let file = inserted.certificate.body.file;
    let live = sim.network.live_ids();
    let holder = sim.index_of(closest_in(&live, file.key(), 1)[0]).unwrap();
    sim.network.node_mut(holder).app_mut().store.corrupt(file, 0);
    let reader = (0..50).find(|&n| n != holder).unwrap();
    let now = sim.network.now();
    sim.network.node_mut(reader).lookup(file, now);
    sim.network.flush(reader);
    sim.run_for(Duration::from_secs(20));
    let mut bad = false;
    let mut failed = false;
    while let Some(event) = sim.network.node_mut(reader).poll_past_event() {
        match event {
            PastEvent::BadData { holder: h, .. } => bad |= sim.index_of(h) == Some(holder),
            PastEvent::LookupDone { result, .. } => failed = result.is_err(),
            PastEvent::LookupChunk { .. } => panic!("no bad chunk is handed over"),
            _ => {}
        }
    }
    assert!(bad && failed, "the only replica is bad: reported, and the lookup fails");
}
