//! A driver whose storage and keys answer later, as IndexedDB and WebCrypto do: requests are
//! completed a round after they are made, reads in reverse order. Insert, lookup and reclaim
//! still work, on three nodes talking through an in-memory loop.

use std::sync::Arc;

use past_core::past::{
    Ed25519Signer, InsertRequestSpec, Keyring, MemoryStore, Past, PastConfig, PastEvent, SignRequest, Signer, Storage,
    StorageError, StorageOp, StorageRequest, UploadId,
};
use past_core::past::{FileId, InsertError, LookupError, OpId, PastMessage, Refusal};
use past_core::wire::Message;
use past_core::{Config, Id, Node, Time};

struct Host {
    node: Node<Past>,
    store: MemoryStore,
    keys: Keyring,
    storage: Vec<StorageRequest>,
    signing: Vec<SignRequest>,
    events: Vec<PastEvent>,
    /// Chunk writes fail as a full browser store's do (`QuotaExceededError`).
    full: bool,
    /// Gone without a word: messages to it are lost.
    silent: bool,
    /// Store receipts this host received.
    receipts: usize,
}

fn hosts(n: u8) -> Vec<Host> {
    hosts_with(n, |_| {})
}

fn hosts_with(n: u8, change: impl Fn(&mut PastConfig)) -> Vec<Host> {
    (0..n)
        .map(|i| {
            let key = Ed25519Signer::from_seed([i + 1; 32]);
            let id = key.node_id();
            let mut keys = Keyring::new();
            let public = keys.add(key);
            let mut config = PastConfig::new(public, 1 << 24);
            change(&mut config);
            let node = Node::new(id, Config::with_seed(u64::from(i)), Past::new(config));
            let (store, storage, signing, events) = (MemoryStore::new(), Vec::new(), Vec::new(), Vec::new());
            Host { node, store, keys, storage, signing, events, full: false, silent: false, receipts: 0 }
        })
        .collect()
}

/// One round: move every message, then complete last round's storage and signing requests
/// (writes in order, reads reversed) and collect this round's. Returns whether anything happened.
fn round(hosts: &mut [Host], now: &mut Time) -> bool {
    let mut busy = false;
    let ids: Vec<Id> = hosts.iter().map(|h| h.node.id()).collect();
    loop {
        let mut moved = false;
        for i in 0..hosts.len() {
            while let Some(t) = hosts[i].node.poll_transmit() {
                *now = Time::from_micros(now.as_micros() + 1000);
                let to = ids.iter().position(|&id| id == t.to).expect("known node");
                let from = hosts[i].node.id();
                if !hosts[to].silent {
                    if matches!(t.message, Message::Direct(PastMessage::Receipt { .. })) {
                        hosts[to].receipts += 1;
                    }
                    hosts[to].node.handle_message(from, t.message, *now);
                }
                moved = true;
            }
        }
        if !moved {
            break;
        }
        busy = true;
    }
    for host in hosts.iter_mut() {
        let mut storage = std::mem::take(&mut host.storage);
        let (mut reads, writes): (Vec<_>, Vec<_>) =
            storage.drain(..).partition(|r| matches!(r.op, StorageOp::Read { .. }));
        reads.reverse();
        for request in writes.into_iter().chain(reads) {
            let result = if host.full && matches!(request.op, StorageOp::Write { .. }) {
                Err(StorageError::Full)
            } else {
                host.store.perform(request.op)
            };
            host.node.handle_storage(request.id, result, *now);
            busy = true;
        }
        for request in std::mem::take(&mut host.signing) {
            let result = host.keys.complete(&request);
            host.node.handle_signature(request.id, result, *now);
            busy = true;
        }
        while let Some(r) = host.node.app_mut().poll_storage() {
            host.storage.push(r);
            busy = true;
        }
        while let Some(r) = host.node.app_mut().poll_sign() {
            host.signing.push(r);
            busy = true;
        }
        while let Some(e) = host.node.poll_past_event() {
            host.events.push(e);
        }
    }
    busy
}

