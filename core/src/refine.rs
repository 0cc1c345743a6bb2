//! Row exchange: improving the routing table's proximity by asking other nodes for rows.
//!
//! Pastry section 2.5 (the second phase of a join): the rows a new node gets along its join
//! route come from nodes progressively farther from it, so "the newly joined node X requests
//! the state from each of the nodes in its routing table", compares the candidates with what
//! it holds and keeps the closer ones. A node B of row r shares r digits with X, so B's row r
//! fits X's row r; when B is close to X, so are B's entries. We ask, one after the other,
//! the closest measured entries of each row ([`Config::refine_sources`] of them, the closest
//! not asked yet each time, so a closer node found by one answer is the next one asked), and
//! only for rows at least half full: in the sparse last rows a slot has one candidate or
//! none, and the join already found it.
//!
//! Each answer carries the sender's round-trip time to every entry; with our own time to the
//! sender, the triangle inequality bounds how close an entry can be, and only entries that
//! may beat the holder of their slot are probed (`Overlay::may_be_closer`).
//!
//! MSPastry (Castro et al., DSN 2004) keeps tables close as nodes come and go with the same
//! exchange run periodically: every [`Config::row_exchange_interval`] a node asks one entry
//! of each dense row, drawn at random, for that row.
//!
//! [`Config::refine_sources`]: crate::Config::refine_sources
//! [`Config::row_exchange_interval`]: crate::Config::row_exchange_interval

use crate::config::Proximity;
use crate::id::Id;
use crate::overlay::{Overlay, Phase, Waiting};
use crate::routing_table::Entry;
use crate::time::Rtt;
use crate::wire::Message;

/// The exchange of one row in progress.
#[derive(Clone, Debug)]
pub(crate) struct RowExchange {
    row: u8,
    /// Nodes asked so far (the last one possibly still to answer).
    asked: Vec<Id>,
    /// The node whose answer we wait for.
    awaiting: Option<Id>,
    /// How many nodes to ask in all.
    sources: usize,
    /// Whether to ask the closest entry not asked yet (join) or one at random (periodic).
    closest_first: bool,
}

impl<M> Overlay<M> {
    /// Rows worth refining: beyond the first (the join contact is close to us, and so is
    /// its row 0) and at least half full (so that their slots have several candidates).
    fn dense_rows(&self) -> Vec<u8> {
        let columns = self.config.base.columns();
        (1..self.state.table.row_count())
            .filter(|&r| self.state.table.row(r).count() * 2 >= columns)
            .map(|r| r as u8)
            .collect()
    }

    /// Plans the second phase of the join; each row starts once its entries are measured.
    pub(crate) fn plan_refinement(&mut self) {
        let sources = self.config.refine_sources;
        if sources == 0 {
            return;
        }
        for row in self.dense_rows() {
            self.start_exchange(row, sources, true);
            self.advance_exchange(row);
        }
    }

    /// A round of periodic row exchange: one entry of each dense row, at random.
    pub(crate) fn row_exchange_round(&mut self) {
        for row in self.dense_rows() {
            self.start_exchange(row, 1, false);
            self.advance_exchange(row);
        }
    }

    fn start_exchange(&mut self, row: u8, sources: usize, closest_first: bool) {
        if !self.exchanges.iter().any(|x| x.row == row) {
            self.exchanges.push(RowExchange { row, asked: Vec::new(), awaiting: None, sources, closest_first });
        }
    }

    /// `peer` was measured: the exchange of its row may go on.
    pub(crate) fn refine_with(&mut self, peer: Id) {
        if self.exchanges.is_empty() {
            return;
        }
        if let Some((row, _)) = self.state.table.slot_of(peer) {
            self.advance_exchange(row as u8);
        }
    }

    /// Asks the next node for row `row`, once every entry of the row is measured and no
    /// candidate for it is being probed (so that the closest is known and the candidates of
    /// the last answer were compared), or ends the exchange.
    fn advance_exchange(&mut self, row: u8) {
        let Some(index) = self.exchanges.iter().position(|x| x.row == row) else { return };
        let exchange = &self.exchanges[index];
        if exchange.awaiting.is_some() || (exchange.closest_first && self.measure_row(row)) {
            return;
        }
        let exchange = &self.exchanges[index];
        let entries = self.state.table.row(row as usize).map(|(_, e)| e);
        let fresh: Vec<Entry> = entries.filter(|e| !exchange.asked.contains(&e.id)).collect();
        let next = if exchange.asked.len() >= exchange.sources {
            None
        } else if exchange.closest_first {
            fresh.iter().filter(|e| e.rtt.is_known()).min_by_key(|e| (e.rtt, e.id)).map(|e| e.id)
        } else {
            let pick = (!fresh.is_empty()).then(|| (self.random() % fresh.len() as u64) as usize);
            pick.map(|i| fresh[i].id)
        };
        match next {
            Some(peer) => {
                let exchange = &mut self.exchanges[index];
                exchange.asked.push(peer);
                exchange.awaiting = Some(peer);
                self.wait_for(peer, Waiting::Row(row));
                self.transmit(peer, Message::RowRequest { row });
            }
            None => {
                self.exchanges.swap_remove(index);
            }
        }
    }

