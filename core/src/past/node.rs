//! The PAST application: its state, the Pastry upcalls, the call contract with the driver,
//! and the commands on a [`Node`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use crate::id::Id;
use crate::net::{Narrow, Net};
use crate::node::{Application, Forward, Node};
use crate::past::cache::GreedyDualSize;
use crate::past::certificate::{FileCertificate, ReclaimCertificate, ReclaimReceipt, StoreReceipt};
use crate::past::config::PastConfig;
use crate::past::crypto::{PublicKey, SignError, SignId, SignRequest, Signature};
use crate::past::error::{InsertError, LookupError, ReclaimError, Refusal};
use crate::past::file_id::FileId;
use crate::past::insert::{Coordination, InsertOp};
use crate::past::locate::Locating;
use crate::past::lookup::LookupOp;
use crate::past::messages::PastMessage;
use crate::past::quota::{OwnerUsage, Quotas};
use crate::past::reclaim::ReclaimOp;
use crate::past::refetch::Refetch;
use crate::past::relay::Ways;
use crate::past::replica::{Holding, SpaceQueryState};
use crate::past::store::{StorageError, StorageId, StorageOp, StorageReply, StorageRequest, UploadId};
use crate::past::transfer::Transfer;
use crate::time::Time;

/// Names an operation (insert, lookup, reclaim) started at this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// A successful insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The certificate of the file as stored (its fileId is the one to look up).
    pub certificate: FileCertificate,
    /// One verified store receipt from each of the k primaries.
    pub receipts: Vec<StoreReceipt>,
    /// Attempts made (1 + file diversions).
    pub attempts: u8,
}

/// A successful lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The verified file certificate.
    pub certificate: FileCertificate,
    /// The node the content came from last.
    pub holder: Id,
    /// Routing hops the lookup took to the node that answered.
    pub hops: u8,
    /// Whether it was answered by a cached copy.
    pub cached: bool,
}

/// A successful reclaim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reclaimed {
    /// The reclaim certificate sent.
    pub certificate: ReclaimCertificate,
    /// Verified reclaim receipts.
    pub receipts: Vec<ReclaimReceipt>,
}

/// What the PAST application reports to the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PastEvent {
    /// An insert ended.
    InsertDone {
        /// The operation.
        op: OpId,
        /// The outcome.
        result: Result<Inserted, InsertError>,
    },
    /// A lookup found a holder; verified chunks follow as [`PastEvent::LookupChunk`].
    LookupFound {
        /// The operation.
        op: OpId,
        /// The verified certificate (name, size, owner).
        certificate: FileCertificate,
        /// The node the content comes from.
        holder: Id,
        /// Routing hops the lookup took to find it.
        hops: u8,
        /// The nodes the lookup went through after this one, in order (the node that
        /// answered may follow, when the last of them asked the replica set for it).
        route: Vec<Id>,
    },
    /// The next chunk of a lookup's content, verified against the certificate, in order.
    LookupChunk {
        /// The operation.
        op: OpId,
        /// Chunk index.
        index: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A lookup ended (after its last chunk).
    LookupDone {
        /// The operation.
        op: OpId,
        /// The outcome.
        result: Result<Found, LookupError>,
    },
    /// A reclaim ended.
    ReclaimDone {
        /// The operation.
        op: OpId,
        /// The outcome.
        result: Result<Reclaimed, ReclaimError>,
    },
    /// A holder served data that does not match its certificate; another is tried.
    BadData {
        /// The file.
        file: FileId,
        /// The holder.
        holder: Id,
    },
}

