//! One `RTCPeerConnection` per peer, carrying one ordered, reliable `RTCDataChannel`.
//!
//! Every browser callback is a closure that only pushes an [`Input::Transport`] into the
//! node's input channel. The data channel's handlers are created together with the
//! connection and attached the moment the channel exists (synchronously in `ondatachannel`
//! on the answering side), so `onmessage` is installed before anything can arrive.

use futures::channel::mpsc::UnboundedSender;
use js_sys::{ArrayBuffer, Function, Reflect, Uint8Array};
use past_signaling_proto::{IceServer, PeerId, SignalPayload};
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelInit,
    RtcDataChannelState, RtcDataChannelType, RtcIceCandidateInit, RtcPeerConnection, RtcPeerConnectionIceEvent,
    RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
};

use crate::node::Input;
use crate::queue::{Data, LOW_WATER, QueueError, SendQueue};

/// Label of the one data channel between two nodes.
pub(crate) const CHANNEL_LABEL: &str = "past";

/// What a connection reports.
#[derive(Debug)]
pub(crate) enum TransportEvent {
    /// A local ICE candidate to send to the peer.
    LocalCandidate(SignalPayload),
    /// The answering side received the peer's data channel (handlers already attached).
    Channel(RtcDataChannel),
    /// The data channel is open: the peer is connected.
    Open,
    /// A message arrived.
    Message(Data),
    /// The channel's buffer drained to the low-water mark.
    BufferedLow,
    /// The data channel closed or the connection failed.
    Closed(String),
}

/// The data channel's handlers, owned by the [`Peer`] and attached to whichever channel
/// belongs to it.
struct ChannelHandlers {
    on_open: Closure<dyn FnMut(Event)>,
    on_message: Closure<dyn FnMut(MessageEvent)>,
    on_close: Closure<dyn FnMut(Event)>,
    on_low: Closure<dyn FnMut(Event)>,
}

impl ChannelHandlers {
    fn new(peer: &PeerId, inputs: &UnboundedSender<Input>) -> Self {
        let push = |inputs: &UnboundedSender<Input>, peer: &PeerId| {
            let (tx, peer) = (inputs.clone(), peer.clone());
            move |event: TransportEvent| {
                let _ = tx.unbounded_send(Input::Transport(peer.clone(), event));
            }
        };
        let open = push(inputs, peer);
        let message = push(inputs, peer);
        let close = push(inputs, peer);
        let low = push(inputs, peer);
        Self {
            on_open: Closure::new(move |_: Event| open(TransportEvent::Open)),
            on_message: Closure::new(move |event: MessageEvent| {
                let data = event.data();
                let data = if let Some(text) = data.as_string() {
                    Data::Text(text)
                } else if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
                    Data::Bytes(Uint8Array::new(buffer).to_vec())
                } else {
                    // binaryType is "arraybuffer"; nothing else can arrive.
                    return;
                };
                message(TransportEvent::Message(data));
            }),
            on_close: Closure::new(move |_: Event| {
                close(TransportEvent::Closed("data channel closed".into()));
            }),
            on_low: Closure::new(move |_: Event| low(TransportEvent::BufferedLow)),
        }
    }

    fn attach(&self, channel: &RtcDataChannel) {
        channel.set_binary_type(RtcDataChannelType::Arraybuffer);
        channel.set_buffered_amount_low_threshold(LOW_WATER);
        channel.set_onopen(Some(self.on_open.as_ref().unchecked_ref()));
        channel.set_onmessage(Some(self.on_message.as_ref().unchecked_ref()));
        channel.set_onclose(Some(self.on_close.as_ref().unchecked_ref()));
        channel.set_onbufferedamountlow(Some(self.on_low.as_ref().unchecked_ref()));
    }

    fn functions(&self) -> [Function; 4] {
        [
            self.on_open.as_ref().unchecked_ref::<Function>().clone(),
            self.on_message.as_ref().unchecked_ref::<Function>().clone(),
            self.on_close.as_ref().unchecked_ref::<Function>().clone(),
            self.on_low.as_ref().unchecked_ref::<Function>().clone(),
        ]
    }
}

