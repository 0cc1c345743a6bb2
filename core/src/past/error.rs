//! Errors of the PAST operations: one enum per operation, each with its context.

use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::past::certificate::CertificateError;
use crate::past::crypto::SignError;
use crate::past::file_id::FileId;
use crate::past::store::StorageError;

/// Why a node refused or abandoned a request: travels in messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The file certificate is not acceptable.
    #[error("invalid file certificate: {0}")]
    Certificate(CertificateError),
    /// A file with this fileId is already stored.
    #[error("a file with this fileId is already stored")]
    Duplicate,
    /// Storing the file would exceed what the node stores for one owner.
    #[error("the owner's limit of {limit} bytes on this node would be exceeded")]
    OwnerLimit {
        /// The per-owner limit.
        limit: u64,
    },
    /// Not enough free space, and no diversion possible.
    #[error("not enough free space")]
    NoSpace,
    /// Fewer live nodes than the k replicas asked for.
    #[error("only {available} nodes for k replicas")]
    TooFewNodes {
        /// Nodes available.
        available: u8,
    },
    /// Content does not match the certificate.
    #[error("chunk {chunk} does not match the certificate")]
    ContentMismatch {
        /// The first bad chunk.
        chunk: u32,
    },
    /// The chunk hash list does not match the certificate.
    #[error("the chunk hash list does not match the certificate")]
    BadHashList,
    /// A transfer made no progress for too long.
    #[error("transfer stalled")]
    Stalled,
    /// A node could not be reached.
    #[error("node {node} could not be reached")]
    Unreachable {
        /// The node.
        node: Id,
    },
    /// The node's storage failed.
    #[error("storage failed")]
    Storage,
    /// The node does not hold the file (or the insert it refers to).
    #[error("not found")]
    NotFound,
    /// The reclaim certificate is not signed by the file's owner.
    #[error("not signed by the file's owner")]
    NotOwner,
    /// The reclaim certificate's signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The reclaim certificate was already used, or names an earlier insert of the file.
    #[error("reclaim certificate replayed")]
    Replayed,
    /// The insert was aborted.
    #[error("aborted")]
    Aborted,
    /// This node holds only a pointer: the content is at `holder` (replica diversion).
    #[error("the content is at node {holder}")]
    Redirect {
        /// The node holding the diverted replica.
        holder: Id,
    },
    /// The node's storage refused a write for want of room (a browser's
    /// `QuotaExceededError`, a full disk), though its accounting had room.
    #[error("its storage is full")]
    StorageFull,
}

/// Why an insert failed. When it fails, no replica stays stored: nodes holding a replica of
/// an insert that was not committed drop it, and a client that got some receipts but not all
/// reclaims the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InsertError {
    /// k is outside 1..=l/2+1.
    #[error("replication factor k = {k} is out of range: it must be between 1 and {max} (l/2 + 1)")]
    InvalidK {
        /// The k asked for.
        k: u8,
        /// The largest supported.
        max: u8,
    },
    /// The file is larger than allowed.
    #[error("file of {size} bytes is larger than the limit of {max} bytes")]
    FileTooLarge {
        /// File size.
        size: u64,
        /// Limit.
        max: u64,
    },
    /// The name is too long.
    #[error("file name of {len} bytes is too long")]
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// The owner's quota does not cover k x size.
    #[error("quota exceeded: the insert needs {needed} bytes (k x size), {available} are available")]
    QuotaExceeded {
        /// k x size.
        needed: u64,
        /// Quota left.
        available: u64,
    },
    /// A node rejected the file certificate.
    #[error("node {node} rejected the certificate: {error}")]
    Certificate {
        /// The node.
        node: Id,
        /// Why.
        error: CertificateError,
    },
    /// The fileId is already stored.
    #[error("file {file} is already stored (reported by node {node})")]
    Duplicate {
        /// The file.
        file: FileId,
        /// The node that holds it.
        node: Id,
    },
    /// A storing node's per-owner limit would be exceeded.
    #[error("node {node} refuses: the owner's limit of {limit} bytes would be exceeded")]
    OwnerLimit {
        /// The node.
        node: Id,
        /// Its per-owner limit.
        limit: u64,
    },
    /// The content does not match the certificate.
    #[error("node {node} found chunk {chunk} not matching the certificate")]
    ContentMismatch {
        /// The node.
        node: Id,
        /// The chunk.
        chunk: u32,
    },
    /// Not enough storage, after replica diversion and every file diversion retry.
    #[error("insufficient storage after {attempts} attempts (fileIds tried: {files:?})")]
    InsufficientStorage {
        /// Attempts made (1 + file diversions).
        attempts: u8,
        /// The fileIds tried, one per salt.
        files: Vec<FileId>,
    },
    /// A node failed or could not be reached during the insert.
    #[error("node {node} failed during the insert")]
    NodeFailed {
        /// The node.
        node: Id,
    },
    /// A node refused or abandoned the insert for another reason.
    #[error("node {node} refused the insert: {reason}")]
    Refused {
        /// The node.
        node: Id,
        /// Why.
        reason: Refusal,
    },
    /// Not all k receipts arrived in time (the partial insert is reclaimed).
    #[error("insert of {file} timed out with {receipts} of {k} receipts")]
    Timeout {
        /// The file.
        file: FileId,
        /// Receipts received.
        receipts: u8,
        /// Receipts needed.
        k: u8,
    },
    /// The driver could not sign the certificate.
    #[error("signing failed: {0}")]
    Signing(SignError),
    /// The driver could not read the content.
    #[error("reading the content failed: {0}")]
    Storage(StorageError),
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No node on the route or among those closest to the fileId holds the file.
    #[error("file {file} not found")]
    NotFound {
        /// The file.
        file: FileId,
    },
    /// Every holder tried served bad data, a bad certificate, or failed.
    #[error("file {file}: every holder tried failed ({tried:?})")]
    AllHoldersFailed {
        /// The file.
        file: FileId,
        /// The holders tried.
        tried: Vec<Id>,
    },
    /// No answer in time, after `route_attempts` routes.
    #[error("lookup of {file} timed out")]
    Timeout {
        /// The file.
        file: FileId,
    },
}

/// Why a reclaim failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReclaimError {
    /// The reclaim certificate is not signed by the file's owner.
    #[error("node {node} refuses: the reclaim is not signed by the file's owner")]
    NotOwner {
        /// The node.
        node: Id,
    },
    /// The reclaim certificate was used before (or is for an earlier insert of the fileId).
    #[error("node {node} refuses: the reclaim certificate was replayed")]
    Replayed {
        /// The node.
        node: Id,
    },
    /// The signature does not verify.
    #[error("node {node} refuses: bad signature")]
    BadSignature {
        /// The node.
        node: Id,
    },
    /// No node holds the file.
    #[error("file {file} not found")]
    NotFound {
        /// The file.
        file: FileId,
    },
    /// The file's certificate could not be found to name it in the reclaim certificate.
    #[error("could not fetch the certificate: {0}")]
    Lookup(LookupError),
    /// No answer in time.
    #[error("reclaim of {file} timed out")]
    Timeout {
        /// The file.
        file: FileId,
    },
    /// The driver could not sign.
    #[error("signing failed: {0}")]
    Signing(SignError),
}