fn settle(hosts: &mut [Host], now: &mut Time) {
    for _ in 0..10_000 {
        if !round(hosts, now) {
            return;
        }
    }
    panic!("no quiet after 10,000 rounds");
}

fn joined(hosts: &mut [Host], now: &mut Time) {
    let first = hosts[0].node.id();
    hosts[0].node.join(None, *now);
    settle(hosts, now);
    for i in 1..hosts.len() {
        hosts[i].node.join(Some(first), *now);
        settle(hosts, now);
    }
}

/// Starts inserting `content` from host 0 with k = 3, as upload `upload` named `name`.
fn start_insert(hosts: &mut [Host], now: Time, upload: u64, name: &str, content: &[u8]) -> OpId {
    hosts[0].store.add_upload(UploadId(upload), content.to_vec());
    let owner = hosts[0].node.app().config().node_key;
    let size = content.len() as u64;
    let spec =
        InsertRequestSpec { name: name.into(), owner, k: 3, upload: UploadId(upload), size, created: upload + 4 };
    hosts[0].node.insert(spec, now).expect("insert starts")
}

/// Inserts `content` from host 0 with k = 3 and returns its fileId.
fn insert(hosts: &mut [Host], now: &mut Time, content: &[u8]) -> FileId {
    let op = start_insert(hosts, *now, 1, "late", content);
    settle(hosts, now);
    hosts[0]
        .events
        .iter()
        .find_map(|e| match e {
            PastEvent::InsertDone { op: o, result: Ok(inserted) } if *o == op => Some(inserted.certificate.body.file),
            _ => None,
        })
        .expect("inserted")
}

#[test]
fn insert_lookup_reclaim_with_late_storage_and_signatures() {
    let mut hosts = hosts(3);
    let mut now = Time::ZERO;
    joined(&mut hosts, &mut now);
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = insert(&mut hosts, &mut now, &content);
    let owner = hosts[0].node.app().config().node_key;
    for host in &hosts {
        assert_eq!(host.store.content(&file).as_deref(), Some(&content[..]), "every node stores the content");
    }

    let op = hosts[1].node.lookup(file, now);
    settle(&mut hosts, &mut now);
    let mut read = Vec::new();
    let mut done = false;
    for event in &hosts[1].events {
        match event {
            PastEvent::LookupChunk { op: o, data, .. } if *o == op => read.extend_from_slice(data),
            PastEvent::LookupDone { op: o, result } if *o == op => done = result.is_ok(),
            _ => {}
        }
    }
    assert!(done);
    assert_eq!(read, content);

    let op = hosts[0].node.reclaim(file, owner, 6, now);
    settle(&mut hosts, &mut now);
    let reclaimed = hosts[0]
        .events
        .iter()
        .any(|e| matches!(e, PastEvent::ReclaimDone { op: o, result: Ok(r) } if *o == op && r.receipts.len() == 3));
    assert!(reclaimed);
    for host in &hosts {
        assert!(host.store.content(&file).is_none(), "storage freed");
        assert_eq!(host.node.app().used(), 0);
    }
}

/// Chunks and the outcome of lookup `op` seen by `host` so far.
fn lookup_events(host: &Host, op: OpId) -> (Vec<u8>, Option<bool>) {
    let (mut read, mut done) = (Vec::new(), None);
    for event in &host.events {
        match event {
            PastEvent::LookupChunk { op: o, data, .. } if *o == op => read.extend_from_slice(data),
            PastEvent::LookupDone { op: o, result } if *o == op => done = Some(result.is_ok()),
            _ => {}
        }
    }
    (read, done)
}

