//! Keeping the state right as nodes come and go: probes, keep-alives, failure detection,
//! leaf set repair and graceful leave.
//!
//! Pastry section 2.4: "neighboring nodes in the nodeId space periodically exchange
//! keep-alive messages"; a node that does not answer within a timeout is failed, and "to
//! replace a failed node in the leaf set, its neighbor in the nodeId space contacts the live
//! node with the largest index on the side of the failed node, and asks that node for its
//! leaf set". Routing table entries are probed less often; a failed entry starts a slot
//! repair ([`crate::repair`]). A message that cannot be sent marks its peer failed at once.
//!
//! A node that hears from a new leaf pushes its own leaf set to it, and each keep-alive round
//! pushes it to the nearest leaf on each side: nodes that joined at the same moment learn of
//! each other this way, so leaf sets converge to the exact ones.

use crate::config::Proximity;
use crate::id::Id;
use crate::leaf_set::Side;
use crate::overlay::{Event, Overlay, Phase, Waiting};
use crate::time::{Rtt, Time};
use crate::wire::{MAX_IDS, Message, Probe};

/// Most empty slots a row may have for maintenance to repair them.
const MAX_HOLES: usize = 3;
/// Entries in the next row from which a row is expected to be full.
const DENSE_BELOW: usize = 4;

impl<M> Overlay<M> {
    pub(crate) fn schedule_maintenance(&mut self) {
        self.next_keepalive = self.config.keepalive_interval.map(|i| self.now + i);
        self.next_table_probe = self.config.table_probe_interval.map(|i| self.now + i);
        self.next_row_exchange = self.config.row_exchange_interval.map(|i| self.now + i);
    }

    /// A probe arrived from `from`.
    pub(crate) fn on_probe(&mut self, from: Id, probe: Probe) {
        let driver_measures = self.config.proximity == Proximity::Driver;
        let mut just_measured = false;
        if let Some(nonce) = probe.answer
            && let Some(sent) = self.answered(from, |w| w == Waiting::Probe(nonce))
            // The driver's figure is the more exact: with it, a probe measures only what the
            // driver could not (`Node::handle_no_rtt`).
            && (!driver_measures || self.take_probe_measured(from))
        {
            self.measured(from, Rtt::from_duration(self.now.since(sent)));
            just_measured = true;
        }
        // We want a measurement of a prober we have none of (an answer to our own probe was
        // just measured).
        let unmeasured = !just_measured && !self.has_measured(from);
        // `measured` took it in already: a second time would find it where it is.
        if self.phase == Phase::Joined && !just_measured {
            self.heard_from(from);
        }
        if unmeasured && driver_measures {
            self.measure.push_back(from);
        }
        let Some(ask) = probe.ask else {
            return; // An answer, or an announcement.
        };
        // Otherwise ask back, so that its answer measures the prober.
        let our_ask = if unmeasured && !driver_measures && !self.is_waiting(from, |w| matches!(w, Waiting::Probe(_))) {
            let nonce = self.random();
            self.wait_for(from, Waiting::Probe(nonce));
            Some(nonce)
        } else {
            None
        };
        self.transmit(from, Message::Probe(Probe { ask: our_ask, answer: Some(ask) }));
    }

    /// A leaf set arrived, pushed or as the answer to our request.
    pub(crate) fn on_leaf_set(&mut self, from: Id, ids: Vec<Id>, answer: bool) {
        let asked = self.answered(from, |w| w == Waiting::LeafSet).is_some();
        if self.phase != Phase::Joined {
            return;
        }
        let was_leaf = self.state.leaf_set.contains(from);
        self.heard_from(from);
        let ids: Vec<Id> = ids.into_iter().take(MAX_IDS).collect();
        // The leaf set of one of our leaves covers the ring around it without holes.
        let contiguous = asked || self.state.leaf_set.contains(from);
        for &id in &ids {
            self.learn_and_probe(id, contiguous);
        }
        // A new leaf got our leaf set from `heard_from`; any other node that pushed its own
        // gets ours when its misses nodes we know of (stabilization: a gap left by failures
        // closes). Answers are not answered, so this never ping-pongs.
        let became_leaf = !was_leaf && self.state.leaf_set.contains(from);
        if !answer && !became_leaf && self.misses_known_nodes(from, &ids) {
            self.send_leaf_set(from, true);
        }
    }

