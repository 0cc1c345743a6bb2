//! The signaling server in-process, driven by real WebSocket clients.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use past_core::Id;
use past_signaling::{Config, ServerHandle};
use past_signaling_proto::{ClientMessage, ErrorCode, MAX_MESSAGE_BYTES, PeerId, ServerMessage, SignalPayload, to_hex};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

mod identity;
use identity::Key;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

fn id(s: &str) -> PeerId {
    PeerId::new(s).expect("valid id")
}

/// Connects and reads the challenge.
async fn connect(server: &ServerHandle) -> (Ws, String) {
    let (mut ws, _) = connect_async(server.ws_url()).await.expect("websocket connects");
    match recv(&mut ws).await {
        ServerMessage::Challenge { nonce } => (ws, nonce),
        other => panic!("expected a challenge, got {other:?}"),
    }
}

async fn send(ws: &mut Ws, msg: &ClientMessage) {
    send_text(ws, &msg.to_json()).await;
}

async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

/// Next server message, skipping pings; panics after [`WAIT`].
async fn recv(ws: &mut Ws) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message within the bound")
            .expect("socket open")
            .expect("no socket error");
        match frame {
            Message::Text(text) => {
                return ServerMessage::from_json(text.as_str()).expect("valid server message");
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn register(server: &ServerHandle, key: &Key) -> (Ws, Vec<PeerId>) {
    let (mut ws, nonce) = connect(server).await;
    send(&mut ws, &key.register(&nonce)).await;
    match recv(&mut ws).await {
        ServerMessage::Welcome { peer, peers, ice_servers, overlay, .. } => {
            assert_eq!(peer, key.peer());
            assert!(ice_servers.is_empty(), "no ICE servers by default");
            assert_eq!(overlay, past_link::OVERLAY_VERSION, "the overlay version of the page it serves");
            (ws, peers)
        }
        other => panic!("expected welcome, got {other:?}"),
    }
}

fn assert_error(msg: ServerMessage, expected: ErrorCode) {
    match msg {
        ServerMessage::Error { code, .. } => assert_eq!(code, expected),
        other => panic!("expected error {expected}, got {other:?}"),
    }
}

#[tokio::test]
async fn relays_signals_between_two_registered_clients_and_forgets_departures() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let (alice_key, bob_key) = (Key::new(1), Key::new(2));
    let (alice_id, bob_id) = (alice_key.peer(), bob_key.peer());

    let (mut alice, present) = register(&server, &alice_key).await;
    assert!(present.is_empty());
    let (mut bob, present) = register(&server, &bob_key).await;
    assert_eq!(present, vec![alice_id.clone()]);

    // Newcomer offers, the other answers, candidates trickle both ways.
    let offer = SignalPayload::Offer { sdp: "v=0\r\n".into() };
    send(&mut bob, &ClientMessage::Signal { to: alice_id.clone(), payload: offer.clone() }).await;
    assert_eq!(recv(&mut alice).await, ServerMessage::Signal { from: bob_id.clone(), payload: offer });
    let candidate = SignalPayload::Candidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    };
    send(&mut alice, &ClientMessage::Signal { to: bob_id.clone(), payload: candidate.clone() }).await;
    assert_eq!(recv(&mut bob).await, ServerMessage::Signal { from: alice_id.clone(), payload: candidate });

    // Health reflects the two peers.
    let health = http_get(server.local_addr(), "/health").await;
    assert!(health.contains("\"peers\":2"), "{health}");

    // Bob leaves; signals to Bob then fail.
    bob.close(None).await.expect("close");
    let gone = tokio::time::timeout(WAIT, async {
        loop {
            let answer = SignalPayload::Answer { sdp: "x".into() };
            send(&mut alice, &ClientMessage::Signal { to: bob_id.clone(), payload: answer }).await;
            if let ServerMessage::Error { code: ErrorCode::UnknownPeer, .. } = recv(&mut alice).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the server forgets a closed client");

    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_welcome_lists_the_numerically_closest_registered_nodes() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let keys: Vec<Key> = (1..=20).map(Key::new).collect();
    let mut sockets = Vec::new();
    for key in &keys[..19] {
        sockets.push(register(&server, key).await.0);
    }
    let newcomer = &keys[19];
    let (_ws, peers) = register(&server, newcomer).await;
    let mut expected: Vec<Id> = keys[..19].iter().map(Key::id).collect();
    expected.sort_by_key(|&other| (newcomer.id().ring_distance(other), other));
    let expected: Vec<PeerId> = expected.iter().take(8).map(|i| id(&to_hex(&i.to_bytes()))).collect();
    assert_eq!(peers, expected);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn registration_needs_the_key_of_the_node_id_and_a_signature_of_the_challenge() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let (key, other) = (Key::new(5), Key::new(6));

    // Claiming another node's id with our key.
    let (mut ws, nonce) = connect(&server).await;
    let mut claim = key.register(&nonce);
    if let ClientMessage::Register { peer, .. } = &mut claim {
        *peer = other.peer();
    }
    send(&mut ws, &claim).await;
    assert_error(recv(&mut ws).await, ErrorCode::Unauthenticated);

    // A signature of another challenge.
    send(&mut ws, &key.register(&"00".repeat(32))).await;
    assert_error(recv(&mut ws).await, ErrorCode::Unauthenticated);

    // Garbage key.
    let garbage = ClientMessage::Register { peer: key.peer(), public_key: "zz".into(), signature: "00".into() };
    send(&mut ws, &garbage).await;
    assert_error(recv(&mut ws).await, ErrorCode::Unauthenticated);

    // The real thing still works on the same socket.
    send(&mut ws, &key.register(&nonce)).await;
    assert!(matches!(recv(&mut ws).await, ServerMessage::Welcome { .. }));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_flooding_client_is_rate_limited() {
    let server = ServerHandle::spawn(Config { rate_per_second: 1.0, rate_burst: 3.0, ..Config::loopback_ephemeral() })
        .await
        .expect("server starts");
    let (mut ws, _) = connect(&server).await;
    for _ in 0..5 {
        send_text(&mut ws, "junk").await;
    }
    let mut codes = Vec::new();
    for _ in 0..5 {
        if let ServerMessage::Error { code, .. } = recv(&mut ws).await {
            codes.push(code);
        }
    }
    assert_eq!(codes[..3], [ErrorCode::Malformed; 3]);
    assert_eq!(codes[3..], [ErrorCode::RateLimited; 2]);
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn malformed_messages_get_json_errors_and_the_socket_stays_usable() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let (mut ws, nonce) = connect(&server).await;
    let carol = Key::new(3);

    send_text(&mut ws, "this is not json").await;
    assert_error(recv(&mut ws).await, ErrorCode::Malformed);
    send_text(&mut ws, r#"{"type":"register","peer":"bad id!"}"#).await;
    assert_error(recv(&mut ws).await, ErrorCode::Malformed);
    ws.send(Message::binary(vec![1u8, 2, 3])).await.expect("send");
    assert_error(recv(&mut ws).await, ErrorCode::Malformed);
    send_text(&mut ws, &"x".repeat(MAX_MESSAGE_BYTES + 1)).await;
    assert_error(recv(&mut ws).await, ErrorCode::TooLarge);
    send(&mut ws, &ClientMessage::Signal { to: id("nobody"), payload: SignalPayload::Answer { sdp: "x".into() } })
        .await;
    assert_error(recv(&mut ws).await, ErrorCode::NotRegistered);

    // Still usable: registration works, a second one is refused, and so is a taken id.
    send(&mut ws, &carol.register(&nonce)).await;
    assert!(matches!(recv(&mut ws).await, ServerMessage::Welcome { .. }));
    send(&mut ws, &Key::new(4).register(&nonce)).await;
    assert_error(recv(&mut ws).await, ErrorCode::AlreadyRegistered);
    let (mut other, nonce) = connect(&server).await;
    send(&mut other, &carol.register(&nonce)).await;
    assert_error(recv(&mut other).await, ErrorCode::PeerIdTaken);

    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn enforces_the_peer_limit_and_the_register_timeout() {
    let server = ServerHandle::spawn(Config {
        max_peers: 1,
        register_timeout: Duration::from_millis(300),
        ..Config::loopback_ephemeral()
    })
    .await
    .expect("server starts");
    let (_first, _) = register(&server, &Key::new(1)).await;
    let (mut second, nonce) = connect(&server).await;
    send(&mut second, &Key::new(2).register(&nonce)).await;
    assert_error(recv(&mut second).await, ErrorCode::ServerFull);

    let (mut idle, _) = connect(&server).await;
    assert_error(recv(&mut idle).await, ErrorCode::RegisterTimeout);
    // Then the server closes that socket.
    let end = tokio::time::timeout(WAIT, idle.next()).await.expect("closed within the bound");
    assert!(matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))));

    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn refuses_unregistered_websockets_beyond_the_address_limit() {
    let server = ServerHandle::spawn(Config { max_unregistered_per_address: 3, ..Config::loopback_ephemeral() })
        .await
        .expect("server starts");
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(&server).await);
    }
    let refused = || async {
        match connect_async(server.ws_url()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
            other => panic!("expected HTTP 429, got {:?}", other.map(|_| ())),
        }
    };
    refused().await;
    // A socket that registers leaves the pool of unregistered ones...
    let (mut registered, nonce) = open.pop().expect("a socket");
    send(&mut registered, &Key::new(7).register(&nonce)).await;
    assert!(matches!(recv(&mut registered).await, ServerMessage::Welcome { .. }));
    open.push(connect(&server).await);
    refused().await;
    // ...and so does one that closes.
    let (mut first, _) = open.swap_remove(0);
    first.close(None).await.expect("close");
    drop(first);
    let freed = tokio::time::timeout(WAIT, async {
        loop {
            if connect_async(server.ws_url()).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(freed.is_ok(), "a slot frees up when a socket closes");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn shutdown_closes_open_websockets() {
    let server = ServerHandle::spawn(Config::loopback_ephemeral()).await.expect("server starts");
    let (mut ws, _) = register(&server, &Key::new(9)).await;
    tokio::time::timeout(WAIT, server.shutdown()).await.expect("shutdown within the bound").expect("clean shutdown");
    let end = tokio::time::timeout(WAIT, ws.next()).await.expect("closed within the bound");
    assert!(matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))));
}

#[tokio::test]
async fn serves_static_files_with_the_wasm_mime_type() {
    let dir = std::env::temp_dir().join(format!("past-signaling-test-{}", std::process::id()));
    let web = dir.join("web");
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(&web).expect("mkdir");
    std::fs::create_dir_all(&pkg).expect("mkdir");
    std::fs::write(web.join("index.html"), "<!doctype html><title>t</title>").expect("write");
    std::fs::write(pkg.join("node.wasm"), b"\0asm\x01\0\0\0").expect("write");
    let server = ServerHandle::spawn(Config { web_dir: Some(web), pkg_dir: Some(pkg), ..Config::loopback_ephemeral() })
        .await
        .expect("server starts");

    let index = http_get(server.local_addr(), "/").await;
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("<title>t</title>"), "{index}");
    let wasm = http_get(server.local_addr(), "/pkg/node.wasm").await;
    assert!(wasm.starts_with("HTTP/1.1 200"), "{wasm}");
    assert!(wasm.to_ascii_lowercase().contains("content-type: application/wasm"), "{wasm}");
    let missing = http_get(server.local_addr(), "/pkg/missing.js").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");

    server.shutdown().await.expect("clean shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

/// A minimal HTTP/1.1 GET, so the test needs no HTTP client crate.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response within the bound")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}
