//! Insert: the client, the root that coordinates, and the nodes that store.
//!
//! PAST section 2.2 and 3.1. The message flow, with the content moving only between the
//! client and the nodes that store it:
//!
//! 1. The client reads its content once, chunk by chunk, to hash it; the owner signs the
//!    file certificate (through the driver); the client routes [`PastMessage::Insert`]
//!    (certificate only, a few hundred bytes) to the fileId.
//! 2. The root, the node numerically closest to the fileId, checks the certificate (owner's
//!    signature, fileId derivation, k within 1..=l/2+1, size, name) and that the file is new,
//!    picks the k closest nodes from its leaf set and sends each a [`PastMessage::Prepare`].
//! 3. Each of them checks the certificate again (it trusts no one), its per-owner limit and
//!    its free space (t_pri). It accepts, or diverts the replica to a leaf (t_div), or
//!    refuses. The node that will hold the content pulls it straight from the client, 64 KiB
//!    chunks with a window of requests, checking each chunk against the certificate, and
//!    writes it to its store uncommitted. It reports [`PastMessage::Ready`] when the whole
//!    content matched. A node that accepts has its store receipt signed at once, while the
//!    content comes (the driver's signing overlaps the transfer); it keeps it until the commit.
//! 4. When all k are ready, the root sends [`PastMessage::Commit`]; each primary commits and
//!    returns its signed store receipt to the client. Any refusal, bad chunk, stall or failed
//!    node before that makes the root send [`PastMessage::Abort`] to all and
//!    [`PastMessage::InsertFailed`] to the client, and every uncommitted replica is dropped
//!    (and dropped anyway after a timeout if the root itself fails).
//! 5. The client succeeds with k verified receipts. If some but not all receipts come (a node
//!    failed between commit and receipt), it reclaims the file, so no partial insert stays.
//!    A refusal for lack of space makes the client retry with a new salt, hence a new fileId
//!    elsewhere on the ring (file diversion, up to `file_diversion_retries` times).
//!
//! An insert whose root gives no sign of life within `request_timeout` (no node pulls the
//! content, no receipt, no refusal) is routed again with the same certificate and nonce, up
//! to `route_attempts` times, each retry on a randomized route (see
//! [`crate::RoutingState::random_step`]); a root that already coordinates that nonce ignores
//! the copy.
//!
//! Why the content does not travel with the routed insert: routing would copy every chunk
//! through each hop, a browser has few connections, and the root would have to buffer or
//! relay the file. Pulling from the client costs the client k uploads of the content but no
//! intermediate node any; every storing node verifies what it stores itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::{
    CHUNK_SIZE, ContentHasher, FileCertificate, FileCertificateBody, Signed, SignedBody, StoreReceipt, chunk_count,
    chunk_list_digest, verify_signed_all,
};
use crate::past::crypto::{SignError, Signature};
use crate::past::error::{InsertError, Refusal};
use crate::past::file_id::{FileId, Hash};
use crate::past::messages::{InsertRequest, PastMessage, Prepare, Source};
use crate::past::node::{InsertRequestSpec, Inserted, OpId, Past, PastEvent, SignWait, StorageWait, Timer};
use crate::past::store::{Object, Role, StorageError, StorageOp, StorageReply, UploadId};
use crate::past::verified::SharedVerified;
use crate::time::Time;

/// An insert started at this node.
#[derive(Debug)]
pub(crate) struct InsertOp {
    spec: Option<InsertRequestSpec>,
    fixed: Option<FileCertificate>,
    upload: UploadId,
    size: u64,
    hasher: Option<ContentHasher>,
    next_read: u32,
    next_hash: u32,
    buffered: BTreeMap<u32, Vec<u8>>,
    content: Option<(Hash, Vec<Hash>)>,
    attempt: u8,
    files: Vec<FileId>,
    current: Option<Attempt>,
    debited: u64,
    deadline: Time,
}

