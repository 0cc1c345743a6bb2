//! Files through a running node: [`NodeHandle::insert`], [`NodeHandle::get`],
//! [`NodeHandle::reclaim`] and [`NodeHandle::status`], their outcomes, progress and errors.
//!
//! The content, its encryption and the share links are the browser's (`past_link::seal`,
//! `past_link::share`): a link the native node prints opens in a tab and the other way round.
//! An insert reads its file one chunk at a time from disk (sealing each chunk when it is
//! encrypted); a get writes each verified (and opened) chunk to a temporary file next to its
//! destination as it arrives, fsyncs it and renames it when the last chunk is in: the file is
//! never held in memory, and a failed get leaves no partial file.

use std::path::{Path, PathBuf};

use past_core::past::{FileId, LookupError};
use past_link::seal::{FileKey, Meta, SealError};
use past_link::share::{LinkError, MetaError, ShareLink};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, oneshot};

use crate::NodeHandle;
use crate::node::{Command, Input};

/// How to insert a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsertOptions {
    /// Replicas to keep (1..=l/2+1).
    pub k: u8,
    /// Encrypt the content and name (AES-256-GCM, the key goes in the link); `false`: a
    /// public file anyone can read by its fileId.
    pub encrypt: bool,
}

impl Default for InsertOptions {
    fn default() -> Self {
        InsertOptions { k: 3, encrypt: true }
    }
}

/// What a transfer is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// An insert reads (and seals) its file to sign its certificate.
    Hashing,
    /// The k storing nodes pull the file.
    Storing,
    /// A get receives verified chunks.
    Receiving,
}

/// Progress of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// What it is doing.
    pub stage: Stage,
    /// Bytes done in this stage.
    pub bytes: u64,
    /// Bytes this stage takes.
    pub total: u64,
}

/// An inserted file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inserted {
    /// Its fileId (40 hex digits).
    pub file_id: String,
    /// The share link (the page's address, `#fileId` or `#fileId.key`).
    pub link: String,
    /// Its name.
    pub name: String,
    /// Its size before encryption.
    pub size: u64,
    /// Replicas.
    pub k: u8,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// The nodeIds (32 hex digits) that returned a verified store receipt.
    pub receipts: Vec<String>,
}

/// A file fetched by [`NodeHandle::get`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    /// Its fileId.
    pub file_id: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Its name (from the certificate, opened with the link's key).
    pub name: String,
    /// Bytes written.
    pub size: u64,
    /// Whether it was encrypted.
    pub encrypted: bool,
    /// The node that served it.
    pub holder: String,
}

/// A reclaimed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimOutcome {
    /// Its fileId.
    pub file_id: String,
    /// The nodeIds that returned a verified reclaim receipt.
    pub receipts: Vec<String>,
}

/// What the node is and holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Its nodeId (32 hex digits).
    pub node_id: String,
    /// Whether it has joined the overlay.
    pub joined: bool,
    /// The leaf set's nodeIds.
    pub leaf_set: Vec<String>,
    /// Routing table entries filled.
    pub table_entries: usize,
    /// Routing table slots (rows x columns).
    pub table_slots: usize,
    /// Open, authenticated connections.
    pub connections: usize,
    /// Peer connections made since the start.
    pub connections_made: u64,
    /// The fileIds of the replicas (and diverted replicas) this node holds for others.
    pub replicas: Vec<String>,
    /// Cached copies.
    pub cached: usize,
    /// Bytes of replicas.
    pub bytes_stored: u64,
    /// Bytes of cached copies.
    pub bytes_cached: u64,
    /// Bytes offered.
    pub capacity: u64,
}

