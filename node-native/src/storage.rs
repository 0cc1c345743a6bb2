//! The core's storage requests, carried out off the event loop: one thread owns the store
//! ([`DiskStore`](crate::disk_store::DiskStore), or a `MemoryStore` for a node without a
//! store directory) and the files being inserted, performs the requests in the order the
//! core made them, and sends each answer back to the loop as an input.
//!
//! Reads of a file being inserted ([`Object::Upload`]) read one chunk's byte range of the
//! file, sealed with the file's key when it is encrypted (`past_link::seal`: a plaintext
//! piece of `PLAIN_CHUNK` bytes becomes one PAST chunk), never the whole file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use past_core::past::{CHUNK_SIZE, Object, Storage, StorageError, StorageOp, StorageReply, StorageRequest, UploadId};
use past_link::seal::{FileKey, PLAIN_CHUNK};
use tokio::sync::mpsc::Sender;

use crate::node::Input;

/// What the loop asks of the storage thread.
// Nearly every job is the large variant: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Job {
    Perform(StorageRequest),
    AddUpload { upload: UploadId, path: PathBuf, key: Option<FileKey> },
    RemoveUpload(UploadId),
}

/// The storage thread, seen from the loop.
pub(crate) struct StorageWorker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl StorageWorker {
    /// Starts the thread owning `store`; answers go to `inputs` as [`Input::Stored`].
    pub(crate) fn start(store: Box<dyn Storage + Send>, inputs: Sender<Input>) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name("past-storage".into()).spawn(move || run(store, rx, inputs))?;
        Ok(StorageWorker { jobs: Some(jobs), thread: Some(thread) })
    }

    fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs
            && jobs.send(job).is_err()
        {
            tracing::error!("the storage thread stopped: a storage request is lost");
        }
    }

    /// Performs `request`.
    pub(crate) fn perform(&self, request: StorageRequest) {
        self.submit(Job::Perform(request));
    }

    /// Names the file an insert reads from, and its key when it is encrypted.
    pub(crate) fn add_upload(&self, upload: UploadId, path: PathBuf, key: Option<FileKey>) {
        self.submit(Job::AddUpload { upload, path, key });
    }

    /// Forgets an insert's file.
    pub(crate) fn remove_upload(&self, upload: UploadId) {
        self.submit(Job::RemoveUpload(upload));
    }

    /// Lets the thread finish the requests it has and waits for it (the store is closed
    /// after).
    pub(crate) async fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the storage thread panicked");
            }
        }
    }
}

/// A file being inserted.
struct Upload {
    path: PathBuf,
    key: Option<FileKey>,
}

fn run(mut store: Box<dyn Storage + Send>, jobs: mpsc::Receiver<Job>, inputs: Sender<Input>) {
    let mut uploads = BTreeMap::new();
    while let Ok(job) = jobs.recv() {
        let (id, result) = match job {
            Job::AddUpload { upload, path, key } => {
                uploads.insert(upload, Upload { path, key });
                continue;
            }
            Job::RemoveUpload(upload) => {
                uploads.remove(&upload);
                continue;
            }
            Job::Perform(StorageRequest { id, op: StorageOp::Read { object: Object::Upload(upload), index } }) => {
                (id, uploads.get(&upload).ok_or(StorageError::NotFound).and_then(|u| read_upload(u, index)))
            }
            Job::Perform(request) => (request.id, store.perform(request.op)),
        };
        if inputs.blocking_send(Input::Stored { id, result }).is_err() {
            // The loop stopped: what is left is of no use to anyone.
            return;
        }
    }
}

/// Chunk `index` of an upload: its byte range of the file, sealed when encrypted.
fn read_upload(upload: &Upload, index: u32) -> Result<StorageReply, StorageError> {
    let piece = if upload.key.is_some() { PLAIN_CHUNK } else { CHUNK_SIZE } as u64;
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = File::open(&upload.path)?;
        let len = file.metadata()?.len();
        let start = u64::from(index) * piece;
        let end = (start + piece).min(len);
        let mut data = vec![0; usize::try_from(end.saturating_sub(start)).unwrap_or(0)];
        if !data.is_empty() {
            file.seek(SeekFrom::Start(start))?;
            file.read_exact(&mut data)?;
        }
        Ok(data)
    };
    let plain = read().map_err(|e| StorageError::Failed(format!("reading {}: {e}", upload.path.display())))?;
    Ok(StorageReply::Data(match &upload.key {
        Some(key) => key.seal_chunk(index, &plain),
        None => plain,
    }))
}
