//! The driver's side of the signaling server: connecting and reconnecting with backoff,
//! registering (the server's challenge signed with the node's key), and handing the
//! welcome's contacts and the signals relayed by the server to the stack.

use std::time::Duration;

use past_core::Time;
use past_signaling_proto::{ClientMessage, ServerMessage, register_transcript, to_hex};
use wasm_bindgen_futures::spawn_local;

use super::{Driver, Input, MAX_BACKOFF, Signaling, id_of, now, peer_id};
use crate::identity::js_text;
use crate::signaling::{SignalingClient, SignalingEvent};

impl Driver {
    pub(super) fn connect_signaling(&mut self) {
        self.generation += 1;
        self.signaling = Signaling::Connecting;
        match SignalingClient::connect(&self.settings.signaling_url, self.generation, self.inputs.clone()) {
            Ok(socket) => self.socket = Some(socket),
            Err(err) => self.signaling_lost(&js_text(&err), now()),
        }
    }

    pub(super) fn signaling_lost(&mut self, reason: &str, t: Time) {
        self.socket = None;
        self.stack.set_server(false);
        let retry_at = t + self.backoff;
        self.page.error(&format!("signaling server unreachable ({reason}); retrying in {} s", self.backoff.as_secs()));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.signaling = Signaling::Offline { retry_at };
    }

    pub(super) fn on_signaling(&mut self, event: SignalingEvent, t: Time) {
        match event {
            SignalingEvent::Open => self.signaling = Signaling::Registering,
            SignalingEvent::Message(message) => self.on_server_message(message, t),
            SignalingEvent::Undecodable(err) => self.page.error(&format!("unreadable signaling message: {err}")),
            SignalingEvent::Closed { code, reason } => {
                let sep = if reason.is_empty() { "" } else { ": " };
                self.signaling_lost(&format!("closed, code {code}{sep}{reason}"), t);
            }
        }
    }

    fn on_server_message(&mut self, message: ServerMessage, t: Time) {
        match message {
            ServerMessage::Challenge { nonce } => {
                let Some(peer) = peer_id(self.id()) else { return };
                let signing = self.identity.sign(&register_transcript(&nonce, &peer));
                let (generation, tx) = (self.generation, self.inputs.clone());
                spawn_local(async move {
                    let result = signing.await;
                    let _ = tx.push(Input::RegisterSigned { generation, result });
                });
            }
            ServerMessage::Welcome { ice_servers, peers, overlay, .. } => {
                self.signaling = Signaling::Registered;
                self.page.server_version(overlay);
                self.backoff = Duration::from_secs(1);
                if self.settings.ice_servers.is_none() {
                    self.ice_servers = ice_servers;
                }
                self.stack.handle_welcome(peers.iter().filter_map(id_of).collect(), t);
            }
            ServerMessage::Signal { from, payload } => {
                if let Some(from) = id_of(&from) {
                    self.stack.handle_server_signal(from, payload, t);
                }
            }
            ServerMessage::Error { code, message } => self.page.error(&format!("signaling error {code}: {message}")),
            other => tracing::debug!("unexpected signaling message {other:?}"),
        }
    }

    pub(super) fn on_register_signed(&mut self, result: Result<[u8; 64], String>) {
        let (Some(peer), Some(socket)) = (peer_id(self.id()), &self.socket) else { return };
        let signature = match result {
            Ok(signature) => signature,
            Err(err) => return self.page.error(&format!("cannot sign the registration: {err}")),
        };
        let register = ClientMessage::Register {
            peer,
            public_key: to_hex(&self.identity.public_key),
            signature: to_hex(&signature),
        };
        if let Err(err) = socket.send(&register) {
            self.signaling_lost(&js_text(&err), now());
        }
    }
}