/// What kind of failure an error is, for scripts (the CLI's exit codes and `--json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input: an unreadable file, a malformed link, a setting out of range.
    BadInput,
    /// No node holds the file.
    NotFound,
    /// The network could not do it now (too few nodes, holders unreachable, timeouts).
    Unavailable,
    /// Not enough storage on the storing nodes, or the owner's quota.
    StorageFull,
    /// Refused: not the owner, a wrong or missing key.
    Refused,
    /// A local file could not be read or written.
    Io,
    /// The node stopped or is overloaded.
    Closed,
}

/// Why [`NodeHandle::insert`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InsertError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// PAST refused or failed the insert; nothing stays stored.
    #[error(transparent)]
    Past(#[from] past_core::past::InsertError),
    /// The node stopped, or too many requests wait for it.
    #[error("the node is closed or overloaded")]
    Closed,
}

impl InsertError {
    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        use past_core::past::{InsertError as E, Refusal};
        match self {
            InsertError::Read { .. } => ErrorKind::Io,
            InsertError::Closed => ErrorKind::Closed,
            InsertError::Past(e) => match e {
                E::InvalidK { .. } | E::FileTooLarge { .. } | E::NameTooLong { .. } => ErrorKind::BadInput,
                E::QuotaExceeded { .. }
                | E::OwnerLimit { .. }
                | E::InsufficientStorage { .. }
                | E::Refused { reason: Refusal::StorageFull | Refusal::NoSpace, .. } => ErrorKind::StorageFull,
                E::Storage(_) => ErrorKind::Io,
                _ => ErrorKind::Unavailable,
            },
        }
    }
}

/// Why [`NodeHandle::get`] failed. A failed get leaves no file behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Neither a share link nor a fileId.
    #[error("not a share link or fileId: {0}")]
    BadLink(#[from] LinkError),
    /// No node holds the file (never inserted, or reclaimed).
    #[error("no node holds file {file} (never inserted, or reclaimed)")]
    NotFound {
        /// The file.
        file: FileId,
    },
    /// The holders failed or could not be reached.
    #[error(transparent)]
    Unavailable(LookupError),
    /// The link's key does not fit the file (missing, wrong, or the file is public).
    #[error(transparent)]
    Key(#[from] MetaError),
    /// A chunk did not open with the link's key.
    #[error("chunk {index}: {source}")]
    Chunk {
        /// The chunk.
        index: u32,
        /// Why.
        #[source]
        source: SealError,
    },
    /// The output cannot be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node stopped, or too many requests wait for it.
    #[error("the node is closed or overloaded")]
    Closed,
}

impl GetError {
    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GetError::BadLink(_) => ErrorKind::BadInput,
            GetError::NotFound { .. } => ErrorKind::NotFound,
            GetError::Unavailable(_) => ErrorKind::Unavailable,
            GetError::Key(_) | GetError::Chunk { .. } => ErrorKind::Refused,
            GetError::Output { .. } => ErrorKind::Io,
            GetError::Closed => ErrorKind::Closed,
        }
    }
}

/// Why [`NodeHandle::reclaim`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReclaimError {
    /// Not a fileId.
    #[error("not a fileId (40 hex digits): {0}")]
    BadFileId(String),
    /// PAST refused or failed it.
    #[error(transparent)]
    Past(#[from] past_core::past::ReclaimError),
    /// The node stopped, or too many requests wait for it.
    #[error("the node is closed or overloaded")]
    Closed,
}

impl ReclaimError {
    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        use past_core::past::ReclaimError as E;
        match self {
            ReclaimError::BadFileId(_) => ErrorKind::BadInput,
            ReclaimError::Past(E::NotFound { .. }) => ErrorKind::NotFound,
            ReclaimError::Past(E::NotOwner { .. } | E::Replayed { .. } | E::BadSignature { .. }) => ErrorKind::Refused,
            ReclaimError::Past(_) => ErrorKind::Unavailable,
            ReclaimError::Closed => ErrorKind::Closed,
        }
    }
}

