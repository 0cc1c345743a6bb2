//! The root of a lookup that holds nothing asks the nodes that should hold replicas, all at
//! once.
//!
//! A file's k replicas live on the k nodes closest to its fileId, but the root (the closest
//! live node) may not be one of them yet, or may have lost its copy. It sends
//! [`PastMessage::Locate`] to each of the nodes closest to the fileId: one that holds the
//! file answers the reader ([`PastMessage::Found`]), and every one tells the root whether it
//! did ([`PastMessage::Located`]). Once all said no, the reader hears
//! [`PastMessage::NotFound`]; a node that stays silent (gone without a word) delays that by
//! at most [`PastConfig::locate_timeout`](crate::past::PastConfig::locate_timeout), so an
//! unknown fileId is answered within seconds even while the leaf sets still list a dead node.

use crate::id::Id;
use crate::net::Net;
use crate::past::messages::{LookupRequest, PastMessage};
use crate::past::node::{Past, Timer};

/// Lookups a root asks about at once; more are not answered (their readers time out).
const MAX_LOCATING: usize = 1024;

/// A lookup the root is asking the replica set about.
#[derive(Debug)]
pub(crate) struct Locating {
    lookup: LookupRequest,
    /// Nodes that have not answered yet.
    waiting: Vec<Id>,
}

impl Past {
    /// Asks `candidates` whether they hold the file of `lookup`.
    pub(crate) fn start_locate(&mut self, o: &mut dyn Net<PastMessage>, lookup: LookupRequest, candidates: Vec<Id>) {
        let key = (lookup.reader, lookup.request);
        if candidates.is_empty() {
            return self.not_found(o, &lookup);
        }
        if self.locating.len() >= MAX_LOCATING || self.locating.contains_key(&key) {
            return;
        }
        for &node in &candidates {
            self.send(o, node, PastMessage::Locate { lookup: lookup.clone() });
        }
        self.locating.insert(key, Locating { lookup, waiting: candidates });
        self.schedule(o.now() + self.config.locate_timeout, Timer::Locate(key.0, key.1));
    }

    /// Asked by the root: answers the reader if this node holds the file, and the root either way.
    pub(crate) fn on_locate(&mut self, o: &mut dyn Net<PastMessage>, from: Id, lookup: LookupRequest) {
        let held = self.answer(o, &lookup);
        self.send(o, from, PastMessage::Located { reader: lookup.reader, request: lookup.request, held });
    }

    /// A node asked by this root answered (or could not be reached: `held` false).
    pub(crate) fn on_located(&mut self, o: &mut dyn Net<PastMessage>, from: Id, reader: Id, request: u64, held: bool) {
        let key = (reader, request);
        let Some(locating) = self.locating.get_mut(&key) else {
            return;
        };
        let Some(position) = locating.waiting.iter().position(|&n| n == from) else {
            return;
        };
        locating.waiting.remove(position);
        if held {
            self.locating.remove(&key);
        } else if locating.waiting.is_empty()
            && let Some(done) = self.locating.remove(&key)
        {
            self.not_found(o, &done.lookup);
        }
    }

    /// Some asked nodes stayed silent and none said it holds the file.
    pub(crate) fn locate_timer(&mut self, o: &mut dyn Net<PastMessage>, reader: Id, request: u64) {
        if let Some(done) = self.locating.remove(&(reader, request)) {
            self.not_found(o, &done.lookup);
        }
    }

    fn not_found(&mut self, o: &mut dyn Net<PastMessage>, lookup: &LookupRequest) {
        self.send(o, lookup.reader, PastMessage::NotFound { request: lookup.request, file: lookup.file });
    }
}
