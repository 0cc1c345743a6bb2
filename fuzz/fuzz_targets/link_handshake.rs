//! The authentication handshake on a new data channel: the DTLS fingerprints read from both
//! SDPs (which come from the peer through the signaling server or the overlay), then hellos
//! and proofs in any order, valid or forged, or decoded from raw data channel messages.
//!
//! Properties: no panic; the canonical fingerprints are non-empty and within their bound; a
//! hello with a key other than the expected peer's is refused; the handshake completes only
//! with the expected peer's signature over this connection's transcript (its hello's nonce
//! and both sides' fingerprints), and then reports the expected id and the hello's `joined`,
//! or, if the hello was of another overlay version, that version.
#![no_main]

use arbitrary::Arbitrary;
use ed25519_dalek::{Signer as _, SigningKey};
use libfuzzer_sys::fuzz_target;
use past_core::Id;
use past_core::wire::MAX_FRAME_BYTES;
use past_link::auth::{MAX_FINGERPRINTS_BYTES, canonical_fingerprints, transcript};
use past_link::frame::{Incoming, Reassembler};
use past_link::{AuthError, AuthMessage, Handshake, OVERLAY_VERSION};

#[derive(Arbitrary, Debug)]
struct Input {
    local_sdp: String,
    remote_sdp: String,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The expected peer's hello.
    PeerHello { nonce: [u8; 32], joined: bool },
    /// A hello with any key.
    OtherHello { key: [u8; 32], nonce: [u8; 32], joined: bool },
    /// A hello with our own key.
    OwnHello { nonce: [u8; 32] },
    /// The expected peer's hello, of any version.
    VersionHello { version: u32, nonce: [u8; 32], joined: bool },
    /// The expected peer's proof over this connection's transcript.
    ValidProof,
    /// The expected peer's signature over another nonce's transcript.
    ReplayedProof { nonce: [u8; 32] },
    /// Any bytes as the signature.
    Forged(Vec<u8>),
    /// A raw data channel message.
    Wire(Vec<u8>),
}

const FALLBACK_LOCAL: &str = "a=fingerprint:sha-256 AA:BB\r\n";
const FALLBACK_REMOTE: &str = "a=fingerprint:sha-256 CC:DD\r\n";

fn prints(sdp: &str) -> Option<String> {
    let prints = canonical_fingerprints(sdp, "fuzzed").ok()?;
    assert!(!prints.is_empty() && prints.len() <= MAX_FINGERPRINTS_BYTES);
    Some(prints)
}

struct State {
    handshake: Handshake,
    peer: SigningKey,
    local: String,
    remote: String,
    own_nonce: [u8; 32],
    /// The accepted hello's nonce, `joined` and version.
    hello: Option<([u8; 32], bool, u32)>,
    done: bool,
}

impl State {
    fn hello(&mut self, version: u32, key: [u8; 32], nonce: [u8; 32], joined: bool) {
        let result = self.handshake.on_hello(version, key, nonce, joined);
        let peer = self.peer.verifying_key().to_bytes();
        if key != peer || self.hello.is_some() {
            assert!(result.is_err(), "a hello with another key or a second hello is refused");
            return;
        }
        let expected = transcript(&own_key(), (&self.local, &self.own_nonce), (&self.remote, &nonce));
        assert_eq!(result, Ok(expected));
        self.hello = Some((nonce, joined, version));
    }

    fn proof(&mut self, signature: &[u8]) {
        let result = self.handshake.on_proof(signature);
        let valid = self.hello.is_some_and(|(nonce, _, _)| {
            let signed = transcript(
                &self.peer.verifying_key().to_bytes(),
                (&self.remote, &nonce),
                (&self.local, &self.own_nonce),
            );
            self.peer.sign(&signed).to_bytes().as_slice() == signature
        });
        match result {
            Ok((id, joined)) => {
                assert!(valid && !self.done, "only the peer's first proof over this connection verifies");
                assert_eq!(id, Id::from_public_key(&self.peer.verifying_key().to_bytes()));
                assert_eq!(Some((joined, OVERLAY_VERSION)), self.hello.map(|(_, joined, version)| (joined, version)));
                self.done = true;
            }
            Err(AuthError::OtherVersion(version)) => {
                assert!(valid && !self.done, "only a verified proof reports the peer's version");
                assert_eq!(self.hello.map(|(_, _, v)| v), Some(version));
                assert_ne!(version, OVERLAY_VERSION);
                self.done = true;
            }
            Err(err) => assert!(!valid || self.done, "a valid first proof was refused: {err}"),
        }
        assert_eq!(self.handshake.is_done(), self.done);
    }

    fn valid_signature(&self, nonce: [u8; 32]) -> Vec<u8> {
        let signed =
            transcript(&self.peer.verifying_key().to_bytes(), (&self.remote, &nonce), (&self.local, &self.own_nonce));
        self.peer.sign(&signed).to_bytes().to_vec()
    }
}

fn own_key() -> [u8; 32] {
    SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes()
}

fuzz_target!(|input: Input| {
    let (local_sdp, remote_sdp) = match (prints(&input.local_sdp), prints(&input.remote_sdp)) {
        (Some(_), Some(_)) => (input.local_sdp.as_str(), input.remote_sdp.as_str()),
        _ => (FALLBACK_LOCAL, FALLBACK_REMOTE),
    };
    let peer = SigningKey::from_bytes(&[2; 32]);
    let expected = Id::from_public_key(&peer.verifying_key().to_bytes());
    let own_nonce = [7; 32];
    let handshake = match Handshake::new(own_key(), own_nonce, local_sdp, remote_sdp, expected) {
        Ok(handshake) => handshake,
        Err(err) => panic!("fingerprints that parse make a handshake: {err}"),
    };
    let mut state = State {
        handshake,
        peer,
        local: prints(local_sdp).unwrap_or_default(),
        remote: prints(remote_sdp).unwrap_or_default(),
        own_nonce,
        hello: None,
        done: false,
    };
    for op in input.ops {
        match op {
            Op::PeerHello { nonce, joined } => {
                state.hello(OVERLAY_VERSION, state.peer.verifying_key().to_bytes(), nonce, joined)
            }
            Op::OtherHello { key, nonce, joined } => state.hello(OVERLAY_VERSION, key, nonce, joined),
            Op::VersionHello { version, nonce, joined } => {
                state.hello(version, state.peer.verifying_key().to_bytes(), nonce, joined)
            }
            Op::OwnHello { nonce } => {
                assert!(matches!(
                    state.handshake.on_hello(OVERLAY_VERSION, own_key(), nonce, true),
                    Err(AuthError::OwnId | AuthError::Unexpected(_))
                ));
            }
            Op::ValidProof => {
                let nonce = state.hello.map_or([0; 32], |(nonce, _, _)| nonce);
                let signature = state.valid_signature(nonce);
                state.proof(&signature);
            }
            Op::ReplayedProof { nonce } => {
                let signature = state.valid_signature(nonce);
                state.proof(&signature);
            }
            Op::Forged(signature) => state.proof(&signature),
            Op::Wire(bytes) => match Reassembler::new(MAX_FRAME_BYTES).push(&bytes) {
                Ok(Some(Incoming::Auth(AuthMessage::Hello { version, public_key, nonce, joined }))) => {
                    state.hello(version, public_key, nonce, joined)
                }
                Ok(Some(Incoming::Auth(AuthMessage::Proof { signature }))) => state.proof(&signature),
                _ => {}
            },
        }
    }
});
