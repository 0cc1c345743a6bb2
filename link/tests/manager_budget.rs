//! Issue 9, the connection budget and the pending queue: the budget of peer connections is
//! never exceeded, and past it messages come back as `SendFailed` instead of costing new
//! connections; more than `max_pending` messages for a peer being set up come back too.

mod harness;

use std::time::Duration;

use harness::{Net, secs};
use past_core::Id;
use past_core::wire::Message;
use past_link::manager::{Limits, Source};
use past_link::{AppMessage, Command, ManagerConfig, Payload, PeerEvent};

fn payload(n: u8) -> Message<AppMessage> {
    Message::Direct(AppMessage::Payload(Payload { origin: Id::ZERO, text: false, data: vec![n] }))
}

fn send_failed(events: &[(past_core::Time, PeerEvent)], to: Id) -> usize {
    // Refused for the budget: out of reach from here, not failed (`past_core::SendFailure`).
    events
        .iter()
        .filter(|(_, e)| matches!(e, PeerEvent::SendFailed { to: t, peer_failed: false, .. } if *t == to))
        .count()
}

#[test]
fn the_budget_is_never_exceeded_and_messages_fail_past_it() {
    const BUDGET: u32 = 5;
    let limits = Limits { introducer_in_flight: 100, introducer_burst: 100, ..Limits::default() };
    // No reload reserve: the reserve is for the leaf set only (`manager_pace_transfers`).
    let config = ManagerConfig { connection_budget: BUDGET, limits, reload_reserve: 0, ..ManagerConfig::default() };
    let mut net = Net::bare(10, 41, &config);
    for i in 0..10 {
        net.register(i);
        net.with(i, |b, _| b.manager.set_server(true));
    }
    let check = |net: &Net<harness::Bare>| {
        for node in &net.nodes {
            assert!(node.ep.manager.stats().created <= BUDGET, "over budget at {:?}", net.now);
            assert!(node.creates.len() <= BUDGET as usize);
        }
    };
    // The hub sends to nine peers at once: five connections, then the budget is used up.
    for i in 1..10 {
        let to = net.id(i);
        net.with(0, |b, now| b.manager.send(to, payload(i as u8), &b.tables, now));
    }
    check(&net);
    assert_eq!(net.nodes[0].creates.len(), BUDGET as usize);
    assert!(net.manager(0).budget_exhausted());
    assert!(net.nodes[0].events.iter().any(|(_, e)| *e == PeerEvent::BudgetExhausted));
    // Without a reserve, a reload was advised once, at the last connection.
    let advised = net.nodes[0].events.iter().filter(|(_, e)| *e == PeerEvent::ReloadAdvised).count();
    assert_eq!(advised, 1);
    assert!(net.manager(0).reload_advised());
    for i in 6..10 {
        assert_eq!(send_failed(&net.nodes[0].events, net.id(i)), 1, "peer {i}");
    }
    net.run_until_with(secs(30.0), check);
    for i in 1..=5 {
        assert!(net.manager(0).is_open(net.id(i)));
        let got = net.nodes[i]
            .events
            .iter()
            .any(|(_, e)| matches!(e, PeerEvent::Message { message, .. } if *message == payload(i as u8)));
        assert!(got, "peer {i} got its message");
    }
    // Past the budget: an offer to the hub is refused, a message to a new peer fails.
    let hub = net.id(0);
    net.with(7, |b, now| b.manager.connect(hub, Source::Server, &b.tables, now));
    let to = net.id(8);
    net.with(0, |b, now| b.manager.send(to, payload(80), &b.tables, now));
    assert_eq!(send_failed(&net.nodes[0].events, to), 2);
    net.run_until_with(secs(60.0), check);
    assert_eq!(net.manager(0).stats().created, BUDGET);
    assert!(!net.manager(7).is_open(hub));
    let creates = net.nodes[0].commands.iter().filter(|(_, c)| matches!(c, Command::Create { .. })).count();
    assert_eq!(creates, BUDGET as usize);
}

#[test]
fn the_pending_queue_is_bounded() {
    const MAX: usize = 8;
    let config = ManagerConfig { max_pending: MAX, ..ManagerConfig::default() };
    let mut net = Net::bare(2, 42, &config);
    net.register(0);
    net.with(0, |b, _| b.manager.set_server(true));
    // Node 1 never registers: the attempt to it never gets an answer.
    let to = net.id(1);
    for n in 0..MAX + 5 {
        net.with(0, |b, now| b.manager.send(to, payload(n as u8), &b.tables, now));
    }
    assert_eq!(net.nodes[0].creates.len(), 1);
    assert_eq!(send_failed(&net.nodes[0].events, to), 5, "the excess comes back at once");
    assert_eq!(net.connection(0, to).expect("an attempt").pending, MAX);
    // The excess is the last five messages.
    let failed: Vec<_> = net.nodes[0]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::SendFailed { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failed, (MAX..MAX + 5).map(|n| payload(n as u8)).collect::<Vec<_>>());
    // When the attempt times out, the queued ones come back too.
    net.run_for(config.connect_timeout + Duration::from_secs(1));
    assert_eq!(send_failed(&net.nodes[0].events, to), MAX + 5);
    assert!(net.connection(0, to).is_none());
}

/// A node out of budget refuses an offer that came through the server with a reject through
/// the server, so the offerer's messages fail at once, not after its connect timeout (10 s:
/// what a holder answering such a reader waited before it handed the lookup on).
#[test]
fn an_offer_refused_through_the_server_fails_its_messages_at_once() {
    let config = ManagerConfig { connection_budget: 1, reload_reserve: 0, ..ManagerConfig::default() };
    let mut net = Net::bare(3, 43, &config);
    for i in 0..3 {
        net.register(i);
        net.with(i, |b, _| b.manager.set_server(true));
    }
    let (hub, other) = (net.id(0), net.id(2));
    net.with(0, |b, now| b.manager.send(other, payload(1), &b.tables, now));
    net.run_for(Duration::from_secs(2));
    assert!(net.manager(0).budget_exhausted(), "the hub spent its one connection");

    let sent_at = net.now;
    net.with(1, |b, now| b.manager.send(hub, payload(2), &b.tables, now));
    net.run_for(Duration::from_secs(2));
    let failed = net.nodes[1].events.iter().find_map(|(at, e)| match e {
        PeerEvent::SendFailed { to, .. } if *to == hub => Some(*at),
        _ => None,
    });
    let failed = failed.expect("the message to the hub failed");
    assert!(failed.since(sent_at) < Duration::from_secs(1), "failed {:?} after it was sent", failed.since(sent_at));
    let rejects = net.nodes[0].commands.iter().filter(|(_, c)| {
        matches!(c, Command::ToServer { payload: past_signaling_proto::SignalPayload::Reject { .. }, .. })
    });
    assert_eq!(rejects.count(), 1, "the hub rejected the offer through the server");
}
