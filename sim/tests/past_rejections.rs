//! Every way an insert or reclaim can be refused, through the simulated network: each is
//! rejected with its own error, and nothing previously stored changes.

use core::time::Duration;
use std::collections::BTreeMap;

use past_core::past::certificate::{ContentHasher, chunk_list_digest};
use past_core::past::{
    CHUNK_SIZE, CertificateError, Ed25519Signer, FileCertificate, FileCertificateBody, FileId, InsertError, PastConfig,
    ReclaimCertificate, ReclaimCertificateBody, ReclaimError, Role, Signed, SignedBody,
};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim, content, file_name};

const NODES: usize = 40;
const CLIENT: u32 = 3;

fn network() -> PastSim {
    PastSim::build(
        pastry_config(16),
        NODES,
        21,
        |_| 8 << 20,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.audit_interval = None;
            config.max_file_size = 2 << 20;
            config.owner_limit = 1 << 20;
            config.owner_quota = 8 << 20;
            config
        },
    )
}

/// What every node holds: (node, file) -> (role, committed), plus bytes used per node.
/// Every (node, file) held, with its role and whether committed; and bytes used per node.
type Snapshot = (BTreeMap<(u32, FileId), (Role, bool)>, Vec<u64>);

fn snapshot(sim: &PastSim) -> Snapshot {
    let mut files = BTreeMap::new();
    let mut used = Vec::new();
    for node in sim.network.live_nodes() {
        for (file, role, committed) in sim.past(node).files() {
            files.insert((node, file), (role, committed));
        }
        used.push(sim.past(node).used());
    }
    (files, used)
}

/// Runs long enough for every abandoned replica to expire.
fn settle(sim: &mut PastSim) {
    sim.run();
    sim.run_for(Duration::from_secs(400));
}

fn insert_ok(sim: &mut PastSim, seed: u64, size: u64, k: u8) -> FileCertificate {
    let op = sim.insert(CLIENT, seed, size, k, None).expect("insert starts");
    sim.run();
    match sim.take(CLIENT, op) {
        Some(Outcome::Insert(Ok(inserted))) => inserted.certificate,
        other => panic!("insert failed: {other:?}"),
    }
}

fn insert_err(sim: &mut PastSim, op: past_core::past::OpId) -> InsertError {
    settle(sim);
    match sim.take(CLIENT, op) {
        Some(Outcome::Insert(Err(error))) => error,
        other => panic!("expected an insert error, got {other:?}"),
    }
}

/// A certificate for content generated from `seed`, signed by `key`.
fn certificate(key: &Ed25519Signer, seed: u64, size: u64, k: u8, salt: u64) -> FileCertificate {
    certificate_at(key, seed, size, k, salt, 1)
}

fn certificate_at(key: &Ed25519Signer, seed: u64, size: u64, k: u8, salt: u64, created: u64) -> FileCertificate {
    let bytes = content(seed, size);
    let mut hasher = ContentHasher::new();
    for chunk in bytes.chunks(CHUNK_SIZE) {
        hasher.update(chunk);
    }
    let (content_hash, hashes, _) = hasher.finish();
    let owner = key.public_key();
    let name = file_name(seed);
    let body = FileCertificateBody {
        file: FileId::derive(&name, &owner, salt),
        content_hash,
        chunk_list: chunk_list_digest(&hashes),
        k,
        salt,
        created,
        size,
        name,
        owner,
    };
    sign(key, body)
}

fn sign(key: &Ed25519Signer, body: FileCertificateBody) -> FileCertificate {
    let signature = key.sign_message(&body.signing_bytes());
    Signed { body, signer: key.public_key(), signature }
}