/// Counters of what the node did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PastStats {
    /// Replicas committed by inserts.
    pub replicas_stored: u64,
    /// Replicas this node diverted to another node.
    pub replicas_diverted: u64,
    /// Leaves asked for their free space, to divert a replica to one of them.
    pub space_queries: u64,
    /// Replicas fetched by replica maintenance.
    pub maintenance_files: u64,
    /// Content bytes fetched by replica maintenance.
    pub maintenance_bytes: u64,
    /// Lookups answered from a cached copy.
    pub cache_hits: u64,
    /// Lookups answered from a replica or pointer.
    pub replica_hits: u64,
    /// Files cached.
    pub cached_files: u64,
    /// Cached files evicted.
    pub evictions: u64,
    /// Content bytes served to other nodes.
    pub bytes_served: u64,
    /// Content bytes received and verified.
    pub bytes_received: u64,
    /// Chunks received that did not match their certificate.
    pub bad_chunks: u64,
    /// Lookups this node answered but could not reach the reader of, handed on to the other
    /// replica holders (or, answered from a cached copy, passed on along their route).
    pub lookups_handed_on: u64,
    /// Bytes of relayed messages this node passed on along a route (see
    /// [`relay`](crate::past::relay)).
    pub bytes_relayed: u64,
    /// Times a pull heard nothing for `reask_after` and asked again.
    pub reasked: u64,
    /// Answers that could not be sent straight (no connection opened) and went back along
    /// the lookup's route instead.
    pub answers_rerouted: u64,
    /// Messages of an insert (pull requests, receipts, refusals) that could not be sent
    /// straight to their receiver and went along a route instead.
    pub sends_rerouted: u64,
    /// Reads routed again because the way to their holder broke (a request of theirs came
    /// back) or their holder went silent after they asked again, the holder not counted as
    /// failed.
    pub reads_rerouted: u64,
    /// Reads that went on straight from another replica holder, named by the one that
    /// failed or fell silent, rather than routing their lookup again.
    pub reads_from_spare: u64,
}

/// What a storage request is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StorageWait {
    /// A client reads its upload to hash it.
    HashRead { op: u64, index: u32 },
    /// A chunk read to serve a peer.
    Serve { to: Id, transfer: u64, index: u32 },
    /// A received chunk being written.
    TransferWrite { transfer: u64 },
    /// Create, record updates, deletes.
    Other,
}

/// What a signing request is for.
#[derive(Clone, Debug)]
pub(crate) enum SignWait {
    /// The file certificate of an insert attempt.
    Certificate { op: u64, body: crate::past::certificate::FileCertificateBody },
    /// The store receipt of an accepted replica (or pointer), for the commit to come.
    StoreReceipt { nonce: u64, body: crate::past::certificate::StoreReceiptBody },
    /// A reclaim certificate.
    ReclaimCertificate { op: u64, body: crate::past::certificate::ReclaimCertificateBody },
    /// A reclaim receipt.
    ReclaimReceipt { client: Id, request: u64, body: crate::past::certificate::ReclaimReceiptBody },
}

/// A timer: which object to look at when it fires. The object keeps its own deadline; a
/// timer firing early (the deadline moved) is rescheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    Maintenance,
    Audit,
    Coordination(FileId, u64),
    Pending(FileId),
    Transfer(u64),
    Insert(u64),
    Lookup(u64),
    /// A failed maintenance pull to try again.
    Refetch(FileId),
    /// A root asking the replica set about a lookup (reader, request).
    Locate(Id, u64),
    Reclaim(u64),
    Query(u64),
}

/// A table of operations in progress, by id: a few to some hundreds of entries, kept in
/// order like a `BTreeMap`, in a sorted vector whose code is a fraction of a `BTreeMap`'s in
/// the browser's module, where every key and value type gets its own copy
/// (docs/results-browser.md).
pub(crate) type OpTable<K, V> = litemap::LiteMap<K, V>;

