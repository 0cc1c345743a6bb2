//! Pastry messages and their encoding on the wire.
//!
//! A frame is one version byte followed by the message in postcard's compact binary format.
//! Decoding checks the size limit before it reads anything, and every malformed, truncated
//! or oversized frame is an error value, never a panic. The meaning of a well-formed message
//! (does an entry fit the slot it claims?) is checked by the handler that receives it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
pub use thin_vec::{ThinVec, thin_vec};

use crate::id::Id;
use crate::routing_table::Entry;

/// The version byte of the wire format described here (2: routed messages carry their
/// attempt number; 3: a row reply carries the sender's round-trip time to each entry, an
/// entry request lists several slots and its reply answers each, and PAST's `Released`;
/// 4: the link's overlay offer says whether its connection is for a transfer; 5: PAST's
/// `Relay`, answers along a lookup's route; 6: an insert carries its route and a `Prepare`
/// the way to its source, so that an insert's holders reach a client no connection opens
/// to); 7: a routed message names the nodes found failed on its way).
pub const WIRE_VERSION: u8 = 7;

/// Largest frame accepted or produced by [`encode`] and [`decode`].
///
/// Application payloads are sent in chunks of at most 64 KiB; the rest is headroom for the
/// routing envelope and certificates.
pub const MAX_FRAME_BYTES: usize = 80 * 1024;

/// Most ids a list in a message may hold (rows, leaf sets, neighborhood sets).
pub const MAX_IDS: usize = 256;

/// Most nodes a routed message names as found failed on its way ([`Routed::failed`]);
/// a node that finds another keeps the newest.
pub const MAX_ROUTE_FAILED: usize = 4;

/// A message between two Pastry nodes, carrying application messages of type `M`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<M> {
    /// A message on its way to the node numerically closest to a key.
    Route(Routed<M>),
    /// The last node of a join route answers the joining node with the state it needs.
    JoinReply(JoinReply),
    /// A liveness and round-trip probe, possibly answering one of the receiver's probes.
    Probe(Probe),
    /// The sender's leaf set (and the sender), for repair and for stabilization after
    /// concurrent joins or failures.
    LeafSet {
        /// The leaves.
        leaves: Vec<Id>,
        /// Whether this answers a request or a pushed leaf set (and must not be answered).
        answer: bool,
    },
    /// Asks for one row of the receiver's routing table (second phase of a join).
    RowRequest {
        /// The row.
        row: u8,
    },
    /// The answer to [`Message::RowRequest`].
    RowReply {
        /// The row.
        row: u8,
        /// Its entries, each with the sender's round-trip time to it: the receiver, which
        /// knows its own round-trip time to the sender, probes only the entries that may be
        /// closer than what it holds (triangle inequality).
        entries: Vec<Entry>,
    },
    /// A node that filled an empty routing table slot of the sender, passed along the ring
    /// to every node sharing at least `row` digits with it (they are contiguous on the
    /// ring), which likely lack it too.
    NewNode {
        /// The node.
        id: Id,
        /// The row of the slot it filled.
        row: u8,
    },
    /// Asks for the receiver's leaf set (answered with [`Message::LeafSet`]).
    LeafSetRequest,
    /// Asks for the receiver's routing table entries at some slots (row, column), to
    /// repair the sender's: one request for every empty slot the receiver can answer.
    EntryRequest {
        /// The slots, as (row, column).
        slots: Vec<(u8, u8)>,
    },
    /// The answer to [`Message::EntryRequest`], and to a routed slot search: for each slot
    /// asked, (row, column, a node of the receiver's that fits it, if any).
    EntryReply {
        /// The slots and their entries.
        entries: Vec<(u8, u8, Option<Id>)>,
    },
    /// The sender leaves the network for good: forget it now.
    Leave,
    /// An application message sent point to point, not routed.
    Direct(M),
}

