//! The native node's durable replica store: the core's [`Storage`] on disk, in one `redb`
//! database.
//!
//! # What it is
//!
//! [`DiskStore`] answers the core's storage operations ([`StorageOp`]) with the same answers
//! as the reference [`MemoryStore`](past_core::past::MemoryStore) (a property test holds it
//! to that), but keeps files across restarts and crashes. It is one `redb` database file,
//! [`DATABASE_FILE`], in a directory the caller names:
//!
//! - table `records`: fileId (20 bytes) -> the number of chunk slots the file has (4 bytes,
//!   big-endian) followed by the postcard bytes of its [`FileRecord`];
//! - table `chunks`: fileId (20 bytes) + chunk index (4 bytes, big-endian) -> the chunk.
//!
//! A file's chunks are thus adjacent and in order, and one range removes them all.
//! Content the user inserts stays in its own file: [`DiskStore::add_upload`] names it, and a
//! read of [`Object::Upload`] reads that one chunk's byte range from the file, never the
//! whole file.
//!
//! # Durability
//!
//! `redb` commits are atomic and checksummed, and after a crash the database opens at a
//! consistent commit: the last durable one, or a later non-durable one whose pages all check;
//! never a torn state. Every [`DiskStore::perform`]
//! is one write transaction, committed before it returns:
//!
//! - `Create`, `PutRecord` and `Delete` commit with [`Durability::Immediate`] (fsync): a record
//!   change, above all the one that commits a replica, is on disk when it is answered, as the
//!   core's storage contract asks.
//! - `Write` (a chunk) commits with [`Durability::None`]: it is visible at once but reaches the
//!   disk with the next immediate commit. The core writes chunks only into a file it created
//!   uncommitted and commits it afterwards with a `PutRecord`, whose immediate commit makes
//!   every earlier chunk durable too (`redb` persists non-durable commits in order with the
//!   next durable one). A crash in between loses chunks of an uncommitted file only, which
//!   [`DiskStore::restore`] deletes anyway. A driver that wrote chunks into an already
//!   committed file would have them durable only at the next record change.
//!
//! Measured (release build, the development container's virtual disk,
//! `cargo test -p past-node --release --test disk_store -- --ignored --nocapture throughput`):
//! a 64 MiB file in 64 KiB chunk writes and one commit at 280-320 MB/s, against 67 MB/s with
//! an immediate commit per chunk; 64 one-chunk files, each created, written and committed,
//! at about 60 MB/s. A disk with slower fsync widens the gap.
//!
//! # Integrity
//!
//! The database is opened with `redb`'s integrity check: every page's checksum is verified at
//! open, so a damaged file (a torn write the crash recovery cannot roll back, bytes altered on
//! disk) is refused with [`DiskStoreError::Corrupted`] rather than half-read (`redb` may
//! panic on a damaged file it did not check). The price is one read of the whole file at
//! start: 0.1 s for a 68 MiB store in the measurement above (so about 1.5 s per GiB). Data this module decodes itself (record bytes, slot counts) is never trusted
//! either: what does not decode is an error or is dropped, never a panic.
//!
//! # What it is not
//!
//! It keeps no accounts: capacity, quotas and cache eviction are the core's. It reports a
//! full disk as [`StorageError::Full`] and leaves the decision to the core. After an I/O error
//! (a full disk) `redb` refuses every operation until the database is opened again; the store
//! closes it and the next operation opens it again (with the integrity check), so once the
//! core has freed space the store carries on. It serves one process: a second open of the
//! same directory fails with [`DiskStoreError::InUse`]. It does not batch: each operation is
//! its own transaction, the core's operations arriving one at a time.
//!
//! Tests (`node-native/tests/disk_store.rs`): a property test holding it to `MemoryStore` on
//! random operation sequences, restarts, a process aborted mid-insert, damaged files, upload
//! reads, a second open, and (as root, ignored by default) a full 2 MiB tmpfs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use past_core::past::{
    CHUNK_SIZE, FileId, FileRecord, Object, Storage, StorageError, StorageOp, StorageReply, UploadId, chunk_count,
    chunk_len,
};
use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};

/// The database file's name in the store directory.
pub const DATABASE_FILE: &str = "store.redb";

/// Memory `redb` may use to cache pages (its default is 1 GiB).
const CACHE_BYTES: usize = 64 << 20;

/// fileId -> slot count (u32 big-endian) + postcard [`FileRecord`].
const RECORDS: TableDefinition<&[u8; 20], &[u8]> = TableDefinition::new("records");

/// fileId + chunk index (big-endian) -> chunk bytes.
const CHUNKS: TableDefinition<&[u8; 24], &[u8]> = TableDefinition::new("chunks");

