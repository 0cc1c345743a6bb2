//! Joins one by one, at the same moment, and graceful leaves, through the real protocol.

use core::time::Duration;

use past_core::{Config, DigitBase, Event, Id, Proximity};
use past_sim::experiment::{Params, build};
use past_sim::measure::{closest_live, leaf_set_errors, table_stats};
use past_sim::network::Network;

fn config(keepalive: Option<Duration>) -> Config {
    let mut config = Config::default();
    config.keepalive_interval = keepalive;
    config.table_probe_interval = keepalive.map(|k| k * 4);
    config
}

/// Every lookup from every live node to `keys` random keys ends at the closest live node.
fn assert_lookups_correct(network: &mut Network, keys: usize) {
    network.clear_lookups();
    for source in network.live_nodes() {
        for _ in 0..keys {
            let key = network.random_id();
            network.lookup(source, key);
        }
    }
    network.run_until_quiet();
    let live = network.live_ids();
    for lookup in network.lookups() {
        let at = lookup.delivered_at.map(|n| network.id(n));
        assert_eq!(at, closest_live(&live, lookup.key), "lookup of {:?} from node {}", lookup.key, lookup.source);
    }
}

#[test]
fn tiny_networks_route_to_the_closest_node() {
    for size in 1..=20 {
        let mut network = Network::new(config(None), size, size as u64);
        for _ in 0..size {
            network.add_node();
        }
        assert_eq!(leaf_set_errors(&network, 16), 0, "{size} nodes");
        assert_lookups_correct(&mut network, 5);
    }
}

#[test]
fn nodes_joining_at_once_converge_to_exact_leaf_sets() {
    let mut network = Network::new(config(Some(Duration::from_secs(1))), 200, 11);
    for _ in 0..20 {
        network.add_node();
    }
    // 60 nodes join within the same instant, most through the same few contacts.
    let joining: Vec<u32> = (0..60).map(|_| network.spawn()).collect();
    network.run_for(Duration::from_secs(20));
    for node in joining {
        assert!(network.node(node).is_joined(), "node {node} joined");
        network.mark_present(node);
    }
    assert_eq!(leaf_set_errors(&network, 16), 0, "leaf sets converge after concurrent joins");
    assert_lookups_correct(&mut network, 10);
}

#[test]
fn a_leaving_node_leaves_every_leaf_set_at_once() {
    let mut network = Network::new(config(None), 100, 5);
    for _ in 0..100 {
        network.add_node();
    }
    network.take_events();
    let leaving = 42;
    let id: Id = network.id(leaving);
    network.leave(leaving);
    network.run_until_quiet();
    for node in network.live_nodes() {
        assert!(
            !network.node(node).state().leaf_set.contains(id),
            "node {node} still has the node that left as a leaf"
        );
    }
    assert!(network.take_events().iter().any(|(_, e)| *e == Event::NodeLeft(id)));
    assert_eq!(leaf_set_errors(&network, 16), 0, "leaf sets repaired after the leave");
    assert_lookups_correct(&mut network, 10);
    // Nodes that only had it in a routing table find out by their periodic probes.
    network.set_maintenance(None, Some(Duration::from_secs(10)), true);
    network.run_for(Duration::from_secs(30));
    assert!(network.live_nodes().iter().all(|&n| !network.node(n).state().knows(id)));
    assert_eq!(table_stats(&network, DigitBase::DEFAULT).dead, 0);
}

#[test]
fn with_probes_messages_per_join_include_the_probes_and_their_answers() {
    let params = |proximity| Params {
        nodes: 200,
        base: DigitBase::DEFAULT,
        leaf_set_size: 16,
        neighborhood_size: 32,
        lookups: 0,
        seed: 3,
        proximity,
    };
    let (_, probes) = build(&params(Proximity::Probes));
    let (_, driver) = build(&params(Proximity::Driver));
    assert_eq!(probes.leaf_set_errors, 0, "probes: exact leaf sets");
    assert_eq!(driver.leaf_set_errors, 0, "driver: exact leaf sets");
    // The driver's measurements cost no message; every probe is answered, so with probes
    // at least twice as many probe messages go as with the driver's one-way announcements.
    assert!(probes.messages.probe >= 2 * driver.messages.probe, "{probes:?} against {driver:?}");
    assert!(probes.messages.total() > driver.messages.total() + driver.messages.probe);
}
