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
//!
//! A holder whose answer cannot reach the reader (no connection between the two: a path
//! WebRTC cannot open, or no connection left in either end's budget) hands the lookup on
//! the same way to the other holders it named, which answer the reader from their own
//! connections. The reader is then not told when none holds the file: it routes the lookup
//! again after its timeout, as it would have without the hand-over. A node answering from a
//! cached copy knows no other holders: it passes the lookup on along its route instead.

use crate::id::Id;
use crate::net::Net;
use crate::past::messages::{LookupRequest, PastMessage};
use crate::past::node::{Past, Timer};

/// Lookups a root asks about at once; more are not answered (their readers time out).
const MAX_LOCATING: usize = 1024;
/// Lookups remembered as asked of this node together with the other holders.
const MAX_ASKED_WITH_OTHERS: usize = 256;

/// A lookup the root is asking the replica set about.
#[derive(Debug)]
pub(crate) struct Locating {
    lookup: LookupRequest,
    /// Nodes that have not answered yet.
    waiting: Vec<Id>,
    /// Whether the reader hears [`PastMessage::NotFound`] when none holds the file (not
    /// for a lookup handed on by a holder, which does not know that the file is missing).
    tell_reader: bool,
}

impl Past {
    /// Asks `candidates` whether they hold the file of `lookup`; the reader hears when none
    /// does if `tell_reader`.
    pub(crate) fn start_locate(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        lookup: LookupRequest,
        candidates: Vec<Id>,
        tell_reader: bool,
    ) {
        let key = (lookup.reader, lookup.request);
        if candidates.is_empty() {
            if tell_reader {
                self.not_found(o, &lookup);
            }
            return;
        }
        if self.locating.len() >= MAX_LOCATING || self.locating.contains_key(&key) {
            return;
        }
        for &node in &candidates {
            self.send(o, node, PastMessage::Locate { lookup: lookup.clone() });
        }
        self.locating.insert(key, Locating { lookup, waiting: candidates, tell_reader });
        self.schedule(o.now() + self.config.locate_timeout, Timer::Locate(key.0, key.1));
    }

    /// Our answer ([`PastMessage::Found`]) to the reader of `lookup` could not be sent: the
    /// holders named in it as `others` are asked to answer instead. The lookup excludes
    /// this node and every node of the replica set that was not named (holders that failed
    /// the reader before). A lookup this node was asked about together with the other
    /// holders (by a root, or by a holder handing it on) is not handed on again: they were
    /// all asked already, and handing on from each would ask them over and over.
    pub(crate) fn hand_on_lookup(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        mut lookup: LookupRequest,
        others: Vec<Id>,
        k: u8,
    ) {
        let others: Vec<Id> = others.into_iter().filter(|&id| id != o.id() && id != lookup.reader).collect();
        if others.is_empty() || self.asked_with_others.contains(&(lookup.reader, lookup.request)) {
            return;
        }
        lookup.exclude = Past::closest(o, lookup.file.key(), usize::from(k))
            .into_iter()
            .chain([o.id()])
            .filter(|id| !others.contains(id) && *id != lookup.reader)
            .collect();
        self.stats.lookups_handed_on += 1;
        self.start_locate(o, lookup, others, false);
    }

    /// Our answer from a cached copy could not reach the reader of `lookup`: the lookup
    /// goes on along its route towards the fileId, excluding this node, to the next cached
    /// copy or the replica holders. The route only gets closer to the fileId, so it never
    /// comes back to a node that passed it on.
    pub(crate) fn pass_on_lookup(&mut self, o: &mut dyn Net<PastMessage>, mut lookup: LookupRequest) {
        lookup.exclude = vec![o.id()];
        self.stats.lookups_handed_on += 1;
        o.route(lookup.file.key(), PastMessage::Lookup(lookup));
    }

    /// Asked by the root: answers the reader if this node holds the file, and the root either way.
    pub(crate) fn on_locate(&mut self, o: &mut dyn Net<PastMessage>, from: Id, lookup: LookupRequest) {
        if self.asked_with_others.len() >= MAX_ASKED_WITH_OTHERS {
            self.asked_with_others.pop_front();
        }
        self.asked_with_others.push_back((lookup.reader, lookup.request));
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
            && done.tell_reader
        {
            self.not_found(o, &done.lookup);
        }
    }

    /// Some asked nodes stayed silent and none said it holds the file.
    pub(crate) fn locate_timer(&mut self, o: &mut dyn Net<PastMessage>, reader: Id, request: u64) {
        if let Some(done) = self.locating.remove(&(reader, request))
            && done.tell_reader
        {
            self.not_found(o, &done.lookup);
        }
    }

    fn not_found(&mut self, o: &mut dyn Net<PastMessage>, lookup: &LookupRequest) {
        self.send(o, lookup.reader, PastMessage::NotFound { request: lookup.request, file: lookup.file });
    }
}
