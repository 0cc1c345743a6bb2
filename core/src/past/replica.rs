//! Replicas: accepting them and replica diversion.
//!
//! # Accepting a replica (PAST section 4.2)
//! A node n asked to store a replica of file f refuses when size(f) / free(n) > t, with
//! t = t_pri when n is one of the k nodes numerically closest to the fileId and t = t_div
//! when another node diverts the replica to it. Large files are turned away from nodes that
//! are getting full, which keeps space for the many small files and lets the ring fill
//! evenly.
//!
//! # Replica diversion
//! A primary that refuses asks some nodes of its leaf set that are not among the k closest
//! how much space they have ([`PastMessage::SpaceQuery`]; `PastConfig::space_query_fanout`
//! of them, drawn at random, and the others too if none of those can take the replica under
//! t_div), and asks the one with the most free space that does not hold f yet to store the
//! replica under t_div. The primary keeps a
//! pointer to it ([`Role::Pointer`]) and answers lookups with it; the diverted replica
//! ([`Role::Diverted`]) names its primary. If the chosen node refuses too, the insert fails
//! and the client diverts the file. The file survives the loss of either: the other replicas
//! are k-1 more copies, a primary whose diverted replica vanished fetches the file again,
//! and a diverted replica whose primary vanished is offered to the new k closest.
//!
//! Replica maintenance, which keeps k replicas as nodes come and go, is in the
//! `maintenance` module.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::{FileCertificate, SignedBody, StoreReceipt, StoreReceiptBody};
use crate::past::error::Refusal;
use crate::past::file_id::{FileId, Hash};
use crate::past::messages::{LookupRequest, PastMessage, Prepare, Source};
use crate::past::node::{Past, SignWait, StorageWait, Timer};
use crate::past::store::{FileRecord, Role, StorageOp};
use crate::past::transfer::Sink;
use crate::time::Time;

/// A file this node holds, in any role, committed or not.
#[derive(Clone, Debug)]
pub(crate) struct Holding {
    pub(crate) cert: Arc<FileCertificate>,
    /// The chunk hash list (empty for a single-chunk file, or until received).
    pub(crate) hashes: Vec<Hash>,
    pub(crate) role: Role,
    /// `None` once committed.
    pub(crate) pending: Option<Box<Pending>>,
    /// Nodes known to hold the file (this node included), for maintenance.
    pub(crate) holders: Vec<Id>,
}

/// A replica being received, or waiting for its diverted replica, or for its commit.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) nonce: u64,
    /// The node to report to; `None` when this node decides alone (maintenance, cache).
    pub(crate) coordinator: Option<Id>,
    /// The client, for the store receipt.
    pub(crate) client: Id,
    /// Whether this replica belongs to an insert.
    pub(crate) insert: bool,
    pub(crate) source_node: Id,
    pub(crate) source: Source,
    pub(crate) primaries: Vec<Id>,
    /// The content arrived and matched (or the diverted replica reported so).
    pub(crate) ready: bool,
    pub(crate) deadline: Time,
    pub(crate) progress_sent: Time,
    /// The space query of a diversion in progress.
    pub(crate) query: Option<u64>,
    /// Further diversion targets, best first, should the chosen one already hold the file.
    pub(crate) alternatives: Vec<Id>,
    /// Bytes reserved: counted in `used` (replicas) or `cache_pending` (cached copies).
    pub(crate) reserved: u64,
    /// Further sources maintenance offered while this replica was being pulled, tried in
    /// turn should the pull fail (at most [`MAX_OTHER_SOURCES`]).
    pub(crate) other_sources: Vec<Id>,
    /// The store receipt, signed while the commit is awaited and sent when it comes.
    pub(crate) receipt: Option<Box<StoreReceipt>>,
}

/// How many further sources a pull remembers.
pub(crate) const MAX_OTHER_SOURCES: usize = 4;

impl Holding {
    pub(crate) fn restored(record: FileRecord) -> Self {
        Holding {
            cert: record.certificate,
            hashes: record.chunk_hashes,
            role: record.role,
            pending: None,
            holders: Vec::new(),
        }
    }

    pub(crate) fn is_committed(&self) -> bool {
        self.pending.is_none()
    }

    pub(crate) fn record(&self) -> FileRecord {
        FileRecord {
            certificate: self.cert.clone(),
            chunk_hashes: self.hashes.clone(),
            role: self.role,
            committed: self.pending.is_none(),
        }
    }
}