#[test]
fn a_paced_reader_that_stops_reading_stops_the_pull_without_failing_it() {
    let mut hosts = hosts_with(4, |c| c.paced_reads = true);
    let mut now = Time::ZERO;
    joined(&mut hosts, &mut now);
    let chunk = past_core::past::CHUNK_SIZE;
    let content: Vec<u8> = (0..20 * chunk as u32).map(|i| (i * 13 % 251) as u8).collect();
    let file = insert(&mut hosts, &mut now, &content);
    let reader = (1..4).find(|&i| hosts[i].store.content(&file).is_none()).expect("a host without a replica");
    let window = hosts[reader].node.app().config().window as usize;

    let op = hosts[reader].node.lookup(file, now);
    settle(&mut hosts, &mut now);
    let (read, done) = lookup_events(&hosts[reader], op);
    assert_eq!(read.len(), window * chunk, "one window of chunks, then the pull waits for the reader");
    assert_eq!(done, None);

    // Long past the stall timeout, more times than a lookup tries holders: still waiting,
    // not failed.
    let attempts = hosts[reader].node.app().config().lookup_attempts;
    for _ in 0..=attempts {
        now = Time::from_micros(now.as_micros() + 120_000_000);
        for host in hosts.iter_mut() {
            host.node.handle_timeout(now);
        }
        settle(&mut hosts, &mut now);
    }
    let (still, done) = lookup_events(&hosts[reader], op);
    assert_eq!((still.len(), done), (read.len(), None), "neither more chunks nor a failure");

    for _ in 0..20 {
        hosts[reader].node.lookup_consumed(op, now);
        settle(&mut hosts, &mut now);
    }
    let (read, done) = lookup_events(&hosts[reader], op);
    assert_eq!(done, Some(true), "the rest arrives as the reader reads");
    assert!(read == content, "the content, in order");
}

#[test]
fn a_store_that_fills_up_mid_insert_fails_the_insert_and_keeps_what_it_held() {
    let mut hosts = hosts(3);
    let mut now = Time::ZERO;
    joined(&mut hosts, &mut now);
    let first: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let kept = insert(&mut hosts, &mut now, &first);

    hosts[2].full = true;
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 3 % 251) as u8).collect();
    hosts[0].store.add_upload(UploadId(2), content);
    let owner = hosts[0].node.app().config().node_key;
    let spec = InsertRequestSpec { name: "big".into(), owner, k: 3, upload: UploadId(2), size: 300_000, created: 6 };
    let op = hosts[0].node.insert(spec, now).expect("insert starts");
    settle(&mut hosts, &mut now);
    let outcome = hosts[0].events.iter().find_map(|e| match e {
        PastEvent::InsertDone { op: o, result } if *o == op => Some(result.clone()),
        _ => None,
    });
    let full = hosts[2].node.id();
    match outcome {
        Some(Err(InsertError::Refused { node, reason: Refusal::StorageFull })) => assert_eq!(node, full),
        other => panic!("expected a refusal for want of room from {full}, got {other:?}"),
    }
    for host in &hosts {
        assert_eq!(host.store.content(&kept).as_deref(), Some(&first[..]), "the earlier file is intact");
        assert_eq!(host.node.app().used(), first.len() as u64, "nothing of the failed insert is held");
    }
}

/// Whether `request` asks for a store receipt's signature.
fn is_receipt(request: &SignRequest) -> bool {
    request.message.starts_with(b"PAST-v1 store receipt\0")
}

