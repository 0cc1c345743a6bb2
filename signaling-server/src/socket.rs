//! One signaling WebSocket: the handshake's admission (origin, the pool of unregistered
//! sockets), then a reader (this task: rate limit, violations, registration, relays,
//! register and idle timeouts) and a writer task (the client's queue, pings, the close
//! frame).
//!
//! Close codes: 1000 when the client closes; 1001 when the server shuts down or a
//! registered socket was silent for [`crate::Config::idle_timeout`]; 1008 (policy) for no
//! registration within [`crate::Config::register_timeout`], for too many violations, and
//! for a socket replaced by a new registration of its id; 1007 for a text frame that is not
//! UTF-8; 1009 for a frame or message over [`crate::Config::max_frame_bytes`]; 1002 for other
//! WebSocket protocol errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::{Signature, VerifyingKey};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use past_core::Id;
use past_signaling_proto::{
    CHALLENGE_BYTES, ClientMessage, ErrorCode, PROTOCOL_VERSION, PeerId, ServerMessage, from_hex, register_transcript,
    to_hex,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};

use crate::Shared;
use crate::admission::{Refused, Slot, address_key};
use crate::conduct::{Conduct, Offence, Verdict};
use crate::hub::{Newcomer, Presence};
use crate::outbox::{Full, Inbox, Outbox, outbox};
use crate::stats::Event;
use crate::upgrade::{Handshake, Socket};

/// How long the end of a socket waits for its close frame to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Bytes read (and discarded) after the server's close frame, waiting for the client to
/// close its side (a client that goes on flooding is reset after that many).
const DRAIN_BYTES: usize = 64 * 1024;

/// How long the server waits for it.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// `GET /ws`.
pub(crate) async fn ws_handler(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut request: Request<Body>,
) -> Response {
    if let Err(why) = shared.origins.check(request.headers()) {
        shared.stats.add(Event::WsOrigin);
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let handshake = match Handshake::check(&mut request) {
        Ok(handshake) => handshake,
        Err(why) => {
            shared.stats.add(Event::WsBadHandshake);
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let slot = match shared.unregistered.take(remote.ip()) {
        Ok(slot) => slot,
        Err(Refused::PerAddress) => {
            shared.stats.add(Event::WsPerAddress);
            return (StatusCode::TOO_MANY_REQUESTS, "too many signaling connections from this address").into_response();
        }
        Err(Refused::Global) => {
            shared.stats.add(Event::WsGlobal);
            return (StatusCode::SERVICE_UNAVAILABLE, "too many signaling connections").into_response();
        }
    };
    let (response, socket) = handshake.accept(ws_config(&shared.config), shared.config.socket_send_buffer);
    tokio::spawn(async move {
        match socket.await {
            Ok(socket) => Session::new(shared, remote).run(socket, slot).await,
            Err(err) => tracing::debug!("WebSocket upgrade from {remote} failed: {err}"),
        }
    });
    response
}

/// tungstenite's limits: frames and messages up to `max_frame_bytes`, a small read buffer
/// (a thousand idle sockets should not each hold the default 128 KiB), every message written
/// at once.
fn ws_config(config: &crate::Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(config.max_frame_bytes))
        .max_frame_size(Some(config.max_frame_bytes))
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(config.max_frame_bytes.saturating_mul(2).max(64 * 1024))
}

/// How a socket ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The client closed it (close frame or end of stream).
    ClientClosed,
    /// The connection failed (reset, I/O error): nothing more can be sent.
    Gone,
    Shutdown,
    RegisterTimeout,
    Idle,
    Replaced,
    Violations,
    TooBig,
    BadUtf8,
    Protocol,
}

impl End {
    /// The close frame to send, if any.
    fn frame(self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::Gone => return None,
            End::ClientClosed => (CloseCode::Normal, "bye"),
            End::Shutdown => (CloseCode::Away, "server shutting down"),
            End::Idle => (CloseCode::Away, "idle timeout"),
            End::RegisterTimeout => (CloseCode::Policy, "no register message in time"),
            End::Replaced => (CloseCode::Policy, "replaced by a new registration of this id"),
            End::Violations => (CloseCode::Policy, "too many violations"),
            End::TooBig => (CloseCode::Size, "frame or message too large"),
            End::BadUtf8 => (CloseCode::Invalid, "text frame is not UTF-8"),
            End::Protocol => (CloseCode::Protocol, "WebSocket protocol error"),
        };
        Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) })
    }

    fn event(self) -> Option<Event> {
        match self {
            End::ClientClosed | End::Gone | End::Shutdown | End::Replaced => None,
            End::RegisterTimeout => Some(Event::RegisterTimeout),
            End::Idle => Some(Event::IdleClosed),
            End::Violations => Some(Event::ClosedViolations),
            End::TooBig => Some(Event::ClosedTooBig),
            End::BadUtf8 => Some(Event::ClosedBadUtf8),
            End::Protocol => Some(Event::ClosedProtocol),
        }
    }

    /// Whether the client may still be sending when the server closes.
    fn drains(self) -> bool {
        matches!(self, End::Violations | End::TooBig | End::BadUtf8 | End::Protocol)
    }

    /// How tungstenite's read error ends the socket.
    fn of_error(err: &WsError) -> Self {
        match err {
            WsError::Capacity(_) => End::TooBig,
            WsError::Utf8(_) => End::BadUtf8,
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Gone,
            WsError::Protocol(_) | WsError::AttackAttempt => End::Protocol,
            _ => End::Gone,
        }
    }
}

