//! Peer authentication: each side of a new data channel proves it holds the private key of
//! the nodeId it claims, in a way bound to this connection.
//!
//! When the channel opens both sides send [`AuthMessage::Hello`] (the overlay version,
//! Ed25519 public key and a fresh 32-byte nonce). On the peer's hello each side signs the transcript
//!
//! ```text
//! "past-link-auth-v1" 0x00
//! signer's public key (32 bytes)
//! for the two (fingerprints, nonce) pairs of the connection, sorted by fingerprints:
//!     u16 length, fingerprints (canonical text), nonce (32 bytes)
//! ```
//!
//! and sends it as [`AuthMessage::Proof`]. The fingerprints are the `a=fingerprint` lines of
//! each side's SDP ([`canonical_fingerprints`]): the local ones from our own description, the
//! remote ones from the peer's, which DTLS checked against the certificate it saw. A relay in
//! the middle runs two DTLS sessions with other fingerprints, so a proof it forwards does not
//! verify; a proof replayed from another connection has other nonces. The signer's key in the
//! transcript makes the two proofs of one connection differ, so a peer cannot reflect ours.
//!
//! The verifier derives the nodeId from the key ([`Id::from_public_key`]) and requires it to
//! equal the id it expected (the id it signalled, or that signalled to it). Until the proof
//! verifies no Pastry message from the peer is handled; any failure drops the connection.
//!
//! A hello of another overlay version goes on to its proof, so that the peer proves it is
//! the one that said so (the hello and the proof come over the same DTLS session): the
//! proof that verifies then ends the handshake with [`AuthError::OtherVersion`]. A claim
//! nobody proved could otherwise make a node shun an honest peer.

use ed25519_dalek::{Signature, VerifyingKey};
use past_core::Id;
use serde::{Deserialize, Serialize};

use crate::version::{OVERLAY_VERSION, version_text};

/// Domain separation tag of the transcript.
pub const AUTH_TAG: &[u8] = b"past-link-auth-v1\0";

/// Size of a nonce.
pub const NONCE_BYTES: usize = 32;

/// Longest canonical fingerprint text accepted from an SDP.
pub const MAX_FINGERPRINTS_BYTES: usize = 1024;

/// A message of the handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMessage {
    /// The sender's version, key and nonce. `joined` says whether the sender takes part in
    /// routing (a joining node prefers a joined contact).
    Hello {
        /// The sender's [`OVERLAY_VERSION`]. It stays the first field in every version, so
        /// that any node can read the version of any other's hello.
        version: u32,
        /// Ed25519 public key.
        public_key: [u8; 32],
        /// Fresh random nonce.
        nonce: [u8; NONCE_BYTES],
        /// Whether the sender is a joined Pastry node.
        joined: bool,
    },
    /// The signature over the transcript (64 bytes).
    Proof {
        /// Ed25519 signature.
        signature: Vec<u8>,
    },
}

