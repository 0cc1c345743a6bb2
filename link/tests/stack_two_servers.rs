//! Issue 12, several signaling servers: nodes bootstrapped through two servers form two
//! rings; one node that registers with both (as `past-node serve --signaling A --signaling
//! B` does) introduces the second server's nodes to its core (once it joined the first
//! ring, also when the second welcome came while it was joining), and the two rings merge
//! into one: every leaf set exact over all the ids, and every payload routed to the node
//! closest to its key, whichever ring it started in.

mod harness;

use std::time::Duration;

use harness::{Net, closest, random_key};
use past_core::{Config, Id, LeafSet};
use past_link::{ManagerConfig, Stack};

/// Nodes on each server alone.
const HALF: usize = 6;
/// The node registered with both.
const BRIDGE: usize = 2 * HALF;
const L: usize = 4;

fn inexact(net: &Net<Stack>, nodes: &[usize]) -> Vec<usize> {
    let ids: Vec<Id> = nodes.iter().map(|&i| net.id(i)).collect();
    nodes
        .iter()
        .copied()
        .filter(|&i| net.nodes[i].ep.node().state().leaf_set != LeafSet::from_ids(net.id(i), L, ids.iter().copied()))
        .collect()
}

fn two_rings_merge(seed: u64) {
    let mut core = Config::default();
    core.leaf_set_size = L;
    let mut net = Net::stacks(BRIDGE + 1, seed, &core, &ManagerConfig::default());
    for i in 0..HALF {
        net.join(i);
        net.join_second(HALF + i);
        net.run_for(Duration::from_millis(500));
    }
    net.run_for(Duration::from_secs(15));
    let first: Vec<usize> = (0..HALF).collect();
    let second: Vec<usize> = (HALF..BRIDGE).collect();
    assert!(inexact(&net, &first).is_empty() && inexact(&net, &second).is_empty(), "seed {seed}: two rings first");

    // Odd seeds: the second welcome comes once the bridge joined; even: while it joins.
    net.join(BRIDGE);
    if seed % 2 == 1 {
        net.run_for(Duration::from_secs(5));
        assert!(net.all_joined([BRIDGE]), "seed {seed}: the bridge joined the first ring");
    }
    net.join_second(BRIDGE);
    net.run_for(Duration::from_secs(20));

    let all: Vec<usize> = (0..=BRIDGE).collect();
    assert_eq!(inexact(&net, &all), Vec::<usize>::new(), "seed {seed}: leaf sets not exact over both rings");
    let (mut x, ids) = (seed, net.ids());
    for i in 0..BRIDGE {
        let key = random_key(&mut x);
        let text = format!("from {i}");
        net.route(i, key, &text);
        net.run_for(Duration::from_millis(500));
        let at = closest(&ids, key);
        assert_eq!(net.delivered(at, &text), 1, "seed {seed}: a payload from node {i} did not reach node {at}");
    }
}

#[test]
fn a_node_on_two_servers_merges_their_rings() {
    for seed in 1..=20 {
        two_rings_merge(seed);
    }
}