fn detach(channel: &RtcDataChannel) {
    channel.set_onopen(None);
    channel.set_onmessage(None);
    channel.set_onclose(None);
    channel.set_onbufferedamountlow(None);
}

/// A connection to one peer. Dropping it detaches every callback and closes the
/// connection.
pub(crate) struct Peer {
    pc: RtcPeerConnection,
    channel: Option<RtcDataChannel>,
    queue: SendQueue,
    open: bool,
    handlers: ChannelHandlers,
    _on_candidate: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _on_state: Closure<dyn FnMut(Event)>,
    _on_channel: Option<Closure<dyn FnMut(RtcDataChannelEvent)>>,
}

/// Which side of the offer/answer exchange this node is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Creates the data channel and the offer (the newcomer).
    Offerer,
    /// Receives the offer and the data channel.
    Answerer,
}

impl Peer {
    /// A new connection to `peer`, reporting into `inputs`.
    pub(crate) fn new(
        peer: &PeerId,
        role: Role,
        ice_servers: &[IceServer],
        inputs: &UnboundedSender<Input>,
    ) -> Result<Self, JsValue> {
        let config = RtcConfiguration::new();
        config.set_ice_servers(&serde_wasm_bindgen::to_value(ice_servers)?);
        let pc = RtcPeerConnection::new_with_configuration(&config)?;
        let handlers = ChannelHandlers::new(peer, inputs);

        let (tx, id) = (inputs.clone(), peer.clone());
        let on_candidate =
            Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(move |event: RtcPeerConnectionIceEvent| {
                // `null` (end of gathering) and empty candidates need not be sent.
                let Some(candidate) = event.candidate() else {
                    return;
                };
                if candidate.candidate().is_empty() {
                    return;
                }
                let payload = SignalPayload::Candidate {
                    candidate: candidate.candidate(),
                    sdp_mid: candidate.sdp_mid(),
                    sdp_m_line_index: candidate.sdp_m_line_index(),
                };
                let _ = tx.unbounded_send(Input::Transport(id.clone(), TransportEvent::LocalCandidate(payload)));
            });
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));

        let (tx, id, pc2) = (inputs.clone(), peer.clone(), pc.clone());
        let on_state = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let state = pc2.connection_state();
            if matches!(state, RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed) {
                let _ = tx.unbounded_send(Input::Transport(
                    id.clone(),
                    TransportEvent::Closed(format!("connection {state:?}")),
                ));
            }
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));

        let mut peer_conn = Self {
            pc,
            channel: None,
            queue: SendQueue::default(),
            open: false,
            handlers,
            _on_candidate: on_candidate,
            _on_state: on_state,
            _on_channel: None,
        };
        match role {
            Role::Offerer => {
                let init = RtcDataChannelInit::new();
                init.set_ordered(true);
                let channel = peer_conn.pc.create_data_channel_with_data_channel_dict(CHANNEL_LABEL, &init);
                peer_conn.handlers.attach(&channel);
                peer_conn.channel = Some(channel);
            }
            Role::Answerer => {
                let [open, message, close, low] = peer_conn.handlers.functions();
                let (tx, id) = (inputs.clone(), peer.clone());
                let on_channel = Closure::<dyn FnMut(RtcDataChannelEvent)>::new(move |event: RtcDataChannelEvent| {
                    let channel = event.channel();
                    // Attach synchronously, before the event loop gets to it: messages
                    // may follow right away.
                    channel.set_binary_type(RtcDataChannelType::Arraybuffer);
                    channel.set_buffered_amount_low_threshold(LOW_WATER);
                    channel.set_onopen(Some(&open));
                    channel.set_onmessage(Some(&message));
                    channel.set_onclose(Some(&close));
                    channel.set_onbufferedamountlow(Some(&low));
                    let _ = tx.unbounded_send(Input::Transport(id.clone(), TransportEvent::Channel(channel)));
                });
                peer_conn.pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));
                peer_conn._on_channel = Some(on_channel);
            }
        }
        Ok(peer_conn)
    }

    /// Offerer: creates the offer and sets it as the local description.
    pub(crate) async fn create_offer(&self) -> Result<SignalPayload, JsValue> {
        let offer = JsFuture::from(self.pc.create_offer()).await?;
        let sdp = sdp_of(&offer)?;
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        init.set_sdp(&sdp);
        JsFuture::from(self.pc.set_local_description(&init)).await?;
        Ok(SignalPayload::Offer { sdp })
    }

    /// Answerer: applies the peer's offer, creates the answer and sets it locally.
    pub(crate) async fn accept_offer(&self, sdp: &str) -> Result<SignalPayload, JsValue> {
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        init.set_sdp(sdp);
        JsFuture::from(self.pc.set_remote_description(&init)).await?;
        let answer = JsFuture::from(self.pc.create_answer()).await?;
        let sdp = sdp_of(&answer)?;
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        init.set_sdp(&sdp);
        JsFuture::from(self.pc.set_local_description(&init)).await?;
        Ok(SignalPayload::Answer { sdp })
    }

    /// Offerer: applies the peer's answer.
    pub(crate) async fn accept_answer(&self, sdp: &str) -> Result<(), JsValue> {
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        init.set_sdp(sdp);
        JsFuture::from(self.pc.set_remote_description(&init)).await?;
        Ok(())
    }

    /// Adds a candidate the peer trickled.
    pub(crate) async fn add_candidate(
        &self,
        candidate: &str,
        sdp_mid: Option<&str>,
        sdp_m_line_index: Option<u16>,
    ) -> Result<(), JsValue> {
        let init = RtcIceCandidateInit::new(candidate);
        init.set_sdp_mid(sdp_mid);
        init.set_sdp_m_line_index(sdp_m_line_index);
        JsFuture::from(self.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await?;
        Ok(())
    }

    /// Answerer: the channel announced by `ondatachannel` (handlers already attached).
    /// Returns whether it is open already (Chromium announces it open, with no `open`
    /// event to follow).
    pub(crate) fn set_channel(&mut self, channel: RtcDataChannel) -> bool {
        let open = channel.ready_state() == RtcDataChannelState::Open;
        self.channel = Some(channel);
        open
    }

    /// Marks the channel open. Returns `false` if it already was.
    pub(crate) fn mark_open(&mut self) -> bool {
        !std::mem::replace(&mut self.open, true)
    }

    /// Whether the data channel is open.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Queues `data` and sends what the channel's buffer has room for.
    pub(crate) fn send(&mut self, data: Data) -> Result<(), String> {
        if !self.open {
            return Err("the data channel is not open".into());
        }
        self.queue.push(data).map_err(|e: QueueError| e.to_string())?;
        self.flush()
    }

    /// Sends queued messages while the channel's buffer is below the high-water mark.
    pub(crate) fn flush(&mut self) -> Result<(), String> {
        let Some(channel) = &self.channel else {
            return Ok(());
        };
        self.queue
            .drain(channel.buffered_amount(), |data| match data {
                Data::Text(text) => channel.send_with_str(text),
                Data::Bytes(bytes) => channel.send_with_u8_array(bytes),
            })
            .map_err(|e| format!("send failed: {}", js_error_text(&e)))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            detach(channel);
            channel.close();
        }
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.set_ondatachannel(None);
        self.pc.close();
    }
}

fn sdp_of(description: &JsValue) -> Result<String, JsValue> {
    Reflect::get(description, &JsValue::from_str("sdp"))?
        .as_string()
        .ok_or_else(|| JsValue::from_str("session description without sdp"))
}

/// The message of a JS exception or value, for error events.
pub(crate) fn js_error_text(value: &JsValue) -> String {
    if let Some(err) = value.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