#[derive(Debug)]
struct Attempt {
    cert: Arc<FileCertificate>,
    digest: Hash,
    nonce: u64,
    /// Receipts whose signature verified, by node.
    receipts: BTreeMap<Id, StoreReceipt>,
    /// Receipts not verified yet, in the order they came: verified together once receipts
    /// from k nodes are in (see [`Attempt::check_receipts`]).
    unchecked: Vec<StoreReceipt>,
    /// Routes of this certificate sent so far, and when the last one was.
    routes: u8,
    routed_at: Time,
    /// Whether the root showed it got the insert (a node pulled the content, a receipt).
    heard: bool,
}

impl Attempt {
    /// Number of nodes that sent a receipt, verified or not.
    fn receipt_nodes(&self) -> usize {
        let new = self.unchecked.iter().filter(|r| !self.receipts.contains_key(&r.body.node));
        self.receipts.len() + new.map(|r| r.body.node).collect::<BTreeSet<_>>().len()
    }

    /// Verifies the receipts not verified yet and keeps the good ones, as if each had been
    /// verified when it came: all in one batch verification when they are all good, one by
    /// one otherwise.
    fn check_receipts(&mut self, shared: Option<&SharedVerified>) {
        let unchecked = core::mem::take(&mut self.unchecked);
        let all: Vec<&StoreReceipt> = unchecked.iter().collect();
        let all_good = all.len() > 1 && verify_signed_all(&all, shared);
        for receipt in unchecked {
            if all_good || receipt.verify_shared(shared) {
                self.heard = true;
                self.receipts.insert(receipt.body.node, receipt);
            }
        }
    }

    /// When to route the insert again if the root has not shown it got it by then.
    fn retry_at(&self, timeout: core::time::Duration, attempts: u8) -> Option<Time> {
        (!self.heard && self.routes < attempts).then(|| self.routed_at + timeout)
    }
}

/// What the root knows of one primary during an insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrimaryState {
    Asked,
    Prepared,
    Ready,
}

/// The root's coordination of one insert.
#[derive(Debug)]
pub(crate) struct Coordination {
    client: Id,
    primaries: Vec<(Id, PrimaryState)>,
    deadline: Time,
    heartbeat: Time,
}

impl Past {
    // ----- client -----

    pub(crate) fn insert(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        spec: InsertRequestSpec,
    ) -> Result<OpId, InsertError> {
        let max_k = Past::max_k(o);
        if spec.k == 0 || spec.k > max_k {
            return Err(InsertError::InvalidK { k: spec.k, max: max_k });
        }
        let max = self.config.max_file_size.min(crate::past::certificate::MAX_FILE_SIZE);
        if spec.size > max {
            return Err(InsertError::FileTooLarge { size: spec.size, max });
        }
        if spec.name.len() > crate::past::certificate::MAX_NAME_BYTES {
            return Err(InsertError::NameTooLong { len: spec.name.len() });
        }
        let needed = spec.size.saturating_mul(u64::from(spec.k));
        self.quotas.debit(&spec.owner, needed).map_err(|available| InsertError::QuotaExceeded { needed, available })?;
        let (upload, size) = (spec.upload, spec.size);
        Ok(self.start_insert(o, Some(spec), None, upload, size, needed))
    }

    pub(crate) fn insert_certificate(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        cert: FileCertificate,
        upload: UploadId,
    ) -> OpId {
        let size = cert.body.size;
        self.start_insert(o, None, Some(cert), upload, size, 0)
    }

    fn start_insert(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        spec: Option<InsertRequestSpec>,
        fixed: Option<FileCertificate>,
        upload: UploadId,
        size: u64,
        debited: u64,
    ) -> OpId {
        let id = self.fresh();
        let op = InsertOp {
            spec,
            fixed,
            upload,
            size,
            hasher: Some(ContentHasher::new()),
            next_read: 0,
            next_hash: 0,
            buffered: BTreeMap::new(),
            content: None,
            attempt: 0,
            files: Vec::new(),
            current: None,
            debited,
            deadline: o.now() + self.config.stall_timeout,
        };
        self.inserts.insert(id, op);
        self.schedule(o.now() + self.config.stall_timeout, Timer::Insert(id));
        self.read_upload(id);
        OpId(id)
    }

