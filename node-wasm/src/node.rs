//! The node's event loop: one task that owns all state and handles one input at a time.
//!
//! Inputs come from the signaling socket, from the peer connections and from the JS API,
//! all through one unbounded channel (the callbacks only push). Handling an input may await
//! a browser promise (`createOffer`, `setRemoteDescription`, ...); inputs queue meanwhile
//! and are handled in arrival order, which keeps each peer's offer, answer and candidates in
//! order. Issue 6 puts the sans-IO Pastry core in the middle of this loop.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::StreamExt as _;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::channel::oneshot;
use js_sys::{Function, Object, Reflect, Uint8Array};
use past_signaling_proto::{ClientMessage, IceServer, PeerId, ServerMessage, SignalPayload};
use wasm_bindgen::prelude::*;

use crate::queue::Data;
use crate::signaling::{SignalingClient, SignalingEvent};
use crate::transport::{Peer, Role, TransportEvent, js_error_text};

/// Most `RTCPeerConnection`s one page creates over its life. Chromium refuses more than 500
/// per tab (closed ones included); stay below to leave room for the overlay later.
pub(crate) const MAX_CONNECTIONS_PER_PAGE: u32 = 400;

/// Everything the loop reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    /// From the signaling socket.
    Signaling(SignalingEvent),
    /// From the connection to a peer.
    Transport(PeerId, TransportEvent),
    /// From the JS API.
    Command(Command),
}

/// Requests from the JS API.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send `data` to `peer`; the reply says whether it was accepted.
    Send { peer: PeerId, data: Data, reply: oneshot::Sender<Result<(), String>> },
    /// Close everything and end the loop.
    Close,
}

/// What the JS API reads without going through the loop.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) status: String,
    pub(crate) connected: Vec<PeerId>,
    pub(crate) connections_made: u32,
}

/// Resolved once, when registration succeeds or fails.
pub(crate) type Ready = oneshot::Sender<Result<(), String>>;

/// The loop's state.
pub(crate) struct Node {
    me: PeerId,
    inputs: UnboundedSender<Input>,
    signaling: Option<SignalingClient>,
    ice_servers: Vec<IceServer>,
    peers: BTreeMap<PeerId, Peer>,
    snapshot: Rc<RefCell<Snapshot>>,
    on_event: Option<Function>,
    ready: Option<Ready>,
}

impl Node {
    pub(crate) fn new(
        me: PeerId,
        inputs: UnboundedSender<Input>,
        signaling: SignalingClient,
        snapshot: Rc<RefCell<Snapshot>>,
        on_event: Option<Function>,
        ready: Ready,
    ) -> Self {
        Self {
            me,
            inputs,
            signaling: Some(signaling),
            ice_servers: Vec::new(),
            peers: BTreeMap::new(),
            snapshot,
            on_event,
            ready: Some(ready),
        }
    }

    /// Runs until [`Command::Close`] or until every input sender is gone.
    pub(crate) async fn run(mut self, mut inputs: UnboundedReceiver<Input>) {
        self.set_status("connecting");
        while let Some(input) = inputs.next().await {
            match input {
                Input::Signaling(event) => self.on_signaling(event).await,
                Input::Transport(peer, event) => self.on_transport(peer, event).await,
                Input::Command(Command::Send { peer, data, reply }) => {
                    let _ = reply.send(self.send(&peer, data));
                }
                Input::Command(Command::Close) => break,
            }
        }
        self.peers.clear();
        self.signaling = None;
        self.refresh_connected();
        self.set_status("closed");
    }

