//! Issue 9, eviction: above `max_connections`, idle connections close, but never one to a
//! leaf or a routing table entry (the manager driven alone, with fake tables); issue 14: nor
//! one to a peer that keeps us in its own tables.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{Net, secs};
use past_core::wire::{Message, Probe};
use past_link::manager::Source;
use past_link::{AppMessage, ManagerConfig, Payload, PeerEvent};

/// Eviction above `max_connections` of connections idle for 2 s, after a grace of 1 s.
fn quick_eviction(max_connections: usize) -> ManagerConfig {
    ManagerConfig {
        max_connections,
        idle: Duration::from_secs(2),
        eviction_grace: Duration::from_secs(1),
        ..ManagerConfig::default()
    }
}

#[test]
fn eviction_never_drops_a_kept_peer() {
    let config = quick_eviction(3);
    let mut net = Net::bare(9, 31, &config);
    let hub = net.id(0);
    // The hub keeps five peers (more than max_connections) in its tables.
    let kept: BTreeSet<_> = (1..=5).map(|i| net.id(i)).collect();
    net.nodes[0].ep.tables.keeps = kept.clone();
    net.nodes[0].ep.tables.joined = true;
    net.register(0);
    net.with(0, |b, _| b.manager.set_server(true));
    for i in 1..9 {
        net.register(i);
        net.with(i, |b, now| {
            b.manager.set_server(true);
            b.manager.connect(hub, Source::Server, &b.tables, now);
        });
    }
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.manager(0).stats().open, 8, "every peer connected");
    net.run_until_with(secs(60.0), |net| {
        for peer in &kept {
            assert!(net.manager(0).is_open(*peer), "a kept peer lost its connection at {:?}", net.now);
        }
    });
    for i in 1..9 {
        let open = net.manager(0).is_open(net.id(i));
        assert_eq!(open, i <= 5, "peer {i}");
    }
    let evicted: BTreeSet<_> = net.nodes[0]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::Closed { peer, reason } if reason == "evicted" => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, (6..9).map(|i| net.id(i)).collect());
    assert_eq!(net.manager(0).stats().open, 5);
    // The evicted peers were told: they did not take the hub for failed.
    for i in 6..9 {
        assert!(!net.manager(i).is_open(hub));
        assert!(
            net.nodes[i]
                .events
                .iter()
                .any(|(_, e)| matches!(e, PeerEvent::Closed { reason, .. } if reason == "closed by the peer"))
        );
    }
}

/// A probe of the sender's own (a keep-alive or table probe): it keeps the receiver in its
/// tables.
fn probe() -> Message<AppMessage> {
    Message::Probe(Probe { ask: Some(1), answer: None })
}

#[test]
fn an_idle_peer_that_keeps_us_is_not_evicted_for_a_newcomer() {
    let config = quick_eviction(2);
    let mut net = Net::bare(4, 33, &config);
    for i in 0..4 {
        net.register(i);
        net.with(i, |b, _| b.manager.set_server(true));
    }
    let hub = net.id(0);
    // Peer 1 keeps the hub in its routing table: it connects and probes it. The hub keeps
    // neither peer in its own tables.
    net.with(1, |b, now| {
        b.manager.connect(hub, Source::Server, &b.tables, now);
        b.manager.send(hub, probe(), &b.tables, now);
    });
    net.run_for(Duration::from_secs(1));
    // Peer 2 only talked to the hub, and later than peer 1.
    let hello = Message::Direct(AppMessage::Payload(Payload { origin: net.id(2), text: true, data: b"hi".to_vec() }));
    net.with(2, |b, now| {
        b.manager.connect(hub, Source::Server, &b.tables, now);
        b.manager.send(hub, hello, &b.tables, now);
    });
    net.run_for(Duration::from_secs(10));
    assert!(net.manager(0).is_open(net.id(1)) && net.manager(0).is_open(net.id(2)));
    assert!(net.manager(0).holds_us(net.id(1), net.now), "peer 1 probed the hub");
    assert!(!net.manager(0).holds_us(net.id(2), net.now));
    // Both are idle, peer 1 the least recently used. A newcomer needs a slot: the peer that
    // does not keep the hub goes, the one that does stays (it would reconnect at its next
    // table probe).
    net.with(3, |b, now| b.manager.connect(hub, Source::Server, &b.tables, now));
    net.run_for(Duration::from_secs(2));
    assert!(net.manager(0).is_open(net.id(3)), "the newcomer connected");
    assert!(net.manager(0).is_open(net.id(1)), "the peer that keeps the hub was evicted");
    assert!(!net.manager(0).is_open(net.id(2)), "the other idle peer stayed");
    let evicted: Vec<_> = net.nodes[0]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            PeerEvent::Closed { peer, reason } if reason == "evicted" => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, vec![net.id(2)]);
}
