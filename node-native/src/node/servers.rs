//! The node's signaling servers: the first, registered with at start, and any more it
//! registers with, so that networks bootstrapped through different servers form one ring
//! (the stack introduces a later welcome's contacts to the core, and the rings merge). A
//! server whose socket closes is connected to again, after a wait that doubles up to
//! [`MAX_RETRY`]. Signals for the server go to every server we are registered with: the one
//! that knows the target relays them; the others answer that they do not know it.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use past_core::{Id, Time};
use past_link::Stack;
use past_link::version::{self, OVERLAY_VERSION, version_text};
use past_signaling_proto::{ClientMessage, ErrorCode, ServerMessage, SignalPayload};
use tokio::sync::mpsc::Sender;

use super::{Input, id_of};
use crate::peer_id;
use crate::signaling::{SignalingClient, SignalingEvent, SignalingWriter, registration};

/// First wait before connecting again to a server whose socket closed.
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Longest wait between two attempts to connect to a server.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// One signaling server.
struct Server {
    url: String,
    writer: Option<SignalingWriter>,
    /// The server welcomed us on the current socket.
    registered: bool,
    /// The wait before the next attempt to connect.
    retry: Duration,
}

/// Every signaling server of the node.
pub(crate) struct Servers {
    servers: Vec<Server>,
    /// Signs the registrations (the node's key).
    key: SigningKey,
    inputs: Sender<Input>,
    /// Shutting down: no more connections.
    closing: bool,
}

/// What a server said that the node acts on.
pub(crate) enum Heard {
    /// Nothing for the node.
    Nothing,
    /// A problem to report to the owner.
    Trouble(String),
}

/// What to tell the owner when a signaling server serves a page of overlay version
/// `served` that is not this node's: the nodes of that page will refuse this one.
pub(crate) fn outdated(served: u32) -> Option<String> {
    version::outdated_by(served).then(|| {
        format!(
            "the server serves overlay version {}, this node runs {}: its pages' nodes refuse this node; \
             update it",
            version_text(served),
            version_text(OVERLAY_VERSION)
        )
    })
}

impl Servers {
    /// The servers at `urls`; the first is registered already on `first`.
    pub(crate) fn new(urls: Vec<String>, first: SignalingWriter, key: SigningKey, inputs: Sender<Input>) -> Self {
        let mut servers: Vec<Server> =
            urls.into_iter().map(|url| Server { url, writer: None, registered: false, retry: FIRST_RETRY }).collect();
        if let Some(server) = servers.first_mut() {
            server.writer = Some(first);
            server.registered = true;
        }
        Self { servers, key, inputs, closing: false }
    }

    /// Connects to the servers other than the first.
    pub(crate) fn connect_others(&self) {
        for index in 1..self.servers.len() {
            self.connect(index, Duration::ZERO);
        }
    }

    /// Connects to server `index` after `wait`, in a task; the socket is handed back as
    /// [`Input::ServerConnected`], a failure as a closed socket.
    fn connect(&self, index: usize, wait: Duration) {
        let (url, inputs) = (self.servers[index].url.clone(), self.inputs.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let input = match SignalingClient::connect(&url, index, inputs.clone()).await {
                Ok(client) => Input::ServerConnected(index, client.into_writer()),
                Err(err) => Input::Signaling(index, SignalingEvent::Closed(format!("cannot connect to {url}: {err}"))),
            };
            let _ = inputs.send(input).await;
        });
    }

    /// The socket to server `index` is open: the registration follows its challenge.
    pub(crate) fn connected(&mut self, index: usize, writer: SignalingWriter) {
        if let Some(server) = self.servers.get_mut(index).filter(|_| !self.closing) {
            server.writer = Some(writer);
            server.registered = false;
        }
    }

    /// Something server `index` sent (or its socket closing).
    pub(crate) fn heard(&mut self, index: usize, event: SignalingEvent, stack: &mut Stack, t: Time) -> Heard {
        let several = self.servers.len() > 1;
        let Some(server) = self.servers.get_mut(index) else { return Heard::Nothing };
        match event {
            SignalingEvent::Message(ServerMessage::Challenge { nonce }) => {
                let me = peer_id(stack.id());
                let Some(register) = registration(&self.key, &me, &nonce) else {
                    return Heard::Trouble(format!("{}: an unusable challenge", server.url));
                };
                match server.writer.as_ref().map(|w| w.try_send(register)) {
                    Some(Err(err)) => Heard::Trouble(format!("{}: registering: {err}", server.url)),
                    _ => Heard::Nothing,
                }
            }
            SignalingEvent::Message(ServerMessage::Welcome { peers, overlay, .. }) => {
                tracing::info!(url = %server.url, contacts = peers.len(), "registered");
                server.registered = true;
                server.retry = FIRST_RETRY;
                stack.handle_welcome(peers.iter().filter_map(id_of).collect(), t);
                match outdated(overlay) {
                    Some(why) => Heard::Trouble(format!("{}: {why}", server.url)),
                    None => Heard::Nothing,
                }
            }
            SignalingEvent::Message(ServerMessage::Signal { from, payload }) => {
                match id_of(&from) {
                    Some(from) => stack.handle_server_signal(from, payload, t),
                    None => tracing::debug!(%from, "a signal from a peer id that is not a nodeId"),
                }
                Heard::Nothing
            }
            // With several servers, a signal goes to each, and those that do not know its
            // target say so.
            SignalingEvent::Message(ServerMessage::Error { code: ErrorCode::UnknownPeer, .. }) if several => {
                Heard::Nothing
            }
            SignalingEvent::Message(ServerMessage::Error { code, message }) => {
                Heard::Trouble(format!("{}: signaling error {code}: {message}", server.url))
            }
            SignalingEvent::Message(other) => {
                tracing::debug!("unexpected signaling message {other:?}");
                Heard::Nothing
            }
            SignalingEvent::Undecodable(err) => Heard::Trouble(format!("{}: unreadable message: {err}", server.url)),
            SignalingEvent::Closed(reason) => {
                // Open connections keep working without the server; signals go through the
                // overlay meanwhile.
                server.writer = None;
                server.registered = false;
                let wait = server.retry;
                server.retry = (server.retry * 2).min(MAX_RETRY);
                let trouble = format!("{}: signaling closed ({reason}); connecting again in {wait:?}", server.url);
                stack.set_server(self.any_registered());
                if !self.closing {
                    self.connect(index, wait);
                }
                Heard::Trouble(trouble)
            }
        }
    }

    /// Whether some server has us registered.
    fn any_registered(&self) -> bool {
        self.servers.iter().any(|s| s.registered)
    }

    /// Sends a signal to `to` through every server we are registered with.
    pub(crate) fn signal(&self, to: Id, payload: &SignalPayload) {
        let registered = self.servers.iter().filter(|s| s.registered);
        for server in registered {
            let message = ClientMessage::Signal { to: peer_id(to), payload: payload.clone() };
            if let Some(Err(err)) = server.writer.as_ref().map(|w| w.try_send(message)) {
                tracing::warn!(%to, url = %server.url, "a signal is dropped: {err}");
            }
        }
    }

    /// Closes every socket (sending what is queued first).
    pub(crate) async fn close(&mut self) {
        self.closing = true;
        let writers = self.servers.iter_mut().filter_map(|s| s.writer.take());
        futures::future::join_all(writers.map(SignalingWriter::close)).await;
    }
}
