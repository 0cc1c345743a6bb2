//! The native node's event loop: the same shape as the browser node's. One task owns all
//! state and handles one input at a time from one channel, fed by the signaling reader, the
//! peer connections and the [`NodeHandle`](crate::NodeHandle).

use std::collections::BTreeMap;

use past_signaling_proto::{ClientMessage, IceServer, PeerId, ServerMessage, SignalPayload};
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
    Transport(PeerId, TransportEvent),
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

pub(crate) struct Node {
    me: PeerId,
    inputs: UnboundedSender<Input>,
    signaling: Option<SignalingClient>,
    ice_servers: Vec<IceServer>,
    peers: BTreeMap<PeerId, Peer>,
    events: UnboundedSender<NodeEvent>,
}

impl Node {
    pub(crate) fn new(
        me: PeerId,
        inputs: UnboundedSender<Input>,
        signaling: SignalingClient,
        ice_servers: Vec<IceServer>,
        events: UnboundedSender<NodeEvent>,
    ) -> Self {
        Self { me, inputs, signaling: Some(signaling), ice_servers, peers: BTreeMap::new(), events }
    }

    /// Offers to `present` (the newcomer offers), then runs until closed.
    pub(crate) async fn run(mut self, present: Vec<PeerId>, mut inputs: UnboundedReceiver<Input>) {
        for peer in present {
            self.offer_to(peer).await;
        }
        while let Some(input) = inputs.recv().await {
            match input {
                Input::Signaling(event) => self.on_signaling(event).await,
                Input::Transport(peer, event) => self.on_transport(peer, event).await,
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
            SignalingEvent::Message(ServerMessage::PeerLeft { peer }) => {
                self.drop_peer(&peer, "left the signaling server").await;
            }
            SignalingEvent::Message(ServerMessage::PeerJoined { peer }) => {
                tracing::debug!(%peer, "peer joined; it will offer");
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
                    let _ = self.events.send(NodeEvent::Connected(peer));
                }
            }
            TransportEvent::Message(data) => {
                let _ = self.events.send(NodeEvent::Message { from: peer, data });
            }
            TransportEvent::Closed(reason) => self.drop_peer(&peer, &reason).await,
        }
    }

    async fn new_peer(&mut self, peer: &PeerId, role: Role) -> Option<Peer> {
        match Peer::new(peer, role, &self.ice_servers, &self.inputs).await {
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
        if let Some(conn) = self.peers.remove(peer) {
            let was_open = conn.is_open();
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
        self.peers.iter().filter(|(_, c)| c.is_open()).map(|(id, _)| id.clone()).collect()
    }

    fn error(&self, message: String) {
        tracing::warn!(me = %self.me, "{message}");
        let _ = self.events.send(NodeEvent::Error(message));
    }
}
