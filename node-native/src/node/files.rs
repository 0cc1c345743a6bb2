//! The loop's side of PAST: the core's storage requests handed to the storage thread, its
//! signing requests answered with the node's key, and the handle's inserts, lookups and
//! reclaims waiting for their outcome. File commands that arrive before the node has joined
//! wait for the join.

use std::collections::BTreeMap;

use past_core::Time;
use past_core::past::{
    CHUNK_SIZE, InsertError as CoreInsertError, Inserted as CoreInserted, Object, OpId, PastEvent, Reclaimed, Role,
    Signer as _, StorageOp, UploadId,
};
use past_link::seal::{self, FileKey, Meta, PLAIN_CHUNK};
use past_link::share::ShareLink;
use tokio::sync::{mpsc, oneshot};

use super::{Command, Driver};
use crate::files::{
    InsertCommand, InsertError, Inserted, LookupMsg, Progress, ReclaimError, ReclaimOutcome, Stage, Status,
};
use crate::hex_id;

/// An insert under way.
struct InsertWait {
    upload: UploadId,
    meta: Meta,
    key: Option<FileKey>,
    k: u8,
    /// Chunks of the file read so far (the hashing pass, then each storing node's pull).
    reads: u64,
    progress: mpsc::UnboundedSender<Progress>,
    reply: oneshot::Sender<Result<Inserted, InsertError>>,
}

impl InsertWait {
    /// Plaintext bytes per chunk.
    fn piece(&self) -> u64 {
        if self.key.is_some() { PLAIN_CHUNK as u64 } else { CHUNK_SIZE as u64 }
    }

    /// Reports progress after another read.
    fn read_one(&mut self) {
        self.reads += 1;
        let chunks = self.meta.size.div_ceil(self.piece()).max(1);
        let (stage, done, total) = if self.reads <= chunks {
            (Stage::Hashing, self.reads, chunks)
        } else {
            (Stage::Storing, self.reads - chunks, chunks * u64::from(self.k))
        };
        let bytes = |n: u64| (n * self.piece()).min(self.meta.size * total / chunks);
        let _ = self.progress.send(Progress { stage, bytes: bytes(done), total: bytes(total) });
    }
}

/// The loop's PAST state.
pub(super) struct Files {
    /// The page's address, for share links.
    page_url: String,
    uploads: BTreeMap<UploadId, OpId>,
    inserts: BTreeMap<OpId, InsertWait>,
    lookups: BTreeMap<OpId, mpsc::UnboundedSender<LookupMsg>>,
    reclaims: BTreeMap<OpId, (past_core::past::FileId, oneshot::Sender<Result<ReclaimOutcome, ReclaimError>>)>,
    next_upload: u64,
    /// File commands waiting for the node to join.
    waiting: Vec<Command>,
}

impl Files {
    pub(super) fn new(page_url: String) -> Self {
        Files {
            page_url,
            uploads: BTreeMap::new(),
            inserts: BTreeMap::new(),
            lookups: BTreeMap::new(),
            reclaims: BTreeMap::new(),
            next_upload: 0,
            waiting: Vec::new(),
        }
    }
}

