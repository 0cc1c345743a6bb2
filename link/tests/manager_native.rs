//! A native node's settings (`ManagerConfig::native`): an always-on storage peer answers
//! new readers for longer than a tab's lifetime budget of 480 connections would let it,
//! while no more than `max_connections` are open at once and no reload is ever advised.

mod harness;

use std::time::Duration;

use harness::{Net, transfer};
use past_link::{ManagerConfig, PeerEvent};

/// Readers served one after the other: more than a tab's budget.
const READERS: usize = 600;

/// Time between two readers: within the default limit of 30 new connections a minute.
const SPACING: Duration = Duration::from_millis(2500);

/// What serving the readers cost node 0 and how it went.
struct Served {
    /// Peer connections node 0 created.
    created: u32,
    /// Readers that got their message.
    reached: usize,
    /// Most connections node 0 had open at once.
    most_open: usize,
    /// Events of node 0.
    events: Vec<PeerEvent>,
}

/// Node 0, which the server introduced to every reader, sends PAST content to each in
/// turn, [`SPACING`] apart: a storage peer answering a stream of new readers.
fn serve_readers(config: &ManagerConfig) -> Served {
    let mut net = Net::bare(READERS + 1, 43, config);
    for i in 0..=READERS {
        net.register(i);
        net.with(i, |b, _| b.manager.set_server(true));
    }
    let ids = net.ids();
    net.with(0, |b, now| b.manager.note_outsiders(&ids[1..], now));
    let mut most_open = 0;
    for i in 1..=READERS {
        let to = net.id(i);
        net.with(0, |b, now| b.manager.send(to, transfer(), &b.tables, now));
        let end = net.now + SPACING;
        net.run_until_with(end, |net| most_open = most_open.max(net.manager(0).stats().open));
    }
    let reached = (1..=READERS)
        .filter(|&i| {
            net.nodes[i]
                .events
                .iter()
                .any(|(_, e)| matches!(e, PeerEvent::Message { message, .. } if *message == transfer()))
        })
        .count();
    let events = net.nodes[0].events.iter().map(|(_, e)| e.clone()).collect();
    Served { created: net.manager(0).stats().created, reached, most_open, events }
}

#[test]
fn a_native_node_keeps_connecting_to_new_peers_past_a_tabs_budget() {
    let native = ManagerConfig::native();
    let served = serve_readers(&native);
    assert_eq!(served.reached, READERS, "every reader got its message");
    assert_eq!(served.created, READERS as u32, "one connection per reader");
    assert!(served.most_open <= native.max_connections, "{} open at once", served.most_open);
    assert!(!served.events.iter().any(|e| matches!(e, PeerEvent::BudgetExhausted | PeerEvent::ReloadAdvised)));
}

#[test]
fn a_tab_with_the_same_readers_stops_within_its_budget() {
    let tab = ManagerConfig::default();
    let served = serve_readers(&tab);
    assert_eq!(served.created, tab.connection_budget - tab.reload_reserve, "the reserve is the leaf set's");
    assert_eq!(served.reached, served.created as usize);
    assert!(served.events.contains(&PeerEvent::ReloadAdvised));
}
