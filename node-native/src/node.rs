//! The native node's event loop: the same shape as the browser node's. One task owns all
//! state and handles one input at a time from one channel, fed by the signaling reader, the
//! peer connections and the [`NodeHandle`](crate::NodeHandle).

use std::collections::BTreeMap;

use ed25519_dalek::{Signer as _, SigningKey};
use past_core::Id;
use past_link::frame::{self, Incoming, Reassembler};
use past_link::{AuthMessage, Handshake};
use past_signaling_proto::{ClientMessage, IceServer, PeerId, ServerMessage, SignalPayload, from_hex};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use crate::signaling::{SignalingClient, SignalingEvent};
use crate::transport::{Peer, Role, TransportEvent};
use crate::{Data, NodeEvent, SendError};

/// Everything the loop reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    /// From the signaling socket.
    Signaling(SignalingEvent),
    /// From the connection to a peer.
    Transport(PeerId, u64, TransportEvent),
    /// From the handle.
    Command(Command),
}

/// Requests from the [`NodeHandle`](crate::NodeHandle).
#[derive(Debug)]
pub(crate) enum Command {
    Send { peer: PeerId, data: Data, reply: oneshot::Sender<Result<(), SendError>> },
    Peers(oneshot::Sender<Vec<PeerId>>),
    Close,
}

/// The handshake with one peer (see `past_link::auth`).
struct Auth {
    handshake: Handshake,
    frames: Reassembler,
}

pub(crate) struct Node {
    me: PeerId,
    key: SigningKey,
    inputs: UnboundedSender<Input>,
    /// Handshakes in progress; a peer with an open channel and no entry here is authenticated.
    auth: BTreeMap<PeerId, Auth>,
    signaling: Option<SignalingClient>,
    ice_servers: Vec<IceServer>,
    peers: BTreeMap<PeerId, Peer>,
    /// Serial of the next connection.
    next_serial: u64,
    events: UnboundedSender<NodeEvent>,
}

impl Node {
    pub(crate) fn new(
        me: PeerId,
        key: SigningKey,
        inputs: UnboundedSender<Input>,
        signaling: SignalingClient,
        ice_servers: Vec<IceServer>,
        events: UnboundedSender<NodeEvent>,
    ) -> Self {
        Self {
            me,
            key,
            inputs,
            auth: BTreeMap::new(),
            signaling: Some(signaling),
            ice_servers,
            peers: BTreeMap::new(),
            next_serial: 0,
            events,
        }
    }

    /// Offers to `present` (the newcomer offers), then runs until closed.
    pub(crate) async fn run(mut self, present: Vec<PeerId>, mut inputs: UnboundedReceiver<Input>) {
        for peer in present {
            self.offer_to(peer).await;
        }
        while let Some(input) = inputs.recv().await {
            match input {
                Input::Signaling(event) => self.on_signaling(event).await,
                Input::Transport(peer, serial, event) => {
                    if self.peers.get(&peer).is_some_and(|c| c.serial == serial) {
                        self.on_transport(peer, event).await;
                    } else {
                        tracing::debug!(%peer, "an event of a replaced or closed connection: ignored");
                    }
                }
                Input::Command(Command::Send { peer, data, reply }) => {
                    let result = match self.peers.get(&peer) {
                        Some(conn) => conn.send(data),
                        None => Err(SendError::NotConnected),
                    };
                    let _ = reply.send(result);
                }
                Input::Command(Command::Peers(reply)) => {
                    let _ = reply.send(self.connected());
                }
                Input::Command(Command::Close) => break,
            }
        }
        // Closing on request: let queued messages go out first.
        for (_, conn) in std::mem::take(&mut self.peers) {
            conn.close(true).await;
        }
        if let Some(signaling) = self.signaling.take() {
            signaling.close().await;
        }
        let _ = self.events.send(NodeEvent::Closed);
    }

