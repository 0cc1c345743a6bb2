//! One connection as the manager sees it, and what waits for one peer.

use std::collections::VecDeque;

use past_core::Time;
use past_core::wire::Message;

use crate::app::AppMessage;
use crate::auth::Handshake;
use crate::frame::Reassembler;
use crate::manager::liveness::Unconfirmed;

/// The driver's name for one connection: a serial that is never reused, so an event of a
/// connection that was replaced is told from one of its successor.
pub type ConnId = u64;

/// Who offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We made the offer.
    Offerer,
    /// We answer the peer's offer.
    Answerer,
}

/// How the offer and answer travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Through the signaling server.
    Server,
    /// Routed through the Pastry overlay with key = the other node's id.
    Overlay,
}

/// Where a connection is in its life (one of these, never two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Offer and answer under way; the data channel is not open yet.
    Signaling,
    /// The data channel is open; each side proves its nodeId.
    Authenticating,
    /// The peer proved its id; Pastry messages flow.
    Open,
    /// Told to close: the close notice is on its way; the driver closes it after a moment.
    Closing,
}

/// The handshake's progress on an authenticating connection.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) handshake: Box<Handshake>,
    /// Our proof went out.
    pub(crate) proof_sent: bool,
    /// The peer's proof verified (and whether it said it was joined).
    pub(crate) peer_proved: bool,
}

/// What the attempt was charged to, given back or settled when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charge {
    /// A token of the manager's failure bucket.
    Failures,
    /// The allowance of the peer that told us about the id.
    Introducer(past_core::Id),
    /// Already settled.
    Settled,
}

/// A connection to one peer.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) role: Role,
    pub(crate) via: Via,
    /// The offerer's random number, echoed by overlay answers and rejects.
    pub(crate) session: u64,
    pub(crate) state: State,
    pub(crate) auth: Option<Auth>,
    pub(crate) frames: Reassembler,
    /// Our offer until its answer arrives, or our answer: kept so that a lost overlay
    /// signal can go again (along another first hop, or through the server).
    pub(crate) local_sdp: Option<String>,
    pub(crate) charge: Charge,
    /// An overlay offer already went again through the server.
    pub(crate) retried: bool,
    /// Times an unanswered overlay offer went again along another first hop.
    pub(crate) resends: u8,
    /// A digest of the peer's offer we answer, to tell a copy of it that came another way
    /// (answered again) from a new offer (which replaces this connection).
    pub(crate) offer_digest: Option<u64>,
    pub(crate) created: Time,
    pub(crate) last_used: Time,
    /// When the peer last sent a Pastry frame (or proved its id).
    pub(crate) last_heard: Time,
    /// The peer said it was joined in its hello.
    pub(crate) joined: bool,
    /// When the peer last sent a probe of its own (it keeps us in its tables).
    pub(crate) probed_us: Option<Time>,
    /// We opened it to carry PAST content (a chunk pull, a lookup's answer): it closes once
    /// idle for `ManagerConfig::transfer_idle`, unless the node's tables keep the peer.
    pub(crate) transfer: bool,
    /// Messages that came before the driver reported the channel open (a browser may run a
    /// channel's first messages before the promise that applied the answer): handled once it
    /// is, at most [`MAX_EARLY`] of them.
    pub(crate) early: Vec<Vec<u8>>,
    /// Messages sent that the peer has not confirmed reading, and the ping that will.
    pub(crate) unconfirmed: Unconfirmed,
}

/// Most messages kept from before a channel opened: the peer's hello and proof.
pub(crate) const MAX_EARLY: usize = 4;

impl Conn {
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
    }
}

/// Messages waiting for a peer's connection, bounded in count and bytes.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) messages: VecDeque<(Message<AppMessage>, usize)>,
    pub(crate) bytes: usize,
}

impl Pending {
    /// Queues `message` of `size` bytes, or gives it back when the queue is full.
    pub(crate) fn push(
        &mut self,
        message: Message<AppMessage>,
        size: usize,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<(), Message<AppMessage>> {
        if self.messages.len() >= max_messages || self.bytes + size > max_bytes {
            return Err(message);
        }
        self.bytes += size;
        self.messages.push_back((message, size));
        Ok(())
    }

    pub(crate) fn take(&mut self) -> impl Iterator<Item = Message<AppMessage>> + use<> {
        self.bytes = 0;
        std::mem::take(&mut self.messages).into_iter().map(|(m, _)| m)
    }

    /// Whether the first message waiting is PAST's (the connection is for a transfer).
    pub(crate) fn carries_past(&self) -> bool {
        matches!(self.messages.front(), Some((Message::Direct(AppMessage::Past(_)), _)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }
}
