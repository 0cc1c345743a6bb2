//! File certificates whose signature already verified, shared by the nodes of one process.
//!
//! Each node remembers the digests of the last certificates it verified (see
//! `Past::check_cert`). A process that runs many nodes (the simulator, where the root and
//! each of the k storing nodes check the same certificate) can also give them one
//! [`SharedVerified`] set: a certificate whose exact bytes (body, signer, signature) one node
//! verified is not verified again by another. Verification is a pure function of those
//! bytes, so the outcome of every check is the same with or without the set; only the time
//! spent differs. A real node has no such set.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::past::file_id::Hash;

/// Digests of signed certificates that verified, shared by the nodes of one process.
#[derive(Clone, Default)]
pub struct SharedVerified(Arc<Mutex<BTreeSet<Hash>>>);

impl SharedVerified {
    /// An empty set.
    pub fn new() -> Self {
        SharedVerified::default()
    }

    /// Whether a node already verified the certificate with this digest.
    pub(crate) fn contains(&self, digest: &Hash) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(digest))
    }

    /// Records that the certificate with this digest verified.
    pub(crate) fn insert(&self, digest: Hash) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(digest);
        }
    }

    /// Number of digests held.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |set| set.len())
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