    /// Requests reads of the upload while the window allows.
    fn read_upload(&mut self, id: u64) {
        let window = self.config.window.max(1);
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        let chunks = chunk_count(op.size);
        let mut reads = Vec::new();
        while op.next_read < chunks && op.next_read - op.next_hash < window {
            reads.push(op.next_read);
            op.next_read += 1;
        }
        let upload = op.upload;
        for index in reads {
            self.store(
                StorageOp::Read { object: Object::Upload(upload), index },
                StorageWait::HashRead { op: id, index },
            );
        }
    }

    pub(crate) fn on_upload_read(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        id: u64,
        index: u32,
        result: Result<StorageReply, StorageError>,
    ) {
        let data = match result {
            Ok(StorageReply::Data(data)) if data.len() <= CHUNK_SIZE => data,
            Ok(_) => return self.fail_insert(o, id, InsertError::Storage(StorageError::Failed("bad read".into()))),
            Err(error) => return self.fail_insert(o, id, InsertError::Storage(error)),
        };
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        op.deadline = o.now() + self.config.stall_timeout;
        op.buffered.insert(index, data);
        let chunks = chunk_count(op.size);
        while let Some(data) = op.buffered.remove(&op.next_hash) {
            let full = data.len() == CHUNK_SIZE;
            if let Some(hasher) = op.hasher.as_mut() {
                hasher.update(&data);
            }
            op.next_hash += 1;
            if !full && op.next_hash < chunks {
                let error = StorageError::Failed(format!("chunk {} of the upload is short", op.next_hash - 1));
                return self.fail_insert(o, id, InsertError::Storage(error));
            }
        }
        if op.next_hash < chunks {
            self.read_upload(id);
            return;
        }
        let Some(hasher) = op.hasher.take() else {
            return;
        };
        let (content_hash, hashes, size) = hasher.finish();
        if size != op.size {
            let error = StorageError::Failed(format!("upload has {size} bytes, {} expected", op.size));
            return self.fail_insert(o, id, InsertError::Storage(error));
        }
        op.content = Some((content_hash, hashes));
        self.next_attempt(o, id);
    }

    /// Signs a certificate with a fresh salt (or takes the fixed one) and routes it.
    fn next_attempt(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let salt = Past::nonce(o);
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        op.attempt += 1;
        if let Some(cert) = op.fixed.clone() {
            self.route_attempt(o, id, cert);
            return;
        }
        let (Some(spec), Some((content_hash, hashes))) = (&op.spec, &op.content) else {
            return;
        };
        let body = FileCertificateBody {
            file: FileId::derive(&spec.name, &spec.owner, salt),
            content_hash: *content_hash,
            chunk_list: chunk_list_digest(hashes),
            k: spec.k,
            salt,
            created: spec.created,
            size: spec.size,
            name: spec.name.clone(),
            owner: spec.owner,
        };
        let message = body.signing_bytes();
        let owner = spec.owner;
        self.sign(owner, message, SignWait::Certificate { op: id, body });
    }

