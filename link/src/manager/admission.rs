//! Which attempts may start, and starting them: the limits, the budget, how to signal.

use super::*;

/// A connection attempt, as admission sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Attempt {
    /// The peer offered (it is alive, so our backoff for it does not apply; the other limits
    /// do, since answering costs a peer connection too).
    pub(super) incoming: bool,
    /// The connection is opened to carry PAST content (see [`super::pace`]).
    pub(super) transfer: bool,
}

impl Attempt {
    /// An attempt of ours; `transfer`: for PAST content.
    pub(super) fn outgoing(transfer: bool) -> Attempt {
        Attempt { incoming: false, transfer }
    }

    /// The peer's offer; `transfer`: the peer says it is for PAST content.
    pub(super) fn incoming(transfer: bool) -> Attempt {
        Attempt { incoming: true, transfer }
    }
}

impl PeerManager {
    /// Whether `attempt` to `peer` may start.
    pub(super) fn admission(&mut self, peer: Id, attempt: Attempt, tables: &impl Tables, now: Time) -> Admission {
        if self.budget_exhausted() {
            return Admission::Refuse("the connection budget is used up");
        }
        if let Some(reason) = self.pace_refusal(peer, attempt.transfer, tables, now) {
            return Admission::Refuse(reason);
        }
        let incoming = attempt.incoming;
        let record = self.peers.get(&peer);
        if record.is_some_and(|p| p.other_version_until.is_some_and(|t| t > now)) {
            return Admission::Refuse("it runs another overlay version");
        }
        if !incoming && record.is_some_and(|p| p.tombstone.is_some_and(|t| t > now)) {
            return Admission::Refuse("its connection failed a moment ago");
        }
        if !incoming && record.is_some_and(|p| p.backoff.blocks(now)) {
            return Admission::Refuse("backing off after failed attempts");
        }
        let known = record.is_some_and(|p| p.known);
        if !known && record.is_some_and(|p| p.hearsay_attempts >= self.config.limits.hearsay_attempts) {
            return Admission::Refuse("known only by hearsay and tried enough");
        }
        if !self.attempts.ready(now) {
            return Admission::Wait;
        }
        if known {
            return if self.failures.ready(now) { Admission::Start(Charge::Failures) } else { Admission::Wait };
        }
        let introducer = self.introductions.introducer(peer).unwrap_or(Id::ZERO);
        match self.introducers.refusal(introducer, &self.config.limits, now) {
            Some(reason) => Admission::Refuse(reason),
            None => Admission::Start(Charge::Introducer(introducer)),
        }
    }

    /// Starts an admitted attempt to `peer` as the offerer.
    pub(super) fn start(&mut self, peer: Id, charge: Charge, tables: &impl Tables, now: Time) {
        let via = self.choose_via(peer, tables, now);
        let Some(via) = via else {
            self.fail_pending(peer);
            return;
        };
        let session = self.rng.next_u64();
        self.create(peer, Role::Offerer, via, session, charge, None, tables, now);
    }

    /// How to signal a new connection to `peer`.
    pub(super) fn choose_via(&self, peer: Id, tables: &impl Tables, now: Time) -> Option<Via> {
        let any_open = self.open_peers().next().is_some();
        // A node whose join passed by is not in the overlay yet: signals routed to it end
        // elsewhere, so its connection (for our probe, our join reply) goes through the
        // server when we can.
        let to_joiner = self.joiners.iter().any(|&(id, at)| id == peer && now.since(at) < JOINER_MEMORY);
        if tables.is_joined() && any_open && !(to_joiner && self.server) {
            Some(Via::Overlay)
        } else if self.server {
            Some(Via::Server)
        } else if any_open {
            Some(Via::Overlay)
        } else {
            None
        }
    }

    /// Creates connection state and tells the driver to create the peer connection.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create(
        &mut self,
        peer: Id,
        role: Role,
        via: Via,
        session: u64,
        charge: Charge,
        offer: Option<String>,
        tables: &impl Tables,
        now: Time,
    ) {
        self.evict(1, tables, now);
        self.attempts.take(now);
        match charge {
            Charge::Failures => {
                self.failures.take(now);
            }
            Charge::Introducer(introducer) => self.introducers.charge(introducer, &self.config.limits, now),
            Charge::Settled => {}
        }
        self.spend();
        self.next_conn += 1;
        let id = self.next_conn;
        let record = self.peers.entry(peer).or_default();
        record.waiting = None;
        let transfer = role == Role::Offerer && record.pending.carries_past();
        if !record.known {
            record.hearsay_attempts = record.hearsay_attempts.saturating_add(1);
        }
        record.conn = Some(Conn {
            id,
            role,
            via,
            session,
            state: State::Signaling,
            auth: None,
            frames: Reassembler::new(wire::MAX_FRAME_BYTES),
            local_sdp: None,
            charge,
            retried: false,
            resends: 0,
            offer_digest: offer.as_deref().map(super::signal::sdp_digest),
            created: now,
            last_used: now,
            last_heard: now,
            joined: false,
            probed_us: None,
            early: Vec::new(),
            transfer,
            unconfirmed: Default::default(),
        });
        self.by_conn.insert(id, peer);
        self.commands.push_back(Command::Create { conn: id, peer, offer });
    }

    /// Starts the attempts that waited for the limits, oldest first; fails messages that
    /// waited too long.
    pub(super) fn admit_waiting(&mut self, tables: &impl Tables, now: Time) {
        let mut waiting: Vec<(Time, Id)> =
            self.peers.iter().filter_map(|(id, p)| p.waiting.map(|since| (since, *id))).collect();
        waiting.sort_unstable();
        for (since, peer) in waiting {
            if now.since(since) >= self.config.connect_timeout {
                self.peers.entry(peer).or_default().waiting = None;
                self.fail_pending(peer);
                continue;
            }
            let transfer = self.peers.get(&peer).is_some_and(|p| p.pending.carries_past());
            match self.admission(peer, Attempt::outgoing(transfer), tables, now) {
                Admission::Start(charge) => self.start(peer, charge, tables, now),
                Admission::Wait => break,
                Admission::Refuse(reason) => {
                    self.note_trouble(peer, format!("a waiting attempt is refused: {reason}"), now);
                    self.stats.refused += 1;
                    self.peers.entry(peer).or_default().waiting = None;
                    self.fail_pending(peer);
                }
            }
        }
    }
}
