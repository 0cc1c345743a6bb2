//! Browser churn at internet scale: how many peer connections a long-lived tab spends to
//! keep its leaf set and routing table, and how long it stays within Chromium's lifetime
//! limit of 500 `RTCPeerConnection`s (issue 14).
//!
//! This is a **model**, not the Pastry core: an event-driven simulation of node ids and
//! session lifetimes only, so that 100,000 nodes churn for 8 hours in seconds.
//!
//! - **Network**: N live nodes with random 128-bit ids. Session times are log-normal
//!   ([`Sessions`]); arrivals are a Poisson process of rate N / mean session, so N stays
//!   steady; the run starts in the steady state (each initial node has the residual
//!   lifetime of a node seen at a random moment). Every arrival is a new id.
//! - **Observed nodes** never leave. Each keeps (b = 4, l = 16, the core's defaults):
//!   - its leaf set: the 8 live ids on each side on the ring, always exact;
//!   - its routing table: entry (r, d) is some live id sharing r digits with it and having
//!     d as digit r + 1; an entry is filled when it is empty and a candidate arrives, and
//!     replaced by another live candidate when its node leaves. Proximity is not modelled:
//!     an entry is never swapped for a closer candidate (that would only cost more).
//!   - the peers that keep **it** in their tables: an arriving node picks one live member of
//!     each group for its entry, so it picks us with probability 1 / (group size); when a
//!     node leaves, the nodes that had it (expected: those sharing exactly r digits with
//!     it, divided by its group's size) each pick a new member of the group.
//! - A connection is counted when the node needs a peer it has no open connection with
//!   (one per peer while both stay up; a peer no longer needed is closed). What is left out:
//!   probes of candidates for proximity, join messages, signals relayed, PAST transfers,
//!   and failed attempts, so the counts are lower bounds for the real node.
//! - **Policies** ([`Policy`]) decide what the node connects to; every policy reloads the
//!   tab (same id, fresh budget, a new join) when the budget is spent.
//!
//! [`core_counts`] makes the same count on the real core's nodes in the simulator's network,
//! to check the model at small N (`docs/results-churn-scale.md`).

mod core_check;
mod observer;
mod population;

pub use core_check::core_counts;

use observer::Observer;
use past_link::manager::Pace;
use population::{Population, normal, uniform};
use rand_chacha::ChaCha8Rng;

/// Log-normal session times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sessions {
    /// Median session, minutes.
    pub median_minutes: f64,
    /// Standard deviation of the session's natural logarithm.
    pub sigma: f64,
}

impl Sessions {
    /// Mean session, minutes.
    pub fn mean_minutes(&self) -> f64 {
        self.median_minutes * (self.sigma * self.sigma / 2.0).exp()
    }

    fn session_ms(&self, rng: &mut ChaCha8Rng) -> f64 {
        self.median_minutes * 60_000.0 * (self.sigma * normal(rng)).exp()
    }

    /// The rest of a session seen at a random moment: the log-normal weighted by length is
    /// log-normal with its median times e^(sigma^2); the moment is uniform within it.
    fn residual_ms(&self, rng: &mut ChaCha8Rng) -> f64 {
        let biased = self.median_minutes * (self.sigma * self.sigma).exp();
        biased * 60_000.0 * (self.sigma * normal(rng)).exp() * uniform(rng)
    }
}

/// What a node connects to, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The peer manager as it was before issue 14 (`link/src/manager`): keep the leaf set
    /// and every table entry, answer every peer; above 64 open connections, idle ones of
    /// peers we do not keep close, so a peer that keeps us in its table reconnects at its
    /// next table probe (every 60 s); at the budget no new connection (modelled as an
    /// immediate reload). The manager now does what [`Policy::Paced`] says.
    Today,
    /// As today, but connections of peers that keep us in their tables are not evicted.
    KeepAll,
    /// Keep-all, and a table entry to fill goes to a peer already connected (a leaf, or a
    /// peer that keeps us in its table) when one is in the entry's group: the design's
    /// "among equal candidates prefer a peer already connected".
    Reuse,
    /// Reuse, with connections other than the leaf set (table entries, peers that want
    /// us in their tables) paced: allowed while the count since the last (re)join is below
    /// 100 + (budget - 100) x (time since the join / pace hours), as the peer manager decides
    /// (`past_link::manager::Pace::allows`, called here); empty entries are refilled each
    /// minute, row 0 first. The leaf set is always kept.
    Paced,
}

impl Policy {
    /// Every policy, in the order reported.
    pub const ALL: [Policy; 4] = [Policy::Today, Policy::KeepAll, Policy::Reuse, Policy::Paced];

