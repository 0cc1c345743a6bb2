//! File certificates whose signature already verified, shared by the nodes of one process.
//!
//! Each node remembers the digests of the last certificates it verified (see
//! `Past::check_cert`). A process that runs many nodes (the simulator, where the root and
//! each of the k storing nodes check the same certificate) can also give them one
//! [`SharedVerified`] set: a certificate whose exact bytes (body, signer, signature) one node
//! verified is not verified again by another. Verification is a pure function of those
//! bytes, so the outcome of every check is the same with or without the set; only the time
//! spent differs. A real node has no such set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use ed25519_dalek::VerifyingKey;

use crate::past::crypto::{PublicKey, parse_key};
use crate::past::file_id::Hash;

/// Digests of signed certificates that verified, and the signers' keys already parsed,
/// shared by the nodes of one process.
#[derive(Clone, Default)]
pub struct SharedVerified(Arc<Mutex<Shared>>);

#[derive(Default)]
struct Shared {
    certificates: BTreeSet<Hash>,
    /// Public keys decompressed into curve points: a key is parsed once, not for each
    /// signature it made (parsing is a pure function of the key's bytes).
    keys: BTreeMap<PublicKey, VerifyingKey>,
}

impl SharedVerified {
    /// An empty set.
    pub fn new() -> Self {
        SharedVerified::default()
    }

    /// Whether a node already verified the certificate with this digest.
    pub(crate) fn contains(&self, digest: &Hash) -> bool {
        self.0.lock().is_ok_and(|shared| shared.certificates.contains(digest))
    }

    /// Records that the certificate with this digest verified.
    pub(crate) fn insert(&self, digest: Hash) {
        if let Ok(mut shared) = self.0.lock() {
            shared.certificates.insert(digest);
        }
    }

    /// `signer` parsed into a curve point, parsed once per process; `None` if it is not a
    /// point.
    pub(crate) fn key(&self, signer: &PublicKey) -> Option<VerifyingKey> {
        let Ok(mut shared) = self.0.lock() else {
            return parse_key(signer);
        };
        if let Some(key) = shared.keys.get(signer) {
            return Some(*key);
        }
        let key = parse_key(signer)?;
        shared.keys.insert(*signer, key);
        Some(key)
    }

    /// Number of certificate digests held.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |shared| shared.certificates.len())
    }

    /// Whether no digest is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for SharedVerified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedVerified({} digests)", self.len())
    }
}
