//! `past-sim`: the PAST paper's experiments on the simulated network, with the real core:
//! storage utilization under diversion, durability under failures, caching, and lookups
//! past nodes that drop what they should forward (randomized routing).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use past_link::manager::ManagerConfig;
use past_sim::past::experiment::{
    CachingReport, Diversion, FilesParams, StorageParams, StorageReport, TIME_RESOLUTION, TransferBudget, caching,
    durability, storage,
};
use past_sim::past::plot::line_chart;
use past_sim::past::randomized::{DropParams, DropReport, dropping};
use past_sim::past::workload::{FileSizes, TruncatedNormal};
use past_sim::plot::Series;

/// mimalloc instead of the system allocator: the simulation allocates and frees a small
/// buffer for most of its tens of millions of messages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulates PAST networks with the real core and reports the PAST paper's figures.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Sizes {
    /// Lognormal fitted to PAST's web proxy trace (median 1,312 B, mean 10,517 B).
    Web,
    /// Lognormal fitted to PAST's file system trace (median 4,578 B, mean 88,233 B).
    Fs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    None,
    Replica,
    Both,
}

/// The network every experiment builds.
#[derive(clap::Args, Debug)]
struct NetworkArgs {
    /// Nodes.
    #[arg(long, default_value_t = 2250)]
    nodes: usize,
    /// Leaf set size l.
    #[arg(long, default_value_t = 32)]
    leaf_set: usize,
    /// Replicas per file.
    #[arg(long, default_value_t = 5)]
    k: u8,
    /// Seed of the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Insert files until the network is full: failed insertions against utilization.
    Storage {
        #[command(flatten)]
        network: NetworkArgs,
        /// Node capacities are PAST's d1 divided by this.
        #[arg(long, default_value_t = 1.0)]
        capacity_scale: f64,
        /// File sizes are divided by this.
        #[arg(long, default_value_t = 1.0)]
        size_scale: f64,
        #[arg(long, value_enum, default_value = "web")]
        sizes: Sizes,
        #[arg(long, value_enum, value_delimiter = ',', default_value = "none,replica,both")]
        modes: Vec<Mode>,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 10_000_000)]
        max_inserts: usize,
        /// Sign on each node's thread when asked, as runs before 2026-12-02 did, instead of
        /// on a second thread answering 1 ms of simulated time later (which also verifies
        /// signatures ahead of the nodes).
        #[arg(long)]
        sign_at_once: bool,
        /// Leaves a diverting primary asks for their free space first, drawn at random (the
        /// others only if none of those has room); 0: all of them at once, PAST's default.
        #[arg(long, default_value_t = 0)]
        space_query_fanout: usize,
        /// Write the failure/utilization plot here.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Kill 4 of the 5 holders of files, then 10% of the nodes: retrieval and maintenance.
    Durability {
        #[command(flatten)]
        network: NetworkArgs,
        #[arg(long, default_value_t = 2000)]
        files: usize,
        /// Largest file inserted.
        #[arg(long, default_value_t = 1 << 20)]
        max_size: u64,
    },
    /// Zipf lookups with caching off and on: hit rate and hops.
    Caching {
        #[command(flatten)]
        network: NetworkArgs,
        #[arg(long, default_value_t = 2000)]
        files: usize,
        #[arg(long, default_value_t = 50_000)]
        lookups: usize,
        /// Zipf exponent of file popularity.
        #[arg(long, default_value_t = 1.0)]
        alpha: f64,
        /// Largest file inserted.
        #[arg(long, default_value_t = 1 << 20)]
        max_size: u64,
        /// Node capacities are PAST's d1 divided by this.
        #[arg(long, default_value_t = 10.0)]
        capacity_scale: f64,
        /// Transfer connections a node may open during the lookups (unbounded if not given):
        /// beyond it, a direct message that needs a new connection fails, as when a tab's
        /// connection budget is used up.
        #[arg(long)]
        transfer_budget: Option<u32>,
        /// Share of the nodes, drawn at random, that are native storage peers: no transfer
        /// budget bounds them (`ManagerConfig::native`).
        #[arg(long, default_value_t = 0.0)]
        native_share: f64,
        /// Holders answer every reader straight, as PAST does, instead of back along the
        /// lookup's route when they do not hold the reader in their tables.
        #[arg(long)]
        direct_answers: bool,
    },
    /// Some nodes silently drop what they should forward: lookup success with retries on
    /// the same route and on randomized routes.
    Droppers {
        #[command(flatten)]
        network: NetworkArgs,
        /// Files of 1 KiB inserted before any node drops.
        #[arg(long, default_value_t = 1000)]
        files: usize,
        /// Lookups per share of droppers and per chance.
        #[arg(long, default_value_t = 2000)]
        lookups: usize,
        /// Shares of the nodes that drop.
        #[arg(long, value_delimiter = ',', default_value = "0,0.01,0.05,0.1")]
        shares: Vec<f64>,
        /// Routes a lookup may take.
        #[arg(long, default_value_t = 3)]
        attempts: u8,
        /// Chances that a node forwards a retry to its best hop, one network each (1: the
        /// retries take the first route).
        #[arg(long, value_delimiter = ',', default_value = "1,0.5")]
        chances: Vec<f64>,
        /// Write the plot of failed lookups against droppers here.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
}

