//! A driver whose storage and keys answer later, as IndexedDB and WebCrypto do: requests are
//! completed a round after they are made, reads in reverse order. Insert, lookup and reclaim
//! still work, on three nodes talking through an in-memory loop.

use past_core::past::{
    Ed25519Signer, InsertRequestSpec, Keyring, MemoryStore, Past, PastConfig, PastEvent, SignRequest, Signer, Storage,
    StorageOp, StorageRequest, UploadId,
};
use past_core::{Config, Id, Node, Time};

struct Host {
    node: Node<Past>,
    store: MemoryStore,
    keys: Keyring,
    storage: Vec<StorageRequest>,
    signing: Vec<SignRequest>,
    events: Vec<PastEvent>,
}

fn hosts(n: u8) -> Vec<Host> {
    (0..n)
        .map(|i| {
            let key = Ed25519Signer::from_seed([i + 1; 32]);
            let id = key.node_id();
            let mut keys = Keyring::new();
            let public = keys.add(key);
            let node = Node::new(id, Config::with_seed(u64::from(i)), Past::new(PastConfig::new(public, 1 << 24)));
            Host { node, store: MemoryStore::new(), keys, storage: Vec::new(), signing: Vec::new(), events: Vec::new() }
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
                hosts[to].node.handle_message(from, t.message, *now);
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
            let result = host.store.perform(request.op);
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

#[test]
fn insert_lookup_reclaim_with_late_storage_and_signatures() {
    let mut hosts = hosts(3);
    let mut now = Time::ZERO;
    let first = hosts[0].node.id();
    hosts[0].node.join(None, now);
    settle(&mut hosts, &mut now);
    for i in 1..3 {
        hosts[i].node.join(Some(first), now);
        settle(&mut hosts, &mut now);
    }
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    hosts[0].store.add_upload(UploadId(1), content.clone());
    let owner = hosts[0].node.app().config().node_key;
    let spec = InsertRequestSpec { name: "late".into(), owner, k: 3, upload: UploadId(1), size: 200_000, created: 5 };
    let op = hosts[0].node.insert(spec, now).expect("insert starts");
    settle(&mut hosts, &mut now);
    let file = hosts[0]
        .events
        .iter()
        .find_map(|e| match e {
            PastEvent::InsertDone { op: o, result: Ok(inserted) } if *o == op => Some(inserted.certificate.body.file),
            _ => None,
        })
        .expect("inserted");
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
