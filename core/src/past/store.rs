//! Storage of replicas and certificates, as requests the driver completes.
//!
//! The browser stores in IndexedDB, whose every call is asynchronous; the native node stores
//! in files. The core therefore never calls storage: it emits a [`StorageRequest`] (create a
//! file with its record, write or read one chunk, update a record, delete), the driver performs
//! it in whatever way suits it, and hands back the [`StorageReply`] with `handle_storage`.
//! Requests name chunks, never whole files: content streams through in pieces of at most
//! [`CHUNK_SIZE`] bytes, so no layer buffers a large file.
//!
//! A driver must apply the operations on one file in the order they were issued (a create
//! before the writes that follow it); reads and operations on different files may complete in
//! any order, and answers may come back in any order. A driver must make a record update
//! durable before it answers it (that is what commits a replica), and may drop objects whose
//! record was never committed when it restarts; at start it hands the committed records back
//! with [`Past::restore`](super::Past::restore).
//!
//! The [`Storage`] trait is the synchronous form, for drivers whose storage answers at once:
//! [`MemoryStore`] (tests, the simulator) and, later, a disk store.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::id::Id;
use crate::past::certificate::{CHUNK_SIZE, FileCertificate, chunk_count, chunk_len};
use crate::past::file_id::{FileId, Hash};

/// Content the user asked to insert, as the driver names it (a `File` handle in the browser,
/// a path natively). The core reads it chunk by chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UploadId(pub u64);

/// What a read names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    /// A stored file (replica or cached copy).
    File(FileId),
    /// Content staged by the user for an insert.
    Upload(UploadId),
}

/// How this node holds a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A replica, as one of the k nodes numerically closest to the fileId.
    Primary,
    /// A replica diverted here by `primary`, one of the k closest, which keeps a pointer.
    Diverted {
        /// The primary node that diverted the replica.
        primary: Id,
    },
    /// No content: the replica is at `holder` (replica diversion); this node is responsible.
    Pointer {
        /// The node holding the diverted replica.
        holder: Id,
    },
    /// A cached copy, evictable at any time.
    Cached,
}

impl Role {
    /// Whether this node holds the content.
    pub fn has_content(self) -> bool {
        !matches!(self, Role::Pointer { .. })
    }
}

/// What a node stores about a file besides its content: enough to serve it and to restore
/// the node's index after a restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The file certificate.
    pub certificate: Arc<FileCertificate>,
    /// The SHA-1 of every chunk (empty for a single-chunk file, whose one hash is the content
    /// hash).
    pub chunk_hashes: Vec<Hash>,
    /// How the node holds the file.
    pub role: Role,
    /// Whether the replica is committed; an uncommitted one belongs to an insert in progress.
    pub committed: bool,
}

impl FileRecord {
    /// The file's size.
    pub fn size(&self) -> u64 {
        self.certificate.body.size
    }
}

/// Identifies one storage request of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageId(pub u64);

/// An operation on the node's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// Creates the object of a file (replacing any object under the fileId) with its record.
    /// Chunk writes follow.
    Create {
        /// The file.
        file: FileId,
        /// Its record.
        record: FileRecord,
    },
    /// Writes chunk `index` of a created file.
    Write {
        /// The file.
        file: FileId,
        /// Chunk index.
        index: u32,
        /// The chunk ([`chunk_len`] bytes).
        data: Vec<u8>,
    },
    /// Replaces the record of a file (commit, change of role), durably.
    PutRecord {
        /// The file.
        file: FileId,
        /// Its new record.
        record: FileRecord,
    },
    /// Reads chunk `index` of an object; answered with [`StorageReply::Data`].
    Read {
        /// The object.
        object: Object,
        /// Chunk index.
        index: u32,
    },
    /// Deletes a file's content and record.
    Delete {
        /// The file.
        file: FileId,
    },
}

/// A storage request, to be answered with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRequest {
    /// Echo this in the answer.
    pub id: StorageId,
    /// What to do.
    pub op: StorageOp,
}

/// The result of a successful storage operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageReply {
    /// Done.
    Done,
    /// The bytes read.
    Data(Vec<u8>),
}

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object or chunk does not exist.
    #[error("no such object or chunk")]
    NotFound,
    /// The device is full.
    #[error("storage is full")]
    Full,
    /// Another failure, described by the driver.
    #[error("storage failed: {0}")]
    Failed(String),
}

/// A store that completes requests at once.
pub trait Storage {
    /// Performs one operation.
    fn perform(&mut self, op: StorageOp) -> Result<StorageReply, StorageError>;
}