/// A diverting primary's search for the leaf with the most free space.
#[derive(Clone, Debug)]
pub(crate) struct SpaceQueryState {
    file: FileId,
    waiting: BTreeSet<Id>,
    replies: Vec<(Id, u64)>,
    deadline: Time,
    /// Candidates not asked yet: asked if none of the first answers can take the replica.
    rest: Vec<Id>,
}

/// `count` of `ids` drawn at random (all of them if there are no more), and the others.
fn sample(o: &mut dyn Net<PastMessage>, mut ids: Vec<Id>, count: usize) -> (BTreeSet<Id>, Vec<Id>) {
    if count >= ids.len() {
        return (ids.into_iter().collect(), Vec::new());
    }
    for i in 0..count {
        let pick = i + (o.random() % (ids.len() - i) as u64) as usize;
        ids.swap(i, pick);
    }
    let rest = ids.split_off(count);
    (ids.into_iter().collect(), rest)
}

/// The node a store receipt names as holding a file this node holds in `role`: this node
/// (`own`) for a replica, the diverted replica's node for a pointer; `None` for a role that
/// gives no receipt.
fn receipt_holder(role: Role, own: Id) -> Option<Id> {
    match role {
        Role::Primary => Some(own),
        Role::Pointer { holder } => Some(holder),
        _ => None,
    }
}

/// Whether a node with `free` bytes accepts `size` more under threshold `t`.
pub(crate) fn accepts(size: u64, free: u64, t: f64) -> bool {
    size <= free && free > 0 && (size as f64) <= t * free as f64
}

impl Past {
    /// Asked to hold a replica (by the root of an insert, by a diverting primary, or by
    /// this node's own maintenance).
    pub(crate) fn on_prepare(&mut self, o: &mut dyn Net<PastMessage>, from: Id, prepare: Prepare) {
        if prepare.coordinator != from {
            return;
        }
        let file = prepare.certificate.body.file;
        let nonce = prepare.nonce;
        if let Some(h) = self.holdings.get(&file) {
            let same = h.pending.as_ref().is_some_and(|p| p.nonce == nonce && p.coordinator == Some(from));
            if !same {
                self.send(o, from, PastMessage::Prepared { file, nonce, result: Err(Refusal::Duplicate) });
            }
            return;
        }
        if let Err(error) = self.check_cert(&prepare.certificate, Past::max_k(o), self.config.max_file_size) {
            let result = Err(Refusal::Certificate(error));
            self.send(o, from, PastMessage::Prepared { file, nonce, result });
            return;
        }
        let owner = prepare.certificate.body.owner;
        let size = prepare.certificate.body.size;
        if prepare.insert && !self.owners.admits(&owner, size) {
            let result = Err(Refusal::OwnerLimit { limit: self.owners.limit() });
            self.send(o, from, PastMessage::Prepared { file, nonce, result });
            return;
        }
        let coordinator = Some(from);
        self.place(o, prepare, coordinator);
    }

