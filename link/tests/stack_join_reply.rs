//! Issue 9: a join reply must not wait for a join timeout when the node closest to the
//! newcomer has no connection to it. The newcomer's only contact is far from it on the
//! ring; the join route ends at the node closest to the newcomer, which is not connected to
//! it and signals the connection for the reply through the signaling server at once (a
//! newcomer is not in the overlay yet, so a signal routed to it would end elsewhere).

mod harness;

use std::time::Duration;

use harness::Net;
use past_core::wire::{Message, Routed, RoutedBody};
use past_core::{Config, Id};
use past_link::manager::{Role, Via};
use past_link::{AppMessage, SignalKind};
use past_link::{ManagerConfig, StackEvent};

const N: usize = 12;

#[test]
fn a_newcomer_gets_its_join_reply_from_an_unconnected_root_without_a_timeout() {
    let mut core = Config::default();
    core.join_timeout = Duration::from_secs(4);
    let mut net = Net::stacks(N + 1, 5, &core, &ManagerConfig::default());
    for i in 0..N {
        net.join(i);
        net.run_for(Duration::from_millis(500));
    }
    net.run_for(Duration::from_secs(5));
    assert!(net.all_joined(0..N), "the network did not form");

    let newcomer = N;
    let x = net.id(newcomer);
    let closest = |ids: &[Id]| *ids.iter().min_by_key(|id| (x.ring_distance(**id), **id)).unwrap_or(&x);
    let others: Vec<Id> = (0..N).map(|i| net.id(i)).collect();
    let root = closest(&others);
    let contact = *others.iter().max_by_key(|id| (x.ring_distance(**id), **id)).unwrap_or(&x);
    assert_ne!(root, contact);
    net.register(newcomer);
    net.record_sent = true;
    let start = net.now;
    net.with(newcomer, |stack, now| stack.handle_welcome(vec![contact], now));
    net.run_for(Duration::from_secs(3));

    let joined_at = net.nodes[newcomer].events.iter().find(|(_, e)| matches!(e, StackEvent::Joined)).map(|(t, _)| *t);
    let joined_at = joined_at.expect("the newcomer did not join within 3 s");
    let took = joined_at.since(start);
    assert!(took < Duration::from_secs(1), "joining took {took:?}: the join reply waited for a timeout");

    let r = net.index_of(root).expect("root index");
    let creates = net.nodes[r].creates.iter().filter(|(_, peer, _)| *peer == x).count();
    assert_eq!(creates, 1, "the root made {creates} connections to the newcomer");
    let conn = net.connection(r, x).expect("the root keeps its connection to the newcomer");
    assert_eq!((conn.role, conn.via), (Role::Offerer, Via::Server), "the root's connection: {conn:?}");
    let overlay_offers = net.nodes[r]
        .sent
        .iter()
        .filter(|(_, _, m)| {
            matches!(m, Message::Route(Routed { body: RoutedBody::App(AppMessage::Signal(s)), .. })
                if s.from == root && s.to == x && matches!(s.kind, SignalKind::Offer { .. }))
        })
        .count();
    assert_eq!(overlay_offers, 0, "the root first tried to reach the newcomer through the overlay");
    eprintln!("joined {took:?} after the welcome, through the contact farthest from it");
}
