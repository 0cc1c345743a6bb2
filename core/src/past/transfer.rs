//! Moving content: a receiver pulls chunks from a source with a window of requests, and
//! checks every chunk against the certificate as it arrives.
//!
//! Every content movement in PAST is one of these pulls: a storing node pulling an insert's
//! content from the client, a reader pulling a file from the holder that answered its
//! lookup, a node pulling a replica during maintenance or a copy to cache. The receiver
//! drives it: it first fetches the chunk hash list (for files of more than one chunk) and
//! checks it against the digest signed in the certificate, then keeps at most `window`
//! chunks requested or being written; a chunk whose SHA-1 is not the certificate's is
//! rejected at once, and a pull that makes no progress for `stall_timeout` is abandoned.
//! A storing node also checks the SHA-1 of the whole content against the certificate before
//! it holds a replica, so no replica exists of a certificate whose two digests disagree; a
//! reader relies on the chunk hashes alone (every byte is covered by a signed digest) and
//! hashes each byte once.
//! Chunks are at most 64 KiB, so a message never nears the frame limit, and neither side
//! holds more than `window` chunks of a file in memory.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use crate::id::Id;
use crate::net::Net;
use crate::past::certificate::{
    FileCertificate, HASHES_PER_PIECE, chunk_count, chunk_len, chunk_list_digest, piece_count, sha1,
};
use crate::past::error::Refusal;
use crate::past::file_id::{FileId, Hash};
use crate::past::messages::{PastMessage, Source};
use crate::past::node::{Past, PastEvent, StorageWait, Timer};
use crate::past::store::{Object, StorageError, StorageOp, StorageReply};

/// Where received chunks go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sink {
    /// Into this node's store, as a replica.
    Replica,
    /// Into this node's store, as a cached copy.
    Cache,
    /// To the reader, as events of lookup `op`.
    Reader(u64),
}

/// A pull in progress.
#[derive(Debug)]
pub(crate) struct Transfer {
    /// The main source: it sends the chunk hash list, and the pull fails with it.
    pub(crate) peer: Id,
    /// Further sources of chunks (see [`crate::past::sources`]).
    pub(crate) helpers: Vec<Id>,
    /// Chunks requested and not received, with the source asked.
    pub(crate) assigned: BTreeMap<u32, Id>,
    pub(crate) source: Source,
    pub(crate) file: FileId,
    pub(crate) size: u64,
    chunks: u32,
    content_hash: Hash,
    list_digest: Hash,
    /// The verified chunk hash list (empty until known).
    pub(crate) hashes: Vec<Hash>,
    pieces: Vec<Option<Vec<Hash>>>,
    next_request: u32,
    pub(crate) next_emit: u32,
    buffered: BTreeMap<u32, Vec<u8>>,
    writes: u32,
    whole: Option<Sha1>,
    pub(crate) last_progress: Time,
    pub(crate) sink: Sink,
    pub(crate) bytes: u64,
    /// Whether the source already sent us on to the holder of a diverted replica.
    redirected: bool,
    /// The `last_progress` after which this pull last asked again ([`Past::reask`]).
    pub(crate) reasked: Option<Time>,
}

use crate::time::Time;

