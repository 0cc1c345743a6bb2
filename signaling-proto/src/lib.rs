//! The JSON messages spoken over the WebSocket between a PAST node (a browser page or the
//! native node) and the bootstrap signaling server.
//!
//! This crate is what the server, the browser driver (`past-node-wasm`) and the native driver
//! (`past-node`) share, written once. It holds plain serde types, the size limits and the
//! decoding entry points that enforce them. It does no I/O, has no async and knows nothing
//! of WebRTC beyond carrying SDP and ICE candidate strings opaquely.
//!
//! It is **not** the Pastry/PAST wire protocol: nodes talk to each other over WebRTC data
//! channels with the binary encoding of `past-core`. The signaling server only introduces
//! nodes to each other (first contact); once a node has joined the overlay, further
//! connections are signalled through the overlay itself.
//!
//! # Conversation
//!
//! ```text
//! client                                   server
//!   | <------------------- challenge {nonce} |  (as soon as the socket opens)
//!   | -- register {peer, public_key, signature} -> |
//!   |                                        |  checks: peer = hex(first 16 bytes of
//!   |                                        |  SHA-1(public_key)), Ed25519 signature over
//!   |                                        |  register_transcript(nonce, peer)
//!   | <------------ welcome {peer, ice_servers, peers} |  (the numerically closest
//!   |                                        |   registered nodeIds, for the join contact)
//!   | -- signal {to, payload} -------------> | -- signal {from, payload} --> `to`
//!   |    (offer, answer or candidate)        |    (only between registered peers)
//!   | <------------------ error {code, message} (on a bad message; the socket stays open)
//!   x (socket closed: the peer is forgotten)  |
//! ```
//!
//! Every message is one JSON object in one WebSocket text frame, tagged by its `"type"`
//! field (`snake_case`). Unknown fields are ignored so later versions can add optional
//! fields; an unknown `"type"` is rejected with [`ErrorCode::Malformed`]. The newcomer offers
//! to the peers listed in its [`ServerMessage::Welcome`]; the peers already present answer.
//! Binary values (nonce, key, signature) are lower-case hex.
//!
//! The server is needed only for a node's first contact: once joined, nodes signal new
//! connections through the Pastry overlay itself.
//!
//! # Example
//!
//! ```
//! use past_signaling_proto::{ClientMessage, PeerId, SignalPayload};
//!
//! let to = PeerId::new("b0b").expect("valid id");
//! let msg = ClientMessage::Signal { to, payload: SignalPayload::Offer { sdp: "v=0\r\n".into() } };
//! let json = msg.to_json();
//! assert_eq!(ClientMessage::from_json(&json).expect("round trip"), msg);
//! assert!(ClientMessage::from_json(r#"{"type":"launch_missiles"}"#).is_err());
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of this message set, sent in [`ServerMessage::Welcome`].
pub const PROTOCOL_VERSION: u32 = 3;

/// Largest signaling message (one WebSocket text frame), in bytes, in either direction.
///
/// Checked before any JSON is parsed. An SDP offer of a data-channel-only connection is
/// about 1 KB; this leaves ample room while bounding what one client can make the server
/// buffer.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Largest SDP (offer or answer) carried in a [`SignalPayload`], in bytes.
pub const MAX_SDP_BYTES: usize = 12 * 1024;

/// Largest ICE candidate line (or `sdpMid`) carried in a [`SignalPayload`], in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;

/// Longest reason of a [`SignalPayload::Reject`], in bytes.
pub const MAX_REASON_BYTES: usize = 256;

/// Longest [`PeerId`], in bytes.
pub const MAX_PEER_ID_BYTES: usize = 64;

/// Most peers listed in one [`ServerMessage::Welcome`].
pub const MAX_WELCOME_PEERS: usize = 64;

/// Bytes of the registration challenge nonce.
pub const CHALLENGE_BYTES: usize = 32;

/// Domain separation tag of [`register_transcript`].
pub const REGISTER_TAG: &[u8] = b"past-signaling-register-v2\0";

/// Most ICE servers sent in one [`ServerMessage::Welcome`].
pub const MAX_ICE_SERVERS: usize = 8;

/// Longest human-readable text in [`ServerMessage::Error`], in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// Identifies one connected client to the signaling server and to other clients.
///
/// The hex nodeId of the client (32 lower-case hex digits), proven by a signature at
/// registration ([`ClientMessage::Register`]). The type itself accepts between 1 and [`MAX_PEER_ID_BYTES`] bytes of ASCII letters, digits, `-` and
/// `_`, so it is safe to log and to show in a page.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerId(String);

