//! Signed statements: file certificates, store receipts, reclaim certificates and reclaim
//! receipts (PAST section 2.2), and the chunking of file content.
//!
//! Each is a [`Signed`] body. The signature covers a canonical encoding: a domain string
//! naming the type, then the postcard encoding of the body (postcard is deterministic: fixed
//! field order, varints, length-prefixed strings), so a signature over one type can never be
//! replayed as another. The signer's public key travels with the signature and is checked
//! against the role it must play (the file's owner, or the node that claims the receipt).
//!
//! # Content and chunks
//! Content moves in chunks of [`CHUNK_SIZE`] bytes (the last may be shorter; an empty file
//! is one empty chunk). The certificate signs the SHA-1 of the whole content and the digest
//! of the list of the SHA-1 of every chunk ([`chunk_list_digest`]). The list itself (20 bytes
//! per 64 KiB chunk: 320 KiB for a 1 GiB file, too large for one frame) travels in pieces of
//! [`HASHES_PER_PIECE`] before the chunks, is checked against the certificate, and then every
//! chunk is checked as it arrives. For a single-chunk file the list is just the content hash
//! and never travels.

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::id::Id;
use crate::past::crypto::{PublicKey, Signature, parse_key, verify_all, verify_parsed};
use crate::past::file_id::{FileId, Hash};
use crate::past::verified::SharedVerified;

/// Size of a content chunk: the unit of transfer, storage requests and verification.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Chunk hashes per hash-list piece (60 KiB of hashes, within one frame).
pub const HASHES_PER_PIECE: usize = 3072;

/// Longest file name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;

/// Largest file the protocol can describe (4 GiB: 65,536 chunks, a 1.25 MiB hash list).
/// Nodes may set a lower limit in their configuration.
pub const MAX_FILE_SIZE: u64 = 1 << 32;

/// Number of chunks of a file of `size` bytes (at least one).
pub fn chunk_count(size: u64) -> u32 {
    u32::try_from(size.div_ceil(CHUNK_SIZE as u64).max(1)).unwrap_or(u32::MAX)
}

/// Length of chunk `index` of a file of `size` bytes.
pub fn chunk_len(size: u64, index: u32) -> usize {
    let start = u64::from(index) * CHUNK_SIZE as u64;
    size.saturating_sub(start).min(CHUNK_SIZE as u64) as usize
}

/// Number of hash-list pieces of a file of `size` bytes.
pub fn piece_count(size: u64) -> u32 {
    chunk_count(size).div_ceil(HASHES_PER_PIECE as u32)
}

/// SHA-1 of `bytes`.
pub fn sha1(bytes: &[u8]) -> Hash {
    Sha1::digest(bytes).into()
}

/// The digest of a chunk hash list, as signed in a file certificate.
pub fn chunk_list_digest(hashes: &[Hash]) -> Hash {
    let mut hasher = Sha1::new();
    hasher.update(b"PAST-v1 chunk list\0");
    hasher.update((hashes.len() as u32).to_be_bytes());
    for hash in hashes {
        hasher.update(hash);
    }
    hasher.finalize().into()
}

/// A body that can be signed: it names its domain.
pub trait SignedBody: Serialize {
    /// Prefix of the signed bytes, unique to the type.
    const DOMAIN: &'static [u8];

    /// The exact bytes signed: the domain, then the postcard encoding of the body.
    fn signing_bytes(&self) -> Vec<u8> {
        // Encoding plain data into a Vec cannot fail; an empty body would only fail to verify.
        postcard::to_extend(self, Self::DOMAIN.to_vec()).unwrap_or_default()
    }
}

/// A body, its signer and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What is signed.
    pub body: T,
    /// Who signed it.
    pub signer: PublicKey,
    /// Ed25519 signature of [`SignedBody::signing_bytes`].
    pub signature: Signature,
}

impl<T: SignedBody> Signed<T> {
    /// Whether the signature is the signer's signature of the body.
    pub fn verify(&self) -> bool {
        self.verify_shared(None)
    }

    /// [`Signed::verify`], taking the signer's parsed key from the set the nodes of a
    /// process share, if any.
    pub(crate) fn verify_shared(&self, shared: Option<&SharedVerified>) -> bool {
        let bytes = self.body.signing_bytes();
        match shared {
            Some(shared) => shared.verify(&self.signer, &bytes, &self.signature),
            None => verify_parsed(parse_key(&self.signer).as_ref(), &bytes, &self.signature),
        }
    }

    /// SHA-1 of the whole signed statement (body, signer, signature): names this exact
    /// statement, as a reclaim certificate names the file certificate it revokes.
    pub fn digest(&self) -> Hash
    where
        T: Serialize,
    {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        let mut hasher = Sha1::new();
        hasher.update(T::DOMAIN);
        hasher.update(&bytes);
        hasher.finalize().into()
    }
}

