//! Data channel messages as the peer manager reads them: one header byte (auth, Pastry,
//! chunk start, chunk continuation, close), reassembled by `Reassembler` with the drivers'
//! limit (`wire::MAX_FRAME_BYTES`), the handshake's postcard `AuthMessage`, and the Pastry
//! frames that come out decoded as the manager decodes them.
//!
//! The input is a sequence of operations, so that small inputs make the 64 KiB messages and
//! 80 KiB chunked frames the reassembler must handle. Properties: no panic; the bytes held
//! never exceed the limit; a message over 64 KiB is refused; a frame that comes out is within
//! the limit; a frame sent the way drivers send it (`encode_pastry`) and an encoded auth
//! message come back unchanged; after an error the connection is dropped (a new connection
//! starts with a new reassembler).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use past_core::wire::{self, Message};
use past_link::frame::{self, FrameError, Incoming, MAX_MESSAGE_BYTES, Reassembler};
use past_link::{AppMessage, AuthMessage};

const LIMIT: usize = wire::MAX_FRAME_BYTES;

#[derive(Arbitrary, Debug)]
enum Op {
    /// A message exactly as given.
    Raw(Vec<u8>),
    /// A header byte then `len` copies of `fill`: large messages from small inputs.
    Filled { kind: u8, len: u16, fill: u8 },
    /// A chunk start announcing `size`, with `len` bytes of data.
    Start { size: u32, len: u16 },
    /// A handshake message as drivers encode it.
    Hello { version: u32, public_key: [u8; 32], nonce: [u8; 32], joined: bool },
    /// A proof as drivers encode it.
    Proof(Vec<u8>),
    /// A Pastry frame of `len` bytes (up to about 128 KiB), sent the way drivers send it.
    Frame { len: u16, extra: u16, fill: u8 },
}

fn push(r: &mut Reassembler, message: &[u8]) {
    let result = r.push(message);
    if message.len() > MAX_MESSAGE_BYTES {
        assert_eq!(result, Err(FrameError::TooLarge(message.len())));
    }
    match result {
        Ok(Some(Incoming::Pastry(frame))) => {
            assert!(frame.len() <= LIMIT);
            let _ = wire::decode::<Message<AppMessage>>(&frame);
        }
        Ok(Some(Incoming::Auth(auth))) => {
            assert_eq!(Reassembler::new(LIMIT).push(&frame::encode_auth(&auth)), Ok(Some(Incoming::Auth(auth))));
        }
        Ok(Some(Incoming::Ping(n))) => assert_eq!(frame::encode_ping(n), message),
        Ok(Some(Incoming::Pong(n))) => assert_eq!(frame::encode_pong(n), message),
        Ok(Some(Incoming::Close) | None) => {}
        // The manager drops the peer; a new connection gets a new reassembler.
        Err(_) => *r = Reassembler::new(LIMIT),
    }
    assert!(r.buffered() <= LIMIT);
}

fn round_trip_auth(message: AuthMessage, r: &mut Reassembler) {
    let bytes = frame::encode_auth(&message);
    assert_eq!(Reassembler::new(LIMIT).push(&bytes), Ok(Some(Incoming::Auth(message))));
    push(r, &bytes);
}

fuzz_target!(|ops: Vec<Op>| {
    let mut r = Reassembler::new(LIMIT);
    for op in ops {
        match op {
            Op::Raw(bytes) => push(&mut r, &bytes),
            Op::Filled { kind, len, fill } => {
                let mut message = vec![fill; usize::from(len) + 2];
                message[0] = kind;
                push(&mut r, &message);
            }
            Op::Start { size, len } => {
                let mut message = vec![frame::CHUNK_START];
                message.extend_from_slice(&size.to_be_bytes());
                message.resize(message.len() + usize::from(len), 0xa5);
                push(&mut r, &message);
            }
            Op::Hello { version, public_key, nonce, joined } => {
                round_trip_auth(AuthMessage::Hello { version, public_key, nonce, joined }, &mut r)
            }
            Op::Proof(signature) => round_trip_auth(AuthMessage::Proof { signature }, &mut r),
            Op::Frame { len, extra, fill } => {
                let len = usize::from(len) + usize::from(extra);
                let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                let Ok(messages) = frame::encode_pastry(&data, LIMIT) else {
                    assert!(len > LIMIT, "a frame within the limit is sendable");
                    continue;
                };
                assert!(messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
                let mut fresh = Reassembler::new(LIMIT);
                for (i, m) in messages.iter().enumerate() {
                    let got = fresh.push(m).expect("a sent frame reassembles");
                    if i + 1 == messages.len() {
                        assert_eq!(got, Some(Incoming::Pastry(data.clone())));
                    } else {
                        assert_eq!(got, None);
                    }
                }
                for m in &messages {
                    push(&mut r, m);
                }
            }
        }
    }
});
