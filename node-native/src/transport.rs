//! One WebRTC peer connection per peer with one ordered, reliable data channel, over the
//! `webrtc` crate (0.21).
//!
//! Kept on loopback by construction for now: sockets bind to 127.0.0.1 only and mDNS is
//! off (no multicast on port 5353). Events of the connection and of its data channel are
//! pushed into the node's input channel; a writer task per peer takes messages from a
//! bounded queue and awaits the channel's bounded send buffer, so the node's loop never
//! blocks on a slow peer.

use std::sync::Arc;

use bytes::BytesMut;
use past_signaling_proto::{IceServer, PeerId, SignalPayload};
use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::mpsc::{self, UnboundedSender};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

use crate::node::Input;
use crate::{Data, MAX_MESSAGE_BYTES};

/// Label of the one data channel between two nodes (the browser node uses the same).
pub(crate) const CHANNEL_LABEL: &str = "past";

/// Bytes a data channel may hold unacknowledged before `send` waits.
pub(crate) const SEND_BUFFER_LIMIT: usize = 1024 * 1024;

/// Messages waiting per peer for the writer task.
pub(crate) const SEND_QUEUE: usize = 64;

/// Where UDP sockets bind: loopback only (see `shared/toolchain.md`: a wildcard expands
/// to every interface except loopback).
pub(crate) const BIND_ADDR: &str = "127.0.0.1:0";

/// What a connection reports.
pub(crate) enum TransportEvent {
    /// A local ICE candidate to send to the peer.
    LocalCandidate(SignalPayload),
    /// The answering side received the peer's data channel (its reader already runs).
    Channel(Arc<dyn DataChannel>),
    /// The data channel is open.
    Open,
    /// A message arrived.
    Message(Data),
    /// The channel closed or the connection failed.
    Closed(String),
}

impl std::fmt::Debug for TransportEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LocalCandidate(c) => f.debug_tuple("LocalCandidate").field(c).finish(),
            Self::Channel(c) => f.debug_tuple("Channel").field(&c.id()).finish(),
            Self::Open => f.write_str("Open"),
            Self::Message(d) => f.debug_tuple("Message").field(&d.len()).finish(),
            Self::Closed(r) => f.debug_tuple("Closed").field(r).finish(),
        }
    }
}

/// Pushes connection events into the node's inputs.
struct Handler {
    peer: PeerId,
    serial: u64,
    inputs: UnboundedSender<Input>,
}

impl Handler {
    fn push(&self, event: TransportEvent) {
        let _ = self.inputs.send(Input::Transport(self.peer.clone(), self.serial, event));
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) if !init.candidate.is_empty() => {
                self.push(TransportEvent::LocalCandidate(SignalPayload::Candidate {
                    candidate: init.candidate,
                    sdp_mid: init.sdp_mid,
                    sdp_m_line_index: init.sdp_mline_index,
                }));
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(peer = %self.peer, "cannot encode a local candidate: {err}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(peer = %self.peer, %state, "connection state");
        if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
            self.push(TransportEvent::Closed(format!("connection {state}")));
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        spawn_reader(&self.peer, self.serial, channel.clone(), self.inputs.clone());
        self.push(TransportEvent::Channel(channel));
    }
}

/// Reads a data channel's events into the node's inputs until it closes.
fn spawn_reader(peer: &PeerId, serial: u64, channel: Arc<dyn DataChannel>, inputs: UnboundedSender<Input>) {
    let peer = peer.clone();
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            let event = match event {
                DataChannelEvent::OnOpen => TransportEvent::Open,
                DataChannelEvent::OnMessage(msg) => {
                    let bytes = msg.data.to_vec();
                    if msg.is_string {
                        match String::from_utf8(bytes) {
                            Ok(text) => TransportEvent::Message(Data::Text(text)),
                            Err(_) => {
                                tracing::warn!(%peer, "dropping a text message that is not UTF-8");
                                continue;
                            }
                        }
                    } else {
                        TransportEvent::Message(Data::Bytes(bytes))
                    }
                }
                DataChannelEvent::OnClose => {
                    let _ = inputs.send(Input::Transport(
                        peer.clone(),
                        serial,
                        TransportEvent::Closed("data channel closed".into()),
                    ));
                    break;
                }
                _ => continue,
            };
            if inputs.send(Input::Transport(peer.clone(), serial, event)).is_err() {
                break;
            }
        }
    });
}

/// Which side of the offer/answer exchange this node is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Creates the data channel and the offer (the newcomer).
    Offerer,
    /// Receives the offer and the data channel.
    Answerer,
}

/// A connection to one peer. Dropping it stops the writer; [`Peer::close`] also closes
/// the connection.
pub(crate) struct Peer {
    /// Tells this connection's events from those of an earlier one to the same peer.
    pub(crate) serial: u64,
    pc: Arc<dyn PeerConnection>,
    writer: Option<mpsc::Sender<Data>>,
    writer_task: Option<tokio::task::JoinHandle<()>>,
    open: bool,
}

