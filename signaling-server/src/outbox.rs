//! Each client's outgoing queue, bounded in bytes ([`crate::Config::queue_bytes`]) rather
//! than in messages: a client that does not read holds at most that many bytes of messages
//! (counted until they are written to its socket), whatever their size.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use past_signaling_proto::ServerMessage;
use tokio::sync::mpsc;

/// The sending side: cloned into the hub for relays.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<String>,
    queued: Arc<AtomicUsize>,
    max: usize,
}

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// The queue holds its maximum of bytes.
    Full,
    /// The socket's writer is gone.
    Closed,
}

/// The receiving side, drained by the socket's writer task.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<String>,
    queued: Arc<AtomicUsize>,
}

/// A queue of at most `max` bytes.
pub(crate) fn outbox(max: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (Outbox { tx, queued: queued.clone(), max }, Inbox { rx, queued })
}

impl Outbox {
    /// Queues `msg` if its JSON fits.
    pub(crate) fn push(&self, msg: &ServerMessage) -> Result<(), Full> {
        self.push_text(msg.to_json())
    }

    /// Queues one JSON text if it fits.
    pub(crate) fn push_text(&self, text: String) -> Result<(), Full> {
        let len = text.len();
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| q.checked_add(len).filter(|&n| n <= self.max))
            .map_err(|_| Full::Full)?;
        self.tx.send(text).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            Full::Closed
        })
    }
}

impl Inbox {
    /// The next message; `None` once every [`Outbox`] is gone.
    pub(crate) async fn recv(&mut self) -> Option<String> {
        self.rx.recv().await
    }

    /// The next message if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<String> {
        self.rx.try_recv().ok()
    }

    /// `len` bytes left the queue (written to the socket, or abandoned).
    pub(crate) fn done(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_bytes_until_written() {
        let (outbox, mut inbox) = outbox(10);
        assert_eq!(outbox.push_text("123456".into()), Ok(()));
        assert_eq!(outbox.push_text("12345".into()), Err(Full::Full));
        assert_eq!(outbox.push_text("1234".into()), Ok(()));
        let first = inbox.recv().await.expect("queued");
        // Taken but not written yet: still counted.
        assert_eq!(outbox.push_text("1".into()), Err(Full::Full));
        inbox.done(first.len());
        assert_eq!(outbox.push_text("123456".into()), Ok(()));
        drop(inbox);
        assert_eq!(outbox.push_text("".into()), Err(Full::Closed));
    }
}
