//! Reclaim: the owner takes back the storage of a file.
//!
//! PAST section 2.2: the owner issues a reclaim certificate; "the reclaim certificate is
//! routed to the fileId, and each of the nodes storing a replica verifies that the
//! certificate is signed by the owner, frees the storage and returns a reclaim receipt",
//! which the client uses to credit the owner's quota. Reclaim is weaker than delete: cached
//! copies elsewhere may still answer lookups until they are evicted.
//!
//! A reclaim the root does not acknowledge within `request_timeout` is routed again, up to
//! `route_attempts` times, each retry on a randomized route (see
//! [`crate::RoutingState::random_step`]); the request keeps its number, so receipts for an
//! earlier route still count.
//!
//! The reclaim certificate names the digest of the file certificate of the insert it
//! revokes, and nodes remember the digests of the reclaim certificates they obeyed, so a
//! replayed certificate is rejected ([`Refusal::Replayed`]) both while the file is gone and
//! after the owner inserts the same fileId again.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::{
    FileCertificate, ReclaimCertificate, ReclaimCertificateBody, ReclaimReceipt, ReclaimReceiptBody, Signed,
    SignedBody, check_node_signed,
};
use crate::past::crypto::{PublicKey, SignError, Signature};
use crate::past::error::{LookupError, ReclaimError, Refusal};
use crate::past::file_id::{FileId, Hash};
use crate::past::lookup::Purpose;
use crate::past::messages::{PastMessage, ReclaimRequest};
use crate::past::node::{OpId, Past, PastEvent, Reclaimed, SignWait, Timer};
use crate::past::store::Role;
use crate::time::Time;

/// A reclaim started at this node.
#[derive(Debug)]
pub(crate) struct ReclaimOp {
    file: FileId,
    signer: PublicKey,
    issued: u64,
    /// A reclaim that undoes a partial insert: no events, no quota credit.
    silent: bool,
    size: u64,
    k: u8,
    certificate: Option<ReclaimCertificate>,
    digest: Hash,
    request: u64,
    expected: Option<u8>,
    receipts: BTreeMap<Id, ReclaimReceipt>,
    rejections: Vec<(Id, Refusal)>,
    deadline: Time,
    /// Waiting for the lookup of the file certificate (which has its own timeouts).
    finding: bool,
    /// Routes sent so far, and when the last one was.
    routes: u8,
    routed_at: Time,
}

impl ReclaimOp {
    /// When to route the reclaim again if the root has not acknowledged it by then.
    fn retry_at(&self, timeout: core::time::Duration, attempts: u8) -> Option<Time> {
        let waiting = self.certificate.is_some() && self.expected.is_none() && self.routes < attempts;
        waiting.then(|| self.routed_at + timeout)
    }
}

impl Past {
    pub(crate) fn reclaim(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        file: FileId,
        signer: PublicKey,
        issued: u64,
    ) -> OpId {
        let id = self.new_reclaim(o, file, signer, issued, false);
        match self.owned.get(&file).cloned() {
            Some(cert) => self.sign_reclaim(o, id, &cert),
            None => {
                if let Some(op) = self.reclaims.get_mut(&id) {
                    op.finding = true;
                }
                self.start_lookup(o, file, false, Purpose::Reclaim(id));
            }
        }
        OpId(id)
    }

    /// Reclaims a partially inserted file (some receipts came, not all).
    pub(crate) fn compensate(&mut self, o: &mut dyn Net<PastMessage>, cert: Arc<FileCertificate>, issued: u64) {
        let id = self.new_reclaim(o, cert.body.file, cert.body.owner, issued, true);
        self.sign_reclaim(o, id, &cert);
    }

    fn new_reclaim(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        file: FileId,
        signer: PublicKey,
        issued: u64,
        silent: bool,
    ) -> u64 {
        let id = self.fresh();
        let deadline = o.now() + self.config.request_timeout * 3;
        let op = ReclaimOp {
            file,
            signer,
            issued,
            silent,
            size: 0,
            k: 0,
            certificate: None,
            digest: [0; 20],
            request: 0,
            expected: None,
            receipts: BTreeMap::new(),
            rejections: Vec::new(),
            deadline,
            finding: false,
            routes: 0,
            routed_at: o.now(),
        };
        self.reclaims.insert(id, op);
        self.schedule(deadline, Timer::Reclaim(id));
        id
    }

    /// The certificate lookup of a reclaim ended.
    pub(crate) fn reclaim_cert_found(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        id: u64,
        result: Result<FileCertificate, LookupError>,
    ) {
        let deadline = o.now() + self.config.request_timeout * 3;
        if let Some(op) = self.reclaims.get_mut(&id) {
            op.finding = false;
            op.deadline = deadline;
            self.schedule(deadline, Timer::Reclaim(id));
        }
        match result {
            Ok(cert) => self.sign_reclaim(o, id, &cert),
            Err(LookupError::NotFound { file }) => self.end_reclaim(o, id, Err(ReclaimError::NotFound { file })),
            Err(error) => self.end_reclaim(o, id, Err(ReclaimError::Lookup(error))),
        }
    }