/// What the owner certifies about a file (PAST section 2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCertificateBody {
    /// SHA-1(name, owner, salt).
    pub file: FileId,
    /// SHA-1 of the whole content.
    pub content_hash: Hash,
    /// [`chunk_list_digest`] of the SHA-1 of every chunk.
    pub chunk_list: Hash,
    /// Replication factor.
    pub k: u8,
    /// The salt of the fileId.
    pub salt: u64,
    /// Creation date, milliseconds since the Unix epoch (from the owner's clock).
    pub created: u64,
    /// Content size in bytes.
    pub size: u64,
    /// File name.
    pub name: String,
    /// The owner's public key.
    pub owner: PublicKey,
}

impl SignedBody for FileCertificateBody {
    const DOMAIN: &'static [u8] = b"PAST-v1 file certificate\0";
}

/// A file certificate: the owner's signature over [`FileCertificateBody`].
pub type FileCertificate = Signed<FileCertificateBody>;

/// A storing node's statement that it holds a replica (PAST section 2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReceiptBody {
    /// The file.
    pub file: FileId,
    /// [`Signed::digest`] of the file certificate stored.
    pub certificate: Hash,
    /// The node issuing the receipt (one of the k numerically closest to the fileId).
    pub node: Id,
    /// The node holding the content: `node` itself, or the node it diverted the replica to.
    pub holder: Id,
}

impl SignedBody for StoreReceiptBody {
    const DOMAIN: &'static [u8] = b"PAST-v1 store receipt\0";
}

/// A store receipt, signed by the storing node.
pub type StoreReceipt = Signed<StoreReceiptBody>;

/// The owner's order to reclaim the storage of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimCertificateBody {
    /// The file.
    pub file: FileId,
    /// [`Signed::digest`] of the file certificate of the insert being reclaimed, so that the
    /// order cannot reclaim a later insert under the same fileId.
    pub certificate: Hash,
    /// A random number making each reclaim certificate unique.
    pub nonce: u64,
    /// Date of issue, milliseconds since the Unix epoch.
    pub issued: u64,
}

impl SignedBody for ReclaimCertificateBody {
    const DOMAIN: &'static [u8] = b"PAST-v1 reclaim certificate\0";
}

/// A reclaim certificate, signed by the file's owner.
pub type ReclaimCertificate = Signed<ReclaimCertificateBody>;

/// A node's statement that it freed the storage of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimReceiptBody {
    /// The file.
    pub file: FileId,
    /// [`Signed::digest`] of the reclaim certificate obeyed.
    pub reclaim: Hash,
    /// The node that freed the storage.
    pub node: Id,
    /// Bytes freed (the file size).
    pub freed: u64,
}

impl SignedBody for ReclaimReceiptBody {
    const DOMAIN: &'static [u8] = b"PAST-v1 reclaim receipt\0";
}

/// A reclaim receipt, signed by the node that freed the storage.
pub type ReclaimReceipt = Signed<ReclaimReceiptBody>;

/// Why a file certificate is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The certificate is not signed by the owner it names.
    #[error("certificate names owner {owner:?} but is signed by {signer:?}")]
    WrongOwner {
        /// The owner named.
        owner: PublicKey,
        /// The key that signed.
        signer: PublicKey,
    },
    /// The fileId is not SHA-1(name, owner, salt).
    #[error("fileId {claimed} is not derived from the name, owner and salt (expected {derived})")]
    FileIdMismatch {
        /// The fileId in the certificate.
        claimed: FileId,
        /// The fileId derived from its fields.
        derived: FileId,
    },
    /// The replication factor is outside 1..=l/2+1.
    #[error("replication factor k = {k} is out of range: it must be between 1 and {max} (l/2 + 1)")]
    InvalidK {
        /// The k asked for.
        k: u8,
        /// The largest k this node's leaf set supports.
        max: u8,
    },
    /// The file is larger than the node accepts.
    #[error("file of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// File size.
        size: u64,
        /// Limit.
        max: u64,
    },
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("file name of {len} bytes is longer than {MAX_NAME_BYTES}")]
    NameTooLong {
        /// Length of the name.
        len: usize,
    },
    /// The chunk list of a single-chunk file is not its content hash.
    #[error("the chunk list digest does not match the content hash of a single-chunk file")]
    BadChunkList,
    /// The signature does not verify.
    #[error("the owner's signature does not verify")]
    BadSignature,
}

/// Checks a file certificate: owner, fileId derivation, k, size, name, chunk list, signature
/// (the expensive check last).
pub fn check_certificate(cert: &FileCertificate, max_k: u8, max_size: u64) -> Result<(), CertificateError> {
    check_certificate_fields(cert, max_k, max_size)?;
    if !cert.verify() {
        return Err(CertificateError::BadSignature);
    }
    Ok(())
}