/// Why the store could not be opened or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskStoreError {
    /// The store directory cannot be created, read or written.
    #[error("cannot use the store directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Another process (or another open in this one) holds the database.
    #[error("the store {path} is in use by another process; stop it or choose another store directory")]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The database file is damaged or is not a store.
    #[error("the store {path} is corrupted ({detail}); move it away to start with an empty store")]
    Corrupted {
        /// The database file.
        path: PathBuf,
        /// What `redb` found.
        detail: String,
    },
    /// The disk holding the store is full.
    #[error("the disk holding the store {path} is full")]
    Full {
        /// The database file.
        path: PathBuf,
    },
    /// Another database failure.
    #[error("the store {path} failed: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The `redb` error.
        #[source]
        source: Box<redb::Error>,
    },
}

/// The node's replicas, certificates and cached copies in one `redb` database; see the
/// [module documentation](self).
pub struct DiskStore {
    /// `None` after an I/O error: `redb` then refuses every operation until the database is
    /// opened again, which the next operation does.
    db: Option<Db>,
    path: PathBuf,
    uploads: BTreeMap<UploadId, PathBuf>,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore").field("path", &self.path).field("uploads", &self.uploads).finish()
    }
}

impl DiskStore {
    /// Opens the store in `dir` (creating the directory and the database the first time),
    /// checking the database's integrity.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, DiskStoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| DiskStoreError::Directory { path: dir.to_path_buf(), source })?;
        let path = dir.join(DATABASE_FILE);
        let db = Db::open(&path)?;
        Ok(DiskStore { db: Some(db), path, uploads: BTreeMap::new() })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names the file an insert reads its content from: reads of [`Object::Upload`]`(upload)`
    /// read from `file`, one chunk at a time (its length is taken at each read).
    pub fn add_upload(&mut self, upload: UploadId, file: PathBuf) {
        self.uploads.insert(upload, file);
    }

    /// Forgets an upload's file.
    pub fn remove_upload(&mut self, upload: UploadId) {
        self.uploads.remove(&upload);
    }

    /// The committed records, to hand to [`Past::restore`](past_core::past::Past::restore).
    /// Uncommitted records (an insert or transfer a stop or crash cut short) and records that
    /// do not decode are deleted with their chunks, durably.
    pub fn restore(&mut self) -> Result<Vec<FileRecord>, DiskStoreError> {
        let restored = self.database()?.restore();
        restored.map_err(|e| self.failed(e, open_error))
    }

    /// The open database, opened again after an I/O error.
    fn database(&mut self) -> Result<&Db, DiskStoreError> {
        if self.db.is_none() {
            tracing::info!(path = %self.path.display(), "opening the store again after an I/O error");
            self.db = Some(Db::open(&self.path)?);
        }
        self.db.as_ref().ok_or_else(|| DiskStoreError::Database {
            path: self.path.clone(),
            source: Box::new(redb::Error::DatabaseClosed),
        })
    }

    /// Closes the database after an error `redb` does not recover from by itself (an I/O
    /// error), and describes `e` with `describe`.
    fn failed<E>(&mut self, e: redb::Error, describe: impl FnOnce(&Path, redb::Error) -> E) -> E {
        if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed) {
            tracing::warn!(path = %self.path.display(), "store I/O error, reopening: {e}");
            self.db = None;
        }
        describe(&self.path, e)
    }

    fn read_upload(&self, upload: UploadId, index: u32) -> Result<StorageReply, StorageError> {
        let path = self.uploads.get(&upload).ok_or(StorageError::NotFound)?;
        read_range(path, index).map(StorageReply::Data).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound,
            _ => StorageError::Failed(format!("reading {}: {e}", path.display())),
        })
    }
}

impl Storage for DiskStore {
    fn perform(&mut self, op: StorageOp) -> Result<StorageReply, StorageError> {
        if let StorageOp::Read { object: Object::Upload(upload), index } = op {
            return self.read_upload(upload, index);
        }
        let db = self.database().map_err(reopen_error)?;
        let answer = match op {
            StorageOp::Create { file, record } => db.create(&file, &record),
            StorageOp::Write { file, index, data } => db.write_chunk(&file, index, &data),
            StorageOp::PutRecord { file, record } => db.put_record(&file, &record),
            StorageOp::Read { object: Object::File(file), index } => db.read_chunk(&file, index),
            StorageOp::Delete { file } => db.delete(&file),
            StorageOp::Read { object: Object::Upload(_), .. } => Ok(Err(StorageError::NotFound)),
        };
        answer.unwrap_or_else(|e| Err(self.failed(e, |_, e| storage_error(e))))
    }
}

/// An operation's answer, or the database failure that kept it from one.
type Answer = Result<Result<StorageReply, StorageError>, redb::Error>;