/// What the loop tells a get.
#[derive(Debug)]
pub(crate) enum LookupMsg {
    /// The certificate verified; chunks follow.
    Found { op: past_core::past::OpId, name: String, size: u64, holder: past_core::Id },
    /// The next verified chunk, in order.
    Chunk { index: u32, data: Vec<u8> },
    /// The lookup ended.
    Done(Result<(), LookupError>),
}

/// A file staged for an insert.
#[derive(Debug)]
pub(crate) struct InsertCommand {
    pub(crate) path: PathBuf,
    pub(crate) meta: Meta,
    pub(crate) key: Option<FileKey>,
    pub(crate) k: u8,
    pub(crate) progress: mpsc::UnboundedSender<Progress>,
    pub(crate) reply: oneshot::Sender<Result<Inserted, InsertError>>,
}

impl NodeHandle {
    fn command(&self, command: Command) -> bool {
        self.inputs.try_send(Input::Command(command)).is_ok()
    }

    /// Inserts the file at `path` (waiting for the overlay if the node has not joined yet);
    /// `progress` receives the transfer's progress.
    pub async fn insert(
        &self,
        path: &Path,
        options: InsertOptions,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> Result<Inserted, InsertError> {
        let read_error = |source| InsertError::Read { path: path.to_path_buf(), source };
        let metadata = tokio::fs::metadata(path).await.map_err(read_error)?;
        if !metadata.is_file() {
            return Err(read_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")));
        }
        let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let meta = Meta { name, mime: String::new(), size: metadata.len() };
        let key = options.encrypt.then(|| FileKey(rand::random::<[u8; 32]>()));
        let (reply, replied) = oneshot::channel();
        let command = InsertCommand { path: path.to_path_buf(), meta, key, k: options.k, progress, reply };
        if !self.command(Command::Insert(Box::new(command))) {
            return Err(InsertError::Closed);
        }
        replied.await.map_err(|_| InsertError::Closed)?
    }

    /// Fetches the file a share link or fileId names into `output`: a file path, or a
    /// directory (the file's own name is used; the current directory when `None`). Chunks
    /// are verified against the owner's certificate, opened with the link's key, and
    /// written to a temporary file in the destination's directory as they arrive; the
    /// temporary file is fsynced and renamed once complete, removed on failure.
    pub async fn get(
        &self,
        target: &str,
        output: Option<&Path>,
        progress: mpsc::UnboundedSender<Progress>,
    ) -> Result<Fetched, GetError> {
        let link = ShareLink::parse(target)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        if !self.command(Command::Lookup { file: link.file, reply: tx }) {
            return Err(GetError::Closed);
        }
        let (op, name, size, holder) = match rx.recv().await {
            Some(LookupMsg::Found { op, name, size, holder }) => (op, name, size, holder),
            Some(LookupMsg::Done(Err(LookupError::NotFound { file }))) => return Err(GetError::NotFound { file }),
            Some(LookupMsg::Done(Err(err))) => return Err(GetError::Unavailable(err)),
            Some(_) | None => return Err(GetError::Closed),
        };
        let meta = match link.open_meta(&name, size) {
            Ok(meta) => meta,
            Err(err) => {
                self.command(Command::CancelLookup(op));
                return Err(err.into());
            }
        };
        let path = destination(output, &meta.name, link.file).await?;
        let mut download = Download::create(&path).await?;
        if let Err(err) = self.receive(op, &link, &meta, &mut rx, &mut download, &progress).await {
            self.command(Command::CancelLookup(op));
            download.discard().await;
            return Err(err);
        }
        download.finish(&path).await?;
        Ok(Fetched {
            file_id: link.file.to_string(),
            path,
            name: meta.name,
            size: meta.size,
            encrypted: link.key.is_some(),
            holder: crate::hex_id(holder),
        })
    }

    /// Writes the lookup's chunks as they come.
    async fn receive(
        &self,
        op: past_core::past::OpId,
        link: &ShareLink,
        meta: &Meta,
        rx: &mut mpsc::UnboundedReceiver<LookupMsg>,
        download: &mut Download,
        progress: &mpsc::UnboundedSender<Progress>,
    ) -> Result<(), GetError> {
        let mut received = 0u64;
        loop {
            match rx.recv().await {
                Some(LookupMsg::Chunk { index, data }) => {
                    let plain = match &link.key {
                        Some(key) => {
                            key.open_chunk(index, &data).map_err(|source| GetError::Chunk { index, source })?
                        }
                        None => data,
                    };
                    download.write(&plain).await?;
                    received += plain.len() as u64;
                    // Taken: the core may pull the next chunk (paced reads keep memory flat).
                    if !self.command(Command::LookupConsumed(op)) {
                        return Err(GetError::Closed);
                    }
                    let _ = progress.send(Progress { stage: Stage::Receiving, bytes: received, total: meta.size });
                }
                Some(LookupMsg::Done(Ok(()))) => return Ok(()),
                Some(LookupMsg::Done(Err(LookupError::NotFound { file }))) => return Err(GetError::NotFound { file }),
                Some(LookupMsg::Done(Err(err))) => return Err(GetError::Unavailable(err)),
                Some(LookupMsg::Found { .. }) | None => return Err(GetError::Closed),
            }
        }
    }

    /// Reclaims a file this node's key owns; its holders free it and answer with signed
    /// receipts.
    pub async fn reclaim(&self, file: &str) -> Result<ReclaimOutcome, ReclaimError> {
        let file = past_link::share::parse_file_id(file.trim()).ok_or_else(|| ReclaimError::BadFileId(file.into()))?;
        let (reply, replied) = oneshot::channel();
        if !self.command(Command::Reclaim { file, reply }) {
            return Err(ReclaimError::Closed);
        }
        replied.await.map_err(|_| ReclaimError::Closed)?
    }

    /// What the node is and holds (`None` once it stopped).
    pub async fn status(&self) -> Option<Status> {
        let (reply, replied) = oneshot::channel();
        self.inputs.send(Input::Command(Command::Status(reply))).await.ok()?;
        replied.await.ok()
    }
}

/// The file a get writes: `output` itself, or the file's name in the directory `output`
/// (the current directory when `None`).
async fn destination(output: Option<&Path>, name: &str, file: FileId) -> Result<PathBuf, GetError> {
    let dir = match output {
        Some(path) if !tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) => return Ok(path.to_path_buf()),
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    // Only the last component of the owner's name, and never `.` or `..`.
    let safe = Path::new(name).file_name().map(|n| n.to_string_lossy().into_owned());
    let name = safe.filter(|n| !n.is_empty() && n != "." && n != "..").unwrap_or_else(|| file.to_string());
    Ok(dir.join(name))
}

/// A temporary file next to a get's destination.
struct Download {
    temp: PathBuf,
    file: tokio::fs::File,
}

impl Download {
    async fn create(path: &Path) -> Result<Self, GetError> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let temp = dir.join(format!(".{name}.{:016x}.part", rand::random::<u64>()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|source| GetError::Output { path: temp.clone(), source })?;
        Ok(Download { temp, file })
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), GetError> {
        self.file.write_all(data).await.map_err(|source| GetError::Output { path: self.temp.clone(), source })
    }

    /// Fsyncs the file, renames it to `path` and fsyncs the directory.
    async fn finish(mut self, path: &Path) -> Result<(), GetError> {
        let done = async {
            self.file.flush().await?;
            self.file.sync_all().await?;
            tokio::fs::rename(&self.temp, path).await?;
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                tokio::fs::File::open(dir).await?.sync_all().await?;
            }
            Ok(())
        };
        match done.await {
            Ok(()) => Ok(()),
            Err(source) => {
                let _ = tokio::fs::remove_file(&self.temp).await;
                Err(GetError::Output { path: path.to_path_buf(), source })
            }
        }
    }

    async fn discard(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.temp).await;
    }
}
