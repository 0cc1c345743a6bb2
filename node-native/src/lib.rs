//! The native PAST node: the same role as a browser tab, outside the browser.
//!
//! Today it is the transport half of a node: it registers with the signaling server over a
//! WebSocket as the nodeId of its Ed25519 key (signing the server's challenge), opens a WebRTC
//! peer connection with one ordered, reliable data channel to each peer the server introduces
//! (the numerically closest registered nodes; later arrivals offer to it), authenticates every
//! peer with the handshake of `past-link` (both sides prove their nodeId, bound to the
//! connection's DTLS fingerprints), and then sends and receives raw data channel messages. It
//! is **not** yet a Pastry node: a later issue puts `past-core` in the middle of the event
//! loop, as the browser driver does, with files on disk.
//!
//! WebRTC comes from the `webrtc` crate (0.21). Sockets bind to 127.0.0.1 only and mDNS is
//! disabled, so the node reaches peers on the same machine (and a browser started with the
//! flags of `shared/chromium-flags.md`); binding other interfaces is future work. Messages
//! are at most [`MAX_MESSAGE_BYTES`] (the default SCTP limit of the crate); larger payloads
//! are chunked by the layer above.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use past_node::{Data, NodeConfig, NodeEvent, start};
//! let (node, mut events) = start(NodeConfig::new("ws://127.0.0.1:8080/ws")).await?;
//! while let Some(event) = events.recv().await {
//!     if let NodeEvent::Connected(peer) = event {
//!         // An authenticated peer: a link frame (`past_link::frame`) goes here.
//!         node.send(&peer, Data::Bytes(vec![1, 1])).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

mod node;
mod signaling;
mod transport;

use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use past_core::Id;
use past_signaling_proto::{ClientMessage, ErrorCode, PeerId, ServerMessage, register_transcript, to_hex};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use node::{Command, Input, Node};
use signaling::{SignalingClient, SignalingEvent};

pub use past_signaling_proto as proto;

/// Largest message on a data channel of this node: the `webrtc` crate's default SCTP
/// maximum message size.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

pub use past_link::Data;

/// What the node reports to its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A data channel to `peer` opened and the peer proved its nodeId.
    Connected(PeerId),
    /// A peer failed the handshake; its connection was closed.
    AuthFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A message arrived from an authenticated peer (handshake messages are not reported).
    Message {
        /// Sender.
        from: PeerId,
        /// Content, as sent.
        data: Data,
    },
    /// The connection to `peer` closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// Something went wrong that did not stop the node.
    Error(String),
    /// The node stopped.
    Closed,
}

/// Why [`start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The signaling server could not be reached.
    #[error("cannot connect to the signaling server at {url}: {source}")]
    Connect {
        /// Its URL.
        url: String,
        /// The WebSocket error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server refused the registration.
    #[error("the signaling server refused to register us ({code}): {message}")]
    Refused {
        /// Its error code.
        code: ErrorCode,
        /// Its explanation.
        message: String,
    },
    /// The socket closed before the welcome message.
    #[error("the signaling connection closed before registration: {0}")]
    Closed(String),
    /// The server's challenge is malformed.
    #[error("the signaling server sent an unusable challenge")]
    BadChallenge,
    /// No welcome message within [`NodeConfig::register_timeout`].
    #[error("no answer to the registration within {0:?}")]
    Timeout(Duration),
}

/// Why a message was not accepted for sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No open data channel to that peer.
    #[error("not connected to that peer")]
    NotConnected,
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge(usize),
    /// The peer's send queue is full; try again later.
    #[error("the send queue to that peer is full")]
    QueueFull,
    /// The node stopped.
    #[error("the node is closed")]
    Closed,
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `ws://host:port/ws` of the signaling server.
    pub signaling_url: String,
    /// The node's key; its nodeId is derived from it. A fresh one when `None`.
    pub key: Option<SigningKey>,
    /// Test hook: the key presented in the data channel handshake, when it is not `key` (an
    /// impostor claiming another identity than the one it registered).
    pub handshake_key: Option<SigningKey>,
    /// How long to wait for the server's welcome.
    pub register_timeout: Duration,
}

impl NodeConfig {
    /// Defaults for the server at `signaling_url`.
    pub fn new(signaling_url: impl Into<String>) -> Self {
        Self {
            signaling_url: signaling_url.into(),
            key: None,
            handshake_key: None,
            register_timeout: Duration::from_secs(10),
        }
    }
}

