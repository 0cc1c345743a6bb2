//! Issue 9, overlay signals that must be dropped: a signal whose first hop is not its
//! claimed sender, and an answer that matches no offer of ours. Issue 12: an overlay offer
//! left unanswered goes again along other first hops, and a copy of an offer is answered
//! again instead of replacing the connection.

mod harness;

use std::time::Duration;

use ed25519_dalek::SigningKey;
use harness::{Net, identity};
use past_core::wire::{Message, Routed, RoutedBody, ThinVec};
use past_core::{Config, Id};
use past_link::{AppMessage, Command, ManagerConfig, OverlaySignal, SignalKind, Stack};

fn fresh_id(n: u8) -> Id {
    identity(&SigningKey::from_bytes(&[n; 32])).0
}

fn signal(key: Id, hops: u8, from: Id, session: u64, kind: SignalKind) -> Message<AppMessage> {
    let body = RoutedBody::App(AppMessage::Signal(OverlaySignal { from, to: key, session, kind }));
    Message::Route(Routed { key, hops, attempt: 0, failed: ThinVec::new(), body })
}

fn sdp(print: &str) -> String {
    format!("v=0\r\na=fingerprint:sha-256 {print}\r\nm=application 9\r\n")
}

/// A joined network of four; node 1 (the sender) has an open connection to node 0.
fn network() -> Net<Stack> {
    let mut core = Config::default();
    core.leaf_set_size = 4;
    let mut net = Net::stacks(4, 51, &core, &ManagerConfig::default());
    net.record_sent = true;
    for i in 0..4 {
        net.join(i);
        net.run_for(Duration::from_secs(1));
    }
    net.run_for(Duration::from_secs(5));
    assert!(net.all_joined(0..4));
    assert!(!net.links(1, 0).is_empty(), "nodes 0 and 1 are connected");
    net
}

fn creates_for(net: &Net<Stack>, i: usize, peer: Id) -> usize {
    net.nodes[i].creates.iter().filter(|(_, p, _)| *p == peer).count()
}

#[test]
fn a_signal_whose_first_hop_is_not_its_sender_is_dropped() {
    let mut net = network();
    let (victim, x) = (net.id(0), fresh_id(200));
    // Node 1 hands node 0, in the signal's first hop, an offer claiming to come from x.
    net.inject(1, 0, &signal(victim, 1, x, 7, SignalKind::Offer { sdp: sdp("AA:01"), transfer: false }));
    net.run_for(Duration::from_millis(100));
    assert_eq!(creates_for(&net, 0, x), 0, "a forged first hop was answered");
    // The same offer having come further (hops = 2) is answered: the check is what dropped
    // it.
    net.inject(1, 0, &signal(victim, 2, x, 8, SignalKind::Offer { sdp: sdp("AA:02"), transfer: false }));
    assert_eq!(creates_for(&net, 0, x), 1);
    let answered = net.nodes[0].creates.iter().any(|(_, p, c)| {
        *p == x
            && net.nodes[0]
                .commands
                .iter()
                .any(|(_, cmd)| matches!(cmd, Command::Create { conn, offer: Some(_), .. } if conn == c))
    });
    assert!(answered, "node 0 answers the offer");
}

#[test]
fn an_answer_to_no_offer_of_ours_is_dropped() {
    let mut net = network();
    let (victim, y, z) = (net.id(0), fresh_id(201), fresh_id(202));
    let apply_answers = |net: &Net<Stack>| {
        net.nodes[0].commands.iter().filter(|(_, c)| matches!(c, Command::ApplyAnswer { .. })).count()
    };
    let base = apply_answers(&net);
    // No offer to z at all.
    net.inject(1, 0, &signal(victim, 2, z, 9, SignalKind::Answer { sdp: sdp("BB:01") }));
    assert_eq!(apply_answers(&net), base);
    // Node 0 offers to y through the overlay.
    net.with(0, |s, now| s.connect(y, now));
    net.run_for(Duration::from_millis(2));
    let session = net.nodes[0]
        .sent
        .iter()
        .find_map(|(_, _, m)| match m {
            Message::Route(Routed { body: RoutedBody::App(AppMessage::Signal(s)), .. })
                if s.to == y && matches!(s.kind, SignalKind::Offer { .. }) =>
            {
                Some(s.session)
            }
            _ => None,
        })
        .expect("node 0 sent an offer to y through the overlay");
    // An answer of another session, and one from another node, are dropped.
    net.inject(1, 0, &signal(victim, 2, y, session ^ 1, SignalKind::Answer { sdp: sdp("BB:02") }));
    net.inject(1, 0, &signal(victim, 2, z, session, SignalKind::Answer { sdp: sdp("BB:03") }));
    assert_eq!(apply_answers(&net), base);
    // The right one is applied, once.
    net.inject(1, 0, &signal(victim, 2, y, session, SignalKind::Answer { sdp: sdp("BB:04") }));
    assert_eq!(apply_answers(&net), base + 1);
    net.inject(1, 0, &signal(victim, 2, y, session, SignalKind::Answer { sdp: sdp("BB:05") }));
    assert_eq!(apply_answers(&net), base + 1, "one answer per offer");
}

