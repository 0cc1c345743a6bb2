//! A node a read depends on dies while the file comes from or through it. The chunks it
//! was serving or carrying are lost, and nothing tells the reader, whose requests have all
//! been sent. A pull that hears nothing for `reask_after` asks again:
//! - along a route, the node before the dead one sends that request back, and the reader
//!   routes its lookup again: it gets the file within seconds, from another holder or, the
//!   file's only one, by another way;
//! - straight from the holder, the request cannot be delivered, and the reader goes on from
//!   another holder.
//!
//! Without asking again the reader waits out the pull's stall timeout (30 s); the tests
//! check that too, so they show the cases they cover happened.

use core::time::Duration;

use past_core::past::{Answers, OpId, PastConfig};
use past_sim::past::experiment::pastry_config;
use past_sim::past::{Outcome, PastSim};

const NODES: usize = 150;
const FILES: u64 = 12;
/// Replicas of each file.
const K: u8 = 3;
/// Files of 1 MiB (16 chunks), the largest answered along the route.
const SIZE: u64 = 1 << 20;
/// Chunk size.
const CHUNK: u64 = 64 * 1024;
/// The pull's window: once this many chunks arrived, the reader has asked for all 16.
const WINDOW: u64 = 8;
/// Steps in which the simulation is watched.
const STEP: Duration = Duration::from_millis(1);
/// Longest a read may take after the relay node died.
const PATIENCE: Duration = Duration::from_secs(45);

fn defaults() -> PastConfig {
    PastConfig::new(past_core::past::PublicKey([0; 32]), 0)
}

fn network(reask_after: Option<Duration>, answers: Answers) -> PastSim {
    PastSim::build(
        pastry_config(16),
        NODES,
        41,
        |_| 64 << 20,
        move |key, capacity| {
            let mut config = PastConfig::new(key, capacity);
            config.caching = false;
            config.answers = answers;
            config.audit_interval = None;
            config.reask_after = reask_after;
            config
        },
    )
}

fn relayed(sim: &PastSim) -> Vec<u64> {
    (0..NODES as u32).map(|n| sim.past(n).stats().bytes_relayed).collect()
}

/// Reads each file from a reader of its own and kills the node of the route that carried
/// the most of it, just after the reader's last chunk requests passed it and before their
/// answers came back through it. Returns, for each read a node died in, the time from the
/// death to the whole content, and the reads routed again because their way broke.
fn reads_while_a_relay_dies(reask_after: Option<Duration>, k: u8) -> (Vec<Duration>, u64) {
    let mut sim = network(reask_after, Answers::AlongRoute);
    let files = sim.insert_from_random_nodes(FILES, SIZE, k);
    assert_eq!(files.len(), FILES as usize, "every insert was acknowledged");
    let (mut times, mut rerouted) = (Vec::new(), 0);
    for file in files {
        let reader = sim.random_live();
        let before = relayed(&sim);
        let op = sim.lookup(reader, file);
        let Some(relay) = watch_for_a_relay(&mut sim, reader, op, &before) else { continue };
        let was = sim.past(reader).stats().reads_rerouted;
        sim.network.kill(relay);
        let died = sim.network.now();
        times.push(finish(&mut sim, reader, op).since(died));
        rerouted += sim.past(reader).stats().reads_rerouted - was;
    }
    println!("reads resumed after their relay died in: {times:?}");
    (times, rerouted)
}

/// Runs until the reader has received [`WINDOW`] chunks, so asked for them all, and the
/// node that carried the most of them has then passed on requests but no chunk since;
/// returns that node. `None` if the read ended first (it went through no other node, or
/// the chunks passed the relay node in the same step as the requests).
fn watch_for_a_relay(sim: &mut PastSim, reader: u32, op: OpId, before: &[u64]) -> Option<u32> {
    let received = |sim: &PastSim| sim.past(reader).stats().bytes_received;
    let start = received(sim);
    while received(sim) - start < WINDOW * CHUNK {
        sim.run_for(STEP);
        if ended(sim, reader, op) {
            return None;
        }
    }
    let passed = relayed(sim).iter().zip(before).map(|(now, was)| now - was).collect::<Vec<_>>();
    let relay = (0..NODES as u32).filter(|&n| n != reader).max_by_key(|&n| passed[n as usize])?;
    let carried = relayed(sim)[relay as usize];
    while !ended(sim, reader, op) {
        match relayed(sim)[relay as usize] - carried {
            0 => sim.run_for(STEP),
            requests if requests < CHUNK => return Some(relay),
            _ => return None,
        }
    }
    None
}

