//! How fast the lifetime budget of peer connections is spent, and when to reload (issue 14;
//! the "paced" policy of `docs/results-churn-scale.md`).
//!
//! A tab may create [`ManagerConfig::connection_budget`] peer connections in its life. Under
//! browser churn, keeping every routing table entry and every peer that wants us in its
//! table spends that in minutes to hours at 100,000 nodes, and a tab whose budget is spent
//! no longer replaces the leaves it loses. So the manager paces its spending:
//!
//! - the **leaf set is always kept**: a connection to a leaf, or to a peer that would enter
//!   the leaf set ([`Tables::is_leaf`]), and to a protected peer (a join contact), is never
//!   paced; only the budget bounds it;
//! - a **transfer** (a connection opened to carry PAST content: a lookup's answer, a chunk
//!   pull of an insert, a lookup or replica maintenance) is not paced either: refusing it
//!   would fail a user's insert or lookup, ours or another node's. We know our own
//!   connection's purpose from its first message; a peer's overlay offer says whether it is
//!   a transfer (`SignalKind::Offer::transfer`; a peer may lie, which only lets it spend our
//!   budget faster within the [`super::Limits`], as a peer in our leaf set range can);
//! - every **other** new connection (a routing table entry, a peer that wants us in its
//!   table) is allowed only while the connections created since the manager started (the
//!   page load) are within [`Pace::allows`]: [`Pace::at_start`] at once (the join), then the
//!   rest of the budget spread evenly over [`Pace::target`]. Beyond the pace an attempt is
//!   refused: the core takes the candidate for failed and its table keeps a hole (routes
//!   take a few more hops) until the pace allows a new entry, and a peer whose offer is
//!   refused picks another node for its own table. The table degrades; the budget lasts
//!   the target;
//! - when [`ManagerConfig::reload_reserve`] connections or fewer are left, the manager
//!   advises a reload ([`PeerEvent::ReloadAdvised`], [`PeerManager::reload_advised`]): the
//!   page reloads keeping its identity and replicas, and starts again with a fresh budget.
//!   Until it does, that reserve is kept for the leaf set: every other connection,
//!   transfers too, is refused.
//!
//! [`Pace::allows`] is the one decision: the manager's admission and the churn model
//! (`sim/src/churn`) both call it.

use std::time::Duration;

use past_core::{Id, Time};

use super::{ManagerConfig, PeerEvent, PeerManager, Tables};

/// How fast the connection budget may be spent on connections other than the leaf set's.
/// The defaults are the churn study's: 100 at once, the rest over 8 hours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Connections that may be created at once after the start (the join and its table).
    pub at_start: u32,
    /// The time over which the rest of the budget is spread: the tab's targeted life on one
    /// budget.
    pub target: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { at_start: 100, target: Duration::from_secs(8 * 3600) }
    }
}

/// Why a [`Pace`] could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PaceError {
    /// The target is not a positive, finite time.
    #[error("the pace spreads the budget over a positive, finite number of hours, not {hours}")]
    Hours {
        /// The hours asked for.
        hours: f64,
    },
}

impl Pace {
    /// The default pace spread over `hours` instead of 8.
    pub fn over_hours(hours: f64) -> Result<Pace, PaceError> {
        match Duration::try_from_secs_f64(hours * 3600.0) {
            Ok(target) if !target.is_zero() => Ok(Pace { target, ..Pace::default() }),
            _ => Err(PaceError::Hours { hours }),
        }
    }

    /// Whether a node that created `created` connections of its `budget` in the `elapsed`
    /// time since it started may create one more that is not the leaf set's: whether
    /// `created < at_start + (budget - at_start) x min(1, elapsed / target)`, computed
    /// exactly (in microseconds).
    pub fn allows(&self, budget: u32, created: u32, elapsed: Duration) -> bool {
        let target = self.target.as_micros().max(1);
        let elapsed = elapsed.as_micros().min(target);
        let spread = u128::from(budget.saturating_sub(self.at_start));
        u128::from(created) * target < u128::from(self.at_start) * target + spread * elapsed
    }

    /// The connections a node may have created `elapsed` after it started (rounded down),
    /// for people: see [`Pace::allows`].
    pub fn allowance(&self, budget: u32, elapsed: Duration) -> u32 {
        let target = self.target.as_micros().max(1);
        let spread = u128::from(budget.saturating_sub(self.at_start));
        let more = spread * elapsed.as_micros().min(target) / target;
        self.at_start.saturating_add(u32::try_from(more).unwrap_or(u32::MAX))
    }
}

