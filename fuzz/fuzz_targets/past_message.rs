//! PAST messages as the core reads them: `Message<PastMessage>` frames (the simulator's and
//! the core's own message type), decoded and, when within their bounds, handed to a lone
//! PAST node, which must not panic either.
//!
//! Properties as for `pastry_wire`: no panic, and decode(encode(decode(bytes))) equals
//! decode(bytes) with a fixed-point encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use past_core::past::{Ed25519Signer, Keyring, MemoryStore, Past, PastConfig, PastMessage, SyncPast};
use past_core::wire::{Message, RoutedBody, decode, encode};
use past_core::{Config, Id, Node, Time};

fuzz_target!(|bytes: &[u8]| {
    let Ok(message) = decode::<Message<PastMessage>>(bytes) else { return };
    let encoded = encode(&message).expect("a decoded message re-encodes");
    assert!(encoded.len() <= bytes.len(), "the canonical encoding is never longer");
    let again = decode::<Message<PastMessage>>(&encoded).expect("a re-encoded message decodes");
    assert_eq!(again, message);
    assert_eq!(encode(&again).expect("re-encodes"), encoded);

    let past = match &message {
        Message::Direct(past) => Some(past),
        Message::Route(routed) => match &routed.body {
            RoutedBody::App(past) => Some(past),
            _ => None,
        },
        _ => None,
    };
    if past.is_some_and(|p| !p.within_bounds()) {
        return; // a node drops it without looking further
    }
    let key = Ed25519Signer::from_seed([3; 32]);
    let id = key.node_id();
    let mut ring = Keyring::new();
    let public = ring.add(key);
    let past = Past::new(PastConfig::new(public, 1 << 20));
    let mut node = Node::new(id, Config::with_seed(1), SyncPast::new(past, MemoryStore::new(), ring));
    node.join(None, Time::ZERO);
    node.handle_message(Id::from_u128(5), message, Time::from_micros(1000));
    while node.poll_transmit().is_some() {}
    node.handle_timeout(Time::from_micros(1_000_000_000));
    while node.poll_transmit().is_some() {}
});