/// A routed message: its key, hop count, attempt number, the nodes found failed on its way
/// and its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed<M> {
    /// The key the message is routed towards.
    pub key: Id,
    /// Number of hops taken so far.
    pub hops: u8,
    /// 0 for a message routed the first time, which every node forwards to its best next
    /// hop; 1 and up for a retry, which every node forwards to a random choice among the
    /// next hops that make progress (randomized routing, see [`crate::RoutingState::random_step`]),
    /// so that a retry does not meet the node that dropped the first attempt.
    pub attempt: u8,
    /// Nodes this message was sent to on its way and found failed (the sender learned it
    /// when the send failed), oldest first, at most [`MAX_ROUTE_FAILED`]. A node passing the
    /// message on does not forward it to them, so a failure costs the route one wait, not
    /// one per node that still lists the failed one; the claim is only a hint (any node of
    /// the route can misroute its message anyway), so the receiver probes a named node it
    /// still holds rather than dropping it.
    pub failed: ThinVec<Id>,
    /// What is routed.
    pub body: RoutedBody<M>,
}

/// What a routed message carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoutedBody<M> {
    /// A node joining with id `key`; every node on the route adds its rows.
    Join(JoinRequest),
    /// Looks for a node to fill a routing table slot of `origin` (routing table repair).
    FindSlot {
        /// The node whose slot is empty.
        origin: Id,
        /// Row of the slot.
        row: u8,
        /// Column of the slot.
        column: u8,
    },
    /// An application message.
    App(M),
}

/// The join message as it travels: rows collected from the nodes on the route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// `rows[i]` holds the candidates for row i of the joining node's routing table.
    pub rows: Vec<Vec<Id>>,
    /// The neighborhood set of the first node on the route, the joiner's contact.
    pub neighborhood: Vec<Id>,
}

/// State for a joining node, sent by the node numerically closest to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReply {
    /// Routing table rows collected along the route.
    pub rows: Vec<Vec<Id>>,
    /// The sender's leaf set and the sender itself.
    pub leaf_set: Vec<Id>,
    /// The neighborhood set of the joiner's contact.
    pub neighborhood: Vec<Id>,
}

/// A probe: `ask` wants an answer, `answer` echoes the receiver's earlier `ask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// A nonce the receiver echoes back.
    pub ask: Option<u64>,
    /// The nonce of the receiver's probe this one answers.
    pub answer: Option<u64>,
}

/// Why bytes from the network were not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {size} bytes is over the limit of {MAX_FRAME_BYTES}")]
    TooLarge {
        /// Size of the frame.
        size: usize,
    },
    /// The frame has no version byte.
    #[error("empty frame")]
    Empty,
    /// The frame is of a wire version this node does not speak.
    #[error("wire version {0} is not supported (this node speaks version {WIRE_VERSION})")]
    Version(u8),
    /// The body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(postcard::Error),
    /// Bytes follow the message.
    #[error("{0} bytes of trailing garbage after the message")]
    Trailing(usize),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoding is larger than [`MAX_FRAME_BYTES`].
    #[error("message encodes to {size} bytes, over the limit of {MAX_FRAME_BYTES}")]
    TooLarge {
        /// Size of the encoding.
        size: usize,
    },
    /// Serialization failed.
    #[error("cannot encode message: {0}")]
    Serialize(postcard::Error),
}

/// Encodes `message` as a frame: the version byte, then postcard.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, EncodeError> {
    // A tuple is its fields back to back, and a `u8` is one byte: the version, then the
    // message. (`to_allocvec` copies byte strings with one `memcpy`; `to_extend` copies them
    // byte by byte.)
    let frame = postcard::to_allocvec(&(WIRE_VERSION, message)).map_err(EncodeError::Serialize)?;
    if frame.len() > MAX_FRAME_BYTES {
        return Err(EncodeError::TooLarge { size: frame.len() });
    }
    Ok(frame)
}