    /// Gets the unmeasured entries of row `row` measured; returns whether the row waits for
    /// measurements (an entry unmeasured, or a candidate for it being probed). A node that
    /// took an empty slot by contacting us (a request, not a probe) is not measured otherwise
    /// until the next table probe round, and the exchange waits for it. With the driver
    /// measuring, the request is out already. Called after every measurement while the
    /// exchange lasts, so it collects nothing.
    fn measure_row(&mut self, row: u8) -> bool {
        let mut unmeasured = false;
        for column in 0..self.config.base.columns() {
            if let Some(entry) = self.state.table.get(row as usize, column)
                && !entry.rtt.is_known()
            {
                unmeasured = true;
                if self.config.proximity == Proximity::Probes {
                    self.probe(entry.id);
                }
            }
        }
        unmeasured || self.probing_row(row)
    }

    /// Whether a probe is out to a candidate for row `row`.
    fn probing_row(&self, row: u8) -> bool {
        self.pending.iter().any(|p| {
            matches!(p.waiting, Waiting::Probe(_))
                && self.state.table.slot_of(p.peer).is_some_and(|(r, _)| r == row as usize)
        })
    }

    /// `peer` failed or left: exchanges waiting on it go on without it.
    pub(crate) fn exchange_lost(&mut self, peer: Id) {
        let rows: Vec<u8> = self.exchanges.iter().map(|x| x.row).collect();
        for exchange in &mut self.exchanges {
            if exchange.awaiting == Some(peer) {
                exchange.awaiting = None;
            }
        }
        for row in rows {
            self.advance_exchange(row);
        }
    }

    /// A peer asks for one of our routing table rows.
    pub(crate) fn on_row_request(&mut self, from: Id, row: u8) {
        if self.phase == Phase::Joined {
            self.heard_from(from);
            let entries = self.state.table.row(row as usize).map(|(_, e)| e).filter(|e| e.id != from).collect();
            self.transmit(from, Message::RowReply { row, entries });
        }
    }

    /// A row arrived: probe the candidates that may be closer than the holders of their
    /// slots, then go on with the exchange.
    pub(crate) fn on_row_reply(&mut self, from: Id, row: u8, entries: Vec<Entry>) {
        let asked = self.answered(from, |w| w == Waiting::Row(row)).is_some();
        if self.phase != Phase::Joined {
            return;
        }
        self.heard_from(from);
        let via = self.known_rtt(from);
        for entry in entries.into_iter().take(self.config.base.columns()) {
            let id = entry.id;
            let new = id != self.id() && !self.recently_failed(id) && !self.state.table.contains(id);
            if new && self.may_be_closer(entry, via) {
                self.learn(id);
                self.introduce(id);
            }
        }
        if asked && let Some(exchange) = self.exchanges.iter_mut().find(|x| x.row == row && x.awaiting == Some(from)) {
            exchange.awaiting = None;
            self.advance_exchange(row);
        }
    }