    /// Accepts a replica under t_pri (t_div when diverted), or diverts it, or refuses.
    pub(crate) fn place(&mut self, o: &mut dyn Net<PastMessage>, prepare: Prepare, coordinator: Option<Id>) {
        let own = o.id();
        let file = prepare.certificate.body.file;
        let size = prepare.certificate.body.size;
        let nonce = prepare.nonce;
        let t = if prepare.diverted { self.config.t_div } else { self.config.t_pri };
        let now = o.now();
        let client = match prepare.source {
            Source::Upload { .. } => prepare.source_node,
            Source::File(_) => own,
        };
        self.keep_source_way(o, prepare.source_node, &prepare.source_way);
        let mut pending = Pending {
            nonce,
            coordinator,
            client,
            insert: prepare.insert,
            source_node: prepare.source_node,
            source: prepare.source,
            primaries: prepare.primaries.clone(),
            ready: false,
            deadline: now + self.config.request_timeout * 2 + self.config.stall_timeout,
            progress_sent: now,
            query: None,
            alternatives: Vec::new(),
            reserved: 0,
            other_sources: Vec::new(),
            receipt: None,
        };
        if accepts(size, self.free(), t) {
            let role = if prepare.diverted { Role::Diverted { primary: prepare.coordinator } } else { Role::Primary };
            pending.reserved = size;
            self.used += size;
            self.owners.add(&prepare.certificate.body.owner, size);
            self.make_room();
            let holding = Holding {
                cert: prepare.certificate.clone(),
                hashes: Vec::new(),
                role,
                pending: Some(Box::new(pending)),
                holders: Vec::new(),
            };
            let deadline = holding.pending.as_ref().map_or(now, |p| p.deadline);
            self.store(StorageOp::Create { file, record: holding.record() }, StorageWait::Other);
            self.holdings.insert(file, holding);
            self.schedule(deadline, Timer::Pending(file));
            self.start_transfer(
                o,
                prepare.source_node,
                prepare.source,
                &prepare.certificate,
                Vec::new(),
                0,
                Sink::Replica,
            );
            if let Some(c) = coordinator {
                self.send(o, c, PastMessage::Prepared { file, nonce, result: Ok(own) });
                if prepare.insert && !prepare.diverted {
                    self.sign_receipt(o, file, nonce);
                }
            }
            return;
        }
        let leaves: Vec<Id> = o
            .state()
            .leaf_set
            .ids()
            .filter(|id| !prepare.primaries.contains(id) && *id != prepare.coordinator)
            .collect();
        let (candidates, rest) = sample(o, leaves, self.config.space_query_fanout);
        if prepare.diverted || !self.config.replica_diversion || candidates.is_empty() {
            if let Some(c) = coordinator {
                self.send(o, c, PastMessage::Prepared { file, nonce, result: Err(Refusal::NoSpace) });
            }
            return;
        }
        // Replica diversion: find the leaf with the most free space.
        let query = self.fresh();
        pending.query = Some(query);
        let deadline = now + self.config.request_timeout;
        let state = SpaceQueryState { file, waiting: candidates.clone(), replies: Vec::new(), deadline, rest };
        self.queries.insert(query, state);
        self.schedule(deadline, Timer::Query(query));
        let pending_deadline = pending.deadline;
        let holding = Holding {
            cert: prepare.certificate,
            hashes: Vec::new(),
            role: Role::Pointer { holder: own },
            pending: Some(Box::new(pending)),
            holders: Vec::new(),
        };
        self.holdings.insert(file, holding);
        self.schedule(pending_deadline, Timer::Pending(file));
        self.stats.space_queries += candidates.len() as u64;
        for candidate in candidates {
            self.send(o, candidate, PastMessage::SpaceQuery { file, query });
        }
    }

    pub(crate) fn on_space_reply(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        query: u64,
        reply: Option<(u64, bool)>,
    ) {
        let Some(q) = self.queries.get_mut(&query) else {
            return;
        };
        if !q.waiting.remove(&from) {
            return;
        }
        if let Some((free, false)) = reply {
            q.replies.push((from, free));
        }
        if q.waiting.is_empty() && !self.ask_the_rest(o, query) {
            self.conclude_query(o, query);
        }
    }

    /// All those asked answered and none can take the replica under t_div: asks the
    /// candidates not asked yet, if any (returns whether it did).
    fn ask_the_rest(&mut self, o: &mut dyn Net<PastMessage>, query: u64) -> bool {
        let Some(q) = self.queries.get(&query).filter(|q| !q.rest.is_empty()) else {
            return false;
        };
        let (file, most) = (q.file, q.replies.iter().map(|&(_, free)| free).max());
        let size = self.holdings.get(&file).map_or(u64::MAX, |h| h.cert.body.size);
        if most.is_some_and(|free| accepts(size, free, self.config.t_div)) {
            return false;
        }
        let deadline = o.now() + self.config.request_timeout;
        let Some(q) = self.queries.get_mut(&query) else {
            return false;
        };
        let rest = core::mem::take(&mut q.rest);
        q.waiting = rest.iter().copied().collect();
        q.deadline = deadline;
        self.schedule(deadline, Timer::Query(query));
        self.stats.space_queries += rest.len() as u64;
        for candidate in rest {
            self.send(o, candidate, PastMessage::SpaceQuery { file, query });
        }
        true
    }

    pub(crate) fn query_timer(&mut self, o: &mut dyn Net<PastMessage>, query: u64) {
        if self.queries.get(&query).is_some_and(|q| q.deadline <= o.now()) {
            self.conclude_query(o, query);
        }
    }