/// The transfer connections of the caching experiment's inserts and lookups: pairs that
/// exchanged a direct PAST message while neither held the other in its tables.
fn print_transfers(reports: &[CachingReport]) {
    let budget = ManagerConfig::default().connection_budget;
    println!(
        "\ntransfer connections (pairs that exchanged a direct message while neither held the other in its tables; each costs both ends one connection of their {budget}; one closes after {} s unused):",
        ManagerConfig::default().transfer_idle.as_secs_f64()
    );
    println!(
        "| caching | phase | operations | connections | distinct pairs | per operation | per node: mean | 99th percentile | max | network-wide operations until the busiest node has made {budget} |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        for (phase, operations, t) in
            [("inserts", r.files, r.insert_transfers), ("lookups", r.lookups, r.lookup_transfers)]
        {
            println!(
                "| {} | {phase} | {operations} | {} | {} | {:.2} | {:.2} | {} | {} | {} |",
                if r.caching { "on" } else { "off" },
                t.connections,
                t.pairs,
                t.connections as f64 / operations.max(1) as f64,
                t.mean,
                t.p99,
                t.max,
                (u64::from(budget) * operations as u64)
                    .checked_div(u64::from(t.max))
                    .map_or("never".into(), |n| n.to_string()),
            );
        }
    }
    for r in reports {
        println!(
            "caching {}: {} transfer connections refused for want of budget, {} answers sent along the route instead, {} lookups handed on by a node that could not reach the reader",
            if r.caching { "on" } else { "off" },
            r.refused_transfers,
            r.answers_rerouted,
            r.handed_on
        );
        if r.native_peers > 0 {
            let t = r.native_transfers;
            println!(
                "caching {}: {} native peers (the rows above are the other nodes), their transfer connections during the lookups: {} in all, mean {:.1}, max {}",
                if r.caching { "on" } else { "off" },
                r.native_peers,
                (t.mean * r.native_peers as f64).round(),
                t.mean,
                t.max
            );
        }
    }
}

