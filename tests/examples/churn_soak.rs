//! The churn soak of issue 13 (a benchmark, not a test): tabs joined through the signaling
//! server are closed, crashed, reloaded and opened at seeded random times while files are
//! inserted (k = 3) and looked up; the report gives acknowledged files lost, lookups failed
//! during the churn, `RTCPeerConnection`s per tab against the budget, tab memory over time
//! and whether the leaf sets are exact at the end. The churn model is in
//! `tests/src/churn.rs`; figures in docs/results-churn.md.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example churn_soak -- --tabs 16 --minutes 10 --seed 1'
//! ```
//! Options: `--tabs N` (16), `--minutes M` (10), `--seed S` (1), `--query Q` (the page's
//! query string; empty: default timers).

use anyhow::{Context as _, bail};
use past_e2e::churn::{self, Soak};
use past_e2e::with_browser;

fn soak() -> anyhow::Result<Soak> {
    let mut soak = Soak::benchmark(16, 10, 1);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tabs" => soak.tabs = value.parse()?,
            "--minutes" => soak = Soak { churn: Soak::benchmark(soak.tabs, value.parse()?, 0).churn, ..soak },
            "--seed" => soak.seed = value.parse()?,
            "--query" => soak.query = value,
            other => bail!("unknown option {other}; options: --tabs N --minutes M --seed S --query Q"),
        }
    }
    Ok(soak)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let soak = soak()?;
    with_browser(async |browser, server| {
        let report = churn::run(browser, &server.http_origin(), &soak).await?;
        println!("\n{report}");
        Ok(())
    })
    .await
}
