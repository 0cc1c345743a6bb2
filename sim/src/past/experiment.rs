//! The experiments of the PAST paper on the simulated network: storage utilization under
//! replica and file diversion, durability under failures (replica maintenance), and caching.

use core::time::Duration;
use std::time::Instant;

use past_core::Config;
use past_core::past::{Answers, FileId, PastConfig, SharedVerified};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::past::workload::{FileSizes, TruncatedNormal, Zipf, shuffle};
use crate::past::{Outcome, PastSim, closest_in};
use crate::transfers::{Summary, TransferCount};

/// The Pastry configuration of a PAST simulation: leaf set size l, no periodic maintenance
/// (the network is static unless an experiment turns it on).
pub fn pastry_config(leaf_set: usize) -> Config {
    let mut config = Config::default();
    config.leaf_set_size = leaf_set;
    config.keepalive_interval = None;
    config.table_probe_interval = None;
    config.row_exchange_interval = None;
    config
}

/// Which kinds of diversion are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diversion {
    /// Neither: a node takes any replica that fits (t_pri = 1), and an insert fails when one
    /// of the k closest has no room.
    None,
    /// Replica diversion (t_pri = 0.1, t_div = 0.05), no file diversion.
    Replica,
    /// Replica diversion and file diversion (up to 3 retries with a new salt).
    Both,
}

impl Diversion {
    /// A label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Diversion::None => "no diversion",
            Diversion::Replica => "replica diversion",
            Diversion::Both => "replica + file diversion",
        }
    }
}

/// Parameters of the storage experiment.
#[derive(Clone, Debug)]
pub struct StorageParams {
    /// Nodes.
    pub nodes: usize,
    /// Leaf set size l.
    pub leaf_set: usize,
    /// Replication factor.
    pub k: u8,
    /// Seed.
    pub seed: u64,
    /// Node capacities.
    pub capacity: TruncatedNormal,
    /// File sizes.
    pub sizes: FileSizes,
    /// Diversion policy.
    pub diversion: Diversion,
    /// Inserts started together.
    pub batch: usize,
    /// Stop after this many inserts at most.
    pub max_inserts: usize,
    /// Stop when half of this many last inserts failed (2,000 in the figures).
    pub window: usize,
    /// Whether the nodes share one set of verified certificates ([`SharedVerified`]), so
    /// that a certificate is verified once rather than by the root and each storing node:
    /// the same run, faster.
    pub share_verified: bool,
    /// Whether the nodes sign on a second thread, which also verifies signatures ahead of
    /// them into the shared set ([`CryptoThread`](crate::past::crypto_thread::CryptoThread)):
    /// answers to signing requests then come
    /// [`SIGN_DELAY`](crate::past::crypto_thread::SIGN_DELAY) later, so the run differs from
    /// one without, but not from run to run.
    pub crypto_thread: bool,
    /// Leaves a diverting primary asks for their free space first
    /// ([`PastConfig::space_query_fanout`]; `usize::MAX`: all at once).
    pub space_query_fanout: usize,
}

/// One measurement during the storage experiment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoragePoint {
    /// Inserts attempted so far.
    pub inserts: u64,
    /// Inserts failed so far.
    pub failed: u64,
    /// Global storage utilization.
    pub utilization: f64,
}

impl StoragePoint {
    /// Share of inserts failed so far.
    pub fn failed_share(&self) -> f64 {
        self.failed as f64 / self.inserts.max(1) as f64
    }
}

/// The outcome of the storage experiment.
#[derive(Clone, Debug)]
pub struct StorageReport {
    /// The policy.
    pub diversion: Diversion,
    /// Measurements after each batch.
    pub points: Vec<StoragePoint>,
    /// Total capacity.
    pub capacity: u64,
    /// Replicas diverted.
    pub diverted_replicas: u64,
    /// Leaves asked for their free space by primaries that diverted or tried to.
    pub space_queries: u64,
    /// Successful inserts that needed file diversion.
    pub file_diversions: u64,
    /// Bytes of the files inserted successfully.
    pub bytes_inserted: u64,
    /// Mean size of the files that failed.
    pub mean_failed_size: f64,
    /// Mean size of all files tried.
    pub mean_size: f64,
    /// Failed inserts by kind of error.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Wall time.
    pub wall: Duration,
}

