//! PAST on the simulated network: every node runs the real [`Past`] application with a
//! [`SimStore`] and its own Ed25519 key (its nodeId is derived from it, so store and reclaim
//! receipts check as they would in the browser).
//!
//! [`PastSim`] builds the network and starts inserts, lookups and reclaims at chosen
//! nodes, runs the network, and collects the outcomes; it also measures what no node sees
//! (global utilization, how many of the k closest live nodes hold each file). The
//! experiments of the PAST paper are in [`experiment`]; lookups past nodes that drop what
//! they should forward (randomized routing) in [`randomized`].

pub mod crypto_thread;
pub mod experiment;
pub mod plot;
pub mod randomized;
pub mod store;
pub mod workload;

use std::collections::BTreeMap;

use past_core::past::{
    Ed25519Signer, FileId, InsertError, InsertRequestSpec, Inserted, Keyring, LookupError, OpId, Past, PastConfig,
    PastEvent, PublicKey, ReclaimError, Reclaimed, Role, SharedVerified, SyncPast, UploadId, chunk_count,
};
use past_core::{Config, Id};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::network::{Network, SimApp};
use crypto_thread::{CryptoThread, SimSigner};
pub use store::{SimStore, chunk, content, file_name, seed_of};

/// The application of a simulated PAST node.
pub type PastApp = SyncPast<SimStore, SimSigner>;

impl SimApp for PastApp {
    /// A node whose key does not match `id`: its receipts will not verify. Add PAST nodes
    /// with [`Network::add_node_with`] and a key-derived id instead.
    fn create(id: Id) -> Self {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(&id.to_bytes());
        let key = Ed25519Signer::from_seed(seed);
        let mut keys = Keyring::new();
        let public = keys.add(key);
        SyncPast::new(Past::new(PastConfig::new(public, 0)), SimStore::new(), SimSigner::new(keys))
    }
}

/// How a lookup ended, as the harness saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupOutcome {
    /// The core's result.
    pub result: Result<past_core::past::Found, LookupError>,
    /// Bytes received.
    pub bytes: u64,
    /// Whether every chunk received was the file's true content.
    pub content_ok: bool,
    /// The nodes the lookup went through after the reader, as the answer reported them.
    pub route: Vec<Id>,
    /// Virtual time from the lookup's start to its end (the whole content received).
    pub elapsed: core::time::Duration,
}

/// An operation's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An insert.
    Insert(Result<Inserted, InsertError>),
    /// A lookup.
    Lookup(LookupOutcome),
    /// A reclaim.
    Reclaim(Result<Reclaimed, ReclaimError>),
}

/// A PAST network in the simulator.
pub struct PastSim {
    /// The simulated network.
    pub network: Network<PastApp>,
    /// Public key of each node, by index.
    pub keys: Vec<PublicKey>,
    index: BTreeMap<Id, u32>,
    rng: ChaCha8Rng,
    next_upload: u64,
    /// Operations started and not yet ended: (node, op) -> content checked so far.
    running: BTreeMap<(u32, OpId), Running>,
    /// Ended operations.
    pub outcomes: BTreeMap<(u32, OpId), Outcome>,
    /// Signs for the nodes and verifies ahead of them, if the simulation has it.
    crypto: Option<CryptoThread>,
}

/// The signer of a node with `keys`: from the crypto thread, if any.
fn signer_for(crypto: Option<&CryptoThread>, keys: Keyring) -> SimSigner {
    match crypto {
        Some(crypto) => crypto.signer(keys),
        None => SimSigner::new(keys),
    }
}

#[derive(Clone, Debug, Default)]
struct Running {
    bytes: u64,
    content_ok: bool,
    /// Seed and size of the file a lookup reads.
    file: Option<(u64, u64)>,
    /// The route the answer reported.
    route: Vec<Id>,
    /// When the operation started.
    started: past_core::Time,
}

impl PastSim {
    /// Builds a network of `nodes` PAST nodes, joining one by one. `capacity` draws each
    /// node's capacity; `past` makes its PAST configuration from its key and capacity.
    pub fn build(
        config: Config,
        nodes: usize,
        seed: u64,
        capacity: impl FnMut(&mut ChaCha8Rng) -> u64,
        past: impl Fn(PublicKey, u64) -> PastConfig,
    ) -> Self {
        Self::build_with(config, nodes, seed, capacity, past, None)
    }

