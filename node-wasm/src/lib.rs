//! The PAST node in the browser: the driver that a page loads as WebAssembly.
//!
//! Today it is the transport half of the node: it registers with the signaling server over
//! a WebSocket, opens one `RTCPeerConnection` with one ordered, reliable `RTCDataChannel`
//! to each peer the server introduces, and lets the page send and receive messages. It is
//! **not** yet a Pastry node: issue 6 puts the sans-IO core (`past-core`) in the middle of
//! the event loop, with IndexedDB storage and a WebCrypto identity.
//!
//! # Shape (thin driver)
//! - `signaling`: WebSocket client; its callbacks push into a channel.
//! - `transport`: one connection per peer; its callbacks push into the
//!   same channel. The data channel's `onmessage` is attached before anything can arrive.
//! - `node`: one event loop owning all state, handling one input at a time.
//! - [`queue`]: backpressure (pause above 256 KiB buffered, resume at 64 KiB), pure and
//!   tested natively.
//! - This file: the JS API.
//!
//! Who offers is fixed, so two nodes never offer to each other at once (glare): a newcomer
//! offers to every peer listed in its welcome message; peers already present answer.
//! ICE servers come from the welcome message and are empty unless the server's operator
//! configured some.
//!
//! # JS API
//! ```js
//! import init, { start } from "/pkg/past_node.js";
//! await init();
//! const node = await start({
//!   signalingUrl: `ws://${location.host}/ws`,
//!   onEvent: (e) => console.log(e), // {type: "status"|"connected"|"disconnected"|"message"|
//!                                   //  "peer_joined"|"peer_left"|"error", ...}
//! });
//! node.id(); node.status(); node.peers();   // connected peer ids
//! await node.send(peerId, "text or a Uint8Array of at most 256 KiB");
//! node.close();
//! ```
//! `message` events carry `data` as a string or a `Uint8Array`, as it was sent.
//!
//! On a native target the crate compiles (so `cargo test --workspace` builds it) and its
//! pure parts are tested, but the browser API is only usable on wasm32.

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use js_sys::{Array, ArrayBuffer, Function, Reflect, Uint8Array};
use past_signaling_proto::PeerId;
use serde::Deserialize;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;

mod node;
pub mod queue;
mod signaling;
mod transport;

use node::{Command, Input, Snapshot};
use queue::Data;
use transport::js_error_text;

/// Options of [`start`], read from a JS object (camelCase keys).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartOptions {
    /// `ws://host/ws` of the signaling server.
    signaling_url: String,
    /// The id to register; random when absent.
    #[serde(default)]
    peer_id: Option<String>,
}

/// Starts a node: connects to the signaling server and registers. Resolves to a [`Node`]
/// once registered; rejects if the server cannot be reached or refuses.
///
/// `config`: `{ signalingUrl: string, peerId?: string, onEvent?: (event) => void }`.
#[wasm_bindgen]
pub async fn start(config: JsValue) -> Result<Node, JsError> {
    let options: StartOptions = serde_wasm_bindgen::from_value(config.clone())
        .map_err(|e| JsError::new(&format!("invalid start options: {e}")))?;
    let on_event =
        Reflect::get(&config, &JsValue::from_str("onEvent")).ok().and_then(|f| f.dyn_into::<Function>().ok());
    let id = match options.peer_id {
        Some(id) => id,
        None => random_id()?,
    };
    let me = PeerId::new(id).map_err(|e| JsError::new(&e.to_string()))?;

    let (tx, rx) = mpsc::unbounded::<Input>();
    let signaling = signaling::SignalingClient::connect(&options.signaling_url, tx.clone())
        .map_err(|e| JsError::new(&js_error_text(&e)))?;
    let snapshot = Rc::new(RefCell::new(Snapshot::default()));
    let (ready_tx, ready_rx) = oneshot::channel();
    let node = node::Node::new(me.clone(), tx.clone(), signaling, snapshot.clone(), on_event, ready_tx);
    wasm_bindgen_futures::spawn_local(node.run(rx));

    match ready_rx.await {
        Ok(Ok(())) => Ok(Node { me, inputs: tx, snapshot }),
        Ok(Err(reason)) => {
            let _ = tx.unbounded_send(Input::Command(Command::Close));
            Err(JsError::new(&reason))
        }
        Err(_) => Err(JsError::new("the node stopped before registering")),
    }
}

/// A running node, handed to the page by [`start`].
#[wasm_bindgen]
pub struct Node {
    me: PeerId,
    inputs: mpsc::UnboundedSender<Input>,
    snapshot: Rc<RefCell<Snapshot>>,
}

#[wasm_bindgen]
impl Node {
    /// This node's peer id.
    pub fn id(&self) -> String {
        self.me.to_string()
    }

    /// A short human-readable status: `connecting`, `registering`, `registered`,
    /// `signaling closed (...)` or `closed`.
    pub fn status(&self) -> String {
        self.snapshot.borrow().status.clone()
    }

    /// Ids of the peers whose data channel is open.
    pub fn peers(&self) -> Array {
        self.snapshot.borrow().connected.iter().map(|p| JsValue::from_str(p.as_str())).collect()
    }

    /// How many `RTCPeerConnection`s this page has created (Chromium allows 500 per tab).
    #[wasm_bindgen(js_name = connectionsMade)]
    pub fn connections_made(&self) -> u32 {
        self.snapshot.borrow().connections_made
    }

    /// Sends `data` (a string, a `Uint8Array` or an `ArrayBuffer`, at most 256 KiB) to a
    /// connected peer. Resolves when the message is handed to the channel or queued behind
    /// earlier ones; rejects if the peer is not connected or the message is too large.
    pub async fn send(&self, peer: String, data: JsValue) -> Result<(), JsError> {
        let peer = PeerId::new(peer).map_err(|e| JsError::new(&e.to_string()))?;
        let data = if let Some(text) = data.as_string() {
            Data::Text(text)
        } else if let Some(bytes) = data.dyn_ref::<Uint8Array>() {
            Data::Bytes(bytes.to_vec())
        } else if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
            Data::Bytes(Uint8Array::new(buffer).to_vec())
        } else {
            return Err(JsError::new("send takes a string, a Uint8Array or an ArrayBuffer"));
        };
        let (reply, replied) = oneshot::channel();
        self.inputs
            .unbounded_send(Input::Command(Command::Send { peer, data, reply }))
            .map_err(|_| JsError::new("the node is closed"))?;
        match replied.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(JsError::new(&reason)),
            Err(_) => Err(JsError::new("the node is closed")),
        }
    }

    /// Closes every connection and the signaling socket.
    pub fn close(&self) {
        let _ = self.inputs.unbounded_send(Input::Command(Command::Close));
    }
}

/// 16 random bytes as hex, from `crypto.getRandomValues`.
fn random_id() -> Result<String, JsError> {
    let crypto = web_sys::window()
        .ok_or_else(|| JsError::new("no window"))?
        .crypto()
        .map_err(|e| JsError::new(&js_error_text(&e)))?;
    let mut bytes = [0u8; 16];
    crypto.get_random_values_with_u8_array(&mut bytes).map_err(|e| JsError::new(&js_error_text(&e)))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