/// The name of an error's variant.
fn kind(error: &past_core::past::InsertError) -> String {
    let debug = format!("{error:?}");
    debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("").to_string()
}

impl StorageReport {
    /// The first point at or above `utilization`.
    pub fn at(&self, utilization: f64) -> Option<StoragePoint> {
        self.points.iter().copied().find(|p| p.utilization >= utilization)
    }

    /// The last point.
    pub fn last(&self) -> Option<StoragePoint> {
        self.points.last().copied()
    }
}

/// Builds a network with capacities from `params` and inserts files until it is full: until
/// utilization reaches 99.8% or half of the last `window` inserts fail.
pub fn storage(params: &StorageParams) -> StorageReport {
    let started = Instant::now();
    let diversion = params.diversion;
    let capacity = params.capacity;
    let shared = params.share_verified.then(SharedVerified::new);
    let node_config = |key, capacity| {
        let mut config = PastConfig::new(key, capacity);
        config.caching = false;
        config.audit_interval = None;
        config.shared_verified = shared.clone();
        config.space_query_fanout = params.space_query_fanout;
        match diversion {
            Diversion::None => config.without_diversion(),
            Diversion::Replica => {
                config.file_diversion_retries = 0;
                config
            }
            Diversion::Both => config,
        }
    };
    let (config, draw) = (pastry_config(params.leaf_set), |rng: &mut ChaCha8Rng| capacity.sample(rng) as u64);
    let mut sim = if params.crypto_thread {
        PastSim::build_threaded(config, params.nodes, params.seed, shared.clone(), draw, node_config)
    } else {
        PastSim::build(config, params.nodes, params.seed, draw, node_config)
    };
    let total_capacity: u64 = sim.network.live_nodes().iter().map(|&n| sim.past(n).capacity()).sum();
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0xf11e);
    let (mut inserts, mut failed, mut file_diversions, mut bytes_inserted) = (0u64, 0u64, 0u64, 0u64);
    let (mut failed_bytes, mut all_bytes) = (0f64, 0f64);
    let mut points = Vec::new();
    let mut recent: Vec<bool> = Vec::new();
    let mut errors = std::collections::BTreeMap::new();
    while (inserts as usize) < params.max_inserts {
        let mut ops = Vec::with_capacity(params.batch);
        for _ in 0..params.batch {
            let client = sim.random_live();
            let seed = rng.next_u64();
            let size = params.sizes.sample(&mut rng);
            all_bytes += size as f64;
            inserts += 1;
            match sim.insert(client, seed, size, params.k, None) {
                Ok(op) => ops.push((client, op, size)),
                Err(error) => {
                    *errors.entry(kind(&error)).or_insert(0) += 1;
                    failed += 1;
                    failed_bytes += size as f64;
                    recent.push(false);
                }
            }
        }
        sim.run();
        let mut waited = 0;
        while sim.running() > 0 && waited < 20 {
            sim.run_for(Duration::from_secs(5));
            waited += 1;
        }
        for (client, op, size) in ops {
            match sim.take(client, op) {
                Some(Outcome::Insert(Ok(inserted))) => {
                    if inserted.attempts > 1 {
                        file_diversions += 1;
                    }
                    bytes_inserted += size;
                    recent.push(true);
                }
                other => {
                    let name = match other {
                        Some(Outcome::Insert(Err(error))) => kind(&error),
                        _ => "NoOutcome".to_string(),
                    };
                    *errors.entry(name).or_insert(0) += 1;
                    failed += 1;
                    failed_bytes += size as f64;
                    recent.push(false);
                }
            }
        }
        let utilization = sim.utilization();
        points.push(StoragePoint { inserts, failed, utilization });
        // Full: nearly all space used, or most recent inserts fail.
        let window = params.window.max(1);
        let recent_failures = recent[recent.len().saturating_sub(window)..].iter().filter(|ok| !**ok).count();
        if utilization >= 0.998 || (recent.len() >= window && recent_failures * 2 >= window) {
            break;
        }
    }
    StorageReport {
        diversion,
        points,
        capacity: total_capacity,
        diverted_replicas: sim.total(|s| s.replicas_diverted),
        space_queries: sim.total(|s| s.space_queries),
        file_diversions,
        bytes_inserted,
        mean_failed_size: failed_bytes / failed.max(1) as f64,
        mean_size: all_bytes / inserts.max(1) as f64,
        errors,
        wall: started.elapsed(),
    }
}