/// [`check_certificate`] without the signature.
pub fn check_certificate_fields(cert: &FileCertificate, max_k: u8, max_size: u64) -> Result<(), CertificateError> {
    let body = &cert.body;
    if cert.signer != body.owner {
        return Err(CertificateError::WrongOwner { owner: body.owner, signer: cert.signer });
    }
    if body.name.len() > MAX_NAME_BYTES {
        return Err(CertificateError::NameTooLong { len: body.name.len() });
    }
    let derived = FileId::derive(&body.name, &body.owner, body.salt);
    if derived != body.file {
        return Err(CertificateError::FileIdMismatch { claimed: body.file, derived });
    }
    if body.k == 0 || body.k > max_k {
        return Err(CertificateError::InvalidK { k: body.k, max: max_k });
    }
    let max = max_size.min(MAX_FILE_SIZE);
    if body.size > max {
        return Err(CertificateError::TooLarge { size: body.size, max });
    }
    if chunk_count(body.size) == 1 && body.chunk_list != chunk_list_digest(&[body.content_hash]) {
        return Err(CertificateError::BadChunkList);
    }
    Ok(())
}

/// Checks a signed statement that a node claims: signed by the key of that node.
pub fn check_node_signed<T: SignedBody>(statement: &Signed<T>, node: Id) -> bool {
    statement.signer.node_id() == node && statement.verify()
}

/// Whether every statement's signature is its signer's signature of its body, checked
/// together (see [`verify_all`]): `false` if any is bad. With a shared set, the signatures it
/// holds are not checked again ([`SharedVerified::verify_many`]).
pub(crate) fn verify_signed_all<T: SignedBody>(statements: &[&Signed<T>], shared: Option<&SharedVerified>) -> bool {
    let bytes = statements.iter().map(|s| s.body.signing_bytes());
    let Some(shared) = shared else {
        let bytes: Vec<Vec<u8>> = bytes.collect();
        let keys: Vec<_> = statements.iter().map(|s| parse_key(&s.signer)).collect();
        let checks: Vec<_> =
            statements.iter().zip(&bytes).zip(&keys).map(|((s, b), k)| (k.as_ref(), &b[..], &s.signature)).collect();
        return verify_all(&checks);
    };
    let checks: Vec<_> = statements.iter().zip(bytes).map(|(s, b)| (s.signer, b, s.signature)).collect();
    shared.verify_many(&checks)
}

/// Incremental hashing of content being read or received in order: the chunk hashes and the
/// content hash.
#[derive(Clone, Debug, Default)]
pub struct ContentHasher {
    whole: Sha1,
    chunks: Vec<Hash>,
    size: u64,
}

impl ContentHasher {
    /// A hasher for new content.
    pub fn new() -> Self {
        ContentHasher::default()
    }

