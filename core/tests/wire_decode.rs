//! Pastry messages from the network: every variant of [`Message`] and [`RoutedBody`] has a
//! strategy, and for all of them encoding round-trips, every truncation is an error, a
//! flipped bit never panics, and a node fed whatever decodes never panics either.
//!
//! Adding a variant without a strategy here fails to compile ([`variant`] matches without
//! a wildcard) and fails `every_variant_has_a_strategy`.

mod common;

use common::{
    Cases, Frame, assert_cases_build_their_variant, assert_covers, flip_and_handle, lone_node, names, union,
    variant_names, variant_of,
};
use past_core::past::{FileId, PastMessage};
use past_core::wire::{
    DecodeError, JoinReply, JoinRequest, MAX_FRAME_BYTES, Message, Probe, Routed, RoutedBody, ThinVec, WIRE_VERSION,
    decode, encode,
};
use past_core::{Entry, Id, Rtt, Time};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// The variant of a message, by name; no wildcard, so a new variant does not compile until
/// it is named here (and then `every_variant_has_a_strategy` asks for its strategy).
fn variant(message: &Frame) -> &'static str {
    match message {
        Message::Route(_) => "Route",
        Message::JoinReply(_) => "JoinReply",
        Message::Probe(_) => "Probe",
        Message::LeafSet { .. } => "LeafSet",
        Message::RowRequest { .. } => "RowRequest",
        Message::RowReply { .. } => "RowReply",
        Message::NewNode { .. } => "NewNode",
        Message::LeafSetRequest => "LeafSetRequest",
        Message::EntryRequest { .. } => "EntryRequest",
        Message::EntryReply { .. } => "EntryReply",
        Message::Leave => "Leave",
        Message::Direct(_) => "Direct",
    }
}

/// The same for a routed body.
fn body_variant(body: &RoutedBody<PastMessage>) -> &'static str {
    match body {
        RoutedBody::Join(_) => "Join",
        RoutedBody::FindSlot { .. } => "FindSlot",
        RoutedBody::App(_) => "App",
    }
}

fn id() -> impl Strategy<Value = Id> + Clone {
    prop_oneof![any::<u128>().prop_map(Id::from_u128), Just(Id::ZERO), Just(Id::MAX)]
}

fn ids() -> impl Strategy<Value = Vec<Id>> + Clone {
    vec(id(), 0..6)
}

/// Routing table entries as a row reply carries them, measured or not.
fn entries() -> impl Strategy<Value = Vec<Entry>> + Clone {
    let rtt = prop_oneof![any::<u32>().prop_map(Rtt::from_micros), Just(Rtt::UNKNOWN)];
    vec((id(), rtt).prop_map(|(id, rtt)| Entry { id, rtt }), 0..6)
}

fn rows() -> impl Strategy<Value = Vec<Vec<Id>>> + Clone {
    vec(ids(), 0..5)
}

/// A small PAST message for the application slots.
fn app() -> impl Strategy<Value = PastMessage> + Clone {
    prop_oneof![
        vec(any::<[u8; 20]>().prop_map(FileId), 0..3).prop_map(|files| PastMessage::Holding { files }),
        (any::<[u8; 20]>(), any::<u64>())
            .prop_map(|(file, query)| PastMessage::SpaceQuery { file: FileId(file), query }),
    ]
}

fn body_cases() -> Cases<RoutedBody<PastMessage>> {
    vec![
        (
            "Join",
            (rows(), ids())
                .prop_map(|(rows, neighborhood)| RoutedBody::Join(JoinRequest { rows, neighborhood }))
                .boxed(),
        ),
        (
            "FindSlot",
            (id(), any::<u8>(), any::<u8>())
                .prop_map(|(origin, row, column)| RoutedBody::FindSlot { origin, row, column })
                .boxed(),
        ),
        ("App", app().prop_map(RoutedBody::App).boxed()),
    ]
}

