//! Transfer connections: the connections a browser node would open only to carry an
//! application's direct messages (PAST's content, answers and receipts), because neither
//! end holds the other in its leaf set, routing table or neighborhood set.
//!
//! The overlay's own connections are those tables; a direct message between two nodes
//! that do not hold each other needs a connection of its own, which costs each end one
//! RTCPeerConnection from its lifetime budget (`link/src/manager`). The manager closes
//! such a connection once it has carried nothing for `transfer_idle` (3 s), so this counts
//! a new connection for a pair whenever its last direct message is at least that old. It
//! leaves out what the manager adds (a connection that fails and is opened again, one to
//! a peer that is not yet known to be dead), and the simulator's operations come closer
//! together than a user's, so that more of them find their pair's connection still open.

use core::time::Duration;

use past_core::Time;
use rustc_hash::FxHashMap;

/// The connections opened between pairs of nodes that exchanged direct messages while
/// neither held the other, and how many of them each node was an end of.
#[derive(Clone, Debug)]
pub struct TransferCount {
    /// How long an unused connection stays open.
    idle: Duration,
    /// When each pair last exchanged a direct message.
    last: FxHashMap<(u32, u32), Time>,
    per_node: Vec<u32>,
    connections: usize,
    /// The most connections a node may open, if bounded.
    budget: Option<u32>,
    /// Nodes the budget does not bound (native storage peers), by index.
    unbounded: Vec<bool>,
    /// Connections not opened because an end had used its budget.
    refused: u64,
}

impl TransferCount {
    /// Counts none yet; a connection unused for `idle` closes; a node may open at most
    /// `budget` connections, if bounded.
    pub fn new(idle: Duration, budget: Option<u32>) -> Self {
        let (last, per_node, unbounded) = (FxHashMap::default(), Vec::new(), Vec::new());
        TransferCount { idle, last, per_node, connections: 0, budget, unbounded, refused: 0 }
    }

    /// Exempts `node` from the budget: a native storage peer, which no browser limits
    /// (`ManagerConfig::native`).
    pub fn exempt(&mut self, node: u32) {
        let needed = node as usize + 1;
        if self.unbounded.len() < needed {
            self.unbounded.resize(needed, false);
        }
        self.unbounded[node as usize] = true;
    }

    /// Whether `node` has used its budget.
    fn spent(&self, node: u32) -> bool {
        let exempt = self.unbounded.get(node as usize).copied().unwrap_or(false);
        !exempt && self.budget.is_some_and(|budget| self.of(node) >= budget)
    }

    /// Records a direct message between nodes `a` and `b` (by index) that neither holds,
    /// sent at `now`: unless the pair's connection is still open, it opens one, which counts
    /// for each end. Returns false, opening nothing, when that connection is needed and an
    /// end has used its budget.
    pub fn record(&mut self, a: u32, b: u32, now: Time) -> bool {
        let pair = (a.min(b), a.max(b));
        if let Some(last) = self.last.get_mut(&pair)
            && now.since(*last) < self.idle
        {
            *last = now;
            return true;
        }
        if self.spent(a) || self.spent(b) {
            self.refused += 1;
            return false;
        }
        self.last.insert(pair, now);
        self.connections += 1;
        let needed = pair.1 as usize + 1;
        if self.per_node.len() < needed {
            self.per_node.resize(needed, 0);
        }
        self.per_node[a as usize] += 1;
        self.per_node[b as usize] += 1;
        true
    }

    /// Connections not opened because an end had used its budget.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// How many connections node `node` was an end of.
    pub fn of(&self, node: u32) -> u32 {
        self.per_node.get(node as usize).copied().unwrap_or(0)
    }

    /// The connections counted, and how they spread over `nodes`.
    pub fn summary(&self, nodes: impl IntoIterator<Item = u32>) -> Summary {
        let mut counts: Vec<u32> = nodes.into_iter().map(|n| self.of(n)).collect();
        counts.sort_unstable();
        let (connections, pairs) = (self.connections, self.last.len());
        let Some(&max) = counts.last() else {
            return Summary { connections, pairs, ..Summary::default() };
        };
        let sum: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        let p99 = counts[(counts.len() * 99).div_ceil(100) - 1];
        Summary { connections, pairs, mean: sum as f64 / counts.len() as f64, p99, max }
    }
}

/// The connections counted, and how many of them each node was an end of, over a set of
/// nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Connections opened.
    pub connections: usize,
    /// Distinct pairs of nodes among them.
    pub pairs: usize,
    /// The mean per node.
    pub mean: f64,
    /// The 99th percentile: 99 % of the nodes were an end of at most this many.
    pub p99: u32,
    /// The most any node was an end of.
    pub max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(3);

    fn at(millis: u64) -> Time {
        Time::ZERO + Duration::from_millis(millis)
    }

    #[test]
    fn a_pair_in_use_shares_one_connection_and_opens_another_once_it_closed() {
        let mut count = TransferCount::new(IDLE, None);
        count.record(3, 7, at(0));
        count.record(7, 3, at(2_999));
        count.record(3, 7, at(5_000));
        count.record(3, 7, at(8_000));
        count.record(3, 1, at(8_000));
        let summary = count.summary([1, 3, 7]);
        assert_eq!((summary.connections, summary.pairs), (3, 2));
        assert_eq!((count.of(3), count.of(7), count.of(1), count.of(0), count.of(99)), (3, 2, 1, 0, 0));
    }

    #[test]
    fn a_node_that_used_its_budget_opens_no_more_but_keeps_those_open() {
        let mut count = TransferCount::new(IDLE, Some(2));
        assert!(count.record(0, 1, at(0)));
        assert!(count.record(2, 0, at(0)));
        assert!(!count.record(0, 3, at(1_000)), "node 0 has used its 2");
        assert!(count.record(1, 0, at(2_000)), "its connection to node 1 is still open");
        assert!(count.record(3, 4, at(2_000)));
        assert!(!count.record(0, 1, at(6_000)), "closed after 3 s unused: a new one");
        assert_eq!((count.of(0), count.of(3), count.refused()), (2, 1, 2));
        assert_eq!(count.summary(0..5).connections, 3);
    }

    #[test]
    fn an_exempt_node_opens_past_the_budget_but_its_peers_do_not() {
        let mut count = TransferCount::new(IDLE, Some(1));
        count.exempt(0);
        assert!(count.record(0, 1, at(0)));
        assert!(count.record(0, 2, at(0)), "node 0 is not bounded");
        assert!(!count.record(0, 1, at(5_000)), "node 1 has used its 1");
        assert_eq!((count.of(0), count.refused()), (2, 1));
    }

    #[test]
    fn the_summary_spreads_over_the_nodes_asked_about_including_those_with_none() {
        let mut count = TransferCount::new(IDLE, None);
        for b in 1..=4 {
            count.record(0, b, at(0));
        }
        let summary = count.summary(0..200);
        assert_eq!((summary.connections, summary.max, summary.p99), (4, 4, 1));
        assert!((summary.mean - 8.0 / 200.0).abs() < 1e-12);
        assert_eq!(count.summary(5..10), Summary { connections: 4, pairs: 4, mean: 0.0, p99: 0, max: 0 });
        assert_eq!(count.summary([]), Summary { connections: 4, pairs: 4, ..Summary::default() });
    }
}