    /// Whether the leaf set `ids` of `from` lacks a node we know of within its own range.
    ///
    /// Their leaf set is the one [`crate::LeafSet::from_ids`] builds, kept as the sorted clockwise
    /// distances from `from`: its halves are the first and the last `half` of them, so an
    /// id within either half's reach is a member exactly when its distance is listed.
    fn misses_known_nodes(&self, from: Id, ids: &[Id]) -> bool {
        let mut theirs: Vec<u128> = ids.iter().filter(|&&id| id != from).map(|&id| from.clockwise_to(id)).collect();
        theirs.sort_unstable();
        theirs.dedup();
        let k = self.state.leaf_set.half().min(theirs.len());
        // With no leaves, their leaf set covers the whole ring.
        let covered =
            |d: u128| k == 0 || d <= theirs[k - 1] || d.wrapping_neg() <= theirs[theirs.len() - k].wrapping_neg();
        self.state.leaf_set.ids().chain([self.id()]).any(|id| {
            let d = from.clockwise_to(id);
            id != from && covered(d) && theirs.binary_search(&d).is_err()
        })
    }

    /// A neighbor tells us of a node that filled an empty slot of row `row` of its routing
    /// table. The news goes on along the ring, within the region of nodes sharing `row`
    /// digits with it, as long as it fills an empty slot: past a node that had one, the
    /// nodes further on have most likely heard of a node of that slot too.
    pub(crate) fn on_new_node(&mut self, from: Id, id: Id, row: u8) {
        if self.phase != Phase::Joined {
            return;
        }
        self.heard_from(from);
        if self.config.base.shared_prefix(self.id(), id) < row as usize || id == self.id() {
            return; // Out of the region.
        }
        if self.learn_and_probe(id, false).slot {
            self.pass_along(id, row, Some(from));
        }
    }

    /// The peer asks for our leaf set.
    pub(crate) fn on_leaf_set_request(&mut self, from: Id) {
        if self.phase == Phase::Joined {
            self.heard_from(from);
            self.send_leaf_set(from, true);
        }
    }

    /// Handles a timer: keep-alives, table probes, expired requests.
    pub(crate) fn maintenance_timeout(&mut self) {
        let now = self.now;
        if self.next_keepalive.is_some_and(|t| t <= now) {
            self.next_keepalive = self.config.keepalive_interval.map(|i| now + i);
            self.keepalive_round();
        }
        if self.next_table_probe.is_some_and(|t| t <= now) {
            self.next_table_probe = self.config.table_probe_interval.map(|i| now + i);
            self.table_probe_round();
        }
        if self.next_row_exchange.is_some_and(|t| t <= now) {
            self.next_row_exchange = self.config.row_exchange_interval.map(|i| now + i);
            self.row_exchange_round();
        }
        self.expire(now);
    }

    fn keepalive_round(&mut self) {
        let leaves: Vec<Id> = self.state.leaf_set.ids().collect();
        for id in leaves {
            self.probe(id);
        }
        for side in [Side::Clockwise, Side::CounterClockwise] {
            if let Some(&nearest) = self.state.leaf_set.side(side).first() {
                self.send_leaf_set(nearest, false);
            }
        }
    }

