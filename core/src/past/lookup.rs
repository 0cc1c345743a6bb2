//! Lookup and caching.
//!
//! PAST section 2.2: a lookup is routed towards the fileId, and "the first node
//! encountered along the route that holds a replica (or a cached copy) responds". Here each
//! node the lookup passes checks its holdings in Pastry's forward upcall and, holding the
//! file, stops the lookup and tells the reader where to pull it from ([`PastMessage::Found`],
//! with the certificate). A primary that diverted its replica answers with the diverted
//! holder. The root (the node closest to the fileId), if it does not hold the file, asks
//! the nodes closest to the fileId all at once (`locate`), so a lookup finds a replica even
//! while maintenance has not yet restored the k copies, and an unknown fileId is answered
//! within seconds. The holder that answers names the other replica holders, from which
//! the reader may pull too (`sources`).
//!
//! The reader checks the certificate (signature, fileId), then pulls the content with a
//! window of chunk requests, checking every chunk against the certificate and handing it on
//! in order. A holder that serves a bad chunk, a bad hash list, or nothing at all is
//! excluded and the lookup is routed again; the chunks already verified are kept. A holder
//! pulled from straight that cannot be reached or falls silent is not routed around: the
//! rest comes straight from another holder it named (once per answer), so that no route
//! passes a node that left unnoticed, as the one that failed may have. A lookup
//! nobody answers within `request_timeout` is routed again too, up to `route_attempts`
//! times. Every route after the first is randomized (see
//! [`crate::RoutingState::random_step`]), so a node on the usual path that drops lookups
//! cannot block it.
//!
//! # Caching (PAST section 4.3)
//! A node on the route that has caching on records itself in the lookup; the node that
//! answers offers those nodes the file ([`PastMessage::CacheOffer`]). A node caches a file
//! whose size is at most `cache_fraction` of its unused space, pulling and verifying it
//! like any replica; cached copies live in the space replicas do not use and are evicted
//! with GreedyDual-Size ([`GreedyDualSize`](super::GreedyDualSize)) when replicas need it.
//! A caching node pulls the file once; when the holder does not hold it in its tables, the
//! offer and the pull go along the part of the route between them ([`super::relay`]), so
//! the file passes through the route's nodes, as in PAST, over connections they hold.

use std::sync::Arc;

use crate::id::Id;
use crate::net::Net;
use crate::node::Forward;
use crate::past::certificate::{FileCertificate, MAX_FILE_SIZE};
use crate::past::error::{LookupError, Refusal};
use crate::past::file_id::{FileId, Hash};
use crate::past::messages::{LookupRequest, PastMessage, Source, add_to_route};
use crate::past::node::{Found, OpId, Past, PastEvent, StorageWait, Timer};
use crate::past::replica::{Holding, Pending};
use crate::past::store::{Role, StorageOp};
use crate::past::transfer::Sink;
use crate::time::Time;

/// Most route nodes a lookup collects for caching.
const MAX_CACHE_AT: usize = 8;

/// What a lookup is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The user's: report with events.
    User,
    /// A reclaim needs the certificate.
    Reclaim(u64),
}

/// A lookup started at this node.
#[derive(Debug)]
pub(crate) struct LookupOp {
    file: FileId,
    content: bool,
    request: u64,
    attempts: u8,
    /// Routes sent so far (the next one's attempt number).
    routes: u8,
    /// Routes that went unanswered.
    unanswered: u8,
    tried: Vec<Id>,
    cert: Option<Arc<FileCertificate>>,
    hashes: Vec<Hash>,
    emitted: u32,
    /// Chunks handed out and not yet reported consumed (with `paced_reads`).
    unread: u32,
    transfer: Option<u64>,
    /// Another replica holder the answering holder named, which the content is pulled from
    /// straight if the answering holder fails or falls silent, before the lookup is routed
    /// again: once per answer, and only after a pull straight from its holder (one along
    /// the route goes on along another route).
    spare: Option<Id>,
    hops: u8,
    cached: bool,
    deadline: Time,
    purpose: Purpose,
}

impl Past {
    pub(crate) fn lookup(&mut self, o: &mut dyn Net<PastMessage>, file: FileId, content: bool) -> OpId {
        self.start_lookup(o, file, content, Purpose::User)
    }

