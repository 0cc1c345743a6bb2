//! Signaling JSON from the network: a sample of every message type, payload kind and error
//! code round-trips, every truncation is refused as malformed, and every one-character edit
//! either is refused or parses to a message that round-trips; nothing panics.
//!
//! Adding a message type, payload kind or error code without a sample here fails
//! `every_variant_has_a_sample`.

use std::collections::BTreeSet;

use past_signaling_proto::{
    CHALLENGE_BYTES, ClientMessage, ErrorCode, IceServer, PROTOCOL_VERSION, PeerId, ServerMessage, SignalPayload,
};

fn id(s: &str) -> PeerId {
    PeerId::new(s).expect("valid test id")
}

fn payloads() -> Vec<SignalPayload> {
    vec![
        SignalPayload::Offer { sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 AB:CD\r\n".into() },
        SignalPayload::Answer { sdp: "v=0 é ✓ \"quoted\" \\ \u{1}".into() },
        SignalPayload::Candidate {
            candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
        },
        SignalPayload::Candidate { candidate: String::new(), sdp_mid: None, sdp_m_line_index: None },
        SignalPayload::Reject { reason: "the connection budget is used up".into() },
    ]
}

fn error_codes() -> Vec<ErrorCode> {
    use ErrorCode as E;
    vec![
        E::Malformed,
        E::TooLarge,
        E::NotRegistered,
        E::AlreadyRegistered,
        E::PeerIdTaken,
        E::UnknownPeer,
        E::PeerBusy,
        E::ServerFull,
        E::RegisterTimeout,
        E::Unauthenticated,
        E::RateLimited,
        E::Other,
    ]
}

fn client_messages() -> Vec<ClientMessage> {
    let mut all =
        vec![ClientMessage::Register { peer: id("a1"), public_key: "ab".repeat(32), signature: "cd".repeat(64) }];
    all.extend(payloads().into_iter().map(|payload| ClientMessage::Signal { to: id("b-2"), payload }));
    all
}

fn server_messages() -> Vec<ServerMessage> {
    let mut all = vec![
        ServerMessage::Challenge { nonce: "00".repeat(CHALLENGE_BYTES) },
        ServerMessage::Welcome {
            peer: id("me"),
            protocol: PROTOCOL_VERSION,
            overlay: u32::MAX,
            ice_servers: vec![
                IceServer {
                    urls: vec!["turn:127.0.0.1:3478".into()],
                    username: Some("u".into()),
                    credential: Some("p".into()),
                },
                IceServer::new("stun:127.0.0.1:3478"),
            ],
            peers: vec![id("x"), id("y_")],
        },
        ServerMessage::Welcome { peer: id("me"), protocol: 0, overlay: 0, ice_servers: vec![], peers: vec![] },
    ];
    all.extend(payloads().into_iter().map(|payload| ServerMessage::Signal { from: id("X"), payload }));
    all.extend(error_codes().into_iter().map(|code| ServerMessage::error(code, format!("because {code}"))));
    all
}

/// The variant names serde lists for an internally tagged enum, read from the error for an
/// unknown tag (`expected one of `a`, `b``).
fn tags<T: serde::de::DeserializeOwned + std::fmt::Debug>(tag: &str) -> BTreeSet<String> {
    let err = serde_json::from_str::<T>(&format!(r#"{{"{tag}":"\u0000"}}"#)).expect_err("an unknown tag").to_string();
    let (_, expected) = err.split_once("expected").unwrap_or_else(|| panic!("no variant list in {err:?}"));
    expected.split('`').skip(1).step_by(2).map(String::from).collect()
}

/// The tag a sample serializes with.
fn tag_of(json: &str, path: &[&str]) -> String {
    let mut value: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    for key in path {
        value = value[*key].take();
    }
    value.as_str().unwrap_or_else(|| panic!("no {path:?} in {json}")).to_string()
}

/// The variant names of a plain (externally tagged) enum, as its `Deserialize` lists them
/// to `deserialize_enum`.
fn enum_names<'de, T: serde::Deserialize<'de>>() -> BTreeSet<String> {
    use serde::de::{self, Visitor};
    struct Names<'a>(&'a mut Vec<&'static str>);
    #[derive(Debug)]
    struct Captured;
    impl std::fmt::Display for Captured {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("captured")
        }
    }
    impl std::error::Error for Captured {}
    impl de::Error for Captured {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Captured
        }
    }
    impl<'de> de::Deserializer<'de> for Names<'_> {
        type Error = Captured;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
            Err(Captured)
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Captured> {
            self.0.extend_from_slice(variants);
            Err(Captured)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }
    let mut names = Vec::new();
    let _ = T::deserialize(Names(&mut names));
    names.into_iter().map(String::from).collect()
}

#[test]
fn every_variant_has_a_sample() {
    let sampled: BTreeSet<String> = client_messages().iter().map(|m| tag_of(&m.to_json(), &["type"])).collect();
    assert_eq!(sampled, tags::<ClientMessage>("type"), "a client message type without a sample");
    let sampled: BTreeSet<String> = server_messages().iter().map(|m| tag_of(&m.to_json(), &["type"])).collect();
    assert_eq!(sampled, tags::<ServerMessage>("type"), "a server message type without a sample");
    let sampled: BTreeSet<String> =
        client_messages().iter().skip(1).map(|m| tag_of(&m.to_json(), &["payload", "kind"])).collect();
    assert_eq!(sampled, tags::<SignalPayload>("kind"), "a payload kind without a sample");
    let sampled: BTreeSet<String> = error_codes().iter().map(|c| c.as_str().to_string()).collect();
    assert_eq!(sampled, enum_names::<ErrorCode>(), "an error code without a sample");
}

/// Checks the round trip, every truncation and every one-character edit of `json`.
fn check<T: PartialEq + std::fmt::Debug>(
    message: &T,
    json: &str,
    parse: impl Fn(&str) -> Result<T, past_signaling_proto::DecodeError>,
    to_json: impl Fn(&T) -> String,
) {
    assert_eq!(&parse(json).expect(json), message);
    for (cut, _) in json.char_indices() {
        let err = parse(&json[..cut]).expect_err(&json[..cut]);
        assert_eq!(err.code(), ErrorCode::Malformed, "{}: {err}", &json[..cut]);
    }
    for (at, c) in json.char_indices() {
        for edit in ['"', '{', '}', '[', ',', ':', '\\', '0', 'x', ' ', 'é'] {
            let mut edited = json.to_string();
            edited.replace_range(at..at + c.len_utf8(), edit.encode_utf8(&mut [0; 4]));
            if let Ok(other) = parse(&edited) {
                assert_eq!(parse(&to_json(&other)).expect("re-encoded message parses"), other, "{edited}");
            }
        }
    }
}

#[test]
fn client_messages_round_trip_and_damage_is_refused() {
    for message in client_messages() {
        check(&message, &message.to_json(), ClientMessage::from_json, ClientMessage::to_json);
    }
}

#[test]
fn server_messages_round_trip_and_damage_is_refused() {
    for message in server_messages() {
        check(&message, &message.to_json(), ServerMessage::from_json, ServerMessage::to_json);
    }
}

#[test]
fn a_message_of_one_side_is_not_one_of_the_other() {
    for message in client_messages() {
        assert!(ServerMessage::from_json(&message.to_json()).is_err(), "{message:?}");
    }
    for message in server_messages() {
        assert!(ClientMessage::from_json(&message.to_json()).is_err(), "{message:?}");
    }
}