/// Time to content and the bytes relayed, per caching run.
fn print_times(reports: &[CachingReport]) {
    println!(
        "\nlookup times (virtual, from the lookup's start to its whole content, lookups with the right content, timed to {} ms) and bytes relayed:",
        TIME_RESOLUTION.as_millis()
    );
    println!(
        "| caching | mean | median | 90th percentile | 99th percentile | content read | bytes relayed | relayed / read | most relayed by one node |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let at = |q: f64| {
            let i = ((r.times.len() as f64 * q) as usize).min(r.times.len().saturating_sub(1));
            r.times.get(i).map_or(0.0, |t| t.as_secs_f64() * 1000.0)
        };
        let mean = r.times.iter().map(|t| t.as_secs_f64()).sum::<f64>() * 1000.0 / r.times.len().max(1) as f64;
        println!(
            "| {} | {mean:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} MB | {:.1} MB | {:.2} | {:.1} MB |",
            if r.caching { "on" } else { "off" },
            at(0.5),
            at(0.9),
            at(0.99),
            r.bytes_read as f64 / 1e6,
            r.bytes_relayed as f64 / 1e6,
            r.bytes_relayed as f64 / r.bytes_read.max(1) as f64,
            r.max_relayed as f64 / 1e6
        );
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    match args.command {
        Command::Storage {
            network: NetworkArgs { nodes, leaf_set, k, seed },
            capacity_scale,
            size_scale,
            sizes,
            modes,
            batch,
            max_inserts,
            sign_at_once,
            space_query_fanout,
            plot,
        } => {
            let space_query_fanout = if space_query_fanout == 0 { usize::MAX } else { space_query_fanout };
            let sizes = match sizes {
                Sizes::Web => FileSizes::web(size_scale),
                Sizes::Fs => FileSizes::filesystem(size_scale),
            };
            let capacity = TruncatedNormal::past_d1(capacity_scale);
            println!(
                "# past-sim storage: N={nodes} l={leaf_set} k={k} seed={seed}; capacities truncated normal mean {:.0} sd {:.0} in [{:.0}, {:.0}] bytes; file sizes lognormal median {:.0} mean {:.0} max {:.0} bytes (sigma {:.3}); {}; a diverting primary asks {} for their free space",
                capacity.mean,
                capacity.sd,
                capacity.low,
                capacity.high,
                sizes.median,
                sizes.mean,
                sizes.max,
                sizes.sigma(),
                if sign_at_once { "signing at once" } else { "signing on a second thread, answered after 1 ms" },
                match space_query_fanout {
                    usize::MAX => "every leaf that is not a primary".to_string(),
                    n => format!("{n} random leaves (the others if none has room)"),
                }
            );
            let mut reports = Vec::new();
            for mode in modes {
                let diversion = match mode {
                    Mode::None => Diversion::None,
                    Mode::Replica => Diversion::Replica,
                    Mode::Both => Diversion::Both,
                };
                let params = StorageParams {
                    nodes,
                    leaf_set,
                    k,
                    seed,
                    capacity,
                    sizes,
                    diversion,
                    batch,
                    max_inserts,
                    window: 2000,
                    share_verified: true,
                    crypto_thread: !sign_at_once,
                    space_query_fanout,
                };
                let report = storage(&params);
                print_storage(&report);
                reports.push(report);
            }
            print_storage_table(&reports);
            if let Some(path) = plot {
                let series: Vec<Series<'_>> = reports
                    .iter()
                    .map(|r| Series {
                        label: r.diversion.label(),
                        points: decimate(r.points.iter().map(|p| (p.utilization * 100.0, p.failed_share() * 100.0))),
                    })
                    .collect();
                line_chart(
                    &path,
                    "PAST: failed insertions against storage utilization",
                    "global storage utilization (%)",
                    "insertions failed so far (%)",
                    (0.0, 100.0),
                    (0.0, 40.0),
                    &series,
                )
                .with_context(|| format!("writing {}", path.display()))?;
                println!("\nplot written to {}", path.display());
            }
        }
        Command::Durability { network: NetworkArgs { nodes, leaf_set, k, seed }, files, max_size } => {
            let params = FilesParams {
                nodes,
                leaf_set,
                k,
                seed,
                files,
                capacity: TruncatedNormal::past_d1(1.0),
                sizes: FileSizes::web(1.0),
                max_size,
                caching: false,
                relay: true,
            };
            println!(
                "# past-sim durability: N={nodes} l={leaf_set} k={k} seed={seed} files={files} (web sizes, max {max_size} bytes), caching off"
            );
            let (loaded, scenarios) = durability(&params);
            let bytes: u64 = loaded.files.iter().map(|f| f.2).sum();
            println!("inserted {} files ({} bytes), {} inserts failed", loaded.files.len(), bytes, loaded.failed);
            println!(
                "\n| scenario | nodes killed | files with k replicas before | retrievable right after | lost | with k replicas after maintenance | retrievable after | bytes moved by maintenance | replicas re-created |"
            );
            println!("|---|---|---|---|---|---|---|---|---|");
            for s in &scenarios {
                let name =
                    if s.targets > 0 { format!("{} ({} target files)", s.name, s.targets) } else { s.name.clone() };
                println!(
                    "| {} | {} | {} / {n} | {} / {n} | {} | {} / {n} | {} / {n} | {} ({:.2} x the bytes of the files) | {} |",
                    name,
                    s.killed,
                    s.full_before,
                    s.retrievable_after_failure,
                    s.lost,
                    s.full_after,
                    s.retrievable_after_maintenance,
                    s.maintenance_bytes,
                    s.maintenance_bytes as f64 / bytes.max(1) as f64,
                    s.maintenance_files,
                    n = loaded.files.len(),
                );
            }
            for s in &scenarios {
                println!(
                    "{}: the lookups right after the failures took {:.1} s of virtual time, while PAST maintenance re-created {} replicas",
                    s.name,
                    s.lookup_time.as_secs_f64(),
                    s.files_during_lookups,
                );
            }
        }
        Command::Caching {
            network: NetworkArgs { nodes, leaf_set, k, seed },
            files,
            lookups,
            alpha,
            max_size,
            capacity_scale,
            transfer_budget,
            native_share,
            direct_answers,
        } => {
            println!(
                "# past-sim caching: N={nodes} l={leaf_set} k={k} seed={seed} files={files} lookups={lookups} zipf alpha={alpha} (web sizes, max {max_size} bytes), capacities d1 / {capacity_scale}, transfer connections per node during the lookups: {}, native storage peers (unbounded): {native_share}, answers: {}",
                transfer_budget.map_or("unbounded".to_string(), |b| format!("at most {b}")),
                if direct_answers {
                    "straight to the reader"
                } else {
                    "back along the route unless the holder holds the reader"
                }
            );
            let budget = TransferBudget { per_tab: transfer_budget, native_share };
            let mut reports: Vec<CachingReport> = Vec::new();
            for on in [false, true] {
                let params = FilesParams {
                    nodes,
                    leaf_set,
                    k,
                    seed,
                    files,
                    capacity: TruncatedNormal::past_d1(capacity_scale),
                    sizes: FileSizes::web(1.0),
                    max_size,
                    caching: on,
                    relay: !direct_answers,
                };
                reports.push(caching(&params, lookups, alpha, budget));
            }
            println!(
                "\n| caching | lookups | right content | answered by a cached copy | mean hops | copies cached | evicted |"
            );
            println!("|---|---|---|---|---|---|---|");
            for r in &reports {
                println!(
                    "| {} | {} | {} | {:.1}% | {:.3} | {} | {} |",
                    if r.caching { "on" } else { "off" },
                    r.lookups,
                    r.ok,
                    r.cache_hits as f64 * 100.0 / r.lookups.max(1) as f64,
                    r.mean_hops,
                    r.cached_files,
                    r.evictions
                );
            }
            if let [off, on] = &reports[..] {
                println!(
                    "\nhops reduced by {:.1}% with caching",
                    (1.0 - on.mean_hops / off.mean_hops.max(f64::MIN_POSITIVE)) * 100.0
                );
            }
            print_transfers(&reports);
            print_times(&reports);
        }
        Command::Droppers {
            network: NetworkArgs { nodes, leaf_set, k, seed },
            files,
            lookups,
            shares,
            attempts,
            chances,
            plot,
        } => {
            println!(
                "# past-sim droppers: N={nodes} l={leaf_set} k={k} seed={seed} files={files} (1 KiB) lookups={lookups} per row, up to {attempts} routes per lookup (10 s timeout each), caching off"
            );
            let reports: Vec<DropReport> = chances
                .iter()
                .map(|&best_hop_chance| {
                    let params = DropParams {
                        nodes,
                        leaf_set,
                        k,
                        seed,
                        files,
                        lookups,
                        shares: shares.clone(),
                        attempts,
                        best_hop_chance,
                    };
                    let report = dropping(&params);
                    println!(
                        "best-hop chance {best_hop_chance}: {} files inserted, {:.1} s wall",
                        report.files,
                        report.wall.as_secs_f64()
                    );
                    report
                })
                .collect();
            print_drop_table(&reports);
            if let Some(path) = plot {
                let labels: Vec<String> = reports.iter().map(|r| retry_label(r.params.best_hop_chance)).collect();
                let series: Vec<Series<'_>> = reports
                    .iter()
                    .zip(&labels)
                    .map(|(r, label)| Series {
                        label,
                        points: r.rows.iter().map(|row| (row.share * 100.0, (1.0 - row.success()) * 100.0)).collect(),
                    })
                    .collect();
                let x_max = shares.iter().fold(0.0f64, |a, &b| a.max(b)) * 100.0;
                let y_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0f64, f64::max);
                line_chart(
                    &path,
                    &format!("PAST lookups with nodes dropping what they forward (N = {nodes}, {attempts} routes)"),
                    "nodes dropping (%)",
                    "lookups failed (%)",
                    (0.0, x_max.max(1.0)),
                    (0.0, (y_max * 1.2).ceil()),
                    &series,
                )
                .with_context(|| format!("writing {}", path.display()))?;
                println!("\nplot written to {}", path.display());
            }
        }
    }
    println!("\ntotal wall time {:.1} s, peak memory {}", started.elapsed().as_secs_f64(), past_sim::peak_memory());
    Ok(())
}