/// The overlay offers (or answers) node `i` sent to `to`: first hop and session.
fn signals_to(net: &Net<Stack>, i: usize, to: Id, answers: bool) -> Vec<(Id, u64)> {
    net.nodes[i]
        .sent
        .iter()
        .filter_map(|(_, hop, m)| match m {
            Message::Route(Routed { body: RoutedBody::App(AppMessage::Signal(s)), .. })
                if s.to == to && s.from == net.id(i) && matches!(s.kind, SignalKind::Answer { .. }) == answers =>
            {
                Some((*hop, s.session))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_copy_of_an_offer_is_answered_again_and_a_new_offer_replaces_it() {
    let mut net = network();
    let (victim, x) = (net.id(0), fresh_id(203));
    net.inject(1, 0, &signal(victim, 2, x, 8, SignalKind::Offer { sdp: sdp("CC:01"), transfer: false }));
    net.run_for(Duration::from_millis(50));
    assert_eq!(creates_for(&net, 0, x), 1);
    assert_eq!(signals_to(&net, 0, x, true).len(), 1, "answered once");
    // The same offer again (x sent it again along another path, with its session): the
    // answer goes again, with that session; the connection stays.
    net.inject(1, 0, &signal(victim, 3, x, 8, SignalKind::Offer { sdp: sdp("CC:01"), transfer: false }));
    net.run_for(Duration::from_millis(50));
    assert_eq!(creates_for(&net, 0, x), 1, "a copy does not replace the connection");
    assert_eq!(signals_to(&net, 0, x, true), vec![(net.id(1), 8), (net.id(1), 8)]);
    // A new offer (x restarted) replaces it.
    net.inject(1, 0, &signal(victim, 2, x, 9, SignalKind::Offer { sdp: sdp("CC:02"), transfer: false }));
    net.run_for(Duration::from_millis(50));
    assert_eq!(creates_for(&net, 0, x), 2);
}

/// The network without its server, node 0 connecting to `fresh_id(n)`, a node that never
/// answers: its offer goes over the overlay.
fn offering_over_the_overlay(n: u8) -> (Net<Stack>, Id) {
    let mut net = network();
    for i in 0..4 {
        net.nodes[i].ep.set_server(false);
    }
    let y = fresh_id(n);
    net.with(0, |s, now| s.connect(y, now));
    (net, y)
}

#[test]
fn an_unanswered_overlay_offer_goes_again_along_other_first_hops() {
    let (mut net, y) = offering_over_the_overlay(204);
    net.run_for(ManagerConfig::default().connect_timeout + Duration::from_secs(1));
    let offers = signals_to(&net, 0, y, false);
    assert_eq!(offers.len(), 3, "the offer and two copies: {offers:?}");
    assert!(offers.iter().all(|&(_, session)| session == offers[0].1), "one session");
    let hops: std::collections::BTreeSet<Id> = offers.iter().map(|&(hop, _)| hop).collect();
    assert!(hops.len() >= 2, "other first hops: {offers:?}");
    assert!(!net.manager(0).has_connection(y), "the attempt timed out");
}

#[test]
fn an_offer_whose_timer_fires_late_goes_again_once() {
    let (mut net, y) = offering_over_the_overlay(205);
    net.run_for(Duration::from_millis(50));
    assert_eq!(signals_to(&net, 0, y, false).len(), 1, "the offer");
    // A suspended tab wakes after both copies fell due (a quarter and half the connect
    // timeout): one copy goes, and nothing is due at once again (a driver would spin).
    let late = net.now + ManagerConfig::default().connect_timeout * 3 / 5;
    net.with(0, |s, _| s.handle_timeout(late));
    assert_eq!(signals_to(&net, 0, y, false).len(), 2, "the offer and one copy");
    assert!(net.manager(0).poll_timeout().is_none_or(|at| at > late), "a timer still due");
}
