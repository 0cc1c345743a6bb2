//! A host that completes storage and signing requests at once.

use crate::id::Id;
use crate::net::Net;
use crate::node::{Application, Forward};
use crate::past::crypto::Signer;
use crate::past::messages::PastMessage;
use crate::past::node::{Past, PastHost};
use crate::past::store::Storage;
use crate::time::Time;

/// [`Past`] with a synchronous store and signer: after every upcall and command it performs
/// the storage requests on `store` and the signing requests with `signer`, until none is
/// left. For tests, the simulator, and a native node with a key file and a blocking store.
/// A signer may also take requests to answer later ([`Signer::defer`]): their answers are
/// handed to PAST when due, as timeouts.
#[derive(Debug)]
pub struct SyncPast<S, K> {
    /// The PAST state.
    pub past: Past,
    /// The store.
    pub store: S,
    /// The keys.
    pub signer: K,
}

impl<S: Storage, K: Signer> SyncPast<S, K> {
    /// `past` with `store` and `signer`.
    pub fn new(past: Past, store: S, signer: K) -> Self {
        SyncPast { past, store, signer }
    }

    /// Completes every storage and signing request.
    pub fn complete(&mut self, overlay: &mut dyn Net<PastMessage>) {
        loop {
            if let Some(request) = self.past.poll_storage() {
                let result = self.store.perform(request.op);
                self.past.handle_storage(overlay, request.id, result);
            } else if let Some(request) = self.past.poll_sign() {
                if let Some(request) = self.signer.defer(request, overlay.now()) {
                    let result = self.signer.complete(&request);
                    self.past.handle_signature(overlay, request.id, result);
                }
            } else {
                break;
            }
        }
    }
}

impl<S: Storage, K: Signer> Application for SyncPast<S, K> {
    type Message = PastMessage;

    fn deliver(&mut self, overlay: &mut dyn Net<PastMessage>, key: Id, message: PastMessage, hops: u8) {
        self.past.deliver(overlay, key, message, hops);
        self.complete(overlay);
    }

    fn forward(&mut self, overlay: &mut dyn Net<PastMessage>, key: Id, message: &mut PastMessage, next: Id) -> Forward {
        let forward = self.past.forward(overlay, key, message, next);
        self.complete(overlay);
        forward
    }

    fn receive(&mut self, overlay: &mut dyn Net<PastMessage>, from: Id, message: PastMessage) {
        self.past.receive(overlay, from, message);
        self.complete(overlay);
    }

    fn send_failed(&mut self, overlay: &mut dyn Net<PastMessage>, to: Id, message: PastMessage) {
        self.past.send_failed(overlay, to, message);
        self.complete(overlay);
    }

    fn leaf_set_changed(&mut self, overlay: &mut dyn Net<PastMessage>) {
        self.past.leaf_set_changed(overlay);
        self.complete(overlay);
    }

    fn poll_timeout(&self) -> Option<Time> {
        [self.past.poll_timeout(), self.signer.next_answer_at()].into_iter().flatten().min()
    }

    fn timeout(&mut self, overlay: &mut dyn Net<PastMessage>) {
        while let Some((id, result)) = self.signer.take_answer(overlay.now()) {
            self.past.handle_signature(overlay, id, result);
        }
        self.past.timeout(overlay);
        self.complete(overlay);
    }
}

impl<S: Storage, K: Signer> PastHost for SyncPast<S, K> {
    fn past(&self) -> &Past {
        &self.past
    }
    fn past_mut(&mut self) -> &mut Past {
        &mut self.past
    }
    fn pump(&mut self, overlay: &mut dyn Net<PastMessage>) {
        self.complete(overlay);
    }
}