#[test]
fn a_storing_node_has_its_receipt_signed_while_the_content_comes_and_sends_it_only_on_commit() {
    let mut hosts = hosts(3);
    let mut now = Time::ZERO;
    joined(&mut hosts, &mut now);
    // Four chunks: the content takes several rounds to arrive.
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 5 % 251) as u8).collect();
    let op = start_insert(&mut hosts, now, 3, "early", &content);
    // For each storing node: whether its receipt was asked for before its content was whole.
    let mut signed_early = [false; 3];
    let mut rounds = 0;
    while round(&mut hosts, &mut now) {
        rounds += 1;
        assert!(rounds < 10_000, "no quiet");
        for (i, host) in hosts.iter().enumerate() {
            let whole =
                host.store.records().any(|(f, _)| host.store.content(f).is_some_and(|c| c.len() == content.len()));
            if !whole && host.signing.iter().any(is_receipt) {
                signed_early[i] = true;
            }
        }
    }
    let done = hosts[0].events.iter().any(|e| matches!(e, PastEvent::InsertDone { op: o, result: Ok(_) } if *o == op));
    assert!(done, "the insert succeeds with k receipts");
    // The client stores a replica too: its own receipt goes through no channel.
    assert_eq!(hosts[0].receipts, 2, "the other two storing nodes' receipts");
    assert_eq!(signed_early, [true; 3], "each node had its receipt signed before its content was in");

    // An insert that one node cannot hold is aborted: the receipts the others had signed
    // never leave them.
    hosts[2].full = true;
    let other: Vec<u8> = content.iter().map(|b| b ^ 1).collect();
    let op = start_insert(&mut hosts, now, 4, "aborted", &other);
    let mut receipts_signed = 0;
    while round(&mut hosts, &mut now) {
        receipts_signed += hosts.iter().map(|h| h.signing.iter().filter(|r| is_receipt(r)).count()).sum::<usize>();
    }
    let failed =
        hosts[0].events.iter().any(|e| matches!(e, PastEvent::InsertDone { op: o, result: Err(_) } if *o == op));
    assert!(failed, "the insert fails");
    assert!(receipts_signed >= 2, "the nodes with room signed their receipts early ({receipts_signed})");
    assert_eq!(hosts[0].receipts, 2, "no receipt of the aborted insert reached the client");
}

/// Four hosts reading with up to `sources` sources, a 20-chunk file stored on three of them;
/// returns the hosts, the clock, the content, its fileId and a host holding no replica.
fn four_with_a_file(sources: u8) -> (Vec<Host>, Time, Vec<u8>, FileId, usize) {
    let mut hosts = hosts_with(4, |c| c.sources = sources);
    let mut now = Time::ZERO;
    joined(&mut hosts, &mut now);
    let chunk = past_core::past::CHUNK_SIZE;
    let content: Vec<u8> = (0..20 * chunk as u32).map(|i| (i * 17 % 251) as u8).collect();
    let file = insert(&mut hosts, &mut now, &content);
    let reader = (1..4).find(|&i| hosts[i].store.content(&file).is_none()).expect("a host without a replica");
    (hosts, now, content, file, reader)
}

fn served(hosts: &[Host]) -> Vec<u64> {
    hosts.iter().map(|h| h.node.app().stats().bytes_served).collect()
}

#[test]
fn a_reader_pulls_from_the_three_holders_at_once() {
    let (mut hosts, mut now, content, file, reader) = four_with_a_file(3);
    let before = served(&hosts);
    let op = hosts[reader].node.lookup(file, now);
    settle(&mut hosts, &mut now);
    let (read, done) = lookup_events(&hosts[reader], op);
    assert_eq!(done, Some(true));
    assert!(read == content, "the content, in order");
    let sent: Vec<u64> = served(&hosts).iter().zip(&before).map(|(a, b)| a - b).collect();
    let sources = sent.iter().filter(|&&bytes| bytes > 0).count();
    assert_eq!(sources, 3, "bytes served per host: {sent:?}");
    assert_eq!(sent.iter().sum::<u64>(), content.len() as u64, "each chunk pulled once: {sent:?}");
}

/// The holder a lookup's content came from, once it ended.
fn lookup_holder(host: &Host, op: OpId) -> Option<Id> {
    host.events.iter().find_map(|e| match e {
        PastEvent::LookupDone { op: o, result: Ok(found) } if *o == op => Some(found.holder),
        _ => None,
    })
}