/// Milliseconds since the Unix epoch.
fn unix_millis() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl Driver {
    /// Hands the core's storage requests to the storage thread and answers its signing
    /// requests; whether there were any signing requests (the stack moved).
    pub(super) fn dispatch_past(&mut self) -> bool {
        while let Some(request) = self.stack.poll_storage() {
            if let StorageOp::Read { object: Object::Upload(upload), .. } = request.op {
                let op = self.files.uploads.get(&upload).copied();
                if let Some(wait) = op.and_then(|op| self.files.inserts.get_mut(&op)) {
                    wait.read_one();
                }
            }
            self.storage.perform(request);
        }
        let mut any = false;
        let t = self.now();
        while let Some(request) = self.stack.poll_sign() {
            any = true;
            let result = self.keys.complete(&request);
            self.stack.handle_signature(request.id, result, t);
        }
        any
    }

    /// Runs the file commands that waited for the join.
    pub(super) fn run_waiting_commands(&mut self) {
        let t = self.now();
        for command in std::mem::take(&mut self.files.waiting) {
            self.on_file_command(command, t);
        }
    }

    /// A file command from the handle.
    pub(super) fn on_file_command(&mut self, command: Command, t: Time) {
        let joined = self.stack.node().is_joined();
        match command {
            file @ (Command::Insert(_) | Command::Lookup { .. } | Command::Reclaim { .. }) if !joined => {
                self.files.waiting.push(file);
            }
            Command::Insert(insert) => self.insert(*insert, t),
            Command::Lookup { file, reply } => {
                let op = self.stack.lookup(file, t);
                self.files.lookups.insert(op, reply);
            }
            Command::LookupConsumed(op) => self.stack.lookup_consumed(op, t),
            Command::CancelLookup(op) => {
                if self.files.lookups.remove(&op).is_some() {
                    self.stack.cancel_lookup(op, t);
                }
            }
            Command::Reclaim { file, reply } => {
                let op = self.stack.reclaim(file, self.keys.public_key(), unix_millis(), t);
                self.files.reclaims.insert(op, (file, reply));
            }
            other => tracing::debug!("not a file command: {other:?}"),
        }
    }

    fn insert(&mut self, command: InsertCommand, t: Time) {
        self.files.next_upload += 1;
        let upload = UploadId(self.files.next_upload);
        self.storage.add_upload(upload, command.path, command.key.clone());
        let (name, size) = seal::certificate_fields(command.key.as_ref(), &command.meta);
        let spec = past_core::past::InsertRequestSpec {
            name,
            owner: self.keys.public_key(),
            k: command.k,
            upload,
            size,
            created: unix_millis(),
        };
        match self.stack.insert(spec, t) {
            Ok(op) => {
                self.files.uploads.insert(upload, op);
                let wait = InsertWait {
                    upload,
                    meta: command.meta,
                    key: command.key,
                    k: command.k,
                    reads: 0,
                    progress: command.progress,
                    reply: command.reply,
                };
                self.files.inserts.insert(op, wait);
            }
            Err(err) => {
                self.storage.remove_upload(upload);
                let _ = command.reply.send(Err(err.into()));
            }
        }
    }

    /// What the node is and holds.
    pub(super) fn status(&self) -> Status {
        let node = self.stack.node();
        let state = node.state();
        let past = self.stack.past();
        let (mut replicas, mut cached) = (Vec::new(), 0);
        for (file, role, committed) in past.files() {
            match role {
                _ if !committed => {}
                Role::Cached => cached += 1,
                Role::Primary | Role::Diverted { .. } => replicas.push(file.to_string()),
                Role::Pointer { .. } => {}
            }
        }
        Status {
            node_id: hex_id(self.stack.id()),
            joined: node.is_joined(),
            leaf_set: state.leaf_set.ids().map(hex_id).collect(),
            table_entries: state.table.len(),
            table_slots: state.table.row_count() * (1 << state.table.base().bits()),
            connections: self.stack.manager().open_peers().count(),
            connections_made: u64::from(self.stack.manager().stats().created),
            replicas,
            cached,
            bytes_stored: past.used(),
            bytes_cached: past.cached_bytes(),
            capacity: past.capacity(),
        }
    }

    /// An outcome of PAST.
    pub(super) fn on_past_event(&mut self, event: PastEvent) {
        match event {
            PastEvent::InsertDone { op, result } => self.insert_done(op, result),
            PastEvent::LookupFound { op, certificate, holder, .. } => {
                let (name, size) = (certificate.body.name, certificate.body.size);
                self.tell_lookup(op, LookupMsg::Found { op, name, size, holder });
            }
            PastEvent::LookupChunk { op, index, data } => self.tell_lookup(op, LookupMsg::Chunk { index, data }),
            PastEvent::LookupDone { op, result } => {
                if let Some(reply) = self.files.lookups.remove(&op) {
                    let _ = reply.send(LookupMsg::Done(result.map(|_| ())));
                }
            }
            PastEvent::ReclaimDone { op, result } => self.reclaim_done(op, result),
            PastEvent::BadData { file, holder } => {
                tracing::warn!(%file, holder = %hex_id(holder), "a holder served data not matching the certificate");
            }
            other => tracing::debug!("unhandled PAST event {other:?}"),
        }
    }

    /// Passes a lookup's news to its get; a get that went away stops the lookup.
    fn tell_lookup(&mut self, op: OpId, message: LookupMsg) {
        let Some(reply) = self.files.lookups.get(&op) else { return };
        if reply.send(message).is_err() {
            self.files.lookups.remove(&op);
            let t = self.now();
            self.stack.cancel_lookup(op, t);
        }
    }

    fn insert_done(&mut self, op: OpId, result: Result<CoreInserted, CoreInsertError>) {
        let Some(wait) = self.files.inserts.remove(&op) else { return };
        self.files.uploads.remove(&wait.upload);
        self.storage.remove_upload(wait.upload);
        let result = result.map_err(InsertError::from).map(|inserted| {
            let file = inserted.certificate.body.file;
            let link = ShareLink { file, key: wait.key.clone() };
            Inserted {
                file_id: file.to_string(),
                link: format!("{}#{}", self.files.page_url, link.fragment()),
                name: wait.meta.name.clone(),
                size: wait.meta.size,
                k: wait.k,
                encrypted: wait.key.is_some(),
                receipts: inserted.receipts.iter().map(|r| hex_id(r.body.node)).collect(),
            }
        });
        if let Ok(inserted) = &result {
            tracing::info!(file = %inserted.file_id, receipts = inserted.receipts.len(), "inserted");
        }
        let _ = wait.reply.send(result);
    }

    fn reclaim_done(&mut self, op: OpId, result: Result<Reclaimed, past_core::past::ReclaimError>) {
        let Some((file, reply)) = self.files.reclaims.remove(&op) else { return };
        let result = result.map_err(ReclaimError::from).map(|reclaimed| ReclaimOutcome {
            file_id: file.to_string(),
            receipts: reclaimed.receipts.iter().map(|r| hex_id(r.body.node)).collect(),
        });
        let _ = reply.send(result);
    }
}
