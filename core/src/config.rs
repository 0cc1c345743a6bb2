//! Parameters of a Pastry node.

use core::time::Duration;

use crate::id::DigitBase;

/// Parameters of a Pastry node. The defaults are the Pastry paper's (b = 4, l = 16, M = 32)
/// with timers suited to browser tabs on one network.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Digit size b.
    pub base: DigitBase,
    /// Leaf set size l (l/2 on each side).
    pub leaf_set_size: usize,
    /// Neighborhood set size M.
    pub neighborhood_size: usize,
    /// Seed of the node's random choices (nonces, which node to ask during repair). The
    /// driver draws it from its own randomness source; equal seeds give equal runs.
    pub rng_seed: u64,
    /// How long a probe or request may go unanswered before its peer counts as failed.
    pub probe_timeout: Duration,
    /// How often a node probes its leaf set (and pushes it to its two nearest leaves).
    /// `None` turns keep-alives off, as in a simulation of a static network.
    pub keepalive_interval: Option<Duration>,
    /// How often a node probes every routing table entry. `None` turns it off: failed
    /// entries are then found only when a message to them fails.
    pub table_probe_interval: Option<Duration>,
    /// How many nodes a new node asks for each of its dense routing table rows in the
    /// second phase of its join (Pastry section 2.5), closest first. Each costs a request
    /// and its answer, plus probes of the entries that may be closer than what we hold
    /// (each probe to a peer not yet connected costs the browser node a WebRTC connection).
    /// 0 turns the second phase off.
    pub refine_sources: usize,
    /// How often a node asks one entry of each dense routing table row, at random, for its
    /// row, and probes the entries that may be closer than its own (MSPastry's periodic
    /// routing table maintenance). `None` turns it off. Every entry asked is already in the
    /// table, so only the probed candidates may cost new connections.
    pub row_exchange_interval: Option<Duration>,
    /// Who measures proximity (round-trip times) to other nodes.
    pub proximity: Proximity,
    /// Whether failed routing table entries are replaced by asking other nodes.
    pub table_repair: bool,
    /// How long a joining node waits for the join reply before it tries again.
    pub join_timeout: Duration,
    /// A routed message that has taken this many hops is dropped (a loop guard).
    pub max_hops: u8,
    /// How long a failed node is kept out of the tables when others still mention it.
    pub failed_memory: Duration,
    /// The chance that a node forwards a retried message (attempt 1 and up) to its best
    /// next hop; otherwise it picks uniformly among the other known nodes that make progress
    /// (PAST's randomized routing, see [`RoutingState::random_step`]). 1.0 routes retries
    /// like first attempts.
    ///
    /// [`RoutingState::random_step`]: crate::RoutingState::random_step
    pub retry_best_hop_chance: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base: DigitBase::DEFAULT,
            leaf_set_size: 16,
            neighborhood_size: 32,
            rng_seed: 0,
            probe_timeout: Duration::from_secs(3),
            keepalive_interval: Some(Duration::from_secs(5)),
            table_probe_interval: Some(Duration::from_secs(60)),
            refine_sources: 3,
            row_exchange_interval: Some(Duration::from_secs(600)),
            proximity: Proximity::Probes,
            table_repair: true,
            join_timeout: Duration::from_secs(10),
            max_hops: 64,
            failed_memory: Duration::from_secs(60),
            retry_best_hop_chance: 0.25,
        }
    }
}

/// Who measures the round-trip times that rank candidates for the routing table and the
/// neighborhood set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proximity {
    /// The node measures with its own probes: a new pair of nodes exchanges three
    /// messages, and each learns the round-trip time.
    Probes,
    /// The driver measures (a transport knows the round trip of its connections; a
    /// simulator knows its latency model): the node asks through [`Node::poll_measure`]
    /// and is told through [`Node::handle_rtt`]. New nodes are then announced with one
    /// message instead of a three-way probe.
    ///
    /// [`Node::poll_measure`]: crate::Node::poll_measure
    /// [`Node::handle_rtt`]: crate::Node::handle_rtt
    Driver,
}

impl Config {
    /// The default configuration with a given random seed.
    pub fn with_seed(rng_seed: u64) -> Self {
        Config { rng_seed, ..Config::default() }
    }
}
