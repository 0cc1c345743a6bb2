//! What a new connection may cost: token buckets for the rate of new connections, exponential
//! backoff per peer, and the record of who told us about an id we have never met.
//!
//! Every `RTCPeerConnection` a tab creates counts against Chromium's lifetime limit of 500.
//! The manager therefore spends connections only within these limits (numbers in
//! [`Limits`]):
//!
//! - **attempts**: a bucket of new connections, refilled per minute; an attempt waits (its
//!   messages stay queued) while it is empty;
//! - **failures**: every attempt takes a token that only a successful authentication gives
//!   back, so attempts that never open (ICE fails, a made-up id) cost at most the bucket's
//!   burst and then its slow refill, however many candidates there are;
//! - **per introducer**: an id we have never met and that the signaling server did not
//!   introduce is *hearsay*; attempts on hearsay are charged to the peer whose message first
//!   mentioned the id, in a small bucket of its own, so one peer feeding made-up ids cannot
//!   spend the others' share;
//! - **per id**: an id is tried on hearsay alone at most [`Limits::hearsay_attempts`] times,
//!   and after each failure not before its backoff (`Backoff`) has passed.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use past_core::{Id, Time};

/// The limits on new connections. The defaults are what a browser tab uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// New connections that may be started at once.
    pub attempts_burst: u32,
    /// New connections added back to that bucket per minute.
    pub attempts_per_minute: f64,
    /// Attempts not on hearsay that may fail before new ones wait.
    pub failures_burst: u32,
    /// Failure tokens added back per minute.
    pub failures_per_minute: f64,
    /// Attempts on hearsay one introducer may cause at once.
    pub introducer_burst: u32,
    /// Tokens added back to each introducer's bucket per minute.
    pub introducer_per_minute: f64,
    /// Attempts on one introducer's hearsay unresolved at the same time.
    pub introducer_in_flight: u32,
    /// Failed attempts on an introducer's hearsay after which, while they outnumber its
    /// successes two to one, its hearsay is no longer tried.
    pub introducer_failures: u32,
    /// Most attempts on an id known only by hearsay, until it connects or is introduced by
    /// the server.
    pub hearsay_attempts: u8,
    /// Wait after a peer's first failed attempt; doubled after each further failure.
    pub backoff_base: Duration,
    /// Longest wait between two attempts to one peer.
    pub backoff_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            attempts_burst: 64,
            attempts_per_minute: 30.0,
            failures_burst: 10,
            failures_per_minute: 0.8,
            introducer_burst: 32,
            introducer_per_minute: 4.0,
            introducer_in_flight: 6,
            introducer_failures: 4,
            hearsay_attempts: 3,
            backoff_base: Duration::from_secs(15),
            backoff_max: Duration::from_secs(30 * 60),
        }
    }
}

impl Limits {
    /// The wait before the next attempt after `failures` consecutive failures (at least 1).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.backoff_base.saturating_mul(1 << doublings).min(self.backoff_max)
    }
}

/// Thousandths of a token, so refill rates below one per minute stay exact.
const MILLI: u64 = 1000;

/// A token bucket refilled continuously with time.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    /// Tokens held, in thousandths.
    milli: u64,
    capacity: u64,
    /// Thousandths of a token per minute.
    per_minute: u64,
    updated: Time,
}

impl Bucket {
    pub(crate) fn new(burst: u32, per_minute: f64, now: Time) -> Self {
        let capacity = u64::from(burst) * MILLI;
        let per_minute = (per_minute.max(0.0) * MILLI as f64) as u64;
        Bucket { milli: capacity, capacity, per_minute, updated: now }
    }

    fn refill(&mut self, now: Time) {
        let elapsed = now.since(self.updated).as_micros();
        let added = elapsed.saturating_mul(u128::from(self.per_minute)) / 60_000_000;
        if added > 0 {
            self.milli = (self.milli as u128 + added).min(u128::from(self.capacity)) as u64;
            // Keep the fraction of a thousandth not yet credited.
            let used = added * 60_000_000 / u128::from(self.per_minute.max(1));
            self.updated = self.updated + Duration::from_micros(used.min(u128::from(u64::MAX)) as u64);
        }
        if self.milli == self.capacity || self.updated > now {
            self.updated = now;
        }
    }

    /// Whether a whole token is there now.
    pub(crate) fn ready(&mut self, now: Time) -> bool {
        self.refill(now);
        self.milli >= MILLI
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, now: Time) -> bool {
        let ready = self.ready(now);
        if ready {
            self.milli -= MILLI;
        }
        ready
    }