    async fn on_signaling(&mut self, event: SignalingEvent) {
        match event {
            SignalingEvent::Message(ServerMessage::Signal { from, payload }) => {
                self.on_signal(from, payload).await;
            }
            SignalingEvent::Message(ServerMessage::Error { code, message }) => {
                self.error(format!("signaling error {code}: {message}"));
            }
            SignalingEvent::Message(other) => {
                self.error(format!("unexpected signaling message {other:?}"));
            }
            SignalingEvent::Undecodable(err) => {
                self.error(format!("unreadable signaling message: {err}"));
            }
            SignalingEvent::Closed(reason) => {
                self.signaling = None;
                // Open data channels keep working without the server.
                self.error(format!("signaling closed: {reason}"));
            }
        }
    }

    async fn offer_to(&mut self, peer: PeerId) {
        let Some(conn) = self.new_peer(&peer, Role::Offerer).await else {
            return;
        };
        let offer = conn.create_offer().await;
        self.peers.insert(peer.clone(), conn);
        match offer {
            Ok(payload) => self.signal_to(&peer, payload).await,
            Err(err) => self.peer_failed(&peer, &format!("create offer: {err}")).await,
        }
    }

    async fn on_signal(&mut self, from: PeerId, payload: SignalPayload) {
        match payload {
            SignalPayload::Offer { sdp } => {
                // A new offer from a peer replaces whatever we had with it.
                self.drop_peer(&from, "replaced by a new offer").await;
                let Some(conn) = self.new_peer(&from, Role::Answerer).await else {
                    return;
                };
                let answer = conn.accept_offer(&sdp).await;
                self.peers.insert(from.clone(), conn);
                match answer {
                    Ok(payload) => self.signal_to(&from, payload).await,
                    Err(err) => self.peer_failed(&from, &format!("answering: {err}")).await,
                }
            }
            SignalPayload::Answer { sdp } => {
                let Some(conn) = self.peers.get(&from) else {
                    return;
                };
                if let Err(err) = conn.accept_answer(&sdp).await {
                    self.peer_failed(&from, &format!("applying the answer: {err}")).await;
                }
            }
            SignalPayload::Candidate { candidate, sdp_mid, sdp_m_line_index } => {
                let Some(conn) = self.peers.get(&from) else {
                    return;
                };
                if let Err(err) = conn.add_candidate(candidate, sdp_mid, sdp_m_line_index).await {
                    self.error(format!("candidate from {from}: {err}"));
                }
            }
        }
    }

    async fn on_transport(&mut self, peer: PeerId, event: TransportEvent) {
        match event {
            TransportEvent::LocalCandidate(payload) => {
                if self.peers.contains_key(&peer) {
                    self.signal_to(&peer, payload).await;
                }
            }
            TransportEvent::Channel(channel) => {
                if let Some(conn) = self.peers.get_mut(&peer) {
                    conn.set_channel(&peer, channel);
                    // The channel's `open` event comes from its reader.
                }
            }
            TransportEvent::Open => {
                if self.peers.get_mut(&peer).is_some_and(Peer::mark_open) {
                    self.start_handshake(peer).await;
                }
            }
            TransportEvent::Message(data) => {
                // The peer may write as soon as its side is open, before our side reports
                // open: its first message then starts our handshake.
                if !self.auth.contains_key(&peer) && self.peers.get_mut(&peer).is_some_and(Peer::mark_open) {
                    self.start_handshake(peer.clone()).await;
                }
                if self.auth.contains_key(&peer) {
                    self.on_handshake_message(peer, data).await;
                } else if self.peers.get(&peer).is_some_and(Peer::is_open) {
                    let _ = self.events.send(NodeEvent::Message { from: peer, data });
                }
            }
            TransportEvent::Closed(reason) => self.drop_peer(&peer, &reason).await,
        }
    }

    /// The channel to `peer` opened: send our hello.
    async fn start_handshake(&mut self, peer: PeerId) {
        let Some(conn) = self.peers.get(&peer) else { return };
        let Some(expected) = from_hex::<16>(peer.as_str()).map(Id::from_bytes) else {
            return self.auth_failed(&peer, "its peer id is not a nodeId".into()).await;
        };
        let Some((local, remote)) = conn.descriptions().await else {
            return self.auth_failed(&peer, "no session descriptions".into()).await;
        };
        let nonce = rand::random::<[u8; 32]>();
        match Handshake::new(self.key.verifying_key().to_bytes(), nonce, &local, &remote, expected) {
            Ok(handshake) => {
                let hello = frame::encode_auth(&handshake.hello(false));
                self.auth.insert(peer.clone(), Auth { handshake, frames: Reassembler::new(frame::MAX_MESSAGE_BYTES) });
                if let Some(conn) = self.peers.get(&peer)
                    && let Err(err) = conn.send(Data::Bytes(hello))
                {
                    self.auth_failed(&peer, err.to_string()).await;
                }
            }
            Err(err) => self.auth_failed(&peer, err.to_string()).await,
        }
    }