/// Decodes a frame made by [`encode`], checking its size first.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, DecodeError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { size: frame.len() });
    }
    let (&version, body) = frame.split_first().ok_or(DecodeError::Empty)?;
    if version != WIRE_VERSION {
        return Err(DecodeError::Version(version));
    }
    let (message, rest) = postcard::take_from_bytes(body).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Msg = Message<Vec<u8>>;

    fn samples() -> Vec<Msg> {
        let id = Id::from_u128(0xfeed_beef);
        vec![
            Message::Route(Routed {
                key: id,
                hops: 3,
                attempt: 0,
                failed: ThinVec::new(),
                body: RoutedBody::Join(JoinRequest { rows: vec![vec![id, id], vec![]], neighborhood: vec![id] }),
            }),
            Message::Route(Routed {
                key: id,
                hops: 0,
                attempt: 0,
                failed: ThinVec::new(),
                body: RoutedBody::App(vec![1, 2, 3]),
            }),
            Message::Route(Routed {
                key: id,
                hops: 4,
                attempt: 2,
                failed: thin_vec![id, Id::MAX],
                body: RoutedBody::App(vec![4]),
            }),
            Message::Route(Routed {
                key: id,
                hops: 1,
                attempt: 0,
                failed: ThinVec::new(),
                body: RoutedBody::FindSlot { origin: id, row: 2, column: 7 },
            }),
            Message::JoinReply(JoinReply { rows: vec![vec![id]], leaf_set: vec![id], neighborhood: vec![] }),
            Message::Probe(Probe { ask: Some(9), answer: None }),
            Message::LeafSet { leaves: vec![id, Id::MAX], answer: true },
            Message::LeafSetRequest,
            Message::NewNode { id, row: 2 },
            Message::RowRequest { row: 3 },
            Message::RowReply { row: 3, entries: vec![Entry { id, rtt: crate::time::Rtt::from_micros(1500) }] },
            Message::EntryRequest { slots: vec![(1, 2), (0, 5)] },
            Message::EntryReply { entries: vec![(1, 2, None), (0, 5, Some(id))] },
            Message::Leave,
            Message::Direct(vec![0; 100]),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            let frame = encode(&message).unwrap();
            assert_eq!(frame[0], WIRE_VERSION);
            assert_eq!(decode::<Msg>(&frame).unwrap(), message);
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(decode::<Msg>(&[]), Err(DecodeError::Empty));
        assert_eq!(decode::<Msg>(&[1, 0]), Err(DecodeError::Version(1)), "version 1 had no attempt numbers");
        assert_eq!(decode::<Msg>(&[2, 0]), Err(DecodeError::Version(2)), "version 2 asked for one slot at a time");
        assert_eq!(decode::<Msg>(&[3, 0]), Err(DecodeError::Version(3)), "version 3 offers did not say their purpose");
        assert!(matches!(decode::<Msg>(&vec![1; MAX_FRAME_BYTES + 1]), Err(DecodeError::TooLarge { .. })));
        let mut frame = encode(&Message::<Vec<u8>>::Leave).unwrap();
        frame.push(0);
        assert_eq!(decode::<Msg>(&frame), Err(DecodeError::Trailing(1)));
        let big = Message::Direct(vec![0u8; MAX_FRAME_BYTES]);
        assert!(matches!(encode(&big), Err(EncodeError::TooLarge { .. })));
    }

    #[test]
    fn truncated_frames_never_decode_to_the_message() {
        for message in samples() {
            let frame = encode(&message).unwrap();
            for cut in 0..frame.len() {
                assert_ne!(decode::<Msg>(&frame[..cut]).ok(), Some(message.clone()));
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Msg>(&bytes);
            let mut versioned = bytes.clone();
            versioned.insert(0, WIRE_VERSION);
            let _ = decode::<Msg>(&versioned);
        }

        #[test]
        fn mutated_frames_never_panic(index in any::<prop::sample::Index>(), value in any::<u8>(), which in any::<prop::sample::Index>()) {
            let samples = samples();
            let mut frame = encode(&samples[which.index(samples.len())]).unwrap();
            let i = index.index(frame.len());
            frame[i] = value;
            let _ = decode::<Msg>(&frame);
        }
    }
}