fn assert_certificate_error(error: InsertError, expected: fn(&CertificateError) -> bool) {
    match error {
        InsertError::Certificate { error, .. } if expected(&error) => {}
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn bad_inserts_are_rejected_and_change_nothing() {
    let mut sim = network();
    let owner = Ed25519Signer::from_seed([42; 32]);
    sim.add_key(CLIENT, owner.clone());
    // Files already stored, which no rejected insert may disturb.
    let stored = insert_ok(&mut sim, 1, 100_000, 3);
    insert_ok(&mut sim, 2, 3000, 2);
    settle(&mut sim);
    let before = snapshot(&sim);

    // Forged certificate: the body was changed after signing.
    let mut forged = certificate(&owner, 10, 5000, 3, 1);
    forged.body.created += 1;
    let op = sim.insert_certificate(CLIENT, forged, 10);
    assert_certificate_error(insert_err(&mut sim, op), |e| matches!(e, CertificateError::BadSignature));

    // Wrong fileId derivation: signed, but the fileId is not SHA-1(name, owner, salt).
    let mut body = certificate(&owner, 11, 5000, 3, 1).body;
    body.file = FileId([7; 20]);
    let op = sim.insert_certificate(CLIENT, sign(&owner, body), 11);
    assert_certificate_error(insert_err(&mut sim, op), |e| matches!(e, CertificateError::FileIdMismatch { .. }));

    // Wrong owner: names one owner, signed by another key.
    let other = Ed25519Signer::from_seed([43; 32]);
    let mut cert = certificate(&owner, 12, 5000, 3, 1);
    cert.signer = other.public_key();
    cert.signature = other.sign_message(&cert.body.signing_bytes());
    let op = sim.insert_certificate(CLIENT, cert, 12);
    assert_certificate_error(insert_err(&mut sim, op), |e| matches!(e, CertificateError::WrongOwner { .. }));

    // Wrong content: the certificate is for other content than what the client serves.
    let op = sim.insert_certificate(CLIENT, certificate(&owner, 13, 3 * CHUNK_SIZE as u64, 3, 1), 99);
    match insert_err(&mut sim, op) {
        InsertError::ContentMismatch { .. } => {}
        other => panic!("unexpected error {other:?}"),
    }
    let op = sim.insert_certificate(CLIENT, certificate(&owner, 14, 500, 3, 1), 98);
    match insert_err(&mut sim, op) {
        InsertError::ContentMismatch { chunk: 0, .. } => {}
        other => panic!("unexpected error {other:?}"),
    }

    // k out of range: refused at once by the client, and by the root when sent anyway.
    match sim.insert(CLIENT, 15, 100, 10, None) {
        Err(InsertError::InvalidK { k: 10, max: 9 }) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(sim.insert(CLIENT, 15, 100, 0, None), Err(InsertError::InvalidK { k: 0, .. })));
    let op = sim.insert_certificate(CLIENT, certificate(&owner, 15, 100, 12, 1), 15);
    assert_certificate_error(insert_err(&mut sim, op), |e| matches!(e, CertificateError::InvalidK { k: 12, max: 9 }));

    // Oversized: over the nodes' 2 MiB limit.
    match sim.insert(CLIENT, 16, 3 << 20, 3, None) {
        Err(InsertError::FileTooLarge { size, max }) if size == 3 << 20 && max == 2 << 20 => {}
        other => panic!("unexpected {other:?}"),
    }
    let op = sim.insert_certificate(CLIENT, certificate(&owner, 16, (2 << 20) + 1, 3, 1), 16);
    assert_certificate_error(insert_err(&mut sim, op), |e| matches!(e, CertificateError::TooLarge { .. }));

    // Over quota: 8 MiB per owner at the client; two inserts of 9 x 400 KiB fit, a third not.
    let size = 400 << 10;
    for seed in [17, 18] {
        let op = sim.insert(CLIENT, seed, size, 9, Some(owner.public_key())).expect("within quota");
        settle(&mut sim);
        assert!(matches!(sim.take(CLIENT, op), Some(Outcome::Insert(Ok(_)))));
    }
    let quota_before = snapshot(&sim);
    match sim.insert(CLIENT, 19, size, 9, Some(owner.public_key())) {
        Err(InsertError::QuotaExceeded { needed, available }) => {
            assert_eq!(needed, 9 * size);
            assert_eq!(available, (8 << 20) - 18 * size);
        }
        other => panic!("unexpected {other:?}"),
    }
    settle(&mut sim);
    assert_eq!(snapshot(&sim), quota_before, "an insert over quota changes nothing");

    // Per-owner limit at the storing nodes: 1 MiB per owner per node.
    let limited = Ed25519Signer::from_seed([44; 32]);
    sim.add_key(CLIENT, limited.clone());
    let limit_before = snapshot(&sim);
    let op = sim.insert(CLIENT, 20, 3 << 19, 3, Some(limited.public_key())).expect("quota is fine");
    match insert_err(&mut sim, op) {
        InsertError::OwnerLimit { limit, .. } => assert_eq!(limit, 1 << 20),
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(snapshot(&sim), limit_before, "a refused insert changes nothing");
    assert_eq!(sim.past(CLIENT).quota_available(&limited.public_key()), 8 << 20, "the quota is credited back");

    // Duplicate: the same certificate again.
    let before_duplicate = snapshot(&sim);
    let op = sim.insert_certificate(CLIENT, stored.clone(), 1);
    match insert_err(&mut sim, op) {
        InsertError::Duplicate { file, .. } => assert_eq!(file, stored.body.file),
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(snapshot(&sim), before_duplicate, "a duplicate insert changes nothing");

    // The files stored at first are untouched.
    let after = snapshot(&sim);
    for (key, value) in &before.0 {
        assert_eq!(after.0.get(key), Some(value), "{key:?} changed");
    }
}

#[test]
fn reclaims_need_the_owner_and_cannot_be_replayed() {
    let mut sim = network();
    let owner = Ed25519Signer::from_seed([45; 32]);
    sim.add_key(CLIENT, owner.clone());
    let op = sim.insert_certificate(CLIENT, certificate_at(&owner, 5, 70_000, 3, 1, 1), 5);
    settle(&mut sim);
    assert!(matches!(sim.take(CLIENT, op), Some(Outcome::Insert(Ok(_)))));
    let file = certificate(&owner, 5, 70_000, 3, 1).body.file;
    let other_node = 7;
    settle(&mut sim);
    let before = snapshot(&sim);

    // Reclaim by another key: a node that is not the owner signs.
    let op = sim.reclaim(other_node, file, None);
    settle(&mut sim);
    match sim.take(other_node, op) {
        Some(Outcome::Reclaim(Err(ReclaimError::NotOwner { .. }))) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(snapshot(&sim), before, "a reclaim by another key changes nothing");

    // The owner's reclaim works.
    let op = sim.reclaim(CLIENT, file, Some(owner.public_key()));
    settle(&mut sim);
    let certificate: ReclaimCertificate = match sim.take(CLIENT, op) {
        Some(Outcome::Reclaim(Ok(reclaimed))) => {
            assert_eq!(reclaimed.receipts.len(), 3);
            reclaimed.certificate
        }
        other => panic!("unexpected {other:?}"),
    };

    // The same file inserted again (same name, owner and salt: same fileId).
    let again = certificate_at(&owner, 5, 70_000, 3, 1, 2);
    assert_eq!(again.body.file, file);
    let op = sim.insert_certificate(CLIENT, again.clone(), 5);
    settle(&mut sim);
    assert!(matches!(sim.take(CLIENT, op), Some(Outcome::Insert(Ok(_)))), "the fileId is free again");
    let before = snapshot(&sim);

    // Replaying the old reclaim certificate is refused and leaves the new insert alone.
    let op = sim.reclaim_certificate(CLIENT, certificate.clone());
    settle(&mut sim);
    match sim.take(CLIENT, op) {
        Some(Outcome::Reclaim(Err(ReclaimError::Replayed { .. }))) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(snapshot(&sim), before, "a replayed reclaim changes nothing");
    let live = sim.network.live_ids();
    assert_eq!(sim.replicas(&live, again.body.file, 3), 3);

    // A reclaim certificate with a bad signature.
    let mut forged = certificate;
    forged.body = ReclaimCertificateBody { nonce: 77, ..forged.body };
    let op = sim.reclaim_certificate(CLIENT, forged);
    settle(&mut sim);
    assert!(matches!(sim.take(CLIENT, op), Some(Outcome::Reclaim(Err(ReclaimError::BadSignature { .. })))));
    assert_eq!(snapshot(&sim), before);
}
