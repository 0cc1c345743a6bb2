//! Issue 14, the paced budget: over eight hours of a steady stream of new leaves and of
//! routing table entries whose nodes leave, the leaf set is always connected, connections
//! other than the leaf set's are created only within the pace, and the routing table holds
//! fewer entries instead of the budget running out before the target time (the manager driven
//! alone, with fake tables that behave like the core's: an entry is taken, its peer probed,
//! and dropped again when the probe cannot be sent).

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{Bare, Net};
use past_core::wire::{Message, Probe};
use past_core::{Id, Time};
use past_link::manager::Pace;
use past_link::{ManagerConfig, PeerEvent};

const BUDGET: u32 = 120;
const AT_START: u32 = 40;
const TARGET: Duration = Duration::from_secs(8 * 3600);
const LEAVES: usize = 16;
/// Routing table entries the hub wants filled.
const SLOTS: usize = 20;
/// One leaf is replaced, and each entry's node leaves with probability 1/6, per step.
const STEP: Duration = Duration::from_secs(600);
const STEPS: u32 = 48;
const NODES: usize = 1 + LEAVES + STEPS as usize + 200;

fn probe() -> Message<past_link::AppMessage> {
    Message::Probe(Probe { ask: Some(1), answer: None })
}

/// The hub (node 0), its leaves and table slots, and the nodes not used yet.
struct Churn {
    net: Net<Bare>,
    leaves: Vec<usize>,
    /// Each slot's entry, or the candidate it waits to connect to.
    slots: Vec<(Option<usize>, Option<usize>)>,
    fresh: std::ops::Range<usize>,
    ever_leaves: BTreeSet<Id>,
    rng: u64,
    refused: usize,
}

impl Churn {
    fn new() -> Self {
        let pace = Pace { at_start: AT_START, target: TARGET };
        let config = ManagerConfig { connection_budget: BUDGET, pace: Some(pace), ..ManagerConfig::default() };
        let mut net = Net::bare(NODES, 14, &config);
        for i in 0..NODES {
            net.register(i);
            net.with(i, |b, _| b.manager.set_server(true));
        }
        // The hub knows every node (as the core does from join replies and gossip).
        let ids = net.ids();
        net.with(0, |b, now| b.manager.note_outsiders(&ids[1..], now));
        Churn {
            net,
            leaves: Vec::new(),
            slots: vec![(None, None); SLOTS],
            fresh: 1..NODES,
            ever_leaves: BTreeSet::new(),
            rng: 7,
            refused: 0,
        }
    }

    fn fresh(&mut self) -> usize {
        self.fresh.next().expect("enough nodes")
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.rng = self.rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.rng >> 33).is_multiple_of(one_in)
    }

    /// The hub's core takes `i` in and probes it.
    fn take(&mut self, i: usize, leaf: bool) {
        let id = self.net.id(i);
        self.net.with(0, |b, now| {
            b.tables.keeps.insert(id);
            if leaf {
                b.tables.leaves.insert(id);
            }
            b.manager.send(id, probe(), &b.tables, now);
        });
    }

    /// Node `i` leaves (it closes its connections); the hub drops it from its tables.
    fn leave(&mut self, i: usize) {
        let id = self.net.id(i);
        self.net.with(i, |b, now| b.manager.close_all(now));
        self.net.with(0, |b, _| {
            b.tables.keeps.remove(&id);
            b.tables.leaves.remove(&id);
        });
    }

    fn add_leaf(&mut self) {
        let i = self.fresh();
        self.ever_leaves.insert(self.net.id(i));
        self.leaves.push(i);
        self.take(i, true);
    }

    /// One step of churn: the oldest leaf is replaced, entries' nodes leave.
    fn churn(&mut self) {
        let oldest = self.leaves.remove(0);
        self.leave(oldest);
        self.add_leaf();
        for slot in 0..SLOTS {
            if let (Some(entry), _) = self.slots[slot]
                && self.chance(6)
            {
                self.leave(entry);
                self.slots[slot].0 = None;
            }
        }
    }

    /// The hub's core refills every empty slot (a table probe round); a candidate whose
    /// probe could not be sent is dropped from the table and tried again next round.
    fn refill(&mut self) {
        let mut tried = Vec::new();
        for slot in 0..SLOTS {
            if self.slots[slot].0.is_none() {
                let candidate = match self.slots[slot].1 {
                    Some(c) => c,
                    None => self.fresh(),
                };
                self.slots[slot].1 = Some(candidate);
                self.take(candidate, false);
                tried.push((slot, candidate));
            }
        }
        self.net.run_for(Duration::from_secs(5));
        for (slot, candidate) in tried {
            let id = self.net.id(candidate);
            if self.net.manager(0).is_open(id) {
                self.slots[slot] = (Some(candidate), None);
            } else {
                self.refused += 1;
                self.net.with(0, |b, _| b.tables.keeps.remove(&id));
            }
        }
    }

    fn entries(&self) -> usize {
        self.slots.iter().filter(|(entry, _)| entry.is_some()).count()
    }
}

/// Connections the pace allows `at` after the start, as the churn study defines it.
fn allowance(at: Time) -> f64 {
    let share = (at.as_micros() as f64 / TARGET.as_micros() as f64).min(1.0);
    f64::from(AT_START) + f64::from(BUDGET - AT_START) * share
}

#[test]
fn the_budget_lasts_the_target_the_leaf_set_stays_and_the_table_degrades() {
    let mut churn = Churn::new();
    for _ in 0..LEAVES {
        churn.add_leaf();
    }
    churn.refill();
    let mut entries = Vec::new();
    for step in 1..=STEPS {
        churn.churn();
        churn.refill();
        churn.net.run_until(Time::ZERO + STEP * step - Duration::from_secs(1));
        let (now, hub) = (churn.net.now, churn.net.manager(0));
        for &leaf in &churn.leaves {
            assert!(hub.is_open(churn.net.id(leaf)), "leaf {leaf} not connected at step {step}");
        }
        if now < Time::ZERO + TARGET - STEP * 3 {
            assert!(!hub.budget_exhausted(), "the budget ran out at step {step}");
        }
        entries.push(churn.entries());
    }
    // Every connection that was not a leaf's was created within the pace.
    let hub = &churn.net.nodes[0];
    for (created_before, (at, peer, _)) in hub.creates.iter().enumerate() {
        if !churn.ever_leaves.contains(peer) {
            assert!((created_before as f64) < allowance(*at), "connection {created_before} at {at:?} beyond the pace");
        }
    }
    assert!(hub.creates.len() <= BUDGET as usize);
    // The table degraded: it lost entries and refilled some, within the pace.
    let mean = entries.iter().sum::<usize>() as f64 / entries.len() as f64;
    assert!(churn.refused > 0, "no table candidate was ever refused");
    assert!((1.0..SLOTS as f64 / 2.0).contains(&mean), "mean table entries {mean}");
    // The reload is advised once the reserve is reached, not before.
    let advised = hub.events.iter().any(|(_, e)| *e == PeerEvent::ReloadAdvised);
    assert_eq!(advised, churn.net.manager(0).reload_advised());
    eprintln!(
        "created {} of {BUDGET}; table entries: mean {mean:.1} of {SLOTS}, last {:?}; candidates refused {}",
        hub.creates.len(),
        entries.last(),
        churn.refused
    );
}
