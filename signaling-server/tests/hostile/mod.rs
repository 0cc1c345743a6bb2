//! What the hostile-client tests share: a server on a runtime of its own (as in production,
//! the attack does not run on the server's threads), clients bound to a chosen loopback
//! address (Linux routes all of 127/8 to `lo`: the hostile client is 127.0.0.2, honest nodes
//! 127.0.0.1), test identities, and the honest check every scenario makes while its attack
//! runs: two nodes register within a second each and relay an offer.

// Each test file uses a part of this module.
#![allow(dead_code, unreachable_pub)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use past_signaling::Config;
use past_signaling_proto::{ClientMessage, ServerMessage, SignalPayload};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

#[path = "../identity/mod.rs"]
mod identity;
pub(crate) use identity::Key;

pub type Ws = WebSocketStream<TcpStream>;

/// Where honest nodes connect from.
pub const HONEST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// Where the hostile client connects from.
pub const HOSTILE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// How long an honest node may take to register while an attack runs.
pub const REGISTER_BOUND: Duration = Duration::from_secs(1);

/// Generous bound for anything else.
pub const WAIT: Duration = Duration::from_secs(5);

/// A test configuration: the defaults scaled down (64 peers, 8 unregistered sockets, small
/// per-address shares), short timeouts.
pub fn small_config() -> Config {
    Config {
        max_peers: 64,
        max_peers_per_address: 8,
        max_unregistered: 8,
        max_unregistered_per_address: 4,
        max_connections: 32,
        max_connections_per_address: 8,
        header_read_timeout: Duration::from_secs(1),
        register_timeout: Duration::from_secs(2),
        log_interval: Duration::from_secs(1),
        ..Config::loopback_ephemeral()
    }
}

/// A server on a runtime of its own thread (two workers), stopped when dropped.
pub struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: Config) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the server");
            runtime.block_on(async move {
                let listener = past_signaling::bind(&config).expect("bind");
                ready_tx.send(listener.local_addr().expect("address")).expect("report the address");
                past_signaling::run(listener, config, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("the server runs");
            });
        });
        let addr = ready_rx.recv().expect("the server starts");
        Self { addr, stop: Some(stop), thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shut();
    }
}

/// A TCP connection to `server` from the loopback address `from`.
pub async fn tcp_from(from: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(server).await
}

/// Like [`tcp_from`] with a small receive buffer (a client that never reads fills it fast).
pub async fn tcp_from_small_window(from: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(server).await
}

/// A WebSocket to `server` from `from`, with an `Origin` header if given.
pub async fn ws_from(from: Ipv4Addr, server: SocketAddr, origin: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let stream = tcp_from(from, server).await?;
    ws_over(stream, server, origin).await
}

/// The WebSocket handshake over `stream`.
pub async fn ws_over(stream: TcpStream, server: SocketAddr, origin: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut request = format!("ws://{server}/ws").into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", HeaderValue::from_str(origin).expect("an origin"));
    }
    Ok(client_async(request, stream).await?.0)
}

