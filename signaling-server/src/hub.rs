//! The registry of registered clients: who holds which nodeId, from which address, and
//! relays between them. Registration is bounded globally ([`crate::Config::max_peers`]) and
//! per address ([`crate::Config::max_peers_per_address`]).
//!
//! A registration for an id that is already registered replaces the old socket if that one
//! has been silent for [`crate::Config::takeover_after`] (one and a half ping intervals: a
//! live client answers every ping), so a node whose connection died silently gets its id
//! back as soon as it reconnects; a live holder keeps it (`peer_id_taken`). Only the holder
//! of the id's private key can register it, so only the node itself can replace its socket.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use past_core::Id;
use past_signaling_proto::{ErrorCode, MAX_WELCOME_PEERS, PeerId, ServerMessage, from_hex};
use tokio::sync::Notify;

use crate::outbox::{Full, Outbox};

/// Milliseconds since the server started, for "last heard from" stamps shared between a
/// socket's task and the hub.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new() -> Self {
        Self(Instant::now())
    }

    pub(crate) fn now_ms(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// What a socket's task shares with the hub about itself.
#[derive(Debug)]
pub(crate) struct Presence {
    /// When the socket last received a frame ([`Clock::now_ms`]).
    pub(crate) last_seen: AtomicU64,
    /// Notified when a new registration of its id replaced it.
    pub(crate) replaced: Notify,
}

impl Presence {
    pub(crate) fn new(clock: Clock) -> Arc<Self> {
        Arc::new(Self { last_seen: AtomicU64::new(clock.now_ms()), replaced: Notify::new() })
    }
}

/// A registered client.
struct Client {
    /// Distinguishes successive sockets that registered the same id.
    conn: u64,
    peer: PeerId,
    address: IpAddr,
    outbox: Outbox,
    presence: Arc<Presence>,
}

#[derive(Default)]
struct Registry {
    /// Registered clients by nodeId, in ring order.
    by_id: BTreeMap<u128, Client>,
    /// Registered clients per address key.
    per_address: HashMap<IpAddr, usize>,
}

impl Registry {
    fn remove(&mut self, id: u128) -> Option<Client> {
        let client = self.by_id.remove(&id)?;
        if let Some(n) = self.per_address.get_mut(&client.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&client.address);
            }
        }
        Some(client)
    }
}

/// A new client, as [`Hub::register`] takes it.
pub(crate) struct Newcomer<'a> {
    pub(crate) peer: &'a PeerId,
    pub(crate) conn: u64,
    /// Its address key ([`crate::admission::address_key`]).
    pub(crate) address: IpAddr,
    pub(crate) outbox: &'a Outbox,
    pub(crate) presence: &'a Arc<Presence>,
}

/// A successful registration.
#[derive(Debug)]
pub(crate) struct Registered {
    /// The registered ids closest to the newcomer's (for its welcome).
    pub(crate) closest: Vec<PeerId>,
    /// Whether a silent socket with the same id was replaced.
    pub(crate) replaced: bool,
}

/// Why a registration was refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    /// The address (rather than the server) is full.
    pub(crate) address_full: bool,
}

/// Shared state: who is registered.
pub(crate) struct Hub {
    registry: Mutex<Registry>,
    max_peers: usize,
    max_per_address: usize,
    welcome_peers: usize,
    takeover_after: Duration,
    clock: Clock,
}

