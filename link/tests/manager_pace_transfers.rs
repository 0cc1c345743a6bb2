//! Issue 14, the paced budget and PAST: a connection opened to carry PAST content (a lookup's
//! answer, a chunk pull) is not paced, ours or a peer's that says so in its offer, while a
//! routing table entry beyond the pace is refused; and the last connections of the budget
//! (the reload reserve) are kept for the leaf set, transfers included.

mod harness;

use std::time::Duration;

use harness::{Bare, Net, transfer};
use past_core::Id;
use past_core::past::PastMessage;
use past_core::wire::{Message, Probe, RoutedBody};
use past_link::manager::Pace;
use past_link::{AppMessage, ManagerConfig, OverlaySignal, PeerEvent, SignalKind};

fn probe() -> Message<AppMessage> {
    Message::Probe(Probe { ask: Some(1), answer: None })
}

/// `n` bare managers with the server, `at_start` connections at once then next to nothing
/// more (the rest spread over ten thousand hours; the pace allows one more as soon as any
/// time passed); the hub (node 0) knows every node.
fn network(n: usize, budget: u32, at_start: u32) -> Net<Bare> {
    let pace = Pace { at_start, target: Duration::from_secs(10_000 * 3600) };
    let config = ManagerConfig { connection_budget: budget, pace: Some(pace), ..ManagerConfig::default() };
    let mut net = Net::bare(n, 23, &config);
    for i in 0..n {
        net.register(i);
        net.with(i, |b, _| b.manager.set_server(true));
    }
    let ids = net.ids();
    net.with(0, |b, now| b.manager.note_outsiders(&ids[1..], now));
    net
}

/// The hub sends `message` to node `i` (a routing table entry unless `leaf`), and a second
/// passes.
fn send(net: &mut Net<Bare>, i: usize, message: Message<AppMessage>, leaf: bool) {
    send_now(net, i, message, leaf);
    net.run_for(Duration::from_secs(1));
}

/// The hub sends `message` to node `i` (a routing table entry unless `leaf`).
fn send_now(net: &mut Net<Bare>, i: usize, message: Message<AppMessage>, leaf: bool) {
    let id = net.id(i);
    net.with(0, |b, now| {
        b.tables.keeps.insert(id);
        if leaf {
            b.tables.leaves.insert(id);
        }
        b.manager.send(id, message, &b.tables, now);
    });
}

/// An overlay offer from node `i` reaches the hub through node 1; whether the hub answers.
fn offer_answered(net: &mut Net<Bare>, i: usize, transfer: bool) -> bool {
    let (hub, from, via) = (net.id(0), net.id(i), net.id(1));
    let sdp = format!("v=0\r\na=fingerprint:sha-256 EE:{i:02}\r\nm=application 9\r\n");
    let signal = OverlaySignal { from, to: hub, session: 40 + i as u64, kind: SignalKind::Offer { sdp, transfer } };
    net.with(0, |b, now| b.manager.handle_overlay_signal(signal, 2, Some(via), &b.tables, now));
    creates(net, from) == 1
}

fn creates(net: &Net<Bare>, peer: Id) -> usize {
    net.nodes[0].creates.iter().filter(|(_, p, _)| *p == peer).count()
}

fn send_failed(net: &Net<Bare>, peer: Id) -> bool {
    net.nodes[0].events.iter().any(|(_, e)| matches!(e, PeerEvent::SendFailed { to, .. } if *to == peer))
}

#[test]
fn transfers_go_beyond_the_pace_table_entries_do_not() {
    // Everything at the start, when the pace allows exactly 3 connections.
    let mut net = network(10, 120, 3);
    for i in 1..=4 {
        send_now(&mut net, i, probe(), false);
    }
    assert_eq!(creates(&net, net.id(4)), 0, "a table entry beyond the pace got a connection");
    assert!(send_failed(&net, net.id(4)), "the core hears that its probe was not sent");
    send_now(&mut net, 5, transfer(), false);
    // A peer's offer is answered beyond the pace only when it says it is for a transfer.
    assert!(offer_answered(&mut net, 6, true), "a transfer offer was refused");
    assert!(!offer_answered(&mut net, 7, false), "a table offer beyond the pace was answered");

    net.run_for(Duration::from_secs(1));
    for i in [1, 2, 3, 5] {
        assert!(net.manager(0).is_open(net.id(i)), "no connection to {i}");
    }
    // Our own transfer was delivered although beyond the pace.
    let delivered = net.nodes[5].events.iter().any(|(_, e)| {
        matches!(e, PeerEvent::Message { message: Message::Direct(AppMessage::Past(m)), .. }
            if matches!(**m, PastMessage::Released { .. }))
    });
    assert!(delivered, "the PAST message did not reach its peer");
    assert!(!send_failed(&net, net.id(5)));
}

#[test]
fn an_offer_over_the_overlay_says_it_is_for_a_transfer() {
    let mut net = network(6, 120, 100);
    net.record_sent = true;
    send(&mut net, 1, probe(), true);
    // Joined, and the server's names are no longer new: signals go through the overlay.
    net.with(0, |b, _| b.tables.joined = true);
    net.run_for(Duration::from_secs(15));
    send(&mut net, 2, transfer(), false);
    send(&mut net, 3, probe(), false);
    let offers: Vec<(Id, bool)> = net.nodes[0]
        .sent
        .iter()
        .filter_map(|(_, _, m)| match m {
            Message::Route(r) => match &r.body {
                RoutedBody::App(AppMessage::Signal(OverlaySignal {
                    to,
                    kind: SignalKind::Offer { transfer, .. },
                    ..
                })) => Some((*to, *transfer)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(offers.contains(&(net.id(2), true)), "the transfer's offer: {offers:?}");
    assert!(offers.contains(&(net.id(3), false)), "the table entry's offer: {offers:?}");
}

#[test]
fn the_reload_reserve_is_kept_for_the_leaf_set() {
    // 24 connections, a quarter of them (6, less than the default 16) the reserve: a reload
    // is advised at the 18th.
    let mut net = network(22, 24, 100);
    for i in 1..=17 {
        send(&mut net, i, probe(), false);
    }
    assert!(!net.manager(0).reload_advised());
    send(&mut net, 18, transfer(), false);
    assert!(net.manager(0).reload_advised());
    send(&mut net, 19, transfer(), false);
    assert_eq!(creates(&net, net.id(19)), 0, "a transfer took a connection of the reserve");
    assert!(send_failed(&net, net.id(19)));
    assert!(!offer_answered(&mut net, 20, true), "a peer's transfer took a connection of the reserve");
    send(&mut net, 21, probe(), true);
    assert!(net.manager(0).is_open(net.id(21)), "a leaf did not get a connection of the reserve");
}
