//! Parameters of a PAST node.

use core::time::Duration;

use crate::past::certificate::MAX_FILE_SIZE;
use crate::past::crypto::PublicKey;
use crate::past::verified::SharedVerified;

/// Parameters of a PAST node. The storage thresholds are the PAST paper's (section 4.2:
/// t_pri = 0.1, t_div = 0.05).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PastConfig {
    /// The node's public key: store and reclaim receipts are signed with it, and the driver
    /// must derive the node's Pastry id from it.
    pub node_key: PublicKey,
    /// Bytes this node offers for replicas and cached copies.
    pub capacity: u64,
    /// A node among the k closest refuses a replica when size / free space > t_pri.
    pub t_pri: f64,
    /// A node asked to hold a diverted replica refuses when size / free space > t_div.
    pub t_div: f64,
    /// Whether a refusing primary diverts its replica to a leaf-set node.
    pub replica_diversion: bool,
    /// Leaves a diverting primary asks for their free space first: that many, drawn at
    /// random from the leaves that are not primaries of the file; the others are asked only
    /// if none of those has room under `t_div`. The one with the most free space is asked to
    /// hold the replica. Default `usize::MAX`: all of them at once. Fewer saves messages but
    /// fills the ring less evenly: with 8, 1.20 % of inserts failed at PAST's full scale
    /// against 0.57 % (docs/results-past.md, "Fifth round").
    pub space_query_fanout: usize,
    /// How many times a client retries a refused insert with a new salt (file diversion).
    pub file_diversion_retries: u8,
    /// Whether the node caches files looked up through it in its unused space.
    pub caching: bool,
    /// A file is cached only if its size is at most this share of the node's unused space.
    pub cache_fraction: f64,
    /// Most bytes this node stores for any one owner.
    pub owner_limit: u64,
    /// Quota of each owner inserting through this node (k x size is debited per insert).
    pub owner_quota: u64,
    /// Largest file this node accepts (at most [`MAX_FILE_SIZE`]).
    pub max_file_size: u64,
    /// Chunks requested ahead of the one being written (flow control of transfers).
    pub window: u32,
    /// The window of a transfer's start; it grows by one per chunk received up to
    /// `window`.
    pub initial_window: u32,
    /// Whether a reader's chunks count against the window until the driver reports each one
    /// taken with [`Node::lookup_consumed`](crate::Node::lookup_consumed): a reader that
    /// stops reading then stops the pull, and at most `window` chunks wait in the driver.
    /// Off: chunks count until they are handed out as events.
    pub paced_reads: bool,
    /// Nodes a reader pulls a file from at once: the holder that answered, plus up to
    /// `sources - 1` of the other replica holders it names, each asked for the next chunk
    /// when it has the fewest outstanding. 1: the answering holder alone.
    pub sources: u8,
    /// How a node answering a lookup reaches the reader: straight, or back along the
    /// lookup's route over connections the overlay holds ([`relay`](crate::past::relay)).
    pub answers: Answers,
    /// Largest file answered along the route; a larger one goes straight, where one
    /// connection costs less than carrying the file through every node of the route
    /// (1 MiB: docs/results-past.md, "Answers along the route").
    pub relay_max_size: u64,
    /// How long a request (prepare, space query, lookup) may go unanswered.
    pub request_timeout: Duration,
    /// How long the root of a lookup that holds nothing waits for the replica set's answers
    /// before it tells the reader the file is not found.
    pub locate_timeout: Duration,
    /// How long a transfer may make no progress before it is abandoned.
    pub stall_timeout: Duration,
    /// How long a pull may hear nothing before it asks again for what it waits for first:
    /// if a node of the route it comes along left with the answers, that request comes
    /// back at once and the pull goes on by another way; if the node it pulls straight
    /// from left, the request cannot be sent and the pull goes on from another holder;
    /// either instead of waiting out `stall_timeout` ([`relay`](crate::past::relay)).
    /// `None`: never.
    pub reask_after: Option<Duration>,
    /// How long a replica that received all its content waits for the commit of its insert.
    pub commit_timeout: Duration,
    /// Delay between a leaf set change and replica maintenance (changes close together are
    /// handled together).
    pub maintenance_delay: Duration,
    /// Every so often, check with every node that should hold a file that it does (`None`:
    /// only on leaf set changes).
    pub audit_interval: Option<Duration>,
    /// Holders a reader tries before a lookup fails.
    pub lookup_attempts: u8,
    /// Times a client routes an insert, lookup or reclaim that gets no answer within
    /// `request_timeout`. The retries are routed with their attempt number, so each node on
    /// the way picks its next hop at random among those that make progress (PAST's
    /// randomized routing): a node that drops what it should forward blocks one attempt,
    /// not all.
    pub route_attempts: u8,
    /// Certificates other nodes of this process already verified (the simulator): this node
    /// does not verify them again. `None` (the default) in a real node.
    pub shared_verified: Option<SharedVerified>,
}

/// How a node answering a lookup (and a node offering a copy to cache) reaches the reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Answers {
    /// Straight to the reader, as PAST does: in a browser, a connection of their own unless
    /// they already have one.
    Straight,
    /// Back along the lookup's route when the reader is not in the answering node's tables
    /// (so that no connection is opened for it); straight otherwise.
    #[default]
    AlongRouteToStrangers,
    /// Back along the lookup's route whenever it passed other nodes (tests, and a node that
    /// spares every connection).
    AlongRoute,
}

impl PastConfig {
    /// The defaults for a node with key `node_key` offering `capacity` bytes.
    pub fn new(node_key: PublicKey, capacity: u64) -> Self {
        PastConfig {
            node_key,
            capacity,
            t_pri: 0.1,
            t_div: 0.05,
            replica_diversion: true,
            space_query_fanout: usize::MAX,
            file_diversion_retries: 3,
            caching: true,
            cache_fraction: 0.5,
            owner_limit: u64::MAX,
            owner_quota: u64::MAX,
            max_file_size: MAX_FILE_SIZE,
            window: 8,
            initial_window: 8,
            paced_reads: false,
            sources: 1,
            answers: Answers::AlongRouteToStrangers,
            relay_max_size: 1 << 20,
            request_timeout: Duration::from_secs(10),
            locate_timeout: Duration::from_secs(2),
            stall_timeout: Duration::from_secs(30),
            reask_after: Some(Duration::from_secs(2)),
            commit_timeout: Duration::from_secs(120),
            maintenance_delay: Duration::from_secs(1),
            audit_interval: Some(Duration::from_secs(600)),
            lookup_attempts: 4,
            route_attempts: 3,
            shared_verified: None,
        }
    }

    /// No replica or file diversion, and a node accepts any replica that fits (the PAST
    /// paper's baseline: t_pri = 1, t_div = 0).
    pub fn without_diversion(mut self) -> Self {
        self.t_pri = 1.0;
        self.t_div = 0.0;
        self.replica_diversion = false;
        self.file_diversion_retries = 0;
        self
    }
}