/// Why a peer failed to authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// An SDP has no `a=fingerprint` line.
    #[error("the {0} SDP has no DTLS fingerprint")]
    NoFingerprint(&'static str),
    /// The fingerprints of an SDP are unreasonably long.
    #[error("the {0} SDP's fingerprints are too long")]
    FingerprintTooLong(&'static str),
    /// The public key is not a valid Ed25519 point.
    #[error("invalid public key")]
    BadKey,
    /// The key belongs to another node than the one expected.
    #[error("the peer's key gives nodeId {got:?}, expected {expected:?}")]
    WrongId {
        /// Id derived from the key.
        got: Id,
        /// Id expected.
        expected: Id,
    },
    /// The peer presented our own key.
    #[error("the peer presented our own identity")]
    OwnId,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// The peer runs another version of the overlay: the two cannot talk.
    #[error("the peer speaks overlay version {}, this node {}", version_text(*.0), version_text(OVERLAY_VERSION))]
    OtherVersion(u32),
    /// A message came out of order (a second hello, a proof before the hello).
    #[error("unexpected handshake message: {0}")]
    Unexpected(&'static str),
}

/// The canonical form of the `a=fingerprint` lines of an SDP: each as `algorithm HEX`
/// (algorithm lower case, hex upper case with colons), sorted, deduplicated, joined by `,`.
pub fn canonical_fingerprints(sdp: &str, which: &'static str) -> Result<String, AuthError> {
    let mut prints: Vec<String> = sdp
        .lines()
        .filter_map(|line| line.trim().strip_prefix("a=fingerprint:"))
        .filter_map(|value| {
            let mut parts = value.split_whitespace();
            let algorithm = parts.next()?.to_ascii_lowercase();
            let hex = parts.next()?.to_ascii_uppercase();
            Some(format!("{algorithm} {hex}"))
        })
        .collect();
    prints.sort_unstable();
    prints.dedup();
    if prints.is_empty() {
        return Err(AuthError::NoFingerprint(which));
    }
    let joined = prints.join(",");
    if joined.len() > MAX_FINGERPRINTS_BYTES {
        return Err(AuthError::FingerprintTooLong(which));
    }
    Ok(joined)
}

/// The bytes `signer` signs for a connection between the sides `(fingerprints, nonce)`.
pub fn transcript(signer: &[u8; 32], a: (&str, &[u8; NONCE_BYTES]), b: (&str, &[u8; NONCE_BYTES])) -> Vec<u8> {
    let (first, second) = if (a.0, a.1) <= (b.0, b.1) { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(AUTH_TAG.len() + 32 + 2 * (2 + NONCE_BYTES) + first.0.len() + second.0.len());
    out.extend_from_slice(AUTH_TAG);
    out.extend_from_slice(signer);
    for (prints, nonce) in [first, second] {
        // Fingerprints are at most MAX_FINGERPRINTS_BYTES long: the length fits in a u16.
        out.extend_from_slice(&(prints.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        out.extend_from_slice(prints.as_bytes());
        out.extend_from_slice(nonce);
    }
    out
}

/// One side of the handshake on one connection, as plain data. The driver sends
/// [`Handshake::hello`] when the channel opens, signs what [`Handshake::on_hello`] returns
/// and sends it with [`Handshake::proof`], and learns the peer's id from
/// [`Handshake::on_proof`].
#[derive(Clone, Debug)]
pub struct Handshake {
    own_key: [u8; 32],
    own_nonce: [u8; NONCE_BYTES],
    local_prints: String,
    remote_prints: String,
    expected: Id,
    /// The peer's key, nonce, `joined` and version, from its hello.
    peer: Option<(VerifyingKey, [u8; NONCE_BYTES], bool, u32)>,
    done: bool,
}

impl Handshake {
    /// A handshake for a connection to `expected`, with the local and remote SDP of the
    /// connection.
    pub fn new(
        own_key: [u8; 32],
        own_nonce: [u8; NONCE_BYTES],
        local_sdp: &str,
        remote_sdp: &str,
        expected: Id,
    ) -> Result<Self, AuthError> {
        Ok(Handshake {
            own_key,
            own_nonce,
            local_prints: canonical_fingerprints(local_sdp, "local")?,
            remote_prints: canonical_fingerprints(remote_sdp, "remote")?,
            expected,
            peer: None,
            done: false,
        })
    }

    /// Our hello.
    pub fn hello(&self, joined: bool) -> AuthMessage {
        AuthMessage::Hello { version: OVERLAY_VERSION, public_key: self.own_key, nonce: self.own_nonce, joined }
    }

    /// The peer's hello: checks its key against the expected id and returns the transcript
    /// we must sign. Its version is checked once its proof verifies.
    pub fn on_hello(
        &mut self,
        version: u32,
        public_key: [u8; 32],
        nonce: [u8; NONCE_BYTES],
        joined: bool,
    ) -> Result<Vec<u8>, AuthError> {
        if self.peer.is_some() {
            return Err(AuthError::Unexpected("second hello"));
        }
        let got = Id::from_public_key(&public_key);
        if public_key == self.own_key {
            return Err(AuthError::OwnId);
        }
        if got != self.expected {
            return Err(AuthError::WrongId { got, expected: self.expected });
        }
        let key = VerifyingKey::from_bytes(&public_key).map_err(|_| AuthError::BadKey)?;
        self.peer = Some((key, nonce, joined, version));
        Ok(transcript(&self.own_key, (&self.local_prints, &self.own_nonce), (&self.remote_prints, &nonce)))
    }

    /// Our proof, with the driver's signature over [`Handshake::on_hello`]'s transcript.
    pub fn proof(signature: [u8; 64]) -> AuthMessage {
        AuthMessage::Proof { signature: signature.to_vec() }
    }

    /// The peer's proof: verifies it; returns the peer's id and whether it said it was
    /// joined, or [`AuthError::OtherVersion`] if the peer proved it runs another version.
    pub fn on_proof(&mut self, signature: &[u8]) -> Result<(Id, bool), AuthError> {
        let Some((key, nonce, joined, version)) = self.peer else {
            return Err(AuthError::Unexpected("proof before hello"));
        };
        if self.done {
            return Err(AuthError::Unexpected("second proof"));
        }
        let signature = Signature::from_slice(signature).map_err(|_| AuthError::BadSignature)?;
        let signed = transcript(key.as_bytes(), (&self.remote_prints, &nonce), (&self.local_prints, &self.own_nonce));
        key.verify_strict(&signed, &signature).map_err(|_| AuthError::BadSignature)?;
        self.done = true;
        if version != OVERLAY_VERSION {
            return Err(AuthError::OtherVersion(version));
        }
        Ok((self.expected, joined))
    }

    /// Whether the peer is authenticated (whatever its version).
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn sdp(print: &str) -> String {
        format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:SHA-256 {print}\r\nm=application 9\r\n")
    }

    struct Side {
        key: SigningKey,
        handshake: Handshake,
    }

    fn pair(seed_a: u8, seed_b: u8) -> (Side, Side) {
        let (ka, kb) = (SigningKey::from_bytes(&[seed_a; 32]), SigningKey::from_bytes(&[seed_b; 32]));
        let (sa, sb) = (sdp("aa:bb"), sdp("cc:dd"));
        let id = |k: &SigningKey| Id::from_public_key(&k.verifying_key().to_bytes());
        let a = Handshake::new(ka.verifying_key().to_bytes(), [1; 32], &sa, &sb, id(&kb)).unwrap();
        let b = Handshake::new(kb.verifying_key().to_bytes(), [2; 32], &sb, &sa, id(&ka)).unwrap();
        (Side { key: ka, handshake: a }, Side { key: kb, handshake: b })
    }

    fn hello_of(side: &Side) -> ([u8; 32], [u8; 32]) {
        match side.handshake.hello(true) {
            AuthMessage::Hello { public_key, nonce, .. } => (public_key, nonce),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn both_sides_authenticate_each_other() {
        let (mut a, mut b) = pair(1, 2);
        let (pa, na) = hello_of(&a);
        let (pb, nb) = hello_of(&b);
        let ta = a.handshake.on_hello(OVERLAY_VERSION, pb, nb, true).unwrap();
        let tb = b.handshake.on_hello(OVERLAY_VERSION, pa, na, true).unwrap();
        assert_ne!(ta, tb, "the signer's key makes the two transcripts differ");
        let sa = a.key.sign(&ta).to_bytes();
        let sb = b.key.sign(&tb).to_bytes();
        assert_eq!(b.handshake.on_proof(&sa).unwrap(), (Id::from_public_key(&pa), true));
        assert_eq!(a.handshake.on_proof(&sb).unwrap(), (Id::from_public_key(&pb), true));
        assert!(a.handshake.is_done() && b.handshake.is_done());
        assert_eq!(a.handshake.on_proof(&sb), Err(AuthError::Unexpected("second proof")));
    }

    #[test]
    fn a_key_of_another_node_is_refused() {
        let (mut a, _b) = pair(1, 2);
        let other = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
        assert!(matches!(a.handshake.on_hello(OVERLAY_VERSION, other, [0; 32], true), Err(AuthError::WrongId { .. })));
    }

    #[test]
    fn a_reflected_or_foreign_signature_is_refused() {
        let (mut a, mut b) = pair(1, 2);
        let (pa, na) = hello_of(&a);
        let (pb, nb) = hello_of(&b);
        let ta = a.handshake.on_hello(OVERLAY_VERSION, pb, nb, true).unwrap();
        b.handshake.on_hello(OVERLAY_VERSION, pa, na, true).unwrap();
        // A's own proof reflected back to A.
        let sa = a.key.sign(&ta).to_bytes();
        assert_eq!(a.handshake.on_proof(&sa), Err(AuthError::BadSignature));
        // B signing the transcript of another connection (other fingerprints).
        let other = transcript(&pb, ("sha-256 EE:FF", &nb), ("sha-256 AA:BB", &na));
        assert_eq!(a.handshake.on_proof(&b.key.sign(&other).to_bytes()), Err(AuthError::BadSignature));
        assert_eq!(a.handshake.on_proof(&[0; 10]), Err(AuthError::BadSignature));
        assert!(!a.handshake.is_done());
    }

    #[test]
    fn order_and_identity_checks() {
        let (mut a, _) = pair(1, 2);
        assert_eq!(a.handshake.on_proof(&[0; 64]), Err(AuthError::Unexpected("proof before hello")));
        let own = a.key.verifying_key().to_bytes();
        assert_eq!(a.handshake.on_hello(OVERLAY_VERSION, own, [0; 32], true), Err(AuthError::OwnId));
    }

    #[test]
    fn another_version_is_reported_once_the_peer_proved_it_said_so() {
        let (mut a, mut b) = pair(1, 2);
        let (pa, na) = hello_of(&a);
        let (pb, nb) = hello_of(&b);
        let newer = OVERLAY_VERSION + 1;
        let other = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
        assert!(matches!(a.handshake.on_hello(newer, other, nb, true), Err(AuthError::WrongId { .. })));
        let ta = a.handshake.on_hello(newer, pb, nb, true).unwrap();
        let tb = b.handshake.on_hello(OVERLAY_VERSION, pa, na, true).unwrap();
        assert_eq!(a.handshake.on_proof(&[0; 64]), Err(AuthError::BadSignature), "an unproven claim is no version");
        assert_eq!(a.handshake.on_proof(&b.key.sign(&tb).to_bytes()), Err(AuthError::OtherVersion(newer)));
        assert!(b.handshake.on_proof(&a.key.sign(&ta).to_bytes()).is_ok(), "b took a's hello for its own version");
        let message = AuthError::OtherVersion(5 << 16 | 1).to_string();
        assert_eq!(
            message,
            format!("the peer speaks overlay version 5.1, this node {}", version_text(OVERLAY_VERSION))
        );
    }

    #[test]
    fn fingerprints_are_canonical() {
        let sdp = "a=fingerprint:SHA-256 ab:cd\r\na=fingerprint:sha-256 AB:CD\r\n a=fingerprint:sha-1 01:02\r\n";
        assert_eq!(canonical_fingerprints(sdp, "local").unwrap(), "sha-1 01:02,sha-256 AB:CD");
        assert_eq!(canonical_fingerprints("v=0\r\n", "remote"), Err(AuthError::NoFingerprint("remote")));
        let long = format!("a=fingerprint:sha-256 {}\r\n", "A".repeat(2000));
        assert_eq!(canonical_fingerprints(&long, "local"), Err(AuthError::FingerprintTooLong("local")));
    }

    #[test]
    fn transcript_order_does_not_depend_on_the_side() {
        let k = [9; 32];
        assert_eq!(transcript(&k, ("x", &[1; 32]), ("y", &[2; 32])), transcript(&k, ("y", &[2; 32]), ("x", &[1; 32])));
    }
}
