//! Issue 10, in memory: PAST runs inside the stack of both drivers. A file inserted from
//! one node is stored on the k nodes closest to its fileId, each pulling the content from
//! the inserting node over a connection of its own. A reader far from a file of at most
//! 1 MiB gets the answer and the content back along the lookup's route, over the overlay's
//! connections, and no connection is opened between it and the holder; a larger file comes
//! from the holder that answered, over a direct connection opened through the overlay,
//! which closes once the transfer is over. A holder whose connection to the reader cannot
//! open (the manager's failed attempt comes back to the core as a failed send) sends its
//! answer back along the route instead, and the content of any size follows it. Likewise
//! holders of an insert that no connection to its client opens to pull the content back
//! along the insert's route, and their receipts go that way.

mod harness;

use std::time::Duration;

use harness::Net;
use past_core::past::{
    Answers, CHUNK_SIZE, FileId, InsertRequestSpec, LookupError, PastConfig, PastEvent, PastMessage, PublicKey,
    UploadId,
};
use past_core::wire::Message;
use past_core::{Config, Hop, Id};
use past_link::{AppMessage, ManagerConfig, Stack, StackEvent};

const N: usize = 40;

fn network(seed: u64) -> Net<Stack> {
    let mut core = Config::default();
    core.leaf_set_size = 4;
    // Connections beyond what the tables keep are closed once idle, as in a tab with many
    // peers, so some nodes have no connection to a file's holders.
    let manager = ManagerConfig { max_connections: 16, ..ManagerConfig::default() };
    joined(Net::stacks(N, seed, &core, &manager))
}

