//! Routing table repair: refilling a slot whose node failed.
//!
//! Pastry section 2.4: "To repair a failed routing table entry R[l][d], a node contacts first
//! the node referred to by another entry R[l][i], i != d, of the same row, and asks for that
//! node's entry for R[l][d]. In the event that none of the entries in row l have a pointer to
//! a live node with the appropriate prefix, the node next contacts an entry R[l+1][i], i != d,
//! thereby casting a wider net." Failing that we route a `FindSlot` message to a key in the
//! slot's range; the node that receives it answers with a node from its own state that fits.
//!
//! Each repair is a small state machine fed with answers and failures; a repair that needs
//! its next step is marked ready, and after each input [`Overlay::send_slot_requests`] takes
//! the steps of every ready repair at once, so that the cost stays near one remote procedure
//! call per failed entry:
//! - one peer is asked at a time, and the next only when it had nothing useful;
//! - a peer sharing `r` digits with us can answer for every slot of rows up to `r`, so one
//!   request lists every ready slot it can answer (slots failed at the same moment, such as
//!   every dead entry a table probe round found, cost one request per peer, not per slot);
//! - while peers to ask have a probe of ours unanswered (a table probe round is finding the
//!   failures), the repair waits for the probes, at most the probe timeout: then it asks a
//!   peer known alive about every slot found empty in that round, and peers near each other
//!   rarely pick each other (the peer that answers first is the nearest, whose nearest we
//!   likely are);
//! - a peer lacking the slot in its table answers with a node of its leaf or neighborhood
//!   set that fits, if it has one;
//! - a peer that lacks the slot because it lost the same node (nodes near each other hold
//!   the same nodes) and is repairing it answers once its repair is done, at most half the
//!   probe timeout later, instead of answering nothing at once;
//! - in a sparse row, where a slot's region holds a node or two at most, the repair routes a
//!   slot search at once: the nodes around the region know, our peers rarely do.

use crate::id::Id;
use crate::overlay::{Overlay, Phase, Trail, Waiting};
use crate::route::Hop;
use crate::time::Time;
use crate::wire::{Message, RoutedBody};

/// Most peers asked about one slot before the repair routes a `FindSlot` message.
const MAX_ASKED: usize = 3;
/// Most slot repairs in progress at once.
const MAX_REPAIRS: usize = 64;
/// Most slots answered from one entry request (a table has at most 128 rows of 16 columns
/// with b = 4; more would only be a peer making us work).
const MAX_SLOTS_PER_REQUEST: usize = 512;

/// Most answers to entry requests waiting for our own repairs.
const MAX_DEFERRED: usize = 64;

/// An answer to an entry request that waits for our repair of some of its slots.
#[derive(Clone, Debug)]
pub(crate) struct DeferredReply {
    to: Id,
    slots: Vec<(u8, u8)>,
    /// When to answer with what we have.
    until: Time,
}

/// The repair of one routing table slot.
#[derive(Clone, Debug)]
pub(crate) struct SlotRepair {
    row: u8,
    column: u8,
    asked: Vec<Id>,
    /// Waiting for [`Overlay::send_slot_requests`] to take its next step.
    ready: bool,
    /// When the repair started.
    since: Time,
}

/// Whom a repair can ask next.
enum Contact {
    /// This peer.
    Peer(Id),
    /// Some peers to ask have a probe of ours unanswered (a table probe round found the
    /// failures): wait for the probes, at most the probe timeout from the repair's start,
    /// so as to choose among the peers known alive and ask about every slot found empty.
    Busy,
    /// Nobody: search for the slot by routing.
    Nobody,
}

impl<M> Overlay<M> {
    /// Slot `(row, column)` lost its node: start repairing it.
    pub(crate) fn start_slot_repair(&mut self, row: u8, column: u8) {
        if !self.config.table_repair || self.phase != Phase::Joined || self.repairs.len() >= MAX_REPAIRS {
            return;
        }
        if self.repairs.iter().any(|r| (r.row, r.column) == (row, column)) || self.fill_from_own_state(row, column) {
            return;
        }
        self.repairs.push(SlotRepair { row, column, asked: Vec::new(), ready: true, since: self.now });
    }