    /// [`PastSim::build`] with a [`CryptoThread`]: the nodes' signatures are made on a
    /// second thread and answered [`crypto_thread::SIGN_DELAY`] after they are asked for,
    /// and verified ahead of the nodes into `shared` (the set `past` gives the nodes), if
    /// any. If the thread cannot start, the nodes sign at once.
    pub fn build_threaded(
        config: Config,
        nodes: usize,
        seed: u64,
        shared: Option<SharedVerified>,
        capacity: impl FnMut(&mut ChaCha8Rng) -> u64,
        past: impl Fn(PublicKey, u64) -> PastConfig,
    ) -> Self {
        Self::build_with(config, nodes, seed, capacity, past, CryptoThread::start(shared).ok())
    }

    fn build_with(
        config: Config,
        nodes: usize,
        seed: u64,
        mut capacity: impl FnMut(&mut ChaCha8Rng) -> u64,
        past: impl Fn(PublicKey, u64) -> PastConfig,
        crypto: Option<CryptoThread>,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_9a57);
        let mut network = Network::new(config, nodes, seed);
        let mut keys = Vec::with_capacity(nodes);
        let mut index = BTreeMap::new();
        for _ in 0..nodes {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            let key = Ed25519Signer::from_seed(secret);
            let id = key.node_id();
            let public = key.public_key();
            let mut ring = Keyring::new();
            ring.add(key);
            let signer = signer_for(crypto.as_ref(), ring);
            let app = SyncPast::new(Past::new(past(public, capacity(&mut rng))), SimStore::new(), signer);
            index.insert(id, network.add_node_with(id, app));
            keys.push(public);
        }
        PastSim {
            network,
            keys,
            index,
            rng,
            next_upload: 1,
            running: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            crypto,
        }
    }

    /// Starts the join of a new node with `key` and PAST configuration `config`, without
    /// running the network (so a test can act while the join and replica maintenance are
    /// under way).
    pub fn spawn(&mut self, key: Ed25519Signer, config: PastConfig) -> u32 {
        let (id, public) = (key.node_id(), key.public_key());
        let mut ring = Keyring::new();
        ring.add(key);
        let signer = signer_for(self.crypto.as_ref(), ring);
        let node = self.network.spawn_with(id, SyncPast::new(Past::new(config), SimStore::new(), signer));
        self.network.mark_present(node);
        self.index.insert(id, node);
        self.keys.push(public);
        node
    }

    /// A random number from the harness's generator.
    pub fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A random live node.
    pub fn random_live(&mut self) -> u32 {
        let live = self.network.live_nodes();
        live[(self.rng.next_u64() % live.len() as u64) as usize]
    }

    /// The PAST state of a node.
    pub fn past(&self, node: u32) -> &Past {
        &self.network.node(node).app().past
    }

    /// Adds a user key to a node's keyring (so it can sign as that owner).
    pub fn add_key(&mut self, node: u32, key: Ed25519Signer) {
        self.network.node_mut(node).app_mut().signer.add(key);
    }

    /// Stages content generated from `seed` at `client` and starts inserting it with owner
    /// `owner` (the client's own key by default).
    pub fn insert(
        &mut self,
        client: u32,
        seed: u64,
        size: u64,
        k: u8,
        owner: Option<PublicKey>,
    ) -> Result<OpId, InsertError> {
        let upload = UploadId(self.next_upload);
        self.next_upload += 1;
        let owner = owner.unwrap_or(self.keys[client as usize]);
        let now = self.network.now();
        let node = self.network.node_mut(client);
        node.app_mut().store.add_upload(upload, seed, size);
        let spec = InsertRequestSpec { name: file_name(seed), owner, k, upload, size, created: now.as_micros() / 1000 };
        let result = node.insert(spec, now);
        self.network.flush(client);
        if let Ok(op) = result {
            self.running.insert((client, op), Running::default());
        }
        result
    }

    /// Inserts `count` files of `size` bytes (content seeds 0, 1, ...) with `k` replicas,
    /// each from a random live node, and runs a minute; returns the fileIds of the inserts
    /// acknowledged.
    pub fn insert_from_random_nodes(&mut self, count: u64, size: u64, k: u8) -> Vec<FileId> {
        let ops: Vec<_> = (0..count)
            .map(|seed| {
                let client = self.random_live();
                (client, self.insert(client, seed, size, k, None))
            })
            .collect();
        self.run_for(core::time::Duration::from_secs(60));
        ops.into_iter()
            .filter_map(|(client, op)| match self.take(client, op.ok()?) {
                Some(Outcome::Insert(Ok(inserted))) => Some(inserted.certificate.body.file),
                _ => None,
            })
            .collect()
    }

    /// Starts an insert with a certificate made elsewhere, serving upload content from `seed`.
    pub fn insert_certificate(&mut self, client: u32, cert: past_core::past::FileCertificate, seed: u64) -> OpId {
        let upload = UploadId(self.next_upload);
        self.next_upload += 1;
        let now = self.network.now();
        let size = cert.body.size;
        let node = self.network.node_mut(client);
        node.app_mut().store.add_upload(upload, seed, size);
        let op = node.insert_certificate(cert, upload, now);
        self.network.flush(client);
        self.running.insert((client, op), Running::default());
        op
    }

    /// Starts a lookup of `file` at `reader`.
    pub fn lookup(&mut self, reader: u32, file: FileId) -> OpId {
        let now = self.network.now();
        let op = self.network.node_mut(reader).lookup(file, now);
        self.network.flush(reader);
        self.running
            .insert((reader, op), Running { bytes: 0, content_ok: true, file: None, route: Vec::new(), started: now });
        op
    }

    /// Starts a reclaim of `file` at `client`, signed by `signer` (the client's key by default).
    pub fn reclaim(&mut self, client: u32, file: FileId, signer: Option<PublicKey>) -> OpId {
        let now = self.network.now();
        let signer = signer.unwrap_or(self.keys[client as usize]);
        let op = self.network.node_mut(client).reclaim(file, signer, now.as_micros() / 1000, now);
        self.network.flush(client);
        self.running.insert((client, op), Running::default());
        op
    }

    /// Sends a reclaim certificate made elsewhere from `client`.
    pub fn reclaim_certificate(&mut self, client: u32, cert: past_core::past::ReclaimCertificate) -> OpId {
        let now = self.network.now();
        let op = self.network.node_mut(client).reclaim_certificate(cert, now);
        self.network.flush(client);
        self.running.insert((client, op), Running::default());
        op
    }

    /// Runs until no message is in flight, then collects outcomes.
    pub fn run(&mut self) {
        self.network.run_until_quiet();
        self.collect();
    }

    /// Runs as [`PastSim::run`] does (the same events in the same order), collecting
    /// outcomes every `resolution` of virtual time, so that each lookup's `elapsed` is
    /// late by less than that.
    pub fn run_timed(&mut self, resolution: core::time::Duration) {
        let mut until = self.network.now();
        loop {
            until = until + resolution;
            let quiet = self.network.run_until_quiet_or(until);
            self.collect();
            if quiet {
                break;
            }
        }
    }

    /// Runs `duration` of virtual time (timers included), then collects outcomes.
    pub fn run_for(&mut self, duration: core::time::Duration) {
        self.network.run_for(duration);
        self.collect();
    }

    /// Collects the events of the nodes with operations running.
    pub fn collect(&mut self) {
        let mut clients: Vec<u32> = self.running.keys().map(|&(n, _)| n).collect();
        clients.dedup();
        for client in clients {
            while let Some(event) = self.network.node_mut(client).poll_past_event() {
                self.on_event(client, event);
            }
        }
    }

    fn on_event(&mut self, node: u32, event: PastEvent) {
        match event {
            PastEvent::InsertDone { op, result } => {
                self.running.remove(&(node, op));
                self.outcomes.insert((node, op), Outcome::Insert(result));
            }
            PastEvent::LookupFound { op, certificate, route, .. } => {
                if let Some(r) = self.running.get_mut(&(node, op)) {
                    r.file = seed_of(&certificate.body.name).map(|seed| (seed, certificate.body.size));
                    r.route = route;
                }
            }
            PastEvent::LookupChunk { op, index, data } => {
                if let Some(r) = self.running.get_mut(&(node, op)) {
                    let seed_size = r.file;
                    r.bytes += data.len() as u64;
                    let ok = seed_size.is_some_and(|(seed, size)| chunk(seed, size, index) == data);
                    r.content_ok &= ok;
                }
            }
            PastEvent::LookupDone { op, result } => {
                let r = self.running.remove(&(node, op)).unwrap_or_default();
                let complete = match &result {
                    Ok(found) => r.bytes == found.certificate.body.size,
                    Err(_) => true,
                };
                let elapsed = self.network.now().since(r.started);
                let content_ok = r.content_ok && complete;
                let outcome = LookupOutcome { result, bytes: r.bytes, content_ok, route: r.route, elapsed };
                self.outcomes.insert((node, op), Outcome::Lookup(outcome));
            }
            PastEvent::ReclaimDone { op, result } => {
                self.running.remove(&(node, op));
                self.outcomes.insert((node, op), Outcome::Reclaim(result));
            }
            _ => {}
        }
    }

    /// Takes the outcome of an operation, if it ended.
    pub fn take(&mut self, node: u32, op: OpId) -> Option<Outcome> {
        self.outcomes.remove(&(node, op))
    }

    /// Number of operations still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Replica bytes stored over total capacity, over live nodes.
    pub fn utilization(&self) -> f64 {
        let (mut used, mut capacity) = (0u64, 0u64);
        for node in self.network.live_nodes() {
            let past = self.past(node);
            used += past.used();
            capacity += past.capacity();
        }
        used as f64 / capacity.max(1) as f64
    }

    /// The `k` live nodes numerically closest to `key`, by the global view.
    pub fn closest_live(&self, sorted_live: &[Id], key: Id, k: usize) -> Vec<Id> {
        closest_in(sorted_live, key, k)
    }

    /// How many of the k live nodes closest to the file hold a replica of it (a committed
    /// replica, or a pointer whose diverted replica is alive and committed).
    pub fn replicas(&self, sorted_live: &[Id], file: FileId, k: u8) -> usize {
        closest_in(sorted_live, file.key(), usize::from(k))
            .into_iter()
            .filter(|&id| self.holds_replica(id, file))
            .count()
    }

    /// Whether node `id` holds a replica of `file` (itself or through a live pointer).
    pub fn holds_replica(&self, id: Id, file: FileId) -> bool {
        let Some(index) = self.index_of(id) else {
            return false;
        };
        if !self.network.is_alive(index) {
            return false;
        }
        match self.role_at(index, file) {
            Some((Role::Primary | Role::Diverted { .. }, true)) => true,
            Some((Role::Pointer { holder }, true)) => self.index_of(holder).is_some_and(|h| {
                self.network.is_alive(h) && matches!(self.role_at(h, file), Some((Role::Diverted { .. }, true)))
            }),
            _ => false,
        }
    }

    /// How a node holds a file, and whether committed.
    pub fn role_at(&self, node: u32, file: FileId) -> Option<(Role, bool)> {
        self.past(node).role_of(&file)
    }

    /// Every live node holding content of `file` (replicas, diverted replicas, cached copies).
    pub fn copies(&self, file: FileId) -> usize {
        self.network
            .live_nodes()
            .into_iter()
            .filter(|&n| matches!(self.role_at(n, file), Some((r, true)) if r.has_content()))
            .count()
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: Id) -> Option<u32> {
        self.index.get(&id).copied()
    }

    /// Sum of a statistic over live nodes.
    pub fn total(&self, stat: impl Fn(&past_core::past::PastStats) -> u64) -> u64 {
        self.network.live_nodes().into_iter().map(|n| stat(&self.past(n).stats())).sum()
    }

    /// The largest value of a counter over the live nodes.
    pub fn max(&self, stat: impl Fn(&past_core::past::PastStats) -> u64) -> u64 {
        self.network.live_nodes().into_iter().map(|n| stat(&self.past(n).stats())).max().unwrap_or(0)
    }

    /// Number of chunks of a file of `size`.
    pub fn chunks(size: u64) -> u32 {
        chunk_count(size)
    }
}

/// The `k` ids of `sorted` closest to `key` on the ring (ties to the smaller id).
pub fn closest_in(sorted: &[Id], key: Id, k: usize) -> Vec<Id> {
    let n = sorted.len();
    if n == 0 {
        return Vec::new();
    }
    let k = k.min(n);
    let at = sorted.partition_point(|&id| id < key);
    let mut candidates: Vec<Id> = (0..k).flat_map(|d| [sorted[(at + d) % n], sorted[(at + n - 1 - d) % n]]).collect();
    candidates.sort_by_key(|&id| (key.ring_distance(id), id));
    candidates.dedup();
    candidates.truncate(k);
    candidates
}