    pub(crate) fn on_certificate_signed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        id: u64,
        body: FileCertificateBody,
        result: Result<Signature, SignError>,
    ) {
        let signature = match result {
            Ok(signature) => signature,
            Err(error) => return self.fail_insert(o, id, InsertError::Signing(error)),
        };
        // A bad signature from the driver is caught by the root (InsertError::Certificate).
        let cert = Signed { signer: body.owner, body, signature };
        self.route_attempt(o, id, cert);
    }

    fn route_attempt(&mut self, o: &mut dyn Net<PastMessage>, id: u64, cert: FileCertificate) {
        let nonce = Past::nonce(o);
        let now = o.now();
        let deadline = now + self.config.request_timeout * 2 + self.config.stall_timeout;
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        op.files.push(cert.body.file);
        op.deadline = deadline;
        let digest = cert.digest();
        op.current = Some(Attempt {
            digest,
            cert: Arc::new(cert),
            nonce,
            receipts: BTreeMap::new(),
            unchecked: Vec::new(),
            routes: 0,
            routed_at: now,
            heard: false,
        });
        self.route_insert(o, id);
    }

    /// Routes the current attempt's certificate to the fileId (again, on a randomized
    /// route, when the root showed no sign of life).
    fn route_insert(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let (own, now, timeout) = (o.id(), o.now(), self.config.request_timeout);
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        let Some(attempt) = op.current.as_mut() else {
            return;
        };
        let route = attempt.routes;
        attempt.routes = attempt.routes.saturating_add(1);
        attempt.routed_at = now;
        op.deadline = op.deadline.max(now + timeout * 2 + self.config.stall_timeout);
        let request =
            InsertRequest { certificate: attempt.cert.clone(), client: own, nonce: attempt.nonce, route: Vec::new() };
        o.route_attempt(attempt.cert.body.file.key(), PastMessage::Insert(Box::new(request)), route);
        self.schedule(now + timeout, Timer::Insert(id));
    }

    /// The upload an insert source names, with its chunk hashes and size.
    pub(crate) fn upload_of(&self, file: FileId, nonce: u64) -> Option<(Object, Vec<Hash>, u64)> {
        self.inserts.values().find_map(|op| {
            let attempt = op.current.as_ref()?;
            if attempt.cert.body.file != file || attempt.nonce != nonce {
                return None;
            }
            let hashes = op.content.as_ref().map(|(_, h)| h.clone()).unwrap_or_default();
            Some((Object::Upload(op.upload), hashes, op.size))
        })
    }

    /// A node pulls from an upload: the insert is progressing.
    pub(crate) fn upload_served(&mut self, source: Source, now: Time) {
        let Source::Upload { file, nonce } = source else {
            return;
        };
        let stall = self.config.stall_timeout;
        for (_, op) in self.inserts.iter_mut() {
            if let Some(attempt) = op.current.as_mut().filter(|a| a.cert.body.file == file && a.nonce == nonce) {
                attempt.heard = true;
                op.deadline = op.deadline.max(now + stall);
            }
        }
    }

    fn insert_by_nonce(&self, file: FileId, nonce: u64) -> Option<u64> {
        self.inserts.iter().find_map(|(&id, op)| {
            let a = op.current.as_ref()?;
            (a.cert.body.file == file && a.nonce == nonce).then_some(id)
        })
    }

    pub(crate) fn on_insert_failed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        file: FileId,
        nonce: u64,
        node: Id,
        reason: Refusal,
    ) {
        let Some(id) = self.insert_by_nonce(file, nonce) else {
            return;
        };
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        let retries = u32::from(self.config.file_diversion_retries);
        let space = matches!(reason, Refusal::NoSpace);
        if space && op.fixed.is_none() && u32::from(op.attempt) <= retries {
            op.current = None;
            self.next_attempt(o, id);
            return;
        }
        let error = match reason {
            Refusal::NoSpace => InsertError::InsufficientStorage { attempts: op.attempt, files: op.files.clone() },
            Refusal::Certificate(error) => InsertError::Certificate { node, error },
            Refusal::Duplicate => InsertError::Duplicate { file, node },
            Refusal::OwnerLimit { limit } => InsertError::OwnerLimit { node, limit },
            Refusal::ContentMismatch { chunk } => InsertError::ContentMismatch { node, chunk },
            Refusal::BadHashList => InsertError::ContentMismatch { node, chunk: 0 },
            Refusal::Unreachable { node } => InsertError::NodeFailed { node },
            Refusal::Stalled => InsertError::NodeFailed { node },
            reason => InsertError::Refused { node, reason },
        };
        self.fail_insert(o, id, error);
    }

    pub(crate) fn on_receipt(&mut self, _o: &mut dyn Net<PastMessage>, nonce: u64, receipt: StoreReceipt) {
        let shared = self.config.shared_verified.clone();
        let file = receipt.body.file;
        let Some(id) = self.insert_by_nonce(file, nonce) else {
            return;
        };
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        let Some(attempt) = op.current.as_mut() else {
            return;
        };
        let node = receipt.body.node;
        if receipt.body.certificate != attempt.digest || receipt.signer.node_id() != node {
            return;
        }
        if attempt.unchecked.iter().any(|r| r.body.node == node) {
            // A node repeats itself: settle what it sent before, so the list stays short.
            attempt.check_receipts(shared.as_ref());
        }
        attempt.unchecked.push(receipt);
        let k = usize::from(attempt.cert.body.k);
        if attempt.receipt_nodes() < k {
            return;
        }
        attempt.check_receipts(shared.as_ref());
        if attempt.receipts.len() < k {
            return;
        }
        let Some(op) = self.inserts.remove(&id) else {
            return;
        };
        let Some(attempt) = op.current else {
            return;
        };
        let result = Inserted {
            certificate: (*attempt.cert).clone(),
            receipts: attempt.receipts.into_values().collect(),
            attempts: op.attempt,
        };
        self.owned.insert(file, attempt.cert);
        self.emit(PastEvent::InsertDone { op: OpId(id), result: Ok(result) });
    }

    pub(crate) fn insert_timer(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let shared = self.config.shared_verified.clone();
        let Some(op) = self.inserts.get_mut(&id) else {
            return;
        };
        if let Some(attempt) = op.current.as_mut() {
            attempt.check_receipts(shared.as_ref());
        }
        let now = o.now();
        let retry_at =
            op.current.as_ref().and_then(|a| a.retry_at(self.config.request_timeout, self.config.route_attempts));
        if retry_at.is_some_and(|at| at <= now) {
            return self.route_insert(o, id);
        }
        if op.deadline > now {
            let next = retry_at.map_or(op.deadline, |at| at.min(op.deadline));
            self.schedule(next, Timer::Insert(id));
            return;
        }
        let error = match &op.current {
            Some(a) => InsertError::Timeout {
                file: a.cert.body.file,
                receipts: u8::try_from(a.receipts.len()).unwrap_or(u8::MAX),
                k: a.cert.body.k,
            },
            None => InsertError::Storage(StorageError::Failed("reading or signing timed out".into())),
        };
        self.fail_insert(o, id, error);
    }

    /// Ends an insert with an error: credits the quota back, and reclaims a partial insert.
    fn fail_insert(&mut self, o: &mut dyn Net<PastMessage>, id: u64, error: InsertError) {
        let shared = self.config.shared_verified.clone();
        let Some(op) = self.inserts.remove(&id) else {
            return;
        };
        if let Some(spec) = &op.spec {
            self.quotas.credit(&spec.owner, op.debited);
        }
        if let Some(mut attempt) = op.current {
            attempt.check_receipts(shared.as_ref());
            if !attempt.receipts.is_empty() {
                // Some primaries committed: take the file back so no partial insert stays.
                let cert = attempt.cert;
                let issued = cert.body.created;
                self.compensate(o, cert, issued);
            }
        }
        self.emit(PastEvent::InsertDone { op: OpId(id), result: Err(error) });
    }

    // ----- root -----

    /// The insert reached the root.
    pub(crate) fn on_insert(&mut self, o: &mut dyn Net<PastMessage>, request: InsertRequest) {
        let InsertRequest { certificate: cert, client, nonce, route } = request;
        let own = o.id();
        let file = cert.body.file;
        if self.coordinations.contains_key(&(file, nonce)) {
            return;
        }
        self.keep_way_back(o, &route, client);
        let refuse = |past: &mut Past, o: &mut dyn Net<PastMessage>, reason: Refusal| {
            past.send(o, client, PastMessage::InsertFailed { file, nonce, node: own, reason });
        };
        if let Err(error) = self.check_cert(&cert, Past::max_k(o), self.config.max_file_size) {
            return refuse(self, o, Refusal::Certificate(error));
        }
        if self.holdings.contains_key(&file) || self.coordinations.keys().any(|&(f, _)| f == file) {
            return refuse(self, o, Refusal::Duplicate);
        }
        let k = usize::from(cert.body.k);
        let primaries = Past::closest(o, file.key(), k);
        if primaries.len() < k {
            let available = u8::try_from(primaries.len()).unwrap_or(u8::MAX);
            return refuse(self, o, Refusal::TooFewNodes { available });
        }
        let now = o.now();
        let deadline = now + self.config.request_timeout * 2 + self.config.stall_timeout;
        let prepare = Prepare {
            certificate: cert.clone(),
            source_node: client,
            source: Source::Upload { file, nonce },
            coordinator: own,
            nonce,
            primaries: primaries.clone(),
            diverted: false,
            insert: true,
            source_way: Vec::new(),
        };
        self.coordinations.insert(
            (file, nonce),
            Coordination {
                client,
                primaries: primaries.iter().map(|&p| (p, PrimaryState::Asked)).collect(),
                deadline,
                heartbeat: now,
            },
        );
        self.schedule(deadline, Timer::Coordination(file, nonce));
        for primary in primaries {
            let source_way = self.way_through(o, primary, client);
            self.send(o, primary, PastMessage::Prepare(Box::new(Prepare { source_way, ..prepare.clone() })));
        }
    }

    fn coordination_state(&mut self, file: FileId, nonce: u64, from: Id) -> Option<&mut PrimaryState> {
        let c = self.coordinations.get_mut(&(file, nonce))?;
        c.primaries.iter_mut().find(|(p, _)| *p == from).map(|(_, s)| s)
    }

    /// Aborts an insert at the root: every primary drops its replica, the client hears why.
    pub(crate) fn abort_insert(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        file: FileId,
        nonce: u64,
        node: Id,
        reason: Refusal,
    ) {
        let Some(c) = self.coordinations.remove(&(file, nonce)) else {
            return;
        };
        for (primary, _) in &c.primaries {
            self.send(o, *primary, PastMessage::Abort { file, nonce });
        }
        self.send(o, c.client, PastMessage::InsertFailed { file, nonce, node, reason });
    }

    pub(crate) fn on_prepared(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        file: FileId,
        nonce: u64,
        result: Result<Id, Refusal>,
    ) {
        if let Some(state) = self.coordination_state(file, nonce, from) {
            match result {
                Ok(_) => {
                    if *state == PrimaryState::Asked {
                        *state = PrimaryState::Prepared;
                    }
                }
                Err(reason) => self.abort_insert(o, file, nonce, from, reason),
            }
            return;
        }
        self.on_diversion_prepared(o, from, file, nonce, result);
    }

    pub(crate) fn on_ready(&mut self, o: &mut dyn Net<PastMessage>, from: Id, file: FileId, nonce: u64) {
        if let Some(state) = self.coordination_state(file, nonce, from) {
            *state = PrimaryState::Ready;
            let all = self
                .coordinations
                .get(&(file, nonce))
                .is_some_and(|c| c.primaries.iter().all(|(_, s)| *s == PrimaryState::Ready));
            if all {
                if let Some(c) = self.coordinations.remove(&(file, nonce)) {
                    let holders: Vec<Id> = c.primaries.iter().map(|(p, _)| *p).collect();
                    for &primary in &holders {
                        self.send(o, primary, PastMessage::Commit { file, nonce, holders: holders.clone() });
                    }
                }
            } else {
                self.on_progress(o, from, file, nonce);
            }
            return;
        }
        self.on_diverted_ready(o, from, file, nonce);
    }

    pub(crate) fn on_progress(&mut self, o: &mut dyn Net<PastMessage>, from: Id, file: FileId, nonce: u64) {
        let now = o.now();
        let (stall, commit) = (self.config.stall_timeout, self.config.commit_timeout);
        if let Some(c) =
            self.coordinations.get_mut(&(file, nonce)).filter(|c| c.primaries.iter().any(|(p, _)| *p == from))
        {
            c.deadline = c.deadline.max(now + stall);
            // Keep primaries that are ready from giving up while others still transfer.
            if now.since(c.heartbeat) >= commit / 4 {
                c.heartbeat = now;
                let ready: Vec<Id> =
                    c.primaries.iter().filter(|(_, s)| *s == PrimaryState::Ready).map(|(p, _)| *p).collect();
                for primary in ready {
                    self.send(o, primary, PastMessage::Progress { file, nonce });
                }
            }
            return;
        }
        self.pending_progress(o, from, file, nonce);
    }

    pub(crate) fn on_failed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        file: FileId,
        nonce: u64,
        node: Id,
        reason: Refusal,
    ) {
        if self.coordination_state(file, nonce, from).is_some() {
            self.abort_insert(o, file, nonce, node, reason);
            return;
        }
        self.on_diverted_failed(o, from, file, nonce, node, reason);
    }

    pub(crate) fn coordination_timer(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, nonce: u64) {
        let Some(c) = self.coordinations.get(&(file, nonce)) else {
            return;
        };
        if c.deadline > o.now() {
            let deadline = c.deadline;
            self.schedule(deadline, Timer::Coordination(file, nonce));
            return;
        }
        let node = c.primaries.iter().find(|(_, s)| *s != PrimaryState::Ready).map_or(o.id(), |(p, _)| *p);
        self.abort_insert(o, file, nonce, node, Refusal::Unreachable { node });
    }

    /// Aborts the inserts coordinated here whose primaries left the leaf set.
    pub(crate) fn check_coordinations(&mut self, o: &mut dyn Net<PastMessage>) {
        let failed: Vec<(FileId, u64, Id)> = self
            .coordinations
            .iter()
            .filter_map(|(&(f, n), c)| c.primaries.iter().find(|(p, _)| !Past::is_near(o, *p)).map(|(p, _)| (f, n, *p)))
            .collect();
        for (file, nonce, node) in failed {
            self.abort_insert(o, file, nonce, node, Refusal::Unreachable { node });
        }
    }

    // ----- storing nodes -----

    /// A commit from the coordinator of a replica.
    pub(crate) fn on_commit(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        file: FileId,
        nonce: u64,
        holders: Vec<Id>,
    ) {
        let own = o.id();
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let Some(p) = h.pending.as_ref() else {
            return;
        };
        if p.nonce != nonce || p.coordinator != Some(from) || !p.ready {
            return;
        }
        let client = p.client;
        let insert = p.insert;
        let receipt = h.pending.take().and_then(|p| p.receipt);
        h.holders = holders.clone();
        if !h.holders.contains(&own) {
            h.holders.push(own);
        }
        let record = h.record();
        let role = h.role;
        self.store(StorageOp::PutRecord { file, record }, StorageWait::Other);
        if let Role::Pointer { holder } = role {
            self.send(o, holder, PastMessage::Commit { file, nonce, holders });
        }
        if insert {
            self.stats.replicas_stored += 1;
        }
        if matches!(role, Role::Primary | Role::Pointer { .. }) && insert {
            match receipt {
                Some(receipt) => self.send(o, client, PastMessage::Receipt { nonce, receipt }),
                // Still being signed, or not asked for yet: sent when signed
                // (`Past::receipt_signed`).
                None => {
                    self.receipts_owed.insert((file, nonce), client);
                    if !self.signing_receipt(file, nonce) {
                        self.sign_receipt(o, file, nonce);
                    }
                }
            }
        }
    }

    /// An abort from the coordinator of a replica.
    pub(crate) fn on_abort(&mut self, o: &mut dyn Net<PastMessage>, from: Id, file: FileId, nonce: u64) {
        let matches = self
            .holdings
            .get(&file)
            .and_then(|h| h.pending.as_ref())
            .is_some_and(|p| p.nonce == nonce && p.coordinator == Some(from));
        if matches {
            self.drop_holding(o, file, true);
        }
    }
}