    /// Fills our empty slot `(row, column)` with a node of our neighborhood or leaf set that
    /// fits it, if there is one: a repair that costs no message. Returns whether it did.
    fn fill_from_own_state(&mut self, row: u8, column: u8) -> bool {
        let Some(id) = self.entry_for(self.id(), row, column) else {
            return false;
        };
        if !self.learn(id).slot {
            return false;
        }
        if let Some(neighbor) = self.state.neighborhood.entries().iter().find(|e| e.id == id) {
            self.state.table.consider(id, neighbor.rtt);
        }
        true
    }

    /// A message needs routing table slot `(row, column)`, which is empty: repair it, unless a
    /// repair of it found nothing a short while ago (the slot may have no candidate at all).
    pub(crate) fn repair_missing(&mut self, row: usize, column: usize) {
        if self.config.table_repair {
            self.start_slot_repair_unless_vain(row as u8, column as u8);
        }
    }

    /// Starts repairing a slot unless a repair of it found nothing a short while ago.
    pub(crate) fn start_slot_repair_unless_vain(&mut self, row: u8, column: u8) {
        let now = self.now;
        let memory = self.config.failed_memory;
        self.vain.retain(|&(_, at)| at + memory > now);
        if !self.vain.iter().any(|&(s, _)| s == (row, column)) {
            self.start_slot_repair(row, column);
        }
    }

    /// The last step of a repair gave nothing: it takes its next step after this input.
    pub(crate) fn advance_slot_repair(&mut self, row: u8, column: u8) {
        if let Some(repair) = self.repairs.iter_mut().find(|r| (r.row, r.column) == (row, column)) {
            repair.ready = true;
        }
    }

    /// Takes the next step of every ready repair: asks a peer (one request per peer for all
    /// the slots it can answer), waits for peers' probes, or routes a slot search.
    pub(crate) fn send_slot_requests(&mut self) {
        if !self.deferred.is_empty() {
            self.send_deferred_replies();
        }
        if !self.repairs.iter().any(|r| r.ready) {
            return;
        }
        // Highest rows first: a peer of a later row can answer for the slots of every
        // earlier row too, so its one request covers them.
        let mut ready: Vec<(u8, u8)> = self.repairs.iter().filter(|r| r.ready).map(|r| (r.row, r.column)).collect();
        ready.sort_unstable_by(|a, b| b.cmp(a));
        for (row, column) in ready {
            self.step_slot_repair(row, column);
        }
    }

    /// The next step of the repair of `(row, column)`, if it is still ready.
    fn step_slot_repair(&mut self, row: u8, column: u8) {
        let Some(index) = self.repairs.iter().position(|r| (r.row, r.column) == (row, column) && r.ready) else {
            return;
        };
        if self.state.table.get(row as usize, column as usize).is_some() {
            self.repairs.swap_remove(index);
            return;
        }
        let asked = self.repairs[index].asked.len();
        // In a sparse row the slot's region holds a node or two at most, which our peers
        // rarely know of: the nodes around the region, found by routing, know.
        let sparse = asked == 0 && !self.row_should_be_full(row as usize);
        let contact = if asked < MAX_ASKED && !sparse {
            self.repair_contact(row as usize, column as usize, index)
        } else {
            Contact::Nobody
        };
        match contact {
            Contact::Peer(peer) => self.ask_for_slots(peer),
            Contact::Busy => {}
            Contact::Nobody => {
                self.repairs.swap_remove(index);
                self.find_slot(row, column);
            }
        }
    }

    /// Asks `peer` for every ready slot it can answer and has not been asked about.
    fn ask_for_slots(&mut self, peer: Id) {
        let Some((peer_row, peer_column)) = self.state.table.slot_of(peer) else {
            return;
        };
        let mut slots = Vec::new();
        for repair in self.repairs.iter_mut() {
            let (row, column) = (repair.row as usize, repair.column as usize);
            let answerable = row < peer_row || (row == peer_row && column != peer_column);
            let empty = self.state.table.get(row, column).is_none();
            if repair.ready && empty && answerable && !repair.asked.contains(&peer) && repair.asked.len() < MAX_ASKED {
                repair.ready = false;
                repair.asked.push(peer);
                slots.push((repair.row, repair.column));
            }
        }
        for &(row, column) in &slots {
            self.wait_for(peer, Waiting::Entry(row, column));
        }
        self.transmit(peer, Message::EntryRequest { slots });
    }