/// One client's socket, as the reader sees it.
struct Session {
    shared: Arc<Shared>,
    remote: SocketAddr,
    conn: u64,
    outbox: Outbox,
    inbox: Option<Inbox>,
    presence: Arc<Presence>,
    conduct: Conduct,
    nonce: String,
    me: Option<PeerId>,
    /// The slot in the pool of unregistered sockets, until registered.
    unregistered: Option<Slot>,
    /// When an idle registered socket is closed, unless it hears from the client before.
    idle_deadline: Instant,
}

impl Session {
    fn new(shared: Arc<Shared>, remote: SocketAddr) -> Self {
        let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        let (outbox, inbox) = outbox(shared.config.queue_bytes);
        let presence = Presence::new(shared.clock);
        let conduct = Conduct::new(remote, conn, &shared.config);
        let idle_deadline = Instant::now() + shared.config.idle_timeout;
        Self {
            remote,
            conn,
            outbox,
            inbox: Some(inbox),
            presence,
            conduct,
            nonce: to_hex(&rand::random::<[u8; CHALLENGE_BYTES]>()),
            me: None,
            unregistered: None,
            idle_deadline,
            shared,
        }
    }

    async fn run(mut self, socket: Socket, slot: Slot) {
        // Held until this socket is done: `run` waits for every socket at shutdown.
        let _alive = self.shared.alive.clone();
        self.unregistered = Some(slot);
        let (sink, mut stream) = socket.split();
        let (close_tx, close_rx) = oneshot::channel();
        let Some(inbox) = self.inbox.take() else { return };
        let mut writer = tokio::spawn(write_loop(sink, inbox, close_rx, self.shared.config.ping_interval));
        tracing::debug!(conn = self.conn, "socket opened by {}", self.remote);
        self.reply(&ServerMessage::Challenge { nonce: self.nonce.clone() });

        let end = self.read_loop(&mut stream).await;

        if let Some(peer) = &self.me {
            self.shared.hub.unregister(peer, self.conn);
            self.shared.stats.add(Event::Left);
            tracing::debug!(conn = self.conn, %peer, "peer left ({end:?})");
        }
        if let Some(event) = end.event() {
            self.shared.stats.add(event);
        }
        let closing = end.frame().map(|f| format!("closed with {} ({})", u16::from(f.code), f.reason));
        self.conduct.log(self.me.as_ref(), closing.as_deref(), &self.shared.stats);
        match end.frame() {
            Some(frame) => {
                let _ = close_tx.send(frame);
            }
            None => drop(close_tx),
        }
        let sink = match tokio::time::timeout(CLOSE_GRACE, &mut writer).await {
            Ok(sink) => sink.ok(),
            Err(_) => {
                writer.abort();
                None
            }
        };
        if end.drains()
            && let Some(sink) = sink
            && let Ok(mut socket) = stream.reunite(sink)
        {
            // The client may still be sending. Closing a TCP socket with unread data resets
            // the connection, and the reset discards what the kernel has not sent yet (the
            // close frame): end the sending side after the close frame, and read (and
            // discard) what the client sends until it closes too, within bounds.
            let tcp = socket.get_mut();
            let _ = tcp.shutdown().await;
            let drain = async {
                let mut buf = vec![0u8; 8 * 1024];
                let mut total = 0;
                while total < DRAIN_BYTES {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        }
        tracing::debug!(conn = self.conn, "socket closed ({end:?})");
    }

    async fn read_loop(&mut self, stream: &mut SplitStream<Socket>) -> End {
        let mut shutdown = self.shared.shutdown.clone();
        let register_deadline = tokio::time::sleep(self.shared.config.register_timeout);
        tokio::pin!(register_deadline);
        let idle = tokio::time::sleep_until(self.idle_deadline);
        tokio::pin!(idle);
        loop {
            let frame = tokio::select! {
                biased;
                _ = shutdown.wait_for(|down| *down) => return End::Shutdown,
                () = self.presence.replaced.notified(), if self.me.is_some() => return End::Replaced,
                () = &mut register_deadline, if self.me.is_none() => {
                    self.reply(&ServerMessage::error(ErrorCode::RegisterTimeout, "no register message in time"));
                    return End::RegisterTimeout;
                }
                () = &mut idle, if self.me.is_some() => {
                    let heard = self.presence.last_seen.load(Ordering::Acquire);
                    let silent = Duration::from_millis(self.shared.clock.now_ms().saturating_sub(heard));
                    if silent >= self.shared.config.idle_timeout {
                        return End::Idle;
                    }
                    idle.as_mut().reset(Instant::now() + (self.shared.config.idle_timeout - silent));
                    continue;
                }
                frame = stream.next() => frame,
            };
            self.presence.last_seen.store(self.shared.clock.now_ms(), Ordering::Release);
            let message = match frame {
                None => return End::ClientClosed,
                Some(Err(err)) => {
                    tracing::debug!(conn = self.conn, "socket error: {err}");
                    return End::of_error(&err);
                }
                Some(Ok(message)) => message,
            };
            let verdict = match message {
                Message::Close(_) => return End::ClientClosed,
                Message::Text(text) => self.on_text(text.as_str()),
                Message::Binary(_) => {
                    if self.conduct.allow_frame() {
                        self.reply(&ServerMessage::error(ErrorCode::Malformed, "binary frames are not accepted"));
                        self.offend(Offence::Binary)
                    } else {
                        self.offend(Offence::RateLimited)
                    }
                }
                // tungstenite answers pings itself; they count against the rate all the same.
                Message::Ping(_) => {
                    if self.conduct.allow_frame() {
                        Verdict::Tolerated
                    } else {
                        self.offend(Offence::Ping)
                    }
                }
                Message::Pong(_) | Message::Frame(_) => {
                    if self.conduct.allow_frame() {
                        Verdict::Tolerated
                    } else {
                        self.offend(Offence::RateLimited)
                    }
                }
            };
            if verdict == Verdict::Disconnect {
                return End::Violations;
            }
            if self.me.is_some() && self.idle_deadline > idle.deadline() {
                // Registered just now: the idle timer starts.
                idle.as_mut().reset(self.idle_deadline);
            }
        }
    }

    fn offend(&mut self, offence: Offence) -> Verdict {
        self.conduct.offend(offence, self.me.as_ref(), &self.shared.stats)
    }

    /// Queues a message for the client; a reply that does not fit is counted, not queued.
    fn reply(&mut self, msg: &ServerMessage) {
        if self.outbox.push(msg) == Err(Full::Full) {
            self.conduct.reply_lost();
        }
    }

    fn on_text(&mut self, text: &str) -> Verdict {
        if !self.conduct.allow_frame() {
            self.reply(&ServerMessage::error(ErrorCode::RateLimited, "too many messages; this one was dropped"));
            return self.offend(Offence::RateLimited);
        }
        let msg = match ClientMessage::from_json(text) {
            Ok(msg) => msg,
            Err(err) => {
                self.reply(&ServerMessage::error(err.code(), err.to_string()));
                let offence = if err.code() == ErrorCode::TooLarge { Offence::TooLarge } else { Offence::Malformed };
                return self.offend(offence);
            }
        };
        match (msg, self.me.clone()) {
            (ClientMessage::Register { peer, public_key, signature }, None) => {
                self.register(peer, &public_key, &signature)
            }
            (ClientMessage::Register { .. }, Some(peer)) => {
                let message = format!("this connection is already registered as {peer}");
                self.reply(&ServerMessage::error(ErrorCode::AlreadyRegistered, message));
                self.offend(Offence::Malformed)
            }
            (ClientMessage::Signal { .. }, None) => {
                self.reply(&ServerMessage::error(ErrorCode::NotRegistered, "register before signalling"));
                self.offend(Offence::Malformed)
            }
            (ClientMessage::Signal { to, payload }, Some(from)) => {
                let relayed = ServerMessage::Signal { from, payload };
                if let Err(code) = self.shared.hub.relay(&to, &relayed) {
                    if code == ErrorCode::PeerBusy {
                        self.shared.stats.add(Event::PeerBusy);
                    }
                    self.reply(&ServerMessage::error(code, format!("cannot relay to {to}")));
                }
                Verdict::Tolerated
            }
            // A message type added to the protocol crate but not yet served here.
            (other, _) => {
                self.reply(&ServerMessage::error(ErrorCode::Malformed, format!("unsupported message: {other:?}")));
                self.offend(Offence::Malformed)
            }
        }
    }

    fn register(&mut self, peer: PeerId, public_key: &str, signature: &str) -> Verdict {
        if let Err(why) = verify_registration(&self.nonce, &peer, public_key, signature) {
            tracing::debug!(conn = self.conn, %peer, "registration refused: {why}");
            self.reply(&ServerMessage::error(ErrorCode::Unauthenticated, why));
            return self.offend(Offence::Unauthenticated);
        }
        let newcomer = Newcomer {
            peer: &peer,
            conn: self.conn,
            address: address_key(self.remote.ip()),
            outbox: &self.outbox,
            presence: &self.presence,
        };
        match self.shared.hub.register(newcomer) {
            Ok(registered) => {
                let welcome = ServerMessage::Welcome {
                    peer: peer.clone(),
                    protocol: PROTOCOL_VERSION,
                    overlay: self.shared.config.overlay_version,
                    ice_servers: self.shared.config.ice_servers.clone(),
                    peers: registered.closest,
                };
                if self.outbox.push(&welcome).is_err() {
                    // It does not read: it cannot use the registration either.
                    self.shared.hub.unregister(&peer, self.conn);
                    self.conduct.reply_lost();
                    return Verdict::Tolerated;
                }
                if registered.replaced {
                    self.shared.stats.add(Event::Takeover);
                }
                self.shared.stats.add(Event::Registered);
                tracing::debug!(conn = self.conn, %peer, "peer registered from {}", self.remote);
                self.unregistered = None;
                self.me = Some(peer);
                self.idle_deadline = Instant::now() + self.shared.config.idle_timeout;
            }
            Err(refusal) => {
                let event = match refusal.code {
                    ErrorCode::PeerIdTaken => Some(Event::IdTaken),
                    ErrorCode::ServerFull if refusal.address_full => Some(Event::RegisterAddressFull),
                    ErrorCode::ServerFull => Some(Event::RegisterFull),
                    _ => None,
                };
                if let Some(event) = event {
                    self.shared.stats.add(event);
                }
                self.reply(&ServerMessage::error(refusal.code, refusal.message));
            }
        }
        Verdict::Tolerated
    }
}

/// Sends `message` unless the close frame comes first; `Err` when the socket is done.
async fn send(
    sink: &mut SplitSink<Socket, Message>,
    message: Message,
    close: &mut oneshot::Receiver<CloseFrame>,
) -> Result<(), Option<CloseFrame>> {
    tokio::select! {
        biased;
        frame = close => Err(frame.ok()),
        sent = sink.send(message) => sent.map_err(|_| None),
    }
}

/// The writer: the client's queue and the pings, then the close frame. Returns the sink.
async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut inbox: Inbox,
    mut close: oneshot::Receiver<CloseFrame>,
    ping_interval: Duration,
) -> SplitSink<Socket, Message> {
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let frame = loop {
        let result = tokio::select! {
            biased;
            frame = &mut close => Err(frame.ok()),
            text = inbox.recv() => match text {
                Some(text) => {
                    let len = text.len();
                    let sent = send(&mut sink, Message::text(text), &mut close).await;
                    inbox.done(len);
                    sent
                }
                None => Err(None),
            },
            _ = ping.tick() => send(&mut sink, Message::Ping(Bytes::new()), &mut close).await,
        };
        if let Err(frame) = result {
            break frame;
        }
    };
    if let Some(frame) = frame {
        // What is queued goes first (e.g. the `register_timeout` error), then the close
        // frame; a client that does not read holds this up until the session gives up.
        while let Some(text) = inbox.try_recv() {
            let len = text.len();
            let sent = sink.send(Message::text(text)).await;
            inbox.done(len);
            if sent.is_err() {
                return sink;
            }
        }
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
    sink
}

/// Checks a registration: `peer` is the nodeId of `public_key`, and `signature` signs the
/// challenge.
fn verify_registration(nonce: &str, peer: &PeerId, public_key: &str, signature: &str) -> Result<(), String> {
    let key = from_hex::<32>(public_key).ok_or("public_key is not 32 bytes of hex")?;
    let signature = from_hex::<64>(signature).ok_or("signature is not 64 bytes of hex")?;
    let derived = Id::from_public_key(&key);
    if to_hex(&derived.to_bytes()) != peer.as_str() {
        return Err(format!("{peer} is not the nodeId of this key (that is {derived:?})"));
    }
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "public_key is not a valid Ed25519 key")?;
    key.verify_strict(&register_transcript(nonce, peer), &Signature::from_bytes(&signature))
        .map_err(|_| "the signature does not verify".to_string())
}
