//! A peer whose node announced it left: a message for it fails at once for a while
//! (`ManagerConfig::tombstone`) instead of starting a connection attempt to a node that is
//! gone and waiting out its timeout. So a relay tab whose next tab closed sends the request
//! it should pass on back to its reader within moments, not after the connect timeout.

mod harness;

use std::time::Duration;

use harness::Net;
use past_core::Id;
use past_core::wire::{Message, Probe};
use past_link::manager::Source;
use past_link::{ManagerConfig, PeerEvent};

fn probe() -> Message<past_link::AppMessage> {
    Message::Probe(Probe { ask: Some(1), answer: None })
}

/// Sends a probe from node 0 to `to`; whether it failed at once, and whether node 0 started
/// a connection attempt for it.
fn send_from_0(net: &mut Net<harness::Bare>, to: Id) -> (bool, bool) {
    let (events, creates) = (net.nodes[0].events.len(), net.nodes[0].creates.len());
    net.with(0, |b, now| b.manager.send(to, probe(), &b.tables, now));
    net.run_for(Duration::from_millis(10));
    let failed =
        net.nodes[0].events[events..].iter().any(|(_, e)| matches!(e, PeerEvent::SendFailed { to: t, .. } if *t == to));
    (failed, net.nodes[0].creates.len() > creates)
}

#[test]
fn a_message_for_a_node_that_left_fails_at_once() {
    let config = ManagerConfig::default();
    let mut net = Net::bare(2, 43, &config);
    let gone = net.id(1);
    for i in 0..2 {
        net.register(i);
        net.with(i, |b, _| b.manager.set_server(true));
    }
    net.with(0, |b, now| b.manager.connect(gone, Source::Server, &b.tables, now));
    net.run_for(Duration::from_secs(1));
    assert!(net.manager(0).is_open(gone), "the two nodes connected");

    net.with(0, |b, now| b.manager.handle_node_gone(gone, true, now));
    assert!(!net.manager(0).is_open(gone), "the connection to the node that left closed");
    assert_eq!(send_from_0(&mut net, gone), (true, false), "failed at once, with no attempt");

    // Once the tombstone passed, a message starts an attempt again: the node may be back.
    net.run_for(config.tombstone);
    let (_, attempted) = send_from_0(&mut net, gone);
    assert!(attempted, "a connection attempt after the tombstone");
}
