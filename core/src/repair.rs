//! Routing table repair: refilling a slot whose node failed.
//!
//! Pastry section 2.4: "To repair a failed routing table entry R[l][d], a node contacts first
//! the node referred to by another entry R[l][i], i != d, of the same row, and asks for that
//! node's entry for R[l][d]. In the event that none of the entries in row l have a pointer to
//! a live node with the appropriate prefix, the node next contacts an entry R[l+1][i], i != d,
//! thereby casting a wider net." Failing that we route a `FindSlot` message to a key in the
//! slot's range; the node that receives it answers with a node from its own state that fits.
//!
//! Each repair is a small state machine fed with answers and failures and asked for its next
//! step (`Overlay::advance_slot_repair`).

use crate::id::Id;
use crate::overlay::{Overlay, Phase, Waiting};
use crate::route::Hop;
use crate::wire::{Message, RoutedBody};

/// Most peers asked about one slot before the repair routes a `FindSlot` message.
const MAX_ASKED: usize = 3;
/// Most slot repairs in progress at once.
const MAX_REPAIRS: usize = 64;

/// The repair of one routing table slot.
#[derive(Clone, Debug)]
pub(crate) struct SlotRepair {
    row: u8,
    column: u8,
    asked: Vec<Id>,
}

impl<M> Overlay<M> {
    /// Slot `(row, column)` lost its node: start repairing it.
    pub(crate) fn start_slot_repair(&mut self, row: u8, column: u8) {
        if !self.config.table_repair || self.phase != Phase::Joined || self.repairs.len() >= MAX_REPAIRS {
            return;
        }
        if self.repairs.iter().any(|r| (r.row, r.column) == (row, column)) {
            return;
        }
        self.repairs.push(SlotRepair { row, column, asked: Vec::new() });
        self.advance_slot_repair(row, column);
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

    /// The last step of a repair gave nothing: take the next, or give up.
    pub(crate) fn advance_slot_repair(&mut self, row: u8, column: u8) {
        let Some(index) = self.repairs.iter().position(|r| (r.row, r.column) == (row, column)) else {
            return;
        };
        if self.state.table.get(row as usize, column as usize).is_some() {
            self.repairs.swap_remove(index);
            return;
        }
        let asked = std::mem::take(&mut self.repairs[index].asked);
        let next =
            if asked.len() < MAX_ASKED { self.repair_contact(row as usize, column as usize, &asked) } else { None };
        self.repairs[index].asked = asked;
        match next {
            Some(peer) => {
                self.repairs[index].asked.push(peer);
                self.wait_for(peer, Waiting::Entry(row, column));
                self.transmit(peer, Message::EntryRequest { row, column });
            }
            None => {
                // Last step: route towards the slot's range; any answer is taken as it comes.
                self.repairs.swap_remove(index);
                self.vain.push(((row, column), self.now));
                let rest = u128::from(self.random()) << 64 | u128::from(self.random());
                let key = self.config.base.key_in_slot(self.id(), row as usize, column, rest);
                if let Hop::Forward(next) = self.state.next_hop(key, None) {
                    let body = RoutedBody::FindSlot { origin: self.id(), row, column };
                    self.forward(next, key, (0, 0), body);
                }
            }
        }
    }

    /// A node to ask about slot `(row, column)`: one of the same row first, then of the later
    /// rows, chosen at random among them, never one asked before.
    fn repair_contact(&mut self, row: usize, column: usize, asked: &[Id]) -> Option<Id> {
        let rows = self.state.table.row_count();
        for r in row..rows {
            let candidates: Vec<Id> = self
                .state
                .table
                .row(r)
                .filter(|&(c, e)| (r, c) != (row, column) && !asked.contains(&e.id))
                .map(|(_, e)| e.id)
                .collect();
            if !candidates.is_empty() {
                let pick = (self.random() % candidates.len() as u64) as usize;
                return Some(candidates[pick]);
            }
        }
        None
    }

    /// A peer asks for our entry at `(row, column)`.
    pub(crate) fn on_entry_request(&mut self, from: Id, row: u8, column: u8) {
        if self.phase != Phase::Joined {
            return;
        }
        self.heard_from(from);
        let id = self.state.table.get(row as usize, column as usize).map(|e| e.id).filter(|&id| id != from);
        self.transmit(from, Message::EntryReply { row, column, id });
    }

    /// An answer about slot `(row, column)` arrived.
    pub(crate) fn on_entry_reply(&mut self, from: Id, row: u8, column: u8, id: Option<Id>) {
        self.answered(from, |w| w == Waiting::Entry(row, column));
        if self.phase != Phase::Joined {
            return;
        }
        self.heard_from(from);
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
        self.transmit(origin, Message::EntryReply { row, column, id: found });
    }
}