    async fn on_signaling(&mut self, event: SignalingEvent) {
        match event {
            SignalingEvent::Open => {
                self.set_status("registering");
                let register = ClientMessage::Register {
                    peer: self.me.clone(),
                    public_key: String::new(),
                    signature: String::new(),
                };
                if let Err(err) = self.signal(&register) {
                    self.fail_ready(format!("cannot register: {err}"));
                }
            }
            SignalingEvent::Message(msg) => self.on_server_message(msg).await,
            SignalingEvent::Undecodable(err) => {
                self.emit_error(&format!("unreadable message from the signaling server: {err}"));
            }
            SignalingEvent::Closed { code, reason } => {
                self.signaling = None;
                let text =
                    format!("signaling closed (code {code}{}{reason})", if reason.is_empty() { "" } else { ": " });
                self.fail_ready(text.clone());
                // Open data channels keep working without the server.
                self.set_status(&text);
            }
        }
    }

    async fn on_server_message(&mut self, msg: ServerMessage) {
        match msg {
            ServerMessage::Welcome { ice_servers, peers, .. } => {
                self.ice_servers = ice_servers;
                self.set_status("registered");
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
                // The newcomer offers to everyone present; they answer. No glare.
                for peer in peers {
                    self.offer_to(peer).await;
                }
            }
            ServerMessage::Signal { from, payload } => self.on_signal(from, payload).await,
            ServerMessage::Error { code, message } => {
                let text = format!("signaling error {code}: {message}");
                self.fail_ready(text.clone());
                self.emit_error(&text);
            }
            other => self.emit_error(&format!("unexpected signaling message {other:?}")),
        }
    }

    async fn offer_to(&mut self, peer: PeerId) {
        let Some(conn) = self.new_peer(&peer, Role::Offerer) else {
            return;
        };
        let offer = conn.create_offer().await;
        self.peers.insert(peer.clone(), conn);
        match offer {
            Ok(payload) => self.signal_to(&peer, payload),
            Err(err) => self.peer_failed(&peer, &format!("createOffer: {}", js_error_text(&err))),
        }
    }

    async fn on_signal(&mut self, from: PeerId, payload: SignalPayload) {
        match payload {
            SignalPayload::Offer { sdp } => {
                // A new offer from a peer replaces whatever we had with it.
                self.drop_peer(&from, "replaced by a new offer");
                let Some(conn) = self.new_peer(&from, Role::Answerer) else {
                    return;
                };
                let answer = conn.accept_offer(&sdp).await;
                self.peers.insert(from.clone(), conn);
                match answer {
                    Ok(payload) => self.signal_to(&from, payload),
                    Err(err) => self.peer_failed(&from, &format!("answering: {}", js_error_text(&err))),
                }
            }
            SignalPayload::Answer { sdp } => {
                let Some(conn) = self.peers.get(&from) else {
                    return;
                };
                if let Err(err) = conn.accept_answer(&sdp).await {
                    self.peer_failed(&from, &format!("applying the answer: {}", js_error_text(&err)));
                }
            }
            SignalPayload::Candidate { candidate, sdp_mid, sdp_m_line_index } => {
                let Some(conn) = self.peers.get(&from) else {
                    return;
                };
                if let Err(err) = conn.add_candidate(&candidate, sdp_mid.as_deref(), sdp_m_line_index).await {
                    // One bad candidate does not doom the connection.
                    self.emit_error(&format!("candidate from {from}: {}", js_error_text(&err)));
                }
            }
        }
    }

    async fn on_transport(&mut self, peer: PeerId, event: TransportEvent) {
        match event {
            TransportEvent::LocalCandidate(payload) => {
                if self.peers.contains_key(&peer) {
                    self.signal_to(&peer, payload);
                }
            }
            TransportEvent::Channel(channel) => {
                if let Some(conn) = self.peers.get_mut(&peer)
                    && conn.set_channel(channel)
                {
                    self.on_open(&peer);
                }
            }
            TransportEvent::Open => self.on_open(&peer),
            TransportEvent::Message(data) => {
                let value: JsValue = match data {
                    Data::Text(text) => text.into(),
                    Data::Bytes(bytes) => Uint8Array::from(bytes.as_slice()).into(),
                };
                self.emit(&[("type", "message".into()), ("peer", peer.as_str().into()), ("data", value)]);
            }
            TransportEvent::BufferedLow => {
                if let Some(conn) = self.peers.get_mut(&peer)
                    && let Err(err) = conn.flush()
                {
                    self.peer_failed(&peer, &err);
                }
            }
            TransportEvent::Closed(reason) => self.drop_peer(&peer, &reason),
        }
    }

