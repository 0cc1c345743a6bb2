//! Signatures, file certificates and chunks already verified, shared by the nodes of one
//! process.
//!
//! Each node remembers the digests of the last certificates it verified (see
//! `Past::check_cert`). A process that runs many nodes (the simulator, where the root and
//! each of the k storing nodes check the same certificate) can also give them one
//! [`SharedVerified`] set: a certificate whose exact bytes (body, signer, signature) one node
//! verified is not verified again by another, and a signature (signer, signed bytes,
//! signature) that verified is not verified again. Verification is a pure function of those
//! bytes, so the outcome of every check is the same with or without the set; only the time
//! spent, and the thread that spends it, differ: [`SharedVerified::verify`] lets a thread of
//! the process verify signatures ahead of the nodes that will check them. The k nodes that
//! pull a new replica check each chunk against its SHA-1; with the set, the first hashes it
//! and the others compare their bytes with the bytes that matched (a comparison costs a
//! tenth of a hash, and equal bytes have equal hashes). A real node has no such set.

// Membership sets and a key cache, never iterated, so their order cannot reach a result;
// hashing 20 bytes is several times cheaper than walking a tree of a million digests.
#[allow(clippy::disallowed_types)]
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use ed25519_dalek::VerifyingKey;
use sha1::{Digest, Sha1};

use crate::past::certificate::sha1;
use crate::past::crypto::{PublicKey, Signature, parse_key, verify_all, verify_parsed};
use crate::past::file_id::Hash;

/// Signature digests held in one generation: when the newer generation is this full, the
/// older one is forgotten, so that the set stays bounded (a signature forgotten is only
/// verified again).
const GENERATION: usize = 1 << 20;

/// Chunks held by their hash, the latest first out (at most 16 MiB of 64 KiB chunks): the k
/// nodes that pull a replica check its chunks within moments of each other.
const CHUNKS: usize = 256;

/// Digests of signed certificates and of signatures that verified, and the signers' keys
/// already parsed, shared by the nodes of one process.
#[derive(Clone, Default)]
pub struct SharedVerified(Arc<Mutex<Shared>>);

#[derive(Default)]
#[allow(clippy::disallowed_types)]
struct Shared {
    certificates: HashSet<Hash>,
    /// Digests of signatures that verified ([`signature_digest`]): the newer generation and
    /// the older one.
    signatures: [HashSet<Hash>; 2],
    /// Public keys decompressed into curve points: a key is parsed once, not for each
    /// signature it made (parsing is a pure function of the key's bytes).
    keys: HashMap<PublicKey, VerifyingKey>,
    /// Chunks whose SHA-1 was computed lately, by that hash, and the order they came in.
    chunks: HashMap<Hash, Arc<[u8]>>,
    chunk_order: VecDeque<Hash>,
}

impl Shared {
    fn has_signature(&self, digest: &Hash) -> bool {
        self.signatures.iter().any(|generation| generation.contains(digest))
    }

    fn insert_signature(&mut self, digest: Hash) {
        if self.signatures[0].len() >= GENERATION {
            self.signatures[1] = core::mem::take(&mut self.signatures[0]);
        }
        self.signatures[0].insert(digest);
    }

    fn insert_chunk(&mut self, hash: Hash, data: Arc<[u8]>) {
        if self.chunks.insert(hash, data).is_some() {
            return;
        }
        self.chunk_order.push_back(hash);
        if self.chunk_order.len() > CHUNKS
            && let Some(oldest) = self.chunk_order.pop_front()
        {
            self.chunks.remove(&oldest);
        }
    }
}

/// Names one verification: the signer, the exact bytes signed and the signature.
fn signature_digest(signer: &PublicKey, message: &[u8], signature: &Signature) -> Hash {
    let mut hasher = Sha1::new();
    hasher.update(b"PAST-v1 verified signature\0");
    hasher.update(signer.0);
    hasher.update(signature.0);
    hasher.update(message);
    hasher.finalize().into()
}

impl SharedVerified {
    /// An empty set.
    pub fn new() -> Self {
        SharedVerified::default()
    }

    /// Whether `signature` is `signer`'s signature of `message` (strict verification, as
    /// every node verifies); a good one is remembered, and one remembered is not verified
    /// again. The lock is not held while verifying, so another thread can
    /// call this to verify signatures before the nodes need them.
    pub fn verify(&self, signer: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let digest = signature_digest(signer, message, signature);
        if self.has_signature(&digest) {
            return true;
        }
        let good = verify_parsed(self.key(signer).as_ref(), message, signature);
        if good && let Ok(mut shared) = self.0.lock() {
            shared.insert_signature(digest);
        }
        good
    }