fn retry_label(best_hop_chance: f64) -> String {
    if best_hop_chance >= 1.0 {
        "retries on the same route".into()
    } else {
        format!("randomized retries (best hop {:.0}%)", best_hop_chance * 100.0)
    }
}

fn print_drop_table(reports: &[DropReport]) {
    println!(
        "\n| nodes dropping | retries | lookups | found | failed | success | mean hops (found) | messages dropped |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let rows = reports.iter().flat_map(|r| r.rows.iter().map(move |row| (r.params.best_hop_chance, row)));
    let mut rows: Vec<_> = rows.collect();
    rows.sort_by(|a, b| a.1.share.total_cmp(&b.1.share).then(b.0.total_cmp(&a.0)));
    for (chance, row) in rows {
        println!(
            "| {:.0}% ({}) | {} | {} | {} | {} | {:.2}% | {:.2} | {} |",
            row.share * 100.0,
            row.droppers,
            retry_label(chance),
            row.lookups,
            row.found,
            row.lookups - row.found,
            row.success() * 100.0,
            row.mean_hops,
            row.dropped
        );
    }
}

fn print_storage(r: &StorageReport) {
    let last = r.last().unwrap_or(past_sim::past::experiment::StoragePoint { inserts: 0, failed: 0, utilization: 0.0 });
    println!(
        "\n## {}: {} inserts, {} failed ({:.2}%), final utilization {:.2}%, replicas diverted {}, inserts that needed file diversion {}, mean size of failed files {:.0} B (all files {:.0} B), {:.1} s wall",
        r.diversion.label(),
        last.inserts,
        last.failed,
        last.failed_share() * 100.0,
        last.utilization * 100.0,
        r.diverted_replicas,
        r.file_diversions,
        r.mean_failed_size,
        r.mean_size,
        r.wall.as_secs_f64()
    );
    println!("failures by error: {:?}", r.errors);
    println!("space queries sent for replica diversion: {}", r.space_queries);
}

fn print_storage_table(reports: &[StorageReport]) {
    let thresholds = [0.3, 0.4, 0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99];
    print!("\n| policy |");
    for t in thresholds {
        print!(" failed at {:.0}% |", t * 100.0);
    }
    println!(" final utilization | failed in all |");
    print!("|---|");
    for _ in thresholds {
        print!("---|");
    }
    println!("---|---|");
    for r in reports {
        print!("| {} |", r.diversion.label());
        for t in thresholds {
            match r.at(t) {
                Some(p) => print!(" {:.2}% |", p.failed_share() * 100.0),
                None => print!(" - |"),
            }
        }
        let last = r.last();
        println!(
            " {:.2}% | {:.2}% |",
            last.map_or(0.0, |p| p.utilization * 100.0),
            last.map_or(0.0, |p| p.failed_share() * 100.0)
        );
    }
}

/// Keeps a point each time x grows by 0.1 or more (and the last), to keep the plot small.
fn decimate(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut kept: Vec<(f64, f64)> = Vec::new();
    let mut last = None;
    for p in points {
        if kept.last().is_none_or(|k| p.0 >= k.0 + 0.1) {
            kept.push(p);
            last = None;
        } else {
            last = Some(p);
        }
    }
    kept.extend(last);
    kept
}