    pub(crate) fn start_lookup(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        file: FileId,
        content: bool,
        purpose: Purpose,
    ) -> OpId {
        let id = self.fresh();
        let op = LookupOp {
            file,
            content,
            request: 0,
            attempts: 0,
            routes: 0,
            unanswered: 0,
            tried: Vec::new(),
            cert: None,
            hashes: Vec::new(),
            emitted: 0,
            unread: 0,
            transfer: None,
            spare: None,
            hops: 0,
            cached: false,
            deadline: o.now(),
            purpose,
        };
        self.lookups.insert(id, op);
        self.route_lookup(o, id);
        OpId(id)
    }

    fn route_lookup(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let request = self.fresh();
        let own = o.id();
        let deadline = o.now() + self.config.request_timeout;
        let Some(op) = self.lookups.get_mut(&id) else {
            return;
        };
        op.request = request;
        op.deadline = deadline;
        op.transfer = None;
        let attempt = op.routes;
        op.routes = op.routes.saturating_add(1);
        let lookup = LookupRequest {
            file: op.file,
            reader: own,
            request,
            hops: 0,
            exclude: op.tried.clone(),
            cache_at: Vec::new(),
            route: Vec::new(),
        };
        o.route_attempt(op.file.key(), PastMessage::Lookup(lookup), attempt);
        self.schedule(deadline, Timer::Lookup(id));
    }

    /// Answers a lookup if this node holds the file (a replica, a cached copy or a pointer).
    pub(crate) fn answer(&mut self, o: &mut dyn Net<PastMessage>, request: &LookupRequest) -> bool {
        let own = o.id();
        if request.exclude.contains(&own) {
            return false;
        }
        let Some(h) = self.holdings.get(&request.file).filter(|h| h.pending.is_none()) else {
            return false;
        };
        let (holder, cached) = match h.role {
            Role::Pointer { holder } if !request.exclude.contains(&holder) => (holder, false),
            Role::Pointer { .. } => return false,
            Role::Cached => (own, true),
            Role::Primary | Role::Diverted { .. } => (own, false),
        };
        let certificate = h.cert.clone();
        let others = if cached || holder != own {
            Vec::new()
        } else {
            Past::closest(o, request.file.key(), usize::from(certificate.body.k))
                .into_iter()
                .filter(|id| *id != own && *id != request.reader && !request.exclude.contains(id))
                .collect()
        };
        if cached {
            self.cache.touch(&request.file);
            self.stats.cache_hits += 1;
        } else {
            self.stats.replica_hits += 1;
        }
        if self.relays(&certificate) {
            let peers: Vec<Id> = request.cache_at.iter().copied().chain([request.reader]).collect();
            self.learn_ways_back(o, &request.route, &peers);
        }
        for &node in &request.cache_at {
            self.send(o, node, PastMessage::CacheOffer { certificate: certificate.clone(), holder });
        }
        let found = PastMessage::Found {
            request: request.request,
            certificate,
            holder,
            hops: request.hops,
            route: request.route.clone(),
            cached,
            others,
        };
        self.send(o, request.reader, found);
        true
    }

    /// A lookup passes through this node.
    pub(crate) fn on_lookup_passing(&mut self, o: &mut dyn Net<PastMessage>, request: &mut LookupRequest) -> Forward {
        if self.answer(o, request) {
            return Forward::Stop;
        }
        let own = o.id();
        if self.config.caching
            && own != request.reader
            && request.cache_at.len() < MAX_CACHE_AT
            && !request.cache_at.contains(&own)
        {
            request.cache_at.push(own);
        }
        note_on_route(request, own);
        request.hops = request.hops.saturating_add(1);
        Forward::Continue
    }

    /// A lookup reached the node closest to the fileId.
    pub(crate) fn on_lookup_delivered(&mut self, o: &mut dyn Net<PastMessage>, mut request: LookupRequest) {
        let own = o.id();
        note_on_route(&mut request, own);
        if self.answer(o, &request) {
            return;
        }
        let candidates: Vec<Id> = Past::closest(o, request.file.key(), usize::from(Past::max_k(o)))
            .into_iter()
            .filter(|id| *id != own && !request.exclude.contains(id))
            .collect();
        self.start_locate(o, request, candidates, true);
    }

