//! Issue 9: proximity from the transport. With `Proximity::Driver` the stack asks the driver
//! for the round-trip time of an open connection (`Command::MeasureRtt`, answered from the
//! transport's statistics); a driver without statistics answers `None` and the node falls
//! back to probes. Either way every routing table and neighborhood entry ends up measured,
//! and by whom shows in the figure: the harness's statistics say [`STATS_RTT`], its probes
//! take 2 × [`LATENCY`].

mod harness;

use std::time::Duration;

use harness::{LATENCY, Net, STATS_RTT};
use past_core::{Config, Proximity, Rtt};
use past_link::{Command, ManagerConfig, Stack};

const N: usize = 12;

/// N nodes in `Proximity::Driver` mode, joined one after the other and left 20 s.
fn joined_net(no_stats: bool) -> Net<Stack> {
    let mut core = Config::default();
    core.proximity = Proximity::Driver;
    let mut net = Net::stacks(N, 7, &core, &ManagerConfig::default());
    if no_stats {
        net.no_stats.extend(0..N);
    }
    net.join_in_turn(Duration::from_secs(20));
    net
}

/// Every round-trip time in the routing tables and neighborhood sets, and how many.
fn table_rtts(net: &Net<Stack>) -> Vec<Rtt> {
    let mut rtts = Vec::new();
    for node in &net.nodes {
        let state = node.ep.node().state();
        rtts.extend(state.table.entries().map(|(_, _, e)| e.rtt));
        rtts.extend(state.neighborhood.entries().iter().map(|e| e.rtt));
    }
    rtts
}

fn measure_commands(net: &Net<Stack>) -> usize {
    let commands = net.nodes.iter().flat_map(|n| &n.commands);
    commands.filter(|(_, c)| matches!(c, Command::MeasureRtt { .. })).count()
}

#[test]
fn the_transport_measures_the_round_trips_that_rank_the_tables() {
    let net = joined_net(false);
    let rtts = table_rtts(&net);
    assert!(rtts.len() >= N * 10, "tables and neighborhoods hold {} entries", rtts.len());
    let by_stats = Rtt::from_duration(STATS_RTT);
    assert!(rtts.iter().all(|&r| r == by_stats), "not every entry measured by the transport: {rtts:?}");
    assert!(measure_commands(&net) >= N, "the driver was asked {} times", measure_commands(&net));
    assert!(net.nodes.iter().all(|n| n.ep.rtt_sources().probes == 0 && n.ep.rtt_sources().transport > 0));
}

#[test]
fn without_statistics_probes_measure_instead() {
    let net = joined_net(true);
    let rtts = table_rtts(&net);
    assert!(rtts.len() >= N * 10, "tables and neighborhoods hold {} entries", rtts.len());
    let by_probe = Rtt::from_duration(LATENCY * 2);
    assert!(rtts.iter().all(|&r| r == by_probe), "not every entry measured by a probe: {rtts:?}");
    assert!(net.nodes.iter().all(|n| n.ep.rtt_sources().transport == 0 && n.ep.rtt_sources().probes > 0));
}