impl PeerManager {
    /// Why a new connection to `peer` must wait, if pacing is on and it must: it is not the
    /// leaf set's (nor protected), and either the budget is down to its reload reserve, or
    /// it is not a transfer and the connections created are at the pace's allowance.
    pub(super) fn pace_refusal(
        &self,
        peer: Id,
        transfer: bool,
        tables: &impl Tables,
        now: Time,
    ) -> Option<&'static str> {
        let pace = self.config.pace.as_ref()?;
        if tables.is_leaf(peer) || self.protected.contains(&peer) {
            return None;
        }
        if self.reload_advised() {
            return Some("the last connections of the budget are kept for the leaf set");
        }
        let elapsed = now.since(self.started);
        let beyond = !transfer && !pace.allows(self.config.connection_budget, self.stats.created, elapsed);
        beyond.then_some("beyond the pace at which the connection budget is spent")
    }

    /// Whether so little of the budget is left that the page should reload (it keeps its
    /// identity and replicas and starts with a fresh budget).
    pub fn reload_advised(&self) -> bool {
        reload_due(&self.config, self.stats.created)
    }

    /// Counts a created connection against the budget; reports the budget's milestones
    /// (each once: the count goes up one at a time).
    pub(super) fn spend(&mut self) {
        self.stats.created = self.stats.created.saturating_add(1);
        if self.stats.created == reload_point(&self.config) {
            self.events.push_back(PeerEvent::ReloadAdvised);
        }
        if self.budget_exhausted() {
            self.events.push_back(PeerEvent::BudgetExhausted);
        }
    }
}

/// The reload reserve: [`ManagerConfig::reload_reserve`], at most a quarter of the budget (a
/// small budget still leaves most of itself to the routing table).
fn reserve(config: &ManagerConfig) -> u32 {
    config.reload_reserve.min(config.connection_budget / 4)
}

/// Whether `created` connections leave at most the reload reserve of the budget.
fn reload_due(config: &ManagerConfig, created: u32) -> bool {
    created.saturating_add(reserve(config)) >= config.connection_budget
}

/// The connection whose creation advises a reload: the first that leaves at most the
/// reserve.
fn reload_point(config: &ManagerConfig) -> u32 {
    config.connection_budget.saturating_sub(reserve(config)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(h: f64) -> Duration {
        Duration::from_secs_f64(h * 3600.0)
    }

    #[test]
    fn the_pace_allows_its_start_at_once_then_the_rest_evenly() {
        let pace = Pace::default();
        assert!(pace.allows(480, 99, Duration::ZERO));
        assert!(!pace.allows(480, 100, Duration::ZERO));
        // 100 + 380 x 1/2 = 290 after 4 hours.
        assert_eq!(pace.allowance(480, hours(4.0)), 290);
        assert!(pace.allows(480, 289, hours(4.0)));
        assert!(!pace.allows(480, 290, hours(4.0)));
        // 100 + 380 x 10 s / 8 h = 100.13 after 10 s: the 101st connection is allowed as
        // soon as the allowance passes 100 (not rounded down), the 102nd not yet.
        assert!(pace.allows(480, 100, Duration::from_secs(10)));
        assert!(!pace.allows(480, 101, Duration::from_secs(10)));
        assert_eq!(pace.allowance(480, hours(8.0)), 480);
        assert_eq!(pace.allowance(480, hours(20.0)), 480, "never beyond the budget");
        assert!(!pace.allows(480, 480, hours(20.0)));
    }

    #[test]
    fn a_pace_over_hours_checks_its_hours() {
        assert_eq!(Pace::over_hours(10.0).map(|p| p.target), Ok(hours(10.0)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(Pace::over_hours(bad), Err(PaceError::Hours { .. })), "{bad}");
        }
    }

    #[test]
    fn a_start_above_the_budget_is_bounded_by_the_budget_elsewhere() {
        // The manager checks the budget first; the pace alone only says "not beyond 100".
        let pace = Pace::default();
        assert!(pace.allows(5, 50, Duration::ZERO));
        assert_eq!(pace.allowance(5, hours(8.0)), 100);
    }

    #[test]
    fn a_reload_is_due_when_the_reserve_is_reached() {
        let config = ManagerConfig { connection_budget: 480, reload_reserve: 16, ..ManagerConfig::default() };
        assert!(!reload_due(&config, 463));
        assert!(reload_due(&config, 464));
        assert!(reload_due(&config, 480));
        assert_eq!(reload_point(&config), 464);
        // A budget of 5 keeps a quarter (1) in reserve, not 16.
        let small = ManagerConfig { connection_budget: 5, ..config };
        assert!(!reload_due(&small, 3));
        assert!(reload_due(&small, 4));
        assert_eq!(reload_point(&small), 4);
        let none = ManagerConfig { connection_budget: 3, ..small };
        assert!(!reload_due(&none, 2));
        assert_eq!(reload_point(&none), 3);
    }
}
