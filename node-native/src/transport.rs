//! One WebRTC peer connection per [`ConnId`] with one ordered, reliable data channel, over
//! the `webrtc` crate (0.21). It carries out what the peer manager decides; it decides
//! nothing.
//!
//! Kept on loopback by construction for now: sockets bind to 127.0.0.1 only and mDNS is
//! off (no multicast on port 5353). Events of the connection and of its data channel go
//! into the node's bounded input channel: connection events wait for room (backpressure on
//! the connection's task); a data channel message that finds the channel full ends the
//! connection (the peer sends faster than the node handles). A writer task per connection
//! takes messages from a bounded queue and awaits the channel's bounded send buffer, so the
//! node's loop never blocks on a slow peer.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use past_link::ConnId;
use past_signaling_proto::{IceServer, SignalPayload};
use rtc::ice::mdns::MulticastDnsMode;
use tokio::sync::mpsc::{self, Sender};
use tokio::sync::watch;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceGatheringState, RTCIceServer, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
    StatsSelector,
};

use crate::node::Input;
use crate::{Data, MAX_MESSAGE_BYTES};

/// Label of the one data channel between two nodes (the browser node uses the same).
pub(crate) const CHANNEL_LABEL: &str = "past";

/// Bytes a data channel may hold unacknowledged before `send` waits.
pub(crate) const SEND_BUFFER_LIMIT: usize = 1024 * 1024;

/// Messages waiting per connection for the writer task.
pub(crate) const SEND_QUEUE: usize = 256;

/// Where UDP sockets bind: loopback only (see `shared/toolchain.md`: a wildcard expands
/// to every interface except loopback).
pub(crate) const BIND_ADDR: &str = "127.0.0.1:0";

/// How long to wait for ICE gathering before describing the session with what was gathered.
const GATHERING_TIMEOUT: Duration = Duration::from_secs(3);

/// How long closing a connection waits for queued messages to be sent and acknowledged.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// What a connection reports.
pub(crate) enum TransportEvent {
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
            Self::Channel(c) => f.debug_tuple("Channel").field(&c.id()).finish(),
            Self::Open => f.write_str("Open"),
            Self::Message(d) => f.debug_tuple("Message").field(&d.len()).finish(),
            Self::Closed(r) => f.debug_tuple("Closed").field(r).finish(),
        }
    }
}

/// Why a data channel message could not be handed to the node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// The input channel is full: the connection must end.
    Full,
    /// The node stopped.
    Closed,
}

/// Hands a received message to the node without waiting: a peer must not be able to fill
/// the node's input channel and stall everyone else.
pub(crate) fn push_message(inputs: &Sender<Input>, conn: ConnId, data: Data) -> Result<(), Overflow> {
    inputs.try_send(Input::Transport(conn, TransportEvent::Message(data))).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => Overflow::Full,
        mpsc::error::TrySendError::Closed(_) => Overflow::Closed,
    })
}

/// Pushes connection events into the node's inputs.
struct Handler {
    conn: ConnId,
    inputs: Sender<Input>,
    gathered: watch::Sender<bool>,
}

impl Handler {
    async fn push(&self, event: TransportEvent) {
        let _ = self.inputs.send(Input::Transport(self.conn, event)).await;
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(conn = self.conn, %state, "connection state");
        if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
            self.push(TransportEvent::Closed(format!("connection {state}"))).await;
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // The channel first, then its reader: its `open` and first messages must reach the
        // node after the channel (the channel keeps its events until it is polled).
        self.push(TransportEvent::Channel(channel.clone())).await;
        spawn_reader(self.conn, channel, self.inputs.clone());
    }
}

/// Reads a data channel's events into the node's inputs until it closes.
fn spawn_reader(conn: ConnId, channel: Arc<dyn DataChannel>, inputs: Sender<Input>) {
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            let event = match event {
                DataChannelEvent::OnOpen => TransportEvent::Open,
                DataChannelEvent::OnMessage(msg) => {
                    let bytes = msg.data.to_vec();
                    let data = if msg.is_string {
                        match String::from_utf8(bytes) {
                            Ok(text) => Data::Text(text),
                            Err(_) => {
                                tracing::warn!(conn, "dropping a text message that is not UTF-8");
                                continue;
                            }
                        }
                    } else {
                        Data::Bytes(bytes)
                    };
                    match push_message(&inputs, conn, data) {
                        Ok(()) => continue,
                        Err(Overflow::Closed) => return,
                        Err(Overflow::Full) => {
                            tracing::warn!(conn, "the node's inputs are full: dropping the connection");
                            let reason = "the peer sends faster than this node can handle".to_string();
                            TransportEvent::Closed(reason)
                        }
                    }
                }
                DataChannelEvent::OnClose => TransportEvent::Closed("data channel closed".into()),
                _ => continue,
            };
            let last = matches!(event, TransportEvent::Closed(_));
            if inputs.send(Input::Transport(conn, event)).await.is_err() || last {
                return;
            }
        }
    });
}

/// A connection. Dropping it stops the writer; [`Peer::close`] also closes the connection.
pub(crate) struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    writer: Option<mpsc::Sender<Data>>,
    writer_task: Option<tokio::task::JoinHandle<()>>,
    open: bool,
}

