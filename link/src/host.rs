//! The Pastry application of both drivers: overlay signals and payloads are kept for the
//! stack, PAST's messages go to the PAST storage layer it hosts.

use std::collections::VecDeque;

use past_core::past::{Past, PastHost};
use past_core::{Application, Forward, Id, Narrow, Net, Time};

use crate::app::AppMessage;

/// Most deliveries kept between two drains.
const MAX_DELIVERED: usize = 4096;

/// The Pastry application of both drivers: PAST, and what is delivered for the stack
/// (overlay signals, payloads).
#[derive(Debug)]
pub struct LinkApp {
    pub(crate) delivered: VecDeque<(Id, u8, AppMessage)>,
    past: Past,
}

impl LinkApp {
    /// The application with `past` as its storage layer.
    pub fn new(past: Past) -> Self {
        LinkApp { delivered: VecDeque::new(), past }
    }
}

impl Application for LinkApp {
    type Message = AppMessage;

    fn deliver(&mut self, net: &mut dyn Net<AppMessage>, key: Id, message: AppMessage, hops: u8) {
        match message {
            AppMessage::Past(message) => self.past.deliver(&mut Narrow(net), key, *message, hops),
            other if other.within_bounds() && self.delivered.len() < MAX_DELIVERED => {
                self.delivered.push_back((key, hops, other));
            }
            _ => {}
        }
    }

    fn forward(&mut self, net: &mut dyn Net<AppMessage>, key: Id, message: &mut AppMessage, next: Id) -> Forward {
        match message {
            AppMessage::Past(message) => self.past.forward(&mut Narrow(net), key, message, next),
            _ => Forward::Continue,
        }
    }

    fn receive(&mut self, net: &mut dyn Net<AppMessage>, from: Id, message: AppMessage) {
        if let AppMessage::Past(message) = message {
            self.past.receive(&mut Narrow(net), from, *message);
        }
    }

    fn send_failed(&mut self, net: &mut dyn Net<AppMessage>, to: Id, message: AppMessage) {
        if let AppMessage::Past(message) = message {
            self.past.send_failed(&mut Narrow(net), to, *message);
        }
    }

    fn leaf_set_changed(&mut self, net: &mut dyn Net<AppMessage>) {
        self.past.leaf_set_changed(&mut Narrow(net));
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.past.poll_timeout()
    }

    fn timeout(&mut self, net: &mut dyn Net<AppMessage>) {
        self.past.timeout(&mut Narrow(net));
    }
}

impl PastHost for LinkApp {
    fn past(&self) -> &Past {
        &self.past
    }

    fn past_mut(&mut self) -> &mut Past {
        &mut self.past
    }
}
