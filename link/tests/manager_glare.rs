//! Issue 9, glare: two nodes offer to each other at the same instant, through the signaling
//! server and through the overlay; exactly one connection remains, open on both sides, both
//! sides agree on it, and messages flow over it.

mod harness;

use std::time::Duration;

use harness::{Net, assert_one_state_per_peer};
use past_core::Config;
use past_link::manager::{Role, State, Via};
use past_link::{ManagerConfig, Stack};

fn core() -> Config {
    let mut core = Config::default();
    core.leaf_set_size = 4;
    core
}

/// One connection between `a` and `b`, open on both sides, and the transport pairs exactly
/// those two connections.
fn assert_one_agreed_connection(net: &Net<Stack>, a: usize, b: usize) {
    let (ia, ib) = (net.id(a), net.id(b));
    let ca = net.connection(a, ib).expect("a has no connection to b");
    let cb = net.connection(b, ia).expect("b has no connection to a");
    assert_eq!((ca.state, cb.state), (State::Open, State::Open));
    assert_eq!(net.links(a, b), vec![(ca.conn, cb.conn)], "the transport pairs other connections");
    assert_ne!(ca.role, cb.role, "one side offered, the other answered");
    assert_one_state_per_peer(net.manager(a));
    assert_one_state_per_peer(net.manager(b));
}

#[test]
fn glare_through_the_server_leaves_one_connection() {
    let mut net = Net::stacks(2, 11, &core(), &ManagerConfig::default());
    net.join(0); // Founds the overlay.
    net.run_for(Duration::from_millis(100));
    let (a, b) = (net.id(0), net.id(1));
    // At the same instant: node 1 is welcomed with node 0 as contact (it offers to 0), and
    // node 0 offers to node 1.
    net.register(1);
    net.with(0, |s, now| s.connect(b, now));
    net.join(1);
    for (i, peer) in [(0, b), (1, a)] {
        let c = net.connection(i, peer).expect("an attempt");
        assert_eq!((c.role, c.via, c.state), (Role::Offerer, Via::Server, State::Signaling), "node {i}");
    }
    net.run_for(Duration::from_secs(5));
    assert_one_agreed_connection(&net, 0, 1);
    // The smaller id's offer won: the larger id answered it (and created two connections).
    let (small, large) = if a < b { (0, 1) } else { (1, 0) };
    assert_eq!(net.connection(small, net.id(large)).expect("conn").role, Role::Offerer);
    assert_eq!(net.nodes[small].creates.len(), 1);
    assert_eq!(net.nodes[large].creates.len(), 2);
    // Messages flow: node 1 joined through that connection, and payloads go both ways.
    assert!(net.all_joined(0..2));
    net.route(0, b, "to b");
    net.route(1, a, "to a");
    net.run_for(Duration::from_secs(1));
    assert_eq!((net.delivered(1, "to b"), net.delivered(0, "to a")), (1, 1));
    assert_one_agreed_connection(&net, 0, 1);
}

#[test]
fn glare_through_the_overlay_leaves_one_connection() {
    let manager = ManagerConfig { tombstone: Duration::ZERO, ..ManagerConfig::default() };
    let mut net = Net::stacks(5, 12, &core(), &manager);
    for i in 0..5 {
        net.join(i);
        net.run_for(Duration::from_secs(1));
    }
    net.run_for(Duration::from_secs(10));
    assert!(net.all_joined(0..5));
    let (a, b) = (net.id(0), net.id(1));
    assert_one_agreed_connection(&net, 0, 1);
    let before = (net.nodes[0].creates.len(), net.nodes[1].creates.len());
    // The link breaks, and at the same instant both sides offer again: both are joined and
    // have other open connections, so both offers go through the overlay.
    net.break_link(0, 1);
    net.with(0, |s, now| s.connect(b, now));
    net.with(1, |s, now| s.connect(a, now));
    for (i, peer) in [(0, b), (1, a)] {
        let c = net.connection(i, peer).expect("an attempt");
        assert_eq!((c.role, c.via, c.state), (Role::Offerer, Via::Overlay, State::Signaling), "node {i}");
    }
    net.run_for(Duration::from_secs(5));
    assert_one_agreed_connection(&net, 0, 1);
    let (small, large) = if a < b { (0, 1) } else { (1, 0) };
    assert_eq!(net.connection(small, net.id(large)).expect("conn").role, Role::Offerer);
    let after = (net.nodes[0].creates.len() - before.0, net.nodes[1].creates.len() - before.1);
    let (small_new, large_new) = if small == 0 { after } else { (after.1, after.0) };
    assert_eq!((small_new, large_new), (1, 2), "the smaller id offered once, the larger offered and answered");
    net.route(0, b, "to b");
    net.route(1, a, "to a");
    net.run_for(Duration::from_secs(1));
    assert_eq!((net.delivered(1, "to b"), net.delivered(0, "to a")), (1, 1));
    net.run_for(Duration::from_secs(30));
    assert_one_agreed_connection(&net, 0, 1);
}
