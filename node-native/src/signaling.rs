//! WebSocket client to the signaling server (tokio-tungstenite).
//!
//! A reader task decodes server messages and pushes them into the node's input channel; the
//! write half is kept by the node, which sends from its loop.

use futures::stream::SplitSink;
use futures::{SinkExt as _, StreamExt as _};
use past_signaling_proto::{ClientMessage, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::node::Input;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// The write half of the signaling socket.
pub(crate) struct SignalingClient {
    sink: SplitSink<Socket, Message>,
    reader: tokio::task::JoinHandle<()>,
}

impl SignalingClient {
    /// Connects to `url` (`ws://host/ws`); messages go to `inputs`.
    pub(crate) async fn connect(
        url: &str,
        inputs: UnboundedSender<Input>,
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
                if inputs.send(Input::Signaling(event)).is_err() {
                    return;
                }
            };
            let _ = inputs.send(Input::Signaling(SignalingEvent::Closed(reason)));
        });
        Ok(Self { sink, reader })
    }

    /// Sends one message.
    pub(crate) async fn send(&mut self, msg: &ClientMessage) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.sink.send(Message::text(msg.to_json())).await
    }

    /// Closes the socket.
    pub(crate) async fn close(mut self) {
        let _ = self.sink.close().await;
        self.reader.abort();
    }
}

impl Drop for SignalingClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
