//! The loop's input queue, bounded.
//!
//! Browser callbacks push into it and the loop takes one input at a time. Data channel
//! messages are what could pile up (a peer writing faster than the node handles); past
//! [`MAX_QUEUED_DATA`] of them, a message is not queued and its connection is marked
//! overwhelmed: the loop then drops that connection (the peer was flooding us, and a
//! reliable channel with a message missing cannot go on). Requests from the page are
//! refused with an error past [`MAX_QUEUED_COMMANDS`]. Everything else (timer, signaling,
//! connection set-up) is bounded by the number of connections and always queued.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use past_link::ConnId;

use crate::driver::Input;
use crate::transport::TransportEvent;

/// Most data channel messages waiting for the loop.
pub(crate) const MAX_QUEUED_DATA: usize = 4096;

/// Most page requests waiting for the loop.
pub(crate) const MAX_QUEUED_COMMANDS: usize = 1024;

/// What is queued, shared by the senders and the receiver.
#[derive(Debug, Default)]
struct Counts {
    data: Cell<usize>,
    commands: Cell<usize>,
    overwhelmed: RefCell<BTreeSet<ConnId>>,
}

/// The sending side, cloned into every callback.
#[derive(Clone, Debug)]
pub(crate) struct Inputs {
    tx: UnboundedSender<Input>,
    counts: Rc<Counts>,
}

/// Why an input was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// Too much is waiting already.
    Full,
    /// The loop has stopped.
    Closed,
}

impl Inputs {
    /// Queues `input` within the bounds above.
    pub(crate) fn push(&self, input: Input) -> Result<(), PushError> {
        let counter = match &input {
            Input::Transport(conn, TransportEvent::Message(_)) => {
                if self.counts.data.get() >= MAX_QUEUED_DATA {
                    self.counts.overwhelmed.borrow_mut().insert(*conn);
                    return Err(PushError::Full);
                }
                Some(&self.counts.data)
            }
            Input::Command(_) => {
                if self.counts.commands.get() >= MAX_QUEUED_COMMANDS {
                    return Err(PushError::Full);
                }
                Some(&self.counts.commands)
            }
            _ => None,
        };
        self.tx.unbounded_send(input).map_err(|_| PushError::Closed)?;
        if let Some(counter) = counter {
            counter.set(counter.get() + 1);
        }
        Ok(())
    }

    /// Counts `input` as taken by the loop.
    pub(crate) fn taken(&self, input: &Input) {
        let counter = match input {
            Input::Transport(_, TransportEvent::Message(_)) => &self.counts.data,
            Input::Command(_) => &self.counts.commands,
            _ => return,
        };
        counter.set(counter.get().saturating_sub(1));
    }

    /// Connections whose messages overflowed the queue since the last call.
    pub(crate) fn take_overwhelmed(&self) -> BTreeSet<ConnId> {
        std::mem::take(&mut self.counts.overwhelmed.borrow_mut())
    }
}

/// A new input queue.
pub(crate) fn channel() -> (Inputs, UnboundedReceiver<Input>) {
    let (tx, rx) = unbounded();
    (Inputs { tx, counts: Rc::default() }, rx)
}