/// The PAST storage layer of one node: an [`Application`] on a Pastry [`Node`].
///
/// # Call contract
/// Besides the Pastry contract of [`Node`], after every input the driver drains
/// - [`Past::poll_storage`]: storage requests, answered with [`Node::handle_storage`];
/// - [`Past::poll_sign`]: signing requests, answered with [`Node::handle_signature`];
/// - [`Past::poll_event`]: outcomes of operations.
///
/// Commands ([`Node::insert`], [`Node::lookup`], [`Node::reclaim`]) return an [`OpId`]; the
/// outcome comes later as a [`PastEvent`]. A driver whose storage and keys answer at once
/// can wrap `Past` in [`SyncPast`](super::SyncPast), which completes the requests itself.
#[derive(Debug)]
pub struct Past {
    pub(crate) config: PastConfig,
    pub(crate) next: u64,
    pub(crate) storage_out: VecDeque<StorageRequest>,
    pub(crate) sign_out: VecDeque<SignRequest>,
    pub(crate) events: VecDeque<PastEvent>,
    pub(crate) local: VecDeque<PastMessage>,
    pub(crate) storage_waits: OpTable<u64, StorageWait>,
    pub(crate) sign_waits: OpTable<u64, SignWait>,
    pub(crate) timers: BTreeSet<(Time, Timer)>,
    /// Files held, in any role and state.
    pub(crate) holdings: BTreeMap<FileId, Holding>,
    /// Bytes of replicas held or reserved (cached copies not included).
    pub(crate) used: u64,
    /// Bytes reserved for cached copies being fetched.
    pub(crate) cache_pending: u64,
    pub(crate) cache: GreedyDualSize,
    pub(crate) owners: OwnerUsage,
    pub(crate) quotas: Quotas,
    /// Digests of reclaim certificates already obeyed (bounded, oldest first).
    pub(crate) tombstones: VecDeque<crate::past::file_id::Hash>,
    /// Digests of the last certificates whose signature verified.
    pub(crate) verified: VecDeque<crate::past::file_id::Hash>,
    /// Certificates of files inserted through this node, for reclaims.
    pub(crate) owned: BTreeMap<FileId, Arc<FileCertificate>>,
    pub(crate) coordinations: OpTable<(FileId, u64), Coordination>,
    pub(crate) transfers: OpTable<u64, Transfer>,
    pub(crate) inserts: OpTable<u64, InsertOp>,
    pub(crate) lookups: OpTable<u64, LookupOp>,
    /// Lookups this node, as their root, asks the replica set about (by reader and request).
    pub(crate) locating: OpTable<(Id, u64), Locating>,
    /// The lookups (reader, request) this node last answered when asked by a root or a
    /// holder that asked the other holders too: they are not handed on again.
    pub(crate) asked_with_others: VecDeque<(Id, u64)>,
    /// Maintenance pulls that failed, to try again.
    pub(crate) refetch: BTreeMap<FileId, Refetch>,
    pub(crate) reclaims: OpTable<u64, ReclaimOp>,
    pub(crate) queries: OpTable<u64, SpaceQueryState>,
    /// Commits whose store receipt is still being signed: (file, nonce) to the client.
    pub(crate) receipts_owed: OpTable<(FileId, u64), Id>,
    pub(crate) maintenance_at: Option<Time>,
    pub(crate) audit_at: Option<Time>,
    pub(crate) stats: PastStats,
    /// Peers reached along a route rather than straight.
    pub(crate) ways: Ways,
}

/// Most reclaim certificate digests remembered against replays.
pub(crate) const TOMBSTONES: usize = 4096;

/// Most certificate digests remembered as verified.
const VERIFIED: usize = 64;

impl Past {
    /// A PAST node with `config`, holding nothing.
    pub fn new(config: PastConfig) -> Self {
        Past {
            owners: OwnerUsage::new(config.owner_limit),
            quotas: Quotas::new(config.owner_quota),
            config,
            next: 1,
            storage_out: VecDeque::new(),
            sign_out: VecDeque::new(),
            events: VecDeque::new(),
            local: VecDeque::new(),
            storage_waits: OpTable::new(),
            sign_waits: OpTable::new(),
            timers: BTreeSet::new(),
            holdings: BTreeMap::new(),
            used: 0,
            cache_pending: 0,
            cache: GreedyDualSize::new(),
            tombstones: VecDeque::new(),
            verified: VecDeque::new(),
            owned: BTreeMap::new(),
            coordinations: OpTable::new(),
            transfers: OpTable::new(),
            inserts: OpTable::new(),
            lookups: OpTable::new(),
            locating: OpTable::new(),
            asked_with_others: VecDeque::new(),
            refetch: BTreeMap::new(),
            reclaims: OpTable::new(),
            queries: OpTable::new(),
            receipts_owed: OpTable::new(),
            maintenance_at: None,
            audit_at: None,
            stats: PastStats::default(),
            ways: Ways::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PastConfig {
        &self.config
    }

    /// Counters of what the node did.
    pub fn stats(&self) -> PastStats {
        self.stats
    }

    /// The storage capacity.
    pub fn capacity(&self) -> u64 {
        self.config.capacity
    }

    /// Bytes held by replicas, committed or being received (cached copies not included).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Bytes held by cached copies.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.bytes()
    }

    /// Free space as replica placement sees it: capacity less replicas (cached copies can
    /// be evicted at any time).
    pub fn free(&self) -> u64 {
        self.config.capacity.saturating_sub(self.used)
    }

    /// The files this node holds, with how it holds each and whether it is committed.
    pub fn files(&self) -> impl Iterator<Item = (FileId, crate::past::store::Role, bool)> + '_ {
        self.holdings.iter().map(|(f, h)| (*f, h.role, h.is_committed()))
    }

