//! A browser may run a data channel's first messages before the promise that applied the
//! answer, so the driver reports them before the channel opened: the peer's hello must be
//! kept for the handshake, not refused (which dropped the connection, and a tab's join with
//! it).

mod harness;

use harness::{Net, secs};
use past_core::Config;
use past_link::ManagerConfig;

#[test]
fn a_hello_that_comes_before_the_channel_is_reported_open_is_kept_for_the_handshake() {
    let mut net = Net::stacks(2, 21, &Config::default(), &ManagerConfig::default());
    net.late_open.insert(0);
    net.join(1);
    net.join(0);
    net.run_until(secs(5.0));
    let (a, b) = (net.id(0), net.id(1));
    assert!(net.nodes[0].ep.manager().open_peers().any(|p| p == b), "node 0 authenticated node 1");
    assert!(net.nodes[1].ep.manager().open_peers().any(|p| p == a), "node 1 authenticated node 0");
    assert_eq!(net.nodes[0].creates.len(), 1, "at the first attempt");
}