/// The open database and the operations on it.
struct Db(Database);

impl Db {
    fn open(path: &Path) -> Result<Self, DiskStoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| open_error(path, e.into()))?;
        let db = Db(db);
        db.create_tables().map_err(|e| open_error(path, e))?;
        Ok(db)
    }

    fn create_tables(&self) -> Result<(), redb::Error> {
        let txn = self.0.begin_write()?;
        txn.open_table(RECORDS)?;
        txn.open_table(CHUNKS)?;
        txn.commit()?;
        Ok(())
    }

    fn restore(&self) -> Result<Vec<FileRecord>, redb::Error> {
        let txn = self.0.begin_write()?;
        let kept = {
            let mut records = txn.open_table(RECORDS)?;
            let mut chunks = txn.open_table(CHUNKS)?;
            let (kept, dropped) = sort_records(&records)?;
            for key in &dropped {
                records.remove(key)?;
                remove_chunks(&mut chunks, &FileId(*key))?;
            }
            if !dropped.is_empty() {
                tracing::info!(count = dropped.len(), "deleted uncommitted or unreadable records");
            }
            kept
        };
        txn.commit()?;
        Ok(kept)
    }

    fn create(&self, file: &FileId, record: &FileRecord) -> Answer {
        let slots = if record.role.has_content() { chunk_count(record.size()) } else { 0 };
        let value = match encode_entry(slots, record) {
            Ok(value) => value,
            Err(e) => return Ok(Err(e)),
        };
        self.write(Durability::Immediate, |records, chunks| {
            remove_chunks(chunks, file)?;
            records.insert(&file.0, value.as_slice())?;
            Ok(Ok(StorageReply::Done))
        })
    }

    fn write_chunk(&self, file: &FileId, index: u32, data: &[u8]) -> Answer {
        self.write(Durability::None, |records, chunks| {
            match slots_of(records, file)? {
                Some(slots) if index < slots => {}
                _ => return Ok(Err(StorageError::NotFound)),
            }
            chunks.insert(&chunk_key(file, index), data)?;
            Ok(Ok(StorageReply::Done))
        })
    }

    fn put_record(&self, file: &FileId, record: &FileRecord) -> Answer {
        self.write(Durability::Immediate, |records, chunks| {
            let Some(mut slots) = slots_of(records, file)? else {
                return Ok(Err(StorageError::NotFound));
            };
            if !record.role.has_content() {
                slots = 0;
                remove_chunks(chunks, file)?;
            }
            let value = match encode_entry(slots, record) {
                Ok(value) => value,
                Err(e) => return Ok(Err(e)),
            };
            records.insert(&file.0, value.as_slice())?;
            Ok(Ok(StorageReply::Done))
        })
    }

    fn delete(&self, file: &FileId) -> Answer {
        self.write(Durability::Immediate, |records, chunks| {
            records.remove(&file.0)?;
            remove_chunks(chunks, file)?;
            Ok(Ok(StorageReply::Done))
        })
    }

    fn read_chunk(&self, file: &FileId, index: u32) -> Answer {
        let txn = self.0.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        match slots_of(&records, file)? {
            Some(slots) if index < slots => {}
            _ => return Ok(Err(StorageError::NotFound)),
        }
        let chunks = txn.open_table(CHUNKS)?;
        let chunk = chunks.get(&chunk_key(file, index))?;
        Ok(chunk.map(|c| StorageReply::Data(c.value().to_vec())).ok_or(StorageError::NotFound))
    }

    /// Runs `f` in one write transaction committed with `durability`. `f` answers the
    /// operation (a refusal such as `NotFound` aborts the transaction); its `redb` errors fail
    /// it.
    fn write<F>(&self, durability: Durability, f: F) -> Answer
    where
        F: FnOnce(&mut Table<'_, 20>, &mut Table<'_, 24>) -> Answer,
    {
        let mut txn = self.0.begin_write()?;
        txn.set_durability(durability)?;
        let answer = {
            let mut records = txn.open_table(RECORDS)?;
            let mut chunks = txn.open_table(CHUNKS)?;
            f(&mut records, &mut chunks)?
        };
        match answer {
            Ok(_) => txn.commit()?,
            Err(_) => txn.abort()?,
        }
        Ok(answer)
    }
}

/// The committed records to keep, and the keys of the records to drop (uncommitted, not
/// decoding, or filed under another fileId than their certificate's).
fn sort_records(records: &Table<'_, 20>) -> Result<(Vec<FileRecord>, Vec<[u8; 20]>), redb::Error> {
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for entry in records.iter()? {
        let (key, value) = entry?;
        let key = *key.value();
        match decode_entry(value.value()) {
            Some((_, record)) if record.committed && record.certificate.body.file.0 == key => kept.push(record),
            _ => dropped.push(key),
        }
    }
    Ok((kept, dropped))
}

