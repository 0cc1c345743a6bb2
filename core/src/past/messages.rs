//! PAST messages: what PAST nodes send each other inside Pastry's routed and direct
//! messages.
//!
//! Every list has a bound ([`PastMessage::within_bounds`]) so that a message fits in a
//! frame ([`MAX_FRAME_BYTES`](crate::wire::MAX_FRAME_BYTES)); a node drops a message beyond
//! its bounds without looking further. Chunk data is at most
//! [`CHUNK_SIZE`] bytes.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::id::Id;
use crate::past::certificate::{
    CHUNK_SIZE, FileCertificate, HASHES_PER_PIECE, MAX_NAME_BYTES, ReclaimCertificate, ReclaimReceipt, StoreReceipt,
};
use crate::past::error::Refusal;
use crate::past::file_id::{FileId, Hash};
use crate::past::relay::MAX_VIA;

/// Most ids in a list of nodes (primaries, holders, route nodes).
pub const MAX_NODES: usize = 64;

/// Most certificates in one replica notice.
pub const MAX_BATCH: usize = 32;

/// Most fileIds in one holding notice.
pub const MAX_FILES: usize = 1024;

/// What a transfer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Source {
    /// The content a client is inserting; the nonce of the insert authorizes the read.
    Upload {
        /// The file being inserted.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
    },
    /// A stored replica or cached copy.
    File(FileId),
}

impl Source {
    /// The file read.
    pub fn file(&self) -> FileId {
        match *self {
            Source::Upload { file, .. } | Source::File(file) => file,
        }
    }
}

/// An insert, routed to the node numerically closest to the fileId.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertRequest {
    /// The file certificate.
    pub certificate: Arc<FileCertificate>,
    /// The client, which serves the content.
    pub client: Id,
    /// Random number naming this insert attempt.
    pub nonce: u64,
    /// The nodes the insert passed after its client, in order (at most [`MAX_NODES`]): the
    /// way back to the client for a holder that cannot reach it straight.
    pub route: Vec<Id>,
}

/// Adds `node` to the `route` of a lookup or insert it passes: once, and within
/// [`MAX_NODES`].
pub(crate) fn add_to_route(route: &mut Vec<Id>, node: Id) {
    if route.len() < MAX_NODES && !route.contains(&node) {
        route.push(node);
    }
}

/// Asks a node to hold a replica of a file, pulling its content from a source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    /// The file certificate (shared with the holding made from it).
    pub certificate: Arc<FileCertificate>,
    /// The node to pull the content from.
    pub source_node: Id,
    /// What to pull.
    pub source: Source,
    /// The node to report to (the root of an insert, or the primary that diverts).
    pub coordinator: Id,
    /// The nonce of the insert (or of the maintenance step).
    pub nonce: u64,
    /// The k nodes closest to the fileId, as the root sees them.
    pub primaries: Vec<Id>,
    /// Whether this is a diverted replica (accepted under t_div).
    pub diverted: bool,
    /// Whether this is an insert (false: replica maintenance, no per-owner limit).
    pub insert: bool,
    /// The nodes to pass, in order, to reach `source_node` along a route when no connection
    /// to it opens (at most [`MAX_VIA`]; empty: none known).
    pub source_way: Vec<Id>,
}

/// A lookup, routed towards the fileId and answered by the first node holding the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRequest {
    /// The file.
    pub file: FileId,
    /// The node that asked.
    pub reader: Id,
    /// Names this attempt at the reader.
    pub request: u64,
    /// Hops taken.
    pub hops: u8,
    /// Holders not to answer with (they failed the reader before).
    pub exclude: Vec<Id>,
    /// Nodes on the route that would cache the file.
    pub cache_at: Vec<Id>,
    /// The nodes the lookup went through after the reader, in order (at most
    /// `MAX_NODES`): what a reader shows of the route.
    pub route: Vec<Id>,
}

/// A reclaim, routed to the fileId, then sent to each holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclaimRequest {
    /// The owner's reclaim certificate.
    pub certificate: ReclaimCertificate,
    /// The client to send receipts to.
    pub client: Id,
    /// Names the reclaim at the client.
    pub request: u64,
}