    /// The space query is over: divert to the leaf with the most free space, or refuse.
    fn conclude_query(&mut self, o: &mut dyn Net<PastMessage>, query: u64) {
        let Some(q) = self.queries.remove(&query) else {
            return;
        };
        let file = q.file;
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let Some(p) = h.pending.as_mut().filter(|p| p.query == Some(query)) else {
            return;
        };
        p.query = None;
        let size = h.cert.body.size;
        let mut ranked: Vec<(u64, Id)> =
            q.replies.iter().filter(|(_, free)| *free >= size && *free > 0).map(|&(id, free)| (free, id)).collect();
        ranked.sort_by_key(|&(free, id)| (core::cmp::Reverse(free), id));
        p.alternatives = ranked.iter().skip(1).map(|&(_, id)| id).collect();
        let Some(&(_, target)) = ranked.first() else {
            return self.refuse_pending(o, file, Refusal::NoSpace);
        };
        self.divert_to(o, file, target);
    }

    /// Asks `target` to hold the diverted replica of a pending file.
    fn divert_to(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, target: Id) {
        let own = o.id();
        let Some(source_node) = self.holdings.get(&file).and_then(|h| h.pending.as_ref()).map(|p| p.source_node) else {
            return;
        };
        let source_way = self.way_through(o, target, source_node);
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let Some(p) = h.pending.as_ref() else {
            return;
        };
        h.role = Role::Pointer { holder: target };
        let prepare = Prepare {
            certificate: h.cert.clone(),
            source_node: p.source_node,
            source: p.source,
            coordinator: own,
            nonce: p.nonce,
            primaries: p.primaries.clone(),
            diverted: true,
            insert: p.insert,
            source_way,
        };
        self.stats.replicas_diverted += 1;
        self.send(o, target, PastMessage::Prepare(Box::new(prepare)));
    }

    /// A pending replica cannot be held: tell the coordinator and forget it.
    fn refuse_pending(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, reason: Refusal) {
        let Some(p) = self.holdings.get(&file).and_then(|h| h.pending.clone()) else {
            return;
        };
        if let Some(c) = p.coordinator {
            self.send(o, c, PastMessage::Prepared { file, nonce: p.nonce, result: Err(reason) });
        }
        self.drop_holding(o, file, true);
    }

    /// The pending pointer whose diverted replica `from` should hold, if `nonce` matches.
    fn diverted_pending(&self, from: Id, file: FileId, nonce: u64) -> bool {
        self.holdings.get(&file).is_some_and(|h| {
            h.role == Role::Pointer { holder: from }
                && h.pending.as_ref().is_some_and(|p| p.nonce == nonce && p.query.is_none())
        })
    }

    /// The node a primary diverted to answered its prepare.
    pub(crate) fn on_diversion_prepared(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        file: FileId,
        nonce: u64,
        result: Result<Id, Refusal>,
    ) {
        if !self.diverted_pending(from, file, nonce) {
            return;
        }
        match result {
            Ok(_) => {
                let pending = self.holdings.get(&file).and_then(|h| h.pending.as_ref());
                if let Some((c, insert)) = pending.and_then(|p| Some((p.coordinator?, p.insert))) {
                    self.send(o, c, PastMessage::Prepared { file, nonce, result: Ok(from) });
                    if insert {
                        self.sign_receipt(o, file, nonce);
                    }
                }
            }
            // The target already holds the file (another primary diverted there a moment
            // ago) or is gone: the next best leaf.
            Err(Refusal::Duplicate | Refusal::Unreachable { .. }) => {
                let next = self
                    .holdings
                    .get_mut(&file)
                    .and_then(|h| h.pending.as_mut())
                    .and_then(|p| if p.alternatives.is_empty() { None } else { Some(p.alternatives.remove(0)) });
                match next {
                    Some(target) => self.divert_to(o, file, target),
                    None => self.refuse_pending(o, file, Refusal::NoSpace),
                }
            }
            // The diversion target refuses too: the insert fails (the client may divert the file).
            Err(_) => self.refuse_pending(o, file, Refusal::NoSpace),
        }
    }

    /// The diverted replica has its content.
    pub(crate) fn on_diverted_ready(&mut self, o: &mut dyn Net<PastMessage>, from: Id, file: FileId, nonce: u64) {
        if !self.diverted_pending(from, file, nonce) {
            return;
        }
        self.pending_ready(o, file, 0);
    }