impl Peer {
    /// A new connection; the offerer (`offerer`) creates the data channel here, its reader
    /// already running.
    pub(crate) async fn new(
        conn: ConnId,
        offerer: bool,
        ice_servers: &[IceServer],
        inputs: &Sender<Input>,
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
        let (gathered_tx, gathered) = watch::channel(false);
        let handler = Handler { conn, inputs: inputs.clone(), gathered: gathered_tx };
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(settings)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(vec![BIND_ADDR.to_string()])
            .with_data_channel_send_buffer_limit(SEND_BUFFER_LIMIT)
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let mut this = Self { pc, gathered, writer: None, writer_task: None, open: false };
        if offerer {
            let init = RTCDataChannelInit { ordered: true, ..Default::default() };
            let channel = this.pc.create_data_channel(CHANNEL_LABEL, Some(init)).await?;
            spawn_reader(conn, channel.clone(), inputs.clone());
            this.set_channel(conn, channel);
        }
        Ok(this)
    }

    /// Creates the offer (or, with `offer`, applies it and creates the answer), sets it
    /// locally, waits for ICE gathering and returns the local SDP with its candidates. Runs
    /// in a task of its own, not in the node's loop.
    pub(crate) fn describe(&self, offer: Option<String>) -> impl Future<Output = Result<String, String>> + use<> {
        let (pc, mut gathered) = (self.pc.clone(), self.gathered.clone());
        async move {
            let description = match offer {
                None => pc.create_offer(None).await,
                Some(sdp) => {
                    let offer = RTCSessionDescription::offer(sdp).map_err(|e| format!("the offer: {e}"))?;
                    pc.set_remote_description(offer).await.map_err(|e| format!("applying the offer: {e}"))?;
                    pc.create_answer(None).await
                }
            }
            .map_err(|e| e.to_string())?;
            pc.set_local_description(description).await.map_err(|e| e.to_string())?;
            let _ = tokio::time::timeout(GATHERING_TIMEOUT, gathered.wait_for(|done| *done)).await;
            pc.local_description().await.map(|d| d.sdp).ok_or_else(|| "no local description".to_string())
        }
    }

    /// Applies the peer's answer (in a task of its own).
    pub(crate) fn accept_answer(&self, sdp: String) -> impl Future<Output = Result<(), String>> + use<> {
        let pc = self.pc.clone();
        async move {
            let answer = RTCSessionDescription::answer(sdp).map_err(|e| e.to_string())?;
            pc.set_remote_description(answer).await.map_err(|e| e.to_string())
        }
    }

    /// The round-trip time of the selected candidate pair from the connection's statistics
    /// (in a task of its own), or `None` when they have none (no pair, or none measured).
    pub(crate) fn round_trip(&self) -> impl Future<Output = Option<Duration>> + use<> {
        let pc = self.pc.clone();
        async move {
            let report = pc.get_stats(std::time::Instant::now(), StatsSelector::None).await;
            let selected = report.transport().map(|t| t.selected_candidate_pair_id.clone());
            let pair = report.candidate_pairs().find(|p| match &selected {
                Some(id) if !id.is_empty() => p.stats.id == *id,
                _ => p.nominated,
            })?;
            let seconds = pair.current_round_trip_time;
            (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
        }
    }

    /// Adds a candidate the peer trickled (in a task of its own).
    pub(crate) fn add_candidate(&self, candidate: SignalPayload) -> impl Future<Output = ()> + use<> {
        let pc = self.pc.clone();
        async move {
            let SignalPayload::Candidate { candidate, sdp_mid, sdp_m_line_index } = candidate else { return };
            let init =
                RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index: sdp_m_line_index, ..Default::default() };
            if let Err(err) = pc.add_ice_candidate(init).await {
                tracing::debug!("a trickled candidate was refused: {err}");
            }
        }
    }

    /// The local and remote SDP, once both are set.
    pub(crate) async fn descriptions(&self) -> Option<(String, String)> {
        let local = self.pc.local_description().await?;
        let remote = self.pc.remote_description().await?;
        Some((local.sdp, remote.sdp))
    }

    /// Takes the data channel: starts its writer task.
    pub(crate) fn set_channel(&mut self, conn: ConnId, channel: Arc<dyn DataChannel>) {
        let (tx, mut rx) = mpsc::channel::<Data>(SEND_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(data) = rx.recv().await {
                let sent = match data {
                    Data::Text(text) => channel.send_text(&text).await,
                    Data::Bytes(bytes) => channel.send(BytesMut::from(&bytes[..])).await,
                };
                if let Err(err) = sent {
                    tracing::warn!(conn, "send failed: {err}");
                    return;
                }
            }
            // The queue closed: wait until SCTP has everything acknowledged, so a close right
            // after a send does not lose it.
            while channel.outstanding_bytes().await.is_ok_and(|n| n > 0) {
                tokio::time::sleep(Duration::from_millis(10)).await;
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
    /// be acknowledged (at most [`FLUSH_TIMEOUT`]); without, drops it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_that_finds_the_inputs_full_is_an_overflow() {
        let (tx, mut rx) = mpsc::channel(1);
        assert_eq!(push_message(&tx, 7, Data::Bytes(vec![1])), Ok(()));
        assert_eq!(push_message(&tx, 7, Data::Bytes(vec![2])), Err(Overflow::Full));
        assert!(matches!(rx.recv().await, Some(Input::Transport(7, TransportEvent::Message(_)))));
        assert_eq!(push_message(&tx, 7, Data::Bytes(vec![3])), Ok(()));
        drop(rx);
        assert_eq!(push_message(&tx, 7, Data::Bytes(vec![4])), Err(Overflow::Closed));
    }
}
