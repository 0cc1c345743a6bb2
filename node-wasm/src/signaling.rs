//! WebSocket client to the signaling server.
//!
//! The socket's callbacks only decode and push [`Input::Signaling`] into the node's input
//! channel; the event loop in `driver.rs` does the rest.

use past_signaling_proto::{ClientMessage, ServerMessage};
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use crate::driver::Input;
use crate::inputs::Inputs;

/// What the socket reports.
#[derive(Debug)]
pub(crate) enum SignalingEvent {
    /// The socket is open: time to register.
    Open,
    /// A valid message from the server.
    Message(ServerMessage),
    /// The server sent something this version cannot read.
    Undecodable(String),
    /// The socket closed (or failed to open).
    Closed {
        /// WebSocket close code.
        code: u16,
        /// Close reason given by the server.
        reason: String,
    },
}

/// An open (or opening) signaling socket. Dropping it closes the socket and detaches every
/// callback first, so none can fire into freed closures.
pub(crate) struct SignalingClient {
    socket: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl SignalingClient {
    /// Opens `url` (`ws://host/ws`) and reports into `inputs`, tagged with `generation` (each
    /// reconnection is a new generation; events of an older socket are ignored).
    pub(crate) fn connect(url: &str, generation: u32, inputs: Inputs) -> Result<Self, JsValue> {
        let socket = WebSocket::new(url)?;

        let tx = inputs.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let _ = tx.push(Input::Signaling(generation, SignalingEvent::Open));
        });
        let tx = inputs.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let event = match event.data().as_string() {
                Some(text) => match ServerMessage::from_json(&text) {
                    Ok(msg) => SignalingEvent::Message(msg),
                    Err(err) => SignalingEvent::Undecodable(err.to_string()),
                },
                None => SignalingEvent::Undecodable("binary frame from the server".into()),
            };
            let _ = tx.push(Input::Signaling(generation, event));
        });
        let tx = inputs;
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            let _ = tx.push(Input::Signaling(
                generation,
                SignalingEvent::Closed { code: event.code(), reason: event.reason() },
            ));
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // An error is always followed by `close`, which carries what there is to know.
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self { socket, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    /// Sends one message; fails if the socket is not open.
    pub(crate) fn send(&self, msg: &ClientMessage) -> Result<(), JsValue> {
        self.socket.send_with_str(&msg.to_json())
    }
}

impl Drop for SignalingClient {
    fn drop(&mut self) {
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}
