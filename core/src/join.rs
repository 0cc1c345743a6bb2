//! Joining the overlay.
//!
//! Pastry section 2.4: a new node X asks a nearby node A to route a join message with key X.
//! Every node on the route adds the routing table rows X needs (the i-th node shares about
//! i digits with X, so its row i fits X's row i), A adds its neighborhood set (A is close to
//! X), and Z, the node numerically closest to X, answers with everything and its leaf set.
//! X then probes every node in its new state: the probes measure proximity, so X keeps the
//! closest candidate for each slot, and they announce X, so those nodes take X into their
//! own tables.

use crate::id::Id;
use crate::overlay::{Event, Overlay, Phase};
use crate::route::Hop;
use crate::wire::{JoinReply, JoinRequest, MAX_IDS, Message, RoutedBody};

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
        self.transmit(bootstrap, Message::Route(crate::wire::Routed { key: own, hops: 0, attempt: 0, body }));
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
    pub(crate) fn on_join_request(&mut self, from: Id, joiner: Id, hops: u8, mut request: JoinRequest) {
        if self.phase != Phase::Joined || joiner == self.id() || !self.request_in_bounds(&request) {
            return;
        }
        if hops == 0 {
            if from != joiner {
                return; // Only the joiner itself may start its join route.
            }
            request.neighborhood = self.state.neighborhood.entries().iter().map(|e| e.id).collect();
        } else {
            // The previous hop is a member of the overlay.
            self.heard_from(from);
        }
        self.route_join(joiner, hops, request);
    }

    /// One routing step of a join message: add our rows, then forward it or answer it.
    pub(crate) fn route_join(&mut self, joiner: Id, hops: u8, mut request: JoinRequest) {
        self.add_rows(joiner, &mut request.rows);
        match self.state.next_hop(joiner, Some(joiner)) {
            Hop::Forward(next) => self.forward(next, joiner, (hops, 0), RoutedBody::Join(request)),
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

    /// The second phase of the join (Pastry section 2.5): for each row beyond the first
    /// with many entries (so that the slots have many candidates to choose from), ask the
    /// closest node of that row, once all of them are measured, for its own row, and keep
    /// whichever candidates are closer. Holes in rows that should be full (a contact with a
    /// sparse row passed its holes on) are repaired.
    fn plan_refinement(&mut self) {
        let columns = self.config.base.columns();
        self.refine = (1..self.state.table.row_count())
            .filter(|&r| self.state.table.row(r).count() * 2 >= columns)
            .map(|r| r as u8)
            .collect();
    }

    /// `peer` answered a probe: if it is the first of a row still to refine, ask it for
    /// that row.
    pub(crate) fn refine_with(&mut self, peer: Id) {
        if self.refine.is_empty() {
            return;
        }
        let Some((row, _)) = self.state.table.slot_of(peer) else { return };
        let Some(i) = self.refine.iter().position(|&r| r as usize == row) else { return };
        // Once every entry of the row is measured, ask the closest.
        if self.state.table.row(row).any(|(_, e)| !e.rtt.is_known()) {
            return;
        }
        self.refine.swap_remove(i);
        if let Some((_, closest)) = self.state.table.row(row).min_by_key(|&(_, e)| (e.rtt, e.id)) {
            self.transmit(closest.id, Message::RowRequest { row: row as u8 });
        }
    }

    /// A peer asks for one of our routing table rows.
    pub(crate) fn on_row_request(&mut self, from: Id, row: u8) {
        if self.phase == Phase::Joined {
            self.heard_from(from);
            let ids = self.state.table.row(row as usize).map(|(_, e)| e.id).filter(|&id| id != from).collect();
            self.transmit(from, Message::RowReply { row, ids });
        }
    }

    /// A row arrived for our join's second phase: probe the candidates that could take a
    /// slot, to compare them with its holder.
    pub(crate) fn on_row_reply(&mut self, from: Id, ids: Vec<Id>) {
        if self.phase != Phase::Joined {
            return;
        }
        self.heard_from(from);
        for id in ids.into_iter().take(self.config.base.columns()) {
            if id != self.id() && !self.recently_failed(id) && !self.state.table.contains(id) {
                self.learn(id);
                self.introduce(id);
            }
        }
    }

    fn become_joined(&mut self) {
        self.phase = Phase::Joined;
        self.failed.clear();
        self.schedule_maintenance();
        self.emit(Event::Joined);
    }
}
