//! Issue 9, backoff: a peer whose attempts fail (it never answers, or ICE never connects)
//! is tried again with exponentially growing gaps, not at once.

mod harness;

use std::time::Duration;

use harness::{Net, secs};
use past_core::Config;
use past_link::ManagerConfig;
use past_link::manager::Limits;

/// The times of node 0's `Create`s for node 1 over 10 minutes; node 0 is welcomed with node
/// 1 as its only contact.
fn attempt_times(setup: impl FnOnce(&mut Net<past_link::Stack>)) -> Vec<Duration> {
    let mut net = Net::stacks(2, 21, &Config::default(), &ManagerConfig::default());
    setup(&mut net);
    net.join(0);
    net.run_until(secs(600.0));
    let peer = net.id(1);
    net.nodes[0].creates.iter().filter(|(_, p, _)| *p == peer).map(|(t, _, _)| t.since(past_core::Time::ZERO)).collect()
}

fn assert_backs_off(times: &[Duration]) {
    let limits = Limits::default();
    let timeout = ManagerConfig::default().connect_timeout;
    eprintln!("attempt times: {times:?}");
    assert!(times.len() >= 4, "too few attempts to see a backoff: {times:?}");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (k, gap) in gaps.iter().enumerate() {
        // After the (k+1)th failure (at connect_timeout after the attempt), the wait is
        // backoff(k+1).
        let least = timeout + limits.backoff(k as u32 + 1);
        assert!(*gap >= least, "gap {k} is {gap:?}, less than {least:?}: {times:?}");
    }
    for pair in gaps.windows(2) {
        assert!(pair[1] > pair[0] + pair[0] / 2, "gaps do not grow exponentially: {gaps:?}");
    }
    assert!(times.len() <= 8, "too many attempts in 10 minutes: {times:?}");
}

#[test]
fn a_contact_that_never_answers_is_retried_with_growing_gaps() {
    let times = attempt_times(|net| {
        net.register(1);
        net.muted.insert(1);
    });
    assert_backs_off(&times);
}

#[test]
fn a_contact_that_answers_but_never_connects_is_retried_with_growing_gaps() {
    let times = attempt_times(|net| {
        net.join(1);
        net.ice_fails.insert(0);
    });
    assert_backs_off(&times);
}
