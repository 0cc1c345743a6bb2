//! The native node's event loop: the same loop as the browser driver's, around the same
//! [`Stack`]. One task owns the stack and every connection and handles one [`Input`] at a
//! time from one bounded channel, fed by the signaling socket, the peer connections, the
//! tasks that describe sessions, and the [`NodeHandle`](crate::NodeHandle); a timer wakes it
//! at [`Stack::poll_timeout`]. After each input it carries out every command of the stack and
//! reports its events. It holds no protocol decision: which connections exist, glare, the
//! handshake, queues, eviction and the connection budget are the peer manager's; joining is
//! the stack's.
//!
//! The core's storage requests go to the storage thread (`crate::storage`), whose answers
//! come back as inputs; PAST's signing requests are answered at once with the node's key;
//! the handle's file operations are in `node/files.rs`.
//!
//! The loop never waits on its own input channel (work that needs to await runs in spawned
//! tasks, which push their result back), on a peer or on the signaling server (both are
//! written by tasks with bounded queues).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer as _, SigningKey};
use past_core::past::{Ed25519Signer, FileId, OpId, StorageError, StorageId, StorageReply};
use past_core::{Id, Time};
use past_link::manager::{Command as Work, State};
use past_link::{ConnId, Payload, Stack, StackEvent};
use past_signaling_proto::{IceServer, PeerId, from_hex};
use tokio::sync::mpsc::{Receiver, Sender, UnboundedSender};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

mod files;
mod servers;

pub(crate) use servers::{Servers, outdated};

use crate::files::{InsertCommand, LookupMsg, ReclaimError, ReclaimOutcome, Status};
use crate::signaling::{SignalingEvent, SignalingWriter};
use crate::storage::StorageWorker;
use crate::transport::{Peer, TransportEvent};
use crate::{Data, NodeEvent, RouteError, SendError, peer_id};
use servers::Heard;

/// Inputs that may wait for the loop; beyond, data channel messages end their connection
/// and the handle's commands fail with an overload error.
pub(crate) const INPUT_CAPACITY: usize = 4096;

/// Everything the loop reacts to.
#[derive(Debug)]
pub(crate) enum Input {
    /// From the socket of signaling server number `.0`.
    Signaling(usize, SignalingEvent),
    /// The socket to signaling server number `.0` opened (its challenge follows).
    ServerConnected(usize, SignalingWriter),
    /// From a connection.
    Transport(ConnId, TransportEvent),
    /// The SDP (offer or answer, ICE gathered) of a connection is ready, or failed.
    Described { conn: ConnId, result: Result<String, String> },
    /// Setting up a connection failed (applying an answer).
    Failed { conn: ConnId, reason: String },
    /// The round-trip time of a connection from its statistics.
    Rtt { conn: ConnId, rtt: Option<Duration> },
    /// The storage thread answered a request of the core.
    Stored { id: StorageId, result: Result<StorageReply, StorageError> },
    /// From the handle.
    Command(Command),
}

/// Requests from the [`NodeHandle`](crate::NodeHandle).
#[derive(Debug)]
pub(crate) enum Command {
    Route {
        key: Id,
        payload: Payload,
        reply: oneshot::Sender<Result<(), RouteError>>,
    },
    SendRaw {
        peer: Id,
        data: Data,
        reply: oneshot::Sender<Result<(), SendError>>,
    },
    Peers(oneshot::Sender<Vec<PeerId>>),
    Insert(Box<InsertCommand>),
    Lookup {
        file: FileId,
        reply: tokio::sync::mpsc::UnboundedSender<LookupMsg>,
    },
    /// The get wrote one chunk of lookup `op`: the core may pull another.
    LookupConsumed(OpId),
    CancelLookup(OpId),
    Reclaim {
        file: FileId,
        reply: oneshot::Sender<Result<ReclaimOutcome, ReclaimError>>,
    },
    Status(oneshot::Sender<Status>),
}

/// The id of a signaling peer id.
pub(crate) fn id_of(peer: &PeerId) -> Option<Id> {
    from_hex::<16>(peer.as_str()).map(Id::from_bytes)
}

/// The loop's state.
pub(crate) struct Driver {
    /// Signs the data channel handshake (the node's key, or the impostor test hook's).
    key: SigningKey,
    /// Signs PAST's certificates and receipts (the node's key).
    keys: Ed25519Signer,
    /// Carries out the core's storage requests on a thread of its own.
    storage: StorageWorker,
    /// The inserts, lookups and reclaims under way.
    files: files::Files,
    stack: Stack,
    start: Instant,
    inputs: Sender<Input>,
    servers: Servers,
    ice_servers: Vec<IceServer>,
    conns: BTreeMap<ConnId, Peer>,
    /// While shutting down: the connections to close before reporting [`NodeEvent::Closed`].
    closing: Option<Vec<Peer>>,
    events: UnboundedSender<NodeEvent>,
    /// Set once the loop has stopped and the store is closed.
    stopped: watch::Sender<bool>,
}