/// A reader whose holder fails goes on straight from another holder that one named, but
/// not when it failed by serving bad data: the nodes it names are not trusted then, and the
/// lookup is routed again (excluding it).
#[test]
fn a_holder_serving_bad_data_is_not_trusted_for_the_holders_it_names() {
    let (mut hosts, mut now, content, file, reader) = four_with_a_file(1);
    let first = hosts[reader].node.lookup(file, now);
    settle(&mut hosts, &mut now);
    let answerer = lookup_holder(&hosts[reader], first).expect("the first read succeeds");
    let bad = hosts.iter().position(|h| h.node.id() == answerer).expect("a host");
    assert!(hosts[bad].store.corrupt(&file, 5));

    let op = hosts[reader].node.lookup(file, now);
    settle(&mut hosts, &mut now);
    let (read, done) = lookup_events(&hosts[reader], op);
    assert_eq!(done, Some(true), "the file is read from another holder");
    assert!(read == content, "the content, in order");
    assert!(lookup_holder(&hosts[reader], op).is_some_and(|h| h != answerer), "not from the bad holder");
    let stats = hosts[reader].node.app().stats();
    assert_eq!(stats.reads_from_spare, 0, "no holder named by the bad one was pulled from");
}

#[test]
fn a_helper_serving_a_bad_chunk_is_dropped_and_the_file_still_arrives() {
    let (mut hosts, mut now, content, file, reader) = four_with_a_file(3);
    // Every holder but the one that answers lookups (the root) corrupts chunk 5.
    let holders: Vec<Id> = hosts.iter().filter(|h| h.store.content(&file).is_some()).map(|h| h.node.id()).collect();
    let root = file.key().closest(holders.iter().copied()).expect("holders");
    let mut corrupted = Vec::new();
    for host in hosts.iter_mut().filter(|h| h.node.id() != root && h.store.content(&file).is_some()) {
        assert!(host.store.corrupt(&file, 5));
        corrupted.push(host.node.id());
    }
    let op = hosts[reader].node.lookup(file, now);
    settle(&mut hosts, &mut now);
    let (read, done) = lookup_events(&hosts[reader], op);
    assert_eq!(done, Some(true), "the lookup succeeds from the root");
    assert!(read == content, "the content, in order");
    let blamed: Vec<Id> = hosts[reader]
        .events
        .iter()
        .filter_map(|e| match e {
            PastEvent::BadData { holder, .. } => Some(*holder),
            _ => None,
        })
        .collect();
    assert!(!blamed.is_empty() && blamed.iter().all(|b| corrupted.contains(b)), "blamed {blamed:?}");
}

#[test]
fn an_unknown_file_is_not_found_within_seconds_though_a_replica_set_node_went_silent() {
    let mut hosts = hosts(4);
    let mut now = Time::ZERO;
    joined(&mut hosts, &mut now);
    let ids: Vec<Id> = hosts.iter().map(|h| h.node.id()).collect();
    let (reader, silent) = (0, 1);
    // A fileId whose root is neither the reader nor the silent node (the silent one is then
    // among the nodes the root asks).
    let file = (0..=255u8)
        .map(|n| FileId([n; 20]))
        .find(|f| f.key().closest(ids.iter().copied()).is_some_and(|root| root != ids[reader] && root != ids[silent]))
        .expect("such a fileId");
    hosts[silent].silent = true;

    let op = hosts[reader].node.lookup(file, now);
    settle(&mut hosts, &mut now);
    assert_eq!(lookup_events(&hosts[reader], op).1, None, "the root still waits for the silent node");
    let config = hosts[reader].node.app().config().clone();
    now = Time::from_micros(now.as_micros() + config.locate_timeout.as_micros() as u64 + 1000);
    assert!(config.locate_timeout < config.request_timeout);
    for host in hosts.iter_mut() {
        host.node.handle_timeout(now);
    }
    settle(&mut hosts, &mut now);
    let outcome = hosts[reader].events.iter().find_map(|e| match e {
        PastEvent::LookupDone { op: o, result } if *o == op => Some(result.clone()),
        _ => None,
    });
    assert!(
        matches!(outcome, Some(Err(LookupError::NotFound { file: f })) if f == file),
        "expected not found, got {outcome:?}"
    );
}