    /// Whether table entries go to peers already connected first.
    fn reuses(self) -> bool {
        matches!(self, Policy::Reuse | Policy::Paced)
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Today => "today",
            Policy::KeepAll => "keep-all",
            Policy::Reuse => "reuse",
            Policy::Paced => "paced",
        }
    }
}

/// New connections, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// To a new leaf.
    pub leaf: f64,
    /// To a new routing table entry.
    pub table: f64,
    /// From a peer that put us in its routing table.
    pub incoming: f64,
    /// From such a peer again after we evicted it.
    pub reconnected: f64,
}

impl Counts {
    /// All of them.
    pub fn total(&self) -> f64 {
        self.leaf + self.table + self.incoming + self.reconnected
    }
}

/// One run's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Live nodes (steady).
    pub nodes: usize,
    /// Session times; `None`: nobody leaves or arrives.
    pub sessions: Option<Sessions>,
    /// Length of the run, hours.
    pub hours: f64,
    /// Observed nodes per policy.
    pub observers: usize,
    /// Peer connections a tab may create between reloads (the manager's default: 480).
    pub budget: u32,
    /// The paced policy's pace (the peer manager's; `Pace::over_hours` spreads it over other
    /// hours than 8).
    pub pace: Pace,
    /// Seed of the run.
    pub seed: u64,
}

/// What the observed nodes of one policy went through (means over the observers).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The policy.
    pub policy: Policy,
    /// New connections in each hour of the run.
    pub per_hour: Vec<Counts>,
    /// Reloads during the run.
    pub reloads: f64,
    /// When each observer's budget first ran out, hours (`None`: never).
    pub first_exhausted: Vec<Option<f64>>,
    /// Table entries kept, sampled each minute.
    pub entries_kept: f64,
    /// Table entries that could be kept (a live candidate exists), sampled each minute.
    pub entries_possible: f64,
    /// Extra hops on the first hop of a route from the node, for its missing entries.
    pub extra_hops: f64,
}

/// Runs a scenario: one network, observers of every policy in it.
pub fn run(scenario: &Scenario) -> Vec<Report> {
    let mut population = Population::new(scenario.nodes, scenario.sessions, scenario.seed);
    let ids: Vec<u128> = (0..scenario.observers).map(|_| population.random_id()).collect();
    for &id in &ids {
        population.add_permanent(id);
    }
    // Every policy's k-th observer has the same id and seed: the policies are compared on
    // the same nodes of the same network (the network does not depend on the observers).
    let policies = Policy::ALL.iter().flat_map(|&p| (0..scenario.observers).map(move |k| (p, k)));
    let mut observers: Vec<Observer> = policies
        .map(|(policy, k)| {
            let seed = scenario.seed.wrapping_mul(1000).wrapping_add(k as u64);
            Observer::join(ids[k], policy, scenario.budget, &scenario.pace, seed, &population)
        })
        .collect();
    let end = scenario.hours * 3_600_000.0;
    let mut tick = 60_000.0;
    while tick <= end {
        while let Some((at, change)) = population.next_change(tick) {
            for observer in &mut observers {
                observer.on_change(change, at, &population);
            }
        }
        for observer in &mut observers {
            observer.tick(tick, &population);
        }
        tick += 60_000.0;
    }
    let hours = scenario.hours.ceil() as usize;
    Policy::ALL.iter().zip(observers.chunks(scenario.observers.max(1))).map(|(&p, o)| report(p, o, hours)).collect()
}

fn report(policy: Policy, observers: &[Observer], hours: usize) -> Report {
    let n = observers.len().max(1) as f64;
    let mut per_hour = vec![Counts::default(); hours];
    for observer in observers {
        for (sum, counts) in per_hour.iter_mut().zip(&observer.per_hour) {
            sum.leaf += counts.leaf / n;
            sum.table += counts.table / n;
            sum.incoming += counts.incoming / n;
            sum.reconnected += counts.reconnected / n;
        }
    }
    let mean = |f: fn(&Observer) -> f64| observers.iter().map(f).sum::<f64>() / n;
    Report {
        policy,
        per_hour,
        reloads: mean(|o| f64::from(o.reloads)),
        first_exhausted: observers.iter().map(|o| o.first_exhausted).collect(),
        entries_kept: mean(|o| o.kept / f64::from(o.samples.max(1))),
        entries_possible: mean(|o| o.could / f64::from(o.samples.max(1))),
        extra_hops: mean(|o| o.extra_hops / f64::from(o.samples.max(1))),
    }
}