/// What the loop works with besides the stack and its channels.
pub(crate) struct Parts {
    /// Signs the data channel handshake.
    pub(crate) key: SigningKey,
    /// Signs PAST's certificates and receipts.
    pub(crate) keys: Ed25519Signer,
    pub(crate) storage: StorageWorker,
    /// The page's address, for share links.
    pub(crate) page_url: String,
    pub(crate) stopped: watch::Sender<bool>,
}

impl Driver {
    pub(crate) fn new(
        parts: Parts,
        stack: Stack,
        start: Instant,
        inputs: Sender<Input>,
        servers: Servers,
        ice_servers: Vec<IceServer>,
        events: UnboundedSender<NodeEvent>,
    ) -> Self {
        let Parts { key, keys, storage, page_url, stopped } = parts;
        Self {
            key,
            keys,
            storage,
            files: files::Files::new(page_url),
            stack,
            start,
            inputs,
            servers,
            ice_servers,
            conns: BTreeMap::new(),
            closing: None,
            events,
            stopped,
        }
    }

    /// Microseconds since the node started.
    fn now(&self) -> Time {
        Time::from_micros(u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Joins through `contacts` (the welcome's peers), then runs until closed.
    pub(crate) async fn run(mut self, contacts: Vec<Id>, mut inputs: Receiver<Input>, close: Arc<Notify>) {
        let t = self.now();
        self.stack.handle_welcome(contacts, t);
        self.servers.connect_others();
        self.execute_all().await;
        loop {
            let wake = self.stack.poll_timeout().map(|at| self.start + Duration::from_micros(at.as_micros()));
            let timer = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = close.notified() => break,
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input).await,
                    None => break,
                },
                () = timer => {
                    let t = self.now();
                    self.stack.handle_timeout(t);
                }
            }
            self.execute_all().await;
        }
        // Nothing reads inputs any more: tasks and the storage thread that report find the
        // channel closed instead of waiting on a full one.
        drop(inputs);
        self.shut_down().await;
    }

    /// Leaves the overlay, closes every connection (letting queued messages go out) and the
    /// signaling socket.
    async fn shut_down(&mut self) {
        let t = self.now();
        self.closing = Some(Vec::new());
        self.stack.leave(t);
        self.stack.close(t);
        self.execute_all().await;
        let mut closing = self.closing.take().unwrap_or_default();
        closing.extend(std::mem::take(&mut self.conns).into_values());
        futures::future::join_all(closing.into_iter().map(|peer| peer.close(true))).await;
        self.servers.close().await;
        self.storage.stop().await;
        let _ = self.stopped.send(true);
        let _ = self.events.send(NodeEvent::Closed);
    }

    /// Handles one input.
    async fn handle(&mut self, input: Input) {
        let t = self.now();
        match input {
            Input::Signaling(server, event) => {
                if let Heard::Trouble(trouble) = self.servers.heard(server, event, &mut self.stack, t) {
                    self.error(trouble);
                }
            }
            Input::ServerConnected(server, writer) => self.servers.connected(server, writer),
            Input::Transport(conn, event) => self.on_transport(conn, event, t).await,
            Input::Described { conn, result } if self.conns.contains_key(&conn) => {
                self.stack.handle_described(conn, result, t);
            }
            Input::Failed { conn, reason } if self.conns.contains_key(&conn) => {
                self.stack.handle_failed(conn, &reason, t);
            }
            Input::Rtt { conn, rtt } => self.stack.handle_rtt(conn, rtt, t),
            Input::Stored { id, result } => self.stack.handle_storage(id, result, t),
            Input::Described { .. } | Input::Failed { .. } => {}
            Input::Command(command) => self.on_command(command, t),
        }
    }

    /// Carries out the stack's commands and reports its events until it has none.
    async fn execute_all(&mut self) {
        loop {
            let mut any = false;
            while let Some(work) = self.stack.poll_command() {
                any = true;
                self.execute(work).await;
            }
            while let Some(event) = self.stack.poll_event() {
                any = true;
                self.report(event);
            }
            any |= self.dispatch_past();
            if !any {
                return;
            }
        }
    }

    async fn execute(&mut self, work: Work) {
        match work {
            Work::Create { conn, offer, .. } => self.create(conn, offer).await,
            Work::ApplyAnswer { conn, sdp } => {
                let Some(peer) = self.conns.get(&conn) else { return };
                let (applying, tx) = (peer.accept_answer(sdp), self.inputs.clone());
                tokio::spawn(async move {
                    if let Err(err) = applying.await {
                        let reason = format!("applying the answer: {err}");
                        let _ = tx.send(Input::Failed { conn, reason }).await;
                    }
                });
            }
            Work::AddCandidate { conn, candidate } => {
                if let Some(peer) = self.conns.get(&conn) {
                    tokio::spawn(peer.add_candidate(candidate));
                }
            }
            Work::ToServer { to, payload } => self.servers.signal(to, &payload),
            Work::Send { conn, bytes } => {
                let Some(peer) = self.conns.get(&conn) else { return };
                if let Err(err) = peer.send(Data::Bytes(bytes)) {
                    let t = self.now();
                    self.stack.handle_closed(conn, &format!("sending: {err}"), t);
                }
            }
            Work::Sign { conn, transcript } => {
                let signature = self.key.sign(&transcript).to_bytes();
                let t = self.now();
                self.stack.handle_signed(conn, Ok(signature), t);
            }
            Work::MeasureRtt { conn } => {
                let Some(peer) = self.conns.get(&conn) else { return };
                let (measuring, tx) = (peer.round_trip(), self.inputs.clone());
                tokio::spawn(async move {
                    let rtt = measuring.await;
                    let _ = tx.send(Input::Rtt { conn, rtt }).await;
                });
            }
            Work::Close { conn } => match (self.conns.remove(&conn), &mut self.closing) {
                (Some(peer), Some(closing)) => closing.push(peer),
                (Some(peer), None) => drop(tokio::spawn(peer.close(true))),
                (None, _) => {}
            },
            other => tracing::debug!("unknown work {other:?}"),
        }
    }

