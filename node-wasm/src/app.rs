//! The application the browser node runs on Pastry: it takes what is delivered to this node
//! and leaves it for the driver (overlay signals to act on, payloads to show the page).
//!
//! PAST plugs in here later: `AppMessage` gets a PAST variant and this application hands
//! those messages to a `past_core::past::Past` it owns, with IndexedDB as its store.

use std::collections::VecDeque;

use past_core::{Application, Id, Overlay};
use past_link::{AppMessage, OverlaySignal, Payload};

/// Something delivered to this node, for the driver.
#[derive(Debug)]
pub(crate) enum Delivered {
    /// A connection signal routed to us (or to a dead node, and we are the closest).
    Signal(OverlaySignal),
    /// A payload routed to a key we are responsible for.
    Payload { key: Id, hops: u8, payload: Payload },
}

/// Most deliveries kept for the driver between two drains.
const MAX_PENDING: usize = 4096;

/// The browser node's application.
#[derive(Debug, Default)]
pub(crate) struct BrowserApp {
    delivered: VecDeque<Delivered>,
}

impl BrowserApp {
    /// The next delivery for the driver.
    pub(crate) fn take(&mut self) -> Option<Delivered> {
        self.delivered.pop_front()
    }

    fn push(&mut self, delivered: Delivered) {
        if self.delivered.len() < MAX_PENDING {
            self.delivered.push_back(delivered);
        }
    }
}

impl Application for BrowserApp {
    type Message = AppMessage;

    fn deliver(&mut self, _: &mut Overlay<AppMessage>, key: Id, message: AppMessage, hops: u8) {
        if !message.within_bounds() {
            return;
        }
        match message {
            AppMessage::Signal(signal) => self.push(Delivered::Signal(signal)),
            AppMessage::Payload(payload) => self.push(Delivered::Payload { key, hops, payload }),
            _ => {}
        }
    }
}
