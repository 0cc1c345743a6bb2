//! Keys, signatures, and how the core asks its driver to sign.
//!
//! Every signature in PAST is Ed25519 and is checked with `ed25519-dalek` (strict
//! verification: no small-order keys, no malleable signatures). Signing is the driver's job,
//! because in the browser the key is a non-extractable WebCrypto key whose `sign` is
//! asynchronous: the core emits a [`SignRequest`] (the exact bytes to sign and the public key
//! that must sign them), and the driver answers with `handle_signature`. A driver that holds
//! its keys in memory (the native node's key file, the simulator, tests) completes the request
//! at once with a [`Signer`] such as [`Ed25519Signer`] or a [`Keyring`].

use std::collections::BTreeMap;
use std::fmt;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id::Id;
use crate::time::Time;

/// An Ed25519 public key (32 bytes): a node's identity or a file owner's.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The Pastry nodeId of the node holding this key (first 16 bytes of its SHA-1).
    pub fn node_id(&self) -> Id {
        Id::from_public_key(&self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.0[..8]))
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A tuple of 64 bytes: postcard writes exactly 64 bytes, no length prefix.
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes64;
        impl<'de> Visitor<'de> for Bytes64 {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut bytes = [0u8; 64];
                for (i, byte) in bytes.iter_mut().enumerate() {
                    *byte = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(bytes))
            }
        }
        deserializer.deserialize_tuple(64, Bytes64)
    }
}

/// Whether `signature` is `signer`'s Ed25519 signature of `message` (strict verification).
pub fn verify(signer: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    verify_parsed(parse_key(signer).as_ref(), message, signature)
}

/// The key as a curve point (decompressed), or `None` if the bytes encode no point.
pub(crate) fn parse_key(signer: &PublicKey) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&signer.0).ok()
}

/// [`verify`] with the signer's key already parsed (`None`: the key was not a point).
pub(crate) fn verify_parsed(key: Option<&VerifyingKey>, message: &[u8], signature: &Signature) -> bool {
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.is_some_and(|key| key.verify_strict(message, &signature).is_ok())
}

/// Whether every `(key, message, signature)` is a valid signature, with the same checks as
/// [`verify`] made on all of them at once.
///
/// Ed25519 batch verification (`ed25519_dalek::verify_batch`, one multiscalar multiplication
/// for all the signatures, with coefficients derived from them, no random source) costs about
/// half as much per signature as verifying one by one. The checks [`verify`]'s strict
/// verification adds to the equation are made first on each: canonical and non-small-order
/// keys and `R`s, canonical `s`. `false` says that at least one is bad, not which: verify
/// them one by one to find out.
///
/// Every set of signatures that pass [`verify`] passes. The one difference: a signer who
/// adds a small-order (torsion) component to its own valid signature may get it past the
/// batch (for some sets of coefficients, which a signer can search for), where strict
/// verification refuses it. That takes the signer's private key (the prime-order part of the equation must hold), so no one can
/// make a statement in another key's name this way.
pub(crate) fn verify_all(statements: &[(Option<&VerifyingKey>, &[u8], &Signature)]) -> bool {
    let mut keys = Vec::with_capacity(statements.len());
    let mut messages = Vec::with_capacity(statements.len());
    let mut signatures = Vec::with_capacity(statements.len());
    for &(key, message, signature) in statements {
        let Some(&key) = key else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        if key.is_weak() || !strict_r(&signature) {
            return false;
        }
        keys.push(key);
        messages.push(message);
        signatures.push(signature);
    }
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// Whether a signature's `R` is a point that is not of small order, as strict verification
/// requires.
fn strict_r(signature: &ed25519_dalek::Signature) -> bool {
    CompressedEdwardsY(*signature.r_bytes()).decompress().is_some_and(|r| !r.is_small_order())
}

/// Identifies one signing request of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignId(pub u64);

/// The core asks its driver to sign `message` with the private key of `signer`.
///
/// `message` is already domain-separated and canonical: sign it as it is (Ed25519, no
/// pre-hashing). Answer with `handle_signature(id, ..)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignRequest {
    /// Echo this in the answer.
    pub id: SignId,
    /// The key that must sign.
    pub signer: PublicKey,
    /// The bytes to sign.
    pub message: Vec<u8>,
}

/// Why a driver could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The driver holds no private key for this public key.
    #[error("no private key for {0:?}")]
    UnknownKey(PublicKey),
    /// The signing backend failed (for instance WebCrypto rejected the operation).
    #[error("signing failed: {0}")]
    Failed(String),
}

/// Something that signs synchronously with keys it holds.
pub trait Signer {
    /// Signs `message` with the private key of `signer`.
    fn sign(&self, signer: &PublicKey, message: &[u8]) -> Result<Signature, SignError>;

    /// Completes a [`SignRequest`].
    fn complete(&self, request: &SignRequest) -> Result<Signature, SignError> {
        self.sign(&request.signer, &request.message)
    }

