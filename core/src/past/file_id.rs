//! fileIds: where a file lives on the ring.
//!
//! PAST section 2.2: "the fileId is computed as the secure hash (SHA-1) of the file's
//! name, the owner's public key and a randomly chosen salt". The 160-bit fileId is stored
//! in full; Pastry routes with its 128 most significant bits ([`FileId::key`]). The hash
//! input is length-prefixed so that no two (name, key, salt) triples share an encoding.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::id::Id;
use crate::past::crypto::{PublicKey, hex};

/// Domain separation of the fileId hash.
const FILE_ID_DOMAIN: &[u8] = b"PAST-v1 fileId\0";

/// A SHA-1 digest.
pub type Hash = [u8; 20];

/// A 160-bit PAST fileId. Ordered as its bytes are (as a big-endian number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId(pub Hash);

impl FileId {
    /// The id as three big-endian words, which order as the bytes do: nodes keep their
    /// files in ordered maps, and comparing words is several times cheaper than comparing
    /// 20 bytes one by one.
    fn words(&self) -> (u64, u64, u32) {
        let [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t] = self.0;
        (
            u64::from_be_bytes([a, b, c, d, e, f, g, h]),
            u64::from_be_bytes([i, j, k, l, m, n, o, p]),
            u32::from_be_bytes([q, r, s, t]),
        )
    }
}

impl Ord for FileId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for FileId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FileId {
    /// SHA-1(domain, len(name) as u32 big-endian, name, owner public key, salt big-endian).
    pub fn derive(name: &str, owner: &PublicKey, salt: u64) -> Self {
        let mut hasher = Sha1::new();
        hasher.update(FILE_ID_DOMAIN);
        hasher.update((name.len() as u32).to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update(owner.0);
        hasher.update(salt.to_be_bytes());
        FileId(hasher.finalize().into())
    }

    /// The routing key: the 128 most significant bits.
    pub fn key(&self) -> Id {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.0[..16]);
        Id::from_bytes(bytes)
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({})", hex(&self.0))
    }
}

impl fmt::Display for FileId {
    /// The full 40 hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_unambiguous_and_salted() {
        let owner = PublicKey([1; 32]);
        let a = FileId::derive("ab", &owner, 0);
        assert_eq!(a, FileId::derive("ab", &owner, 0));
        assert_ne!(a, FileId::derive("ab", &owner, 1));
        assert_ne!(a, FileId::derive("ab", &PublicKey([2; 32]), 0));
        assert_ne!(FileId::derive("a", &owner, 0), FileId::derive("a\0", &owner, 0));
        assert_eq!(&a.key().to_bytes()[..], &a.0[..16]);
    }

    proptest::proptest! {
        #[test]
        fn file_ids_order_as_their_bytes(a in proptest::array::uniform20(0u8..), b in proptest::array::uniform20(0u8..), cut in 0usize..20) {
            // Equal prefixes of every length, so the later words decide too.
            let mut b = b;
            b[..cut].copy_from_slice(&a[..cut]);
            proptest::prop_assert_eq!(FileId(a).cmp(&FileId(b)), a.cmp(&b));
            proptest::prop_assert_eq!(FileId(a).cmp(&FileId(a)), std::cmp::Ordering::Equal);
        }
    }
}