/// A PAST message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PastMessage {
    /// Routed: client to root.
    Insert(Box<InsertRequest>),
    /// Root to each of the k closest; a primary to the node it diverts to.
    Prepare(Box<Prepare>),
    /// Answer to [`PastMessage::Prepare`]: the node that will hold the content, or a refusal.
    Prepared {
        /// The file.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
        /// The holder, or why not.
        result: Result<Id, Refusal>,
    },
    /// The content arrived and matches the certificate.
    Ready {
        /// The file.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
    },
    /// A transfer is progressing (keeps the insert from timing out).
    Progress {
        /// The file.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
    },
    /// A prepared replica failed.
    Failed {
        /// The file.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
        /// The node where it failed.
        node: Id,
        /// Why.
        reason: Refusal,
    },
    /// Every replica is ready: keep it.
    Commit {
        /// The file.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
        /// The k primaries.
        holders: Vec<Id>,
    },
    /// The insert failed: drop the replica.
    Abort {
        /// The file.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
    },
    /// Root to client: the insert failed.
    InsertFailed {
        /// The file.
        file: FileId,
        /// The insert's nonce.
        nonce: u64,
        /// The node that refused.
        node: Id,
        /// Why.
        reason: Refusal,
    },
    /// A primary's store receipt, to the client.
    Receipt {
        /// The insert's nonce.
        nonce: u64,
        /// The receipt.
        receipt: Box<StoreReceipt>,
    },
    /// A diverting primary asks a leaf how much space it has.
    SpaceQuery {
        /// The file to divert.
        file: FileId,
        /// Names the query.
        query: u64,
    },
    /// Answer to [`PastMessage::SpaceQuery`].
    SpaceReply {
        /// The query.
        query: u64,
        /// Free bytes.
        free: u64,
        /// Whether the node already holds the file.
        holds: bool,
    },
    /// Asks for one piece of a file's chunk hash list.
    HashRequest {
        /// Names the transfer at the requester.
        transfer: u64,
        /// What is read.
        source: Source,
        /// Piece index.
        piece: u32,
    },
    /// A piece of a chunk hash list.
    HashReply {
        /// The transfer.
        transfer: u64,
        /// Piece index.
        piece: u32,
        /// The hashes of the piece.
        hashes: Vec<Hash>,
    },
    /// Asks for one chunk.
    ChunkRequest {
        /// Names the transfer at the requester.
        transfer: u64,
        /// What is read.
        source: Source,
        /// Chunk index.
        index: u32,
    },
    /// One chunk.
    ChunkReply {
        /// The transfer.
        transfer: u64,
        /// Chunk index.
        index: u32,
        /// The bytes (encoded as one byte string, not element by element).
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// A transfer request cannot be served.
    TransferFailed {
        /// The transfer.
        transfer: u64,
        /// Why.
        reason: Refusal,
    },
    /// Routed: a lookup.
    Lookup(LookupRequest),
    /// The root did not hold the file: asks a node that should hold a replica (the root
    /// asks them all at once).
    Locate {
        /// The lookup.
        lookup: LookupRequest,
    },
    /// Answer to [`PastMessage::Locate`], to the root: whether this node holds the file (and
    /// answered the reader).
    Located {
        /// The lookup's reader.
        reader: Id,
        /// The reader's request.
        request: u64,
        /// Whether this node holds the file.
        held: bool,
    },
    /// A holder answers a lookup.
    Found {
        /// The reader's request.
        request: u64,
        /// The file certificate.
        certificate: Arc<FileCertificate>,
        /// The node holding the content.
        holder: Id,
        /// Routing hops the lookup took.
        hops: u8,
        /// The nodes the lookup went through after the reader (the request's `route`).
        route: Vec<Id>,
        /// Whether it is a cached copy.
        cached: bool,
        /// Other nodes that should hold replicas, as the holder sees its leaf set (a reader
        /// may pull from some of them at the same time).
        others: Vec<Id>,
    },
    /// No node holds the file.
    NotFound {
        /// The reader's request.
        request: u64,
        /// The file.
        file: FileId,
    },
    /// A holder offers a node on a lookup route the file to cache.
    CacheOffer {
        /// The file certificate.
        certificate: Arc<FileCertificate>,
        /// The node to fetch it from.
        holder: Id,
    },
    /// Routed: a reclaim.
    Reclaim(Box<ReclaimRequest>),
    /// Root to each node that may hold the file.
    ReclaimHolder(Box<ReclaimRequest>),
    /// Root to client: how many nodes were asked.
    ReclaimAck {
        /// The reclaim.
        request: u64,
        /// Nodes asked.
        holders: u8,
    },
    /// A holder freed the file.
    ReclaimReceipt {
        /// The reclaim.
        request: u64,
        /// The receipt.
        receipt: Box<ReclaimReceipt>,
    },
    /// A node refused a reclaim (or did not hold the file).
    ReclaimRejected {
        /// The reclaim.
        request: u64,
        /// The node.
        node: Id,
        /// Why.
        reason: Refusal,
    },
    /// Replica maintenance: the receiver should hold these files; each can be fetched from
    /// the node given with it.
    Replicate {
        /// Certificates and where to fetch each.
        files: Vec<(Arc<FileCertificate>, Id)>,
    },
    /// The sender holds these files (an answer to [`PastMessage::Replicate`], or news after
    /// storing them).
    Holding {
        /// The files.
        files: Vec<FileId>,
    },
    /// A direct message carried hop by hop along a lookup's route, over connections the
    /// overlay holds, rather than straight to `target` (see [`crate::past::relay`]).
    Relay {
        /// The node that sent the message.
        origin: Id,
        /// The node it is for.
        target: Id,
        /// The nodes it passes, in order, before `target`.
        via: Vec<Id>,
        /// The message, encoded with postcard (one that [`relayable`](crate::past::relay::relayable)
        /// accepts): relay nodes pass it on without decoding it, and it cannot nest.
        #[serde(with = "serde_bytes")]
        inner: Vec<u8>,
    },
    /// A relay node could not pass on a relayed request or answer: it goes back to the
    /// message's origin, which handles it as a message it could not send to `target`.
    Bounced {
        /// The node the message was for.
        target: Id,
        /// The message, encoded as in [`PastMessage::Relay`].
        #[serde(with = "serde_bytes")]
        inner: Vec<u8>,
    },
    /// A primary no longer needs the diverted replica it placed at the receiver.
    Release {
        /// The file.
        file: FileId,
    },
    /// The sender gave up its replicas of these files (it is no longer among the k closest
    /// and all of them hold the file); it keeps at most a cached copy. Sent to the nodes it
    /// knew to hold them, which stop counting it as a holder.
    Released {
        /// The files.
        files: Vec<FileId>,
    },
}

