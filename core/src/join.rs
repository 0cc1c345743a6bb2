//! Joining the overlay.
//!
//! Pastry section 2.4: a new node X asks a nearby node A to route a join message with key X.
//! Every node on the route adds the routing table rows X needs (the i-th node shares about
//! i digits with X, so its row i fits X's row i), A adds its neighborhood set (A is close to
//! X), and Z, the node numerically closest to X, answers with everything and its leaf set.
//! X then probes every node in its new state: the probes measure proximity, so X keeps the
//! closest candidate for each slot, and they announce X, so those nodes take X into their
//! own tables. The second phase, asking nearby nodes for their rows, is in `refine.rs`.

use crate::id::Id;
use crate::overlay::{Event, Overlay, Phase, Trail};
use crate::route::Hop;
use crate::wire::{JoinReply, JoinRequest, MAX_IDS, Message, Routed, RoutedBody, ThinVec};

/// Join attempts before [`Event::JoinFailed`].
const JOIN_ATTEMPTS: u8 = 3;

impl<M> Overlay<M> {
    /// Starts joining through `bootstrap`, or founds a new overlay when there is none.
    pub(crate) fn start_join(&mut self, bootstrap: Option<Id>) {
        match bootstrap {
            Some(bootstrap) if bootstrap != self.id() => {
                self.phase = Phase::Joining { bootstrap, retry_at: self.now, attempts: 0 };
                self.send_join();
            }
            _ => self.become_joined(),
        }
    }

    fn send_join(&mut self) {
        let Phase::Joining { bootstrap, attempts, .. } = self.phase else {
            return;
        };
        let own = self.id();
        self.phase =
            Phase::Joining { bootstrap, retry_at: self.now + self.config.join_timeout, attempts: attempts + 1 };
        // hops = 0: the contact is the first node of the route, not a hop of it.
        let body = RoutedBody::Join(JoinRequest::default());
        self.transmit(
            bootstrap,
            Message::Route(Routed { key: own, hops: 0, attempt: 0, failed: ThinVec::new(), body }),
        );
    }

    /// The join timer fired: send again, or give up.
    pub(crate) fn join_timeout(&mut self) {
        if let Phase::Joining { attempts, retry_at, .. } = self.phase {
            if retry_at > self.now {
                return;
            }
            if attempts >= JOIN_ATTEMPTS {
                self.phase = Phase::Idle;
                self.emit(Event::JoinFailed);
            } else {
                self.send_join();
            }
        }
    }

    /// A join message for `joiner` reached this node from `from` after `hops` hops.
    pub(crate) fn on_join_request(&mut self, from: Id, joiner: Id, trail: Trail, mut request: JoinRequest) {
        if self.phase != Phase::Joined || joiner == self.id() || !self.request_in_bounds(&request) {
            return;
        }
        if trail.hops == 0 {
            if from != joiner {
                return; // Only the joiner itself may start its join route.
            }
            request.neighborhood = self.state.neighborhood.entries().iter().map(|e| e.id).collect();
        } else {
            // The previous hop is a member of the overlay.
            self.heard_from(from);
        }
        self.route_join(joiner, trail, request);
    }

    /// One routing step of a join message: add our rows, then forward it or answer it.
    pub(crate) fn route_join(&mut self, joiner: Id, trail: Trail, mut request: JoinRequest) {
        self.add_rows(joiner, &mut request.rows);
        let mut avoid = trail.failed.clone();
        avoid.push(joiner);
        match self.state.next_hop(joiner, &avoid) {
            Hop::Forward(next) => self.forward(next, joiner, trail, RoutedBody::Join(request)),
            Hop::Local => {
                let mut leaf_set: Vec<Id> = self.state.leaf_set.ids().filter(|&id| id != joiner).collect();
                leaf_set.push(self.id());
                let reply = JoinReply { rows: request.rows, leaf_set, neighborhood: request.neighborhood };
                self.transmit(joiner, Message::JoinReply(reply));
            }
        }
    }

    fn request_in_bounds(&self, request: &JoinRequest) -> bool {
        request.rows.len() <= self.config.base.rows()
            && request.rows.iter().all(|row| row.len() <= self.config.base.columns())
            && request.neighborhood.len() <= MAX_IDS
    }

    /// Adds the rows this node can give `joiner`: from the next missing row up to the length
    /// of the prefix it shares with the joiner, with itself in the last one.
    fn add_rows(&self, joiner: Id, rows: &mut Vec<Vec<Id>>) {
        let base = self.config.base;
        let shared = base.shared_prefix(self.id(), joiner).min(base.rows() - 1);
        for row in rows.len()..=shared {
            let mut ids: Vec<Id> = self.state.table.row(row).map(|(_, e)| e.id).filter(|&id| id != joiner).collect();
            if row == shared {
                ids.push(self.id());
            }
            rows.push(ids);
        }
    }

    /// The join reply arrived: build the state from it and announce ourselves.
    pub(crate) fn on_join_reply(&mut self, from: Id, reply: JoinReply) {
        if !matches!(self.phase, Phase::Joining { .. }) {
            return;
        }
        let mut candidates: Vec<Id> = reply
            .rows
            .iter()
            .take(self.config.base.rows())
            .flat_map(|row| row.iter().take(self.config.base.columns()))
            .chain(reply.leaf_set.iter().take(MAX_IDS))
            .chain(reply.neighborhood.iter().take(MAX_IDS))
            .copied()
            .chain([from])
            .filter(|&id| id != self.id())
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for &id in &candidates {
            self.learn(id);
        }
        self.become_joined();
        self.plan_refinement();
        self.repair_holes();
        // Probe every candidate, kept or not: the answers rank them by proximity.
        for id in candidates {
            self.introduce(id);
        }
    }

    fn become_joined(&mut self) {
        self.phase = Phase::Joined;
        self.failed.clear();
        self.schedule_maintenance();
        self.emit(Event::Joined);
    }
}
