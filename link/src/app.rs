//! The application messages of the browser and native drivers, carried by Pastry
//! (`past_core::Node<A>` with `A::Message = AppMessage`).
//!
//! - [`AppMessage::Signal`]: WebRTC signaling through the overlay. Once a node has joined, a
//!   connection to a node learnt from the overlay is set up by routing an SDP offer with key =
//!   the target's nodeId (Pastry delivers it to that node when it is alive); the answer is
//!   routed back with key = the requester's nodeId. The signaling server is then needed only
//!   for a node's first contact.
//! - [`AppMessage::Payload`]: bytes routed to a key and handed to the page at the node
//!   numerically closest to it (demos and tests).
//! - [`AppMessage::Past`]: the PAST storage layer's messages (inserts, lookups, reclaims,
//!   replica maintenance, and the chunk pulls that travel straight between two nodes).

use past_core::Id;
use past_core::past::PastMessage;
use serde::{Deserialize, Serialize};

/// Longest SDP carried through the overlay.
pub const MAX_SDP_BYTES: usize = 12 * 1024;

/// Largest [`Payload`] data.
pub const MAX_PAYLOAD_BYTES: usize = 60 * 1024;

/// An application message of the drivers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AppMessage {
    /// Connection signaling through the overlay.
    Signal(OverlaySignal),
    /// A payload for whoever is responsible for the key.
    Payload(Payload),
    /// A PAST message (boxed: some carry a certificate or a chunk).
    Past(Box<PastMessage>),
}

impl From<PastMessage> for AppMessage {
    fn from(message: PastMessage) -> Self {
        AppMessage::Past(Box::new(message))
    }
}

/// One step of setting up a connection between `from` and `to` through the overlay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlaySignal {
    /// The node that sends this step (not authenticated: the data channel handshake proves
    /// who is at the other end).
    pub from: Id,
    /// The node it is for; also the routing key.
    pub to: Id,
    /// The offerer's random number for this attempt, echoed in the answer.
    pub session: u64,
    /// What it carries.
    pub kind: SignalKind,
}

/// What an [`OverlaySignal`] carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignalKind {
    /// An SDP offer with every ICE candidate gathered.
    Offer {
        /// The SDP.
        sdp: String,
        /// The offerer opens the connection to carry PAST content: the answer does not wait
        /// for the pace at which the budget is spent (see `crate::manager::pace`).
        transfer: bool,
    },
    /// The answer to an offer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// The offer was refused (no capacity, or it reached another node than `to`).
    Reject {
        /// Why.
        reason: String,
    },
}

/// Bytes routed to a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The node that routed it.
    pub origin: Id,
    /// Whether `data` is UTF-8 text (a JS string) rather than bytes.
    pub text: bool,
    /// The content.
    pub data: Vec<u8>,
}

impl AppMessage {
    /// Whether the fields are within their limits (checked on receipt).
    pub fn within_bounds(&self) -> bool {
        match self {
            AppMessage::Signal(signal) => match &signal.kind {
                SignalKind::Offer { sdp, .. } | SignalKind::Answer { sdp } => sdp.len() <= MAX_SDP_BYTES,
                SignalKind::Reject { reason } => reason.len() <= 1024,
            },
            AppMessage::Payload(payload) => payload.data.len() <= MAX_PAYLOAD_BYTES,
            AppMessage::Past(message) => message.within_bounds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use past_core::wire::{Message, Routed, RoutedBody, ThinVec, decode, encode};

    #[test]
    fn app_messages_travel_in_pastry_frames() {
        let signal = AppMessage::Signal(OverlaySignal {
            from: Id::from_u128(1),
            to: Id::from_u128(2),
            session: 7,
            kind: SignalKind::Offer { sdp: "v=0\r\n".into(), transfer: true },
        });
        let message = Message::Route(Routed {
            key: Id::from_u128(2),
            hops: 0,
            attempt: 0,
            failed: ThinVec::new(),
            body: RoutedBody::App(signal),
        });
        let frame = encode(&message).unwrap();
        assert_eq!(decode::<Message<AppMessage>>(&frame).unwrap(), message);
        let big = AppMessage::Payload(Payload { origin: Id::ZERO, text: false, data: vec![0; MAX_PAYLOAD_BYTES + 1] });
        assert!(!big.within_bounds());
    }
}
