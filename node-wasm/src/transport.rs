//! One `RTCPeerConnection` per peer, carrying one ordered, reliable `RTCDataChannel`.
//!
//! Every browser callback is a closure that only pushes an [`Input::Transport`] into the
//! node's input queue, tagged with the connection's id from the peer manager (never
//! reused, so an event of a replaced connection is recognised and ignored). The data channel's
//! handlers are created together with the connection and attached the moment the channel
//! exists (synchronously in `ondatachannel` on the answering side), so `onmessage` is
//! installed before anything can arrive. The offer/answer steps are futures the driver
//! spawns; they wait for ICE gathering to complete, so one SDP carries every candidate and
//! no trickling is needed (through the overlay, one message each way).

use js_sys::{ArrayBuffer, Function, Promise, Reflect, Uint8Array};
use past_link::ConnId;
use past_link::manager::Role;
use past_signaling_proto::IceServer;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelInit,
    RtcDataChannelState, RtcDataChannelType, RtcIceCandidateInit, RtcIceGatheringState, RtcIceTransportPolicy,
    RtcPeerConnection, RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit, RtcSignalingState,
};

use crate::driver::Input;
use crate::inputs::Inputs;
use crate::queue::{Data, LOW_WATER, QueueError, SendQueue};

/// Label of the one data channel between two nodes.
pub(crate) const CHANNEL_LABEL: &str = "past";

/// How long to wait for ICE gathering before sending the SDP with what was gathered.
const GATHERING_TIMEOUT_MS: i32 = 3000;

/// What a connection reports.
#[derive(Debug)]
pub(crate) enum TransportEvent {
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
    fn new(conn: ConnId, inputs: &Inputs) -> Self {
        let push = |inputs: &Inputs| {
            let tx = inputs.clone();
            move |event: TransportEvent| {
                let _ = tx.push(Input::Transport(conn, event));
            }
        };
        let open = push(inputs);
        let message = push(inputs);
        let close = push(inputs);
        let low = push(inputs);
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
    _on_state: Closure<dyn FnMut(Event)>,
    _on_channel: Option<Closure<dyn FnMut(RtcDataChannelEvent)>>,
}

impl Peer {
    /// A new connection `conn`, reporting into `inputs`.
    pub(crate) fn new(
        conn: ConnId,
        role: Role,
        ice_servers: &[IceServer],
        relay_only: bool,
        inputs: &Inputs,
    ) -> Result<Self, JsValue> {
        let config = RtcConfiguration::new();
        config.set_ice_servers(&serde_wasm_bindgen::to_value(ice_servers)?);
        if relay_only {
            config.set_ice_transport_policy(RtcIceTransportPolicy::Relay);
        }
        let pc = RtcPeerConnection::new_with_configuration(&config)?;
        let handlers = ChannelHandlers::new(conn, inputs);

        let (tx, pc2) = (inputs.clone(), pc.clone());
        let on_state = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let state = pc2.connection_state();
            if matches!(state, RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed) {
                let _ = tx.push(Input::Transport(conn, TransportEvent::Closed(format!("connection {state:?}"))));
            }
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));

