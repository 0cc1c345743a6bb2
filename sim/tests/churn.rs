//! The churn model (`past_sim::churn`): a long-lived tab's peer connections per hour.

use past_link::manager::Pace;
use past_sim::churn::{Counts, Policy, Report, Scenario, Sessions, run};

fn scenario(nodes: usize, median_minutes: Option<f64>) -> Scenario {
    Scenario {
        nodes,
        sessions: median_minutes.map(|median_minutes| Sessions { median_minutes, sigma: 1.0 }),
        hours: 3.0,
        observers: 2,
        budget: 480,
        pace: Pace::default(),
        seed: 7,
    }
}

/// Mean connections per hour after the first hour.
fn later_per_hour(report: &Report) -> f64 {
    let later = &report.per_hour[1..];
    later.iter().map(Counts::total).sum::<f64>() / later.len() as f64
}

fn keep_all(reports: &[Report]) -> &Report {
    reports.iter().find(|r| r.policy == Policy::KeepAll).expect("every policy is reported")
}

#[test]
fn without_churn_a_node_connects_in_its_first_hour_only() {
    let reports = run(&scenario(1000, None));
    assert_eq!(reports.len(), Policy::ALL.len());
    for report in &reports {
        assert!(report.per_hour[0].leaf >= 16.0, "{:?}", report.policy);
        assert!(report.per_hour[0].table > 20.0, "{:?}", report.policy);
        assert_eq!(later_per_hour(report), 0.0, "{:?}", report.policy);
        assert_eq!(report.reloads, 0.0);
        assert!(report.first_exhausted.iter().all(Option::is_none));
        assert_eq!(report.entries_kept, report.entries_possible, "{:?}", report.policy);
    }
}

#[test]
fn connections_per_hour_grow_with_the_network_and_fall_with_longer_sessions() {
    let small = later_per_hour(keep_all(&run(&scenario(300, Some(10.0)))));
    let large = later_per_hour(keep_all(&run(&scenario(3000, Some(10.0)))));
    let long_sessions = later_per_hour(keep_all(&run(&scenario(3000, Some(30.0)))));
    assert!(small > 0.0);
    assert!(large > small * 1.2, "{small} at 300 nodes, {large} at 3000");
    assert!(long_sessions < large / 2.0, "{large} with 10 min sessions, {long_sessions} with 30 min");
}

#[test]
fn pacing_keeps_fewer_entries_and_spends_its_budget_later() {
    let reports = run(&scenario(3000, Some(10.0)));
    let paced = reports.iter().find(|r| r.policy == Policy::Paced).expect("paced is reported");
    let all = keep_all(&reports);
    assert!(paced.entries_kept < all.entries_kept);
    assert!(paced.extra_hops > all.extra_hops);
    assert!(later_per_hour(paced) < later_per_hour(all) / 2.0);
}
