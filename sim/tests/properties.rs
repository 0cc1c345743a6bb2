//! Property tests of the real protocol on random small networks: whatever the ids, joins
//! and failures, tables keep their invariants, every hop makes progress and every route ends
//! at the numerically closest live node.

use core::time::Duration;

use past_core::{Config, DigitBase, Hop, Id};
use past_sim::measure::closest_live;
use past_sim::network::Network;
use proptest::prelude::*;

fn check_tables(network: &Network) -> Result<(), TestCaseError> {
    for node in network.live_nodes() {
        let state = network.node(node).state();
        state.leaf_set.check().map_err(TestCaseError::fail)?;
        state.table.check().map_err(TestCaseError::fail)?;
        state.neighborhood.check().map_err(TestCaseError::fail)?;
    }
    Ok(())
}

/// Walks the route of `key` from `source` through the nodes' own next-hop decisions.
fn walk(network: &Network, source: u32, key: Id, base: DigitBase) -> Result<Id, TestCaseError> {
    let index = |id: Id| network.live_nodes().into_iter().find(|&n| network.id(n) == id);
    let mut at = source;
    for _ in 0..64 {
        let here = network.id(at);
        match network.node(at).state().next_hop(key, &[]) {
            Hop::Local => return Ok(here),
            Hop::Forward(next) => {
                let longer = base.shared_prefix(next, key) > base.shared_prefix(here, key);
                let closer = key.ring_distance(next) < key.ring_distance(here);
                prop_assert!(longer || closer, "hop {:?} -> {:?} makes no progress towards {:?}", here, next, key);
                at = index(next).ok_or_else(|| TestCaseError::fail(format!("{next:?} is not a live node")))?;
            }
        }
    }
    Err(TestCaseError::fail("route longer than 64 hops"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn routes_end_at_the_closest_live_node(
        seed in any::<u64>(),
        nodes in 2usize..250,
        fail_percent in 0u64..30,
        bits in prop::sample::select(vec![2u8, 3, 4, 5]),
        leaf_set_size in prop::sample::select(vec![4usize, 8, 16]),
    ) {
        let mut config = Config::default();
        config.base = DigitBase::new(bits).unwrap();
        config.leaf_set_size = leaf_set_size;
        config.keepalive_interval = None;
        config.table_probe_interval = None;
        let base = config.base;
        let mut network = Network::new(config, nodes, seed);
        for _ in 0..nodes {
            network.add_node();
        }
        check_tables(&network)?;
        let victims: Vec<u32> = network.live_nodes().into_iter().filter(|&_n| network.random() % 100 < fail_percent).collect();
        if victims.len() < nodes {
            for victim in victims {
                network.kill(victim);
            }
        }
        network.set_maintenance(Some(Duration::from_secs(5)), Some(Duration::from_secs(10)), true);
        network.run_for(Duration::from_secs(40));
        check_tables(&network)?;
        let live = network.live_ids();
        for source in network.live_nodes().into_iter().take(30) {
            let key = network.random_id();
            let end = walk(&network, source, key, base)?;
            prop_assert_eq!(Some(end), closest_live(&live, key));
        }
    }
}