    /// Takes `request`, made at `now`, to answer later, or gives it back to be signed at once
    /// (what a signer does by default). A signer that takes requests (one that signs on
    /// another thread) answers them through [`Signer::take_answer`] from the time
    /// [`Signer::next_answer_at`] gives.
    fn defer(&mut self, request: SignRequest, now: Time) -> Option<SignRequest> {
        let _ = now;
        Some(request)
    }

    /// When the first answer to a request taken by [`Signer::defer`] is due, if any.
    fn next_answer_at(&self) -> Option<Time> {
        None
    }

    /// An answer due by `now` to a request taken by [`Signer::defer`], if any.
    fn take_answer(&mut self, now: Time) -> Option<(SignId, Result<Signature, SignError>)> {
        let _ = now;
        None
    }
}

/// One Ed25519 key held in memory (tests, the simulator, the native node's key file).
#[derive(Clone)]
pub struct Ed25519Signer {
    key: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Signer").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// The key whose secret is `seed` (32 bytes drawn by the driver from a good source, or
    /// read from a key file).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let public = PublicKey(key.verifying_key().to_bytes());
        Ed25519Signer { key, public }
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The nodeId of a node with this key.
    pub fn node_id(&self) -> Id {
        self.public.node_id()
    }

    /// Signs `message`.
    pub fn sign_message(&self, message: &[u8]) -> Signature {
        Signature(self.key.sign(message).to_bytes())
    }
}

impl Signer for Ed25519Signer {
    fn sign(&self, signer: &PublicKey, message: &[u8]) -> Result<Signature, SignError> {
        if *signer != self.public {
            return Err(SignError::UnknownKey(*signer));
        }
        Ok(self.sign_message(message))
    }
}

/// Several keys: a node's own key and the keys of the users who insert through it.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: BTreeMap<PublicKey, Ed25519Signer>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Adds a key; returns its public key.
    pub fn add(&mut self, key: Ed25519Signer) -> PublicKey {
        let public = key.public_key();
        self.keys.insert(public, key);
        public
    }

    /// The key held for `public`, if any.
    pub fn get(&self, public: &PublicKey) -> Option<&Ed25519Signer> {
        self.keys.get(public)
    }
}

impl Signer for Keyring {
    fn sign(&self, signer: &PublicKey, message: &[u8]) -> Result<Signature, SignError> {
        self.keys.get(signer).map(|k| k.sign_message(message)).ok_or(SignError::UnknownKey(*signer))
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let key = Ed25519Signer::from_seed([3; 32]);
        let signature = key.sign_message(b"hello");
        assert!(verify(&key.public_key(), b"hello", &signature));
        assert!(!verify(&key.public_key(), b"hellO", &signature));
        let other = Ed25519Signer::from_seed([4; 32]);
        assert!(!verify(&other.public_key(), b"hello", &signature));
        assert!(!verify(&PublicKey([0xff; 32]), b"hello", &signature));
    }

    #[test]
    fn verify_all_agrees_with_verify() {
        let keys: Vec<Ed25519Signer> = (1..=5).map(|i| Ed25519Signer::from_seed([i; 32])).collect();
        let publics: Vec<PublicKey> = keys.iter().map(Ed25519Signer::public_key).collect();
        let parsed: Vec<Option<VerifyingKey>> = publics.iter().map(parse_key).collect();
        let messages: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let mut signatures: Vec<Signature> = keys.iter().zip(&messages).map(|(k, m)| k.sign_message(m)).collect();
        let all = |signatures: &[Signature]| {
            let statements: Vec<_> =
                parsed.iter().zip(&messages).zip(signatures).map(|((p, m), s)| (p.as_ref(), &m[..], s)).collect();
            verify_all(&statements)
        };
        assert!(all(&signatures));
        assert!(verify_all(&[]));
        signatures[3].0[40] ^= 1;
        assert!(!all(&signatures));
        // A small-order R (the identity, encoded as 1) fails as it does in `verify`.
        signatures[3] = keys[3].sign_message(&messages[3]);
        let mut identity_r = signatures[3];
        identity_r.0[..32].copy_from_slice(&[
            1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert!(!verify(&publics[3], &messages[3], &identity_r));
        signatures[3] = identity_r;
        assert!(!all(&signatures));
    }

    #[test]
    fn signature_encodes_as_64_bytes() {
        let signature = Signature([7; 64]);
        let bytes = postcard::to_allocvec(&signature).unwrap();
        assert_eq!(bytes.len(), 64);
        assert_eq!(postcard::from_bytes::<Signature>(&bytes).unwrap(), signature);
        assert!(postcard::from_bytes::<Signature>(&bytes[..63]).is_err());
    }

    #[test]
    fn keyring_signs_with_the_right_key() {
        let mut ring = Keyring::new();
        let a = ring.add(Ed25519Signer::from_seed([1; 32]));
        let signature = ring.sign(&a, b"m").unwrap();
        assert!(verify(&a, b"m", &signature));
        assert!(matches!(ring.sign(&PublicKey([9; 32]), b"m"), Err(SignError::UnknownKey(_))));
    }
}
