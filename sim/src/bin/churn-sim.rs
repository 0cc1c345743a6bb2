//! `churn-sim`: browser churn at internet scale (issue 14). Prints, per network size and
//! median session, the peer connections a long-lived tab makes per hour under each policy,
//! when it first spends its budget, how often it reloads, and how full its routing table
//! stays. The model is described in `past_sim::churn`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use past_link::manager::Pace;
use past_sim::churn::{Counts, Policy, Report, Scenario, Sessions, core_counts, run};
use past_sim::plot::{Series, line_chart_log_x};

/// mimalloc instead of the system allocator: the simulation allocates and frees a small
/// buffer for most of its tens of millions of messages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulates browser-like churn and a long-lived tab's connection budget.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Network sizes, e.g. 1000,10000,100000.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    nodes: Vec<usize>,
    /// Median sessions in minutes, e.g. 2,10,30.
    #[arg(long, value_delimiter = ',', default_value = "2,10,30")]
    medians: Vec<f64>,
    /// Standard deviation of ln(session).
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// Hours simulated.
    #[arg(long, default_value_t = 8.0)]
    hours: f64,
    /// Observed tabs per policy.
    #[arg(long, default_value_t = 4)]
    observers: usize,
    /// Connections per tab between reloads.
    #[arg(long, default_value_t = 480)]
    budget: u32,
    /// Hours the paced policy spreads its budget over.
    #[arg(long, default_value_t = 8.0)]
    pace_hours: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Instead of the model's tables: the real core's nodes (simulator network) under the
    /// same churn, new peers per hour beside the model's keep-all, for each size and median.
    #[arg(long)]
    core_check: bool,
    /// Writes a plot of connections per hour (policy keep-all) to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pace = Pace::over_hours(args.pace_hours)?;
    if args.core_check {
        core_check(&args, &pace);
        return Ok(());
    }
    println!(
        "| N | median | policy | conns hour 1 | conns/h after (leaf + table + in + re-in) | first {} at | reloads in {} h | table kept / possible | extra hops |",
        args.budget, args.hours
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut lines: Vec<(String, Vec<(f64, f64)>)> =
        args.medians.iter().map(|m| (format!("median {m} min"), vec![])).collect();
    for &nodes in &args.nodes {
        for (i, &median) in args.medians.iter().enumerate() {
            let scenario = Scenario {
                nodes,
                sessions: Some(Sessions { median_minutes: median, sigma: args.sigma }),
                hours: args.hours,
                observers: args.observers,
                budget: args.budget,
                pace: pace.clone(),
                seed: args.seed,
            };
            let started = Instant::now();
            let reports = run(&scenario);
            for report in &reports {
                println!("| {nodes} | {median} min | {}", row(report));
                if report.policy == Policy::KeepAll {
                    lines[i].1.push((nodes as f64, after_first_hour(report).total()));
                }
            }
            eprintln!("N = {nodes}, median {median} min: {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    if let Some(path) = &args.plot {
        let series: Vec<Series<'_>> =
            lines.iter().map(|(label, points)| Series { label, points: points.clone() }).collect();
        line_chart_log_x(
            path,
            "New peer connections per hour of a long-lived tab (keep-all)",
            "nodes",
            "connections per hour",
            &series,
        )?;
    }
    Ok(())
}

/// Prints the real core's new peers per hour beside the model's (keep-all).
fn core_check(args: &Args, pace: &Pace) {
    println!("| N | median | counted by | new peers/h after hour 1 (leaf + table + in) |");
    println!("|---|---|---|---|");
    for &nodes in &args.nodes {
        for &median in &args.medians {
            let sessions = Sessions { median_minutes: median, sigma: args.sigma };
            let started = Instant::now();
            let core = core_counts(nodes, sessions, args.hours, args.observers, args.seed);
            let scenario = Scenario {
                nodes,
                sessions: Some(sessions),
                hours: args.hours,
                observers: args.observers,
                budget: u32::MAX,
                pace: pace.clone(),
                seed: args.seed,
            };
            let reports = run(&scenario);
            let model = reports.iter().find(|r| r.policy == Policy::KeepAll).map(after_first_hour).unwrap_or_default();
            println!("| {nodes} | {median} min | real core | {} |", split(&mean_after_first(&core)));
            println!("| {nodes} | {median} min | model | {} |", split(&model));
            eprintln!("N = {nodes}, median {median} min: {:.1} s", started.elapsed().as_secs_f64());
        }
    }
}

fn split(counts: &Counts) -> String {
    format!(
        "{:.0} ({:.0} + {:.0} + {:.0})",
        counts.leaf + counts.table + counts.incoming,
        counts.leaf,
        counts.table,
        counts.incoming
    )
}

/// The table cells of one policy after N and the median.
fn row(report: &Report) -> String {
    let first = report.per_hour.first().map_or(0.0, Counts::total);
    let after = after_first_hour(report);
    let exhausted: Vec<f64> = report.first_exhausted.iter().flatten().copied().collect();
    let first_exhausted = match exhausted.len() {
        0 => "never".to_string(),
        n if n < report.first_exhausted.len() => {
            format!("{n} of {}: {:.2} h min", report.first_exhausted.len(), min(&exhausted))
        }
        _ => format!("{:.2} h (mean)", exhausted.iter().sum::<f64>() / exhausted.len() as f64),
    };
    format!(
        "{} | {first:.0} | {:.0} ({:.0} + {:.0} + {:.0} + {:.0}) | {first_exhausted} | {:.1} | {:.1} / {:.1} | {:.3} |",
        report.policy.name(),
        after.total(),
        after.leaf,
        after.table,
        after.incoming,
        after.reconnected,
        report.reloads,
        report.entries_kept,
        report.entries_possible,
        report.extra_hops
    )
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Mean connections per hour over the hours after the first.
fn after_first_hour(report: &Report) -> Counts {
    mean_after_first(&report.per_hour)
}

/// Mean of `per_hour` over the hours after the first.
fn mean_after_first(per_hour: &[Counts]) -> Counts {
    let later = per_hour.get(1..).unwrap_or_default();
    let n = later.len().max(1) as f64;
    let mut mean = Counts::default();
    for counts in later {
        mean.leaf += counts.leaf / n;
        mean.table += counts.table / n;
        mean.incoming += counts.incoming / n;
        mean.reconnected += counts.reconnected / n;
    }
    mean
}