impl PeerId {
    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidPeerId> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_PEER_ID_BYTES {
            return Err(InvalidPeerId::Length(id.len()));
        }
        if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(InvalidPeerId::Character(c));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PeerId {
    type Error = InvalidPeerId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<PeerId> for String {
    fn from(value: PeerId) -> Self {
        value.0
    }
}

/// Why a string is not a [`PeerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPeerId {
    /// Empty or longer than [`MAX_PEER_ID_BYTES`].
    #[error("peer id must be 1 to {MAX_PEER_ID_BYTES} bytes, got {0}")]
    Length(usize),
    /// Contains a character other than ASCII letters, digits, `-` and `_`.
    #[error("peer id contains the character {0:?}; only ASCII letters, digits, '-' and '_' are allowed")]
    Character(char),
}

/// One STUN or TURN server for `RTCPeerConnection`, in the shape of the WebIDL
/// `RTCIceServer` dictionary so a page can pass it on unchanged.
///
/// The server sends none unless its operator configures some: on a loopback or LAN test
/// setup host candidates suffice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs of the one server.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    /// A server without credentials at `url` (e.g. `stun:127.0.0.1:3478` for a server of your own).
    pub fn new(url: impl Into<String>) -> Self {
        Self { urls: vec![url.into()], username: None, credential: None }
    }
}

/// What one node sends another through the server to set up a WebRTC connection.
///
/// The server relays it without looking inside beyond the size limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalPayload {
    /// An SDP offer (`RTCSessionDescription` of type `offer`).
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// An SDP answer (`RTCSessionDescription` of type `answer`).
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate (`RTCIceCandidateInit`).
    Candidate {
        /// The `candidate:` attribute line.
        candidate: String,
        /// Media stream identification tag the candidate belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// Index of the m-line the candidate belongs to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_m_line_index: Option<u16>,
    },
    /// The recipient's offer is refused (its connection budget is used up, say): the
    /// offerer fails the attempt at once instead of waiting for its timeout.
    Reject {
        /// Why, for the offerer's log.
        reason: String,
    },
}

impl SignalPayload {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Self::Offer { sdp } | Self::Answer { sdp } => check_len("sdp", sdp, MAX_SDP_BYTES),
            Self::Candidate { candidate, sdp_mid, .. } => {
                check_len("candidate", candidate, MAX_CANDIDATE_BYTES)?;
                match sdp_mid {
                    Some(mid) => check_len("sdp_mid", mid, MAX_CANDIDATE_BYTES),
                    None => Ok(()),
                }
            }
            Self::Reject { reason } => check_len("reason", reason, MAX_REASON_BYTES),
        }
    }
}

/// A message from a node to the signaling server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// First message on a connection, after [`ServerMessage::Challenge`]: register as the
    /// node `peer`. Answered by [`ServerMessage::Welcome`] or by an error
    /// ([`ErrorCode::Unauthenticated`], [`ErrorCode::PeerIdTaken`], [`ErrorCode::ServerFull`],
    /// [`ErrorCode::AlreadyRegistered`]).
    Register {
        /// The client's nodeId in hex: the first 16 bytes of SHA-1 of `public_key`.
        peer: PeerId,
        /// The Ed25519 public key, 32 bytes in hex.
        public_key: String,
        /// Ed25519 signature of [`register_transcript`] of the challenge, 64 bytes in hex.
        signature: String,
    },
    /// Relay `payload` to the registered client `to`.
    Signal {
        /// Recipient.
        to: PeerId,
        /// What to relay.
        payload: SignalPayload,
    },
}

/// A message from the signaling server to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// Sent as soon as the socket opens: the nonce the registration must sign.
    Challenge {
        /// [`CHALLENGE_BYTES`] random bytes in hex.
        nonce: String,
    },
    /// Registration accepted.
    Welcome {
        /// The id now registered for this connection.
        peer: PeerId,
        /// [`PROTOCOL_VERSION`] of the server.
        protocol: u32,
        /// The overlay version (`past_link::OVERLAY_VERSION`) of the page the server serves:
        /// a node of another version cannot talk to the nodes of this page, and should
        /// reload to get it. 0 from a server that does not say.
        #[serde(default)]
        overlay: u32,
        /// ICE servers to configure `RTCPeerConnection` with (empty unless the operator set
        /// some).
        ice_servers: Vec<IceServer>,
        /// Registered nodes whose ids are numerically closest to the newcomer's on the ring
        /// (at most [`MAX_WELCOME_PEERS`], closest first), candidates for its join contact.
        /// The newcomer offers to them.
        peers: Vec<PeerId>,
    },
    /// A payload relayed from another client.
    Signal {
        /// Sender.
        from: PeerId,
        /// What it sent.
        payload: SignalPayload,
    },
    /// The last message could not be handled. The connection stays open unless the server
    /// closes it.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

