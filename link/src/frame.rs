//! Framing on the data channel: every message starts with one byte saying what follows.
//!
//! ```text
//! 0x00 AUTH         postcard AuthMessage (a hello starts with the sender's version)
//! 0x01 PASTRY       a whole Pastry frame (past_core::wire::encode: version byte + postcard)
//! 0x02 CHUNK_START  u32 big-endian total length, then the first bytes of a Pastry frame
//! 0x03 CHUNK_MORE   the next bytes of the frame being reassembled
//! 0x04 CLOSE        the sender closes this connection on purpose (it keeps too many); the
//!                   receiver must not take the peer for failed
//! 0x05 PING         u32 big-endian number: answer with a PONG of that number at once
//! 0x06 PONG         u32 big-endian number of the PING it answers
//! ```
//!
//! A data channel message is at most [`MAX_MESSAGE_BYTES`] (64 KiB, which the native
//! `webrtc` crate and every browser accept). A Pastry frame that does not fit in one message
//! is split into chunks; the sender sends them back to back on the ordered channel, so the
//! receiver reassembles one frame at a time. Every length is checked before anything is
//! allocated: a message over the limit, a chunk announcing more than the receiver's limit,
//! more bytes than announced, or an unknown type is a [`FrameError`], and the driver drops
//! the peer.

use serde::Deserialize;

use crate::auth::AuthMessage;
use crate::version::{OVERLAY_VERSION, version_text};

/// Largest data channel message sent or accepted.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Header byte of an authentication message.
pub const AUTH: u8 = 0;
/// Header byte of a whole Pastry frame.
pub const PASTRY: u8 = 1;
/// Header byte of the first chunk of a Pastry frame.
pub const CHUNK_START: u8 = 2;
/// Header byte of a following chunk.
pub const CHUNK_MORE: u8 = 3;
/// Header byte of a close notice.
pub const CLOSE: u8 = 4;
/// Header byte of a liveness check: the peer answers with a [`PONG`] of the same number.
/// The channel is ordered, so the answer shows the peer read everything sent before it.
pub const PING: u8 = 5;
/// Header byte of the answer to a [`PING`].
pub const PONG: u8 = 6;

/// Why a data channel message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// An empty message.
    #[error("empty message")]
    Empty,
    /// A message over [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// A chunked frame announced more than the receiver accepts.
    #[error("chunked frame of {size} bytes is over the limit of {limit}")]
    FrameTooLarge {
        /// Announced size.
        size: usize,
        /// The receiver's limit.
        limit: usize,
    },
    /// Chunks that do not add up (more bytes than announced, a start inside a frame, a
    /// continuation without a start, a chunked frame small enough for one message).
    #[error("bad chunk sequence: {0}")]
    BadChunk(&'static str),
    /// An unknown header byte.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// An authentication message that does not decode.
    #[error("malformed authentication message")]
    BadAuth,
    /// A hello of another overlay version, in a layout this version cannot read whole
    /// (its version, the first field, could be read).
    #[error("a hello of overlay version {}, this node speaks {}", version_text(*.0), version_text(OVERLAY_VERSION))]
    OtherVersion(u32),
    /// A ping or pong whose number is not four bytes.
    #[error("ping or pong with {0} bytes of number instead of 4")]
    BadNumber(usize),
    /// A frame that cannot be encoded.
    #[error("frame of {0} bytes is over the limit")]
    Unsendable(usize),
}

/// A complete message from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A handshake message.
    Auth(AuthMessage),
    /// A Pastry frame, to decode with `past_core::wire::decode`.
    Pastry(Vec<u8>),
    /// The peer closes the connection on purpose.
    Close,
    /// The peer checks we are alive: answer with [`encode_pong`] of this number.
    Ping(u32),
    /// The peer answers our [`encode_ping`] of this number.
    Pong(u32),
}

/// The data channel message announcing a deliberate close.
pub fn encode_close() -> Vec<u8> {
    vec![CLOSE]
}