    /// Last step of a repair: routes towards the slot's range; any answer is taken as it
    /// comes.
    fn find_slot(&mut self, row: u8, column: u8) {
        self.vain.push(((row, column), self.now));
        let rest = u128::from(self.random()) << 64 | u128::from(self.random());
        let key = self.config.base.key_in_slot(self.id(), row as usize, column, rest);
        if let Hop::Forward(next) = self.state.next_hop(key, &[]) {
            let body = RoutedBody::FindSlot { origin: self.id(), row, column };
            self.forward(next, key, Trail::start(0), body);
        }
    }

    /// A node to ask about slot `(row, column)` for the repair at `index`: one of the same
    /// row first, then of the later rows, chosen at random among them, never one asked
    /// before, and known alive unless the repair waited for the probes long enough.
    fn repair_contact(&mut self, row: usize, column: usize, index: usize) -> Contact {
        let rows = self.state.table.row_count();
        for r in row..rows {
            let candidates = || {
                self.state
                    .table
                    .row(r)
                    .filter(|&(c, e)| (r, c) != (row, column) && !self.repairs[index].asked.contains(&e.id))
                    .map(|(_, e)| e.id)
            };
            let probed = |id: Id| self.is_waiting(id, |w| matches!(w, Waiting::Probe(_)));
            if candidates().next().is_none() {
                continue;
            }
            // Checked before collecting anything: a node repairing slots while its probes
            // are out asks this on every input.
            if self.now < self.repairs[index].since + self.config.probe_timeout && candidates().any(probed) {
                return Contact::Busy;
            }
            let (free, probed): (Vec<Id>, Vec<Id>) = candidates().partition(|&id| !probed(id));
            let pool = if free.is_empty() { probed } else { free };
            let pick = (self.random() % pool.len() as u64) as usize;
            return Contact::Peer(pool[pick]);
        }
        Contact::Nobody
    }

    /// A peer asks for our entries at `slots`. When we lack one that we are repairing
    /// ourselves (nodes near each other often lost the same node), the answer waits for our
    /// repair, for at most half the probe timeout, so that the peer gets the node we find
    /// instead of nothing, and need not ask again.
    pub(crate) fn on_entry_request(&mut self, from: Id, mut slots: Vec<(u8, u8)>) {
        if self.phase != Phase::Joined {
            return;
        }
        self.heard_from(from);
        slots.truncate(MAX_SLOTS_PER_REQUEST);
        let until = self.now + self.config.probe_timeout / 2;
        if self.deferred.len() < MAX_DEFERRED && slots.iter().any(|&(r, c)| self.awaits_own_repair(from, r, c)) {
            self.deferred.push(DeferredReply { to: from, slots, until });
        } else {
            self.answer_entry_request(from, &slots);
        }
    }

    /// Whether our answer about slot `(row, column)` to `asker` is to wait for our own repair
    /// of that slot: we have no node for it, are repairing it, and are not waiting for
    /// `asker`'s own answer about it (two nodes waiting for each other would wait in vain).
    fn awaits_own_repair(&self, asker: Id, row: u8, column: u8) -> bool {
        self.entry_for(asker, row, column).is_none()
            && self.repairs.iter().any(|r| (r.row, r.column) == (row, column))
            && !self.is_waiting(asker, |w| w == Waiting::Entry(row, column))
    }

    fn answer_entry_request(&mut self, to: Id, slots: &[(u8, u8)]) {
        let entries = slots.iter().map(|&(row, column)| (row, column, self.entry_for(to, row, column))).collect();
        self.transmit(to, Message::EntryReply { entries });
    }

    /// Sends the deferred answers whose slots we repaired (or gave up on), or whose time is up.
    fn send_deferred_replies(&mut self) {
        let now = self.now;
        let mut index = 0;
        while index < self.deferred.len() {
            let DeferredReply { to, ref slots, until } = self.deferred[index];
            if until <= now || !slots.iter().any(|&(r, c)| self.awaits_own_repair(to, r, c)) {
                let reply = self.deferred.swap_remove(index);
                self.answer_entry_request(reply.to, &reply.slots);
            } else {
                index += 1;
            }
        }
    }