/// The HTTP status of a refused handshake, or `None` if it succeeded.
pub fn refused_status(result: &Result<Ws, tungstenite::Error>) -> Option<u16> {
    match result {
        Ok(_) => None,
        Err(tungstenite::Error::Http(response)) => Some(response.status().as_u16()),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// What a client reads next.
#[derive(Debug)]
pub enum Read {
    Message(ServerMessage),
    Closed(Option<CloseFrame>),
    Failed(String),
}

/// The next message (pings and pongs skipped: tungstenite answers pings as it reads), the
/// close frame, or the failure; panics after `bound`.
pub async fn read(ws: &mut Ws, bound: Duration) -> Read {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await.expect("something within the bound");
        match frame {
            None => return Read::Closed(None),
            Some(Err(err)) => return Read::Failed(err.to_string()),
            Some(Ok(Message::Text(text))) => {
                return Read::Message(ServerMessage::from_json(text.as_str()).expect("a valid server message"));
            }
            Some(Ok(Message::Close(frame))) => return Read::Closed(frame),
            Some(Ok(_)) => {}
        }
    }
}

/// The next message; panics on anything else.
pub async fn recv(ws: &mut Ws) -> ServerMessage {
    match read(ws, WAIT).await {
        Read::Message(msg) => msg,
        other => panic!("expected a message, got {other:?}"),
    }
}

pub async fn send(ws: &mut Ws, msg: &ClientMessage) {
    ws.send(Message::text(msg.to_json())).await.expect("send");
}

/// Connects from `from` and registers `key`: the registered socket, or what went wrong.
pub async fn try_register(from: Ipv4Addr, server: SocketAddr, key: &Key) -> Result<Ws, String> {
    let mut ws = ws_from(from, server, None).await.map_err(|e| format!("handshake failed: {e}"))?;
    let ServerMessage::Challenge { nonce } = recv(&mut ws).await else { return Err("no challenge".into()) };
    send(&mut ws, &key.register(&nonce)).await;
    match recv(&mut ws).await {
        ServerMessage::Welcome { .. } => Ok(ws),
        other => Err(format!("{other:?}")),
    }
}

/// Registers `key` from [`HONEST`] and returns the socket and how long it took; panics if
/// refused.
pub async fn register_honest(server: SocketAddr, key: &Key) -> (Ws, Duration) {
    let started = Instant::now();
    match try_register(HONEST, server, key).await {
        Ok(ws) => (ws, started.elapsed()),
        Err(refusal) => panic!("an honest node was refused: {refusal:?}"),
    }
}

/// The honest check: two nodes from [`HONEST`] register, each within [`REGISTER_BOUND`],
/// and an offer from one reaches the other. `round` picks fresh identities.
pub async fn honest_nodes_register_and_relay(server: SocketAddr, round: u64) {
    let (alice_key, bob_key) = (Key::new(1_000_000 + 2 * round), Key::new(1_000_001 + 2 * round));
    let (mut alice, took_a) = register_honest(server, &alice_key).await;
    let (mut bob, took_b) = register_honest(server, &bob_key).await;
    for took in [took_a, took_b] {
        assert!(took <= REGISTER_BOUND, "an honest node took {took:?} to register during the attack");
    }
    let offer = SignalPayload::Offer { sdp: format!("v=0 round {round}\r\n") };
    send(&mut bob, &ClientMessage::Signal { to: alice_key.peer(), payload: offer.clone() }).await;
    assert_eq!(recv(&mut alice).await, ServerMessage::Signal { from: bob_key.peer(), payload: offer });
    let _ = alice.close(None).await;
    let _ = bob.close(None).await;
}

/// A raw HTTP/1.1 GET from `from`: the status line and body, or `None` if the connection
/// closed without an answer.
pub async fn http_get(from: Ipv4Addr, server: SocketAddr, path: &str) -> Option<String> {
    let mut stream = tcp_from(from, server).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.ok()?.ok()?;
    (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned())
}

/// `/health` as JSON, from [`HONEST`].
pub async fn health(server: SocketAddr) -> serde_json::Value {
    let response = http_get(HONEST, server, "/health").await.expect("/health answers");
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("JSON")
}

/// Log lines written by the process (for the tests that count them).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs a global subscriber (INFO and above, no colors) writing here.
    pub fn install() -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only subscriber of this test binary");
        capture
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("log lock").clone();
        String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect()
    }

    /// Lines so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.lines().into_iter().filter(|l| l.contains(needle)).collect()
    }

    pub fn bytes(&self) -> usize {
        self.0.lock().expect("log lock").len()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads what the server sends on a socket the client stopped reading (as a dead or stuck
/// client would: tungstenite would answer the queued pings first), up to the end of the
/// connection, and returns the code of the server's close frame, if one came.
pub async fn raw_close_code(ws: Ws, bound: Duration) -> Option<u16> {
    let mut stream = ws.into_inner();
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(bound, stream.read_to_end(&mut bytes)).await;
    let mut at = 0;
    while at + 2 <= bytes.len() {
        let opcode = bytes[at] & 0x0f;
        let (len, header) = match bytes[at + 1] & 0x7f {
            126 if at + 4 <= bytes.len() => (usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]])), 4),
            127 => return None,
            n => (usize::from(n), 2),
        };
        let payload = bytes.get(at + header..at + header + len)?;
        if opcode == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
        at += header + len;
    }
    None
}

/// What one flooding socket saw.
pub struct Flood {
    /// Frames sent.
    pub sent: usize,
    /// Pongs received.
    pub pongs: usize,
    /// How long the socket lasted.
    pub lasted: Duration,
    /// The code of the server's close frame.
    pub close_code: Option<u16>,
}

/// Floods one socket from [`HOSTILE`] with `frame` until the server closes it (at most for
/// `bound`); `None` if the handshake failed.
pub async fn flood(server: SocketAddr, frame: Message, bound: Duration) -> Option<Flood> {
    let ws = ws_from(HOSTILE, server, None).await.ok()?;
    let opened = Instant::now();
    let (mut sink, mut stream) = ws.split();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut code, mut pongs) = (None, 0);
            while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(3), stream.next()).await {
                match frame {
                    Message::Close(Some(close)) => {
                        code = Some(u16::from(close.code));
                        break;
                    }
                    Message::Pong(_) => pongs += 1,
                    _ => {}
                }
            }
            done.store(true, Ordering::Relaxed);
            (code, pongs)
        })
    };
    let mut sent = 0;
    while !done.load(Ordering::Relaxed) && opened.elapsed() < bound {
        // Batches without flushing: as fast as the socket takes them.
        if sink.feed(frame.clone()).await.is_err() {
            break;
        }
        sent += 1;
        if sent % 64 == 0 && sink.flush().await.is_err() {
            break;
        }
    }
    let lasted = opened.elapsed();
    let (close_code, pongs) = reader.await.ok()?;
    Some(Flood { sent, pongs, lasted, close_code })
}
