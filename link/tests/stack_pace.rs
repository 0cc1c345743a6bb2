//! Issue 14, the paced budget with the real core: a pace that allows no connection beyond
//! the leaf set's for the whole test still lets every node join and keep an exact leaf set
//! (the core's leaf set says which peers are leaves, `Tables::is_leaf`), while routing table
//! entries beyond the pace are refused and the tables keep holes.

mod harness;

use std::time::Duration;

use harness::Net;
use past_core::{Config, LeafSet};
use past_link::ManagerConfig;
use past_link::manager::Pace;

const N: usize = 24;
const L: usize = 4;

#[test]
fn leaves_are_connected_beyond_the_pace_and_table_entries_are_not() {
    let mut core = Config::default();
    core.leaf_set_size = L;
    // No connection at start, one more every 75 s: none beyond the leaf set's in this test.
    let pace = Pace { at_start: 0, target: Duration::from_secs(8 * 3600) };
    let manager = ManagerConfig { pace: Some(pace), ..ManagerConfig::default() };
    let mut net = Net::stacks(N, 14, &core, &manager);
    for i in 0..N {
        net.join(i);
        net.run_for(Duration::from_millis(200));
    }
    net.run_for(Duration::from_secs(30));
    assert!(net.all_joined(0..N), "every node joined");
    let ids = net.ids();
    for i in 0..N {
        let expected = LeafSet::from_ids(ids[i], L, ids.iter().copied());
        assert_eq!(net.nodes[i].ep.node().state().leaf_set, expected, "node {i}'s leaf set");
    }
    let beyond = |i: usize| net.manager(i).recent_trouble().any(|t| t.what.contains("beyond the pace"));
    assert!((0..N).any(beyond), "no attempt was refused by the pace");
    let created: u32 = (0..N).map(|i| net.manager(i).stats().created).sum();
    eprintln!("connections created: {created} in all, {:.1} per node", f64::from(created) / N as f64);
}