impl Hub {
    pub(crate) fn new(config: &crate::Config, clock: Clock) -> Self {
        Self {
            registry: Mutex::new(Registry::default()),
            max_peers: config.max_peers,
            max_per_address: config.max_peers_per_address,
            welcome_peers: config.welcome_peers.min(MAX_WELCOME_PEERS),
            takeover_after: config.takeover_after(),
            clock,
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map inconsistent (every critical
        // section is a few inserts/removes/lookups), so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `new` (its signature already checked).
    pub(crate) fn register(&self, new: Newcomer<'_>) -> Result<Registered, Refusal> {
        let refuse = |code, message: String, address_full| Err(Refusal { code, message, address_full });
        let Some(id) = node_id(new.peer) else {
            return refuse(ErrorCode::Unauthenticated, format!("{} is not a hex nodeId", new.peer), false);
        };
        let mut registry = self.registry();
        let mut replaced = false;
        if let Some(old) = registry.by_id.get(&id) {
            let silent_ms = self.clock.now_ms().saturating_sub(old.presence.last_seen.load(Ordering::Acquire));
            if u128::from(silent_ms) < self.takeover_after.as_millis() {
                return refuse(ErrorCode::PeerIdTaken, format!("peer id {} is already registered", new.peer), false);
            }
            if let Some(old) = registry.remove(id) {
                old.presence.replaced.notify_one();
                replaced = true;
            }
        }
        if registry.per_address.get(&new.address).copied().unwrap_or(0) >= self.max_per_address {
            return refuse(
                ErrorCode::ServerFull,
                format!("this address holds its maximum of {} registered peers", self.max_per_address),
                true,
            );
        }
        if registry.by_id.len() >= self.max_peers {
            return refuse(
                ErrorCode::ServerFull,
                format!("the server holds its maximum of {} peers", self.max_peers),
                false,
            );
        }
        let closest = closest(&registry.by_id, id, self.welcome_peers);
        registry.by_id.insert(
            id,
            Client {
                conn: new.conn,
                peer: new.peer.clone(),
                address: new.address,
                outbox: new.outbox.clone(),
                presence: new.presence.clone(),
            },
        );
        *registry.per_address.entry(new.address).or_insert(0) += 1;
        Ok(Registered { closest, replaced })
    }

    /// Forgets `peer` if it is still registered by socket `conn`.
    pub(crate) fn unregister(&self, peer: &PeerId, conn: u64) {
        let Some(id) = node_id(peer) else { return };
        let mut registry = self.registry();
        if registry.by_id.get(&id).is_some_and(|c| c.conn == conn) {
            registry.remove(id);
        }
    }

    /// Queues `msg` (a `signal` from another client) for `to`.
    pub(crate) fn relay(&self, to: &PeerId, msg: &ServerMessage) -> Result<(), ErrorCode> {
        let text = msg.to_json();
        let registry = self.registry();
        let Some(client) = node_id(to).and_then(|id| registry.by_id.get(&id)) else {
            return Err(ErrorCode::UnknownPeer);
        };
        match client.outbox.push_text(text) {
            Ok(()) => Ok(()),
            Err(Full::Full) => Err(ErrorCode::PeerBusy),
            Err(Full::Closed) => Err(ErrorCode::UnknownPeer),
        }
    }

    pub(crate) fn peer_count(&self) -> usize {
        self.registry().by_id.len()
    }
}

/// The nodeId a registered peer id stands for (32 hex digits).
fn node_id(peer: &PeerId) -> Option<u128> {
    from_hex::<16>(peer.as_str()).map(u128::from_be_bytes)
}

/// Up to `count` registered ids numerically closest to `id` on the ring, closest first.
fn closest(clients: &BTreeMap<u128, Client>, id: u128, count: usize) -> Vec<PeerId> {
    let own = Id::from_u128(id);
    // The closest on each side are among the `count` successors and `count` predecessors.
    let after = clients.range(id..).chain(clients.range(..id)).take(count);
    let before = clients.range(..id).rev().chain(clients.range(id..).rev()).take(count);
    let mut found: Vec<(u128, &PeerId)> = after.chain(before).map(|(k, c)| (*k, &c.peer)).collect();
    found.sort_unstable_by_key(|(k, _)| (own.ring_distance(Id::from_u128(*k)), *k));
    found.dedup_by_key(|(k, _)| *k);
    found.into_iter().take(count).map(|(_, p)| p.clone()).collect()
}
