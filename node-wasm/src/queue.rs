//! Backpressure for one data channel, as plain data (no browser types, tested natively).
//!
//! The browser buffers whatever `RTCDataChannel.send` is given. Measured here (see
//! `shared/design.md`), keeping that buffer small is what keeps throughput steady: we send
//! while `bufferedAmount` is below [`HIGH_WATER`], queue the rest, and resume when the
//! channel fires `bufferedamountlow` at [`LOW_WATER`]. The queue itself is bounded by
//! [`MAX_QUEUED_BYTES`] so a fast producer gets an error instead of unbounded memory.

use std::collections::VecDeque;

/// Largest message the browser accepts on a data channel (`RTCSctpTransport.maxMessageSize`
/// in Chromium); `send` throws above it.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Stop handing messages to the channel above this many buffered bytes.
pub const HIGH_WATER: u32 = 256 * 1024;

/// `bufferedAmountLowThreshold`: resume sending when the buffer drains to this.
pub const LOW_WATER: u32 = 64 * 1024;

/// Most bytes waiting in our queue per peer (on top of the browser's buffer).
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

pub use past_link::Data;

/// Why a message was not accepted for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// The message exceeds [`MAX_MESSAGE_BYTES`].
    TooLarge(usize),
    /// The queue holds [`MAX_QUEUED_BYTES`] already.
    Full,
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge(len) => {
                write!(f, "message of {len} bytes exceeds the data channel limit of {MAX_MESSAGE_BYTES} bytes")
            }
            Self::Full => write!(f, "send queue full ({MAX_QUEUED_BYTES} bytes waiting)"),
        }
    }
}

/// Messages waiting for room in one channel's buffer.
#[derive(Debug, Default)]
pub struct SendQueue {
    items: VecDeque<Data>,
    bytes: usize,
}

impl SendQueue {
    /// Queues `data` behind anything already waiting.
    pub fn push(&mut self, data: Data) -> Result<(), QueueError> {
        let len = data.len();
        if len > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(len));
        }
        if self.bytes + len > MAX_QUEUED_BYTES {
            return Err(QueueError::Full);
        }
        self.bytes += len;
        self.items.push_back(data);
        Ok(())
    }

    /// Hands queued messages to `send` in order while the channel's buffer, starting at
    /// `buffered`, stays below [`HIGH_WATER`]. Stops at the first error of `send` (the
    /// message stays queued) and returns it.
    pub fn drain<E>(&mut self, mut buffered: u32, mut send: impl FnMut(&Data) -> Result<(), E>) -> Result<(), E> {
        while buffered < HIGH_WATER {
            let Some(next) = self.items.front() else {
                break;
            };
            send(next)?;
            let len = next.len();
            self.bytes -= len;
            buffered = buffered.saturating_add(u32::try_from(len).unwrap_or(u32::MAX));
            self.items.pop_front();
        }
        Ok(())
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Data {
        Data::Bytes(vec![0; n])
    }

    #[test]
    fn sends_until_the_high_water_mark_then_waits() {
        let mut q = SendQueue::default();
        for _ in 0..10 {
            q.push(bytes(64 * 1024)).expect("fits");
        }
        let mut sent = 0;
        q.drain(0, |_| {
            sent += 1;
            Ok::<_, ()>(())
        })
        .expect("no error");
        assert_eq!(sent, 4, "64 KiB x 4 reaches 256 KiB buffered");
        assert_eq!(q.len(), 6);
        assert_eq!(q.bytes(), 6 * 64 * 1024);

        // The channel drained to the low-water mark: more goes out.
        let mut sent = 0;
        q.drain(LOW_WATER, |_| {
            sent += 1;
            Ok::<_, ()>(())
        })
        .expect("no error");
        assert_eq!(sent, 3);
    }

    #[test]
    fn keeps_order_and_stops_at_the_first_send_error() {
        let mut q = SendQueue::default();
        for s in ["a", "b", "c"] {
            q.push(Data::Text(s.into())).expect("fits");
        }
        let mut seen = Vec::new();
        let err = q.drain(0, |d| {
            if *d == Data::Text("b".into()) {
                return Err("closed");
            }
            seen.push(d.clone());
            Ok(())
        });
        assert_eq!(err, Err("closed"));
        assert_eq!(seen, vec![Data::Text("a".into())]);
        assert_eq!(q.len(), 2, "the failed message stays queued");
    }

    #[test]
    fn rejects_oversized_messages_and_bounds_the_queue() {
        let mut q = SendQueue::default();
        assert_eq!(q.push(bytes(MAX_MESSAGE_BYTES + 1)), Err(QueueError::TooLarge(MAX_MESSAGE_BYTES + 1)));
        q.push(bytes(MAX_MESSAGE_BYTES)).expect("the limit itself fits");
        while q.bytes() + MAX_MESSAGE_BYTES <= MAX_QUEUED_BYTES {
            q.push(bytes(MAX_MESSAGE_BYTES)).expect("fits");
        }
        assert_eq!(q.push(bytes(MAX_MESSAGE_BYTES)), Err(QueueError::Full));
        assert_eq!(Data::Text("é".into()).len(), 2, "text counts UTF-8 bytes");
    }
}