/// Parameters of the durability and caching experiments.
#[derive(Clone, Debug)]
pub struct FilesParams {
    /// Nodes.
    pub nodes: usize,
    /// Leaf set size l.
    pub leaf_set: usize,
    /// Replication factor.
    pub k: u8,
    /// Seed.
    pub seed: u64,
    /// Files to insert.
    pub files: usize,
    /// Node capacities.
    pub capacity: TruncatedNormal,
    /// File sizes (drawn, then capped at `max_size`).
    pub sizes: FileSizes,
    /// Largest file.
    pub max_size: u64,
    /// Whether nodes cache.
    pub caching: bool,
    /// Whether a node answers a reader it does not hold back along the lookup's route
    /// (`Answers::AlongRouteToStrangers`; `Answers::Straight` if not).
    pub relay: bool,
}

/// A network with files inserted: the sim, and each file with its seed and size.
pub struct Loaded {
    /// The network.
    pub sim: PastSim,
    /// The files: fileId, seed, size.
    pub files: Vec<(FileId, u64, u64)>,
    /// Inserts that failed.
    pub failed: usize,
    /// The transfer connections the inserts needed.
    pub insert_transfers: TransferCount,
}

/// Builds a network and inserts `params.files` files from random clients.
pub fn load(params: &FilesParams) -> Loaded {
    let capacity = params.capacity;
    let (caching, relay) = (params.caching, params.relay);
    let mut sim = PastSim::build(
        pastry_config(params.leaf_set),
        params.nodes,
        params.seed,
        |rng| capacity.sample(rng) as u64,
        |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.caching = caching;
            config.answers = if relay { Answers::AlongRouteToStrangers } else { Answers::Straight };
            config.audit_interval = None;
            config
        },
    );
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x10ad);
    let mut files = Vec::new();
    let mut failed = 0;
    sim.network.count_transfers(None);
    for batch in (0..params.files).step_by(100) {
        let mut ops = Vec::new();
        for _ in batch..(batch + 100).min(params.files) {
            let client = sim.random_live();
            let seed = rng.next_u64();
            let size = params.sizes.sample(&mut rng).min(params.max_size);
            match sim.insert(client, seed, size, params.k, None) {
                Ok(op) => ops.push((client, op, seed, size)),
                Err(_) => failed += 1,
            }
        }
        sim.run();
        for (client, op, seed, size) in ops {
            match sim.take(client, op) {
                Some(Outcome::Insert(Ok(inserted))) => files.push((inserted.certificate.body.file, seed, size)),
                _ => failed += 1,
            }
        }
    }
    let insert_transfers = sim.network.take_transfers().expect("counted since the build");
    Loaded { sim, files, failed, insert_transfers }
}

/// Looks up every file from a random live node; returns how many came back whole and right.
pub fn retrieve_all(loaded: &mut Loaded) -> usize {
    let mut ok = 0;
    let files = loaded.files.clone();
    for batch in files.chunks(200) {
        let mut ops = Vec::new();
        for &(file, _, _) in batch {
            let reader = loaded.sim.random_live();
            ops.push((reader, loaded.sim.lookup(reader, file)));
        }
        loaded.sim.run();
        let mut waited = 0;
        while loaded.sim.running() > 0 && waited < 30 {
            loaded.sim.run_for(Duration::from_secs(2));
            waited += 1;
        }
        for (reader, op) in ops {
            if let Some(Outcome::Lookup(outcome)) = loaded.sim.take(reader, op)
                && outcome.result.is_ok()
                && outcome.content_ok
            {
                ok += 1;
            }
        }
    }
    ok
}

