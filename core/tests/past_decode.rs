//! PAST messages from the network: decoding random or mutated bytes never panics, and a
//! node fed whatever decodes never panics either.

use past_core::past::certificate::{ContentHasher, chunk_list_digest};
use past_core::past::messages::{InsertRequest, LookupRequest, Prepare, ReclaimRequest};
use past_core::past::{
    Ed25519Signer, FileCertificate, FileCertificateBody, FileId, Keyring, MemoryStore, Past, PastConfig, PastMessage,
    ReclaimCertificateBody, Signed, SignedBody, Source, SyncPast,
};
use past_core::wire::{Message, Routed, RoutedBody, decode, encode};
use past_core::{Config, Id, Node, Time};
use proptest::prelude::*;

type Frame = Message<PastMessage>;

fn certificate() -> FileCertificate {
    let key = Ed25519Signer::from_seed([1; 32]);
    let mut hasher = ContentHasher::new();
    hasher.update(b"content");
    let (content_hash, hashes, size) = hasher.finish();
    let owner = key.public_key();
    let body = FileCertificateBody {
        file: FileId::derive("n", &owner, 1),
        content_hash,
        chunk_list: chunk_list_digest(&hashes),
        k: 3,
        salt: 1,
        created: 2,
        size,
        name: "n".into(),
        owner,
    };
    let signature = key.sign_message(&body.signing_bytes());
    Signed { body, signer: owner, signature }
}

fn samples() -> Vec<Frame> {
    let cert = certificate();
    let file = cert.body.file;
    let id = Id::from_u128(77);
    let key = Ed25519Signer::from_seed([2; 32]);
    let reclaim_body = ReclaimCertificateBody { file, certificate: cert.digest(), nonce: 1, issued: 3 };
    let reclaim = Signed {
        signature: key.sign_message(&reclaim_body.signing_bytes()),
        body: reclaim_body,
        signer: key.public_key(),
    };
    let lookup =
        LookupRequest { file, reader: id, request: 4, hops: 1, exclude: vec![id], cache_at: vec![id], route: vec![id] };
    let messages = vec![
        PastMessage::Insert(InsertRequest { certificate: cert.clone(), client: id, nonce: 9 }),
        PastMessage::Prepare(Prepare {
            certificate: cert.clone(),
            source_node: id,
            source: Source::Upload { file, nonce: 9 },
            coordinator: id,
            nonce: 9,
            primaries: vec![id],
            diverted: false,
            insert: true,
        }),
        PastMessage::Prepared { file, nonce: 9, result: Ok(id) },
        PastMessage::Commit { file, nonce: 9, holders: vec![id, id] },
        PastMessage::ChunkReply { transfer: 1, index: 0, data: vec![1, 2, 3] },
        PastMessage::HashReply { transfer: 1, piece: 0, hashes: vec![[3; 20]] },
        PastMessage::ChunkRequest { transfer: 1, source: Source::File(file), index: 2 },
        PastMessage::Lookup(lookup.clone()),
        PastMessage::Locate { lookup },
        PastMessage::Located { reader: id, request: 4, held: false },
        PastMessage::Found {
            request: 1,
            certificate: cert.clone(),
            holder: id,
            hops: 2,
            route: vec![id],
            cached: false,
            others: vec![id],
        },
        PastMessage::Reclaim(ReclaimRequest { certificate: reclaim.clone(), client: id, request: 5 }),
        PastMessage::ReclaimHolder(ReclaimRequest { certificate: reclaim, client: id, request: 5 }),
        PastMessage::Replicate { files: vec![(cert, id)] },
        PastMessage::Holding { files: vec![file] },
        PastMessage::SpaceQuery { file, query: 3 },
    ];
    messages
        .into_iter()
        .flat_map(|m| {
            [
                Message::Direct(m.clone()),
                Message::Route(Routed { key: file.key(), hops: 1, attempt: 1, body: RoutedBody::App(m) }),
            ]
        })
        .collect()
}

fn node() -> Node<SyncPast<MemoryStore, Keyring>> {
    let key = Ed25519Signer::from_seed([3; 32]);
    let id = key.node_id();
    let mut ring = Keyring::new();
    let public = ring.add(key);
    let past = Past::new(PastConfig::new(public, 1 << 20));
    let mut node = Node::new(id, Config::with_seed(1), SyncPast::new(past, MemoryStore::new(), ring));
    node.join(None, Time::ZERO);
    node
}

#[test]
fn every_sample_round_trips() {
    for frame in samples() {
        let bytes = encode(&frame).unwrap();
        assert_eq!(decode::<Frame>(&bytes).unwrap(), frame);
    }
}

#[test]
fn a_full_chunk_is_its_bytes_plus_a_small_header() {
    let data: Vec<u8> = (0..past_core::past::CHUNK_SIZE).map(|i| (i * 7) as u8).collect();
    let frame = Message::<PastMessage>::Direct(PastMessage::ChunkReply { transfer: 1, index: 2, data: data.clone() });
    let bytes = encode(&frame).unwrap();
    assert!(bytes.len() <= data.len() + 16, "{} bytes for a chunk of {}", bytes.len(), data.len());
    assert_eq!(&bytes[bytes.len() - data.len()..], &data[..], "the chunk's bytes travel as they are");
    assert_eq!(decode::<Frame>(&bytes).unwrap(), frame);
}

#[test]
fn a_lone_node_survives_every_sample() {
    let mut node = node();
    for (i, frame) in samples().into_iter().enumerate() {
        node.handle_message(Id::from_u128(i as u128 + 1), frame, Time::from_micros(i as u64 * 1000));
        while node.poll_transmit().is_some() {}
        node.handle_timeout(Time::from_micros(10_000_000_000));
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode::<Frame>(&bytes);
        let mut versioned = bytes;
        versioned.insert(0, past_core::wire::WIRE_VERSION);
        let _ = decode::<Frame>(&versioned);
    }

    #[test]
    fn mutated_frames_never_panic_and_are_handled(which in 0usize..30, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let samples = samples();
        let mut frame = encode(&samples[which % samples.len()]).unwrap();
        for (index, value) in edits {
            let i = index.index(frame.len());
            frame[i] = value;
        }
        if let Ok(message) = decode::<Frame>(&frame) {
            let mut node = node();
            node.handle_message(Id::from_u128(5), message, Time::from_micros(1000));
            while node.poll_transmit().is_some() {}
            node.handle_timeout(Time::from_micros(1_000_000_000));
        }
    }
}