/// Machine-readable reason in [`ServerMessage::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not valid JSON, an unknown `type`, a missing field, an invalid value or a binary frame.
    Malformed,
    /// The message exceeds [`MAX_MESSAGE_BYTES`] or a field exceeds its limit.
    TooLarge,
    /// A `signal` was sent before `register`.
    NotRegistered,
    /// `register` was sent twice on one connection.
    AlreadyRegistered,
    /// Another connection holds the requested [`PeerId`].
    PeerIdTaken,
    /// The recipient of a `signal` is not connected.
    UnknownPeer,
    /// The recipient of a `signal` is not reading its messages; the payload was dropped.
    PeerBusy,
    /// The server holds as many clients as it is configured for.
    ServerFull,
    /// The client did not register in time.
    RegisterTimeout,
    /// The registration's key, nodeId or signature is wrong.
    Unauthenticated,
    /// The client sends messages faster than the server accepts; the message was dropped.
    RateLimited,
    /// A code this version does not know (sent by a newer server).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::NotRegistered => "not_registered",
            Self::AlreadyRegistered => "already_registered",
            Self::PeerIdTaken => "peer_id_taken",
            Self::UnknownPeer => "unknown_peer",
            Self::PeerBusy => "peer_busy",
            Self::ServerFull => "server_full",
            Self::RegisterTimeout => "register_timeout",
            Self::Unauthenticated => "unauthenticated",
            Self::RateLimited => "rate_limited",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signaling message was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The whole message is larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {len} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge {
        /// Size of the rejected message.
        len: usize,
    },
    /// A field is larger than its limit.
    #[error("field `{field}` of {len} bytes exceeds its limit of {max} bytes")]
    FieldTooLarge {
        /// Name of the field.
        field: &'static str,
        /// Its size.
        len: usize,
        /// Its limit.
        max: usize,
    },
    /// A list has more entries than its limit.
    #[error("list `{field}` has {len} entries, more than its limit of {max}")]
    TooMany {
        /// Name of the list.
        field: &'static str,
        /// Its length.
        len: usize,
        /// Its limit.
        max: usize,
    },
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

impl DecodeError {
    /// The [`ErrorCode`] a server answers this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } | Self::FieldTooLarge { .. } | Self::TooMany { .. } => ErrorCode::TooLarge,
            Self::Json(_) => ErrorCode::Malformed,
        }
    }
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), DecodeError> {
    if value.len() > max { Err(DecodeError::FieldTooLarge { field, len: value.len(), max }) } else { Ok(()) }
}

fn check_count(field: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max { Err(DecodeError::TooMany { field, len, max }) } else { Ok(()) }
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge { len: text.len() });
    }
    Ok(serde_json::from_str(text)?)
}

fn encode<T: Serialize>(value: &T) -> String {
    // Serializing these types cannot fail: every key is a string and no value is a
    // non-finite float. Fall back to an empty object rather than panicking.
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}

impl ClientMessage {
    /// Parses one message, checking [`MAX_MESSAGE_BYTES`] before parsing and every field
    /// limit after.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        let msg: Self = decode(text)?;
        match &msg {
            Self::Register { public_key, signature, .. } => {
                check_len("public_key", public_key, 64)?;
                check_len("signature", signature, 128)?;
            }
            Self::Signal { payload, .. } => payload.validate()?,
        }
        Ok(msg)
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        encode(self)
    }
}

impl ServerMessage {
    /// Parses one message, checking [`MAX_MESSAGE_BYTES`] before parsing and every field
    /// limit after.
    pub fn from_json(text: &str) -> Result<Self, DecodeError> {
        let msg: Self = decode(text)?;
        match &msg {
            Self::Welcome { peers, ice_servers, .. } => {
                check_count("peers", peers.len(), MAX_WELCOME_PEERS)?;
                check_count("ice_servers", ice_servers.len(), MAX_ICE_SERVERS)?;
            }
            Self::Signal { payload, .. } => payload.validate()?,
            Self::Error { message, .. } => {
                check_len("message", message, MAX_ERROR_MESSAGE_BYTES)?;
            }
            Self::Challenge { nonce } => check_len("nonce", nonce, 2 * CHALLENGE_BYTES)?,
        }
        Ok(msg)
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        encode(self)
    }