/// Files whose k closest live nodes all hold a replica, and files with no copy left.
pub fn replica_census(loaded: &Loaded, k: u8) -> (usize, usize) {
    let live = loaded.sim.network.live_ids();
    let mut full = 0;
    let mut lost = 0;
    for &(file, _, _) in &loaded.files {
        if loaded.sim.replicas(&live, file, k) == usize::from(k) {
            full += 1;
        }
        if loaded.sim.copies(file) == 0 {
            lost += 1;
        }
    }
    (full, lost)
}

/// One failure scenario of the durability experiment.
#[derive(Clone, Debug)]
pub struct FailureScenario {
    /// What was killed.
    pub name: String,
    /// Nodes killed.
    pub killed: usize,
    /// Files with k replicas before the failures.
    pub full_before: usize,
    /// Files retrievable by the lookups made right after the failures, before maintenance
    /// is turned on (nodes learn of a dead node only from a failed send, see
    /// [`durability`]).
    pub retrievable_after_failure: usize,
    /// Virtual time those lookups took.
    pub lookup_time: Duration,
    /// Replicas PAST maintenance re-created while those lookups ran (nodes that saw a failed
    /// send repaired their leaf set, and PAST maintenance reacted `maintenance_delay` later).
    pub files_during_lookups: u64,
    /// Files with k replicas on the k closest live nodes after maintenance.
    pub full_after: usize,
    /// Files with no copy left.
    pub lost: usize,
    /// Files retrievable after maintenance.
    pub retrievable_after_maintenance: usize,
    /// Bytes of content maintenance moved.
    pub maintenance_bytes: u64,
    /// Replicas maintenance created.
    pub maintenance_files: u64,
    /// Virtual time maintenance ran.
    pub maintenance_time: Duration,
    /// Files used as targets (4 of their k holders killed), for the first scenario.
    pub targets: usize,
}

/// Kills nodes, checks retrieval, runs maintenance, checks replicas.
fn fail_and_maintain(loaded: &mut Loaded, k: u8, name: &str, victims: Vec<u32>, targets: usize) -> FailureScenario {
    let (full_before, _) = replica_census(loaded, k);
    for &v in &victims {
        loaded.sim.network.kill(v);
    }
    // Counted over the nodes that stay alive, before and after (`PastSim::total` sums the
    // live nodes): what the victims did before they died is not maintenance of this failure.
    let bytes_before = loaded.sim.total(|s| s.maintenance_bytes);
    let files_before = loaded.sim.total(|s| s.maintenance_files);
    let killed_at = loaded.sim.network.now();
    let retrievable_after_failure = retrieve_all(loaded);
    let lookup_time = loaded.sim.network.now().since(killed_at);
    let files_during_lookups = loaded.sim.total(|s| s.maintenance_files) - files_before;
    let maintenance_time = Duration::from_secs(90);
    loaded.sim.network.set_maintenance(Some(Duration::from_secs(5)), Some(Duration::from_secs(30)), true);
    loaded.sim.run_for(maintenance_time);
    loaded.sim.network.set_maintenance(None, None, true);
    loaded.sim.run_for(Duration::from_secs(30));
    loaded.sim.run();
    // Bytes moved by maintenance, on the nodes still alive (the killed ones moved nothing).
    let maintenance_bytes = loaded.sim.total(|s| s.maintenance_bytes) - bytes_before;
    let maintenance_files = loaded.sim.total(|s| s.maintenance_files) - files_before;
    let (full_after, lost) = replica_census(loaded, k);
    let retrievable_after_maintenance = retrieve_all(loaded);
    FailureScenario {
        name: name.into(),
        killed: victims.len(),
        full_before,
        retrievable_after_failure,
        lookup_time,
        files_during_lookups,
        full_after,
        lost,
        retrievable_after_maintenance,
        maintenance_bytes,
        maintenance_files,
        maintenance_time,
        targets,
    }
}

