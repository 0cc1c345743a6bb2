//! Replica maintenance (PAST section 3.5).
//!
//! When the leaf set changes (a node joined, failed or left), each node holding a file as a
//! primary checks that every one of the k live nodes now closest to the fileId is known to
//! hold it, and offers the file to those that are not ([`PastMessage::Replicate`], with the
//! certificate and where to fetch it). A node offered a file it lacks checks the
//! certificate, accepts it like an inserted replica (or diverts it) and pulls it; once stored
//! it tells the k closest and the nodes that offered it ([`PastMessage::Holding`]). A node no
//! longer among the k closest keeps its copy until all k are known to hold the file, then
//! turns it into a cached copy (or drops it) and tells the holders it knows
//! ([`PastMessage::Released`]), so that none of them counts it as a holder should it be
//! among the k closest again. A periodic audit forgets what is known and checks again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::FileCertificate;
use crate::past::file_id::FileId;
use crate::past::messages::{MAX_BATCH, MAX_FILES, PastMessage, Prepare, Source};
use crate::past::node::{Past, StorageWait, Timer};
use crate::past::replica::MAX_OTHER_SOURCES;
use crate::past::store::{Role, StorageOp};

impl Past {
    pub(crate) fn on_leaf_set_changed(&mut self, o: &mut dyn Net<PastMessage>) {
        self.check_coordinations(o);
        self.maintain_soon(o);
        if self.audit_at.is_none()
            && let Some(interval) = self.config.audit_interval
        {
            let at = o.now() + interval;
            self.audit_at = Some(at);
            self.schedule(at, Timer::Audit);
        }
    }

    /// Runs maintenance `maintenance_delay` from now, unless it is already due.
    fn maintain_soon(&mut self, o: &mut dyn Net<PastMessage>) {
        if self.maintenance_at.is_none() {
            let at = o.now() + self.config.maintenance_delay;
            self.maintenance_at = Some(at);
            self.schedule(at, Timer::Maintenance);
        }
    }

    pub(crate) fn maintenance_timer(&mut self, o: &mut dyn Net<PastMessage>) {
        self.maintenance_at = None;
        self.maintain(o);
    }

    pub(crate) fn audit_timer(&mut self, o: &mut dyn Net<PastMessage>) {
        let own = o.id();
        for h in self.holdings.values_mut() {
            h.holders = vec![own];
        }
        self.maintain(o);
        self.audit_at = self.config.audit_interval.map(|interval| o.now() + interval);
        if let Some(at) = self.audit_at {
            self.schedule(at, Timer::Audit);
        }
    }

    /// Makes sure the k closest live nodes hold each file this node is responsible for.
    pub(crate) fn maintain(&mut self, o: &mut dyn Net<PastMessage>) {
        let own = o.id();
        let leaves: BTreeSet<Id> = o.state().leaf_set.ids().collect();
        let mut leaf_ids: Vec<Id> = leaves.iter().copied().chain([own]).collect();
        leaf_ids.sort_unstable();
        let mut notices: BTreeMap<Id, Vec<(Arc<FileCertificate>, Id)>> = BTreeMap::new();
        let mut release = Vec::new();
        let mut rehome = Vec::new();
        for (file, h) in self.holdings.iter_mut() {
            if h.pending.is_some() {
                continue;
            }
            let responsible = match h.role {
                Role::Primary | Role::Pointer { .. } => true,
                Role::Diverted { primary } => !leaves.contains(&primary),
                Role::Cached => false,
            };
            if !responsible {
                continue;
            }
            if let Role::Pointer { holder } = h.role
                && !leaves.contains(&holder)
            {
                rehome.push(*file);
                continue;
            }
            let key = file.key();
            let mut closest = leaf_ids.clone();
            closest.sort_by_key(|&id| (key.ring_distance(id), id));
            closest.truncate(usize::from(h.cert.body.k));
            h.holders.retain(|x| *x == own || leaves.contains(x));
            if !h.holders.contains(&own) {
                h.holders.push(own);
            }
            let source = match h.role {
                Role::Pointer { holder } => holder,
                _ => own,
            };
            for &m in &closest {
                if m != own && !h.holders.contains(&m) {
                    notices.entry(m).or_default().push((h.cert.clone(), source));
                }
            }
            if !closest.contains(&own) && closest.iter().all(|m| h.holders.contains(m)) {
                release.push(*file);
            }
        }
        for (node, files) in notices {
            for batch in files.chunks(MAX_BATCH) {
                self.send(o, node, PastMessage::Replicate { files: batch.to_vec() });
            }
        }
        let mut released: BTreeMap<Id, Vec<FileId>> = BTreeMap::new();
        for file in release {
            for node in self.release_replica(o, file) {
                released.entry(node).or_default().push(file);
            }
        }
        for (node, files) in released {
            for batch in files.chunks(MAX_FILES) {
                self.send(o, node, PastMessage::Released { files: batch.to_vec() });
            }
        }
        for file in rehome {
            self.rehome(o, file);
        }
    }

    /// This node is no longer among the k closest and all of them hold the file: keep it
    /// as a cached copy, or drop it. Returns the other nodes known to hold the file, to be
    /// told.
    fn release_replica(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) -> Vec<Id> {
        let own = o.id();
        let Some(h) = self.holdings.get(&file) else {
            return Vec::new();
        };
        let holders = h.holders.iter().copied().filter(|&x| x != own).collect();
        match h.role {
            Role::Pointer { holder } => {
                self.send(o, holder, PastMessage::Release { file });
                self.drop_holding(o, file, false);
            }
            Role::Primary | Role::Diverted { .. } => self.demote_to_cache(o, file),
            Role::Cached => {}
        }
        holders
    }

