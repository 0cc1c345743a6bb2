//! Issue 13, the churn soak's short version: 8 tabs joined through the signaling server;
//! for 90 s tabs are closed, crashed, reloaded and opened at seeded random times (one at a
//! time, the count kept around 8) while files are inserted (k = 3, 2 KiB to 300 KiB) and
//! looked up from other tabs. Then every leaf set is exact, no acknowledged file is lost,
//! every tab made fewer `RTCPeerConnection`s than its budget, and lookups during the churn
//! mostly succeeded. The long version is `--example churn_soak` (`tests/src/churn.rs` has
//! the scenario and the churn model; figures in docs/results-churn.md).

use anyhow::ensure;
use past_e2e::churn::{self, CONNECTION_BUDGET, Soak};
use past_e2e::with_browser;

/// Seed of the churn and workload schedules.
const SEED: u64 = 13;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_files_survive_tabs_closing_crashing_reloading_and_opening() -> anyhow::Result<()> {
    with_browser(async |browser, server| {
        let report = churn::run(browser, &server.http_origin(), &Soak::short(SEED)).await?;
        println!("{report}");
        let failed = |what: &str| format!("{what}\n{report}\nstates of the live tabs: {:#?}", report.states);
        ensure!(report.files.len() >= 5, failed("fewer than 5 inserts were acknowledged"));
        ensure!(report.lost.is_empty(), failed("acknowledged files were lost"));
        ensure!(report.unchecked == 0, failed("the lookups after the churn did not finish in their bound"));
        ensure!(report.leaf_sets.is_ok(), failed("leaf sets were not exact after the churn"));
        let most = report.per_tab().into_values().max().unwrap_or(0);
        ensure!(most < CONNECTION_BUDGET, failed("a tab used up its RTCPeerConnection budget"));
        // Failures are lookups that ended without the file while their tab stayed (not found,
        // unavailable, no answer); a few happen while a holder has just gone.
        let tried = report.lookups_ok + report.lookups_failed();
        ensure!(report.lookups_ok >= 10, failed("fewer than 10 lookups succeeded during the churn"));
        ensure!(
            report.lookups_failed() * 5 <= tried,
            failed("more than a fifth of the lookups failed during the churn")
        );
        Ok(())
    })
    .await
}
