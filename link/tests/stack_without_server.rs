//! The browser test `overlay_without_server` in memory, over many seeds: eight nodes with
//! leaf sets of two, binary digits and at most four connections each (so connections
//! close and must be signalled again through the overlay), then the signaling server
//! stops. Six times over 42 s, each node in turn routes a payload to a random key: each
//! arrives exactly once, at the node closest to its key. Before overlay signals took their
//! first hop through the peer that named their target, seed 20 lost a payload.

mod harness;

use std::time::Duration;

use harness::{Net, closest, fast_timers, random_key};
use past_core::{DigitBase, LeafSet};

const N: usize = 8;

fn run(seed: u64) -> Vec<String> {
    let (mut core, manager) = fast_timers(2, 4);
    core.base = DigitBase::new(1).expect("one bit per digit");
    let mut net = Net::stacks(N, seed, &core, &manager);
    for i in 0..N {
        net.join(i);
        net.run_for(Duration::from_millis(300));
    }
    net.run_for(Duration::from_secs(15));
    let ids = net.ids();
    let mut wrong = Vec::new();
    let inexact = |net: &Net<past_link::Stack>| {
        (0..N)
            .filter(|&i| net.nodes[i].ep.node().state().leaf_set != LeafSet::from_ids(ids[i], 2, ids.iter().copied()))
            .count()
    };
    if inexact(&net) > 0 {
        wrong.push(format!("seed {seed}: {} leaf sets not exact before the server stops", inexact(&net)));
    }
    for i in 0..N {
        net.nodes[i].ep.set_server(false);
    }
    for round in 0..6 {
        net.run_for(Duration::from_secs(3));
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(round + 1);
        for i in 0..N {
            let key = random_key(&mut x);
            let text = format!("r{round}-{i}");
            net.route(i, key, &text);
            net.run_for(Duration::from_millis(500));
            let at = closest(&ids, key);
            if net.delivered(at, &text) != 1 {
                let elsewhere: Vec<usize> = (0..N).filter(|&j| net.delivered(j, &text) > 0).collect();
                let bad = inexact(&net);
                wrong.push(format!("seed {seed}: {text} not at node {at} but at {elsewhere:?}; {bad} leaf sets wrong"));
            }
        }
    }
    wrong
}

#[test]
fn every_payload_reaches_the_closest_node_after_the_server_stops() {
    let wrong: Vec<String> = (1..=30).flat_map(run).collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