    /// How this node holds a file, and whether that is committed.
    pub fn role_of(&self, file: &FileId) -> Option<(crate::past::store::Role, bool)> {
        self.holdings.get(file).map(|h| (h.role, h.is_committed()))
    }

    /// The certificate of a file this node holds.
    pub fn certificate(&self, file: &FileId) -> Option<&FileCertificate> {
        self.holdings.get(file).map(|h| &*h.cert)
    }

    /// Bytes of quota left to `owner` on this node.
    pub fn quota_available(&self, owner: &PublicKey) -> u64 {
        self.quotas.available(owner)
    }

    /// Whether any operation, transfer or insert coordination is in progress.
    pub fn is_busy(&self) -> bool {
        !(self.inserts.is_empty()
            && self.lookups.is_empty()
            && self.reclaims.is_empty()
            && self.transfers.is_empty()
            && self.coordinations.is_empty()
            && self.queries.is_empty())
    }

    /// The next storage request for the driver.
    pub fn poll_storage(&mut self) -> Option<StorageRequest> {
        self.storage_out.pop_front()
    }

    /// The next signing request for the driver.
    pub fn poll_sign(&mut self) -> Option<SignRequest> {
        self.sign_out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<PastEvent> {
        self.events.pop_front()
    }

    /// Restores a file from a record the driver kept (after a restart): committed records
    /// only; the driver deletes uncommitted ones.
    pub fn restore(&mut self, record: crate::past::store::FileRecord) {
        if !record.committed {
            return;
        }
        let file = record.certificate.body.file;
        let size = record.size();
        match record.role {
            crate::past::store::Role::Cached => self.cache.insert(file, size),
            crate::past::store::Role::Pointer { .. } => {}
            _ => {
                self.used += size;
                self.owners.add(&record.certificate.body.owner, size);
            }
        }
        self.holdings.insert(file, Holding::restored(record));
    }

    /// [`check_certificate`](crate::past::certificate::check_certificate), remembering the
    /// last certificates whose signature verified (a root checks the certificate it
    /// prepares itself with, maintenance offers the same certificate several times).
    pub(crate) fn check_cert(
        &mut self,
        cert: &FileCertificate,
        max_k: u8,
        max_size: u64,
    ) -> Result<(), crate::past::certificate::CertificateError> {
        crate::past::certificate::check_certificate_fields(cert, max_k, max_size)?;
        let digest = cert.digest();
        let shared = self.config.shared_verified.as_ref();
        if self.verified.contains(&digest) || shared.is_some_and(|s| s.contains(&digest)) {
            return Ok(());
        }
        if !cert.verify_shared(shared) {
            return Err(crate::past::certificate::CertificateError::BadSignature);
        }
        if let Some(shared) = shared {
            shared.insert(digest);
        }
        if self.verified.len() >= VERIFIED {
            self.verified.pop_front();
        }
        self.verified.push_back(digest);
        Ok(())
    }

    pub(crate) fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// A fresh random 64-bit number (nonces, salts).
    pub(crate) fn nonce(overlay: &mut dyn Net<PastMessage>) -> u64 {
        overlay.random()
    }

    pub(crate) fn store(&mut self, op: StorageOp, wait: StorageWait) {
        let id = self.fresh();
        self.storage_waits.insert(id, wait);
        self.storage_out.push_back(StorageRequest { id: StorageId(id), op });
    }

    pub(crate) fn sign(&mut self, signer: PublicKey, message: Vec<u8>, wait: SignWait) {
        let id = self.fresh();
        self.sign_waits.insert(id, wait);
        self.sign_out.push_back(SignRequest { id: SignId(id), signer, message });
    }

    pub(crate) fn emit(&mut self, event: PastEvent) {
        self.events.push_back(event);
    }

    pub(crate) fn schedule(&mut self, at: Time, timer: Timer) {
        self.timers.insert((at, timer));
    }

    /// Sends a message: to this node itself through the local queue, along the route to a
    /// peer reached that way ([`relay`](crate::past::relay)), or straight.
    pub(crate) fn send(&mut self, overlay: &mut dyn Net<PastMessage>, to: Id, message: PastMessage) {
        if to == overlay.id() {
            self.local.push_back(message);
        } else if let Some(message) = self.send_along(overlay, to, message) {
            overlay.send(to, message);
        }
    }

    /// The largest replication factor the leaf set supports: l/2 + 1.
    pub(crate) fn max_k(overlay: &dyn Net<PastMessage>) -> u8 {
        u8::try_from(overlay.config().leaf_set_size / 2 + 1).unwrap_or(u8::MAX)
    }

    /// The `k` nodes numerically closest to `key` that this node knows (its leaf set and
    /// itself), closest first.
    pub(crate) fn closest(overlay: &dyn Net<PastMessage>, key: Id, k: usize) -> Vec<Id> {
        let mut ids: Vec<Id> = overlay.state().leaf_set.ids().chain([overlay.id()]).collect();
        ids.sort_by_key(|&id| (key.ring_distance(id), id));
        ids.dedup();
        ids.truncate(k);
        ids
    }

    /// Whether `id` is in this node's leaf set or is this node.
    pub(crate) fn is_near(overlay: &dyn Net<PastMessage>, id: Id) -> bool {
        id == overlay.id() || overlay.state().leaf_set.contains(id)
    }

    /// Evicts cached copies until replicas, cached copies and pending cache fills fit.
    pub(crate) fn make_room(&mut self) {
        while self.used + self.cache.bytes() + self.cache_pending > self.config.capacity {
            let Some((file, _)) = self.cache.evict() else {
                break;
            };
            self.stats.evictions += 1;
            if self.holdings.remove(&file).is_some() {
                self.store(StorageOp::Delete { file }, StorageWait::Other);
            }
        }
    }

    /// Handles every message this node sent itself.
    pub(crate) fn flush_local(&mut self, overlay: &mut dyn Net<PastMessage>) {
        let own = overlay.id();
        let mut budget = 100_000;
        while let Some(message) = self.local.pop_front() {
            self.on_message(overlay, own, message);
            budget -= 1;
            if budget == 0 {
                break;
            }
        }
    }

    /// A direct message (or one this node sent itself).
    pub(crate) fn on_message(&mut self, o: &mut dyn Net<PastMessage>, from: Id, message: PastMessage) {
        if !message.within_bounds() {
            return;
        }
        match message {
            PastMessage::Prepare(p) => self.on_prepare(o, from, *p),
            PastMessage::Prepared { file, nonce, result } => self.on_prepared(o, from, file, nonce, result),
            PastMessage::Ready { file, nonce } => self.on_ready(o, from, file, nonce),
            PastMessage::Progress { file, nonce } => self.on_progress(o, from, file, nonce),
            PastMessage::Failed { file, nonce, node, reason } => self.on_failed(o, from, file, nonce, node, reason),
            PastMessage::Commit { file, nonce, holders } => self.on_commit(o, from, file, nonce, holders),
            PastMessage::Abort { file, nonce } => self.on_abort(o, from, file, nonce),
            PastMessage::InsertFailed { file, nonce, node, reason } => {
                self.on_insert_failed(o, file, nonce, node, reason)
            }
            PastMessage::Receipt { nonce, receipt } => self.on_receipt(o, nonce, *receipt),
            PastMessage::SpaceQuery { file, query } => {
                let reply =
                    PastMessage::SpaceReply { query, free: self.free(), holds: self.holdings.contains_key(&file) };
                self.send(o, from, reply);
            }
            PastMessage::SpaceReply { query, free, holds } => self.on_space_reply(o, from, query, Some((free, holds))),
            PastMessage::HashRequest { transfer, source, piece } => self.serve_hashes(o, from, transfer, source, piece),
            PastMessage::HashReply { transfer, piece, hashes } => self.on_hash_reply(o, from, transfer, piece, hashes),
            PastMessage::ChunkRequest { transfer, source, index } => self.serve_chunk(o, from, transfer, source, index),
            PastMessage::ChunkReply { transfer, index, data } => self.on_chunk(o, from, transfer, index, data),
            PastMessage::TransferFailed { transfer, reason } => self.on_transfer_refused(o, from, transfer, reason),
            PastMessage::Locate { lookup } => self.on_locate(o, from, lookup),
            PastMessage::Located { reader, request, held } => self.on_located(o, from, reader, request, held),
            PastMessage::Found { request, certificate, holder, hops, route, cached, others } => {
                self.on_found(o, from, request, certificate, (holder, others), (hops, route), cached)
            }
            PastMessage::NotFound { request, file } => self.on_not_found(o, request, file),
            PastMessage::CacheOffer { certificate, holder } => self.on_cache_offer(o, from, certificate, holder),
            PastMessage::ReclaimHolder(request) => self.on_reclaim_holder(o, from, *request),
            PastMessage::ReclaimAck { request, holders } => self.on_reclaim_ack(o, request, holders),
            PastMessage::ReclaimReceipt { request, receipt } => self.on_reclaim_receipt(o, request, *receipt),
            PastMessage::ReclaimRejected { request, node, reason } => {
                self.on_reclaim_rejected(o, request, node, reason)
            }
            PastMessage::Replicate { files } => self.on_replicate(o, from, files),
            PastMessage::Holding { files } => self.on_holding(o, from, files),
            PastMessage::Release { file } => self.on_release(o, from, file),
            PastMessage::Released { files } => self.on_released(o, from, files),
            PastMessage::Relay { origin, target, via, inner } => self.on_relay(o, origin, target, via, inner),
            PastMessage::Bounced { target, inner } => self.on_bounced(o, target, &inner),
            // Routed messages sent point to point are not accepted.
            PastMessage::Insert(_) | PastMessage::Lookup(_) | PastMessage::Reclaim(_) => {}
        }
    }

    /// The driver completed a storage request.
    pub fn handle_storage(
        &mut self,
        overlay: &mut dyn Net<PastMessage>,
        id: StorageId,
        result: Result<StorageReply, StorageError>,
    ) {
        let Some(wait) = self.storage_waits.remove(&id.0) else {
            return;
        };
        match wait {
            StorageWait::HashRead { op, index } => self.on_upload_read(overlay, op, index, result),
            StorageWait::Serve { to, transfer, index } => self.on_served(overlay, to, transfer, index, result),
            StorageWait::TransferWrite { transfer } => {
                let outcome = result.map(|_| ()).map_err(|e| match e {
                    StorageError::Full => Refusal::StorageFull,
                    _ => Refusal::Storage,
                });
                self.on_transfer_written(overlay, transfer, outcome);
            }
            StorageWait::Other => {}
        }
        self.flush_local(overlay);
    }

    /// The driver completed a signing request.
    pub fn handle_signature(
        &mut self,
        overlay: &mut dyn Net<PastMessage>,
        id: SignId,
        result: Result<Signature, SignError>,
    ) {
        let Some(wait) = self.sign_waits.remove(&id.0) else {
            return;
        };
        match wait {
            SignWait::Certificate { op, body } => self.on_certificate_signed(overlay, op, body, result),
            SignWait::StoreReceipt { nonce, body } => {
                let file = body.file;
                let receipt =
                    result.ok().map(|signature| StoreReceipt { body, signer: self.config.node_key, signature });
                self.receipt_signed(overlay, file, nonce, receipt);
            }
            SignWait::ReclaimCertificate { op, body } => self.on_reclaim_signed(overlay, op, body, result),
            SignWait::ReclaimReceipt { client, request, body } => {
                if let Ok(signature) = result {
                    let receipt = ReclaimReceipt { body, signer: self.config.node_key, signature };
                    self.send(overlay, client, PastMessage::ReclaimReceipt { request, receipt: Box::new(receipt) });
                }
            }
        }
        self.flush_local(overlay);
    }

    fn fire(&mut self, o: &mut dyn Net<PastMessage>, timer: Timer) {
        match timer {
            Timer::Maintenance => self.maintenance_timer(o),
            Timer::Audit => self.audit_timer(o),
            Timer::Coordination(file, nonce) => self.coordination_timer(o, file, nonce),
            Timer::Pending(file) => self.pending_timer(o, file),
            Timer::Transfer(id) => self.transfer_timer(o, id),
            Timer::Insert(op) => self.insert_timer(o, op),
            Timer::Lookup(op) => self.lookup_timer(o, op),
            Timer::Refetch(file) => self.refetch_timer(o, file),
            Timer::Locate(reader, request) => self.locate_timer(o, reader, request),
            Timer::Reclaim(op) => self.reclaim_timer(o, op),
            Timer::Query(id) => self.query_timer(o, id),
        }
    }
}

impl Application for Past {
    type Message = PastMessage;

