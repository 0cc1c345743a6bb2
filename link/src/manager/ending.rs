//! How connections end: failed attempts, closes, refused peers, idle transfers, timeouts
//! (which idle connections are evicted: [`super::retention`]).

use super::*;

impl PeerManager {
    /// The connection closed under us (the channel or the peer connection).
    pub fn handle_closed(&mut self, conn: ConnId, reason: &str, now: Time) {
        let Some((peer, c)) = self.conn_mut(conn) else { return };
        if c.is_open() {
            self.drop_failed(peer, reason, true, now);
        } else {
            self.attempt_failed(peer, reason, now);
        }
    }

    /// Setting up `conn` failed in the driver (creating the peer connection, a
    /// description, applying an answer).
    pub fn handle_failed(&mut self, conn: ConnId, reason: &str, now: Time) {
        if let Some(peer) = self.peer_of(conn) {
            self.attempt_failed(peer, reason, now);
        }
    }

    /// Time passed: attempts time out, closing connections close, waiting attempts start,
    /// idle connections are evicted.
    pub fn handle_timeout(&mut self, tables: &impl Tables, now: Time) {
        let stale: Vec<Id> = self
            .peers
            .iter()
            .filter_map(|(id, p)| p.conn.as_ref().map(|c| (id, c)))
            .filter(|(_, c)| !c.is_open() && now.since(c.created) >= self.config.connect_timeout)
            .map(|(id, _)| *id)
            .collect();
        for peer in stale {
            self.attempt_failed(peer, "timed out", now);
        }
        self.resend_offers(now);
        self.drop_silent(now);
        let (done, closing): (Vec<_>, Vec<_>) = self.closing.drain(..).partition(|(_, at)| *at <= now);
        self.closing = closing;
        self.commands.extend(done.into_iter().map(|(conn, _)| Command::Close { conn }));
        self.admit_waiting(tables, now);
        self.close_idle_transfers(tables, now);
        self.evict(0, tables, now);
        if self.peers.len() > MAX_IDLE_PEERS {
            self.peers.retain(|_, p| !p.is_idle(now) || p.known);
        }
        if self.peers.len() > MAX_IDLE_PEERS {
            self.peers.retain(|_, p| !p.is_idle(now));
        }
    }

    /// An attempt failed: an overlay offer goes once more through the server; otherwise the
    /// attempt ends, its peer backs off and its messages fail.
    pub(super) fn attempt_failed(&mut self, peer: Id, reason: &str, now: Time) {
        let server = self.server;
        let Some(record) = self.peers.get_mut(&peer) else { return };
        let Some(c) = record.conn.as_mut() else { return };
        if c.role == Role::Offerer
            && c.via == Via::Overlay
            && !c.retried
            && server
            && c.state == State::Signaling
            && let Some(sdp) = c.local_sdp.clone()
        {
            let what = format!("overlay signaling failed ({reason}); the offer goes through the server");
            c.via = Via::Server;
            c.retried = true;
            c.created = now;
            self.commands.push_back(Command::ToServer { to: peer, payload: SignalPayload::Offer { sdp } });
            return self.note_trouble(peer, what, now);
        }
        record.backoff.failed(&self.config.limits, now);
        self.stats.failed += 1;
        self.stats.failure_streak += 1;
        self.note_trouble(peer, format!("connection attempt failed: {reason}"), now);
        self.drop_conn(peer, reason, false, now);
    }

    /// Ends the connection to `peer`; its queued messages fail. `tombstone`: the peer
    /// vanished, so messages for it fail at once for a while.
    pub(super) fn drop_conn(&mut self, peer: Id, reason: &str, tombstone: bool, now: Time) {
        let Some(record) = self.peers.get_mut(&peer) else { return };
        let Some(c) = record.conn.take() else { return };
        self.by_conn.remove(&c.id);
        if tombstone && c.is_open() {
            record.tombstone = Some(now + self.config.tombstone);
        }
        self.settle(c.charge, Outcome::Failed);
        self.commands.push_back(Command::Close { conn: c.id });
        if c.is_open() {
            self.events.push_back(PeerEvent::Closed { peer, reason: reason.to_string() });
        }
        self.fail_pending(peer);
    }

    pub(super) fn fail_pending(&mut self, peer: Id) {
        let Some(record) = self.peers.get_mut(&peer) else { return };
        for message in record.pending.take() {
            self.events.push_back(PeerEvent::SendFailed { to: peer, message, peer_failed: false });
        }
    }

    /// Drops a peer that broke the protocol.
    pub(super) fn refuse(&mut self, peer: Id, reason: &str, now: Time) {
        tracing::warn!(%peer, "dropping the peer: {reason}");
        self.events.push_back(PeerEvent::Refused { peer, reason: reason.to_string() });
        if let Some(record) = self.peers.get_mut(&peer) {
            record.backoff.failed(&self.config.limits, now);
        }
        self.drop_conn(peer, reason, false, now);
    }

    /// Closes the connections opened for a transfer that have been idle for
    /// `transfer_idle`; one whose peer the tables now keep (or that is protected) becomes
    /// an ordinary connection.
    pub(super) fn close_idle_transfers(&mut self, tables: &impl Tables, now: Time) {
        let idle = self.config.transfer_idle;
        let mut done = Vec::new();
        for (id, record) in &mut self.peers {
            let Some(c) = record.conn.as_mut().filter(|c| c.transfer && c.is_open()) else { continue };
            if tables.keeps(*id) || self.protected.contains(id) {
                c.transfer = false;
            } else if record.pending.is_empty() && now.since(c.last_used.max(c.last_heard)) >= idle {
                done.push(*id);
            }
        }
        for peer in done {
            self.close_gracefully(peer, "the transfer it was opened for is over", now);
        }
    }

    /// Closes an open connection on purpose: the peer is told first, and the connection
    /// lingers a moment so the notice goes out.
    pub(super) fn close_gracefully(&mut self, peer: Id, why: &str, now: Time) {
        let Some(c) = self.peers.get_mut(&peer).and_then(|p| p.conn.take()) else { return };
        tracing::debug!(%peer, "closing: {why}");
        self.by_conn.remove(&c.id);
        self.commands.push_back(Command::Send { conn: c.id, bytes: frame::encode_close() });
        self.closing.push((c.id, now + self.config.linger));
        self.events.push_back(PeerEvent::Closed { peer, reason: why.into() });
    }
}