/// The durability experiment: (1) for as many files as have holder sets far enough apart,
/// kill 4 of the k = 5 holders of each, all at once; (2) kill 10% of the nodes at random.
///
/// After each failure every file is looked up at once, with keep-alives and table probes
/// still off: a node learns that a peer died only when a send to it fails, then drops it
/// from its leaf set and routing table, asks for a replacement leaf, and (its leaf set
/// having changed) starts PAST maintenance `maintenance_delay` later. So the lookups see
/// stale leaf sets and tables except where failed sends already repaired them, and some
/// replica maintenance may run while they do ([`FailureScenario::files_during_lookups`]).
/// Then keep-alives and table probes run for 90 s, and 30 s more without them.
pub fn durability(params: &FilesParams) -> (Loaded, Vec<FailureScenario>) {
    let k = params.k;
    let mut loaded = load(params);
    let mut scenarios = Vec::new();

    // (1) Holder sets at least k nodes apart on the ring, so that no other file has its k
    // holders among the killed nodes of two sets.
    let live = loaded.sim.network.live_ids();
    let n = live.len();
    let mut blocked = vec![false; n];
    let mut victims = Vec::new();
    let mut targets = 0;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0xdead);
    for &(file, _, _) in &loaded.files {
        let holders = closest_in(&live, file.key(), usize::from(k));
        if holders.len() < usize::from(k) || !holders.iter().all(|&h| loaded.sim.holds_replica(h, file)) {
            continue;
        }
        let positions: Vec<usize> = holders.iter().filter_map(|h| live.binary_search(h).ok()).collect();
        let reach = usize::from(k) * 2;
        let zone: Vec<usize> =
            positions.iter().flat_map(|&p| (0..=2 * reach).map(move |d| (p + n * 2 + d - reach) % n)).collect();
        if zone.iter().any(|&p| blocked[p]) {
            continue;
        }
        for p in zone {
            blocked[p] = true;
        }
        let survivor = (rng.next_u64() % u64::from(k)) as usize;
        for (i, &h) in holders.iter().enumerate() {
            if i != survivor
                && let Some(index) = loaded.sim.index_of(h)
            {
                victims.push(index);
            }
        }
        targets += 1;
    }
    scenarios.push(fail_and_maintain(&mut loaded, k, "4 of the 5 holders of each target file", victims, targets));

    // (2) 10% of the live nodes at random.
    let mut live_nodes = loaded.sim.network.live_nodes();
    let count = live_nodes.len() / 10;
    let mut victims = Vec::new();
    for _ in 0..count {
        let i = (rng.next_u64() % live_nodes.len() as u64) as usize;
        victims.push(live_nodes.swap_remove(i));
    }
    scenarios.push(fail_and_maintain(&mut loaded, k, "10% of the nodes at random", victims, 0));
    (loaded, scenarios)
}

/// The outcome of a caching run.
#[derive(Clone, Debug, PartialEq)]
pub struct CachingReport {
    /// Whether caching was on.
    pub caching: bool,
    /// Lookups made.
    pub lookups: usize,
    /// Lookups that returned the right content.
    pub ok: usize,
    /// Lookups answered from a cached copy.
    pub cache_hits: usize,
    /// Mean routing hops to the node that answered.
    pub mean_hops: f64,
    /// Cached copies made.
    pub cached_files: u64,
    /// Cached copies evicted.
    pub evictions: u64,
    /// Files inserted before the lookups.
    pub files: usize,
    /// Transfer connections the inserts needed, over the live nodes.
    pub insert_transfers: Summary,
    /// Transfer connections the lookups needed (cache fills included), over the live
    /// nodes other than the native peers.
    pub lookup_transfers: Summary,
    /// The same over the native peers (none: all zero).
    pub native_transfers: Summary,
    /// The bound on transfer connections during the lookups.
    pub budget: TransferBudget,
    /// Native peers among the live nodes.
    pub native_peers: usize,
    /// Transfer connections refused during the lookups because an end had used its budget.
    pub refused_transfers: u64,
    /// Lookups answered by a node that could not reach the reader, handed on to the other
    /// holders or passed on along their route.
    pub handed_on: u64,
    /// Answers that could not be sent straight and went back along the route instead.
    pub answers_rerouted: u64,
    /// Content bytes the readers received.
    pub bytes_read: u64,
    /// Bytes of relayed messages nodes passed on along routes (answers and pulls relayed).
    pub bytes_relayed: u64,
    /// The most bytes one node passed on.
    pub max_relayed: u64,
    /// Virtual time from the start of each lookup with the right content to its end,
    /// sorted.
    pub times: Vec<Duration>,
}