    pub(crate) fn on_diverted_failed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        file: FileId,
        nonce: u64,
        node: Id,
        reason: Refusal,
    ) {
        if !self.diverted_pending(from, file, nonce) {
            return;
        }
        let coordinator = self.holdings.get(&file).and_then(|h| h.pending.as_ref()).and_then(|p| p.coordinator);
        if let Some(c) = coordinator {
            self.send(o, c, PastMessage::Failed { file, nonce, node, reason });
        }
        self.drop_holding(o, file, false);
    }

    /// Progress of a pending replica, from its diverted replica or from the coordinator.
    pub(crate) fn pending_progress(&mut self, o: &mut dyn Net<PastMessage>, from: Id, file: FileId, nonce: u64) {
        let now = o.now();
        let (stall, commit) = (self.config.stall_timeout, self.config.commit_timeout);
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let role = h.role;
        let Some(p) = h.pending.as_mut().filter(|p| p.nonce == nonce) else {
            return;
        };
        if p.coordinator == Some(from) {
            // The coordinator is alive and waiting for others: keep waiting for the commit.
            p.deadline = p.deadline.max(now + if p.ready { commit } else { stall });
            if let Role::Pointer { holder } = role {
                self.send(o, holder, PastMessage::Progress { file, nonce });
            }
        } else if role == (Role::Pointer { holder: from }) {
            p.deadline = p.deadline.max(now + stall);
            self.replica_progress(o, file);
        }
    }

    /// Chunks of a pending replica (or cached copy) arrived: it is not stalled.
    pub(crate) fn replica_progress(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) {
        let now = o.now();
        let stall = self.config.stall_timeout;
        let Some(p) = self.holdings.get_mut(&file).and_then(|h| h.pending.as_mut()) else {
            return;
        };
        p.deadline = p.deadline.max(now + stall);
        if now.since(p.progress_sent) >= stall / 3 {
            p.progress_sent = now;
            if let Some(c) = p.coordinator {
                let nonce = p.nonce;
                self.send(o, c, PastMessage::Progress { file, nonce });
            }
        }
    }

    /// The whole content of a replica arrived and matched its certificate.
    pub(crate) fn replica_received(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        file: FileId,
        hashes: Vec<Hash>,
        bytes: u64,
    ) {
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        if crate::past::certificate::chunk_count(h.cert.body.size) > 1 {
            h.hashes = hashes;
        }
        self.refetch_done(&file);
        self.pending_ready(o, file, bytes);
    }

    /// A pending replica (or pointer) is ready: report to the coordinator, or commit when
    /// this node decides alone.
    fn pending_ready(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, bytes: u64) {
        let now = o.now();
        let commit = self.config.commit_timeout;
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let Some(p) = h.pending.as_mut() else {
            return;
        };
        p.ready = true;
        p.deadline = now + commit;
        let (coordinator, nonce, insert) = (p.coordinator, p.nonce, p.insert);
        if !insert {
            self.stats.maintenance_bytes += bytes;
        }
        match coordinator {
            Some(c) => self.send(o, c, PastMessage::Ready { file, nonce }),
            None => self.commit_alone(o, file),
        }
    }

    /// Asks for the store receipt of an accepted replica (or of a pointer whose diverted
    /// replica was accepted) of an insert, so that it is signed while the content comes and
    /// the commit is awaited, not after the commit. The receipt leaves only with the commit.
    pub(crate) fn sign_receipt(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, nonce: u64) {
        let Some(h) = self.holdings.get(&file) else {
            return;
        };
        let Some(holder) = receipt_holder(h.role, o.id()) else {
            return;
        };
        let body = StoreReceiptBody { file, certificate: h.cert.digest(), node: o.id(), holder };
        let message = body.signing_bytes();
        self.sign(self.config.node_key, message, SignWait::StoreReceipt { nonce, body });
    }

    /// Whether the store receipt of `file` for the insert `nonce` is being signed.
    pub(crate) fn signing_receipt(&self, file: FileId, nonce: u64) -> bool {
        self.sign_waits
            .values()
            .any(|w| matches!(w, SignWait::StoreReceipt { nonce: n, body } if *n == nonce && body.file == file))
    }

    /// A store receipt is signed: kept until the commit, or sent if the commit came first;
    /// dropped if the insert was aborted or the receipt names another holder by now.
    pub(crate) fn receipt_signed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        file: FileId,
        nonce: u64,
        receipt: Option<StoreReceipt>,
    ) {
        let holder = self.holdings.get(&file).and_then(|h| receipt_holder(h.role, o.id()));
        let receipt = receipt.filter(|r| Some(r.body.holder) == holder);
        if let Some(p) = self.holdings.get_mut(&file).and_then(|h| h.pending.as_mut()).filter(|p| p.nonce == nonce) {
            p.receipt = receipt.map(Box::new);
            return;
        }
        let client = self.receipts_owed.remove(&(file, nonce));
        if let (Some(client), Some(receipt)) = (client, receipt) {
            self.send(o, client, PastMessage::Receipt { nonce, receipt: Box::new(receipt) });
        }
    }

    /// Commits a replica fetched by maintenance, and tells the k closest and the nodes known
    /// to hold it (its source and those that offered it).
    fn commit_alone(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) {
        let own = o.id();
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let Some(p) = h.pending.take() else {
            return;
        };
        let k = usize::from(h.cert.body.k);
        for node in [own, p.source_node] {
            if !h.holders.contains(&node) {
                h.holders.push(node);
            }
        }
        let holders = h.holders.clone();
        let record = h.record();
        let role = h.role;
        self.stats.maintenance_files += 1;
        self.store(StorageOp::PutRecord { file, record }, StorageWait::Other);
        if let Role::Pointer { holder } = role {
            self.send(o, holder, PastMessage::Commit { file, nonce: p.nonce, holders: vec![own] });
        }
        let tell: Vec<Id> = Past::closest(o, file.key(), k).into_iter().chain(holders).collect();
        let tell: BTreeSet<Id> = tell.into_iter().filter(|&id| id != own).collect();
        for node in tell {
            self.send(o, node, PastMessage::Holding { files: vec![file] });
        }
    }

    /// A pending replica's transfer failed.
    pub(crate) fn replica_failed(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, reason: Refusal) {
        let own = o.id();
        let Some(h) = self.holdings.get(&file) else {
            return;
        };
        let Some(p) = h.pending.clone() else {
            return;
        };
        let cert = h.cert.clone();
        if let Some(c) = p.coordinator {
            self.send(o, c, PastMessage::Failed { file, nonce: p.nonce, node: own, reason });
        }
        self.drop_holding(o, file, true);
        if p.coordinator.is_none() && !p.insert {
            self.pull_elsewhere(o, cert, p.source_node, p.other_sources);
        }
    }

    /// A maintenance pull from `failed` failed: pulls from the next source offered
    /// meanwhile, or tries `failed` again later when none was.
    fn pull_elsewhere(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        cert: Arc<FileCertificate>,
        failed: Id,
        others: Vec<Id>,
    ) {
        let file = cert.body.file;
        let mut others = others.into_iter().filter(|&s| s != failed);
        let Some(next) = others.next() else {
            self.refetch_later(o, cert, failed);
            return;
        };
        self.fetch_replica(o, cert, next);
        if let Some(p) = self.holdings.get_mut(&file).and_then(|h| h.pending.as_mut()) {
            p.other_sources = others.collect();
        }
    }

    /// A pending holding's deadline: one that made no progress in time fails like its
    /// transfer would (a maintenance pull goes on elsewhere); one ready but never committed is
    /// dropped.
    pub(crate) fn pending_timer(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) {
        let Some(p) = self.holdings.get(&file).and_then(|h| h.pending.clone()) else {
            return;
        };
        if p.deadline > o.now() {
            self.schedule(p.deadline, Timer::Pending(file));
            return;
        }
        let cached = self.holdings.get(&file).is_some_and(|h| h.role == Role::Cached);
        if cached {
            self.forget_arriving_copy(o, file);
        } else if !p.ready {
            self.replica_failed(o, file, Refusal::Stalled);
        } else {
            self.drop_holding(o, file, true);
        }
    }

    /// Forgets a file held here, freeing its space; with `tell`, a pending pointer's diverted
    /// replica is aborted too.
    pub(crate) fn drop_holding(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, tell: bool) {
        let Some(h) = self.holdings.remove(&file) else {
            return;
        };
        self.cancel_transfers(file);
        let size = h.cert.body.size;
        let owner = h.cert.body.owner;
        match (&h.pending, h.role) {
            (Some(p), Role::Cached) => self.cache_pending = self.cache_pending.saturating_sub(p.reserved),
            (Some(p), Role::Primary | Role::Diverted { .. }) => {
                self.used = self.used.saturating_sub(p.reserved);
                self.owners.release(&owner, p.reserved);
            }
            (None, Role::Cached) => {
                self.cache.remove(&file);
            }
            (None, Role::Primary | Role::Diverted { .. }) => {
                self.used = self.used.saturating_sub(size);
                self.owners.release(&owner, size);
            }
            (_, Role::Pointer { .. }) => {}
        }
        if let (Some(p), Role::Pointer { holder }, true) = (&h.pending, h.role, tell)
            && holder != o.id()
        {
            let nonce = p.nonce;
            self.send(o, holder, PastMessage::Abort { file, nonce });
        }
        let created = h.pending.as_ref().is_none_or(|p| p.query.is_none());
        if created {
            self.store(StorageOp::Delete { file }, StorageWait::Other);
        }
    }

    /// A message could not be sent.
    pub(crate) fn on_send_failed(&mut self, o: &mut dyn Net<PastMessage>, to: Id, message: PastMessage) {
        match message {
            PastMessage::Prepare(p) => {
                let file = p.certificate.body.file;
                if self.coordinations.contains_key(&(file, p.nonce)) {
                    self.abort_insert(o, file, p.nonce, to, Refusal::Unreachable { node: to });
                } else if p.diverted {
                    self.on_diversion_prepared(o, to, file, p.nonce, Err(Refusal::Unreachable { node: to }));
                }
            }
            request @ (PastMessage::ChunkRequest { transfer, .. } | PastMessage::HashRequest { transfer, .. }) => {
                self.request_unsent(o, to, transfer, request)
            }
            told @ (PastMessage::Receipt { .. } | PastMessage::InsertFailed { .. }) => {
                // With no way either it is lost, and the client's insert times out.
                let _ = self.send_along_instead(o, to, told);
            }
            PastMessage::Locate { lookup } => self.on_located(o, to, lookup.reader, lookup.request, false),
            PastMessage::Prepared { file, nonce, .. }
            | PastMessage::Ready { file, nonce }
            | PastMessage::Failed { file, nonce, .. } => {
                let ours = self
                    .holdings
                    .get(&file)
                    .and_then(|h| h.pending.as_ref())
                    .is_some_and(|p| p.nonce == nonce && p.coordinator == Some(to));
                if ours {
                    self.drop_holding(o, file, true);
                }
            }
            PastMessage::ReclaimHolder(request) => {
                let reason = Refusal::Unreachable { node: to };
                let message = PastMessage::ReclaimRejected { request: request.request, node: to, reason };
                self.send(o, request.client, message);
            }
            PastMessage::SpaceQuery { query, .. } => self.on_space_reply(o, to, query, None),
            PastMessage::Relay { origin, target, via, inner } => self.relay_failed(o, (origin, target), &via, inner),
            found @ PastMessage::Found { .. } => {
                if let Some(found) = self.answer_along_route_instead(o, to, found) {
                    self.answer_unreachable(o, to, found);
                }
            }
            _ => {}
        }
    }

    /// This node's answer `found` cannot reach `reader`, straight nor along the route: it
    /// hands the lookup on to the other replica holders or, answering from a cached copy,
    /// passes it on along its route. (An answer naming a diverted holder is left to the
    /// reader's request timeout.)
    pub(crate) fn answer_unreachable(&mut self, o: &mut dyn Net<PastMessage>, reader: Id, found: PastMessage) {
        let PastMessage::Found { request, certificate, holder, hops, route, cached, others } = found else {
            return;
        };
        if holder != o.id() {
            return;
        }
        let (k, file) = (certificate.body.k, certificate.body.file);
        // Whoever answers next must not send its answer back through this node, which cannot
        // reach the reader.
        let own = o.id();
        let route = route.into_iter().filter(|&n| n != own).collect();
        let lookup = LookupRequest { file, reader, request, hops, exclude: Vec::new(), cache_at: Vec::new(), route };
        if cached {
            self.pass_on_lookup(o, lookup);
        } else {
            self.hand_on_lookup(o, lookup, others, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::accepts;

    #[test]
    fn thresholds() {
        assert!(accepts(10, 100, 0.1));
        assert!(!accepts(11, 100, 0.1));
        assert!(!accepts(1, 0, 1.0));
        assert!(accepts(100, 100, 1.0));
        assert!(!accepts(6, 100, 0.05));
    }
}