    fn lookup_by_request(&self, request: u64) -> Option<u64> {
        self.lookups.iter().find_map(|(&id, op)| (op.request == request).then_some(id))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_found(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        request: u64,
        cert: Arc<FileCertificate>,
        (holder, others): (Id, Vec<Id>),
        (hops, route): (u8, Vec<Id>),
        cached: bool,
    ) {
        let Some(id) = self.lookup_by_request(request) else {
            return;
        };
        let valid = self.check_cert(&cert, u8::MAX, MAX_FILE_SIZE).is_ok();
        let Some(op) = self.lookups.get_mut(&id) else {
            return;
        };
        if op.transfer.is_some() {
            return;
        }
        let valid = valid && cert.body.file == op.file;
        let same = op.cert.as_ref().is_none_or(|c| *c == cert);
        if !valid || !same {
            let file = op.file;
            self.emit(PastEvent::BadData { file, holder });
            return self.retry_lookup(o, id, Some(holder));
        }
        op.hops = hops;
        op.cached = cached;
        let first = op.cert.is_none();
        op.cert = Some(cert.clone());
        let (hashes, start, content, purpose) = (op.hashes.clone(), op.emitted, op.content, op.purpose);
        if !content {
            let found = Found { certificate: (*cert).clone(), holder, hops, cached };
            return self.end_lookup(o, id, Ok(found));
        }
        if first && purpose == Purpose::User {
            self.emit(PastEvent::LookupFound { op: OpId(id), certificate: (*cert).clone(), holder, hops, route });
        }
        if self.relays(&cert) {
            self.learn_way_past(o, from, holder);
        }
        let transfer =
            self.start_transfer(o, holder, Source::File(op_file(&cert)), &cert, hashes, start, Sink::Reader(id));
        // A holder that answered along the route is reached without a connection of its
        // own; helpers and a spare would each need one.
        let relayed = self.ways.has(holder);
        let own = o.id();
        let others: Vec<Id> = others.into_iter().filter(|&n| !relayed && n != holder && n != own).collect();
        if let Some(op) = self.lookups.get_mut(&id) {
            op.transfer = Some(transfer);
            // One in this node's tables most likely has a connection open already.
            let untried = others.iter().copied().filter(|n| !op.tried.contains(n));
            op.spare = untried.min_by_key(|&n| !o.state().knows(n));
        }
        let helpers = others.into_iter().take(usize::from(self.config.sources.saturating_sub(1))).collect();
        self.add_sources(o, transfer, helpers);
    }

    pub(crate) fn on_not_found(&mut self, o: &mut dyn Net<PastMessage>, request: u64, file: FileId) {
        let Some(id) = self.lookup_by_request(request) else {
            return;
        };
        let Some(op) = self.lookups.get(&id) else {
            return;
        };
        // A holder answered first and its content is flowing.
        if op.transfer.is_some() {
            return;
        }
        let error = if op.tried.is_empty() {
            LookupError::NotFound { file }
        } else {
            LookupError::AllHoldersFailed { file, tried: op.tried.clone() }
        };
        self.end_lookup(o, id, Err(error));
    }

    /// A verified chunk for the reader.
    pub(crate) fn lookup_chunk(&mut self, id: u64, index: u32, data: Vec<u8>) {
        let Some(op) = self.lookups.get_mut(&id) else {
            return;
        };
        op.emitted = index + 1;
        if op.purpose == Purpose::User {
            if self.config.paced_reads {
                op.unread += 1;
            }
            self.emit(PastEvent::LookupChunk { op: OpId(id), index, data });
        }
    }

    /// The driver's reader took one chunk of lookup `id` (with `paced_reads`): the pull may
    /// request one more.
    pub(crate) fn lookup_consumed(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let Some(op) = self.lookups.get_mut(&id) else {
            return;
        };
        op.unread = op.unread.saturating_sub(1);
        if let Some(transfer) = op.transfer {
            self.pump_transfer(o, transfer);
        }
    }

    /// Chunks of lookup `id` handed out and not yet consumed.
    pub(crate) fn unread(&self, id: u64) -> u32 {
        self.lookups.get(&id).map_or(0, |op| op.unread)
    }

    /// The reader has the whole content.
    pub(crate) fn lookup_received(&mut self, o: &mut dyn Net<PastMessage>, id: u64, holder: Id) {
        let Some(op) = self.lookups.get(&id) else {
            return;
        };
        let Some(certificate) = op.cert.as_deref().cloned() else {
            return;
        };
        let found = Found { certificate, holder, hops: op.hops, cached: op.cached };
        self.end_lookup(o, id, Ok(found));
    }

    /// The holder being read failed or served bad data: exclude it and try again.
    pub(crate) fn lookup_source_failed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        id: u64,
        holder: Id,
        hashes: Vec<Hash>,
        reason: Refusal,
    ) {
        let Some(op) = self.lookups.get_mut(&id) else {
            return;
        };
        if op.hashes.is_empty() {
            op.hashes = hashes;
        }
        if matches!(reason, Refusal::ContentMismatch { .. } | Refusal::BadHashList) {
            // Nodes named by a holder that serves bad data are not trusted to hold the file.
            op.spare = None;
            let file = op.file;
            self.emit(PastEvent::BadData { file, holder });
        }
        self.retry_lookup(o, id, Some(holder));
    }