/// Whether `reader`'s lookup `op` ended (it must be with the file's content).
fn ended(sim: &mut PastSim, reader: u32, op: OpId) -> bool {
    let Some(outcome) = sim.take(reader, op) else { return false };
    assert!(matches!(&outcome, Outcome::Lookup(l) if l.content_ok && l.result.is_ok()), "{outcome:?}");
    true
}

/// Runs until `reader`'s lookup `op` ends, which must be with the file's content; returns
/// when it ended.
fn finish(sim: &mut PastSim, reader: u32, op: OpId) -> past_core::Time {
    let start = sim.network.now();
    while sim.network.now().since(start) < PATIENCE {
        sim.run_for(STEP);
        if ended(sim, reader, op) {
            return sim.network.now();
        }
    }
    panic!("the read at node {reader} had not ended {PATIENCE:?} after its relay node died");
}

#[test]
fn a_read_whose_relay_node_dies_goes_on_within_seconds() {
    let (times, rerouted) = reads_while_a_relay_dies(defaults().reask_after, K);
    within_seconds(&times);
    assert!(rerouted as usize >= times.len(), "each such read was routed again: {rerouted}");
}

#[test]
fn a_file_with_one_replica_comes_back_from_its_holder_by_another_way() {
    let (times, rerouted) = reads_while_a_relay_dies(defaults().reask_after, 1);
    within_seconds(&times);
    assert!(rerouted as usize >= times.len(), "each such read was routed again: {rerouted}");
}

fn within_seconds(times: &[Duration]) {
    assert!(times.len() >= 3, "a relay node died in at least 3 reads: {times:?}");
    let reask = defaults().reask_after.expect("asking again is on by default");
    for time in times {
        assert!(*time < 3 * reask, "every read ended within {:?} of its relay's death: {times:?}", 3 * reask);
    }
}

#[test]
fn without_asking_again_such_a_read_waits_for_the_stall_timeout() {
    let (times, _) = reads_while_a_relay_dies(None, K);
    let stall = defaults().stall_timeout;
    assert!(times.len() >= 3, "a relay node died in at least 3 reads: {times:?}");
    assert!(times.iter().all(|&t| t >= stall - Duration::from_secs(1)), "each waited for the stall: {times:?}");
}

/// Files of 3 MiB: above the 1 MiB limit of what goes along the route, so answered and
/// pulled straight.
const LARGE: u64 = 3 << 20;

/// Reads each file (of [`LARGE`] bytes, `K` replicas) from a reader of its own and kills
/// the holder serving it once the reader has received [`WINDOW`] chunks, so has asked for
/// more. Returns, for each such read, the time from the holder's death to the whole
/// content.
fn reads_while_their_holder_dies(reask_after: Option<Duration>) -> Vec<Duration> {
    let mut sim = network(reask_after, defaults().answers);
    let files = sim.insert_from_random_nodes(FILES, LARGE, K);
    assert_eq!(files.len(), FILES as usize, "every insert was acknowledged");
    let served = |sim: &PastSim| (0..NODES as u32).map(|n| sim.past(n).stats().bytes_served).collect::<Vec<_>>();
    let mut times = Vec::new();
    for file in files {
        let reader = sim.random_live();
        let before = served(&sim);
        let op = sim.lookup(reader, file);
        let received = |sim: &PastSim| sim.past(reader).stats().bytes_received;
        let start = received(&sim);
        let mut over = false;
        while received(&sim) - start < WINDOW * CHUNK && !over {
            sim.run_for(STEP);
            over = ended(&mut sim, reader, op);
        }
        let now = served(&sim);
        let holder = (0..NODES as u32).filter(|&n| n != reader).max_by_key(|&n| now[n as usize] - before[n as usize]);
        let Some(holder) = holder.filter(|&h| !over && now[h as usize] > before[h as usize]) else { continue };
        sim.network.kill(holder);
        let died = sim.network.now();
        times.push(finish(&mut sim, reader, op).since(died));
    }
    println!("reads went on after their holder died in: {times:?}");
    times
}

#[test]
fn a_read_whose_holder_dies_goes_on_from_another_within_seconds() {
    within_seconds(&reads_while_their_holder_dies(defaults().reask_after));
}

#[test]
fn without_asking_again_a_read_whose_holder_dies_waits_for_the_stall_timeout() {
    let times = reads_while_their_holder_dies(None);
    let stall = defaults().stall_timeout;
    assert!(times.len() >= 3, "a holder died in at least 3 reads: {times:?}");
    assert!(times.iter().all(|&t| t >= stall - Duration::from_secs(1)), "each waited for the stall: {times:?}");
}