    /// An [`ServerMessage::Error`], with `message` cut to [`MAX_ERROR_MESSAGE_BYTES`].
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_BYTES {
            let mut end = MAX_ERROR_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self::Error { code, message }
    }
}

/// The bytes a client signs to register as `peer` after the challenge `nonce` (as sent,
/// in hex): a domain separation tag, the nonce, a zero byte, the peer id.
pub fn register_transcript(nonce: &str, peer: &PeerId) -> Vec<u8> {
    let mut out = Vec::with_capacity(REGISTER_TAG.len() + nonce.len() + 1 + peer.as_str().len());
    out.extend_from_slice(REGISTER_TAG);
    out.extend_from_slice(nonce.as_bytes());
    out.push(0);
    out.extend_from_slice(peer.as_str().as_bytes());
    out
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Exactly `N` bytes from hex (either case); `None` if `text` is anything else.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PeerId {
        PeerId::new(s).expect("valid test id")
    }

    fn all_client_messages() -> Vec<ClientMessage> {
        vec![
            ClientMessage::Register { peer: id("a1"), public_key: "ab".repeat(32), signature: "cd".repeat(64) },
            ClientMessage::Signal {
                to: id("b-2"),
                payload: SignalPayload::Offer { sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into() },
            },
            ClientMessage::Signal { to: id("b_2"), payload: SignalPayload::Answer { sdp: "v=0".into() } },
            ClientMessage::Signal {
                to: id("B"),
                payload: SignalPayload::Candidate {
                    candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                },
            },
            ClientMessage::Signal {
                to: id("B"),
                payload: SignalPayload::Candidate { candidate: String::new(), sdp_mid: None, sdp_m_line_index: None },
            },
        ]
    }

    fn all_server_messages() -> Vec<ServerMessage> {
        vec![
            ServerMessage::Welcome {
                peer: id("me"),
                protocol: PROTOCOL_VERSION,
                overlay: 6 << 16 | 2,
                ice_servers: vec![IceServer {
                    urls: vec!["turn:127.0.0.1:3478".into()],
                    username: Some("u".into()),
                    credential: Some("p".into()),
                }],
                peers: vec![id("x"), id("y")],
            },
            ServerMessage::Welcome {
                peer: id("me"),
                protocol: PROTOCOL_VERSION,
                overlay: 0,
                ice_servers: vec![],
                peers: vec![],
            },
            ServerMessage::Challenge { nonce: "00".repeat(CHALLENGE_BYTES) },
            ServerMessage::Signal { from: id("x"), payload: SignalPayload::Answer { sdp: "v=0 é ✓".into() } },
            ServerMessage::error(ErrorCode::UnknownPeer, "no such peer"),
        ]
    }

    #[test]
    fn client_messages_round_trip() {
        for msg in all_client_messages() {
            let json = msg.to_json();
            assert_eq!(ClientMessage::from_json(&json).expect(&json), msg);
        }
    }

    #[test]
    fn server_messages_round_trip() {
        for msg in all_server_messages() {
            let json = msg.to_json();
            assert_eq!(ServerMessage::from_json(&json).expect(&json), msg);
        }
    }

    #[test]
    fn wire_shape_is_stable() {
        let json = ClientMessage::Signal {
            to: id("b"),
            payload: SignalPayload::Candidate {
                candidate: "c".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
            },
        }
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"signal","to":"b","payload":{"kind":"candidate","candidate":"c","sdp_mid":"0","sdp_m_line_index":0}}"#
        );
        assert_eq!(
            ServerMessage::error(ErrorCode::PeerIdTaken, "taken").to_json(),
            r#"{"type":"error","code":"peer_id_taken","message":"taken"}"#
        );
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let msg = ClientMessage::from_json(r#"{"type":"register","peer":"a","public_key":"","signature":"","x":1}"#)
            .expect("extra field accepted");
        assert_eq!(msg, ClientMessage::Register { peer: id("a"), public_key: String::new(), signature: String::new() });
    }

    #[test]
    fn a_welcome_from_a_server_that_does_not_say_its_overlay_version_has_version_0() {
        let msg =
            ServerMessage::from_json(r#"{"type":"welcome","peer":"me","protocol":3,"ice_servers":[],"peers":[]}"#)
                .expect("decodes");
        assert!(matches!(msg, ServerMessage::Welcome { overlay: 0, .. }));
    }

    #[test]
    fn unknown_error_codes_decode_as_other() {
        let msg = ServerMessage::from_json(r#"{"type":"error","code":"out_of_cheese","message":""}"#).expect("decodes");
        assert!(matches!(msg, ServerMessage::Error { code: ErrorCode::Other, .. }));
    }

    #[test]
    fn malformed_input_is_rejected() {
        let bad = [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"type":"launch"}"#,
            r#"{"type":"register"}"#,
            r#"{"type":"register","peer":""}"#,
            r#"{"type":"register","peer":"has space"}"#,
            r#"{"type":"register","peer":"<script>"}"#,
            r#"{"type":"register","peer":42}"#,
            r#"{"type":"signal","to":"b"}"#,
            r#"{"type":"signal","to":"b","payload":{"kind":"pranswer","sdp":""}}"#,
            r#"{"type":"signal","to":"b","payload":{"kind":"offer"}}"#,
            r#"{"type":"signal","to":"b","payload":{"kind":"candidate","candidate":"c","sdp_m_line_index":70000}}"#,
            r#"{"type":"welcome","peer":"a","protocol":1,"ice_servers":[],"peers":[]}"#,
        ];
        for text in bad {
            let err = ClientMessage::from_json(text).expect_err(text);
            assert_eq!(err.code(), ErrorCode::Malformed, "{text}: {err}");
        }
    }

    #[test]
    fn hex_and_transcript() {
        assert_eq!(to_hex(&[0, 0xab, 0x7f]), "00ab7f");
        assert_eq!(from_hex::<3>("00AB7f"), Some([0, 0xab, 0x7f]));
        assert_eq!(from_hex::<3>("00ab7"), None);
        assert_eq!(from_hex::<2>("zz00"), None);
        let t = register_transcript("0011", &id("abc"));
        assert!(t.starts_with(REGISTER_TAG) && t.ends_with(b"0011\0abc"));
    }

    #[test]
    fn peer_id_limits() {
        assert!(PeerId::new("a".repeat(MAX_PEER_ID_BYTES)).is_ok());
        assert_eq!(PeerId::new("a".repeat(MAX_PEER_ID_BYTES + 1)), Err(InvalidPeerId::Length(MAX_PEER_ID_BYTES + 1)));
        assert_eq!(PeerId::new("é"), Err(InvalidPeerId::Character('é')));
    }

    #[test]
    fn oversized_messages_are_rejected_before_parsing() {
        let text = format!("{{\"junk\":\"{}\"", "x".repeat(MAX_MESSAGE_BYTES));
        let err = ClientMessage::from_json(&text).expect_err("too large");
        assert!(matches!(err, DecodeError::TooLarge { .. }));
        assert_eq!(err.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn oversized_fields_are_rejected() {
        let msg =
            ClientMessage::Signal { to: id("b"), payload: SignalPayload::Offer { sdp: "x".repeat(MAX_SDP_BYTES + 1) } };
        let err = ClientMessage::from_json(&msg.to_json()).expect_err("sdp too large");
        assert!(matches!(err, DecodeError::FieldTooLarge { field: "sdp", .. }));
        let reject = SignalPayload::Reject { reason: "x".repeat(MAX_REASON_BYTES + 1) };
        let msg = ClientMessage::Signal { to: id("b"), payload: reject };
        let err = ClientMessage::from_json(&msg.to_json()).expect_err("reason too long");
        assert!(matches!(err, DecodeError::FieldTooLarge { field: "reason", .. }));

        let many = ServerMessage::Welcome {
            peer: id("a"),
            protocol: PROTOCOL_VERSION,
            overlay: 6 << 16 | 2,
            ice_servers: vec![],
            peers: (0..=MAX_WELCOME_PEERS).map(|i| id(&i.to_string())).collect(),
        };
        let err = ServerMessage::from_json(&many.to_json()).expect_err("too many peers");
        assert!(matches!(err, DecodeError::TooMany { field: "peers", .. }));
    }

    #[test]
    fn error_messages_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
        let ServerMessage::Error { message, .. } = ServerMessage::error(ErrorCode::Other, long) else {
            panic!("not an error message");
        };
        assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(message.chars().all(|c| c == 'é'));
    }
}