    /// When the earliest deferred answer is due.
    pub(crate) fn next_deferred_reply(&self) -> Option<Time> {
        self.deferred.iter().map(|d| d.until).min()
    }

    /// A node of ours that fits `asker`'s slot `(row, column)`: our entry there, or else the
    /// nearest node of our neighborhood set that fits, or else a node of our leaf set.
    fn entry_for(&self, asker: Id, row: u8, column: u8) -> Option<Id> {
        let base = self.config.base;
        let slot = Some((row as usize, column as usize));
        let fits = |id: Id| id != asker && base.slot(asker, id) == slot;
        let entry = self.state.table.get(row as usize, column as usize).map(|e| e.id).filter(|&id| fits(id));
        entry
            .or_else(|| {
                let neighbors = self.state.neighborhood.entries().iter().filter(|e| fits(e.id));
                neighbors.min_by_key(|e| e.rtt).map(|e| e.id)
            })
            .or_else(|| self.state.leaf_set.ids().find(|&id| fits(id)))
    }

    /// An answer about some slots arrived.
    pub(crate) fn on_entry_reply(&mut self, from: Id, mut entries: Vec<(u8, u8, Option<Id>)>) {
        entries.truncate(MAX_SLOTS_PER_REQUEST);
        for &(row, column, _) in &entries {
            self.answered(from, |w| w == Waiting::Entry(row, column));
        }
        if self.phase != Phase::Joined {
            return;
        }
        self.heard_from(from);
        for (row, column, id) in entries {
            self.take_entry(row, column, id);
        }
    }

    /// `id` was named for slot `(row, column)`: fill the slot if it is empty and `id` fits,
    /// and advance the slot's repair.
    fn take_entry(&mut self, row: u8, column: u8, id: Option<Id>) {
        let slot = (row as usize, column as usize);
        let empty = self.state.table.get(slot.0, slot.1).is_none();
        let fits = id.filter(|&id| self.state.table.slot_of(id) == Some(slot) && !self.recently_failed(id));
        if let (true, Some(candidate)) = (empty, fits) {
            self.learn_and_probe(candidate, false);
        }
        self.advance_slot_repair(row, column);
    }

