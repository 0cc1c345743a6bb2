//! PAST messages from the network: every variant of [`PastMessage`] (and of the enums it
//! carries) has a strategy, and for all of them encoding round-trips, every truncation is an
//! error, a flipped bit never panics, and a node fed whatever decodes never panics either.
//!
//! Adding a variant without a strategy here fails `every_variant_has_a_strategy`.

mod common;

use common::{
    Cases, Frame, assert_cases_build_their_variant, assert_covers, flip_and_handle, lone_node, names, union,
    variant_names, variant_of,
};
use past_core::past::certificate::{CertificateError, ContentHasher, chunk_list_digest};
use past_core::past::messages::{InsertRequest, LookupRequest, Prepare, ReclaimRequest};
use past_core::past::{
    Ed25519Signer, FileCertificate, FileCertificateBody, FileId, PastMessage, PublicKey, ReclaimCertificate,
    ReclaimCertificateBody, ReclaimReceiptBody, Refusal, Signature, Signed, SignedBody, Source, StoreReceiptBody,
};
use past_core::wire::{DecodeError, Message, Routed, RoutedBody, ThinVec, WIRE_VERSION, decode, encode};
use past_core::{Id, Time};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::RngSeed;

fn id() -> impl Strategy<Value = Id> + Clone {
    any::<u128>().prop_map(Id::from_u128)
}

fn ids() -> impl Strategy<Value = Vec<Id>> + Clone {
    vec(id(), 0..4)
}

fn hash() -> impl Strategy<Value = [u8; 20]> + Clone {
    any::<[u8; 20]>()
}

fn file() -> impl Strategy<Value = FileId> + Clone {
    hash().prop_map(FileId)
}

fn public_key() -> impl Strategy<Value = PublicKey> + Clone {
    any::<[u8; 32]>().prop_map(PublicKey)
}

fn signed<T: std::fmt::Debug>(body: impl Strategy<Value = T>) -> impl Strategy<Value = Signed<T>> {
    let signature = (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut bytes = [0; 64];
        bytes[..32].copy_from_slice(&a);
        bytes[32..].copy_from_slice(&b);
        Signature(bytes)
    });
    (body, public_key(), signature).prop_map(|(body, signer, signature)| Signed { body, signer, signature })
}