    /// Gives a token back (up to the capacity).
    pub(crate) fn give_back(&mut self) {
        self.milli = (self.milli + MILLI).min(self.capacity);
    }

    /// When the next whole token will be there.
    pub(crate) fn next_token(&self) -> Option<Time> {
        if self.milli >= MILLI {
            return Some(self.updated);
        }
        let missing = u128::from(MILLI - self.milli);
        let micros = (missing * 60_000_000).div_ceil(u128::from(self.per_minute.max(1)));
        (self.per_minute > 0).then(|| self.updated + Duration::from_micros(micros.min(u128::from(u64::MAX)) as u64))
    }
}

/// Who told us about an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The signaling server (it checked the id's key when the node registered).
    Server,
    /// This node's own user (the page or the CLI).
    Local,
    /// An authenticated peer, in a message it sent (a leaf set, a row, an overlay offer).
    Peer(Id),
}

/// Most ids whose introducer is remembered; the oldest are forgotten first.
const MAX_INTRODUCED: usize = 4096;

/// Who mentioned which ids (the first introducer, or the latest mention), in the order the
/// ids were first recorded, bounded.
#[derive(Debug, Default)]
pub(crate) struct Introductions {
    by_id: BTreeMap<Id, Id>,
    order: VecDeque<Id>,
}

impl Introductions {
    /// Records that `introducer` mentioned `id`, unless someone did before.
    pub(crate) fn record(&mut self, id: Id, introducer: Id) {
        if id == introducer || self.by_id.contains_key(&id) {
            return;
        }
        if self.order.len() >= MAX_INTRODUCED
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_id.remove(&oldest);
        }
        self.by_id.insert(id, introducer);
        self.order.push_back(id);
    }

    /// Records that `by` mentioned `id`, replacing whoever did before.
    pub(crate) fn record_latest(&mut self, id: Id, by: Id) {
        match self.by_id.get_mut(&id) {
            Some(known) if id != by => *known = by,
            Some(_) => {}
            None => self.record(id, by),
        }
    }

    /// Who introduced `id`, if remembered.
    pub(crate) fn introducer(&self, id: Id) -> Option<Id> {
        self.by_id.get(&id).copied()
    }

    /// Forgets `id` (it proved itself).
    pub(crate) fn forget(&mut self, id: Id) {
        if self.by_id.remove(&id).is_some() {
            self.order.retain(|x| *x != id);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

/// Most introducers tracked; those that say least are dropped first.
const MAX_INTRODUCERS: usize = 1024;

/// What one introducer's hearsay has cost so far.
#[derive(Clone, Debug)]
struct Introducer {
    bucket: Bucket,
    in_flight: u32,
    failed: u32,
    succeeded: u32,
}

/// The allowance of every introducing peer, bounded in number.
#[derive(Debug, Default)]
pub(crate) struct Introducers {
    by_id: BTreeMap<Id, Introducer>,
}

impl Introducers {
    /// Why an attempt on `introducer`'s hearsay may not start now, if it may not.
    pub(crate) fn refusal(&mut self, introducer: Id, limits: &Limits, now: Time) -> Option<&'static str> {
        let state = self.by_id.get_mut(&introducer)?;
        if state.failed >= limits.introducer_failures && state.failed > state.succeeded * 2 {
            return Some("the peer that named it named too many nodes that never answered");
        }
        if state.in_flight >= limits.introducer_in_flight {
            return Some("too many attempts on hearsay from one peer at once");
        }
        if !state.bucket.ready(now) {
            return Some("hearsay from one peer spent its allowance");
        }
        None
    }

    /// Charges an attempt to `introducer` (after [`Introducers::refusal`] said none).
    pub(crate) fn charge(&mut self, introducer: Id, limits: &Limits, now: Time) {
        if self.by_id.len() >= MAX_INTRODUCERS && !self.by_id.contains_key(&introducer) {
            let quiet = self.by_id.iter().find(|(_, s)| s.in_flight == 0 && s.failed == 0).map(|(id, _)| *id);
            match quiet {
                Some(id) => self.by_id.remove(&id),
                None => self.by_id.pop_first().map(|(_, s)| s),
            };
        }
        let state = self.by_id.entry(introducer).or_insert_with(|| Introducer {
            bucket: Bucket::new(limits.introducer_burst, limits.introducer_per_minute, now),
            in_flight: 0,
            failed: 0,
            succeeded: 0,
        });
        state.bucket.take(now);
        state.in_flight += 1;
    }

    /// An attempt charged to `introducer` ended.
    pub(crate) fn settle(&mut self, introducer: Id, outcome: Outcome) {
        if let Some(state) = self.by_id.get_mut(&introducer) {
            state.in_flight = state.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Opened => state.succeeded += 1,
                Outcome::Failed => state.failed += 1,
                Outcome::Withdrawn => {}
            }
        }
    }
}

