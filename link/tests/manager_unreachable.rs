//! Issue 9, an unreachable network: a node with 8 contacts whose connections never open
//! (ICE always fails) for 10 simulated minutes spends at most 20 peer connections and says
//! it is unreachable.

mod harness;

use harness::Net;
use past_core::Config;
use past_link::ManagerConfig;

#[test]
fn a_node_whose_connections_never_open_spends_few_and_says_unreachable() {
    let mut core = Config::default();
    core.leaf_set_size = 4;
    let mut net = Net::stacks(9, 71, &core, &ManagerConfig::default());
    for i in 1..9 {
        net.join(i);
        net.run_for(std::time::Duration::from_millis(500));
    }
    net.run_for(std::time::Duration::from_secs(5));
    assert!(net.all_joined(1..9));
    let start = net.now;
    net.ice_fails.insert(0);
    net.join(0);
    assert_eq!(net.nodes[0].ep.contacts().len(), 8);
    net.run_until(start + std::time::Duration::from_secs(600));
    let stats = net.manager(0).stats();
    println!(
        "unreachable node, 8 contacts, 10 minutes: {} peer connections created, {} failed",
        stats.created, stats.failed
    );
    assert!(stats.created <= 20, "created {} peer connections", stats.created);
    assert!(net.manager(0).unreachable());
    assert!(!net.nodes[0].ep.node().is_joined());
    assert_eq!(stats.opened, 0);
    // Why, for people asking: the latest failures name a contact and the reason.
    let contacts = net.nodes[0].ep.contacts().to_vec();
    let trouble: Vec<_> = net.manager(0).recent_trouble().collect();
    assert!(
        trouble.iter().any(|t| contacts.contains(&t.peer) && t.what.starts_with("connection attempt failed")),
        "{trouble:?}"
    );
}
