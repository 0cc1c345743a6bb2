//! A peer that stops reading (a tab that froze or crashed, its connections still open at
//! our end) is found by the peer manager's pings within seconds, and the routed messages it
//! never read go around it (`past_link::manager::liveness`). Without the pings, a message
//! forwarded to such a peer is lost: nothing tells the sender.

mod harness;

use std::time::Duration;

use harness::{Net, closest, random_key};
use past_core::{Config, Hop, Id};
use past_link::{ManagerConfig, Stack};

const N: usize = 40;

fn network(seed: u64) -> Net<Stack> {
    let mut core = Config::default();
    core.leaf_set_size = 4;
    let manager = ManagerConfig { max_connections: 16, ..ManagerConfig::default() };
    let mut net = Net::stacks(N, seed, &core, &manager);
    net.join_in_turn(Duration::from_secs(3));
    net
}

/// A source, a key and the source's next hop for it: a node it has an open connection to,
/// which is neither the source nor the key's root.
fn source_key_and_hop(net: &Net<Stack>, seed: u64) -> (usize, Id, usize) {
    let ids = net.ids();
    let mut state = seed;
    for _ in 0..1000 {
        let key = random_key(&mut state);
        let root = closest(&ids, key);
        let source = (state % N as u64) as usize;
        let Hop::Forward(hop) = net.nodes[source].ep.node().state().next_hop(key, &[]) else { continue };
        let hop = net.index_of(hop).expect("a node");
        if hop != root && source != root && net.manager(source).is_open(net.id(hop)) {
            return (source, key, hop);
        }
    }
    panic!("seed {seed}: no source forwards through an open connection to a node that is not the root");
}

#[test]
fn a_message_forwarded_to_a_frozen_peer_goes_around_it_within_seconds() {
    for seed in [1, 2, 3, 4] {
        let mut net = network(seed);
        let silent = |net: &Net<Stack>| (0..N).map(|i| net.manager(i).stats().silent).sum::<u32>();
        assert_eq!(silent(&net), 0, "seed {seed}: no live peer was taken for failed while the network formed");
        let (source, key, hop) = source_key_and_hop(&net, seed);
        let root = closest(&net.ids(), key);
        net.frozen.insert(hop);
        let sent = net.now;
        let text = "through a node that froze";
        net.route(source, key, text);
        let mut arrived = None;
        for _ in 0..1500 {
            net.run_for(Duration::from_millis(10));
            if net.delivered(root, text) > 0 {
                arrived = Some(net.now.since(sent));
                break;
            }
        }
        let after = arrived.unwrap_or_else(|| panic!("seed {seed}: the message never reached the key's root"));
        println!("seed {seed}: arrived {:.3} s after it was sent", after.as_secs_f64());
        let timeout = ManagerConfig::default().confirm_timeout;
        assert!(after >= timeout, "seed {seed}: arrived after {after:?}, before the frozen peer's time was up");
        assert!(after < timeout * 2, "seed {seed}: arrived {after:?} after it was sent");
        assert_eq!(net.delivered(root, text), 1, "seed {seed}: once");
        assert_eq!(net.manager(source).stats().silent, 1, "seed {seed}: the source took the frozen peer for failed");
        assert!(!net.manager(source).is_open(net.id(hop)), "seed {seed}: and closed its connection");
    }
}