    fn on_open(&mut self, peer: &PeerId) {
        let newly = self.peers.get_mut(peer).is_some_and(Peer::mark_open);
        if newly {
            self.refresh_connected();
            self.emit(&[("type", "connected".into()), ("peer", peer.as_str().into())]);
        }
    }

    fn send(&mut self, peer: &PeerId, data: Data) -> Result<(), String> {
        let conn = self.peers.get_mut(peer).ok_or_else(|| format!("not connected to {peer}"))?;
        conn.send(data)
    }

    fn new_peer(&mut self, peer: &PeerId, role: Role) -> Option<Peer> {
        let made = self.snapshot.borrow().connections_made;
        if made >= MAX_CONNECTIONS_PER_PAGE {
            self.emit_error(&format!("connection budget of this page used up ({made} made); reload the page"));
            return None;
        }
        match Peer::new(peer, role, &self.ice_servers, &self.inputs) {
            Ok(conn) => {
                self.snapshot.borrow_mut().connections_made += 1;
                Some(conn)
            }
            Err(err) => {
                self.emit_error(&format!("RTCPeerConnection for {peer}: {}", js_error_text(&err)));
                None
            }
        }
    }

    fn peer_failed(&mut self, peer: &PeerId, reason: &str) {
        self.emit_error(&format!("connection to {peer}: {reason}"));
        self.drop_peer(peer, reason);
    }

    fn drop_peer(&mut self, peer: &PeerId, reason: &str) {
        if let Some(conn) = self.peers.remove(peer) {
            let was_open = conn.is_open();
            drop(conn);
            if was_open {
                self.refresh_connected();
                self.emit(&[
                    ("type", "disconnected".into()),
                    ("peer", peer.as_str().into()),
                    ("reason", reason.into()),
                ]);
            }
        }
    }

    fn signal_to(&mut self, to: &PeerId, payload: SignalPayload) {
        let msg = ClientMessage::Signal { to: to.clone(), payload };
        if let Err(err) = self.signal(&msg) {
            self.peer_failed(to, &format!("signaling: {err}"));
        }
    }

    fn signal(&self, msg: &ClientMessage) -> Result<(), String> {
        match &self.signaling {
            Some(client) => client.send(msg).map_err(|e| js_error_text(&e)),
            None => Err("the signaling server is not connected".into()),
        }
    }

    fn fail_ready(&mut self, reason: String) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(reason));
        }
    }

    fn refresh_connected(&self) {
        self.snapshot.borrow_mut().connected =
            self.peers.iter().filter(|(_, c)| c.is_open()).map(|(id, _)| id.clone()).collect();
    }

    fn set_status(&self, status: &str) {
        self.snapshot.borrow_mut().status = status.to_string();
        self.emit(&[("type", "status".into()), ("status", status.into())]);
    }

    fn emit_error(&self, message: &str) {
        self.emit(&[("type", "error".into()), ("message", message.into())]);
    }

    /// Calls the page's `onEvent` with `{type, ...fields}`. A throwing callback is logged,
    /// never fatal.
    fn emit(&self, fields: &[(&str, JsValue)]) {
        let Some(callback) = &self.on_event else {
            return;
        };
        let event = Object::new();
        for (key, value) in fields {
            let _ = Reflect::set(&event, &JsValue::from_str(key), value);
        }
        if let Err(err) = callback.call1(&JsValue::NULL, &event) {
            web_sys::console::warn_2(&"past: onEvent threw".into(), &err);
        }
    }
}
