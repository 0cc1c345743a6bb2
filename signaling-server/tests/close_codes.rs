//! Close codes the client sees: 1007 for a text frame that is not UTF-8, 1009 for a frame
//! or a message over the maximum (before the fix: 1000 for both), 1008 for a socket that
//! does not register in time.

mod hostile;

use std::time::Duration;

use futures::SinkExt as _;
use hostile::{HONEST, Read, TestServer, Ws, read, recv, small_config, ws_from};
use past_signaling::Config;
use past_signaling_proto::{ErrorCode, MAX_MESSAGE_BYTES, ServerMessage};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

const MAX_FRAME: usize = 32 * 1024;

async fn connect(server: &TestServer) -> Ws {
    let mut ws = ws_from(HONEST, server.addr(), None).await.expect("handshake");
    assert!(matches!(recv(&mut ws).await, ServerMessage::Challenge { .. }));
    ws
}

/// The code of the close frame that ends `ws`.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match read(ws, Duration::from_secs(5)).await {
            Read::Message(_) => {}
            Read::Closed(Some(frame)) => return frame.code.into(),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

fn text_frame(payload: Vec<u8>, fin: bool, first: bool) -> Message {
    let opcode = if first { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
    Message::Frame(Frame::message(payload, opcode, fin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_frame_gets_its_close_code() {
    let server = TestServer::start(Config {
        max_frame_bytes: MAX_FRAME,
        register_timeout: Duration::from_millis(500),
        ..small_config()
    });

    // A text frame that is not UTF-8: 1007.
    let mut ws = connect(&server).await;
    ws.send(text_frame(vec![b'{', 0xff, 0xfe, b'}'], true, true)).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 1007);

    // A frame over the maximum: 1009.
    let mut ws = connect(&server).await;
    ws.send(Message::text("x".repeat(MAX_FRAME * 4))).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 1009);

    // A message over the maximum in frames under it: 1009.
    let mut ws = connect(&server).await;
    ws.send(text_frame(vec![b'x'; MAX_FRAME / 2 + 1], false, true)).await.expect("send");
    ws.send(text_frame(vec![b'x'; MAX_FRAME / 2 + 1], true, false)).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 1009);

    // Under the maximum but over a signaling message: a JSON error, the socket stays open.
    let mut ws = connect(&server).await;
    ws.send(Message::text("x".repeat(MAX_MESSAGE_BYTES + 1))).await.expect("send");
    match recv(&mut ws).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::TooLarge),
        other => panic!("expected too_large, got {other:?}"),
    }
    // ... until the register timeout: 1008.
    assert_eq!(close_code(&mut ws).await, 1008);
    server.stop();
}