/// The data channel message asking the peer to answer with a pong of `number`.
pub fn encode_ping(number: u32) -> Vec<u8> {
    numbered(PING, number)
}

/// The data channel message answering the peer's ping of `number`.
pub fn encode_pong(number: u32) -> Vec<u8> {
    numbered(PONG, number)
}

fn numbered(kind: u8, number: u32) -> Vec<u8> {
    let mut message = Vec::with_capacity(5);
    message.push(kind);
    message.extend_from_slice(&number.to_be_bytes());
    message
}

/// The data channel message carrying `message`.
pub fn encode_auth(message: &AuthMessage) -> Vec<u8> {
    // Serializing a fixed-shape enum into a Vec cannot fail; an empty body would be
    // refused by the peer rather than panic here.
    postcard::to_extend(message, vec![AUTH]).unwrap_or_else(|_| vec![AUTH])
}

/// The data channel messages carrying the Pastry frame `frame` (one, or chunks), refusing
/// a frame over `limit` bytes.
pub fn encode_pastry(frame: &[u8], limit: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    if frame.len() > limit || u32::try_from(frame.len()).is_err() {
        return Err(FrameError::Unsendable(frame.len()));
    }
    if frame.len() < MAX_MESSAGE_BYTES {
        let mut message = Vec::with_capacity(frame.len() + 1);
        message.push(PASTRY);
        message.extend_from_slice(frame);
        return Ok(vec![message]);
    }
    let first = MAX_MESSAGE_BYTES - 5;
    let mut messages = Vec::with_capacity(frame.len() / (MAX_MESSAGE_BYTES - 1) + 2);
    let mut start = Vec::with_capacity(MAX_MESSAGE_BYTES);
    start.push(CHUNK_START);
    start.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    start.extend_from_slice(&frame[..first]);
    messages.push(start);
    for piece in frame[first..].chunks(MAX_MESSAGE_BYTES - 1) {
        let mut more = Vec::with_capacity(piece.len() + 1);
        more.push(CHUNK_MORE);
        more.extend_from_slice(piece);
        messages.push(more);
    }
    Ok(messages)
}

/// Turns the messages of one peer back into frames, a chunked frame at a time.
#[derive(Debug)]
pub struct Reassembler {
    limit: usize,
    partial: Option<(usize, Vec<u8>)>,
}

impl Reassembler {
    /// A reassembler accepting frames of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Reassembler { limit, partial: None }
    }

    /// Bytes held for a frame in progress.
    pub fn buffered(&self) -> usize {
        self.partial.as_ref().map_or(0, |(_, buf)| buf.len())
    }

    /// Takes one data channel message; returns a complete message when there is one.
    pub fn push(&mut self, message: &[u8]) -> Result<Option<Incoming>, FrameError> {
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(FrameError::TooLarge(message.len()));
        }
        let (&kind, body) = message.split_first().ok_or(FrameError::Empty)?;
        match kind {
            AUTH => {
                self.no_partial()?;
                postcard::from_bytes(body).map(|m| Some(Incoming::Auth(m))).map_err(|_| auth_error(body))
            }
            PASTRY => {
                self.no_partial()?;
                Ok(Some(Incoming::Pastry(body.to_vec())))
            }
            CHUNK_START => {
                self.no_partial()?;
                let (size, data) = body.split_first_chunk::<4>().ok_or(FrameError::BadChunk("short chunk header"))?;
                let size = u32::from_be_bytes(*size) as usize;
                if size > self.limit {
                    return Err(FrameError::FrameTooLarge { size, limit: self.limit });
                }
                if size < MAX_MESSAGE_BYTES || data.len() >= size {
                    return Err(FrameError::BadChunk("a chunked frame that fits in one message"));
                }
                let mut buf = Vec::with_capacity(size);
                buf.extend_from_slice(data);
                self.partial = Some((size, buf));
                Ok(None)
            }
            CHUNK_MORE => {
                let Some((size, buf)) = self.partial.as_mut() else {
                    return Err(FrameError::BadChunk("continuation without a start"));
                };
                if buf.len() + body.len() > *size {
                    return Err(FrameError::BadChunk("more bytes than announced"));
                }
                buf.extend_from_slice(body);
                if buf.len() == *size {
                    let (_, frame) = self.partial.take().unwrap_or_default();
                    return Ok(Some(Incoming::Pastry(frame)));
                }
                Ok(None)
            }
            CLOSE => Ok(Some(Incoming::Close)),
            PING => number(body).map(|n| Some(Incoming::Ping(n))),
            PONG => number(body).map(|n| Some(Incoming::Pong(n))),
            other => Err(FrameError::UnknownType(other)),
        }
    }

    fn no_partial(&self) -> Result<(), FrameError> {
        if self.partial.is_some() { Err(FrameError::BadChunk("a new message inside a chunked frame")) } else { Ok(()) }
    }
}