/// How finely the caching experiment times lookups.
pub const TIME_RESOLUTION: Duration = Duration::from_millis(5);

/// `share` of the `live` nodes, drawn at random with `seed`, sorted.
fn native_peers(live: &[u32], share: f64, seed: u64) -> Vec<u32> {
    let count = ((live.len() as f64 * share).round() as usize).min(live.len());
    let mut pool = live.to_vec();
    shuffle(&mut pool, &mut ChaCha8Rng::seed_from_u64(seed ^ 0x6e61_7469_7665));
    pool.truncate(count);
    pool.sort_unstable();
    pool
}

/// How many transfer connections nodes may open during the caching experiment's lookups.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TransferBudget {
    /// The most a browser node may open, if bounded.
    pub per_tab: Option<u32>,
    /// The share of the nodes, drawn at random, that are native storage peers, which no
    /// budget bounds (`ManagerConfig::native`).
    pub native_share: f64,
}

/// The caching experiment: Zipf-popular lookups from random nodes, with transfer
/// connections bounded by `budget` during the lookups.
pub fn caching(params: &FilesParams, lookups: usize, alpha: f64, budget: TransferBudget) -> CachingReport {
    let mut loaded = load(params);
    let natives = native_peers(&loaded.sim.network.live_nodes(), budget.native_share, params.seed);
    let zipf = Zipf::new(loaded.files.len(), alpha);
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0xcace);
    // Popularity ranks in a random order of the files.
    let mut order: Vec<usize> = (0..loaded.files.len()).collect();
    shuffle(&mut order, &mut rng);
    let (mut ok, mut hits, mut hops, mut answered) = (0, 0, 0u64, 0u64);
    let (mut bytes_read, mut times) = (0u64, Vec::new());
    loaded.sim.network.count_transfers(budget.per_tab);
    loaded.sim.network.exempt_from_transfer_budget(&natives);
    let batch = 100;
    for start in (0..lookups).step_by(batch) {
        let mut ops = Vec::new();
        for _ in start..(start + batch).min(lookups) {
            let (file, _, _) = loaded.files[order[zipf.sample(&mut rng)]];
            let reader = loaded.sim.random_live();
            ops.push((reader, loaded.sim.lookup(reader, file)));
        }
        loaded.sim.run_timed(TIME_RESOLUTION);
        for (reader, op) in ops {
            if let Some(Outcome::Lookup(outcome)) = loaded.sim.take(reader, op)
                && let Ok(found) = &outcome.result
            {
                answered += 1;
                hops += u64::from(found.hops);
                if found.cached {
                    hits += 1;
                }
                if outcome.content_ok {
                    ok += 1;
                    bytes_read += outcome.bytes;
                    times.push(outcome.elapsed);
                }
            }
        }
    }
    let live = loaded.sim.network.live_nodes();
    let lookup_transfers = loaded.sim.network.take_transfers().expect("counted since the inserts");
    let tabs = live.iter().copied().filter(|n| natives.binary_search(n).is_err());
    CachingReport {
        caching: params.caching,
        lookups,
        ok,
        cache_hits: hits,
        mean_hops: hops as f64 / answered.max(1) as f64,
        cached_files: loaded.sim.total(|s| s.cached_files),
        evictions: loaded.sim.total(|s| s.evictions),
        files: loaded.files.len(),
        insert_transfers: loaded.insert_transfers.summary(live.iter().copied()),
        lookup_transfers: lookup_transfers.summary(tabs),
        native_transfers: lookup_transfers.summary(natives.iter().copied()),
        budget,
        native_peers: natives.len(),
        refused_transfers: lookup_transfers.refused(),
        handed_on: loaded.sim.total(|s| s.lookups_handed_on),
        answers_rerouted: loaded.sim.total(|s| s.answers_rerouted),
        bytes_read,
        bytes_relayed: loaded.sim.total(|s| s.bytes_relayed),
        max_relayed: loaded.sim.max(|s| s.bytes_relayed),
        times: {
            times.sort_unstable();
            times
        },
    }
}
