//! Randomized routing against nodes that drop what they should forward (PAST, SOSP 2001,
//! section 2.3: "the choice among multiple nodes that make progress is randomized ... so
//! that repeated queries take different routes").
//!
//! A share of the nodes silently drops every routed message it should forward for others
//! ([`Network::set_dropper`](crate::network::Network::set_dropper)); otherwise they behave
//! normally: they answer lookups for the files they hold, start their own lookups and
//! answer direct messages. Readers look files up through the real core: a lookup that no one
//! answers within `request_timeout` is routed again, up to `attempts` routes. With
//! `best_hop_chance` 1.0 every retry takes the route of the first attempt; below 1.0 each
//! node on a retry's route takes its best hop with that chance and otherwise another hop
//! that makes progress.

use core::time::Duration;
use std::time::Instant;

use past_core::past::{FileId, PastConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::past::experiment::pastry_config;
use crate::past::workload::shuffle;
use crate::past::{Outcome, PastSim};

/// Size of every file inserted (one chunk).
const FILE_SIZE: u64 = 1024;

/// Lookups started together.
const BATCH: usize = 500;

/// Parameters of the experiment.
#[derive(Clone, Debug)]
pub struct DropParams {
    /// Nodes.
    pub nodes: usize,
    /// Leaf set size l.
    pub leaf_set: usize,
    /// Replicas per file.
    pub k: u8,
    /// Seed of the network, the droppers and the lookups.
    pub seed: u64,
    /// Files inserted before any node drops.
    pub files: usize,
    /// Lookups per share of droppers.
    pub lookups: usize,
    /// Shares of the nodes that drop (0.01 is 1 %); each set contains the smaller ones.
    pub shares: Vec<f64>,
    /// Routes a lookup may take (`PastConfig::route_attempts`).
    pub attempts: u8,
    /// Chance that a node forwards a retry to its best hop (`Config::retry_best_hop_chance`;
    /// 1.0: retries take the first attempt's route).
    pub best_hop_chance: f64,
}

/// The lookups with one share of droppers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropRow {
    /// Share of nodes dropping.
    pub share: f64,
    /// Nodes dropping.
    pub droppers: usize,
    /// Lookups made.
    pub lookups: usize,
    /// Lookups that returned the file's right content.
    pub found: usize,
    /// Mean Pastry hops of the lookups found, on the route that was answered.
    pub mean_hops: f64,
    /// Routed messages the droppers dropped.
    pub dropped: u64,
}

impl DropRow {
    /// Share of lookups that returned the file.
    pub fn success(&self) -> f64 {
        self.found as f64 / self.lookups.max(1) as f64
    }
}

/// The outcome of the experiment for one `best_hop_chance`.
#[derive(Clone, Debug)]
pub struct DropReport {
    /// The parameters.
    pub params: DropParams,
    /// Files inserted.
    pub files: usize,
    /// One row per share of droppers.
    pub rows: Vec<DropRow>,
    /// Wall time.
    pub wall: Duration,
}

/// Builds a network, inserts files while every node is honest, then for each share of
/// droppers looks files up from random nodes. The network, the files, the droppers and the
/// lookups depend on the seed only, so runs with different `best_hop_chance` compare the
/// same lookups.
pub fn dropping(params: &DropParams) -> DropReport {
    let started = Instant::now();
    let mut config = pastry_config(params.leaf_set);
    config.retry_best_hop_chance = params.best_hop_chance;
    let attempts = params.attempts;
    let mut sim = PastSim::build(
        config,
        params.nodes,
        params.seed,
        |_| 1 << 24,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.caching = false;
            config.audit_interval = None;
            config.route_attempts = attempts;
            config
        },
    );
    let files = insert_files(&mut sim, params);
    let mut order: Vec<u32> = sim.network.live_nodes();
    shuffle(&mut order, &mut ChaCha8Rng::seed_from_u64(params.seed ^ 0xd2_0bbe));
    let mut rows = Vec::new();
    for &share in &params.shares {
        let droppers = ((params.nodes as f64 * share).round() as usize).min(order.len());
        for &node in &order[..droppers] {
            sim.network.set_dropper(node, true);
        }
        let mut lookups = ChaCha8Rng::seed_from_u64(params.seed ^ share.to_bits());
        let dropped = sim.network.dropped();
        let (found, hops) = look_up(&mut sim, &files, params.lookups, &mut lookups);
        rows.push(DropRow {
            share,
            droppers,
            lookups: params.lookups,
            found,
            mean_hops: hops as f64 / found.max(1) as f64,
            dropped: sim.network.dropped() - dropped,
        });
        for &node in &order[..droppers] {
            sim.network.set_dropper(node, false);
        }
    }
    DropReport { params: params.clone(), files: files.len(), rows, wall: started.elapsed() }
}

/// Inserts `params.files` files of [`FILE_SIZE`] bytes from random nodes; returns those
/// inserted.
fn insert_files(sim: &mut PastSim, params: &DropParams) -> Vec<FileId> {
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0xf11e5);
    let mut files = Vec::new();
    for batch in (0..params.files).step_by(BATCH) {
        let mut ops = Vec::new();
        for _ in batch..(batch + BATCH).min(params.files) {
            let client = sim.random_live();
            if let Ok(op) = sim.insert(client, rng.next_u64(), FILE_SIZE, params.k, None) {
                ops.push((client, op));
            }
        }
        sim.run();
        for (client, op) in ops {
            if let Some(Outcome::Insert(Ok(inserted))) = sim.take(client, op) {
                files.push(inserted.certificate.body.file);
            }
        }
    }
    files
}

/// Makes `count` lookups of random files from random nodes, [`BATCH`] at a time; returns
/// how many returned the right content and their hops in all.
fn look_up(sim: &mut PastSim, files: &[FileId], count: usize, rng: &mut ChaCha8Rng) -> (usize, u64) {
    let nodes = sim.network.len() as u64;
    let (mut found, mut hops) = (0, 0u64);
    for batch in (0..count).step_by(BATCH) {
        let mut ops = Vec::new();
        for _ in batch..(batch + BATCH).min(count) {
            let reader = (rng.next_u64() % nodes) as u32;
            let file = files[(rng.next_u64() % files.len() as u64) as usize];
            ops.push((reader, sim.lookup(reader, file)));
        }
        sim.run();
        let mut waited = 0;
        while sim.running() > 0 && waited < 100 {
            sim.run_for(Duration::from_secs(5));
            waited += 1;
        }
        for (reader, op) in ops {
            if let Some(Outcome::Lookup(outcome)) = sim.take(reader, op)
                && let Ok(answer) = &outcome.result
                && outcome.content_ok
            {
                found += 1;
                hops += u64::from(answer.hops);
            }
        }
    }
    (found, hops)
}