    /// Creates the peer connection of `conn` and starts describing its offer (or its answer
    /// to `offer`) in a task of its own.
    async fn create(&mut self, conn: ConnId, offer: Option<String>) {
        let peer = match Peer::new(conn, offer.is_none(), &self.ice_servers, &self.inputs).await {
            Ok(peer) => peer,
            Err(err) => {
                let t = self.now();
                return self.stack.handle_failed(conn, &format!("creating the peer connection: {err}"), t);
            }
        };
        let (describing, tx) = (peer.describe(offer), self.inputs.clone());
        self.conns.insert(conn, peer);
        tokio::spawn(async move {
            let result = describing.await;
            let _ = tx.send(Input::Described { conn, result }).await;
        });
    }

    fn report(&mut self, event: StackEvent) {
        let own = self.stack.id();
        let event = match event {
            StackEvent::Joined => {
                self.run_waiting_commands();
                NodeEvent::Joined
            }
            StackEvent::Delivered(delivery) => NodeEvent::Delivered {
                key: delivery.key,
                hops: delivery.hops,
                origin_verified: delivery.origin_verified(own),
                payload: delivery.payload,
            },
            StackEvent::Opened(peer) => NodeEvent::Connected(peer_id(peer)),
            StackEvent::Closed { peer, reason } => NodeEvent::Disconnected { peer: peer_id(peer), reason },
            StackEvent::Refused { peer, reason } => NodeEvent::Refused { peer: peer_id(peer), reason },
            StackEvent::Past(event) => return self.on_past_event(event),
            StackEvent::BudgetExhausted => NodeEvent::Error(format!(
                "connection budget used up ({} peer connections made): routing through the open ones",
                self.stack.manager().stats().created
            )),
            other => return tracing::debug!("unhandled stack event {other:?}"),
        };
        let _ = self.events.send(event);
    }

    // ---- transport --------------------------------------------------------------------

    async fn on_transport(&mut self, conn: ConnId, event: TransportEvent, t: Time) {
        let Some(peer) = self.conns.get_mut(&conn) else {
            return tracing::trace!(conn, "an event of a closed connection: ignored");
        };
        match event {
            TransportEvent::Channel(channel) => peer.set_channel(conn, channel), // Its reader reports `open`.
            TransportEvent::Open => self.channel_open(conn, t).await,
            TransportEvent::Message(data) => {
                // The peer may write as soon as its side is open, before our side reports
                // open: the channel is open then.
                if !peer.is_open() {
                    self.channel_open(conn, t).await;
                }
                self.stack.handle_data(conn, &data, t);
            }
            TransportEvent::Closed(reason) => self.stack.handle_closed(conn, &reason, t),
        }
    }

    /// The data channel of `conn` opened: the manager starts the handshake.
    async fn channel_open(&mut self, conn: ConnId, t: Time) {
        let Some(peer) = self.conns.get_mut(&conn) else { return };
        if !peer.mark_open() {
            return;
        }
        match peer.descriptions().await {
            Some((local, remote)) => self.stack.handle_channel_open(conn, &local, &remote, t),
            None => self.stack.handle_failed(conn, "no session descriptions", t),
        }
    }

    // ---- commands ---------------------------------------------------------------------

    fn on_command(&mut self, command: Command, t: Time) {
        match command {
            Command::Route { key, payload, reply } => {
                let _ = reply.send(self.stack.route(key, payload, t).map_err(RouteError::from));
            }
            Command::SendRaw { peer, data, reply } => {
                let conn = self.stack.manager().connections().find(|c| c.peer == peer && c.state == State::Open);
                let result = match conn.and_then(|c| self.conns.get(&c.conn)) {
                    Some(conn) => conn.send(data),
                    None => Err(SendError::NotConnected),
                };
                let _ = reply.send(result);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.stack.manager().open_peers().map(peer_id).collect());
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            file => self.on_file_command(file, t),
        }
    }

    fn error(&self, message: String) {
        tracing::warn!(me = %self.stack.id(), "{message}");
        let _ = self.events.send(NodeEvent::Error(message));
    }
}