    /// The way to the holder whose content the reader was getting broke (a node between
    /// them is gone): the lookup is routed again, that holder not excluded, since it did
    /// not fail and the next route goes around the broken node.
    pub(crate) fn lookup_way_broke(&mut self, o: &mut dyn Net<PastMessage>, id: u64, hashes: Vec<Hash>) {
        let Some(op) = self.lookups.get_mut(&id) else {
            return;
        };
        if op.hashes.is_empty() {
            op.hashes = hashes;
        }
        self.retry_lookup(o, id, None);
    }

    /// Goes on with lookup `id` after its holder failed (`failed`, excluded from now on) or
    /// the way to it broke (`None`), unless it used up its attempts: straight from the
    /// spare holder if it has one, else routed again.
    fn retry_lookup(&mut self, o: &mut dyn Net<PastMessage>, id: u64, failed: Option<Id>) {
        let attempts = self.config.lookup_attempts;
        let Some(op) = self.lookups.get_mut(&id) else {
            return;
        };
        op.transfer = None;
        if let Some(holder) = failed
            && !op.tried.contains(&holder)
        {
            op.tried.push(holder);
        }
        op.attempts += 1;
        if op.attempts >= attempts {
            let error = LookupError::AllHoldersFailed { file: op.file, tried: op.tried.clone() };
            return self.end_lookup(o, id, Err(error));
        }
        let spare = op.spare.take().filter(|n| !op.tried.contains(n));
        match (spare, op.cert.clone()) {
            (Some(spare), Some(cert)) => self.pull_from_spare(o, id, spare, &cert),
            _ => {
                if failed.is_none() {
                    self.stats.reads_rerouted += 1;
                }
                self.route_lookup(o, id);
            }
        }
    }

    /// Pulls the rest of lookup `id`'s content straight from `spare`, a replica holder
    /// named by the holder that failed: no route, which might pass a node that left
    /// unnoticed (what a closed tab's peers have not learnt yet), and no wait for an answer.
    fn pull_from_spare(&mut self, o: &mut dyn Net<PastMessage>, id: u64, spare: Id, cert: &FileCertificate) {
        let Some(op) = self.lookups.get(&id) else {
            return;
        };
        let (hashes, start) = (op.hashes.clone(), op.emitted);
        self.stats.reads_from_spare += 1;
        let transfer =
            self.start_transfer(o, spare, Source::File(op_file(cert)), cert, hashes, start, Sink::Reader(id));
        if let Some(op) = self.lookups.get_mut(&id) {
            op.transfer = Some(transfer);
        }
    }

    pub(crate) fn lookup_timer(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let Some(op) = self.lookups.get(&id) else {
            return;
        };
        // While content flows, the transfer's own stall timer watches it.
        if op.transfer.is_some() {
            return;
        }
        if op.deadline > o.now() {
            let deadline = op.deadline;
            self.schedule(deadline, Timer::Lookup(id));
            return;
        }
        if op.unanswered.saturating_add(1) < self.config.route_attempts {
            if let Some(op) = self.lookups.get_mut(&id) {
                op.unanswered += 1;
            }
            return self.route_lookup(o, id);
        }
        let error = LookupError::Timeout { file: op.file };
        self.end_lookup(o, id, Err(error));
    }

