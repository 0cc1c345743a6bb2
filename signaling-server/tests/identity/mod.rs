//! Test identities for signaling clients, shared by the relay and hostile-client tests and
//! the `hostile` example: an Ed25519 key from a number, its nodeId, and a signed `register`.

// Each user takes a part of this module.
#![allow(dead_code)]

use ed25519_dalek::{Signer as _, SigningKey};
use past_core::Id;
use past_signaling_proto::{ClientMessage, PeerId, register_transcript, to_hex};

/// A test identity: an Ed25519 key from a number, and its nodeId.
pub(crate) struct Key(SigningKey);

impl Key {
    /// The key numbered `n` (the same `n` always gives the same key).
    pub(crate) fn new(n: u64) -> Self {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        seed[31] = 0x5a;
        Key(SigningKey::from_bytes(&seed))
    }

    /// The nodeId of the key.
    pub(crate) fn id(&self) -> Id {
        Id::from_public_key(&self.0.verifying_key().to_bytes())
    }

    /// The nodeId as the server names peers.
    pub(crate) fn peer(&self) -> PeerId {
        PeerId::new(to_hex(&self.id().to_bytes())).expect("a valid peer id")
    }

    /// A `register` message answering the challenge `nonce`.
    pub(crate) fn register(&self, nonce: &str) -> ClientMessage {
        let peer = self.peer();
        let signature = self.0.sign(&register_transcript(nonce, &peer)).to_bytes();
        ClientMessage::Register {
            peer,
            public_key: to_hex(&self.0.verifying_key().to_bytes()),
            signature: to_hex(&signature),
        }
    }
}