impl Past {
    /// Starts pulling `cert`'s content from `peer`, from chunk `start` on.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_transfer(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        peer: Id,
        source: Source,
        cert: &FileCertificate,
        hashes: Vec<Hash>,
        start: u32,
        sink: Sink,
    ) -> u64 {
        let id = self.fresh();
        let body = &cert.body;
        let chunks = chunk_count(body.size);
        let hashes = if chunks == 1 { vec![body.content_hash] } else { hashes };
        let pieces = if hashes.is_empty() { vec![None; piece_count(body.size) as usize] } else { Vec::new() };
        let transfer = Transfer {
            peer,
            helpers: Vec::new(),
            assigned: BTreeMap::new(),
            source,
            file: body.file,
            size: body.size,
            chunks,
            content_hash: body.content_hash,
            list_digest: body.chunk_list,
            hashes,
            pieces,
            next_request: start,
            next_emit: start,
            buffered: BTreeMap::new(),
            writes: 0,
            whole: (start == 0 && sink == Sink::Replica).then(Sha1::new),
            last_progress: o.now(),
            sink,
            bytes: 0,
            redirected: false,
            reasked: None,
        };
        let requests: Vec<u32> = (0..transfer.pieces.len() as u32).collect();
        self.transfers.insert(id, transfer);
        for piece in requests {
            self.send(o, peer, PastMessage::HashRequest { transfer: id, source, piece });
        }
        self.schedule_check(id);
        self.pump_transfer(o, id);
        id
    }

    /// Schedules the next look at transfer `id`: at its stall deadline or, if sooner, when
    /// it is to ask again ([`Past::reask_at`]).
    fn schedule_check(&mut self, id: u64) {
        let Some(t) = self.transfers.get(&id) else {
            return;
        };
        let stall = t.last_progress + self.config.stall_timeout;
        let at = self.reask_at(t).map_or(stall, |reask| reask.min(stall));
        self.schedule(at, Timer::Transfer(id));
    }

    /// Requests chunks while the window allows; finishes a complete transfer. The window
    /// starts at `initial_window` and grows by one with every chunk received (so the first
    /// chunks do not queue behind a full window of others), up to `window`.
    pub(crate) fn pump_transfer(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let (initial, max) = (self.config.initial_window.max(1), self.config.window.max(1));
        let unread = self.reader_backlog(id);
        let Some(t) = self.transfers.get_mut(&id) else {
            return;
        };
        let window = max.min(initial.saturating_add(t.next_emit));
        if t.hashes.is_empty() {
            return;
        }
        let mut requests = Vec::new();
        while t.next_request < t.chunks && (t.next_request - t.next_emit) + t.writes + unread < window {
            let to = t.next_source();
            t.assigned.insert(t.next_request, to);
            requests.push((to, t.next_request));
            t.next_request += 1;
        }
        let done = t.next_emit == t.chunks && t.writes == 0;
        let source = t.source;
        for (to, index) in requests {
            self.send(o, to, PastMessage::ChunkRequest { transfer: id, source, index });
        }
        if done {
            self.finish_transfer(o, id);
        }
    }

    pub(crate) fn on_hash_reply(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        id: u64,
        piece: u32,
        hashes: Vec<Hash>,
    ) {
        let Some(t) = self.transfers.get_mut(&id) else {
            return;
        };
        if t.peer != from || !t.hashes.is_empty() {
            return;
        }
        let Some(slot) = t.pieces.get_mut(piece as usize) else {
            return;
        };
        *slot = Some(hashes);
        t.last_progress = o.now();
        if t.pieces.iter().any(Option::is_none) {
            return;
        }
        let list: Vec<Hash> = t.pieces.drain(..).flatten().flatten().collect();
        let expected_len = t.chunks as usize;
        let pieces_ok = list.len() == expected_len;
        if !pieces_ok || chunk_list_digest(&list) != t.list_digest {
            self.fail_transfer(o, id, Refusal::BadHashList);
            return;
        }
        t.hashes = list;
        self.pump_transfer(o, id);
    }

    pub(crate) fn on_chunk(&mut self, o: &mut dyn Net<PastMessage>, from: Id, id: u64, index: u32, data: Vec<u8>) {
        let now = o.now();
        let Some(t) = self.transfers.get_mut(&id) else {
            return;
        };
        if t.assigned.get(&index) != Some(&from) || index < t.next_emit || t.buffered.contains_key(&index) {
            return;
        }
        let expected = t.hashes.get(index as usize).copied();
        let shared = self.config.shared_verified.as_ref();
        let matches = |hash: &Hash| shared.map_or_else(|| sha1(&data) == *hash, |s| s.chunk_matches(hash, &data));
        if data.len() != chunk_len(t.size, index) || !expected.as_ref().is_some_and(matches) {
            self.stats.bad_chunks += 1;
            let file = t.file;
            if self.drop_source(o, id, from) {
                self.emit(PastEvent::BadData { file, holder: from });
            } else {
                self.fail_transfer(o, id, Refusal::ContentMismatch { chunk: index });
            }
            return;
        }
        t.assigned.remove(&index);
        t.last_progress = now;
        t.buffered.insert(index, data);
        let mut ready = Vec::new();
        // The content of a one-chunk file is that chunk, whose hash was just checked: its
        // content hash is that hash, so the chunk is not hashed twice.
        let one_chunk = t.chunks == 1;
        while let Some(data) = t.buffered.remove(&t.next_emit) {
            if !one_chunk && let Some(whole) = t.whole.as_mut() {
                whole.update(&data);
            }
            ready.push((t.next_emit, data));
            t.next_emit += 1;
        }
        let (sink, file) = (t.sink, t.file);
        if t.next_emit == t.chunks
            && let Some(whole) = t.whole.take()
        {
            let digest: Hash = match (one_chunk, expected) {
                (true, Some(hash)) => hash,
                _ => whole.finalize().into(),
            };
            if digest != t.content_hash {
                let chunk = t.chunks.saturating_sub(1);
                self.fail_transfer(o, id, Refusal::ContentMismatch { chunk });
                return;
            }
        }
        for (index, data) in ready {
            self.stats.bytes_received += data.len() as u64;
            if let Some(t) = self.transfers.get_mut(&id) {
                t.bytes += data.len() as u64;
            }
            match sink {
                Sink::Replica | Sink::Cache => {
                    if let Some(t) = self.transfers.get_mut(&id) {
                        t.writes += 1;
                    }
                    self.store(StorageOp::Write { file, index, data }, StorageWait::TransferWrite { transfer: id });
                }
                Sink::Reader(op) => self.lookup_chunk(op, index, data),
            }
        }
        if matches!(sink, Sink::Replica | Sink::Cache) {
            self.replica_progress(o, file);
        }
        self.pump_transfer(o, id);
    }

    pub(crate) fn on_transfer_written(&mut self, o: &mut dyn Net<PastMessage>, id: u64, outcome: Result<(), Refusal>) {
        let Some(t) = self.transfers.get_mut(&id) else {
            return;
        };
        t.writes = t.writes.saturating_sub(1);
        if let Err(reason) = outcome {
            self.fail_transfer(o, id, reason);
            return;
        }
        self.pump_transfer(o, id);
    }

    pub(crate) fn on_transfer_refused(&mut self, o: &mut dyn Net<PastMessage>, from: Id, id: u64, reason: Refusal) {
        if self.drop_source(o, id, from) {
            return;
        }
        let Some(t) = self.transfers.get_mut(&id).filter(|t| t.peer == from) else {
            return;
        };
        // A node holding only a pointer sends us on, once, to the diverted replica.
        if let Refusal::Redirect { holder } = reason
            && !t.redirected
            && holder != from
            && holder != o.id()
        {
            t.redirected = true;
            t.peer = holder;
            t.next_request = t.next_emit;
            t.buffered.clear();
            t.assigned.clear();
            let pieces: Vec<u32> = if t.hashes.is_empty() {
                t.pieces.iter_mut().for_each(|p| *p = None);
                (0..t.pieces.len() as u32).collect()
            } else {
                Vec::new()
            };
            let source = t.source;
            for piece in pieces {
                self.send(o, holder, PastMessage::HashRequest { transfer: id, source, piece });
            }
            self.pump_transfer(o, id);
            return;
        }
        self.fail_transfer(o, id, reason);
    }

    /// Chunks of transfer `id` its reader has not consumed yet (with `paced_reads`).
    fn reader_backlog(&self, id: u64) -> u32 {
        match self.transfers.get(&id).map(|t| t.sink) {
            Some(Sink::Reader(op)) => self.unread(op),
            _ => 0,
        }
    }

    pub(crate) fn transfer_timer(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let unread = self.reader_backlog(id);
        let now = o.now();
        let Some(t) = self.transfers.get_mut(&id) else {
            return;
        };
        // Waiting for our own reader, with nothing asked of the peer: not a stall.
        if unread > 0 && !t.hashes.is_empty() && t.next_request == t.next_emit {
            t.last_progress = now;
        }
        let deadline = t.last_progress + self.config.stall_timeout;
        let reasked = t.reasked == Some(t.last_progress);
        let reask = self.transfers.get(&id).and_then(|t| self.reask_at(t));
        if deadline > now && reask.is_some_and(|at| at <= now) {
            if reasked {
                return self.give_up_way(o, id);
            }
            self.reask(o, id);
        }
        if deadline <= now {
            // A helper holding up the stream is dropped; a stalled main source fails the pull.
            if let Some(slow) = self.slowest_source(id)
                && self.drop_source(o, id, slow)
            {
                if let Some(t) = self.transfers.get_mut(&id) {
                    t.last_progress = now;
                }
                self.schedule_check(id);
                return;
            }
            self.fail_transfer(o, id, Refusal::Stalled);
        } else {
            self.schedule_check(id);
        }
    }

    /// The requests of transfer `id` to its main source that it waits for first: the
    /// pieces of the hash list still missing, or else the lowest chunk asked of it.
    pub(crate) fn first_awaited(&self, id: u64) -> Vec<PastMessage> {
        let Some(t) = self.transfers.get(&id) else {
            return Vec::new();
        };
        let (transfer, source) = (id, t.source);
        if t.hashes.is_empty() {
            let missing = t.pieces.iter().enumerate().filter(|(_, p)| p.is_none());
            return missing
                .map(|(piece, _)| PastMessage::HashRequest { transfer, source, piece: piece as u32 })
                .collect();
        }
        let first = t.assigned.iter().find(|&(_, &asked)| asked == t.peer);
        first.map(|(&index, _)| PastMessage::ChunkRequest { transfer, source, index }).into_iter().collect()
    }

    /// A request of a transfer could not be sent to `to`: it is gone.
    pub(crate) fn transfer_unreachable(&mut self, o: &mut dyn Net<PastMessage>, id: u64, to: Id) {
        if self.drop_source(o, id, to) {
            return;
        }
        if let Some(peer) = self.transfers.get(&id).map(|t| t.peer) {
            self.fail_transfer(o, id, Refusal::Unreachable { node: peer });
        }
    }

    /// `request`, of transfer `id`, could not be sent straight to `to`: it goes along a way
    /// to `to` if there is one (to an insert's client), else `to` is gone.
    pub(crate) fn request_unsent(&mut self, o: &mut dyn Net<PastMessage>, to: Id, id: u64, request: PastMessage) {
        if self.send_along_instead(o, to, request).is_some() {
            self.transfer_unreachable(o, id, to);
        }
    }

    /// A request of transfer `id` came back from the way to `to`: a node between broke, not
    /// `to`. A reader's lookup is routed again, and may come back to `to` by another way;
    /// other pulls end as if `to` were gone.
    pub(crate) fn transfer_way_broke(&mut self, o: &mut dyn Net<PastMessage>, id: u64, to: Id) {
        if self.drop_source(o, id, to) {
            return;
        }
        match self.transfers.get(&id).map(|t| t.sink) {
            Some(Sink::Reader(op)) => {
                if let Some(t) = self.transfers.remove(&id) {
                    self.lookup_way_broke(o, op, t.hashes);
                }
            }
            _ => self.transfer_unreachable(o, id, to),
        }
    }

    fn finish_transfer(&mut self, o: &mut dyn Net<PastMessage>, id: u64) {
        let Some(t) = self.transfers.remove(&id) else {
            return;
        };
        match t.sink {
            Sink::Replica => self.replica_received(o, t.file, t.hashes, t.bytes),
            Sink::Cache => self.cache_received(t.file, t.hashes),
            Sink::Reader(op) => self.lookup_received(o, op, t.peer),
        }
    }

    pub(crate) fn fail_transfer(&mut self, o: &mut dyn Net<PastMessage>, id: u64, reason: Refusal) {
        let Some(t) = self.transfers.remove(&id) else {
            return;
        };
        match t.sink {
            Sink::Replica => self.replica_failed(o, t.file, reason),
            Sink::Cache => self.forget_arriving_copy(o, t.file),
            Sink::Reader(op) => self.lookup_source_failed(o, op, t.peer, t.hashes, reason),
        }
    }

    /// Cancels the transfers filling `file` (an aborted replica).
    pub(crate) fn cancel_transfers(&mut self, file: FileId) {
        self.transfers.retain(|_, t| !(t.file == file && matches!(t.sink, Sink::Replica | Sink::Cache)));
    }

    /// What a source names at this node: the object to read and its chunk hash list.
    fn resolve(&self, source: Source) -> Option<(Object, Vec<Hash>, u64)> {
        match source {
            Source::Upload { file, nonce } => self.upload_of(file, nonce),
            Source::File(file) => {
                let h = self.holdings.get(&file)?;
                if !h.is_committed() || !h.role.has_content() {
                    return None;
                }
                let size = h.cert.body.size;
                let hashes = if chunk_count(size) == 1 { vec![h.cert.body.content_hash] } else { h.hashes.clone() };
                Some((Object::File(file), hashes, size))
            }
        }
    }

    /// The diverted holder of a file this node holds only a pointer to.
    fn pointer_to(&self, source: Source) -> Option<Id> {
        let Source::File(file) = source else {
            return None;
        };
        match self.holdings.get(&file) {
            Some(h) if h.is_committed() => match h.role {
                crate::past::store::Role::Pointer { holder } => Some(holder),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn serve_hashes(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        transfer: u64,
        source: Source,
        piece: u32,
    ) {
        if let Some(holder) = self.pointer_to(source) {
            self.send(o, from, PastMessage::TransferFailed { transfer, reason: Refusal::Redirect { holder } });
            return;
        }
        let reply = match self.resolve(source) {
            Some((_, hashes, _)) => {
                let start = piece as usize * HASHES_PER_PIECE;
                if start >= hashes.len() {
                    PastMessage::TransferFailed { transfer, reason: Refusal::NotFound }
                } else {
                    let end = (start + HASHES_PER_PIECE).min(hashes.len());
                    PastMessage::HashReply { transfer, piece, hashes: hashes[start..end].to_vec() }
                }
            }
            None => PastMessage::TransferFailed { transfer, reason: Refusal::NotFound },
        };
        self.send(o, from, reply);
    }

    pub(crate) fn serve_chunk(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        from: Id,
        transfer: u64,
        source: Source,
        index: u32,
    ) {
        if let Some(holder) = self.pointer_to(source) {
            self.send(o, from, PastMessage::TransferFailed { transfer, reason: Refusal::Redirect { holder } });
            return;
        }
        match self.resolve(source) {
            Some((object, _, size)) if index < chunk_count(size) => {
                if let Source::File(file) = source {
                    self.cache.touch(&file);
                }
                self.upload_served(source, o.now());
                self.store(StorageOp::Read { object, index }, StorageWait::Serve { to: from, transfer, index });
            }
            _ => self.send(o, from, PastMessage::TransferFailed { transfer, reason: Refusal::NotFound }),
        }
    }

    pub(crate) fn on_served(
        &mut self,
        o: &mut dyn Net<PastMessage>,
        to: Id,
        transfer: u64,
        index: u32,
        result: Result<StorageReply, StorageError>,
    ) {
        let reply = match result {
            Ok(StorageReply::Data(data)) if data.len() <= crate::past::certificate::CHUNK_SIZE => {
                self.stats.bytes_served += data.len() as u64;
                PastMessage::ChunkReply { transfer, index, data }
            }
            _ => PastMessage::TransferFailed { transfer, reason: Refusal::Storage },
        };
        self.send(o, to, reply);
    }
}