    fn table_probe_round(&mut self) {
        let mut ids: Vec<Id> = self.state.table.entries().map(|(_, _, e)| e.id).collect();
        ids.extend(self.state.neighborhood.entries().iter().map(|e| e.id));
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.probe(id);
        }
        self.repair_holes();
    }

    /// Starts repairs of the empty slots of rows that should be full: rows with at most
    /// [`MAX_HOLES`] empty slots, or followed by a row with [`DENSE_BELOW`] entries. There
    /// an empty slot almost surely has candidates (its node failed, a message to it failed,
    /// or the row came from a node that lacked it), while in the sparse last rows most
    /// empty slots have none.
    pub(crate) fn repair_holes(&mut self) {
        for row in 0..self.state.table.row_count() {
            if self.row_should_be_full(row) {
                self.repair_row(row);
            }
        }
    }

    /// Whether row `row` likely has a live node for each of its slots: it has at most
    /// [`MAX_HOLES`] empty slots, or the next row has [`DENSE_BELOW`] entries (each slot of a
    /// row covers a region 2^b times larger than a slot of the next: when the next row has
    /// several entries, this one should be full).
    pub(crate) fn row_should_be_full(&self, row: usize) -> bool {
        let columns = self.config.base.columns();
        let nearly_full = self.state.table.row(row).count() + MAX_HOLES >= columns - 1;
        nearly_full || self.state.table.row(row + 1).count() >= DENSE_BELOW
    }

    /// A slot of row `row` was just filled: when that makes the row dense, the row above
    /// should be full, and its holes are repaired.
    pub(crate) fn filled_slot_in(&mut self, row: usize) {
        if row > 0 && self.state.table.row(row).count() == DENSE_BELOW {
            self.repair_row(row - 1);
        }
    }

    fn repair_row(&mut self, row: usize) {
        let own_digit = self.config.base.digit(self.id(), row) as usize;
        for column in (0..self.config.base.columns()).filter(|&c| c != own_digit) {
            if self.state.table.get(row, column).is_none() {
                self.start_slot_repair_unless_vain(row as u8, column as u8);
            }
        }
    }

    /// Requests unanswered for longer than the probe timeout fail their peer.
    fn expire(&mut self, now: Time) {
        let timeout = self.config.probe_timeout;
        let mut expired: Vec<(Id, Waiting)> = Vec::new();
        self.pending.retain(|p| {
            let keep = p.sent + timeout > now;
            if !keep {
                expired.push((p.peer, p.waiting));
            }
            keep
        });
        for (peer, waiting) in expired {
            match waiting {
                Waiting::Entry(row, column) => self.node_failed(peer, Some((row, column))),
                _ => self.node_failed(peer, None),
            }
        }
    }

    /// A routed message names nodes found failed on its way ([`crate::wire::Routed::failed`]):
    /// probe those we still hold, so that one that did fail leaves our tables within a probe
    /// timeout instead of costing the next message we send it the same wait. The claim alone
    /// removes nothing (its sender may be wrong or lying).
    pub(crate) fn check_named_failed(&mut self, named: &[Id]) {
        for &id in named {
            if id != self.id() && self.state.knows(id) {
                self.probe(id);
            }
        }
    }

    /// `id` is failed (unanswered, unreachable or gone): forget it and repair what it held.
    /// `repairing` names the slot repair that was waiting on it, to be advanced.
    pub(crate) fn node_failed(&mut self, id: Id, repairing: Option<(u8, u8)>) {
        if self.forget(id, repairing) {
            self.emit(Event::NodeFailed(id));
        }
    }

    /// Removes `id` from every table and request, starts the repairs; returns whether it was
    /// not already known as gone.
    fn forget(&mut self, id: Id, repairing: Option<(u8, u8)>) -> bool {
        let already = self.recently_failed(id);
        if !already {
            self.failed.push_back((id, self.now, self.now));
            while self.failed.front().is_some_and(|&(_, at, _)| at + self.config.failed_memory < self.now) {
                self.failed.pop_front();
            }
        }
        let mut waited: Vec<(u8, u8)> = Vec::new();
        self.pending.retain(|p| {
            if p.peer == id
                && let Waiting::Entry(r, c) = p.waiting
            {
                waited.push((r, c));
            }
            p.peer != id
        });
        waited.extend(repairing);
        let side = self.state.leaf_set.side_of(id);
        let (slot, was_leaf) = self.state.remove(id);
        if was_leaf {
            self.leaf_set_changed = true;
            self.repair_leaf_set(side.unwrap_or(Side::Clockwise));
        }
        if let Some((row, column)) = slot {
            self.start_slot_repair(row as u8, column as u8);
        }
        for (row, column) in waited {
            self.advance_slot_repair(row, column);
        }
        self.exchange_lost(id);
        !already
    }

    /// Asks the farthest live leaf on `side` (or the other side) for its leaf set.
    fn repair_leaf_set(&mut self, side: Side) {
        let other = match side {
            Side::Clockwise => Side::CounterClockwise,
            Side::CounterClockwise => Side::Clockwise,
        };
        let ask = self.state.leaf_set.farthest(side).or_else(|| self.state.leaf_set.farthest(other));
        if let Some(peer) = ask
            && !self.is_waiting(peer, |w| w == Waiting::LeafSet)
        {
            self.wait_for(peer, Waiting::LeafSet);
            self.transmit(peer, Message::LeafSetRequest);
        }
    }

    /// Sends `Leave` to every node in our state and stops.
    pub(crate) fn leave(&mut self) {
        let mut ids: Vec<Id> = self.state.known().collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.transmit(id, Message::Leave);
        }
        self.phase = Phase::Left;
        self.pending.clear();
        self.repairs.clear();
        self.deferred.clear();
        self.next_keepalive = None;
        self.next_table_probe = None;
        self.next_row_exchange = None;
        self.exchanges.clear();
    }

    /// `from` left the network.
    pub(crate) fn on_leave(&mut self, from: Id) {
        let known = self.state.knows(from) || self.pending.iter().any(|p| p.peer == from);
        if known && self.forget(from, None) {
            self.emit(Event::NodeLeft(from));
        }
    }
}
