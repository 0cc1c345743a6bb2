//! Data channel messages from the network: every kind of message (authentication, whole
//! Pastry frame, chunked frame, close) and every handshake message round-trips, every
//! truncation of a handshake message is refused, damaged or arbitrary sequences of messages
//! never panic and never make the receiver hold more than its limit, and a stranger's hello
//! or proof never authenticates.

use ed25519_dalek::{Signer as _, SigningKey};
use past_core::Id;
use past_core::wire::MAX_FRAME_BYTES;
use past_link::auth::transcript;
use past_link::frame::{self, FrameError, Incoming, MAX_MESSAGE_BYTES, Reassembler};
use past_link::{AuthMessage, Handshake, OVERLAY_VERSION};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

const LIMIT: usize = MAX_FRAME_BYTES;

/// The kind of a complete message; no wildcard, so a new kind does not compile until it has
/// a strategy in [`incoming`].
fn kind(incoming: &Incoming) -> usize {
    match incoming {
        Incoming::Auth(AuthMessage::Hello { .. }) => 0,
        Incoming::Auth(AuthMessage::Proof { .. }) => 1,
        Incoming::Pastry(_) => 2,
        Incoming::Close => 3,
        Incoming::Ping(_) => 4,
        Incoming::Pong(_) => 5,
    }
}

const KINDS: usize = 6;

fn auth() -> impl Strategy<Value = AuthMessage> {
    prop_oneof![
        any::<(u32, [u8; 32], [u8; 32], bool)>().prop_map(|(version, public_key, nonce, joined)| AuthMessage::Hello {
            version,
            public_key,
            nonce,
            joined
        }),
        vec(any::<u8>(), 0..100).prop_map(|signature| AuthMessage::Proof { signature }),
    ]
}

/// A frame length: small, around the one-message limit, or up to the frame limit.
fn frame_len() -> impl Strategy<Value = usize> {
    prop_oneof![0..200usize, (MAX_MESSAGE_BYTES - 8)..(MAX_MESSAGE_BYTES + 8), 0..=LIMIT]
}

/// Any complete message, with the kind its strategy builds.
fn incoming() -> impl Strategy<Value = (usize, Incoming)> {
    prop_oneof![
        auth().prop_map(|a| (if matches!(a, AuthMessage::Hello { .. }) { 0 } else { 1 }, Incoming::Auth(a))),
        (frame_len(), any::<u8>()).prop_map(|(len, seed)| {
            (2, Incoming::Pastry((0..len).map(|i| seed.wrapping_add((i * 31) as u8)).collect()))
        }),
        Just((3, Incoming::Close)),
        any::<u32>().prop_map(|n| (4, Incoming::Ping(n))),
        any::<u32>().prop_map(|n| (5, Incoming::Pong(n))),
    ]
}