    /// A message from a peer that has not proven its id yet.
    async fn on_handshake_message(&mut self, peer: PeerId, data: Data) {
        let Some(auth) = self.auth.get_mut(&peer) else { return };
        let bytes = match data {
            Data::Bytes(bytes) => bytes,
            Data::Text(_) => return self.auth_failed(&peer, "text before authentication".into()).await,
        };
        let result = match auth.frames.push(&bytes) {
            Ok(Some(Incoming::Auth(AuthMessage::Hello { public_key, nonce, joined }))) => {
                match auth.handshake.on_hello(public_key, nonce, joined) {
                    Ok(transcript) => {
                        let proof = frame::encode_auth(&Handshake::proof(self.key.sign(&transcript).to_bytes()));
                        match self.peers.get(&peer) {
                            Some(conn) => conn.send(Data::Bytes(proof)).map_err(|e| e.to_string()),
                            None => Ok(()),
                        }
                    }
                    Err(err) => Err(err.to_string()),
                }
            }
            Ok(Some(Incoming::Auth(AuthMessage::Proof { signature }))) => match auth.handshake.on_proof(&signature) {
                Ok(_) => {
                    self.auth.remove(&peer);
                    let _ = self.events.send(NodeEvent::Connected(peer.clone()));
                    Ok(())
                }
                Err(err) => Err(err.to_string()),
            },
            Ok(Some(Incoming::Pastry(_) | Incoming::Close)) => Err("a Pastry frame before authentication".into()),
            Ok(None) => Err("a chunk before authentication".into()),
            Err(err) => Err(err.to_string()),
        };
        if let Err(reason) = result {
            self.auth_failed(&peer, reason).await;
        }
    }

    async fn auth_failed(&mut self, peer: &PeerId, reason: String) {
        tracing::warn!(%peer, "authentication failed: {reason}");
        self.auth.remove(peer);
        let _ = self.events.send(NodeEvent::AuthFailed { peer: peer.clone(), reason: reason.clone() });
        self.drop_peer(peer, &reason).await;
    }

    async fn new_peer(&mut self, peer: &PeerId, role: Role) -> Option<Peer> {
        self.next_serial += 1;
        match Peer::new(peer, self.next_serial, role, &self.ice_servers, &self.inputs).await {
            Ok(conn) => Some(conn),
            Err(err) => {
                self.error(format!("peer connection for {peer}: {err}"));
                None
            }
        }
    }

    async fn peer_failed(&mut self, peer: &PeerId, reason: &str) {
        self.error(format!("connection to {peer}: {reason}"));
        self.drop_peer(peer, reason).await;
    }

    async fn drop_peer(&mut self, peer: &PeerId, reason: &str) {
        let authenticating = self.auth.remove(peer).is_some();
        if let Some(conn) = self.peers.remove(peer) {
            let was_open = conn.is_open() && !authenticating;
            conn.close(false).await;
            if was_open {
                let _ = self.events.send(NodeEvent::Disconnected { peer: peer.clone(), reason: reason.to_string() });
            }
        }
    }

    async fn signal_to(&mut self, to: &PeerId, payload: SignalPayload) {
        let msg = ClientMessage::Signal { to: to.clone(), payload };
        let result = match &mut self.signaling {
            Some(client) => client.send(&msg).await.map_err(|e| e.to_string()),
            None => Err("the signaling server is not connected".to_string()),
        };
        if let Err(err) = result {
            self.peer_failed(to, &format!("signaling: {err}")).await;
        }
    }

    fn connected(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(id, c)| c.is_open() && !self.auth.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn error(&self, message: String) {
        tracing::warn!(me = %self.me, "{message}");
        let _ = self.events.send(NodeEvent::Error(message));
    }
}
