//! A node that cannot reach its leaf-set neighbour (no connection opens between the two, as
//! when its connection budget is spent) is not the root of the keys the neighbour is closer
//! to. A message it routes to such a key goes around, through another node, and is
//! delivered at the neighbour; before, the node took itself for the root and delivered it
//! to itself (a lookup then heard "not found" for a file that was there).

mod harness;

use std::time::Duration;

use harness::{Net, fast_timers};
use past_core::Id;
use past_link::Stack;

const N: usize = 12;

/// A joined network of `N` stacks where the node with the smallest id can no longer reach
/// the next one: (network, that node, its clockwise neighbour).
fn cut_network(seed: u64) -> (Net<Stack>, usize, usize) {
    let (core, manager) = fast_timers(4, 16);
    let mut net = Net::stacks(N, seed, &core, &manager);
    net.join_in_turn(Duration::from_secs(3));
    let mut order: Vec<usize> = (0..N).collect();
    order.sort_by_key(|&i| net.id(i));
    let (sender, neighbour) = (order[0], order[1]);
    net.blocked.insert((sender.min(neighbour), sender.max(neighbour)));
    net.break_connections(sender, neighbour);
    (net, sender, neighbour)
}

#[test]
fn a_message_for_a_key_whose_root_cannot_be_reached_goes_around_to_it() {
    for seed in 1..=4 {
        let (mut net, sender, root) = cut_network(seed);
        // Time for the sender to try the neighbour again and fail.
        net.run_for(Duration::from_secs(2));
        let key = Id::from_u128(net.id(root).as_u128() - 1);
        net.route(sender, key, "around");
        net.run_for(Duration::from_secs(15));
        assert_eq!(net.delivered(sender, "around"), 0, "seed {seed}: the sender delivered it to itself");
        assert_eq!(net.delivered(root, "around"), 1, "seed {seed}: the root did not get it once");
    }
}