#[test]
fn maintenance_asking_for_a_replica_while_a_cached_copy_arrives_gets_a_replica() {
    let mut hosts = hosts(5);
    let mut now = Time::ZERO;
    joined(&mut hosts, &mut now);
    let content: Vec<u8> = (0..150_000u32).map(|i| (i * 11 % 251) as u8).collect();
    let file = insert(&mut hosts, &mut now, &content);
    let certificate = hosts[0]
        .events
        .iter()
        .find_map(|e| match e {
            PastEvent::InsertDone { result: Ok(inserted), .. } => Some(inserted.certificate.clone()),
            _ => None,
        })
        .expect("inserted");
    let holder = hosts.iter().position(|h| h.store.content(&file).is_some()).expect("a holder");
    let other = hosts.iter().position(|h| h.store.content(&file).is_none()).expect("a node without it");
    let holder_id = hosts[holder].node.id();

    // The node starts pulling a cached copy, and before it arrives maintenance asks it for
    // a replica (as when a holder has just failed).
    let offer = PastMessage::CacheOffer { certificate: Arc::new(certificate.clone()), holder: holder_id };
    hosts[other].node.handle_message(holder_id, Message::Direct(offer), now);
    let replicate = PastMessage::Replicate { files: vec![(Arc::new(certificate), holder_id)] };
    hosts[other].node.handle_message(holder_id, Message::Direct(replicate), now);
    settle(&mut hosts, &mut now);

    let node = hosts[other].node.app();
    assert_eq!(node.used(), content.len() as u64, "it holds a replica, not only a cached copy");
    assert_eq!(node.cached_bytes(), 0);
    assert_eq!(hosts[other].store.content(&file).as_deref(), Some(&content[..]));
}

#[test]
fn a_failed_maintenance_pull_is_tried_again() {
    let mut hosts = hosts(5);
    let mut now = Time::ZERO;
    let late = 4;
    // Four nodes, then files until one has the fifth node among its three closest.
    joined(&mut hosts[..late], &mut now);
    let ids: Vec<Id> = hosts.iter().map(|h| h.node.id()).collect();
    let mut found = None;
    for i in 0..20u32 {
        let content: Vec<u8> = (0..100_000u32).map(|j| ((j + i) % 251) as u8).collect();
        let file = insert(&mut hosts[..late], &mut now, &content);
        let mut by_distance = ids.clone();
        by_distance.sort_by(|a, b| {
            if file.key().prefers(*a, *b) { std::cmp::Ordering::Less } else { std::cmp::Ordering::Greater }
        });
        if by_distance[..3].contains(&ids[late]) {
            found = Some((file, content));
            break;
        }
    }
    let (file, content) = found.expect("a file whose replica set includes the late node");

    // The late node joins with a store that refuses writes: maintenance's pull fails.
    hosts[late].full = true;
    hosts[late].node.join(Some(ids[0]), now);
    settle(&mut hosts, &mut now);
    now = Time::from_micros(now.as_micros() + 1_500_000);
    for host in hosts.iter_mut() {
        host.node.handle_timeout(now);
    }
    settle(&mut hosts, &mut now);
    assert!(hosts[late].store.content(&file).is_none(), "the first pull cannot have succeeded");

    // The store works again: a later try brings the replica.
    hosts[late].full = false;
    for _ in 0..4 {
        now = Time::from_micros(now.as_micros() + 5_000_000);
        for host in hosts.iter_mut() {
            host.node.handle_timeout(now);
        }
        settle(&mut hosts, &mut now);
    }
    assert_eq!(hosts[late].store.content(&file).as_deref(), Some(&content[..]), "the replica arrived on a retry");
}
