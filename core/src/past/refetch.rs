//! Retrying a replica that maintenance asked this node to hold and whose pull failed.
//!
//! Maintenance asks a node for a replica once per leaf set change (and at each audit, every
//! ten minutes by default). If that one pull fails (the source's connection could not be
//! opened in time, the source went away for a moment), the file would stay one replica
//! short until the next change or audit. So a failed maintenance pull goes on at once from
//! another source offered while it ran, and when none was, it is tried again from the same
//! source after `maintenance_delay` x 2, x 4, x 8, as long as this node is still among the
//! k closest to the fileId and does not hold the file by then (a new offer meanwhile starts
//! a pull from its source at once).

use std::sync::Arc;

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::FileCertificate;
use crate::past::file_id::FileId;
use crate::past::messages::PastMessage;
use crate::past::node::{Past, Timer};

/// Tries after the first failed pull.
const MAX_RETRIES: u8 = 3;

/// A maintenance pull to try again.
#[derive(Debug)]
pub(crate) struct Refetch {
    cert: Arc<FileCertificate>,
    source: Id,
    /// Retries made so far.
    retries: u8,
}

impl Past {
    /// The maintenance pull of `cert` from `source` failed: schedules another try, unless
    /// the tries are used up.
    pub(crate) fn refetch_later(&mut self, o: &mut dyn Net<PastMessage>, cert: Arc<FileCertificate>, source: Id) {
        let file = cert.body.file;
        let retries = self.refetch.get(&file).map_or(0, |r| r.retries);
        if retries >= MAX_RETRIES {
            self.refetch.remove(&file);
            return;
        }
        let delay = self.config.maintenance_delay * (2u32 << retries);
        self.refetch.insert(file, Refetch { cert, source, retries: retries + 1 });
        self.schedule(o.now() + delay, Timer::Refetch(file));
    }

    /// Time to try the pull of `file` again.
    pub(crate) fn refetch_timer(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) {
        let Some(retry) = self.refetch.get(&file) else {
            return;
        };
        let own = o.id();
        let wanted = Past::closest(o, file.key(), usize::from(retry.cert.body.k)).contains(&own);
        if !wanted || self.holdings.contains_key(&file) {
            self.refetch.remove(&file);
            return;
        }
        let (cert, source) = (retry.cert.clone(), retry.source);
        self.fetch_replica(o, cert, source);
        // Refused here (no room): nothing more to try.
        if !self.holdings.contains_key(&file) {
            self.refetch.remove(&file);
        }
    }

    /// A replica of `file` is held: no more tries.
    pub(crate) fn refetch_done(&mut self, file: &FileId) {
        self.refetch.remove(file);
    }
}