    /// Adds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.whole.update(chunk);
        self.chunks.push(sha1(chunk));
        self.size += chunk.len() as u64;
    }

    /// The content hash, the chunk hashes, and the size.
    pub fn finish(self) -> (Hash, Vec<Hash>, u64) {
        let mut chunks = self.chunks;
        if chunks.is_empty() {
            chunks.push(sha1(&[]));
        }
        (self.whole.finalize().into(), chunks, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::past::crypto::Ed25519Signer;
    use proptest::prelude::*;

    pub(crate) fn certificate(key: &Ed25519Signer, name: &str, content: &[u8], k: u8) -> (FileCertificate, Vec<Hash>) {
        let mut hasher = ContentHasher::new();
        for chunk in content.chunks(CHUNK_SIZE) {
            hasher.update(chunk);
        }
        let (content_hash, hashes, size) = hasher.finish();
        let owner = key.public_key();
        let body = FileCertificateBody {
            file: FileId::derive(name, &owner, 9),
            content_hash,
            chunk_list: chunk_list_digest(&hashes),
            k,
            salt: 9,
            created: 1,
            size,
            name: name.into(),
            owner,
        };
        let signature = key.sign_message(&body.signing_bytes());
        (Signed { body, signer: owner, signature }, hashes)
    }

    #[test]
    fn certificate_checks_each_field() {
        let key = Ed25519Signer::from_seed([5; 32]);
        let (cert, _) = certificate(&key, "f", b"content", 3);
        assert_eq!(check_certificate(&cert, 5, 1 << 20), Ok(()));
        assert!(matches!(check_certificate(&cert, 2, 1 << 20), Err(CertificateError::InvalidK { k: 3, max: 2 })));
        assert!(matches!(check_certificate(&cert, 5, 3), Err(CertificateError::TooLarge { .. })));
        let mut forged = cert.clone();
        forged.body.created += 1;
        assert_eq!(check_certificate(&forged, 5, 1 << 20), Err(CertificateError::BadSignature));
        let mut moved = cert.clone();
        moved.body.salt += 1;
        assert!(matches!(check_certificate(&moved, 5, 1 << 20), Err(CertificateError::FileIdMismatch { .. })));
        let other = Ed25519Signer::from_seed([6; 32]);
        let mut wrong = cert.clone();
        wrong.signer = other.public_key();
        wrong.signature = other.sign_message(&wrong.body.signing_bytes());
        assert!(matches!(check_certificate(&wrong, 5, 1 << 20), Err(CertificateError::WrongOwner { .. })));
    }

    #[test]
    fn signatures_held_by_a_shared_set_are_taken_and_bad_ones_still_fail() {
        let receipts: Vec<StoreReceipt> = (1..=4u8)
            .map(|i| {
                let key = Ed25519Signer::from_seed([i; 32]);
                let body = StoreReceiptBody {
                    file: FileId([i; 20]),
                    certificate: [2; 20],
                    node: key.node_id(),
                    holder: key.node_id(),
                };
                let signature = key.sign_message(&body.signing_bytes());
                Signed { body, signer: key.public_key(), signature }
            })
            .collect();
        let all: Vec<&StoreReceipt> = receipts.iter().collect();
        let shared = SharedVerified::new();
        assert!(verify_signed_all(&all, Some(&shared)), "none held: one batch");
        assert!(receipts[..2].iter().all(|r| r.verify_shared(Some(&shared))), "now two are held");
        assert!(shared.holds_signature(&receipts[0].signer, &receipts[0].body.signing_bytes(), &receipts[0].signature));
        assert!(verify_signed_all(&all, Some(&shared)), "two held, two in a batch");
        let mut bad = receipts.clone();
        bad[3].signature.0[40] ^= 1;
        let bad_all: Vec<&StoreReceipt> = bad.iter().collect();
        assert!(!verify_signed_all(&bad_all, Some(&shared)), "a bad signature fails beside held ones");
        assert!(!verify_signed_all(&bad_all[2..], Some(&shared)), "and in a batch of its own");
        assert!(!verify_signed_all(&bad_all[3..], Some(&shared)), "and alone");
        assert!(!verify_signed_all(&bad_all, None));
        bad[3] = receipts[3].clone();
        bad[0].body.holder = Id::ZERO;
        let changed: Vec<&StoreReceipt> = bad.iter().collect();
        assert!(!verify_signed_all(&changed, Some(&shared)), "a held signature names its exact bytes");
    }

    #[test]
    fn domains_separate_types() {
        let receipt =
            StoreReceiptBody { file: FileId([1; 20]), certificate: [2; 20], node: Id::ZERO, holder: Id::ZERO };
        let reclaim = ReclaimReceiptBody { file: FileId([1; 20]), reclaim: [2; 20], node: Id::ZERO, freed: 0 };
        assert_ne!(receipt.signing_bytes()[..10], reclaim.signing_bytes()[..10]);
    }

    #[test]
    fn chunk_arithmetic() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_len(0, 0), 0);
        assert_eq!(chunk_count(CHUNK_SIZE as u64), 1);
        assert_eq!(chunk_count(CHUNK_SIZE as u64 + 1), 2);
        assert_eq!(chunk_len(CHUNK_SIZE as u64 + 1, 1), 1);
        assert_eq!(piece_count(MAX_FILE_SIZE), 22);
    }

    proptest! {
        #[test]
        fn chunks_reassemble_and_verify(content in prop::collection::vec(any::<u8>(), 0..(3 * CHUNK_SIZE + 10)), flip in any::<prop::sample::Index>()) {
            let key = Ed25519Signer::from_seed([8; 32]);
            let (cert, hashes) = certificate(&key, "p", &content, 1);
            let size = content.len() as u64;
            prop_assert_eq!(hashes.len() as u32, chunk_count(size));
            prop_assert_eq!(chunk_list_digest(&hashes), cert.body.chunk_list);
            let mut total = 0;
            for i in 0..chunk_count(size) {
                let start = i as usize * CHUNK_SIZE;
                let chunk = &content[start..start + chunk_len(size, i)];
                prop_assert_eq!(sha1(chunk), hashes[i as usize]);
                total += chunk.len();
            }
            prop_assert_eq!(total, content.len());
            if !content.is_empty() {
                let mut bad = content.clone();
                let i = flip.index(bad.len());
                bad[i] ^= 1;
                let chunk = i / CHUNK_SIZE;
                let start = chunk * CHUNK_SIZE;
                let end = start + chunk_len(size, chunk as u32);
                prop_assert_ne!(sha1(&bad[start..end]), hashes[chunk]);
            }
        }
    }
}