        let mut peer_conn = Self {
            pc,
            channel: None,
            queue: SendQueue::default(),
            open: false,
            handlers,
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
                let tx = inputs.clone();
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
                    let _ = tx.push(Input::Transport(conn, TransportEvent::Channel(channel)));
                });
                peer_conn.pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));
                peer_conn._on_channel = Some(on_channel);
            }
        }
        Ok(peer_conn)
    }

    /// The peer connection (a JS handle), for the futures below.
    pub(crate) fn handle(&self) -> RtcPeerConnection {
        self.pc.clone()
    }

    /// Offerer: creates the offer, sets it locally, waits for ICE gathering; returns the SDP.
    pub(crate) async fn create_offer(pc: RtcPeerConnection) -> Result<String, JsValue> {
        let offer = JsFuture::from(pc.create_offer()).await?;
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        init.set_sdp(&sdp_of(&offer)?);
        JsFuture::from(pc.set_local_description(&init)).await?;
        gathered_sdp(&pc).await
    }

    /// Answerer: applies the peer's offer, creates the answer, sets it locally, waits for ICE
    /// gathering; returns the SDP.
    pub(crate) async fn accept_offer(pc: RtcPeerConnection, sdp: String) -> Result<String, JsValue> {
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        init.set_sdp(&sdp);
        JsFuture::from(pc.set_remote_description(&init)).await?;
        let answer = JsFuture::from(pc.create_answer()).await?;
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        init.set_sdp(&sdp_of(&answer)?);
        JsFuture::from(pc.set_local_description(&init)).await?;
        gathered_sdp(&pc).await
    }

    /// Offerer: applies the peer's answer.
    pub(crate) async fn accept_answer(pc: RtcPeerConnection, sdp: String) -> Result<(), JsValue> {
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        init.set_sdp(&sdp);
        JsFuture::from(pc.set_remote_description(&init)).await?;
        Ok(())
    }

    /// The round-trip time of the connection's selected candidate pair (`getStats`:
    /// `currentRoundTripTime` of the pair the transport names), or `None` when the statistics
    /// have none yet.
    pub(crate) async fn selected_rtt(pc: RtcPeerConnection) -> Option<std::time::Duration> {
        let report = JsFuture::from(pc.get_stats()).await.ok()?;
        let field = |stats: &JsValue, name: &str| Reflect::get(stats, &JsValue::from_str(name)).ok();
        let text = |stats: &JsValue, name: &str| field(stats, name).and_then(|v| v.as_string());
        let mut all = Vec::new();
        for entry in js_sys::try_iter(&report).ok()??.flatten() {
            all.push(Reflect::get(&entry, &JsValue::from(1)).ok()?);
        }
        let selected = all.iter().find_map(|s| text(s, "selectedCandidatePairId"));
        let pair = all.iter().find(|s| {
            text(s, "type").as_deref() == Some("candidate-pair")
                && match &selected {
                    Some(id) => text(s, "id").as_ref() == Some(id),
                    None => field(s, "nominated").is_some_and(|n| n.is_truthy()),
                }
        })?;
        let seconds = field(pair, "currentRoundTripTime")?.as_f64()?;
        (seconds.is_finite() && seconds >= 0.0).then(|| std::time::Duration::from_secs_f64(seconds))
    }

    /// Adds a candidate the peer trickled (a native node trickles through the server).
    pub(crate) async fn add_candidate(
        pc: RtcPeerConnection,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_m_line_index: Option<u16>,
    ) -> Result<(), JsValue> {
        let init = RtcIceCandidateInit::new(&candidate);
        init.set_sdp_mid(sdp_mid.as_deref());
        init.set_sdp_m_line_index(sdp_m_line_index);
        JsFuture::from(pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await?;
        Ok(())
    }

    /// The local and remote SDP, once both are set (for the handshake's fingerprints).
    /// Otherwise which one is missing, and the connection's states.
    pub(crate) fn descriptions(&self) -> Result<(String, String), String> {
        match (self.pc.local_description(), self.pc.remote_description()) {
            (Some(local), Some(remote)) => Ok((local.sdp(), remote.sdp())),
            (local, _) => Err(format!(
                "the channel opened without {} (signaling {:?}, connection {:?})",
                if local.is_none() { "a local description" } else { "a remote description" },
                self.pc.signaling_state(),
                self.pc.connection_state()
            )),
        }
    }

    /// Bytes waiting in our queue and in the channel's buffer.
    pub(crate) fn backlog(&self) -> usize {
        self.queue.bytes() + self.channel.as_ref().map_or(0, |c| c.buffered_amount() as usize)
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
    /// Whether our offer still waits for its answer to be applied. Chromium may report the
    /// data channel open before `setRemoteDescription(answer)` has completed (the remote
    /// description still null): the driver waits for the answer then.
    pub(crate) fn answer_pending(&self) -> bool {
        self.pc.signaling_state() == RtcSignalingState::HaveLocalOffer
    }

    /// Whether the data channel is open.
    pub(crate) fn channel_ready(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| c.ready_state() == RtcDataChannelState::Open)
    }

    pub(crate) fn mark_open(&mut self) -> bool {
        !std::mem::replace(&mut self.open, true)
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
            .map_err(|e| format!("send failed: {}", crate::identity::js_text(&e)))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            detach(channel);
            channel.close();
        }
        self.pc.set_onconnectionstatechange(None);
        self.pc.set_ondatachannel(None);
        self.pc.close();
    }
}

/// Waits until ICE gathering completes (at most [`GATHERING_TIMEOUT_MS`]), then returns the
/// local description, which now lists the candidates.
async fn gathered_sdp(pc: &RtcPeerConnection) -> Result<String, JsValue> {
    let mut waited = 0;
    while pc.ice_gathering_state() != RtcIceGatheringState::Complete && waited < GATHERING_TIMEOUT_MS {
        sleep_ms(20).await;
        waited += 20;
    }
    pc.local_description().map(|d| d.sdp()).ok_or_else(|| JsValue::from_str("no local description"))
}

/// A promise resolved after `ms` milliseconds.
pub(crate) async fn sleep_ms(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

fn sdp_of(description: &JsValue) -> Result<String, JsValue> {
    Reflect::get(description, &JsValue::from_str("sdp"))?
        .as_string()
        .ok_or_else(|| JsValue::from_str("session description without sdp"))
}