/// The nodeId of `key`.
pub fn node_id(key: &SigningKey) -> Id {
    Id::from_public_key(&key.verifying_key().to_bytes())
}

/// The signaling peer id of `id`: its 32 hex digits.
pub fn peer_id(id: Id) -> PeerId {
    // 32 hex digits always make a valid peer id.
    PeerId::new(to_hex(&id.to_bytes())).unwrap_or_else(|_| unreachable!("hex is a valid peer id"))
}

/// Controls a running node. Dropping every handle does not stop it; [`NodeHandle::close`]
/// does.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    me: PeerId,
    inputs: UnboundedSender<Input>,
}

impl NodeHandle {
    /// This node's peer id.
    pub fn id(&self) -> &PeerId {
        &self.me
    }

    /// Queues `data` for `peer`.
    pub async fn send(&self, peer: &PeerId, data: Data) -> Result<(), SendError> {
        let (reply, replied) = oneshot::channel();
        self.inputs
            .send(Input::Command(Command::Send { peer: peer.clone(), data, reply }))
            .map_err(|_| SendError::Closed)?;
        replied.await.map_err(|_| SendError::Closed)?
    }

    /// Peers with an open data channel.
    pub async fn peers(&self) -> Vec<PeerId> {
        let (reply, replied) = oneshot::channel();
        if self.inputs.send(Input::Command(Command::Peers(reply))).is_err() {
            return Vec::new();
        }
        replied.await.unwrap_or_default()
    }

    /// Closes every connection and the signaling socket; [`NodeEvent::Closed`] follows.
    pub fn close(&self) {
        let _ = self.inputs.send(Input::Command(Command::Close));
    }
}

/// Connects to the signaling server, registers, and starts the node's event loop on the
/// current tokio runtime. Returns once registered.
pub async fn start(config: NodeConfig) -> Result<(NodeHandle, UnboundedReceiver<NodeEvent>), StartError> {
    let key = config.key.clone().unwrap_or_else(|| SigningKey::from_bytes(&rand::random::<[u8; 32]>()));
    let me = peer_id(node_id(&key));
    let (tx, mut rx) = mpsc::unbounded_channel::<Input>();
    let mut signaling = SignalingClient::connect(&config.signaling_url, tx.clone())
        .await
        .map_err(|e| StartError::Connect { url: config.signaling_url.clone(), source: Box::new(e) })?;

    let welcome = tokio::time::timeout(config.register_timeout, async {
        loop {
            match rx.recv().await {
                Some(Input::Signaling(SignalingEvent::Message(ServerMessage::Challenge { nonce }))) => {
                    if nonce.len() > 256 {
                        return Err(StartError::BadChallenge);
                    }
                    let signature = key.sign(&register_transcript(&nonce, &me)).to_bytes();
                    let register = ClientMessage::Register {
                        peer: me.clone(),
                        public_key: to_hex(&key.verifying_key().to_bytes()),
                        signature: to_hex(&signature),
                    };
                    signaling.send(&register).await.map_err(|e| StartError::Closed(e.to_string()))?;
                }
                Some(Input::Signaling(SignalingEvent::Message(ServerMessage::Welcome {
                    ice_servers, peers, ..
                }))) => return Ok((ice_servers, peers)),
                Some(Input::Signaling(SignalingEvent::Message(ServerMessage::Error { code, message }))) => {
                    return Err(StartError::Refused { code, message });
                }
                Some(Input::Signaling(SignalingEvent::Closed(reason))) => {
                    return Err(StartError::Closed(reason));
                }
                Some(other) => tracing::debug!("before registration, ignoring {other:?}"),
                None => return Err(StartError::Closed("input channel closed".into())),
            }
        }
    })
    .await
    .map_err(|_| StartError::Timeout(config.register_timeout))?;
    let (ice_servers, present) = match welcome {
        Ok(welcome) => welcome,
        Err(err) => {
            signaling.close().await;
            return Err(err);
        }
    };
    tracing::info!(peer = %me, present = present.len(), "registered");

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let handshake_key = config.handshake_key.unwrap_or_else(|| key.clone());
    let node = Node::new(me.clone(), handshake_key, tx.clone(), signaling, ice_servers, events_tx);
    tokio::spawn(node.run(present, rx));
    Ok((NodeHandle { me, inputs: tx }, events_rx))
}