/// `net` once each node joined, one after the other, and the tables settled.
fn joined(mut net: Net<Stack>) -> Net<Stack> {
    net.join_in_turn(Duration::from_secs(3));
    net
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The content a reader received in `events`, in order.
fn content_read(events: &[PastEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| if let PastEvent::LookupChunk { data, .. } = e { Some(data) } else { None })
        .flatten()
        .copied()
        .collect()
}

/// The PAST events of node `i` since `from` (an index in its event list).
fn past_events(net: &Net<Stack>, i: usize, from: usize) -> Vec<PastEvent> {
    net.nodes[i].events[from..]
        .iter()
        .filter_map(|(_, e)| match e {
            StackEvent::Past(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn insert(net: &mut Net<Stack>, from: usize, data: Vec<u8>, k: u8) -> FileId {
    let owner = PublicKey(net.nodes[from].key.verifying_key().to_bytes());
    let size = data.len() as u64;
    net.nodes[from].store.add_upload(UploadId(1), data);
    let mark = net.nodes[from].events.len();
    let spec = InsertRequestSpec { name: "notes.bin".into(), owner, k, upload: UploadId(1), size, created: 1 };
    net.with(from, |stack, now| stack.insert(spec, now)).expect("insert accepted");
    net.run_for(Duration::from_secs(5));
    let done = past_events(net, from, mark).into_iter().find_map(|e| match e {
        PastEvent::InsertDone { result, .. } => Some(result),
        _ => None,
    });
    let inserted = done.expect("the insert ended").expect("the insert succeeded");
    assert_eq!(inserted.receipts.len(), usize::from(k));
    inserted.certificate.body.file
}

/// Looks `file` up from `reader`; the bytes, or the error.
fn lookup(net: &mut Net<Stack>, reader: usize, file: FileId) -> Result<(Vec<u8>, Id), LookupError> {
    lookup_for(net, reader, file, Duration::from_secs(5))
}

/// [`lookup`], given `wait` to end.
fn lookup_for(net: &mut Net<Stack>, reader: usize, file: FileId, wait: Duration) -> Result<(Vec<u8>, Id), LookupError> {
    let mark = net.nodes[reader].events.len();
    net.with(reader, |stack, now| stack.lookup(file, now));
    net.run_for(wait);
    let events = past_events(net, reader, mark);
    let Some(PastEvent::LookupDone { result, .. }) = events.iter().find(|e| matches!(e, PastEvent::LookupDone { .. }))
    else {
        panic!("the lookup did not end");
    };
    result.clone().map(|found| (content_read(&events), found.holder))
}

/// The `k` nodes closest to `file`, closest first: its replica holders, the root first.
fn closest_to(net: &Net<Stack>, file: FileId, k: usize) -> Vec<usize> {
    let mut ids = net.ids();
    ids.sort_by_key(|&id| (file.key().ring_distance(id), id));
    ids[..k].iter().map(|&id| net.index_of(id).expect("a node")).collect()
}

/// A node other than `not` that keeps none of `holders` in its tables, that none of them
/// keeps, and that has no connection to any of them, if there is one.
fn stranger_to(net: &Net<Stack>, holders: &[usize], not: usize) -> Option<usize> {
    let keeps = |a: usize, b: usize| {
        let state = net.nodes[a].ep.node().state();
        state.leaf_set.contains(net.id(b)) || state.table.contains(net.id(b)) || net.manager(a).is_open(net.id(b))
    };
    (0..N).find(|&r| r != not && !holders.contains(&r) && holders.iter().all(|&h| !keeps(r, h) && !keeps(h, r)))
}

/// The network of the first seed from 3 on where `data`, inserted by node 0 with k = 3, has a
/// reader that is a stranger to every node holding it ([`stranger_to`]): the network
/// (recording what is sent), the file, those nodes and that reader.
fn file_with_a_stranger(data: &[u8]) -> (Net<Stack>, FileId, Vec<usize>, usize) {
    (3..13)
        .find_map(|seed| {
            let mut net = network(seed);
            net.record_sent = true;
            let file = insert(&mut net, 0, data.to_vec(), 3);
            let holders: Vec<usize> = (0..N).filter(|&i| net.nodes[i].store.content(&file).is_some()).collect();
            let reader = stranger_to(&net, &holders, 0)?;
            Some((net, file, holders, reader))
        })
        .expect("with 40 nodes and l = 4, within ten networks some node is a stranger to the holders")
}

/// Whether node `a` created a connection to node `b`.
fn opened(net: &Net<Stack>, a: usize, b: usize) -> bool {
    net.nodes[a].creates.iter().any(|(_, peer, _)| *peer == net.id(b))
}

#[test]
fn a_small_file_is_read_along_the_route_without_a_connection_of_its_own() {
    let data = content(300 * 1024 + 7);
    let (mut net, file, holders, reader) = file_with_a_stranger(&data);
    let (bytes, holder) = lookup(&mut net, reader, file).expect("found");
    assert_eq!(bytes, data);
    let h = net.index_of(holder).expect("a node");
    assert!(holders.contains(&h));

    // The holder sent nothing straight to the reader; the chunks went along the route.
    let straight = net.nodes[h]
        .sent
        .iter()
        .any(|(_, to, m)| *to == net.id(reader) && matches!(m, Message::Direct(AppMessage::Past(_))));
    assert!(!straight, "the holder sent to the reader straight");
    let relayed_to_reader = (0..N).filter(|&n| n != h).any(|n| {
        net.nodes[n].sent.iter().any(|(_, to, m)| {
            *to == net.id(reader)
                && matches!(m, Message::Direct(AppMessage::Past(p)) if matches!(**p, PastMessage::Relay { origin, .. } if origin == holder))
        })
    });
    assert!(relayed_to_reader, "a node of the route passed the holder's messages on to the reader");
    assert!(!opened(&net, h, reader) && !opened(&net, reader, h), "no connection was opened for the lookup");
}

#[test]
fn a_file_over_1_mib_is_read_from_another_over_a_direct_connection() {
    let data = content((1 << 20) + 7);
    let (mut net, file, holders, reader) = file_with_a_stranger(&data);
    for &h in &holders {
        assert_eq!(net.nodes[h].store.content(&file).as_deref(), Some(&data[..]), "replica at node {h}");
    }

    let (bytes, holder) = lookup(&mut net, reader, file).expect("found");
    assert_eq!(bytes, data);
    let h = net.index_of(holder).expect("a node");
    assert!(holders.contains(&h));

    // Every chunk went from the holder straight to the reader, on a connection opened for it.
    let chunks_to_reader = net.nodes[h]
        .sent
        .iter()
        .filter(|(_, to, m)| {
            *to == net.id(reader)
                && matches!(m, Message::Direct(AppMessage::Past(p)) if matches!(**p, PastMessage::ChunkReply { .. }))
        })
        .count();
    assert_eq!(chunks_to_reader, data.len().div_ceil(CHUNK_SIZE));
    assert!(opened(&net, h, reader) || opened(&net, reader, h), "a direct connection was opened for the lookup");

    // Once the transfer is over, that connection closes.
    net.run_for(Duration::from_secs(5));
    assert!(!net.manager(reader).is_open(holder) && !net.manager(h).is_open(net.id(reader)));
}

#[test]
fn a_cancelled_lookup_stops_pulling() {
    let mut net = network(5);
    let data = content(3 << 20);
    let file = insert(&mut net, 0, data.clone(), 2);
    let reader = (1..N).find(|&i| net.nodes[i].store.content(&file).is_none()).expect("a node without the file");
    let mark = net.nodes[reader].events.len();
    let op = net.with(reader, |stack, now| stack.lookup(file, now));
    let found =
        |net: &Net<Stack>| past_events(net, reader, mark).iter().any(|e| matches!(e, PastEvent::LookupFound { .. }));
    let deadline = net.now + Duration::from_secs(5);
    while !found(&net) && net.now < deadline {
        net.run_for(Duration::from_millis(1));
    }
    assert!(found(&net), "the lookup found the file");
    net.with(reader, |stack, now| stack.cancel_lookup(op, now));
    let chunks_then =
        past_events(&net, reader, mark).iter().filter(|e| matches!(e, PastEvent::LookupChunk { .. })).count();
    net.run_for(Duration::from_secs(5));
    let after = past_events(&net, reader, mark);
    let chunks = after.iter().filter(|e| matches!(e, PastEvent::LookupChunk { .. })).count();
    assert_eq!(chunks, chunks_then, "no chunk after the cancel");
    assert!(chunks < data.len().div_ceil(CHUNK_SIZE), "the whole file was pulled");
    assert!(!after.iter().any(|e| matches!(e, PastEvent::LookupDone { .. })));
}

#[test]
fn a_holder_that_cannot_reach_the_reader_answers_along_the_route() {
    // Over 1 MiB: answered straight if a connection to the reader opens.
    let data = content((1 << 20) + 100 * 1024 + 3);
    let (mut net, file, holders, reader) = file_with_a_stranger(&data);
    // No connection opens between the reader and any holder.
    for &h in &holders {
        net.blocked.insert((reader.min(h), reader.max(h)));
    }
    let (bytes, holder) = lookup_for(&mut net, reader, file, Duration::from_secs(40)).expect("found");
    assert_eq!(bytes, data);
    let h = net.index_of(holder).expect("a node");
    assert!(holders.contains(&h));
    // Its straight answer failed; the answer and every chunk went along the route.
    let relayed = net.nodes[h]
        .sent
        .iter()
        .filter(|(_, to, m)| {
            *to != net.id(reader)
                && matches!(m, Message::Direct(AppMessage::Past(p)) if matches!(**p, PastMessage::Relay { .. }))
        })
        .count();
    assert!(relayed > data.len().div_ceil(CHUNK_SIZE), "the answer and the chunks were relayed: {relayed}");
    assert_eq!(net.nodes[h].ep.past().stats().answers_rerouted, 1, "one answer went along the route instead");
    let straight = net.nodes[h].sent.iter().any(|(_, to, m)| {
        *to == net.id(reader)
            && matches!(m, Message::Direct(AppMessage::Past(p)) if matches!(**p, PastMessage::ChunkReply { .. }))
    });
    assert!(!straight, "no chunk went straight to the reader");
}

#[test]
fn holders_that_cannot_reach_the_client_pull_along_the_insert_route() {
    let mut net = network(3);
    // No connection opens between the client and any node it is not connected to already.
    let client = 0;
    let strangers: Vec<usize> = (1..N).filter(|&i| !net.manager(client).is_open(net.id(i))).collect();
    for &i in &strangers {
        net.blocked.insert((client, i));
    }
    let data = content((1 << 20) + 100 * 1024 + 3);
    let owner = PublicKey(net.nodes[client].key.verifying_key().to_bytes());
    net.nodes[client].store.add_upload(UploadId(1), data.clone());
    let mut unreachable_holders = 0;
    for n in 0..4 {
        let mark = net.nodes[client].events.len();
        let size = data.len() as u64;
        let spec = InsertRequestSpec { name: format!("f{n}"), owner, k: 3, upload: UploadId(1), size, created: 1 };
        net.with(client, |stack, now| stack.insert(spec, now)).expect("insert accepted");
        // Time for the connection attempts to fail, then for the content to come along the route.
        net.run_for(Duration::from_secs(20));
        let done = past_events(&net, client, mark).into_iter().find_map(|e| match e {
            PastEvent::InsertDone { result, .. } => Some(result),
            _ => None,
        });
        let inserted = done.expect("the insert ended").expect("the insert succeeded");
        assert_eq!(inserted.receipts.len(), 3, "every holder stored the file and said so");
        let holders = closest_to(&net, inserted.certificate.body.file, 3);
        unreachable_holders += holders.iter().filter(|h| strangers.contains(h)).count();
        for h in holders {
            let read = lookup(&mut net, h, inserted.certificate.body.file).expect("the holder has it");
            assert_eq!(read.0, data);
        }
    }
    let rerouted: u64 = (0..N).map(|i| net.nodes[i].ep.past().stats().sends_rerouted).sum();
    assert!(unreachable_holders > 0, "some holder could not reach the client: the case is exercised");
    assert!(rerouted > 0, "requests went along the route instead: {rerouted}");
}

/// A network whose holders answer along the route always, for files up to 16 MiB.
fn network_answering_along_the_route(seed: u64) -> Net<Stack> {
    let mut core = Config::default();
    core.leaf_set_size = 4;
    let manager = ManagerConfig { max_connections: 16, ..ManagerConfig::default() };
    joined(Net::new(N, seed, |id, public, node_seed, now| {
        let mut past = PastConfig::new(PublicKey(public), 1 << 30);
        past.answers = Answers::AlongRoute;
        past.relay_max_size = 16 << 20;
        Stack::new(id, public, core.clone(), manager.clone(), past, node_seed, now)
    }))
}

/// A node of the way a 6 MiB file with one replica comes along leaves mid-read, keeping
/// its connections open (as a closed tab does until they time out), so what reaches it is
/// dropped and nothing comes back. The reader asks again, hears nothing either, gives the
/// way up and routes its lookup again, and reads the rest from the same holder. With seed
/// 4 the asked-again request is lost too; before the way was given up, the read there
/// waited out the stall timeout and failed, its only holder counted as failed.
#[test]
fn a_read_whose_relay_node_leaves_goes_on_from_the_same_holder() {
    for seed in [3, 4, 6] {
        let mut net = network_answering_along_the_route(seed);
        let data = content(6 << 20);
        let file = insert(&mut net, 0, data.clone(), 1);
        let holder = net.id(closest_to(&net, file, 1)[0]);
        let reader = (0..N).max_by_key(|&i| file.key().ring_distance(net.id(i))).expect("nodes");
        let relayed = |net: &Net<Stack>, i: usize| net.nodes[i].ep.past().stats().bytes_relayed;
        let before: Vec<u64> = (0..N).map(|i| relayed(&net, i)).collect();
        let mark = net.nodes[reader].events.len();
        net.with(reader, |stack, now| stack.lookup(file, now));
        let mut left = None;
        let mut done = None;
        for _ in 0..6000 {
            net.run_for(Duration::from_millis(10));
            let carrier = (0..N).find(|&i| i != reader && relayed(&net, i) - before[i] >= 1 << 20);
            if let (None, Some(relay)) = (left, carrier) {
                net.with(relay, |stack, now| stack.leave(now));
                left = Some(relay);
            }
            let events = past_events(&net, reader, mark);
            if events.iter().any(|e| matches!(e, PastEvent::LookupDone { .. })) {
                done = Some(events);
                break;
            }
        }
        let events = done.expect("the read ended");
        assert!(left.is_some(), "seed {seed}: a node carried the read and left mid-way");
        for event in &events {
            if let PastEvent::LookupDone { result, .. } = event {
                let found = result.as_ref().expect("the read succeeded");
                assert_eq!(found.holder, holder, "seed {seed}: from the only holder");
            }
        }
        assert!(content_read(&events) == data, "seed {seed}: the content arrived whole and right");
        assert!(net.nodes[reader].ep.past().stats().reads_rerouted >= 1, "seed {seed}: the read was routed again");
    }
}

/// The holder a 6 MiB file with three replicas is read straight from leaves mid-read,
/// keeping its connections open (as a closed tab does until they time out), so the
/// reader's requests and its asking again are lost with no error. The reader gives that
/// holder up 4 s after the last chunk came (`reask_after` twice) and reads the rest
/// straight from another holder the first one named, instead of waiting out the 30 s
/// stall timeout (seed 4 did, before readers gave a silent holder up).
///
/// Seeds 17, 20 and 28 are where routing the lookup again, as readers did before they
/// used the named holders, went wrong: the route passed the node that left, not yet known
/// gone by the nodes on the way, and was lost; the reader waited out the 10 s request
/// timeout once or twice (12.1 to 24.2 s after the leave, against the bound of 10 s).
#[test]
fn a_read_whose_holder_leaves_goes_on_from_another_within_seconds() {
    for seed in [3, 4, 6, 17, 20, 28] {
        holder_gone_mid_read(seed, Gone::Leaves);
    }
}

/// As above, but the holder's tab freezes (or crashes): it takes no input at all, and its
/// connections stay open at the reader's end. The reader's peer manager finds it silent
/// (no pong to its ping) and hands the unanswered requests back; the read goes on from
/// another holder.
#[test]
fn a_read_whose_holder_freezes_goes_on_from_another_within_seconds() {
    for seed in [3, 4, 6, 17, 20, 28] {
        holder_gone_mid_read(seed, Gone::Freezes);
    }
}

/// The same over 40 seeds, printing how long after the leave each read ended
/// (docs/results-past.md): `cargo test --release -p past-link --test stack_past --
/// --ignored --nocapture` (about 75 s).
#[test]
#[ignore = "long: 40 seeds, run for the figures of docs/results-past.md"]
fn reads_whose_holder_leaves_over_many_seeds() {
    for gone in [Gone::Leaves, Gone::Freezes] {
        let ends: Vec<String> =
            (0..40).map(|seed| format!("{:.2}", holder_gone_mid_read(seed, gone).as_secs_f64())).collect();
        println!("{gone:?}: seconds from then to the read's end, seeds 0 to 39: {}", ends.join(" "));
    }
}

/// A lookup whose first hop froze (a tab that stopped, its connection still open at the
/// reader's end) is answered within seconds: the reader's peer manager finds the frozen
/// peer by its unanswered ping and hands the lookup back to the core, which routes it
/// around. Without the pings it waited out PAST's 10 s request timeout.
#[test]
fn a_lookup_whose_first_hop_froze_is_answered_within_seconds() {
    // The first four networks where a reader's first hop fits (about half of them do).
    let answered: Vec<(u64, Duration)> =
        (1..20).filter_map(|seed| Some((seed, lookup_through_frozen_hop(seed)?))).take(4).collect();
    assert_eq!(answered.len(), 4, "in four of the first 19 networks a reader's first hop fits");
    for (seed, after) in answered {
        println!("seed {seed}: answered {:.3} s after it was asked", after.as_secs_f64());
        let timeout = ManagerConfig::default().confirm_timeout;
        assert!(after < timeout * 2, "seed {seed}: answered {after:?} after it was asked");
    }
}

/// The figures of docs/results-past.md: `cargo test --release -p past-link --test stack_past
/// lookups_through_a_frozen_hop -- --ignored --nocapture` (about 25 s).
#[test]
#[ignore = "long: 40 seeds, run for the figures of docs/results-past.md"]
fn lookups_through_a_frozen_hop_over_many_seeds() {
    let ends: Vec<String> = (0..40)
        .map(|seed| {
            lookup_through_frozen_hop(seed).map_or("none".into(), |after| format!("{:.2}", after.as_secs_f64()))
        })
        .collect();
    println!(
        "seconds from the lookup to its answer, seeds 0 to 39 (none: no reader's first hop fits): {}",
        ends.join(" ")
    );
}

/// One lookup of [`a_lookup_whose_first_hop_froze_is_answered_within_seconds`]: checks that
/// the reader got the whole file from a holder, no sooner than the manager's confirm timeout
/// (the frozen hop held the first attempt), and returns how long it took;
/// `None` if no reader's first hop is an open connection to a node holding no replica.
fn lookup_through_frozen_hop(seed: u64) -> Option<Duration> {
    let mut net = network(seed);
    let data = content(64 * 1024 + 3);
    let file = insert(&mut net, 0, data.clone(), 3);
    let holders = closest_to(&net, file, 3);
    let (reader, hop) = reader_and_first_hop(&net, file, &holders)?;
    net.frozen.insert(hop);
    let mark = net.nodes[reader].events.len();
    let asked = net.now;
    net.with(reader, |stack, now| stack.lookup(file, now));
    let mut done = None;
    for _ in 0..2000 {
        net.run_for(Duration::from_millis(10));
        let events = past_events(&net, reader, mark);
        if let Some(PastEvent::LookupDone { result, .. }) = events.last() {
            done = Some((result.clone(), content_read(&events), net.now.since(asked)));
            break;
        }
    }
    let (result, bytes, after) = done.unwrap_or_else(|| panic!("seed {seed}: the lookup did not end in 20 s"));
    let found = result.unwrap_or_else(|e| panic!("seed {seed}: the lookup failed: {e:?}"));
    assert!(holders.contains(&net.index_of(found.holder).expect("a node")), "seed {seed}: a holder answered");
    assert!(bytes == data, "seed {seed}: the content arrived whole and right");
    let timeout = ManagerConfig::default().confirm_timeout;
    assert!(after >= timeout, "seed {seed}: answered after {after:?}, before the frozen hop's time was up");
    assert_eq!(net.manager(reader).stats().silent, 1, "seed {seed}: the reader took its frozen hop for failed");
    Some(after)
}

/// A node holding no replica of `file` whose next hop towards it is an open connection to a
/// node that holds none either, and that hop.
fn reader_and_first_hop(net: &Net<Stack>, file: FileId, holders: &[usize]) -> Option<(usize, usize)> {
    (1..N).filter(|r| !holders.contains(r)).find_map(|reader| {
        let Hop::Forward(hop) = net.nodes[reader].ep.node().state().next_hop(file.key(), &[]) else { return None };
        let hop = net.index_of(hop)?;
        (!holders.contains(&hop) && net.manager(reader).is_open(net.id(hop))).then_some((reader, hop))
    })
}

/// How a holder goes away mid-read.
#[derive(Clone, Copy, Debug)]
enum Gone {
    /// Its node leaves the overlay; its peer manager still answers on its connections.
    Leaves,
    /// It takes no input at all ([`Net::frozen`]).
    Freezes,
}

/// One read of [`a_read_whose_holder_leaves_goes_on_from_another_within_seconds`]:
/// checks that it went on from a holder the first one named, within 10 s, whole and
/// right, and returns how long after the holder went it ended.
fn holder_gone_mid_read(seed: u64, gone: Gone) -> Duration {
    let mut net = network(seed);
    let data = content(6 << 20);
    let file = insert(&mut net, 0, data.clone(), 3);
    let reader = (0..N).max_by_key(|&i| file.key().ring_distance(net.id(i))).expect("nodes");
    let mark = net.nodes[reader].events.len();
    net.with(reader, |stack, now| stack.lookup(file, now));
    let mut left = None;
    for _ in 0..6000 {
        net.run_for(Duration::from_millis(10));
        let events = past_events(&net, reader, mark);
        if events.iter().any(|e| matches!(e, PastEvent::LookupDone { .. })) {
            break;
        }
        let got = content_read(&events).len();
        let from = events
            .iter()
            .find_map(|e| if let PastEvent::LookupFound { holder, .. } = e { Some(*holder) } else { None });
        if let (None, Some(holder), true) = (left, from, got >= 1 << 20) {
            let i = (0..N).find(|&i| net.id(i) == holder).expect("the holder is a node");
            match gone {
                Gone::Leaves => net.with(i, |stack, now| stack.leave(now)),
                Gone::Freezes => _ = net.frozen.insert(i),
            }
            left = Some((holder, net.now));
        }
    }
    let (gone, at) = left.expect("the read had 1 MiB from a holder, which then left");
    let events = past_events(&net, reader, mark);
    let Some(PastEvent::LookupDone { result, .. }) = events.last() else { panic!("seed {seed}: the read ended") };
    let holder = result.as_ref().expect("the read succeeded").holder;
    assert_ne!(holder, gone, "seed {seed}: the rest came from another holder");
    assert!(content_read(&events) == data, "seed {seed}: the content arrived whole and right");
    let after = net.now.since(at);
    assert!(after < Duration::from_secs(10), "seed {seed}: the read ended {after:?} after its holder left");
    let spare = net.nodes[reader].ep.past().stats().reads_from_spare;
    assert!(spare >= 1, "seed {seed}: the read went on from a holder the first one named");
    after
}

/// Replica maintenance whose source freezes mid-pull goes on from another holder within
/// seconds: the puller's peer manager finds the frozen source by its unanswered ping and
/// hands the pull's requests back, and the pull ends as if the source were gone. Without
/// the pings it waited out PAST's 30 s stall timeout.
#[test]
fn a_replica_pull_whose_source_freezes_goes_on_from_another_holder_within_seconds() {
    for seed in [1, 2, 3] {
        let after = replica_source_frozen_mid_pull(seed);
        println!("seed {seed}: replica stored {:.2} s after its source froze", after.as_secs_f64());
        let timeout = ManagerConfig::default().confirm_timeout;
        assert!(after < timeout * 2, "seed {seed}: the replica was stored {after:?} after its source froze");
    }
}

/// The figures of docs/results-past.md: `cargo test --release -p past-link --test stack_past
/// replica_pulls_whose_source -- --ignored --nocapture` (about 40 s).
#[test]
#[ignore = "long: 40 seeds, run for the figures of docs/results-past.md"]
fn replica_pulls_whose_source_freezes_over_many_seeds() {
    let ends: Vec<String> =
        (0..40).map(|seed| format!("{:.2}", replica_source_frozen_mid_pull(seed).as_secs_f64())).collect();
    println!("seconds from the source's freeze to the replica stored, seeds 0 to 39: {}", ends.join(" "));
}

/// One pull of [`a_replica_pull_whose_source_freezes_goes_on_from_another_holder_within_seconds`]:
/// a 6 MiB file with k = 3, one holder leaves, the next closest node pulls a replica; once it
/// has 1 MiB its source freezes. Checks that it stored the replica, the rest served by the
/// other holder, and returns how long after the freeze.
fn replica_source_frozen_mid_pull(seed: u64) -> Duration {
    let mut net = network(seed);
    let file = insert(&mut net, 0, content(6 << 20), 3);
    let closest = closest_to(&net, file, 4);
    let (holders, gone, newcomer) = ([closest[0], closest[1]], closest[2], closest[3]);
    net.with(gone, |stack, now| stack.leave(now));
    let served = |net: &Net<Stack>, i: usize| net.nodes[i].ep.past().stats().bytes_served;
    let before = holders.map(|h| served(&net, h));
    let mut frozen = None;
    for _ in 0..12000 {
        net.run_for(Duration::from_millis(10));
        let stats = net.nodes[newcomer].ep.past().stats();
        if stats.maintenance_files > 0 {
            break;
        }
        if frozen.is_none() && stats.bytes_received >= 1 << 20 {
            let source = (0..2).max_by_key(|&k| served(&net, holders[k]) - before[k]).expect("two holders");
            net.frozen.insert(holders[source]);
            frozen = Some((holders[1 - source], served(&net, holders[1 - source]), net.now));
        }
    }
    let (other, other_before, at) = frozen.expect("the newcomer pulled 1 MiB of its replica");
    let stats = net.nodes[newcomer].ep.past().stats();
    assert_eq!(stats.maintenance_files, 1, "seed {seed}: the newcomer stored its replica");
    assert!(served(&net, other) > other_before, "seed {seed}: the other holder served the rest");
    net.now.since(at)
}

#[test]
fn a_reader_that_cannot_reach_the_root_next_to_it_still_finds_the_file() {
    for seed in [7, 8, 9] {
        let mut net = network(seed);
        let data = content(64 * 1024);
        let file = insert(&mut net, 0, data.clone(), 1);
        // The nodes on either side of the fileId: the root, and the reader on the other side,
        // which takes itself for the root once it cannot reach the one closer.
        let key = file.key();
        let mut ids = net.ids();
        ids.sort();
        let after = ids.iter().position(|&id| id > key).unwrap_or(0);
        let (a, b) = (ids[(after + ids.len() - 1) % ids.len()], ids[after]);
        let (root, reader) = if key.ring_distance(a) < key.ring_distance(b) { (a, b) } else { (b, a) };
        let (root, reader) = (net.index_of(root).expect("a node"), net.index_of(reader).expect("a node"));
        assert!(net.nodes[root].store.content(&file).is_some(), "seed {seed}: the root holds the file");
        net.blocked.insert((root.min(reader), root.max(reader)));
        net.break_connections(root, reader);
        net.run_for(Duration::from_secs(2));
        let found = lookup_for(&mut net, reader, file, Duration::from_secs(30));
        let (bytes, holder) = found.unwrap_or_else(|e| panic!("seed {seed}: the lookup failed: {e}"));
        assert_eq!(bytes, data, "seed {seed}");
        assert_eq!(holder, net.id(root), "seed {seed}");
    }
}