    fn deliver(&mut self, overlay: &mut dyn Net<PastMessage>, _key: Id, message: PastMessage, _hops: u8) {
        if message.within_bounds() {
            match message {
                PastMessage::Insert(request) => self.on_insert(overlay, *request),
                PastMessage::Lookup(request) => self.on_lookup_delivered(overlay, request),
                PastMessage::Reclaim(request) => self.on_reclaim(overlay, *request),
                _ => {}
            }
        }
        self.flush_local(overlay);
    }

    fn forward(
        &mut self,
        overlay: &mut dyn Net<PastMessage>,
        _key: Id,
        message: &mut PastMessage,
        _next: Id,
    ) -> Forward {
        let forward = match message {
            PastMessage::Lookup(request) if message_ok(request) => self.on_lookup_passing(overlay, request),
            PastMessage::Insert(request) => {
                note_insert_route(request, overlay.id());
                Forward::Continue
            }
            _ => Forward::Continue,
        };
        self.flush_local(overlay);
        forward
    }

    fn receive(&mut self, overlay: &mut dyn Net<PastMessage>, from: Id, message: PastMessage) {
        self.on_message(overlay, from, message);
        self.flush_local(overlay);
    }

    fn send_failed(&mut self, overlay: &mut dyn Net<PastMessage>, to: Id, message: PastMessage) {
        self.on_send_failed(overlay, to, message);
        self.flush_local(overlay);
    }

