//! A message the peer manager gives back to the core says why it failed: the peer failed on
//! an open connection (it stopped answering), or no connection to it could be used from
//! here. Only the first lets the core name the peer in a routed message, so that the rest
//! of the route avoids it (`past_core::SendFailure`): a peer this node cannot reach may be
//! reachable from the next.

mod harness;

use std::time::Duration;

use harness::Net;
use past_core::Id;
use past_core::wire::{Message, Routed, RoutedBody, ThinVec};
use past_link::manager::Source;
use past_link::{AppMessage, ManagerConfig, Payload, PeerEvent};

/// A routed message for `to`'s id, small enough to be kept until the peer confirms it.
fn routed(to: Id) -> Message<AppMessage> {
    let payload = Payload { origin: Id::ZERO, text: true, data: b"on its way".to_vec() };
    Message::Route(Routed {
        key: to,
        hops: 1,
        attempt: 0,
        failed: ThinVec::new(),
        body: RoutedBody::App(AppMessage::Payload(payload)),
    })
}

/// The `peer_failed` of every message node 0 got back for `to` since event `since`.
fn given_back(net: &Net<harness::Bare>, to: Id, since: usize) -> Vec<bool> {
    net.nodes[0].events[since..]
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::SendFailed { to: t, peer_failed, .. } if *t == to => Some(*peer_failed),
            _ => None,
        })
        .collect()
}

#[test]
fn a_frozen_peer_failed_and_a_peer_that_left_is_out_of_reach() {
    let config = ManagerConfig::default();
    let mut net = Net::bare(2, 47, &config);
    let peer = net.id(1);
    for i in 0..2 {
        net.register(i);
        net.with(i, |b, _| b.manager.set_server(true));
    }
    net.with(0, |b, now| b.manager.connect(peer, Source::Server, &b.tables, now));
    net.run_for(Duration::from_secs(1));
    assert!(net.manager(0).is_open(peer), "the two nodes connected");

    // The peer freezes with the message unread: the ping finds it, and the message comes
    // back as failed by the peer.
    net.frozen.insert(1);
    let mark = net.nodes[0].events.len();
    net.with(0, |b, now| b.manager.send(peer, routed(peer), &b.tables, now));
    net.run_for(config.confirm_timeout + Duration::from_secs(1));
    assert_eq!(net.manager(0).stats().silent, 1, "the frozen peer was found by its ping");
    assert_eq!(given_back(&net, peer, mark), [true], "given back once, the peer failed");

    // Its node is then gone for a while: a message for it fails at once, out of reach.
    net.with(0, |b, now| b.manager.handle_node_gone(peer, true, now));
    let mark = net.nodes[0].events.len();
    net.with(0, |b, now| b.manager.send(peer, routed(peer), &b.tables, now));
    net.run_for(Duration::from_millis(10));
    assert_eq!(given_back(&net, peer, mark), [false], "given back at once, out of reach");
}
