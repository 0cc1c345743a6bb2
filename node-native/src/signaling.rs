//! WebSocket client to the signaling server (tokio-tungstenite).
//!
//! A reader task decodes server messages and pushes them into the node's bounded input
//! channel, waiting for room (backpressure on the socket). Until registration the node
//! writes on the socket itself; then a writer task takes messages from a bounded queue, so
//! the node's loop never waits on the server.

use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use futures::stream::SplitSink;
use futures::{SinkExt as _, StreamExt as _};
use past_signaling_proto::{ClientMessage, PeerId, ServerMessage, register_transcript, to_hex};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, Sender};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::node::Input;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Messages waiting for the writer task.
const WRITE_QUEUE: usize = 256;

/// What the socket reports.
#[derive(Debug)]
pub(crate) enum SignalingEvent {
    /// A valid message from the server.
    Message(ServerMessage),
    /// Something this version cannot read.
    Undecodable(String),
    /// The socket closed or failed.
    Closed(String),
}

/// The signaling socket before registration: the node writes on it directly.
pub(crate) struct SignalingClient {
    sink: SplitSink<Socket, Message>,
    reader: Reader,
}

impl SignalingClient {
    /// Connects to `url` (`ws://host/ws`), the node's server number `server`; messages go to
    /// `inputs`.
    pub(crate) async fn connect(
        url: &str,
        server: usize,
        inputs: Sender<Input>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (socket, _response) = connect_async(url).await?;
        let (sink, mut stream) = socket.split();
        let reader = tokio::spawn(async move {
            let reason = loop {
                let event = match stream.next().await {
                    None => break "connection closed".to_string(),
                    Some(Err(err)) => break err.to_string(),
                    Some(Ok(Message::Text(text))) => match ServerMessage::from_json(text.as_str()) {
                        Ok(msg) => SignalingEvent::Message(msg),
                        Err(err) => SignalingEvent::Undecodable(err.to_string()),
                    },
                    Some(Ok(Message::Close(frame))) => {
                        break frame.map_or_else(
                            || "closed by the server".to_string(),
                            |f| format!("closed by the server: {} {}", f.code, f.reason),
                        );
                    }
                    Some(Ok(_)) => continue,
                };
                if inputs.send(Input::Signaling(server, event)).await.is_err() {
                    return;
                }
            };
            let _ = inputs.send(Input::Signaling(server, SignalingEvent::Closed(reason))).await;
        });
        Ok(Self { sink, reader: Reader(reader) })
    }

    /// Sends one message.
    pub(crate) async fn send(&mut self, msg: &ClientMessage) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.sink.send(Message::text(msg.to_json())).await
    }

    /// Hands the socket to a writer task.
    pub(crate) fn into_writer(self) -> SignalingWriter {
        let (tx, mut rx) = mpsc::channel::<ClientMessage>(WRITE_QUEUE);
        let Self { mut sink, reader } = self;
        let writer = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if let Err(err) = sink.send(Message::text(msg.to_json())).await {
                    tracing::warn!("signaling write failed: {err}");
                    return;
                }
            }
            let _ = sink.close().await;
        });
        SignalingWriter { tx, writer, _reader: reader }
    }

    /// Closes the socket.
    pub(crate) async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

/// The registration answering the server's challenge `nonce` as `me`, signed with `key`;
/// `None` for a nonce longer than any server sends.
pub(crate) fn registration(key: &SigningKey, me: &PeerId, nonce: &str) -> Option<ClientMessage> {
    if nonce.len() > MAX_NONCE {
        return None;
    }
    let signature = key.sign(&register_transcript(nonce, me)).to_bytes();
    Some(ClientMessage::Register {
        peer: me.clone(),
        public_key: to_hex(&key.verifying_key().to_bytes()),
        signature: to_hex(&signature),
    })
}

/// Longest challenge accepted.
const MAX_NONCE: usize = 256;

/// Aborts the reader task when dropped.
#[derive(Debug)]
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The signaling socket after registration, written by a task of its own.
#[derive(Debug)]
pub(crate) struct SignalingWriter {
    tx: Sender<ClientMessage>,
    writer: tokio::task::JoinHandle<()>,
    _reader: Reader,
}

impl SignalingWriter {
    /// Queues `msg`; fails when the queue is full or the socket is gone (signals are
    /// retried by the peer manager's timeouts).
    pub(crate) fn try_send(&self, msg: ClientMessage) -> Result<(), String> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "the signaling queue is full".to_string(),
            mpsc::error::TrySendError::Closed(_) => "the signaling socket is closed".to_string(),
        })
    }

    /// Sends what is queued, then closes the socket (at most [`CLOSE_TIMEOUT`]).
    pub(crate) async fn close(self) {
        let Self { tx, mut writer, _reader } = self;
        drop(tx);
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer).await.is_err() {
            writer.abort();
        }
    }
}

/// How long closing waits for the queued messages.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