    /// Stops a lookup the user no longer wants (a key that does not open the file, a
    /// reader that went away): no more chunks are requested and no event follows.
    pub(crate) fn cancel_lookup(&mut self, id: u64) {
        let Some(op) = self.lookups.remove(&id) else { return };
        if let Some(transfer) = op.transfer {
            self.transfers.remove(&transfer);
        }
    }

    fn end_lookup(&mut self, o: &mut dyn Net<PastMessage>, id: u64, result: Result<Found, LookupError>) {
        let Some(op) = self.lookups.remove(&id) else {
            return;
        };
        match op.purpose {
            Purpose::User => self.emit(PastEvent::LookupDone { op: OpId(id), result }),
            Purpose::Reclaim(reclaim) => self.reclaim_cert_found(o, reclaim, result.map(|f| f.certificate)),
        }
    }

    // ----- caching -----

    /// A holder offers this node, which a lookup passed through, the file to cache.
    pub(crate) fn on_cache_offer(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        cert: Arc<FileCertificate>,
        holder: Id,
    ) {
        let file = cert.body.file;
        if !self.config.caching || self.holdings.contains_key(&file) {
            return;
        }
        let size = cert.body.size;
        let spare = self.config.capacity.saturating_sub(self.used + self.cache_pending);
        if size as f64 > self.config.cache_fraction * spare as f64 {
            return;
        }
        if self.check_cert(&cert, u8::MAX, self.config.max_file_size).is_err() {
            return;
        }
        let now = o.now();
        let pending = Pending {
            nonce: 0,
            coordinator: None,
            client: holder,
            insert: false,
            source_node: holder,
            source: Source::File(file),
            primaries: Vec::new(),
            ready: false,
            deadline: now + self.config.stall_timeout,
            progress_sent: now,
            query: None,
            alternatives: Vec::new(),
            reserved: size,
            other_sources: Vec::new(),
            receipt: None,
        };
        self.cache_pending += size;
        self.make_room();
        let holding = Holding {
            cert: cert.clone(),
            hashes: Vec::new(),
            role: Role::Cached,
            pending: Some(Box::new(pending)),
            holders: Vec::new(),
        };
        self.store(StorageOp::Create { file, record: holding.record() }, StorageWait::Other);
        self.holdings.insert(file, holding);
        self.schedule(now + self.config.stall_timeout, Timer::Pending(file));
        if self.relays(&cert) {
            self.learn_way_past(o, from, holder);
        }
        self.start_transfer(o, holder, Source::File(file), &cert, Vec::new(), 0, Sink::Cache);
    }

    /// A cached copy arrived whole and verified.
    pub(crate) fn cache_received(&mut self, file: FileId, hashes: Vec<Hash>) {
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let Some(p) = h.pending.take() else {
            return;
        };
        if crate::past::certificate::chunk_count(h.cert.body.size) > 1 {
            h.hashes = hashes;
        }
        let record = h.record();
        let size = h.cert.body.size;
        self.cache_pending = self.cache_pending.saturating_sub(p.reserved);
        self.cache.insert(file, size);
        self.stats.cached_files += 1;
        self.store(StorageOp::PutRecord { file, record }, StorageWait::Other);
        self.make_room();
    }

    /// Forgets the cached copy of `file` if it is still arriving (its transfer failed, or a
    /// replica is wanted instead).
    pub(crate) fn forget_arriving_copy(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) {
        let arriving = self.holdings.get(&file).is_some_and(|h| h.role == Role::Cached && h.pending.is_some());
        if arriving {
            self.drop_holding(o, file, false);
        }
    }
}

fn op_file(cert: &FileCertificate) -> FileId {
    cert.body.file
}

/// Adds `node` to the route a lookup went through (not the reader, each node once, at most
/// `MAX_NODES`). A node the lookup excludes (it failed the reader, or passed the lookup on
/// because it could not reach the reader) is left out: an answer going back along the route
/// does not pass it.
fn note_on_route(request: &mut LookupRequest, node: Id) {
    if node != request.reader && !request.exclude.contains(&node) {
        add_to_route(&mut request.route, node);
    }
}