/// The data channel messages a driver sends for `incoming`.
fn encode(incoming: &Incoming) -> Vec<Vec<u8>> {
    match incoming {
        Incoming::Auth(message) => vec![frame::encode_auth(message)],
        Incoming::Pastry(frame) => frame::encode_pastry(frame, LIMIT).expect("within the limit"),
        Incoming::Close => vec![frame::encode_close()],
        Incoming::Ping(n) => vec![frame::encode_ping(*n)],
        Incoming::Pong(n) => vec![frame::encode_pong(*n)],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: RngSeed::Fixed(13), ..ProptestConfig::default() })]

    #[test]
    fn every_kind_of_message_round_trips(messages in vec(incoming(), 1..6)) {
        let mut receiver = Reassembler::new(LIMIT);
        for (expected_kind, message) in messages {
            prop_assert_eq!(kind(&message), expected_kind);
            let parts = encode(&message);
            for (i, part) in parts.iter().enumerate() {
                prop_assert!(part.len() <= MAX_MESSAGE_BYTES);
                let got = receiver.push(part).expect("a sent message is accepted");
                if i + 1 == parts.len() {
                    prop_assert_eq!(got.as_ref(), Some(&message));
                } else {
                    prop_assert_eq!(got, None);
                    prop_assert!(receiver.buffered() <= LIMIT);
                }
            }
            prop_assert_eq!(receiver.buffered(), 0);
        }
    }

    #[test]
    fn every_truncated_handshake_message_is_refused(message in auth()) {
        let bytes = frame::encode_auth(&message);
        prop_assert_eq!(Reassembler::new(LIMIT).push(&bytes), Ok(Some(Incoming::Auth(message))));
        prop_assert_eq!(Reassembler::new(LIMIT).push(&[]), Err(FrameError::Empty));
        // A cut hello may still show a version (its first field): refused all the same.
        for cut in 1..bytes.len() {
            let got = Reassembler::new(LIMIT).push(&bytes[..cut]);
            prop_assert!(matches!(got, Err(FrameError::BadAuth | FrameError::OtherVersion(_))), "{:?}", got);
        }
    }

    #[test]
    fn damaged_messages_never_panic_nor_exceed_the_limit(
        messages in vec(incoming(), 1..4),
        damage in vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let mut parts: Vec<Vec<u8>> = messages.iter().flat_map(|(_, m)| encode(m)).collect();
        for (which, at, value, how) in damage {
            let which = which.index(parts.len());
            let part = &mut parts[which];
            if part.is_empty() {
                continue;
            }
            let i = at.index(part.len());
            match how {
                0 => part[i] = value,
                1 => part.truncate(i),
                _ => part.splice(i..i, std::iter::repeat_n(value, usize::from(value) * 300)).for_each(drop),
            }
        }
        let mut receiver = Reassembler::new(LIMIT);
        for part in &parts {
            match receiver.push(part) {
                Ok(Some(Incoming::Pastry(frame))) => prop_assert!(frame.len() <= LIMIT),
                Ok(_) => {}
                Err(FrameError::TooLarge(n)) => prop_assert!(n > MAX_MESSAGE_BYTES),
                // The peer is dropped: a new connection has a new reassembler.
                Err(_) => receiver = Reassembler::new(LIMIT),
            }
            prop_assert!(receiver.buffered() <= LIMIT);
        }
    }

    #[test]
    fn a_strangers_hello_or_proof_never_authenticates(
        key in any::<[u8; 32]>(),
        nonce in any::<[u8; 32]>(),
        signature in vec(any::<u8>(), 0..80),
        stranger_seed in any::<[u8; 32]>(),
    ) {
        let own = SigningKey::from_bytes(&[1; 32]);
        let peer = SigningKey::from_bytes(&[2; 32]);
        let expected = Id::from_public_key(&peer.verifying_key().to_bytes());
        let (local, remote) = ("a=fingerprint:sha-256 AA:BB\r\n", "a=fingerprint:sha-256 CC:DD\r\n");
        let mut handshake = Handshake::new(own.verifying_key().to_bytes(), [7; 32], local, remote, expected)
            .expect("valid fingerprints");
        // Any other key is refused at the hello.
        prop_assert!(handshake.on_hello(OVERLAY_VERSION, key, nonce, true).is_err());
        prop_assert!(handshake.on_proof(&signature).is_err());
        // The expected key's hello, then a proof that is not the peer's signature of this
        // connection's transcript: forged bytes, or a stranger's signature of it.
        handshake.on_hello(OVERLAY_VERSION, peer.verifying_key().to_bytes(), nonce, false).expect("the expected peer's hello");
        prop_assert!(handshake.on_proof(&signature).is_err());
        let signed = transcript(&peer.verifying_key().to_bytes(), ("sha-256 CC:DD", &nonce), ("sha-256 AA:BB", &[7; 32]));
        let stranger = SigningKey::from_bytes(&stranger_seed);
        prop_assume!(stranger.verifying_key() != peer.verifying_key());
        prop_assert!(handshake.on_proof(&stranger.sign(&signed).to_bytes()).is_err());
        prop_assert!(!handshake.is_done());
        // The peer's own signature completes it.
        prop_assert_eq!(handshake.on_proof(&peer.sign(&signed).to_bytes()), Ok((expected, false)));
    }
}

#[test]
fn the_strategy_builds_every_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(Config::default().rng_algorithm));
    let mut seen = [false; KINDS];
    for _ in 0..200 {
        let (k, message) = incoming().new_tree(&mut runner).expect("a value").current();
        assert_eq!(kind(&message), k);
        seen[k] = true;
    }
    assert_eq!(seen, [true; KINDS], "a kind of message has no strategy");
}