/// The core's error when the store cannot be opened again.
fn reopen_error(e: DiskStoreError) -> StorageError {
    match e {
        DiskStoreError::Full { .. } => StorageError::Full,
        other => StorageError::Failed(other.to_string()),
    }
}

/// A table of the store, keyed by `N` bytes.
type Table<'t, const N: usize> = redb::Table<'t, &'static [u8; N], &'static [u8]>;

/// The key of chunk `index` of `file`.
fn chunk_key(file: &FileId, index: u32) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..20].copy_from_slice(&file.0);
    key[20..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Removes every chunk of `file`.
fn remove_chunks(chunks: &mut Table<'_, 24>, file: &FileId) -> Result<(), redb::Error> {
    let (first, last) = (chunk_key(file, 0), chunk_key(file, u32::MAX));
    chunks.retain_in::<&[u8; 24], _>(&first..=&last, |_, _| false)?;
    Ok(())
}

/// The slot count of `file`'s record; `None` when there is no record or it does not decode.
fn slots_of(
    records: &impl redb::ReadableTable<&'static [u8; 20], &'static [u8]>,
    file: &FileId,
) -> redb::Result<Option<u32>> {
    let value = records.get(&file.0)?;
    Ok(value.and_then(|v| decode_entry(v.value()).map(|(slots, _)| slots)))
}

fn encode_entry(slots: u32, record: &FileRecord) -> Result<Vec<u8>, StorageError> {
    let record = postcard::to_allocvec(record).map_err(|e| StorageError::Failed(format!("encoding a record: {e}")))?;
    Ok([&slots.to_be_bytes()[..], &record].concat())
}

/// The slot count and record of a `records` value, if it decodes.
fn decode_entry(value: &[u8]) -> Option<(u32, FileRecord)> {
    let (slots, record) = value.split_first_chunk::<4>()?;
    let record = postcard::from_bytes(record).ok()?;
    Some((u32::from_be_bytes(*slots), record))
}

/// Chunk `index` of the file at `path`, as [`MemoryStore`](past_core::past::MemoryStore)
/// cuts an upload: `NotFound` past the end.
fn read_range(path: &Path, index: u32) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let start = u64::from(index) * CHUNK_SIZE as u64;
    if start > size {
        return Err(io::ErrorKind::NotFound.into());
    }
    let mut data = vec![0; chunk_len(size, index)];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut data)?;
    Ok(data)
}

/// Whether `e` says the disk (or the user's quota) is full.
fn is_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// The core's error for a failed operation.
fn storage_error(e: redb::Error) -> StorageError {
    match e {
        redb::Error::Io(io) if is_full(&io) => StorageError::Full,
        other => StorageError::Failed(other.to_string()),
    }
}

/// The store's error for a failure at open or restore.
fn open_error(path: &Path, e: redb::Error) -> DiskStoreError {
    let path = path.to_path_buf();
    match e {
        redb::Error::DatabaseAlreadyOpen => DiskStoreError::InUse { path },
        redb::Error::Corrupted(detail) => DiskStoreError::Corrupted { path, detail },
        // redb's "not a redb database".
        redb::Error::Io(io) if io.kind() == io::ErrorKind::InvalidData => {
            DiskStoreError::Corrupted { path, detail: io.to_string() }
        }
        redb::Error::Io(io) if is_full(&io) => DiskStoreError::Full { path },
        redb::Error::Io(source) if matches!(source.kind(), io::ErrorKind::PermissionDenied) => {
            DiskStoreError::Directory { path, source }
        }
        other => DiskStoreError::Database { path, source: Box::new(other) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_the_cores_full_error() {
        let enospc = io::Error::from_raw_os_error(28);
        assert_eq!(storage_error(redb::Error::Io(enospc)), StorageError::Full);
        let other = io::Error::from_raw_os_error(5);
        assert!(matches!(storage_error(redb::Error::Io(other)), StorageError::Failed(_)));
        let full = open_error(Path::new("x"), redb::Error::Io(io::Error::from_raw_os_error(28)));
        assert!(matches!(full, DiskStoreError::Full { .. }));
    }

    #[test]
    fn entries_that_do_not_decode_are_none() {
        assert_eq!(decode_entry(&[]), None);
        assert_eq!(decode_entry(&[0, 0, 0, 1]), None);
        assert_eq!(decode_entry(&[0, 0, 0, 1, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn chunk_keys_sort_by_file_then_index() {
        let file = FileId([7; 20]);
        assert!(chunk_key(&file, 255) < chunk_key(&file, 256));
        assert!(chunk_key(&file, u32::MAX) < chunk_key(&FileId([8; 20]), 0));
    }
}