    fn leaf_set_changed(&mut self, overlay: &mut dyn Net<PastMessage>) {
        self.on_leaf_set_changed(overlay);
        self.flush_local(overlay);
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.timers.first().map(|&(at, _)| at)
    }

    fn timeout(&mut self, overlay: &mut dyn Net<PastMessage>) {
        let now = overlay.now();
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.fire(overlay, timer);
            self.flush_local(overlay);
        }
    }
}

/// Adds `node` to the route of an insert it passes (at most `MAX_NODES`, once).
fn note_insert_route(request: &mut crate::past::messages::InsertRequest, node: Id) {
    if node != request.client {
        crate::past::messages::add_to_route(&mut request.route, node);
    }
}

fn message_ok(request: &crate::past::messages::LookupRequest) -> bool {
    request.exclude.len() <= crate::past::messages::MAX_NODES
        && request.cache_at.len() <= crate::past::messages::MAX_NODES
}

/// An application hosting [`Past`]: `Past` itself, a wrapper that completes storage and
/// signing requests at once ([`SyncPast`](super::SyncPast)), or a larger application
/// whose messages wrap PAST's (the commands on [`Node`] then see it through
/// [`Narrow`]).
pub trait PastHost: Application<Message: From<PastMessage>> {
    /// The PAST state.
    fn past(&self) -> &Past;
    /// The PAST state, mutably.
    fn past_mut(&mut self) -> &mut Past;
    /// Completes what the host can complete at once; called after every command.
    fn pump(&mut self, overlay: &mut dyn Net<PastMessage>) {
        let _ = overlay;
    }
}

