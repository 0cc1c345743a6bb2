//! A Pastry frame as a driver receives it from an authenticated peer: the version byte and a
//! postcard `Message<AppMessage>` (Pastry routing, overlay signaling, payloads, PAST).
//!
//! Properties: decoding any bytes returns a value or an error, never panics; whatever decodes
//! re-encodes within the frame limit, decodes back to the same value, and its encoding is a
//! fixed point (postcard accepts over-long varints, so the bytes themselves need not be
//! canonical: docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use past_core::wire::{Message, RoutedBody, decode, encode};
use past_link::AppMessage;

fuzz_target!(|bytes: &[u8]| {
    let Ok(message) = decode::<Message<AppMessage>>(bytes) else { return };
    // What the receiving manager asks of every message it accepts.
    let app = match &message {
        Message::Direct(app) => Some(app),
        Message::Route(routed) => match &routed.body {
            RoutedBody::App(app) => Some(app),
            _ => None,
        },
        _ => None,
    };
    if let Some(AppMessage::Past(past)) = app {
        let _ = past.nodes();
    }
    let _ = app.map(AppMessage::within_bounds);
    let encoded = encode(&message).expect("a decoded message re-encodes");
    assert!(encoded.len() <= bytes.len(), "the canonical encoding is never longer");
    let again = decode::<Message<AppMessage>>(&encoded).expect("a re-encoded message decodes");
    assert_eq!(again, message);
    assert_eq!(encode(&again).expect("re-encodes"), encoded);
});