fn message_cases() -> Cases<Frame> {
    vec![
        (
            "Route",
            (id(), any::<u8>(), any::<u8>(), ids().prop_map(ThinVec::from), union(body_cases()))
                .prop_map(|(key, hops, attempt, failed, body)| {
                    Message::Route(Routed { key, hops, attempt, failed, body })
                })
                .boxed(),
        ),
        (
            "JoinReply",
            (rows(), ids(), ids())
                .prop_map(|(rows, leaf_set, neighborhood)| {
                    Message::JoinReply(JoinReply { rows, leaf_set, neighborhood })
                })
                .boxed(),
        ),
        (
            "Probe",
            any::<(Option<u64>, Option<u64>)>().prop_map(|(ask, answer)| Message::Probe(Probe { ask, answer })).boxed(),
        ),
        ("LeafSet", (ids(), any::<bool>()).prop_map(|(leaves, answer)| Message::LeafSet { leaves, answer }).boxed()),
        ("RowRequest", any::<u8>().prop_map(|row| Message::RowRequest { row }).boxed()),
        ("RowReply", (any::<u8>(), entries()).prop_map(|(row, entries)| Message::RowReply { row, entries }).boxed()),
        ("NewNode", (id(), any::<u8>()).prop_map(|(id, row)| Message::NewNode { id, row }).boxed()),
        ("LeafSetRequest", Just(Message::LeafSetRequest).boxed()),
        ("EntryRequest", vec(any::<(u8, u8)>(), 0..8).prop_map(|slots| Message::EntryRequest { slots }).boxed()),
        (
            "EntryReply",
            vec((any::<u8>(), any::<u8>(), proptest::option::of(id())), 0..8)
                .prop_map(|entries| Message::EntryReply { entries })
                .boxed(),
        ),
        ("Leave", Just(Message::Leave).boxed()),
        ("Direct", app().prop_map(Message::Direct).boxed()),
    ]
}

/// Any Pastry message, with the name of the variant its strategy is meant to build.
fn named_message() -> impl Strategy<Value = (&'static str, Frame)> {
    proptest::strategy::Union::new(message_cases().into_iter().map(|(name, s)| s.prop_map(move |m| (name, m)).boxed()))
}

#[test]
fn every_variant_has_a_strategy() {
    assert_covers::<Frame>(&names(message_cases()), variant_names::<Frame>());
    assert_covers::<RoutedBody<PastMessage>>(&names(body_cases()), variant_names::<RoutedBody<PastMessage>>());
}

#[test]
fn every_strategy_builds_its_variant() {
    assert_cases_build_their_variant(message_cases());
    assert_cases_build_their_variant(body_cases());
}

#[test]
fn frames_over_the_limit_are_refused_before_decoding() {
    let entry = Entry { id: Id::MAX, rtt: Rtt::UNKNOWN };
    let huge = Message::<PastMessage>::RowReply { row: 0, entries: vec![entry; MAX_FRAME_BYTES / 16] };
    assert!(encode(&huge).is_err(), "a node never sends a frame over the limit");
    let mut bytes = vec![WIRE_VERSION];
    bytes.resize(MAX_FRAME_BYTES + 1, 0);
    assert_eq!(decode::<Frame>(&bytes), Err(DecodeError::TooLarge { size: MAX_FRAME_BYTES + 1 }));
    // A list announcing 2^32 - 1 ids within a small frame: an error, not an allocation.
    let mut bytes = encode(&Message::<PastMessage>::RowReply { row: 0, entries: vec![] }).unwrap();
    bytes.pop();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(decode::<Frame>(&bytes), Err(DecodeError::Malformed(_))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, rng_seed: RngSeed::Fixed(13), ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips_and_every_truncation_is_an_error((name, message) in named_message()) {
        prop_assert_eq!(variant(&message), name);
        prop_assert_eq!(variant_of(&message), name);
        if let Message::Route(routed) = &message {
            prop_assert_eq!(variant_of(&routed.body), body_variant(&routed.body));
        }
        let bytes = encode(&message).unwrap();
        prop_assert_eq!(bytes[0], WIRE_VERSION);
        prop_assert_eq!(decode::<Frame>(&bytes).unwrap(), message);
        for cut in 0..bytes.len() {
            prop_assert!(decode::<Frame>(&bytes[..cut]).is_err(), "{} of {} bytes decoded", cut, bytes.len());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(decode::<Frame>(&longer), Err(DecodeError::Trailing(1)));
        let mut other_version = bytes;
        other_version[0] = WIRE_VERSION.wrapping_add(1);
        prop_assert_eq!(decode::<Frame>(&other_version), Err(DecodeError::Version(WIRE_VERSION.wrapping_add(1))));
    }

    #[test]
    fn flipped_bits_never_panic_and_what_decodes_is_handled(
        (_, message) in named_message(),
        flips in vec((any::<prop::sample::Index>(), 0..8u8), 1..4),
    ) {
        flip_and_handle(encode(&message).unwrap(), flips)?;
    }

    #[test]
    fn a_lone_node_survives_every_message(messages in vec(named_message(), 1..12)) {
        let mut node = lone_node();
        for (i, (_, message)) in messages.into_iter().enumerate() {
            let at = Time::from_micros(1000 * (i as u64 + 1));
            node.handle_message(Id::from_u128(i as u128 % 3 + 1), message, at);
            while node.poll_transmit().is_some() {}
        }
        node.handle_timeout(Time::from_micros(10_000_000_000));
        while node.poll_transmit().is_some() {}
    }
}