impl PastHost for Past {
    fn past(&self) -> &Past {
        self
    }
    fn past_mut(&mut self) -> &mut Past {
        self
    }
}

/// What to insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsertRequestSpec {
    /// File name.
    pub name: String,
    /// The owner's public key (the driver must be able to sign with it).
    pub owner: PublicKey,
    /// Replication factor, 1..=l/2+1.
    pub k: u8,
    /// The content, staged by the driver.
    pub upload: UploadId,
    /// Its size in bytes.
    pub size: u64,
    /// Creation date for the certificate, milliseconds since the Unix epoch.
    pub created: u64,
}

impl<A: PastHost> Node<A> {
    fn with_past<R>(&mut self, now: Time, f: impl FnOnce(&mut Past, &mut dyn Net<PastMessage>) -> R) -> R {
        let (overlay, app) = self.parts_mut();
        overlay.now = now;
        let mut net = Narrow(overlay);
        let result = f(app.past_mut(), &mut net);
        app.past_mut().flush_local(&mut net);
        app.pump(&mut net);
        self.dispatch();
        result
    }

    /// Inserts a file: hashes the staged content, has the owner sign the certificate, and
    /// stores k replicas. The outcome comes as [`PastEvent::InsertDone`]. Errors found before
    /// anything is sent (k, size, name, quota) are returned at once.
    pub fn insert(&mut self, spec: InsertRequestSpec, now: Time) -> Result<OpId, InsertError> {
        self.with_past(now, |past, overlay| past.insert(overlay, spec))
    }