    fn sign_reclaim(&mut self, o: &mut dyn Net<PastMessage>, id: u64, cert: &FileCertificate) {
        let nonce = Past::nonce(o);
        let Some(op) = self.reclaims.get_mut(&id) else {
            return;
        };
        op.size = cert.body.size;
        op.k = cert.body.k;
        let body = ReclaimCertificateBody { file: op.file, certificate: cert.digest(), nonce, issued: op.issued };
        let message = body.signing_bytes();
        let signer = op.signer;
        self.sign(signer, message, SignWait::ReclaimCertificate { op: id, body });
    }

    pub(crate) fn on_reclaim_signed(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        id: u64,
        body: ReclaimCertificateBody,
        result: Result<Signature, SignError>,
    ) {
        let signature = match result {
            Ok(signature) => signature,
            Err(error) => return self.end_reclaim(o, id, Err(ReclaimError::Signing(error))),
        };
        let Some(op) = self.reclaims.get(&id) else {
            return;
        };
        let certificate = Signed { body, signer: op.signer, signature };
        self.send_reclaim(o, id, certificate);
    }

    /// Sends a reclaim certificate signed elsewhere.
    pub(crate) fn reclaim_with(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        certificate: ReclaimCertificate,
        silent: bool,
    ) -> OpId {
        let id = self.new_reclaim(o, certificate.body.file, certificate.signer, certificate.body.issued, silent);
        if let Some(cert) = self.owned.get(&certificate.body.file) {
            let (size, k) = (cert.body.size, cert.body.k);
            if let Some(op) = self.reclaims.get_mut(&id) {
                op.size = size;
                op.k = k;
            }
        }
        self.send_reclaim(o, id, certificate);
        OpId(id)
    }

    fn send_reclaim(&mut self, o: &mut dyn Net<PastMessage>, id: u64, certificate: ReclaimCertificate) {
        let request = self.fresh();
        let Some(op) = self.reclaims.get_mut(&id) else {
            return;
        };
        op.request = request;
        op.digest = certificate.digest();
        op.certificate = Some(certificate);
        self.route_reclaim(o, id);
    }

    /// Routes the reclaim certificate to the fileId (again, on a randomized route, when an
    /// earlier route went unanswered).
    fn route_reclaim(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let (own, now, timeout) = (o.id(), o.now(), self.config.request_timeout);
        let Some(op) = self.reclaims.get_mut(&id) else {
            return;
        };
        let Some(certificate) = op.certificate.clone() else {
            return;
        };
        let attempt = op.routes;
        op.routes = op.routes.saturating_add(1);
        op.routed_at = now;
        op.deadline = op.deadline.max(now + timeout * 2);
        let request = ReclaimRequest { certificate, client: own, request: op.request };
        o.route_attempt(op.file.key(), PastMessage::Reclaim(Box::new(request)), attempt);
        self.schedule(now + timeout, Timer::Reclaim(id));
    }

    /// The reclaim reached the root: ask every node that may hold the file. Besides the k
    /// closest, the next k: nodes that joined near the fileId push earlier holders out of
    /// the k closest, and those keep their replica until the newcomers hold it.
    pub(crate) fn on_reclaim(&mut self, o: &mut dyn Net<PastMessage>, request: ReclaimRequest) {
        let file = request.certificate.body.file;
        let k = self.holdings.get(&file).map_or(Past::max_k(o), |h| h.cert.body.k);
        let targets = Past::closest(o, file.key(), 2 * usize::from(k));
        let holders = u8::try_from(targets.len()).unwrap_or(u8::MAX);
        self.send(o, request.client, PastMessage::ReclaimAck { request: request.request, holders });
        for target in targets {
            self.send(o, target, PastMessage::ReclaimHolder(Box::new(request.clone())));
        }
    }

    /// A node asked to free a file.
    pub(crate) fn on_reclaim_holder(&mut self, o: &mut dyn Net<PastMessage>, from: Id, request: ReclaimRequest) {
        let own = o.id();
        let ReclaimRequest { certificate, client, request } = request;
        let file = certificate.body.file;
        let digest = certificate.digest();
        let reject = |past: &mut Past, o: &mut dyn Net<PastMessage>, reason: Refusal| {
            past.send(o, client, PastMessage::ReclaimRejected { request, node: own, reason });
        };
        if self.tombstones.contains(&digest) {
            return reject(self, o, Refusal::Replayed);
        }
        let Some(h) = self.holdings.get(&file) else {
            return reject(self, o, Refusal::NotFound);
        };
        if certificate.signer != h.cert.body.owner {
            return reject(self, o, Refusal::NotOwner);
        }
        if !certificate.verify() {
            return reject(self, o, Refusal::BadSignature);
        }
        if certificate.body.certificate != h.cert.digest() {
            return reject(self, o, Refusal::Replayed);
        }
        let (role, pending) = (h.role, h.pending.is_some());
        let size = h.cert.body.size;
        self.tombstones.push_back(digest);
        if self.tombstones.len() > crate::past::node::TOMBSTONES {
            self.tombstones.pop_front();
        }
        if let Role::Pointer { holder } = role {
            self.send(o, holder, PastMessage::Release { file });
        }
        self.drop_holding(o, file, false);
        let _ = from;
        // A copy still arriving (a replica being pulled) is stopped: it never completes
        // into a replica of a reclaimed file. It freed nothing, so no receipt.
        if role == Role::Cached || pending {
            return reject(self, o, Refusal::NotFound);
        }
        let body = ReclaimReceiptBody { file, reclaim: digest, node: own, freed: size };
        let message = body.signing_bytes();
        self.sign(self.config.node_key, message, SignWait::ReclaimReceipt { client, request, body });
    }

