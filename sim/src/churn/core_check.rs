//! The same count on the real core, to check the model at small N: nodes of the simulator's
//! network (`crate::network`, default `Config`: keep-alives, table probes, repair, proximity
//! by probes) arrive and crash with the model's session times, and once a minute the peers
//! each observed node needs (its leaf set, its table entries, the live nodes whose tables
//! hold it) are compared with the minute before. Peers that come and go within a minute,
//! and everything the model also leaves out, are not counted.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use past_core::{Config, Id};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::population::uniform;
use super::{Counts, Sessions};
use crate::network::Network;

/// New peers per hour (means over `observers` long-lived nodes) that the real core's nodes
/// needed in a network of `nodes` churning with `sessions`, for `hours`.
pub fn core_counts(nodes: usize, sessions: Sessions, hours: f64, observers: usize, seed: u64) -> Vec<Counts> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut network: Network = Network::new(Config::default(), nodes * 4, seed);
    let mut departures = BinaryHeap::new();
    for index in 0..nodes {
        let node = network.add_node();
        if index >= observers {
            departures.push(Reverse((sessions.residual_ms(&mut rng) as u64, node)));
        }
    }
    let watched: Vec<u32> = (0..observers as u32).collect();
    let mut needed: Vec<BTreeSet<Id>> = vec![BTreeSet::new(); observers];
    let mut per_hour = vec![Counts::default(); hours.ceil() as usize];
    let gap = sessions.mean_minutes() * 60_000.0 / nodes as f64;
    let start = network.now().as_micros() as f64 / 1000.0;
    let mut next_arrival = start + exponential(&mut rng) * gap;
    let mut spawned = Vec::new();
    for minute in 1..=(hours * 60.0) as u64 {
        let tick = start + minute as f64 * 60_000.0;
        loop {
            let departure = departures.peek().map(|Reverse((at, _))| start + *at as f64);
            let at = departure.unwrap_or(f64::MAX).min(next_arrival);
            if at >= tick {
                break;
            }
            advance_to(&mut network, at);
            if departure == Some(at) {
                if let Some(Reverse((_, node))) = departures.pop() {
                    network.kill(node);
                }
            } else {
                let node = network.spawn();
                spawned.push(node);
                let leaves = at - start + sessions.session_ms(&mut rng);
                departures.push(Reverse((leaves as u64, node)));
                next_arrival += exponential(&mut rng) * gap;
            }
        }
        advance_to(&mut network, tick);
        for node in spawned.drain(..) {
            network.mark_present(node);
        }
        let hour = ((minute - 1) / 60) as usize;
        for (k, &observer) in watched.iter().enumerate() {
            if let Some(counts) = per_hour.get_mut(hour) {
                count_new(&network, observer, &mut needed[k], counts, observers as f64);
            }
        }
    }
    per_hour
}

/// Adds to `counts` (divided by `share`) the peers `observer` needs now and did not need a
/// minute ago; `needed` becomes the peers needed now.
fn count_new(network: &Network, observer: u32, needed: &mut BTreeSet<Id>, counts: &mut Counts, share: f64) {
    let own = network.id(observer);
    let state = network.node(observer).state();
    let leaves: BTreeSet<Id> = state.leaf_set.ids().collect();
    let entries: BTreeSet<Id> = state.table.entries().map(|(_, _, e)| e.id).collect();
    let incoming: BTreeSet<Id> = network
        .live_nodes()
        .into_iter()
        .filter(|&n| n != observer && network.node(n).state().table.contains(own))
        .map(|n| network.id(n))
        .collect();
    let now: BTreeSet<Id> = leaves.iter().chain(&entries).chain(&incoming).copied().collect();
    for peer in now.difference(needed) {
        if leaves.contains(peer) {
            counts.leaf += 1.0 / share;
        } else if entries.contains(peer) {
            counts.table += 1.0 / share;
        } else {
            counts.incoming += 1.0 / share;
        }
    }
    *needed = now;
}

/// Runs the network up to `at_ms` (ms of virtual time).
fn advance_to(network: &mut Network, at_ms: f64) {
    let now = network.now().as_micros() as f64 / 1000.0;
    if at_ms > now {
        network.run_for(Duration::from_micros(((at_ms - now) * 1000.0) as u64));
    }
}

fn exponential(rng: &mut ChaCha8Rng) -> f64 {
    -(1.0 - uniform(rng)).ln()
}