    /// Whether `entry`, at `entry.rtt` from a node at `via` from us, may be closer than the
    /// holder of its slot: by the triangle inequality it is at least `entry.rtt - via` away.
    fn may_be_closer(&self, entry: Entry, via: Rtt) -> bool {
        let Some((row, column)) = self.state.table.slot_of(entry.id) else { return false };
        let Some(holder) = self.state.table.get(row, column) else { return true };
        match (entry.rtt.micros(), via.micros(), holder.rtt.micros()) {
            (Some(there), Some(here), Some(held)) => there.saturating_sub(here) < held,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// An id whose first four hex digits are `prefix`.
    fn id(prefix: u128) -> Id {
        Id::from_u128(prefix << 112 | 1)
    }

    fn rtt(micros: u32) -> Rtt {
        Rtt::from_micros(micros)
    }

    /// A joined node 0x0000… with row 1 holding columns 1 to 8 at 1 ms, 2 ms, … 8 ms.
    fn joined(sources: usize) -> Overlay<u8> {
        let mut config = Config::with_seed(7);
        config.refine_sources = sources;
        let mut overlay = Overlay::new(id(0), config);
        overlay.phase = Phase::Joined;
        for column in 1..=8u32 {
            overlay.state.table.consider(id(u128::from(column) << 8), rtt(column * 1000));
        }
        overlay
    }

    /// `peer` answers our probe at `micros`.
    fn answer_probe(overlay: &mut Overlay<u8>, peer: Id, micros: u32) {
        assert!(overlay.answered(peer, |w| matches!(w, Waiting::Probe(_))).is_some(), "{peer:?} was probed");
        overlay.measured(peer, rtt(micros));
    }

    fn sent(overlay: &mut Overlay<u8>) -> Vec<(Id, Message<u8>)> {
        overlay.outbox.drain(..).map(|t| (t.to, t.message)).collect()
    }

    #[test]
    fn asks_the_closest_entries_one_after_the_other_and_probes_only_what_may_be_closer() {
        let mut overlay = joined(2);
        overlay.plan_refinement();
        assert_eq!(sent(&mut overlay), vec![(id(0x0100), Message::RowRequest { row: 1 })]);

        let (closer, far, new) = (id(0x0210), id(0x0510), id(0x0910));
        let entries = vec![
            Entry { id: closer, rtt: rtt(500) }, // at most 1.5 ms from us: may beat 2 ms
            Entry { id: far, rtt: rtt(20_000) }, // at least 19 ms from us: cannot beat 5 ms
            Entry { id: new, rtt: rtt(30_000) }, // an empty slot: always worth a probe
        ];
        overlay.on_row_reply(id(0x0100), 1, entries);
        let probed: Vec<Id> =
            sent(&mut overlay).into_iter().filter(|(_, m)| matches!(m, Message::Probe(_))).map(|(to, _)| to).collect();
        assert_eq!(probed, vec![closer, new]);

        // The next request waits until both candidates are measured, then goes to the
        // closest entry not asked yet: the closer candidate, measured at 1.2 ms.
        answer_probe(&mut overlay, new, 25_000);
        assert!(sent(&mut overlay).iter().all(|(_, m)| !matches!(m, Message::RowRequest { .. })));
        answer_probe(&mut overlay, closer, 1_200);
        let requests: Vec<(Id, Message<u8>)> =
            sent(&mut overlay).into_iter().filter(|(_, m)| matches!(m, Message::RowRequest { .. })).collect();
        assert_eq!(requests, vec![(closer, Message::RowRequest { row: 1 })]);

        // Two sources asked: the exchange ends with the second answer.
        overlay.on_row_reply(closer, 1, Vec::new());
        assert!(overlay.exchanges.is_empty());
        assert!(sent(&mut overlay).iter().all(|(_, m)| !matches!(m, Message::RowRequest { .. })));
    }

    #[test]
    fn an_unmeasured_entry_is_probed_before_the_exchange_starts() {
        let mut overlay = joined(1);
        let unmeasured = id(0x0910);
        overlay.state.table.consider(unmeasured, Rtt::UNKNOWN);
        overlay.plan_refinement();
        let probe_only: Vec<Id> = sent(&mut overlay).into_iter().map(|(to, _)| to).collect();
        assert_eq!(probe_only, vec![unmeasured]);
        answer_probe(&mut overlay, unmeasured, 500);
        let requests: Vec<(Id, Message<u8>)> =
            sent(&mut overlay).into_iter().filter(|(_, m)| matches!(m, Message::RowRequest { .. })).collect();
        assert_eq!(requests, vec![(unmeasured, Message::RowRequest { row: 1 })]);
    }

    #[test]
    fn a_source_that_fails_is_replaced_by_the_next_closest() {
        let mut overlay = joined(2);
        overlay.plan_refinement();
        sent(&mut overlay);
        overlay.node_failed(id(0x0100), None);
        let requests: Vec<(Id, Message<u8>)> =
            sent(&mut overlay).into_iter().filter(|(_, m)| matches!(m, Message::RowRequest { .. })).collect();
        assert_eq!(requests, vec![(id(0x0200), Message::RowRequest { row: 1 })]);
    }

    #[test]
    fn a_periodic_round_asks_one_entry_of_each_dense_row() {
        let mut overlay = joined(0);
        overlay.row_exchange_round();
        let requests: Vec<(Id, Message<u8>)> = sent(&mut overlay);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].1, Message::RowRequest { row: 1 });
        overlay.on_row_reply(requests[0].0, 1, Vec::new());
        assert!(overlay.exchanges.is_empty());
    }
}