impl PastMessage {
    /// The nodes the message names as ones to talk to (a client to pull from, holders,
    /// a reader to answer): a driver that limits connections to nodes it only heard of
    /// records who named them.
    pub fn nodes(&self) -> Vec<Id> {
        match self {
            PastMessage::Insert(r) => vec![r.client],
            PastMessage::Prepare(p) => {
                [p.source_node, p.coordinator].into_iter().chain(p.primaries.iter().copied()).collect()
            }
            PastMessage::Commit { holders, .. } => holders.clone(),
            PastMessage::Lookup(l) => vec![l.reader],
            PastMessage::Locate { lookup } => vec![lookup.reader],
            PastMessage::Found { holder, others, .. } => [*holder].into_iter().chain(others.iter().copied()).collect(),
            PastMessage::CacheOffer { holder, .. } => vec![*holder],
            PastMessage::Reclaim(r) | PastMessage::ReclaimHolder(r) => vec![r.client],
            PastMessage::Replicate { files } => files.iter().map(|(_, holder)| *holder).collect(),
            PastMessage::Relay { via, target, .. } => via.iter().chain([target]).copied().collect(),
            _ => Vec::new(),
        }
    }

    /// Whether every list and string is within its bound.
    pub fn within_bounds(&self) -> bool {
        let name_ok = |c: &FileCertificate| c.body.name.len() <= MAX_NAME_BYTES;
        let lookup_ok = |l: &LookupRequest| {
            l.exclude.len() <= MAX_NODES && l.cache_at.len() <= MAX_NODES && l.route.len() <= MAX_NODES
        };
        match self {
            PastMessage::Insert(r) => name_ok(&r.certificate) && r.route.len() <= MAX_NODES,
            PastMessage::Prepare(p) => {
                name_ok(&p.certificate) && p.primaries.len() <= MAX_NODES && p.source_way.len() <= MAX_VIA
            }
            PastMessage::Commit { holders, .. } => holders.len() <= MAX_NODES,
            PastMessage::HashReply { hashes, .. } => hashes.len() <= HASHES_PER_PIECE,
            PastMessage::ChunkReply { data, .. } => data.len() <= CHUNK_SIZE,
            PastMessage::Lookup(l) => lookup_ok(l),
            PastMessage::Locate { lookup } => lookup_ok(lookup),
            PastMessage::Found { certificate, others, route, .. } => {
                name_ok(certificate) && others.len() <= MAX_NODES && route.len() <= MAX_NODES
            }
            PastMessage::CacheOffer { certificate, .. } => name_ok(certificate),
            PastMessage::Replicate { files } => files.len() <= MAX_BATCH && files.iter().all(|(c, _)| name_ok(c)),
            PastMessage::Holding { files } | PastMessage::Released { files } => files.len() <= MAX_FILES,
            PastMessage::Relay { via, inner, .. } => {
                via.len() <= crate::past::relay::MAX_VIA && inner.len() <= crate::wire::MAX_FRAME_BYTES
            }
            PastMessage::Bounced { inner, .. } => inner.len() <= crate::wire::MAX_FRAME_BYTES,
            _ => true,
        }
    }
}