/// A store in memory, for tests and the simulator.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    files: BTreeMap<FileId, StoredFile>,
    uploads: BTreeMap<UploadId, Vec<u8>>,
}

#[derive(Clone, Debug)]
struct StoredFile {
    record: FileRecord,
    chunks: Vec<Option<Vec<u8>>>,
}

/// What a store holds of one file, for comparing stores in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSummary {
    /// The record.
    pub record: FileRecord,
    /// Chunks written.
    pub chunks_written: usize,
    /// SHA-1 of the written chunks in order.
    pub content: Hash,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Stages content for an insert.
    pub fn add_upload(&mut self, upload: UploadId, content: Vec<u8>) {
        self.uploads.insert(upload, content);
    }

    /// Removes staged content.
    pub fn remove_upload(&mut self, upload: UploadId) {
        self.uploads.remove(&upload);
    }

    /// The records of the stored files.
    pub fn records(&self) -> impl Iterator<Item = (&FileId, &FileRecord)> {
        self.files.iter().map(|(f, s)| (f, &s.record))
    }

    /// The content of a file, if every chunk was written.
    pub fn content(&self, file: &FileId) -> Option<Vec<u8>> {
        let stored = self.files.get(file)?;
        let mut out = Vec::new();
        for chunk in &stored.chunks {
            out.extend_from_slice(chunk.as_ref()?);
        }
        Some(out)
    }

    /// Everything stored, summarized (records and a hash of the content).
    pub fn summary(&self) -> BTreeMap<FileId, StoredSummary> {
        self.files
            .iter()
            .map(|(f, s)| {
                let mut hasher = sha1::Sha1::default();
                let mut written = 0;
                for chunk in s.chunks.iter().flatten() {
                    sha1::Digest::update(&mut hasher, chunk);
                    written += 1;
                }
                let content = sha1::Digest::finalize(hasher).into();
                (*f, StoredSummary { record: s.record.clone(), chunks_written: written, content })
            })
            .collect()
    }

    /// Flips a bit of a stored chunk (to test that readers detect bad data).
    pub fn corrupt(&mut self, file: &FileId, index: u32) -> bool {
        let Some(chunk) = self.files.get_mut(file).and_then(|s| s.chunks.get_mut(index as usize)) else {
            return false;
        };
        match chunk.as_mut().and_then(|c| c.first_mut()) {
            Some(byte) => {
                *byte ^= 1;
                true
            }
            None => {
                *chunk = Some(vec![1]);
                true
            }
        }
    }

    /// Bytes of content stored.
    pub fn bytes(&self) -> u64 {
        self.files.values().flat_map(|s| s.chunks.iter().flatten()).map(|c| c.len() as u64).sum()
    }
}

impl Storage for MemoryStore {
    fn perform(&mut self, op: StorageOp) -> Result<StorageReply, StorageError> {
        match op {
            StorageOp::Create { file, record } => {
                let chunks = if record.role.has_content() { chunk_count(record.size()) as usize } else { 0 };
                self.files.insert(file, StoredFile { record, chunks: vec![None; chunks] });
                Ok(StorageReply::Done)
            }
            StorageOp::Write { file, index, data } => {
                let stored = self.files.get_mut(&file).ok_or(StorageError::NotFound)?;
                let slot = stored.chunks.get_mut(index as usize).ok_or(StorageError::NotFound)?;
                *slot = Some(data);
                Ok(StorageReply::Done)
            }
            StorageOp::PutRecord { file, record } => {
                let stored = self.files.get_mut(&file).ok_or(StorageError::NotFound)?;
                if !record.role.has_content() {
                    stored.chunks.clear();
                }
                stored.record = record;
                Ok(StorageReply::Done)
            }
            StorageOp::Read { object: Object::File(file), index } => {
                let stored = self.files.get(&file).ok_or(StorageError::NotFound)?;
                let chunk = stored.chunks.get(index as usize).and_then(|c| c.clone()).ok_or(StorageError::NotFound)?;
                Ok(StorageReply::Data(chunk))
            }
            StorageOp::Read { object: Object::Upload(upload), index } => {
                let content = self.uploads.get(&upload).ok_or(StorageError::NotFound)?;
                let start = index as usize * CHUNK_SIZE;
                let len = chunk_len(content.len() as u64, index);
                if start > content.len() {
                    return Err(StorageError::NotFound);
                }
                Ok(StorageReply::Data(content[start..start + len].to_vec()))
            }
            StorageOp::Delete { file } => {
                self.files.remove(&file);
                Ok(StorageReply::Done)
            }
        }
    }
}
