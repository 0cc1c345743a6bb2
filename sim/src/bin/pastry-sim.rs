//! `pastry-sim`: builds Pastry networks by joins, routes random lookups and prints the
//! figures of the Pastry paper's experiments (hops, delivery, locality, failures, scale).

use core::time::Duration;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use past_core::{DigitBase, Proximity};
use past_sim::experiment::{FailureReport, Params, build, exchange_rows, fail_and_repair, random_lookups};
use past_sim::measure::{LookupStats, TableStats};
use past_sim::plot::{Series, line_chart_log_x};

/// mimalloc instead of the system allocator: the simulation allocates and frees a small
/// buffer for most of its tens of millions of messages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Average hops of the reference implementations with b = 4, l = 16, for comparison on the
/// plot: FreePastry's own simulator measured on this machine (1,000 and 10,000 nodes) and
/// the Pastry paper's figure at 100,000 nodes.
const REFERENCE_HOPS: [(f64, f64); 3] = [(1_000.0, 2.47), (10_000.0, 3.22), (100_000.0, 3.98)];

/// Simulates Pastry networks with the real core and reports the paper's figures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Network sizes to simulate, e.g. 1000,10000,100000.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    nodes: Vec<usize>,
    /// Digit size b (bits per digit).
    #[arg(long, default_value_t = 4)]
    b: u8,
    /// Leaf set size l.
    #[arg(long, default_value_t = 16)]
    leaf_set: usize,
    /// Neighborhood set size M.
    #[arg(long, default_value_t = 32)]
    neighborhood: usize,
    /// Random lookups per measurement.
    #[arg(long, default_value_t = 100_000)]
    lookups: usize,
    /// Seed of the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fail this share of the nodes at once after the first lookups, then repair.
    #[arg(long)]
    fail: Option<f64>,
    /// Virtual seconds of maintenance after the failures.
    #[arg(long, default_value_t = 120)]
    maintenance_secs: u64,
    /// Write a plot of average hops against N to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Rounds of periodic row exchange to run after the build, before measuring (one every
    /// ten minutes of virtual time, nothing else running).
    #[arg(long, default_value_t = 0)]
    row_exchange_rounds: u32,
    /// How nodes measure round-trip times.
    #[arg(long, value_enum, default_value_t = ProximityArg::Probes)]
    proximity: ProximityArg,
}

/// The values of `--proximity`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProximityArg {
    /// Nodes send probes and time their answers, as browser and native nodes do; every
    /// message has jitter, so the times are noisy.
    Probes,
    /// The simulator hands nodes the exact round-trip time of its latency model, instantly
    /// and with no message (as FreePastry's simulator does).
    Driver,
}

