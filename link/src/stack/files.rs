//! The PAST storage layer of a [`Stack`]: inserts, lookups and reclaims, and the storage and
//! signing requests the driver answers (IndexedDB and WebCrypto in the browser, the disk
//! and the key file natively). Outcomes come as [`super::StackEvent::Past`].

use past_core::Time;
use past_core::past::{
    FileId, FileRecord, InsertError, InsertRequestSpec, OpId, Past, PastHost as _, PublicKey, SignError, SignId,
    SignRequest, Signature, StorageError, StorageId, StorageReply, StorageRequest,
};

use super::{Stack, StackEvent};

impl Stack {
    /// The PAST state (what this node holds, its counters).
    pub fn past(&self) -> &Past {
        self.node.past()
    }

    /// Gives back a file record the driver kept (at start, before joining).
    pub fn restore(&mut self, record: FileRecord) {
        self.node.app_mut().past_mut().restore(record);
    }

    /// Inserts a file staged by the driver; see `past_core::Node::insert`.
    pub fn insert(&mut self, spec: InsertRequestSpec, now: Time) -> Result<OpId, InsertError> {
        let op = self.node.insert(spec, now);
        self.pump(now);
        op
    }

    /// Looks a file up; its verified chunks come as events.
    pub fn lookup(&mut self, file: FileId, now: Time) -> OpId {
        let op = self.node.lookup(file, now);
        self.pump(now);
        op
    }

    /// Stops a lookup: no more chunks are pulled, no event follows.
    pub fn cancel_lookup(&mut self, op: OpId, now: Time) {
        self.node.cancel_lookup(op, now);
        self.pump(now);
    }

    /// The reader took one chunk of lookup `op` (with `PastConfig::paced_reads`).
    pub fn lookup_consumed(&mut self, op: OpId, now: Time) {
        self.node.lookup_consumed(op, now);
        self.pump(now);
    }

    /// Reclaims a file, signed by `owner` (which must be this node's key or one the driver
    /// can sign with).
    pub fn reclaim(&mut self, file: FileId, owner: PublicKey, issued: u64, now: Time) -> OpId {
        let op = self.node.reclaim(file, owner, issued, now);
        self.pump(now);
        op
    }

    /// The next storage request for the driver.
    pub fn poll_storage(&mut self) -> Option<StorageRequest> {
        self.node.app_mut().past_mut().poll_storage()
    }

    /// The next signing request for the driver.
    pub fn poll_sign(&mut self) -> Option<SignRequest> {
        self.node.app_mut().past_mut().poll_sign()
    }

    /// A storage request completed.
    pub fn handle_storage(&mut self, id: StorageId, result: Result<StorageReply, StorageError>, now: Time) {
        self.node.handle_storage(id, result, now);
        self.pump(now);
    }

    /// A signing request completed.
    pub fn handle_signature(&mut self, id: SignId, result: Result<Signature, SignError>, now: Time) {
        self.node.handle_signature(id, result, now);
        self.pump(now);
    }

    /// Moves PAST's events to the stack's.
    pub(super) fn take_past_events(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.node.poll_past_event() {
            any = true;
            self.events.push_back(StackEvent::Past(event));
        }
        any
    }
}