    /// Turns a replica into a cached copy (or drops it when caching is off).
    fn demote_to_cache(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) {
        if !self.config.caching {
            self.drop_holding(o, file, false);
            return;
        }
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let size = h.cert.body.size;
        h.role = Role::Cached;
        h.holders.clear();
        let record = h.record();
        let owner = h.cert.body.owner;
        self.used = self.used.saturating_sub(size);
        self.owners.release(&owner, size);
        self.cache.insert(file, size);
        self.store(StorageOp::PutRecord { file, record }, StorageWait::Other);
        self.make_room();
    }

    /// The diverted replica of a pointer vanished: fetch the file again from another
    /// holder (storing or diverting it anew).
    fn rehome(&mut self, o: &mut dyn Net<PastMessage>, file: FileId) {
        let own = o.id();
        let Some(h) = self.holdings.get(&file) else {
            return;
        };
        let gone = match h.role {
            Role::Pointer { holder } => holder,
            _ => return,
        };
        let source = h.holders.iter().copied().find(|&x| x != own && x != gone && Past::is_near(o, x));
        let cert = h.cert.clone();
        self.drop_holding(o, file, false);
        if let Some(source) = source {
            self.fetch_replica(o, cert, source);
        }
    }

    /// Starts holding a replica fetched from `source` (maintenance).
    pub(crate) fn fetch_replica(&mut self, o: &mut dyn Net<PastMessage>, cert: Arc<FileCertificate>, source: Id) {
        let own = o.id();
        let file = cert.body.file;
        let k = usize::from(cert.body.k);
        let primaries = Past::closest(o, file.key(), k);
        let prepare = Prepare {
            certificate: cert,
            source_node: source,
            source: Source::File(file),
            coordinator: own,
            nonce: Past::nonce(o),
            primaries,
            diverted: false,
            insert: false,
            source_way: Vec::new(),
        };
        self.place(o, prepare, None);
    }

    /// Replica maintenance: `from` says this node should hold these files.
    pub(crate) fn on_replicate(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        files: Vec<(Arc<FileCertificate>, Id)>,
    ) {
        let mut held = Vec::new();
        for (cert, source) in files {
            let file = cert.body.file;
            // A cached copy still arriving may be stalled (its source may have gone away):
            // the replica is pulled from the source named here instead.
            self.forget_arriving_copy(o, file);
            if let Some(h) = self.holdings.get_mut(&file) {
                if !h.holders.contains(&from) {
                    h.holders.push(from);
                }
                if let Some(p) = h.pending.as_mut() {
                    // Told once the replica is stored, like the k closest; its source is
                    // tried should this pull fail.
                    let known = source == p.source_node || p.other_sources.contains(&source);
                    if !known && p.other_sources.len() < MAX_OTHER_SOURCES {
                        p.other_sources.push(source);
                    }
                    continue;
                }
                if h.role == Role::Cached {
                    self.promote_cached(file);
                }
                held.push(file);
                continue;
            }
            if self.check_cert(&cert, Past::max_k(o), self.config.max_file_size).is_err() {
                continue;
            }
            self.fetch_replica(o, cert, source);
            if let Some(h) = self.holdings.get_mut(&file) {
                h.holders.push(from);
            }
        }
        for batch in held.chunks(MAX_FILES) {
            self.send(o, from, PastMessage::Holding { files: batch.to_vec() });
        }
    }

    /// Makes the committed cached copy of `file` a replica (a cached copy is a verified copy).
    pub(crate) fn promote_cached(&mut self, file: FileId) {
        let Some(h) = self.holdings.get_mut(&file) else {
            return;
        };
        let size = h.cert.body.size;
        h.role = Role::Primary;
        let record = h.record();
        let owner = h.cert.body.owner;
        self.cache.remove(&file);
        self.used += size;
        self.owners.add(&owner, size);
        self.store(StorageOp::PutRecord { file, record }, StorageWait::Other);
        self.make_room();
    }

    /// `from` holds these files.
    pub(crate) fn on_holding(&mut self, o: &mut dyn Net<PastMessage>, from: Id, files: Vec<FileId>) {
        let own = o.id();
        let mut recheck = false;
        for file in files {
            let Some(h) = self.holdings.get_mut(&file) else {
                continue;
            };
            if h.pending.is_none() && !h.holders.contains(&from) {
                h.holders.push(from);
                if !Past::closest(o, file.key(), usize::from(h.cert.body.k)).contains(&own) {
                    recheck = true;
                }
            }
        }
        if recheck {
            self.maintain_soon(o);
        }
    }

    /// The primary of a diverted replica no longer needs it.
    pub(crate) fn on_release(&mut self, o: &mut dyn Net<PastMessage>, from: Id, file: FileId) {
        let ok =
            self.holdings.get(&file).is_some_and(|h| h.pending.is_none() && h.role == Role::Diverted { primary: from });
        if ok {
            self.demote_to_cache(o, file);
        }
    }

    /// `from` gave up its replicas of these files: it is no longer counted as a holder, and
    /// maintenance checks again where it is among the k closest.
    pub(crate) fn on_released(&mut self, o: &mut dyn Net<PastMessage>, from: Id, files: Vec<FileId>) {
        let mut recheck = false;
        for file in files {
            let Some(h) = self.holdings.get_mut(&file) else {
                continue;
            };
            h.holders.retain(|&x| x != from);
            let k = usize::from(h.cert.body.k);
            recheck |= Past::closest(o, file.key(), k).contains(&from);
        }
        if recheck {
            self.maintain_soon(o);
        }
    }
}