/// The first field of a hello of any version: its version.
#[derive(Deserialize)]
enum HelloVersion {
    Hello { version: u32 },
}

/// Length of a hello of the code before versions (tag, key, nonce, joined), which
/// [`auth_error`] reports as version 0. No versioned hello is that short.
const UNVERSIONED_HELLO: usize = 1 + 32 + 32 + 1;

/// Why an authentication message did not decode: a hello of another version, whose layout
/// may differ after its version, or a malformed message.
fn auth_error(body: &[u8]) -> FrameError {
    if body.len() == UNVERSIONED_HELLO && body[0] == 0 {
        return FrameError::OtherVersion(0);
    }
    match postcard::take_from_bytes::<HelloVersion>(body) {
        Ok((HelloVersion::Hello { version }, _)) if version != OVERLAY_VERSION => FrameError::OtherVersion(version),
        _ => FrameError::BadAuth,
    }
}

/// The number of a ping or pong: exactly four bytes. Pings and pongs may come between the
/// chunks of a frame (they are sent as soon as they are due).
fn number(body: &[u8]) -> Result<u32, FrameError> {
    let bytes: [u8; 4] = body.try_into().map_err(|_| FrameError::BadNumber(body.len()))?;
    Ok(u32::from_be_bytes(bytes))
}

/// One data channel message, as both drivers hand it to their channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// A text message (sent as a WebRTC string message).
    Text(String),
    /// A binary message.
    Bytes(Vec<u8>),
}

