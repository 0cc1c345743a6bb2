//! A connection's channel: the handshake, then the Pastry frames of an authenticated peer.

use super::*;
use crate::manager::conn::MAX_EARLY;

impl PeerManager {
    /// The data channel of `conn` opened; `local_sdp` and `remote_sdp` are the connection's
    /// descriptions (their DTLS fingerprints bind the handshake to it).
    pub fn handle_channel_open(
        &mut self,
        conn: ConnId,
        local_sdp: &str,
        remote_sdp: &str,
        tables: &impl Tables,
        now: Time,
    ) {
        let mut nonce = [0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        let own_key = self.public_key;
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        if c.state != State::Signaling {
            return;
        }
        match Handshake::new(own_key, nonce, local_sdp, remote_sdp, peer) {
            Ok(handshake) => {
                let hello = frame::encode_auth(&handshake.hello(tables.is_joined()));
                c.state = State::Authenticating;
                c.auth = Some(Auth { handshake: Box::new(handshake), proof_sent: false, peer_proved: false });
                let early = core::mem::take(&mut c.early);
                self.commands.push_back(Command::Send { conn, bytes: hello });
                for bytes in early {
                    self.handle_data(conn, &Data::Bytes(bytes), now);
                }
            }
            Err(err) => self.attempt_failed(peer, &format!("authentication: {err}"), now),
        }
    }

    /// A data channel message on `conn`.
    pub fn handle_data(&mut self, conn: ConnId, data: &Data, now: Time) {
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        let Data::Bytes(bytes) = data else {
            return self.refuse(peer, "a text message", now);
        };
        if c.state == State::Signaling {
            if c.early.len() >= MAX_EARLY {
                return self.refuse(peer, "data before the channel opened", now);
            }
            return c.early.push(bytes.clone());
        }
        let incoming = match c.frames.push(bytes) {
            Ok(Some(incoming)) => incoming,
            Ok(None) => return,
            Err(FrameError::OtherVersion(version)) => return self.other_version(peer, version, false, now),
            Err(err) => return self.refuse(peer, &format!("bad frame: {err}"), now),
        };
        match incoming {
            Incoming::Auth(message) => self.on_auth(peer, conn, message, now),
            Incoming::Pastry(frame) if c.is_open() => {
                c.last_used = now;
                c.last_heard = now;
                self.on_pastry(peer, &frame, now);
            }
            Incoming::Close if c.is_open() => self.drop_conn(peer, "closed by the peer", false, now),
            Incoming::Ping(number) if c.is_open() => self.on_ping(peer, number, now),
            Incoming::Pong(number) if c.is_open() => self.on_pong(peer, number, now),
            Incoming::Pastry(_) | Incoming::Close | Incoming::Ping(_) | Incoming::Pong(_) => {
                self.refuse(peer, "a Pastry frame before authentication", now)
            }
        }
    }

    pub(super) fn on_auth(&mut self, peer: Id, conn: ConnId, message: AuthMessage, now: Time) {
        let Some((_, c)) = self.conn_mut(conn) else { return };
        let Some(auth) = c.auth.as_mut().filter(|_| c.state == State::Authenticating) else {
            return self.refuse(peer, "an unexpected handshake message", now);
        };
        match message {
            AuthMessage::Hello { version, public_key, nonce, joined } => {
                match auth.handshake.on_hello(version, public_key, nonce, joined) {
                    Ok(transcript) => {
                        c.joined = joined;
                        self.commands.push_back(Command::Sign { conn, transcript });
                    }
                    Err(err) => self.refuse(peer, &format!("authentication failed: {err}"), now),
                }
            }
            AuthMessage::Proof { signature } => match auth.handshake.on_proof(&signature) {
                Ok(_) => {
                    auth.peer_proved = true;
                    self.maybe_authenticated(peer, now);
                }
                Err(AuthError::OtherVersion(version)) => self.other_version(peer, version, true, now),
                Err(err) => self.refuse(peer, &format!("authentication failed: {err}"), now),
            },
        }
    }

    /// The peer runs another overlay version: the two cannot talk, so it is dropped, with
    /// a reason that names both versions. If it proved it (`proven`: its proof verified), it gets
    /// no connection, either way, for [`OTHER_VERSION_MEMORY`]; a hello we cannot read
    /// whole proves nothing, and only backs off as any failure.
    fn other_version(&mut self, peer: Id, version: u32, proven: bool, now: Time) {
        self.stats.other_version += 1;
        if let Some(record) = self.peers.get_mut(&peer).filter(|_| proven) {
            record.other_version_until = Some(now + OTHER_VERSION_MEMORY);
        }
        self.refuse(peer, &AuthError::OtherVersion(version).to_string(), now);
    }

    /// Our signature over the handshake transcript of `conn` is ready.
    pub fn handle_signed(&mut self, conn: ConnId, result: Result<[u8; 64], String>, now: Time) {
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        let Some(auth) = c.auth.as_mut().filter(|a| !a.proof_sent) else { return };
        match result {
            Ok(signature) => {
                auth.proof_sent = true;
                let bytes = frame::encode_auth(&Handshake::proof(signature));
                self.commands.push_back(Command::Send { conn, bytes });
                self.maybe_authenticated(peer, now);
            }
            Err(err) => self.attempt_failed(peer, &format!("signing: {err}"), now),
        }
    }

    /// Opens the connection once the peer proved its id and our proof went out.
    pub(super) fn maybe_authenticated(&mut self, peer: Id, now: Time) {
        let Some(record) = self.peers.get_mut(&peer) else { return };
        let Some(c) = record.conn.as_mut() else { return };
        if !c.auth.as_ref().is_some_and(|a| a.proof_sent && a.peer_proved) {
            return;
        }
        c.auth = None;
        c.state = State::Open;
        c.last_used = now;
        c.last_heard = now;
        let (joined, charge) = (c.joined, std::mem::replace(&mut c.charge, Charge::Settled));
        // Over the limit, this connection may be evicted once idle: look again then.
        let evictable = (c.created + self.config.eviction_grace).max(now + self.config.idle);
        record.known = true;
        record.hearsay_attempts = 0;
        record.backoff = Backoff::default();
        record.tombstone = None;
        record.waiting = None;
        let pending: Vec<_> = record.pending.take().collect();
        if std::mem::take(&mut record.wants_rtt) {
            self.commands.push_back(Command::MeasureRtt { conn: c.id });
        }
        self.settle(charge, Outcome::Opened);
        if self.peers.values().filter(|p| p.conn.is_some()).count() > self.config.max_connections {
            self.evict_at = Some(self.evict_at.map_or(evictable, |at| at.min(evictable)));
        }
        self.introductions.forget(peer);
        self.stats.opened += 1;
        self.stats.failure_streak = 0;
        self.events.push_back(PeerEvent::Opened { peer, joined });
        for message in pending {
            self.send_on(peer, &message, now);
        }
    }

    /// Ends what an attempt was charged to: a failure token comes back unless it failed.
    pub(super) fn settle(&mut self, charge: Charge, outcome: Outcome) {
        match charge {
            Charge::Failures if outcome != Outcome::Failed => self.failures.give_back(),
            Charge::Introducer(introducer) => self.introducers.settle(introducer, outcome),
            Charge::Failures | Charge::Settled => {}
        }
    }

    /// A Pastry frame from an authenticated peer.
    pub(super) fn on_pastry(&mut self, peer: Id, frame: &[u8], now: Time) {
        let message = match wire::decode::<Message<AppMessage>>(frame) {
            Ok(message) => message,
            Err(err) => return self.refuse(peer, &format!("undecodable Pastry frame: {err}"), now),
        };
        if app_of(&message).is_some_and(|app| !app.within_bounds()) {
            return self.refuse(peer, "an application message over its limits", now);
        }
        if let Message::Route(Routed { hops, body: RoutedBody::App(AppMessage::Signal(signal)), .. }) = &message
            && *hops <= 1
            && signal.from != peer
            && !matches!(signal.kind, SignalKind::Reject { .. })
        {
            tracing::warn!(%peer, claimed = %signal.from, "a signal whose first hop is not its sender: dropped");
            return;
        }
        if let Message::Route(Routed { key, body: RoutedBody::Join(_), .. }) = &message {
            self.note_joiner(*key, now);
        }
        self.note_holder(peer, &message, now);
        for id in mentioned(&message) {
            if id == self.own {
                continue;
            }
            self.mentions.record_latest(id, peer);
            if !self.peers.get(&id).is_some_and(|p| p.known) {
                self.introductions.record(id, peer);
            }
        }
        self.events.push_back(PeerEvent::Message { from: peer, message });
    }
}