/// How an attempt ended, for what it was charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The connection opened.
    Opened,
    /// It failed (timed out, refused, closed before it opened).
    Failed,
    /// It gave way to the peer's own offer (glare, or the peer restarted): no failure.
    Withdrawn,
}

/// The attempts and failures of one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Failed attempts since the last success.
    pub(crate) failures: u32,
    /// No new attempt before this.
    pub(crate) retry_at: Option<Time>,
}

impl Backoff {
    pub(crate) fn failed(&mut self, limits: &Limits, now: Time) {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(now + limits.backoff(self.failures));
    }

    pub(crate) fn blocks(&self, now: Time) -> bool {
        self.retry_at.is_some_and(|at| at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Time {
        Time::from_micros(secs * 1_000_000)
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_never_above_its_burst() {
        let mut bucket = Bucket::new(2, 1.0, at(0));
        assert!(bucket.take(at(0)) && bucket.take(at(0)));
        assert!(!bucket.take(at(0)));
        assert!(!bucket.take(at(59)));
        assert_eq!(bucket.next_token(), Some(at(60)));
        assert!(bucket.take(at(60)));
        assert!(!bucket.take(at(61)));
        assert!(bucket.take(at(1000)) && bucket.take(at(1000)));
        assert!(!bucket.take(at(1000)));
        bucket.give_back();
        bucket.give_back();
        bucket.give_back();
        assert!(bucket.take(at(1000)) && bucket.take(at(1000)) && !bucket.take(at(1000)));
    }

    #[test]
    fn slow_refill_counts_fractions() {
        let mut bucket = Bucket::new(1, 0.5, at(0));
        assert!(bucket.take(at(0)));
        for s in (0..120).step_by(7) {
            assert!(!bucket.take(at(s)), "{s}");
        }
        assert!(bucket.take(at(120)));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let limits = Limits::default();
        assert_eq!(limits.backoff(1), Duration::from_secs(15));
        assert_eq!(limits.backoff(0), Duration::from_secs(15));
        assert_eq!(limits.backoff(2), Duration::from_secs(30));
        assert_eq!(limits.backoff(5), Duration::from_secs(240));
        assert_eq!(limits.backoff(100), limits.backoff_max);
    }

    #[test]
    fn introductions_are_bounded_and_keep_the_first_introducer() {
        let mut intro = Introductions::default();
        intro.record(Id::from_u128(1), Id::from_u128(100));
        intro.record(Id::from_u128(1), Id::from_u128(200));
        assert_eq!(intro.introducer(Id::from_u128(1)), Some(Id::from_u128(100)));
        for i in 0..10_000u128 {
            intro.record(Id::from_u128(1000 + i), Id::from_u128(100));
        }
        assert_eq!(intro.len(), MAX_INTRODUCED);
        assert_eq!(intro.introducer(Id::from_u128(1)), None);
    }
}

#[cfg(test)]
mod introducer_tests {
    use super::*;

    #[test]
    fn an_introducer_whose_hearsay_fails_is_no_longer_believed() {
        let limits = Limits::default();
        let (mut intro, peer, now) = (Introducers::default(), Id::from_u128(7), Time::ZERO);
        for _ in 0..limits.introducer_in_flight {
            assert_eq!(intro.refusal(peer, &limits, now), None);
            intro.charge(peer, &limits, now);
        }
        assert!(intro.refusal(peer, &limits, now).is_some(), "in flight");
        intro.settle(peer, Outcome::Opened);
        intro.settle(peer, Outcome::Opened);
        assert_eq!(intro.refusal(peer, &limits, now), None);
        for _ in 0..4 {
            intro.settle(peer, Outcome::Failed);
        }
        assert_eq!(intro.refusal(peer, &limits, now), None, "4 failures against 2 successes");
        intro.charge(peer, &limits, now);
        intro.settle(peer, Outcome::Failed);
        assert!(intro.refusal(peer, &limits, now).unwrap().contains("never answered"));
    }
}