impl Data {
    /// Size on the wire, in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(s) => s.len(),
            Self::Bytes(b) => b.len(),
        }
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize) {
        let frame: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let messages = encode_pastry(&frame, 1 << 20).unwrap();
        assert!(messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
        let mut r = Reassembler::new(1 << 20);
        let mut out = None;
        for (i, m) in messages.iter().enumerate() {
            let got = r.push(m).unwrap();
            assert_eq!(got.is_some(), i + 1 == messages.len());
            out = got;
        }
        assert_eq!(out, Some(Incoming::Pastry(frame)));
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn frames_of_every_size_round_trip() {
        for len in [0, 1, 100, MAX_MESSAGE_BYTES - 1, MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1, 80 * 1024, 300_000] {
            round_trip(len);
        }
    }

    #[test]
    fn auth_round_trips() {
        let hello = AuthMessage::Hello { version: OVERLAY_VERSION, public_key: [1; 32], nonce: [2; 32], joined: true };
        let mut r = Reassembler::new(1024);
        assert_eq!(r.push(&encode_auth(&hello)).unwrap(), Some(Incoming::Auth(hello)));
        assert_eq!(r.push(&encode_close()).unwrap(), Some(Incoming::Close));
    }

    #[test]
    fn a_hello_of_another_layout_still_tells_its_version() {
        // A later version whose hello has other fields after the version: tag 0 (hello),
        // then the version as a varint, then what this version cannot read.
        let newer = OVERLAY_VERSION + 1;
        let mut message = vec![AUTH];
        message.extend(postcard::to_allocvec(&(0u8, newer, "a field of the future")).unwrap());
        let mut r = Reassembler::new(1024);
        assert_eq!(r.push(&message), Err(FrameError::OtherVersion(newer)));
        // The same layout with our own version is simply malformed.
        let mut ours = vec![AUTH];
        ours.extend(postcard::to_allocvec(&(0u8, OVERLAY_VERSION, "a field of the future")).unwrap());
        assert_eq!(r.push(&ours), Err(FrameError::BadAuth));
        // The hello of the code before versions: key, nonce and joined, no version.
        let mut unversioned = vec![AUTH];
        unversioned.extend(postcard::to_allocvec(&(0u8, [1u8; 32], [2u8; 32], true)).unwrap());
        assert_eq!(r.push(&unversioned), Err(FrameError::OtherVersion(0)));
        assert_eq!(
            FrameError::OtherVersion(0).to_string(),
            format!(
                "a hello of overlay version from before version numbers, this node speaks {}",
                version_text(OVERLAY_VERSION)
            )
        );
        // A hello of another version in our layout decodes; the handshake refuses it once
        // its proof verifies.
        let older = AuthMessage::Hello { version: 1, public_key: [1; 32], nonce: [2; 32], joined: false };
        assert_eq!(r.push(&encode_auth(&older)).unwrap(), Some(Incoming::Auth(older)));
    }

    #[test]
    fn pings_and_pongs_round_trip_even_between_chunks() {
        let mut r = Reassembler::new(1 << 20);
        assert_eq!(r.push(&encode_ping(7)).unwrap(), Some(Incoming::Ping(7)));
        let frame = vec![3u8; MAX_MESSAGE_BYTES + 10];
        let messages = encode_pastry(&frame, 1 << 20).unwrap();
        r.push(&messages[0]).unwrap();
        assert_eq!(r.push(&encode_pong(u32::MAX)).unwrap(), Some(Incoming::Pong(u32::MAX)));
        assert_eq!(r.push(&messages[1]).unwrap(), Some(Incoming::Pastry(frame)));
        assert_eq!(r.push(&[PING, 1, 2, 3]), Err(FrameError::BadNumber(3)));
        assert_eq!(r.push(&[PONG, 1, 2, 3, 4, 5]), Err(FrameError::BadNumber(5)));
    }

    #[test]
    fn garbage_and_oversized_messages_are_errors() {
        let mut r = Reassembler::new(80 * 1024);
        assert_eq!(r.push(&[]), Err(FrameError::Empty));
        assert_eq!(r.push(&[9, 1, 2]), Err(FrameError::UnknownType(9)));
        assert_eq!(r.push(&[AUTH, 0xff, 0xff]), Err(FrameError::BadAuth));
        assert_eq!(r.push(&vec![PASTRY; MAX_MESSAGE_BYTES + 1]), Err(FrameError::TooLarge(MAX_MESSAGE_BYTES + 1)));
        let mut huge = vec![CHUNK_START];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(r.push(&huge), Err(FrameError::FrameTooLarge { .. })));
        assert_eq!(r.push(&[CHUNK_MORE, 1]), Err(FrameError::BadChunk("continuation without a start")));
        let mut small = vec![CHUNK_START];
        small.extend_from_slice(&10u32.to_be_bytes());
        assert!(matches!(r.push(&small), Err(FrameError::BadChunk(_))));
        assert!(matches!(encode_pastry(&[0; 100], 10), Err(FrameError::Unsendable(100))));
    }

    #[test]
    fn chunks_must_add_up() {
        let frame = vec![5u8; MAX_MESSAGE_BYTES + 10];
        let messages = encode_pastry(&frame, 1 << 20).unwrap();
        let mut r = Reassembler::new(1 << 20);
        r.push(&messages[0]).unwrap();
        assert!(matches!(r.push(&[PASTRY, 1]), Err(FrameError::BadChunk(_))));
        let mut too_much = messages[1].clone();
        too_much.extend_from_slice(&[0; 100]);
        let mut r = Reassembler::new(1 << 20);
        r.push(&messages[0]).unwrap();
        assert_eq!(r.push(&too_much), Err(FrameError::BadChunk("more bytes than announced")));
    }
}