    fn reclaim_by_request(&self, request: u64) -> Option<u64> {
        self.reclaims.iter().find_map(|(&id, op)| (op.request == request && op.certificate.is_some()).then_some(id))
    }

    pub(crate) fn on_reclaim_ack(&mut self, o: &mut dyn Net<PastMessage>, request: u64, holders: u8) {
        if let Some(id) = self.reclaim_by_request(request) {
            if let Some(op) = self.reclaims.get_mut(&id) {
                op.expected = Some(holders);
            }
            self.check_reclaim(o, id);
        }
    }

    pub(crate) fn on_reclaim_receipt(&mut self, o: &mut dyn Net<PastMessage>, request: u64, receipt: ReclaimReceipt) {
        let Some(id) = self.reclaim_by_request(request) else {
            return;
        };
        let Some(op) = self.reclaims.get_mut(&id) else {
            return;
        };
        let node = receipt.body.node;
        if receipt.body.reclaim != op.digest || receipt.body.file != op.file || !check_node_signed(&receipt, node) {
            return;
        }
        if op.receipts.contains_key(&node) {
            return;
        }
        let credit = if op.size > 0 { op.size } else { receipt.body.freed };
        let within_k = op.k == 0 || op.receipts.len() < usize::from(op.k);
        let (silent, signer) = (op.silent, op.signer);
        op.receipts.insert(node, receipt);
        if !silent && within_k {
            self.quotas.credit(&signer, credit);
        }
        self.check_reclaim(o, id);
    }

    pub(crate) fn on_reclaim_rejected(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        request: u64,
        node: Id,
        reason: Refusal,
    ) {
        let Some(id) = self.reclaim_by_request(request) else {
            return;
        };
        if let Some(op) = self.reclaims.get_mut(&id)
            && !op.rejections.iter().any(|(n, _)| *n == node)
        {
            op.rejections.push((node, reason));
        }
        self.check_reclaim(o, id);
    }

    fn check_reclaim(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let Some(op) = self.reclaims.get(&id) else {
            return;
        };
        let answered = op.receipts.len() + op.rejections.len();
        if op.expected.is_some_and(|n| answered >= usize::from(n)) {
            let result = self.reclaim_result(id);
            self.end_reclaim(o, id, result);
        }
    }

    fn reclaim_result(&self, id: u64) -> Result<Reclaimed, ReclaimError> {
        let Some(op) = self.reclaims.get(&id) else {
            return Err(ReclaimError::NotFound { file: FileId([0; 20]) });
        };
        if let (false, Some(certificate)) = (op.receipts.is_empty(), op.certificate.clone()) {
            return Ok(Reclaimed { certificate, receipts: op.receipts.values().cloned().collect() });
        }
        let find = |wanted: fn(&Refusal) -> bool| op.rejections.iter().find(|(_, r)| wanted(r)).map(|(n, _)| *n);
        if let Some(node) = find(|r| matches!(r, Refusal::NotOwner)) {
            return Err(ReclaimError::NotOwner { node });
        }
        if let Some(node) = find(|r| matches!(r, Refusal::BadSignature)) {
            return Err(ReclaimError::BadSignature { node });
        }
        if let Some(node) = find(|r| matches!(r, Refusal::Replayed)) {
            return Err(ReclaimError::Replayed { node });
        }
        Err(ReclaimError::NotFound { file: op.file })
    }

    pub(crate) fn reclaim_timer(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let Some(op) = self.reclaims.get(&id) else {
            return;
        };
        if op.finding {
            return;
        }
        let now = o.now();
        let retry_at = op.retry_at(self.config.request_timeout, self.config.route_attempts);
        if retry_at.is_some_and(|at| at <= now) {
            return self.route_reclaim(o, id);
        }
        if op.deadline > now {
            let next = retry_at.map_or(op.deadline, |at| at.min(op.deadline));
            self.schedule(next, Timer::Reclaim(id));
            return;
        }
        let result = if op.receipts.is_empty() && op.rejections.is_empty() {
            Err(ReclaimError::Timeout { file: op.file })
        } else {
            self.reclaim_result(id)
        };
        self.end_reclaim(o, id, result);
    }

    fn end_reclaim(&mut self, _o: &mut dyn Net<PastMessage>, id: u64, result: Result<Reclaimed, ReclaimError>) {
        let Some(op) = self.reclaims.remove(&id) else {
            return;
        };
        if result.is_ok() {
            self.owned.remove(&op.file);
        }
        if !op.silent {
            self.emit(PastEvent::ReclaimDone { op: OpId(id), result });
        }
    }
}