    /// A `FindSlot` message for `origin`'s slot `(row, column)` reached its destination here.
    pub(crate) fn on_find_slot(&mut self, origin: Id, row: u8, column: u8) {
        let base = self.config.base;
        let wanted = Some((row as usize, column as usize));
        let own = self.id();
        let found = self.state.leaf_set.ids().chain([own]).find(|&id| base.slot(origin, id) == wanted);
        self.transmit(origin, Message::EntryReply { entries: vec![(row, column, found)] });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A joined node with id 0 whose row 0 holds a node in every column but 0 (its own)
    /// and `missing`.
    fn node_missing(missing: u8) -> Overlay<u8> {
        let mut overlay: Overlay<u8> = Overlay::new(Id::from_u128(0), Config::with_seed(3));
        overlay.phase = Phase::Joined;
        for column in (1..16u128).filter(|&c| c != u128::from(missing)) {
            overlay.learn(in_column(column as u8));
        }
        overlay
    }

    /// [`node_missing`] `missing`, with a node of that column in its neighborhood set.
    fn missing_with_near_neighbor(missing: u8) -> (Overlay<u8>, Id) {
        let mut overlay = node_missing(missing);
        let near = Id::from_u128(u128::from(missing) << 124 | 9);
        overlay
            .state
            .neighborhood
            .consider(near, crate::time::Rtt::from_duration(core::time::Duration::from_millis(4)));
        (overlay, near)
    }

    fn in_column(column: u8) -> Id {
        Id::from_u128(u128::from(column) << 124 | 1)
    }

    fn sent(overlay: &mut Overlay<u8>) -> Vec<(Id, Message<u8>)> {
        overlay.outbox.drain(..).map(|t| (t.to, t.message)).collect()
    }

    fn entry_requests(sent: &[(Id, Message<u8>)]) -> Vec<(Id, Vec<(u8, u8)>)> {
        sent.iter()
            .filter_map(|(to, m)| match m {
                Message::EntryRequest { slots } => Some((*to, slots.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn slots_failed_together_cost_one_request() {
        let mut overlay = node_missing(5);
        overlay.state.remove(in_column(6));
        overlay.start_slot_repair(0, 5);
        overlay.start_slot_repair(0, 6);
        overlay.send_slot_requests();
        let requests = entry_requests(&sent(&mut overlay));
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(requests[0].1.len(), 2, "both slots in one request");
    }

    #[test]
    fn a_repair_asked_peers_that_lack_the_slot_ends_with_a_slot_search() {
        let mut overlay = node_missing(5);
        overlay.start_slot_repair(0, 5);
        let mut asked = Vec::new();
        for _ in 0..MAX_ASKED {
            overlay.send_slot_requests();
            let requests = entry_requests(&sent(&mut overlay));
            assert_eq!(requests.len(), 1, "one peer at a time");
            let peer = requests[0].0;
            assert!(!asked.contains(&peer), "never the same peer twice");
            asked.push(peer);
            overlay.on_entry_reply(peer, vec![(0, 5, None)]);
        }
        overlay.send_slot_requests();
        let out = sent(&mut overlay);
        assert!(entry_requests(&out).is_empty());
        assert!(
            out.iter().any(|(_, m)| matches!(m, Message::Route(r) if matches!(r.body, RoutedBody::FindSlot { row: 0, column: 5, .. }))),
            "the repair routes a slot search: {out:?}"
        );
        assert!(overlay.repairs.is_empty(), "and ends");
    }

    /// A node repairing slot (0, 5) that has asked one peer (`ours`) and is then asked
    /// about the same slot by another (`asker`).
    fn asked_while_repairing() -> (Overlay<u8>, Id, Id) {
        let mut overlay = node_missing(5);
        overlay.start_slot_repair(0, 5);
        overlay.send_slot_requests();
        let ours = entry_requests(&sent(&mut overlay))[0].0;
        let asker = (1..16).map(in_column).find(|&p| p != ours && p != in_column(5)).unwrap_or(ours);
        overlay.on_entry_request(asker, vec![(0, 5)]);
        (overlay, ours, asker)
    }

    #[test]
    fn a_peer_repairing_the_same_slot_answers_with_what_its_repair_found() {
        let (mut overlay, ours, asker) = asked_while_repairing();
        overlay.send_slot_requests();
        assert!(!sent(&mut overlay).iter().any(|(_, m)| matches!(m, Message::EntryReply { .. })), "the answer waits");
        let found = Id::from_u128(5 << 124 | 7);
        overlay.on_entry_reply(ours, vec![(0, 5, Some(found))]);
        overlay.send_slot_requests();
        let replies: Vec<Message<u8>> =
            sent(&mut overlay).into_iter().filter(|(to, _)| *to == asker).map(|(_, m)| m).collect();
        assert!(replies.contains(&Message::EntryReply { entries: vec![(0, 5, Some(found))] }), "{replies:?}");
    }

    #[test]
    fn a_deferred_answer_is_nothing_once_its_time_is_up() {
        let (mut overlay, _, asker) = asked_while_repairing();
        let due = overlay.next_deferred_reply();
        assert_eq!(due, Some(overlay.now + overlay.config.probe_timeout / 2));
        overlay.now = overlay.now + overlay.config.probe_timeout / 2;
        overlay.send_slot_requests();
        let out = sent(&mut overlay);
        assert!(out.contains(&(asker, Message::EntryReply { entries: vec![(0, 5, None)] })), "{out:?}");
        assert!(overlay.deferred.is_empty());
    }

    #[test]
    fn a_slot_is_filled_from_the_neighborhood_set_without_a_message() {
        let (mut overlay, near) = missing_with_near_neighbor(5);
        overlay.start_slot_repair(0, 5);
        assert_eq!(overlay.state.table.get(0, 5).map(|e| e.id), Some(near));
        assert!(overlay.repairs.is_empty());
        overlay.send_slot_requests();
        assert!(entry_requests(&sent(&mut overlay)).is_empty());
    }

    #[test]
    fn a_peer_lacking_the_slot_answers_from_its_neighborhood_set() {
        let (mut overlay, near) = missing_with_near_neighbor(5);
        let asker = in_column(3);
        overlay.on_entry_request(asker, vec![(0, 5)]);
        let out = sent(&mut overlay);
        assert!(out.contains(&(asker, Message::EntryReply { entries: vec![(0, 5, Some(near))] })), "{out:?}");
    }
}