/// A file certificate signed by its owner.
fn valid_certificate() -> FileCertificate {
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

/// The owner's reclaim certificate for [`valid_certificate`].
fn valid_reclaim() -> ReclaimCertificate {
    let key = Ed25519Signer::from_seed([1; 32]);
    let cert = valid_certificate();
    let body = ReclaimCertificateBody { file: cert.body.file, certificate: cert.digest(), nonce: 1, issued: 3 };
    Signed { signature: key.sign_message(&body.signing_bytes()), body, signer: key.public_key() }
}

/// A certificate that verifies, or one with arbitrary fields.
fn certificate() -> BoxedStrategy<FileCertificate> {
    let body =
        (file(), hash(), hash(), any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>(), "\\PC{0,12}", public_key())
            .prop_map(|(file, content_hash, chunk_list, k, salt, created, size, name, owner)| FileCertificateBody {
                file,
                content_hash,
                chunk_list,
                k,
                salt,
                created,
                size,
                name,
                owner,
            });
    prop_oneof![Just(valid_certificate()), signed(body)].boxed()
}

fn reclaim_certificate() -> BoxedStrategy<ReclaimCertificate> {
    let body = (file(), hash(), any::<u64>(), any::<u64>())
        .prop_map(|(file, certificate, nonce, issued)| ReclaimCertificateBody { file, certificate, nonce, issued });
    prop_oneof![Just(valid_reclaim()), signed(body)].boxed()
}

fn source_cases() -> Cases<Source> {
    vec![
        ("Upload", (file(), any::<u64>()).prop_map(|(file, nonce)| Source::Upload { file, nonce }).boxed()),
        ("File", file().prop_map(Source::File).boxed()),
    ]
}

fn source() -> BoxedStrategy<Source> {
    union(source_cases())
}

fn certificate_error_cases() -> Cases<CertificateError> {
    use CertificateError as E;
    vec![
        (
            "WrongOwner",
            (public_key(), public_key()).prop_map(|(owner, signer)| E::WrongOwner { owner, signer }).boxed(),
        ),
        (
            "FileIdMismatch",
            (file(), file()).prop_map(|(claimed, derived)| E::FileIdMismatch { claimed, derived }).boxed(),
        ),
        ("InvalidK", any::<(u8, u8)>().prop_map(|(k, max)| E::InvalidK { k, max }).boxed()),
        ("TooLarge", any::<(u64, u64)>().prop_map(|(size, max)| E::TooLarge { size, max }).boxed()),
        ("NameTooLong", any::<usize>().prop_map(|len| E::NameTooLong { len }).boxed()),
        ("BadChunkList", Just(E::BadChunkList).boxed()),
        ("BadSignature", Just(E::BadSignature).boxed()),
    ]
}

fn refusal_cases() -> Cases<Refusal> {
    use Refusal as R;
    vec![
        ("Certificate", union(certificate_error_cases()).prop_map(R::Certificate).boxed()),
        ("Duplicate", Just(R::Duplicate).boxed()),
        ("OwnerLimit", any::<u64>().prop_map(|limit| R::OwnerLimit { limit }).boxed()),
        ("NoSpace", Just(R::NoSpace).boxed()),
        ("TooFewNodes", any::<u8>().prop_map(|available| R::TooFewNodes { available }).boxed()),
        ("ContentMismatch", any::<u32>().prop_map(|chunk| R::ContentMismatch { chunk }).boxed()),
        ("BadHashList", Just(R::BadHashList).boxed()),
        ("Stalled", Just(R::Stalled).boxed()),
        ("Unreachable", id().prop_map(|node| R::Unreachable { node }).boxed()),
        ("Storage", Just(R::Storage).boxed()),
        ("NotFound", Just(R::NotFound).boxed()),
        ("NotOwner", Just(R::NotOwner).boxed()),
        ("BadSignature", Just(R::BadSignature).boxed()),
        ("Replayed", Just(R::Replayed).boxed()),
        ("Aborted", Just(R::Aborted).boxed()),
        ("Redirect", id().prop_map(|holder| R::Redirect { holder }).boxed()),
        ("StorageFull", Just(R::StorageFull).boxed()),
    ]
}

fn refusal() -> BoxedStrategy<Refusal> {
    union(refusal_cases())
}

fn lookup() -> impl Strategy<Value = LookupRequest> {
    (file(), id(), any::<u64>(), any::<u8>(), ids(), ids(), ids()).prop_map(
        |(file, reader, request, hops, exclude, cache_at, route)| LookupRequest {
            file,
            reader,
            request,
            hops,
            exclude,
            cache_at,
            route,
        },
    )
}

fn reclaim_request() -> impl Strategy<Value = ReclaimRequest> {
    (reclaim_certificate(), id(), any::<u64>()).prop_map(|(certificate, client, request)| ReclaimRequest {
        certificate,
        client,
        request,
    })
}

/// One strategy for every variant of [`PastMessage`].
fn past_cases() -> Cases<PastMessage> {
    use PastMessage as P;
    let nonce = any::<u64>;
    let store_receipt =
        signed((file(), hash(), id(), id()).prop_map(|(file, certificate, node, holder)| StoreReceiptBody {
            file,
            certificate,
            node,
            holder,
        }));
    let reclaim_receipt =
        signed((file(), hash(), id(), any::<u64>()).prop_map(|(file, reclaim, node, freed)| ReclaimReceiptBody {
            file,
            reclaim,
            node,
            freed,
        }));
    vec![
        (
            "Insert",
            (certificate(), id(), nonce(), ids())
                .prop_map(|(certificate, client, nonce, route)| {
                    P::Insert(Box::new(InsertRequest { certificate: certificate.into(), client, nonce, route }))
                })
                .boxed(),
        ),
        (
            "Prepare",
            (certificate(), id(), source(), id(), nonce(), ids(), (any::<bool>(), any::<bool>()), ids())
                .prop_map(
                    |(
                        certificate,
                        source_node,
                        source,
                        coordinator,
                        nonce,
                        primaries,
                        (diverted, insert),
                        source_way,
                    )| {
                        P::Prepare(Box::new(Prepare {
                            certificate: certificate.into(),
                            source_node,
                            source,
                            coordinator,
                            nonce,
                            primaries,
                            diverted,
                            insert,
                            source_way,
                        }))
                    },
                )
                .boxed(),
        ),
        (
            "Prepared",
            (file(), nonce(), prop_oneof![id().prop_map(Ok), refusal().prop_map(Err)])
                .prop_map(|(file, nonce, result)| P::Prepared { file, nonce, result })
                .boxed(),
        ),
        ("Ready", (file(), nonce()).prop_map(|(file, nonce)| P::Ready { file, nonce }).boxed()),
        ("Progress", (file(), nonce()).prop_map(|(file, nonce)| P::Progress { file, nonce }).boxed()),
        (
            "Failed",
            (file(), nonce(), id(), refusal())
                .prop_map(|(file, nonce, node, reason)| P::Failed { file, nonce, node, reason })
                .boxed(),
        ),
        (
            "Commit",
            (file(), nonce(), ids()).prop_map(|(file, nonce, holders)| P::Commit { file, nonce, holders }).boxed(),
        ),
        ("Abort", (file(), nonce()).prop_map(|(file, nonce)| P::Abort { file, nonce }).boxed()),
        (
            "InsertFailed",
            (file(), nonce(), id(), refusal())
                .prop_map(|(file, nonce, node, reason)| P::InsertFailed { file, nonce, node, reason })
                .boxed(),
        ),
        (
            "Receipt",
            (nonce(), store_receipt)
                .prop_map(|(nonce, receipt)| P::Receipt { nonce, receipt: Box::new(receipt) })
                .boxed(),
        ),
        ("SpaceQuery", (file(), nonce()).prop_map(|(file, query)| P::SpaceQuery { file, query }).boxed()),
        (
            "SpaceReply",
            (nonce(), nonce(), any::<bool>())
                .prop_map(|(query, free, holds)| P::SpaceReply { query, free, holds })
                .boxed(),
        ),
        (
            "HashRequest",
            (nonce(), source(), any::<u32>())
                .prop_map(|(transfer, source, piece)| P::HashRequest { transfer, source, piece })
                .boxed(),
        ),
        (
            "HashReply",
            (nonce(), any::<u32>(), vec(hash(), 0..4))
                .prop_map(|(transfer, piece, hashes)| P::HashReply { transfer, piece, hashes })
                .boxed(),
        ),
        (
            "ChunkRequest",
            (nonce(), source(), any::<u32>())
                .prop_map(|(transfer, source, index)| P::ChunkRequest { transfer, source, index })
                .boxed(),
        ),
        (
            "ChunkReply",
            (nonce(), any::<u32>(), vec(any::<u8>(), 0..64))
                .prop_map(|(transfer, index, data)| P::ChunkReply { transfer, index, data })
                .boxed(),
        ),
        (
            "TransferFailed",
            (nonce(), refusal()).prop_map(|(transfer, reason)| P::TransferFailed { transfer, reason }).boxed(),
        ),
        ("Lookup", lookup().prop_map(P::Lookup).boxed()),
        ("Locate", lookup().prop_map(|lookup| P::Locate { lookup }).boxed()),
        (
            "Located",
            (id(), nonce(), any::<bool>())
                .prop_map(|(reader, request, held)| P::Located { reader, request, held })
                .boxed(),
        ),
        (
            "Found",
            (nonce(), certificate(), id(), any::<u8>(), ids(), any::<bool>(), ids())
                .prop_map(|(request, certificate, holder, hops, route, cached, others)| P::Found {
                    request,
                    certificate: certificate.into(),
                    holder,
                    hops,
                    route,
                    cached,
                    others,
                })
                .boxed(),
        ),
        ("NotFound", (nonce(), file()).prop_map(|(request, file)| P::NotFound { request, file }).boxed()),
        (
            "CacheOffer",
            (certificate(), id())
                .prop_map(|(certificate, holder)| P::CacheOffer { certificate: certificate.into(), holder })
                .boxed(),
        ),
        ("Reclaim", reclaim_request().prop_map(|r| P::Reclaim(Box::new(r))).boxed()),
        ("ReclaimHolder", reclaim_request().prop_map(|r| P::ReclaimHolder(Box::new(r))).boxed()),
        (
            "ReclaimAck",
            (nonce(), any::<u8>()).prop_map(|(request, holders)| P::ReclaimAck { request, holders }).boxed(),
        ),
        (
            "ReclaimReceipt",
            (nonce(), reclaim_receipt)
                .prop_map(|(request, receipt)| P::ReclaimReceipt { request, receipt: Box::new(receipt) })
                .boxed(),
        ),
        (
            "ReclaimRejected",
            (nonce(), id(), refusal())
                .prop_map(|(request, node, reason)| P::ReclaimRejected { request, node, reason })
                .boxed(),
        ),
        (
            "Replicate",
            vec((certificate().prop_map(Into::into), id()), 0..3).prop_map(|files| P::Replicate { files }).boxed(),
        ),
        ("Holding", vec(file(), 0..8).prop_map(|files| P::Holding { files }).boxed()),
        ("Release", file().prop_map(|file| P::Release { file }).boxed()),
        ("Released", vec(file(), 0..8).prop_map(|files| P::Released { files }).boxed()),
        ("Bounced", (id(), relayed_bytes()).prop_map(|(target, inner)| P::Bounced { target, inner }).boxed()),
        (
            "Relay",
            (id(), id(), ids(), relayed_bytes())
                .prop_map(|(origin, target, via, inner)| P::Relay { origin, target, via, inner })
                .boxed(),
        ),
    ]
}

/// What a relay carries: an encoded chunk request (what it should carry) or any bytes.
fn relayed_bytes() -> impl Strategy<Value = Vec<u8>> + Clone {
    let request = (any::<u64>(), file(), any::<u32>()).prop_map(|(transfer, file, index)| {
        postcard::to_allocvec(&PastMessage::ChunkRequest { transfer, source: Source::File(file), index })
            .expect("a chunk request encodes")
    });
    prop_oneof![request, vec(any::<u8>(), 0..64)]
}

/// Any PAST message, with the name of the variant its strategy is meant to build.
fn named_past_message() -> impl Strategy<Value = (&'static str, PastMessage)> {
    Union::new(past_cases().into_iter().map(|(name, s)| s.prop_map(move |m| (name, m)).boxed()))
}

/// A PAST message in each of the frames that carry one: direct, or routed to its key.
fn frames(message: PastMessage, key: Id) -> [Frame; 2] {
    [
        Message::Direct(message.clone()),
        Message::Route(Routed { key, hops: 1, attempt: 0, failed: ThinVec::new(), body: RoutedBody::App(message) }),
    ]
}

#[test]
fn every_variant_has_a_strategy() {
    assert_covers::<PastMessage>(&names(past_cases()), variant_names::<PastMessage>());
    assert_covers::<Source>(&names(source_cases()), variant_names::<Source>());
    assert_covers::<Refusal>(&names(refusal_cases()), variant_names::<Refusal>());
    assert_covers::<CertificateError>(&names(certificate_error_cases()), variant_names::<CertificateError>());
    assert!(variant_names::<PastMessage>().len() >= 33, "the 33 PAST messages of today are all listed");
}

#[test]
fn every_strategy_builds_its_variant() {
    assert_cases_build_their_variant(past_cases());
    assert_cases_build_their_variant(source_cases());
    assert_cases_build_their_variant(refusal_cases());
    assert_cases_build_their_variant(certificate_error_cases());
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
fn an_oversized_list_decodes_to_a_message_the_node_drops() {
    // Decoding bounds the frame, not each list: `within_bounds` is what a node checks.
    let holding = PastMessage::Holding { files: vec![FileId([1; 20]); past_core::past::messages::MAX_FILES + 1] };
    let bytes = encode(&Message::Direct(holding.clone())).unwrap();
    let decoded = decode::<Frame>(&bytes).unwrap();
    assert_eq!(decoded, Message::Direct(holding.clone()));
    assert!(!holding.within_bounds());
    let mut node = lone_node();
    node.handle_message(Id::from_u128(5), decoded, Time::from_micros(1000));
    while node.poll_transmit().is_some() {}
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, rng_seed: RngSeed::Fixed(13), ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips_and_every_truncation_is_an_error(
        (name, message) in named_past_message(),
        key in id(),
    ) {
        prop_assert_eq!(variant_of(&message), name);
        for frame in frames(message, key) {
            let bytes = encode(&frame).unwrap();
            prop_assert_eq!(bytes[0], WIRE_VERSION);
            prop_assert_eq!(decode::<Frame>(&bytes).unwrap(), frame);
            for cut in 0..bytes.len() {
                prop_assert!(decode::<Frame>(&bytes[..cut]).is_err(), "{} of {} bytes decoded", cut, bytes.len());
            }
            let mut longer = bytes;
            longer.push(0);
            prop_assert_eq!(decode::<Frame>(&longer), Err(DecodeError::Trailing(1)));
        }
    }

    #[test]
    fn flipped_bits_never_panic_and_what_decodes_is_handled(
        (_, message) in named_past_message(),
        flips in vec((any::<prop::sample::Index>(), 0..8u8), 1..4),
        routed in any::<bool>(),
    ) {
        let [direct, route] = frames(message, Id::from_u128(9));
        flip_and_handle(encode(if routed { &route } else { &direct }).unwrap(), flips)?;
    }

    #[test]
    fn a_lone_node_survives_every_message(
        messages in vec(named_past_message(), 1..8),
    ) {
        let mut node = lone_node();
        for (i, (_, message)) in messages.into_iter().enumerate() {
            let key = Id::from_u128(i as u128 * 0x1234_5678_9abc);
            for frame in frames(message, key) {
                let at = Time::from_micros(1000 * (i as u64 + 1));
                node.handle_message(Id::from_u128(i as u128 + 1), frame, at);
                while node.poll_transmit().is_some() {}
            }
        }
        node.handle_timeout(Time::from_micros(10_000_000_000));
        while node.poll_transmit().is_some() {}
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        let _ = decode::<Frame>(&bytes);
        let mut versioned = bytes;
        versioned.insert(0, WIRE_VERSION);
        let _ = decode::<Frame>(&versioned);
    }
}

/// A relayed request names the nodes it passed; one that names none (it came straight from
/// its origin) is answered straight, and the node keeps no empty way to the origin.
#[test]
fn a_relayed_request_that_passed_no_node_is_answered_straight() {
    let mut node = lone_node();
    let origin = Id::from_u128(5);
    let request = PastMessage::ChunkRequest { transfer: 1, source: Source::File(FileId([1; 20])), index: 0 };
    let inner = postcard::to_allocvec(&request).expect("a chunk request encodes");
    let relay = PastMessage::Relay { origin, target: node.id(), via: Vec::new(), inner };
    for at in [1000, 2000] {
        node.handle_message(origin, Message::Direct(relay.clone()), Time::from_micros(at));
        let sent: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
        let refused = |t: &past_core::Transmit<PastMessage>| {
            t.to == origin && matches!(&t.message, Message::Direct(PastMessage::TransferFailed { transfer: 1, .. }))
        };
        assert!(sent.iter().any(refused), "the origin is told the file is not here, straight: {sent:?}");
    }
}