impl From<ProximityArg> for Proximity {
    fn from(arg: ProximityArg) -> Self {
        match arg {
            ProximityArg::Probes => Proximity::Probes,
            ProximityArg::Driver => Proximity::Driver,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = DigitBase::new(args.b)?;
    println!(
        "# pastry-sim: b={} l={} M={} lookups={} seed={} proximity={:?}",
        args.b, args.leaf_set, args.neighborhood, args.lookups, args.seed, args.proximity
    );
    let mut points = Vec::new();
    for &nodes in &args.nodes {
        let params = Params {
            nodes,
            base,
            leaf_set_size: args.leaf_set,
            neighborhood_size: args.neighborhood,
            lookups: args.lookups,
            seed: args.seed,
            proximity: args.proximity.into(),
        };
        let started = Instant::now();
        let (mut network, report) = build(&params);
        let messages_per_join = report.messages.total() as f64 / nodes as f64;
        println!("\n## N = {nodes}");
        println!(
            "build: {:.2} s wall, {:.0} messages per join (join {}, probe {}, leaf set {}, new node {}, table repair {}), leaf sets not exact: {}, routing table entries {} (missing {}, by row {:?})",
            report.wall.as_secs_f64(),
            messages_per_join,
            report.messages.join,
            report.messages.probe,
            report.messages.leaf_set,
            report.messages.new_node,
            report.messages.repair,
            report.leaf_set_errors,
            report.tables.entries,
            report.tables.missing,
            report.tables.missing_by_row,
        );
        if args.row_exchange_rounds > 0 {
            print_table_locality("table locality right after the build", &network, base);
            let (stats, _) = random_lookups(&mut network, base, params.lookups);
            print_lookups("lookups right after the build", &stats);
            let started = Instant::now();
            let m = exchange_rows(&mut network, args.row_exchange_rounds);
            println!(
                "row exchange: {} rounds, {:.2} s wall, {} messages, {:.1} per node per round (join-phase row requests and replies {}, probes {}, leaf set {}, new node {}, table repair {})",
                args.row_exchange_rounds,
                started.elapsed().as_secs_f64(),
                m.total(),
                m.total() as f64 / nodes as f64 / f64::from(args.row_exchange_rounds),
                m.join,
                m.probe,
                m.leaf_set,
                m.new_node,
                m.repair,
            );
            let tables = past_sim::measure::table_stats(&network, base);
            println!(
                "routing table entries after row exchange {} (missing {}, by row {:?})",
                tables.entries, tables.missing, tables.missing_by_row
            );
        }
        print_table_locality("table locality", &network, base);
        let (ideal, ideal_of_sums) =
            past_sim::measure::ideal_relative_distance(&mut network, base, args.leaf_set, 2_000);
        println!("relative distance with ideal tables in this latency model: {ideal:.3} (of sums {ideal_of_sums:.3})");
        match args.fail {
            None => {
                let (stats, wall) = random_lookups(&mut network, base, params.lookups);
                println!("lookups: {:.2} s wall for {}", wall.as_secs_f64(), stats.count);
                print_lookups("lookups", &stats);
                points.push((nodes as f64, stats.mean_hops, stats.hop_bound as f64));
            }
            Some(fraction) => {
                let report =
                    fail_and_repair(&mut network, &params, fraction, Duration::from_secs(args.maintenance_secs));
                print_failure(&report);
                points.push((nodes as f64, report.before.mean_hops, report.before.hop_bound as f64));
            }
        }
        println!("total wall time {:.2} s, peak memory {}", started.elapsed().as_secs_f64(), past_sim::peak_memory());
    }
    if let Some(path) = args.plot {
        let series = [
            Series { label: "average hops (simulated)", points: points.iter().map(|p| (p.0, p.1)).collect() },
            Series { label: "ceil(log_2^b N)", points: points.iter().map(|p| (p.0, p.2)).collect() },
            Series { label: "reference: FreePastry (1k, 10k), Pastry paper (100k)", points: REFERENCE_HOPS.to_vec() },
        ];
        line_chart_log_x(&path, "Pastry: average hops against network size", "N (nodes)", "hops", &series)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nplot written to {}", path.display());
    }
    Ok(())
}

fn print_table_locality(label: &str, network: &past_sim::network::Network, base: DigitBase) {
    let locality = past_sim::measure::table_locality(network, base, 500);
    let rows: Vec<String> =
        locality.per_row.iter().enumerate().map(|(r, (a, b))| format!("row {r}: {a:.1} ms (best {b:.1})")).collect();
    println!("{label}: {}", rows.join(", "));
}

fn print_lookups(label: &str, stats: &LookupStats) {
    let histogram: Vec<String> = (0..stats.histogram.len()).map(|h| format!("{h}:{:.4}", stats.share(h))).collect();
    println!(
        "{label}: delivered to the closest live node {:.4}% ({} of {}), average hops {:.3}, max {}, above ceil(log16 N)={} : {:.4}%, relative distance {:.3} (of sums {:.3})",
        stats.correct_share() * 100.0,
        stats.correct,
        stats.count,
        stats.mean_hops,
        stats.max_hops,
        stats.hop_bound,
        stats.above_bound as f64 * 100.0 / stats.delivered.max(1) as f64,
        stats.relative_distance,
        stats.relative_distance_of_sums,
    );
    println!("{label}: hop distribution {}", histogram.join(" "));
}

fn print_tables(label: &str, tables: &TableStats) {
    println!(
        "{label}: routing table entries {}, pointing at dead nodes {}, missing {} (by row {:?})",
        tables.entries, tables.dead, tables.missing, tables.missing_by_row
    );
}

fn print_failure(report: &FailureReport) {
    print_lookups("before failures", &report.before);
    print_tables("before failures", &report.tables_before);
    println!("killed {} nodes at once", report.killed);
    print_lookups("no repair", &report.no_repair);
    print_tables("no repair", &report.tables_failed);
    let n = &report.no_repair_messages;
    println!(
        "no repair: messages besides the lookups' {} hops: probes {}, leaf set {} ({} requests), table repair {}; sends to failed nodes {}",
        n.app, n.probe, n.leaf_set, n.leaf_set_requests, n.repair, n.failed_sends,
    );
    print_lookups("after repair", &report.after);
    print_tables("after repair", &report.tables_after);
    let m = &report.maintenance;
    println!(
        "maintenance for {} s: {} messages (probes {}, leaf set {}, table repair {}), repair RPCs per failed node {:.1}, leaf sets not exact after: {}",
        report.maintenance_time.as_secs(),
        m.total(),
        m.probe,
        m.leaf_set,
        m.repair,
        report.repair_rpcs_per_failed_node(),
        report.leaf_set_errors_after,
    );
    println!(
        "maintenance detail: leaf set requests {}, answers {}, pushes {}; entry requests {}, entry replies {} ({} empty), slot search hops {}; sends to failed nodes {}",
        m.leaf_set_requests,
        m.leaf_set_answers,
        m.leaf_set_pushes(),
        m.entry_requests,
        m.repair - m.entry_requests - m.find_slot_hops,
        m.empty_entry_replies,
        m.find_slot_hops,
        m.failed_sends,
    );
}
