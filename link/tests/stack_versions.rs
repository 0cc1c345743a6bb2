//! Two nodes of different overlay versions cannot understand each other. Each says its
//! version first in its hello, so the node that reads another version drops the peer with a
//! reason that names both versions (`past_link::version`), at the handshake, before any
//! Pastry message of the other's format is read; and the nodes of one version go on
//! forming their network without it, giving it no more connections (from their budgets)
//! for a while.

mod harness;

use std::time::Duration;

use harness::Net;
use past_core::Config;
use past_link::version::version_text;
use past_link::{ManagerConfig, OVERLAY_VERSION, Stack, StackEvent};

const N: usize = 6;
const OTHER: usize = N - 1;
/// How long the network runs after the joins: less than the 10 minutes for which a node
/// gives a peer of another version no connection.
const RUN: Duration = Duration::from_secs(540);

fn network(other_version: u32) -> Net<Stack> {
    let mut core = Config::default();
    core.leaf_set_size = 4;
    let mut net = Net::stacks(N, 5, &core, &ManagerConfig::default());
    net.versions.insert(OTHER, other_version);
    for i in 0..N {
        net.join(i);
        net.run_for(Duration::from_millis(300));
    }
    net.run_for(RUN);
    net
}

/// Reasons node `i` gave for refusing peers.
fn refusals(net: &Net<Stack>, i: usize) -> Vec<String> {
    net.nodes[i]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            StackEvent::Refused { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_of_another_version_is_refused_at_the_handshake_with_both_versions_named() {
    for other in [OVERLAY_VERSION + 1, OVERLAY_VERSION - 1] {
        let net = network(other);
        let same: Vec<usize> = (0..OTHER).collect();
        assert!(net.all_joined(same.iter().copied()), "the nodes of one version formed their network");
        assert!(!net.all_joined([OTHER]), "the node of version {} joined nobody", version_text(other));
        let expected = format!(
            "the peer speaks overlay version {}, this node {}",
            version_text(other),
            version_text(OVERLAY_VERSION)
        );
        let refusing: Vec<usize> = same.iter().copied().filter(|&i| refusals(&net, i).contains(&expected)).collect();
        assert!(!refusing.is_empty(), "some node refused the other version with the reason: {expected}");
        for &i in &same {
            let stats = net.manager(i).stats();
            let refused = refusals(&net, i).iter().filter(|r| **r == expected).count() as u32;
            assert_eq!(stats.other_version, refused, "node {i} counted each refusal for the version");
            assert!(!net.manager(i).is_open(net.id(OTHER)), "node {i} keeps no connection to the other version");
            assert_eq!(refusals(&net, i).len() as u32, refused, "node {i} refused no peer of its own version");
        }
        let by_other = net.nodes[OTHER].creates.len();
        let to_other: usize =
            same.iter().map(|&i| net.nodes[i].creates.iter().filter(|c| c.1 == net.id(OTHER)).count()).sum();
        println!(
            "version {}: refused by {refusing:?}; connections created in {RUN:?}: {by_other} by it, {to_other} to it",
            version_text(other)
        );
        assert!(
            to_other <= same.len(),
            "each node gave the other version one connection at most, not {to_other} in all"
        );
    }
}