    /// Whether every `(signer, signed bytes, signature)` verifies, checking those not held in
    /// one batch, as a client checks its store receipts (the same checks, at about half the
    /// cost per signature); if the batch fails, one by one as [`SharedVerified::verify`].
    /// The good ones are held afterwards.
    pub fn verify_many(&self, checks: &[(PublicKey, Vec<u8>, Signature)]) -> bool {
        let digests: Vec<Hash> = checks.iter().map(|(k, m, s)| signature_digest(k, m, s)).collect();
        let left: Vec<usize> = (0..checks.len()).filter(|&i| !self.has_signature(&digests[i])).collect();
        let keys: Vec<Option<VerifyingKey>> = left.iter().map(|&i| self.key(&checks[i].0)).collect();
        let batch: Vec<_> =
            left.iter().zip(&keys).map(|(&i, k)| (k.as_ref(), &checks[i].1[..], &checks[i].2)).collect();
        if left.len() > 1 && verify_all(&batch) {
            if let Ok(mut shared) = self.0.lock() {
                left.iter().for_each(|&i| shared.insert_signature(digests[i]));
            }
            return true;
        }
        // Every one, so that the good ones are held.
        let bad = left.iter().filter(|&&i| !self.verify(&checks[i].0, &checks[i].1, &checks[i].2)).count();
        bad == 0
    }

    /// Whether the SHA-1 of `data` is `expected`: `data` is compared with the bytes held
    /// under `expected` if there are some, and hashed otherwise (then held if it matched).
    pub(crate) fn chunk_matches(&self, expected: &Hash, data: &[u8]) -> bool {
        // The comparison is made without the lock: the crypto thread takes it often.
        let held = self.0.lock().ok().and_then(|shared| shared.chunks.get(expected).cloned());
        if held.is_some_and(|held| *held == *data) {
            return true;
        }
        if sha1(data) != *expected {
            return false;
        }
        if let Ok(mut shared) = self.0.lock() {
            shared.insert_chunk(*expected, data.into());
        }
        true
    }

    /// Whether `signature` of `message` by `signer` is held as verified.
    pub fn holds_signature(&self, signer: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        self.has_signature(&signature_digest(signer, message, signature))
    }

    /// Whether the certificate with this digest already verified.
    pub(crate) fn contains(&self, digest: &Hash) -> bool {
        self.0.lock().is_ok_and(|shared| shared.certificates.contains(digest))
    }

    /// Records that the certificate with this digest verified.
    pub(crate) fn insert(&self, digest: Hash) {
        if let Ok(mut shared) = self.0.lock() {
            shared.certificates.insert(digest);
        }
    }

    /// Whether the signature with this [`signature_digest`] already verified.
    fn has_signature(&self, digest: &Hash) -> bool {
        self.0.lock().is_ok_and(|shared| shared.has_signature(digest))
    }

    /// `signer` parsed into a curve point, parsed once per process; `None` if it is not a
    /// point.
    pub(crate) fn key(&self, signer: &PublicKey) -> Option<VerifyingKey> {
        if let Ok(shared) = self.0.lock()
            && let Some(key) = shared.keys.get(signer)
        {
            return Some(*key);
        }
        // Parsed without the lock, so that the other threads' checks do not wait for it.
        let key = parse_key(signer)?;
        if let Ok(mut shared) = self.0.lock() {
            shared.keys.insert(*signer, key);
        }
        Some(key)
    }

    /// Number of certificate digests held.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |shared| shared.certificates.len())
    }

    /// Whether no certificate digest is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for SharedVerified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedVerified({} digests)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::past::crypto::Ed25519Signer;

    #[test]
    fn a_batch_holds_its_good_signatures_and_never_a_bad_one() {
        let checks: Vec<(PublicKey, Vec<u8>, Signature)> = (1..=5u8)
            .map(|i| {
                let key = Ed25519Signer::from_seed([i; 32]);
                (key.public_key(), vec![i; 40], key.sign_message(&[i; 40]))
            })
            .collect();
        let shared = SharedVerified::new();
        assert!(shared.verify_many(&checks));
        assert!(checks.iter().all(|(k, m, s)| shared.holds_signature(k, m, s)));
        let mut bad = checks.clone();
        for (_, message, _) in &mut bad {
            message.push(0);
        }
        bad[2].2 = Ed25519Signer::from_seed([3; 32]).sign_message(&bad[2].1);
        assert!(!shared.verify_many(&bad));
        let held: Vec<bool> = bad.iter().map(|(k, m, s)| shared.holds_signature(k, m, s)).collect();
        assert_eq!(held, [false, false, true, false, false], "only the one good signature");
    }

    #[test]
    fn a_chunk_matches_its_hash_whether_hashed_or_compared_and_other_bytes_never_do() {
        let shared = SharedVerified::new();
        let chunk = vec![7u8; 1000];
        let hash = sha1(&chunk);
        let mut other = chunk.clone();
        other[999] = 8;
        assert!(!shared.chunk_matches(&hash, &other), "hashed: other bytes");
        assert!(shared.chunk_matches(&hash, &chunk), "hashed, then held");
        assert!(shared.chunk_matches(&hash, &chunk), "compared with the bytes held");
        assert!(!shared.chunk_matches(&hash, &other), "compared: one byte differs");
        assert!(!shared.chunk_matches(&hash, &chunk[..999]), "compared: shorter");
        assert!(!shared.chunk_matches(&sha1(b"x"), &chunk), "held under another hash");
        for i in 0..CHUNKS as u32 {
            let data = i.to_be_bytes();
            assert!(shared.chunk_matches(&sha1(&data), &data));
        }
        let held = shared.0.lock().map(|s| (s.chunks.len(), s.chunks.contains_key(&hash))).expect("lock");
        assert_eq!(held, (CHUNKS, false), "bounded: the oldest chunk went first");
        assert!(shared.chunk_matches(&hash, &chunk), "hashed again once forgotten");
    }
}
