//! The signaling JSON: what the server parses from a client (`ClientMessage::from_json`)
//! and what nodes parse from the server (`ServerMessage::from_json`), on the same text.
//!
//! Properties: no panic; a message that parses re-serializes to JSON that parses back to the
//! same value (JSON text is not canonical, so only values are compared), when that JSON is
//! within the message limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use past_signaling_proto::{ClientMessage, MAX_MESSAGE_BYTES, ServerMessage};

fuzz_target!(|bytes: &[u8]| {
    // WebSocket text frames are UTF-8 (tungstenite and axum check it first).
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(message) = ClientMessage::from_json(text) {
        let json = message.to_json();
        if json.len() <= MAX_MESSAGE_BYTES {
            assert_eq!(ClientMessage::from_json(&json).expect("re-encoded client message parses"), message);
        }
    }
    if let Ok(message) = ServerMessage::from_json(text) {
        let json = message.to_json();
        if json.len() <= MAX_MESSAGE_BYTES {
            assert_eq!(ServerMessage::from_json(&json).expect("re-encoded server message parses"), message);
        }
    }
});