    /// Inserts with a certificate signed elsewhere, sent as it is (no local checks): tools,
    /// and tests of what other nodes accept.
    pub fn insert_certificate(&mut self, certificate: FileCertificate, upload: UploadId, now: Time) -> OpId {
        self.with_past(now, |past, overlay| past.insert_certificate(overlay, certificate, upload))
    }

    /// Looks a file up and streams its verified content as [`PastEvent::LookupChunk`]s.
    pub fn lookup(&mut self, file: FileId, now: Time) -> OpId {
        self.with_past(now, |past, overlay| past.lookup(overlay, file, true))
    }

    /// Stops a lookup started here: no more chunks are requested, no event follows.
    pub fn cancel_lookup(&mut self, op: OpId, now: Time) {
        self.with_past(now, |past, _| past.cancel_lookup(op.0));
    }

    /// The reader took one chunk of lookup `op` (only with
    /// [`PastConfig::paced_reads`](crate::past::PastConfig::paced_reads)): one more may be
    /// pulled.
    pub fn lookup_consumed(&mut self, op: OpId, now: Time) {
        self.with_past(now, |past, overlay| past.lookup_consumed(overlay, op.0));
    }

    /// Looks up a file's certificate only.
    pub fn lookup_certificate(&mut self, file: FileId, now: Time) -> OpId {
        self.with_past(now, |past, overlay| past.lookup(overlay, file, false))
    }

    /// Reclaims a file's storage, signing the reclaim certificate with `signer` (which must
    /// be the owner for nodes to obey). `issued` is the date, milliseconds since the Unix
    /// epoch.
    pub fn reclaim(&mut self, file: FileId, signer: PublicKey, issued: u64, now: Time) -> OpId {
        self.with_past(now, |past, overlay| past.reclaim(overlay, file, signer, issued))
    }

    /// Sends a reclaim certificate signed elsewhere, as it is.
    pub fn reclaim_certificate(&mut self, certificate: ReclaimCertificate, now: Time) -> OpId {
        self.with_past(now, |past, overlay| past.reclaim_with(overlay, certificate, false))
    }

    /// A storage request completed.
    pub fn handle_storage(&mut self, id: StorageId, result: Result<StorageReply, StorageError>, now: Time) {
        self.with_past(now, |past, overlay| past.handle_storage(overlay, id, result));
    }

    /// A signing request completed.
    pub fn handle_signature(&mut self, id: SignId, result: Result<Signature, SignError>, now: Time) {
        self.with_past(now, |past, overlay| past.handle_signature(overlay, id, result));
    }

    /// The PAST state.
    pub fn past(&self) -> &Past {
        self.app().past()
    }

    /// The next PAST event.
    pub fn poll_past_event(&mut self) -> Option<PastEvent> {
        self.app_mut().past_mut().poll_event()
    }
}