/// How long [`Peer::close`] waits for queued messages to be sent and acknowledged.
pub(crate) const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl Peer {
    /// A new connection to `peer`. The offerer's data channel is created here, its reader
    /// already running.
    pub(crate) async fn new(
        peer: &PeerId,
        serial: u64,
        role: Role,
        ice_servers: &[IceServer],
        inputs: &UnboundedSender<Input>,
    ) -> webrtc::error::Result<Self> {
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(
                ice_servers
                    .iter()
                    .map(|s| RTCIceServer {
                        urls: s.urls.clone(),
                        username: s.username.clone().unwrap_or_default(),
                        credential: s.credential.clone().unwrap_or_default(),
                    })
                    .collect(),
            )
            .build();
        let settings = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler { peer: peer.clone(), serial, inputs: inputs.clone() }))
            .with_udp_addrs(vec![BIND_ADDR.to_string()])
            .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let mut this = Self { serial, pc, writer: None, writer_task: None, open: false };
        if role == Role::Offerer {
            let channel = this
                .pc
                .create_data_channel(CHANNEL_LABEL, Some(RTCDataChannelInit { ordered: true, ..Default::default() }))
                .await?;
            spawn_reader(peer, serial, channel.clone(), inputs.clone());
            this.set_channel(peer, channel);
        }
        Ok(this)
    }

    /// Offerer: creates the offer and sets it locally.
    pub(crate) async fn create_offer(&self) -> webrtc::error::Result<SignalPayload> {
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        Ok(SignalPayload::Offer { sdp })
    }

    /// Answerer: applies the offer, creates the answer and sets it locally.
    pub(crate) async fn accept_offer(&self, sdp: &str) -> webrtc::error::Result<SignalPayload> {
        self.pc.set_remote_description(RTCSessionDescription::offer(sdp.to_string())?).await?;
        let answer = self.pc.create_answer(None).await?;
        let sdp = answer.sdp.clone();
        self.pc.set_local_description(answer).await?;
        Ok(SignalPayload::Answer { sdp })
    }

    /// Offerer: applies the answer.
    pub(crate) async fn accept_answer(&self, sdp: &str) -> webrtc::error::Result<()> {
        self.pc.set_remote_description(RTCSessionDescription::answer(sdp.to_string())?).await
    }

    /// Adds a candidate the peer trickled.
    pub(crate) async fn add_candidate(
        &self,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    ) -> webrtc::error::Result<()> {
        self.pc
            .add_ice_candidate(RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, ..Default::default() })
            .await
    }

    /// The local and remote SDP, once both are set.
    pub(crate) async fn descriptions(&self) -> Option<(String, String)> {
        let local = self.pc.local_description().await?;
        let remote = self.pc.remote_description().await?;
        Some((local.sdp, remote.sdp))
    }

    /// Takes the data channel: starts its writer task.
    pub(crate) fn set_channel(&mut self, peer: &PeerId, channel: Arc<dyn DataChannel>) {
        let (tx, mut rx) = mpsc::channel::<Data>(SEND_QUEUE);
        let peer = peer.clone();
        let task = tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                let sent = match data {
                    Data::Text(text) => channel.send_text(&text).await,
                    Data::Bytes(bytes) => channel.send(BytesMut::from(&bytes[..])).await,
                };
                if let Err(err) = sent {
                    tracing::warn!(%peer, "send failed: {err}");
                    return;
                }
            }
            // The queue closed: wait until SCTP has everything acknowledged, so a close right
            // after a send does not lose it.
            while channel.outstanding_bytes().await.is_ok_and(|n| n > 0) {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
        self.writer = Some(tx);
        self.writer_task = Some(task);
    }

    /// Marks the channel open; `false` if it already was.
    pub(crate) fn mark_open(&mut self) -> bool {
        !std::mem::replace(&mut self.open, true)
    }

    /// Whether the data channel is open.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Queues `data` for the writer task.
    pub(crate) fn send(&self, data: Data) -> Result<(), crate::SendError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(crate::SendError::TooLarge(data.len()));
        }
        match (&self.writer, self.open) {
            (Some(writer), true) => writer.try_send(data).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => crate::SendError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => crate::SendError::NotConnected,
            }),
            _ => Err(crate::SendError::NotConnected),
        }
    }

    /// Closes the connection. With `flush`, first sends what is queued and waits for it to
    /// be acknowledged (at most [`FLUSH_TIMEOUT`]); without, drops it (the peer is gone).
    pub(crate) async fn close(mut self, flush: bool) {
        self.writer = None;
        if let Some(mut task) = self.writer_task.take()
            && (!flush || tokio::time::timeout(FLUSH_TIMEOUT, &mut task).await.is_err())
        {
            task.abort();
        }
        if let Err(err) = self.pc.close().await {
            tracing::debug!("closing a peer connection: {err}");
        }
    }
}
