//! The churn soak of issue 13, shared by the suite's short version
//! (`tests/tests/churn_soak.rs`) and the benchmark (`tests/examples/churn_soak.rs`).
//!
//! Tabs (each in its own browser context, so its own IndexedDB) join through the signaling
//! server. Then, for a fixed time, three things run at once:
//! - the churn: at seeded random gaps, one event at a time. When fewer tabs than the target
//!   are live, a tab opens: half the time a newcomer (a new context, a new identity), half
//!   the time (drawn in rounds like the departures) a tab that left comes back (a new tab in its old context: the same identity
//!   slot, so the same nodeId and the replicas it kept in IndexedDB). When the target is
//!   live, a live tab is closed (`pagehide`: it tells the others), crashed (CDP
//!   `Page.crash`: no goodbye, found by keep-alives) or reloaded (same nodeId and replicas),
//!   a third each (drawn in rounds: each kind once a round, in a random order). An event waits for its tab to join again before the next gap starts, so
//!   at most one tab is down at a time and every departure is followed by a gap for
//!   failure detection and replica maintenance.
//! - the workload: at seeded random gaps, one operation at a time from a random live tab:
//!   an insert (k = 3, a file of 2 KiB to 300 KiB, log-uniform) or a lookup of a random
//!   acknowledged file (content compared with what was inserted). An insert that resolves
//!   is acknowledged and goes in the ledger.
//! - the sampler: every tab's JS heap (CDP `Runtime.getHeapUsage`), wasm memory and
//!   `RTCPeerConnection`s made (`view().peerConnectionsCreated`, what the driver counts
//!   against its budget).
//!
//! When the churn stops, every leaf set must become exact (what the core computes from the
//! live ids), then every acknowledged file is looked up from live tabs (up to three
//! readers): a file none of them can read is lost.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::page::CrashParams;
use chromiumoxide::cdp::js_protocol::runtime::GetHeapUsageParams;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Chromium, eval, install_helpers, states, view, wait_joined, wait_leaf_sets_exact};

/// What a soak does.
#[derive(Clone, Debug)]
pub struct Soak {
    /// Live tabs to keep (the churn goes one below and back).
    pub tabs: usize,
    /// How long the churn and the workload run.
    pub churn: Duration,
    /// Seed of the churn and workload schedules.
    pub seed: u64,
    /// The page's query string (timers).
    pub query: String,
    /// Gap between churn events (uniform in the range).
    pub event_gap: (Duration, Duration),
    /// Gap between workload operations (uniform in the range).
    pub op_gap: (Duration, Duration),
    /// Percent of operations that insert (the others look up).
    pub insert_percent: u64,
    /// How often the sampler reads every tab.
    pub sample_every: Duration,
    /// Bound for a tab to join (after opening, reopening or reloading).
    pub join_bound: Duration,
    /// Bound for one insert or lookup.
    pub op_bound: Duration,
    /// Bound for every leaf set to be exact once the churn stops.
    pub settle_bound: Duration,
    /// Bound for all the lookups after the churn: a network whose lookups all run into
    /// `op_bound` fails the soak then, rather than after every file's readers each waited.
    pub final_bound: Duration,
}

impl Soak {
    /// The suite's short version: 8 tabs, 90 s of churn with the tests' fast timers.
    pub fn short(seed: u64) -> Self {
        Self {
            tabs: 8,
            churn: Duration::from_secs(90),
            seed,
            query: crate::FAST_TIMERS.to_string(),
            event_gap: (Duration::from_secs(8), Duration::from_secs(14)),
            op_gap: (Duration::from_secs(1), Duration::from_secs(3)),
            insert_percent: 35,
            sample_every: Duration::from_secs(15),
            join_bound: Duration::from_secs(60),
            op_bound: Duration::from_secs(20),
            settle_bound: Duration::from_secs(60),
            final_bound: Duration::from_secs(180),
        }
    }

    /// The benchmark: `tabs` tabs, `minutes` of churn, the page's default timers (5 s
    /// keep-alives, 3 s probe timeout), so events are further apart.
    pub fn benchmark(tabs: usize, minutes: u64, seed: u64) -> Self {
        Self {
            tabs,
            churn: Duration::from_secs(60 * minutes),
            seed,
            query: String::new(),
            event_gap: (Duration::from_secs(20), Duration::from_secs(40)),
            op_gap: (Duration::from_secs(2), Duration::from_secs(6)),
            insert_percent: 30,
            sample_every: Duration::from_secs(30),
            join_bound: Duration::from_secs(120),
            op_bound: Duration::from_secs(30),
            settle_bound: Duration::from_secs(120),
            final_bound: Duration::from_secs(30 * 60),
        }
    }
}

/// The connection budget the driver keeps by default (Chromium allows 500 per tab).
pub const CONNECTION_BUDGET: u32 = 480;

/// Leaf set size l of the pages (the default).
const LEAF_SET_SIZE: usize = 16;

/// Smallest and largest file inserted.
const FILE_BYTES: (f64, f64) = (2.0 * 1024.0, 300.0 * 1024.0);

/// Readers tried per file after the churn.
const FINAL_READERS: usize = 3;

/// Test helpers for the soak, added to `window.t`: `start(id, work)` runs `work()` and keeps
/// its outcome under `id` for `poll(id)` (`{gone: true}` once the page reloaded);
/// `insert(size, seed)`, `read(link)` (SHA-256 of the content read).
const HELPERS: &str = r#"(() => {
Object.assign(window.t, {
  ops: {},
  start(id, work) {
    t.ops[id] = {};
    Promise.resolve().then(work).then(
      (value) => { t.ops[id] = { value }; },
      (e) => { t.ops[id] = { error: { code: e?.code ?? "exception", message: String(e?.message ?? e) } }; });
    return true;
  },
  poll(id) {
    const o = t.ops[id];
    if (o === undefined) return { gone: true };
    if ("value" in o || "error" in o) delete t.ops[id];
    return o;
  },
  async insert(size, seed) {
    const bytes = t.content(size, seed);
    const r = await past.node.insert(new Blob([bytes]), { k: 3, name: `soak-${seed}` });
    return { fileId: r.fileId, link: r.link, receipts: r.receipts, sha: await t.sha256(bytes) };
  },
  async read(link) {
    const r = await past.node.lookup(link);
    return t.sha256(new Uint8Array(await (await r.blob()).arrayBuffer()));
  },
});
return true;
})()"#;

/// SplitMix64: a seed gives the same schedule every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gap(&mut self, (low, high): (Duration, Duration)) -> Duration {
        low + (high.saturating_sub(low)).mul_f64(self.unit())
    }

    fn file_size(&mut self) -> usize {
        (FILE_BYTES.0 * (FILE_BYTES.1 / FILE_BYTES.0).powf(self.unit())) as usize
    }
}

/// Draws kinds of events in rounds: every kind once a round, in a seeded random order, so
/// even a short soak has each kind.
struct Rounds {
    kinds: &'static [&'static str],
    left: Vec<&'static str>,
}

impl Rounds {
    fn new(kinds: &'static [&'static str]) -> Self {
        Self { kinds, left: Vec::new() }
    }

    fn draw(&mut self, rng: &mut Rng) -> &'static str {
        if self.left.is_empty() {
            self.left = self.kinds.to_vec();
        }
        self.left.swap_remove(rng.below(self.left.len()))
    }
}

/// A live tab.
struct Tab {
    name: String,
    id: String,
    context: BrowserContextId,
    page: Page,
    /// Page loads so far (1 + reloads and returns).
    load: u32,
}

/// A tab that left; its context (and so its IndexedDB) stays, so it may come back.
struct Away {
    name: String,
    id: String,
    context: BrowserContextId,
    load: u32,
}

/// The tabs, shared by the churn, the workload and the sampler.
#[derive(Default)]
struct Network {
    live: Vec<Tab>,
    away: Vec<Away>,
    opened: usize,
    /// Churn events per tab name so far (an operation on a tab that had one was interrupted).
    events: BTreeMap<String, u32>,
    /// `RTCPeerConnection`s made, per tab name and page load, as last read.
    peer_connections: BTreeMap<(String, u32), u32>,
}

impl Network {
    /// A random live tab, other than `except` when there is another.
    fn pick(&self, rng: &mut Rng, except: &str) -> Option<(String, Page)> {
        let others: Vec<&Tab> = self.live.iter().filter(|t| t.name != except).collect();
        let candidates = if others.is_empty() { self.live.iter().collect() } else { others };
        let tab = candidates.get(rng.below(candidates.len()))?;
        Some((tab.name.clone(), tab.page.clone()))
    }

    fn named(&self) -> Vec<(String, Page)> {
        self.live.iter().map(|t| (t.name.clone(), t.page.clone())).collect()
    }

    fn events_of(&self, name: &str) -> u32 {
        self.events.get(name).copied().unwrap_or(0)
    }
}

fn lock(net: &Mutex<Network>) -> MutexGuard<'_, Network> {
    // Nothing panics while holding it; a poisoned lock still holds consistent data.
    net.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One sample of one tab.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Time since the churn started.
    pub at: Duration,
    /// The tab.
    pub name: String,
    /// Its page load.
    pub load: u32,
    /// Used JS heap (CDP `Runtime.getHeapUsage`), bytes.
    pub js_heap: f64,
    /// The wasm instance's linear memory, bytes.
    pub wasm: f64,
}

/// An acknowledged insert.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inserted {
    /// The fileId.
    pub file_id: String,
    /// Its share link (fileId and key).
    pub link: String,
    /// Store receipts returned.
    pub receipts: u32,
    /// SHA-256 of the content.
    pub sha: String,
}

/// A file in the ledger.
#[derive(Clone, Debug)]
pub struct File {
    /// Seed of its content.
    pub seed: u64,
    /// Its size.
    pub size: usize,
    /// The tab that inserted it.
    pub owner: String,
    /// What the insert returned.
    pub inserted: Inserted,
}

/// What a soak saw.
#[derive(Debug)]
pub struct Report {
    /// The soak's settings.
    pub settings: String,
    /// Churn events by kind.
    pub events: BTreeMap<&'static str, u32>,
    /// Fewest and most live tabs between events.
    pub live_range: (usize, usize),
    /// Acknowledged inserts.
    pub files: Vec<File>,
    /// Inserts that failed, by reason.
    pub insert_failures: BTreeMap<String, u32>,
    /// Lookups during the churn that returned the file's content.
    pub lookups_ok: u32,
    /// Lookups during the churn that failed, by reason.
    pub lookup_failures: BTreeMap<String, u32>,
    /// Operations cut short because their own tab was closed, crashed or reloaded.
    pub interrupted: u32,
    /// Time for every leaf set to be exact after the churn, or why they were not.
    pub leaf_sets: Result<Duration, String>,
    /// Acknowledged files no reader could read after the churn, with the reasons.
    pub lost: Vec<String>,
    /// Final lookups that failed before another reader read the file.
    pub final_retries: u32,
    /// Acknowledged files not looked up after the churn because `final_bound` had passed.
    pub unchecked: usize,
    /// `RTCPeerConnection`s made, per tab name and page load.
    pub peer_connections: BTreeMap<(String, u32), u32>,
    /// Memory samples.
    pub samples: Vec<Sample>,
    /// Every live tab's state at the end ([`crate::states`]), for failure messages.
    pub states: Vec<String>,
}

/// Memory of one page load from the first sample to the last.
#[derive(Debug)]
pub struct Memory {
    /// The tab.
    pub name: String,
    /// JS heap used: first, last, max (bytes).
    pub js_heap: [f64; 3],
    /// Wasm memory: first, last, max (bytes).
    pub wasm: [f64; 3],
}

impl Report {
    /// Lookups during the churn that failed (interrupted ones not counted).
    pub fn lookups_failed(&self) -> u32 {
        self.lookup_failures.values().sum()
    }

    /// Most `RTCPeerConnection`s made by one page load.
    pub fn max_per_load(&self) -> u32 {
        self.peer_connections.values().copied().max().unwrap_or(0)
    }

    /// `RTCPeerConnection`s made per tab identity over all its page loads.
    pub fn per_tab(&self) -> BTreeMap<String, u32> {
        let mut per_tab = BTreeMap::new();
        for ((name, _), count) in &self.peer_connections {
            *per_tab.entry(name.clone()).or_default() += count;
        }
        per_tab
    }

    /// Memory of the page loads alive in the first sample and the last (the long-lived tabs).
    pub fn long_lived(&self) -> Vec<Memory> {
        let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) else { return Vec::new() };
        let mut series: BTreeMap<(&str, u32), Vec<&Sample>> = BTreeMap::new();
        for s in &self.samples {
            series.entry((s.name.as_str(), s.load)).or_default().push(s);
        }
        let span = |of: &[&Sample], value: fn(&Sample) -> f64| {
            let max = of.iter().map(|s| value(s)).fold(0.0, f64::max);
            [value(of[0]), value(of[of.len() - 1]), max]
        };
        series
            .into_iter()
            .filter(|(_, of)| of[0].at == first.at && of[of.len() - 1].at == last.at)
            .map(|((name, _), of)| Memory {
                name: name.to_string(),
                js_heap: span(&of, |s| s.js_heap),
                wasm: span(&of, |s| s.wasm),
            })
            .collect()
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "churn soak: {}", self.settings)?;
        writeln!(
            f,
            "churn events: {:?}; live tabs between events {}..={}",
            self.events, self.live_range.0, self.live_range.1
        )?;
        writeln!(f, "inserts acknowledged: {}; failed: {:?}", self.files.len(), self.insert_failures)?;
        writeln!(
            f,
            "lookups during churn: {} ok, {} failed {:?}; operations interrupted by their own tab's churn: {}",
            self.lookups_ok,
            self.lookups_failed(),
            self.lookup_failures,
            self.interrupted
        )?;
        match &self.leaf_sets {
            Ok(took) => writeln!(f, "leaf sets exact {:.1} s after the churn stopped", took.as_secs_f64())?,
            Err(why) => writeln!(f, "leaf sets NOT exact after the churn: {why}")?,
        }
        writeln!(
            f,
            "acknowledged files lost: {} of {} (final lookups that needed another reader: {}) {:?}",
            self.lost.len(),
            self.files.len(),
            self.final_retries,
            self.lost
        )?;
        if self.unchecked > 0 {
            writeln!(f, "files NOT looked up after the churn (its bound passed first): {}", self.unchecked)?;
        }
        writeln!(
            f,
            "RTCPeerConnections: most by one page load {} (driver budget {CONNECTION_BUDGET}, Chromium's limit 500); \
             per tab over all its loads {:?}",
            self.max_per_load(),
            self.per_tab()
        )?;
        writeln!(f, "memory of page loads alive from the first sample to the last (MiB: first -> last, max):")?;
        for m in self.long_lived() {
            let [heap, wasm] = [m.js_heap, m.wasm]
                .map(|[first, last, max]| format!("{} -> {} (max {})", mib(first), mib(last), mib(max)));
            writeln!(f, "  {}: JS heap {heap}, wasm {wasm}", m.name)?;
        }
        Ok(())
    }
}

/// How one insert or lookup ended.
enum Outcome<T> {
    Done(T),
    Failed(String),
    /// The page went away (closed, crashed, reloaded) or did not answer.
    Gone(String),
    TimedOut,
}

#[derive(Deserialize)]
struct JsError {
    code: String,
}

#[derive(Deserialize)]
struct Poll {
    gone: Option<bool>,
    value: Option<serde_json::Value>,
    error: Option<JsError>,
}

/// Runs `work` (a JS expression) in `page` as operation `id`, polling for its outcome.
async fn operation<T: DeserializeOwned>(page: &Page, id: u64, work: &str, bound: Duration) -> Outcome<T> {
    if let Err(e) = eval::<bool>(page, &format!("t.start({id}, () => {work})")).await {
        return Outcome::Gone(format!("{e:#}"));
    }
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match eval::<Poll>(page, &format!("t.poll({id})")).await {
            Err(e) => return Outcome::Gone(format!("{e:#}")),
            Ok(Poll { gone: Some(true), .. }) => return Outcome::Gone("the page reloaded".into()),
            Ok(Poll { error: Some(e), .. }) => return Outcome::Failed(e.code),
            Ok(Poll { value: Some(v), .. }) => {
                return serde_json::from_value(v)
                    .map_or_else(|e| Outcome::Failed(format!("bad value: {e}")), Outcome::Done);
            }
            Ok(_) => {}
        }
    }
    Outcome::TimedOut
}

/// Opens `url` in `context`, waits for the node to join and installs the helpers.
async fn open_tab(
    browser: &Chromium,
    context: &BrowserContextId,
    url: &str,
    name: &str,
    bound: Duration,
) -> anyhow::Result<(Page, String)> {
    let page = bounded(|| format!("opening {name}"), browser.open_in_context(context, url)).await?;
    let id = wait_joined(&page, name, bound).await?;
    install_helpers(&page, HELPERS).await?;
    Ok((page, id))
}

/// Bound for one browser step of the churn (a new context, opening, reloading or closing a
/// tab): a step still pending then fails the run, naming the step, instead of waiting for
/// ever. Two full test runs (2026-12-02 and 03) waited 12 and 15 minutes with no timer
/// pending: chromiumoxide leaves a command to a crashed page unanswered for ever, so the
/// likeliest wait was a page command of the workload or the sampler on a tab the churn had
/// just crashed. Those are now bounded too ([`crate::EVAL_BOUND`]), as is the whole test
/// ([`crate::TEST_BOUND`]).
const STEP_BOUND: Duration = Duration::from_secs(60);

/// `step`, its error told as `what`, failed if it has not finished within [`STEP_BOUND`].
async fn bounded<T, E: Into<anyhow::Error>>(
    what: impl Fn() -> String,
    step: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(STEP_BOUND, step).await {
        Ok(result) => result.map_err(|e| e.into().context(what())),
        Err(_) => bail!("{} did not finish in {STEP_BOUND:?}", what()),
    }
}

/// `RTCPeerConnection`s the page made so far, if it answers.
async fn peer_connections(page: &Page) -> Option<u32> {
    view(page).await.ok().flatten().map(|v| v.peer_connections_created)
}

fn note_peer_connections(net: &Mutex<Network>, name: &str, load: u32, count: Option<u32>) {
    if let Some(count) = count {
        lock(net).peer_connections.insert((name.to_string(), load), count);
    }
}

/// The churn's environment.
struct Churn<'a> {
    browser: &'a Chromium,
    origin: &'a str,
    url: String,
    net: &'a Mutex<Network>,
    soak: &'a Soak,
    start: Instant,
}

impl Churn<'_> {
    /// Runs churn events until the end of the soak; returns the counts and the live range.
    async fn run(&self, mut rng: Rng) -> anyhow::Result<(BTreeMap<&'static str, u32>, (usize, usize))> {
        let mut counts = BTreeMap::new();
        let mut rounds = (Rounds::new(&["open", "return"]), Rounds::new(&["close", "crash", "reload"]));
        let mut range = (self.soak.tabs, self.soak.tabs);
        while self.start.elapsed() < self.soak.churn {
            tokio::time::sleep(rng.gap(self.soak.event_gap)).await;
            if self.start.elapsed() >= self.soak.churn {
                break;
            }
            let begun = Instant::now();
            let (kind, name) = self.event(&mut rng, &mut rounds).await?;
            *counts.entry(kind).or_default() += 1;
            let live = lock(self.net).live.len();
            range = (range.0.min(live), range.1.max(live));
            println!(
                "{:>6.1} s  {kind:<8} {name:<5} ({:.1} s)  live {live}",
                self.start.elapsed().as_secs_f64(),
                begun.elapsed().as_secs_f64()
            );
        }
        Ok((counts, range))
    }

    /// Picks and applies one event; returns its kind and the tab's name.
    async fn event(&self, rng: &mut Rng, rounds: &mut (Rounds, Rounds)) -> anyhow::Result<(&'static str, String)> {
        let (live, away) = {
            let net = lock(self.net);
            (net.live.len(), net.away.len())
        };
        if live < self.soak.tabs {
            return if away > 0 && rounds.0.draw(rng) == "return" {
                self.come_back(rng).await
            } else {
                self.open_new().await
            };
        }
        let tab = {
            let mut net = lock(self.net);
            let tab = net.live.remove(rng.below(live));
            *net.events.entry(tab.name.clone()).or_default() += 1;
            tab
        };
        note_peer_connections(self.net, &tab.name, tab.load, peer_connections(&tab.page).await);
        let name = tab.name.clone();
        let kind = match rounds.1.draw(rng) {
            "close" => self.close(tab).await?,
            "crash" => self.crash(tab).await?,
            _ => self.reload(tab).await?,
        };
        Ok((kind, name))
    }

    async fn open_new(&self) -> anyhow::Result<(&'static str, String)> {
        let name = {
            let mut net = lock(self.net);
            net.opened += 1;
            format!("n{}", net.opened - 1)
        };
        let context =
            bounded(|| format!("a browser context for {name}"), self.browser.new_context(self.origin)).await?;
        let (page, id) = open_tab(self.browser, &context, &self.url, &name, self.soak.join_bound).await?;
        let tab = Tab { name: name.clone(), id, context, page, load: 1 };
        lock(self.net).live.push(tab);
        Ok(("open", name))
    }

    async fn come_back(&self, rng: &mut Rng) -> anyhow::Result<(&'static str, String)> {
        let away = {
            let mut net = lock(self.net);
            let i = rng.below(net.away.len());
            net.away.remove(i)
        };
        let (page, id) = open_tab(self.browser, &away.context, &self.url, &away.name, self.soak.join_bound).await?;
        ensure!(id == away.id, "{} came back as {id}, not as {}: the identity slot was not kept", away.name, away.id);
        let tab = Tab { name: away.name.clone(), id, context: away.context, page, load: away.load + 1 };
        lock(self.net).live.push(tab);
        Ok(("return", away.name))
    }

    async fn close(&self, tab: Tab) -> anyhow::Result<&'static str> {
        bounded(|| format!("closing {}", tab.name), tab.page.clone().close()).await?;
        self.leave(tab);
        Ok("close")
    }

    async fn crash(&self, tab: Tab) -> anyhow::Result<&'static str> {
        // A crashed page never answers the command: do not wait for it.
        let page = tab.page.clone();
        let crash = tokio::spawn(async move { page.execute(CrashParams::default()).await.map(|_| ()) });
        let crashed = crate::wait_for(
            &format!("{}'s renderer to crash", tab.name),
            Duration::from_secs(20),
            // A crashed page never answers: an answer missing for 2 s tells.
            || async {
                let answer = tokio::time::timeout(Duration::from_secs(2), eval::<bool>(&tab.page, "true")).await;
                Ok((!matches!(answer, Ok(Ok(true)))).then_some(()))
            },
            || async { String::new() },
        )
        .await;
        crash.abort();
        crashed?;
        bounded(|| format!("closing crashed {}", tab.name), self.browser.close_target(&tab.page)).await?;
        self.leave(tab);
        Ok("crash")
    }

    async fn reload(&self, mut tab: Tab) -> anyhow::Result<&'static str> {
        bounded(|| format!("reloading {}", tab.name), tab.page.reload()).await?;
        let id = wait_joined(&tab.page, &tab.name, self.soak.join_bound).await?;
        ensure!(id == tab.id, "{} reloaded as {id}, not as {}", tab.name, tab.id);
        install_helpers(&tab.page, HELPERS).await?;
        tab.load += 1;
        lock(self.net).live.push(tab);
        Ok("reload")
    }

    fn leave(&self, tab: Tab) {
        let away = Away { name: tab.name, id: tab.id, context: tab.context, load: tab.load };
        lock(self.net).away.push(away);
    }
}

/// What the workload saw.
struct Workload {
    start: Instant,
    files: Vec<File>,
    insert_failures: BTreeMap<String, u32>,
    lookups_ok: u32,
    lookup_failures: BTreeMap<String, u32>,
    interrupted: u32,
    next_op: u64,
}

impl Workload {
    /// Runs operations until `end`.
    async fn run(mut self, net: &Mutex<Network>, soak: &Soak, end: Instant, mut rng: Rng) -> Self {
        while Instant::now() < end {
            tokio::time::sleep(rng.gap(soak.op_gap)).await;
            if self.files.is_empty() || rng.below(100) < soak.insert_percent as usize {
                let picked = lock(net).pick(&mut rng, "");
                let Some((name, page)) = picked else { continue };
                let (seed, size) = (self.next_op, rng.file_size());
                self.insert(net, &name, &page, seed, size, soak.op_bound).await;
            } else {
                let file = self.files[rng.below(self.files.len())].clone();
                let picked = lock(net).pick(&mut rng, &file.owner);
                let Some((name, page)) = picked else { continue };
                self.lookup(net, &name, &page, &file, soak.op_bound).await;
            }
        }
        self
    }

    /// Runs one operation on `name`'s page; a page that went away counts as interrupted if
    /// its tab had a churn event meanwhile, else as a failure of the page.
    async fn run_op<T: DeserializeOwned>(
        &mut self,
        net: &Mutex<Network>,
        name: &str,
        page: &Page,
        work: &str,
        bound: Duration,
    ) -> Result<Option<T>, String> {
        self.next_op += 1;
        let before = lock(net).events_of(name);
        let outcome = operation(page, self.next_op, work, bound).await;
        let churned = lock(net).events_of(name) != before;
        match outcome {
            Outcome::Done(value) => Ok(Some(value)),
            Outcome::Failed(code) => Err(code),
            Outcome::TimedOut => Err(format!("no answer in {bound:?}")),
            Outcome::Gone(_) if churned => {
                self.interrupted += 1;
                Ok(None)
            }
            Outcome::Gone(why) => Err(format!("page unreadable: {}", why.chars().take(120).collect::<String>())),
        }
    }

    async fn insert(&mut self, net: &Mutex<Network>, name: &str, page: &Page, seed: u64, size: usize, bound: Duration) {
        match self.run_op::<Inserted>(net, name, page, &format!("t.insert({size}, {seed})"), bound).await {
            Ok(Some(inserted)) if inserted.receipts >= 3 => {
                self.files.push(File { seed, size, owner: name.to_string(), inserted });
            }
            Ok(Some(inserted)) => {
                *self.insert_failures.entry(format!("resolved with {} receipts", inserted.receipts)).or_default() += 1;
            }
            Ok(None) => {}
            Err(why) => {
                self.log(&format!("insert of {size} B (seed {seed}) from {name} failed: {why}"));
                *self.insert_failures.entry(why).or_default() += 1;
            }
        }
    }

    async fn lookup(&mut self, net: &Mutex<Network>, name: &str, page: &Page, file: &File, bound: Duration) {
        let work = format!("t.read({:?})", file.inserted.link);
        match self.run_op::<String>(net, name, page, &work, bound).await {
            Ok(Some(sha)) if sha == file.inserted.sha => self.lookups_ok += 1,
            Ok(Some(_)) => self.lookup_failed(name, file, "other content".into()),
            Ok(None) => {}
            Err(why) => self.lookup_failed(name, file, why),
        }
    }

    fn lookup_failed(&mut self, name: &str, file: &File, why: String) {
        self.log(&format!("lookup from {name} of seed {} (by {}) failed: {why}", file.seed, file.owner));
        *self.lookup_failures.entry(why).or_default() += 1;
    }

    fn log(&self, what: &str) {
        println!("{:>6.1} s  {what}", self.start.elapsed().as_secs_f64());
    }
}

/// JS heap and wasm memory of `page`.
async fn memory(page: &Page) -> anyhow::Result<(f64, f64)> {
    let heap = tokio::time::timeout(crate::EVAL_BOUND, page.execute(GetHeapUsageParams::default()))
        .await
        .context("CDP Runtime.getHeapUsage: no answer")?
        .context("CDP Runtime.getHeapUsage")?;
    let wasm: f64 = eval(page, "past.memory().wasmBytes").await?;
    Ok((heap.result.used_size, wasm))
}

/// Samples every live tab every `soak.sample_every` until `end`, and once after it.
async fn sample(net: &Mutex<Network>, soak: &Soak, start: Instant, end: Instant) -> Vec<Sample> {
    let mut samples = Vec::new();
    loop {
        let at = start.elapsed();
        let tabs: Vec<(String, u32, Page)> =
            lock(net).live.iter().map(|t| (t.name.clone(), t.load, t.page.clone())).collect();
        for (name, load, page) in tabs {
            note_peer_connections(net, &name, load, peer_connections(&page).await);
            if let Ok((js_heap, wasm)) = memory(&page).await {
                samples.push(Sample { at, name, load, js_heap, wasm });
            }
        }
        if Instant::now() >= end {
            return samples;
        }
        tokio::time::sleep(soak.sample_every.min(end.saturating_duration_since(Instant::now()))).await;
    }
}

/// Opens `soak.tabs` tabs one after the other and waits until every leaf set is exact.
async fn start_tabs(browser: &Chromium, origin: &str, url: &str, soak: &Soak) -> anyhow::Result<Network> {
    let mut net = Network::default();
    for i in 0..soak.tabs {
        let name = format!("n{i}");
        let context = bounded(|| format!("a browser context for {name}"), browser.new_context(origin)).await?;
        let (page, id) = open_tab(browser, &context, url, &name, soak.join_bound).await?;
        net.live.push(Tab { name, id, context, page, load: 1 });
    }
    net.opened = soak.tabs;
    wait_leaf_sets_exact(&net.named(), LEAF_SET_SIZE, soak.settle_bound).await?;
    Ok(net)
}

/// What the lookups after the churn found.
struct Final {
    /// Files none of the readers could read, with each reader's reason.
    lost: Vec<String>,
    /// Readers that failed before another read the file.
    retries: u32,
    /// Files not looked up because `soak.final_bound` passed first.
    unchecked: usize,
}

/// Looks every file up from up to [`FINAL_READERS`] live tabs, until `soak.final_bound`.
async fn final_lookups(net: &Mutex<Network>, files: &[File], soak: &Soak, rng: &mut Rng) -> Final {
    let readers = lock(net).named();
    let deadline = Instant::now() + soak.final_bound;
    let (mut lost, mut retries) = (Vec::new(), 0);
    let mut op = u64::MAX / 2;
    for (done, file) in files.iter().enumerate() {
        if Instant::now() >= deadline {
            return Final { lost, retries, unchecked: files.len() - done };
        }
        let first = rng.below(readers.len());
        let mut reasons = Vec::new();
        for (name, page) in readers.iter().cycle().skip(first).take(FINAL_READERS.min(readers.len())) {
            op += 1;
            let work = format!("t.read({:?})", file.inserted.link);
            match operation::<String>(page, op, &work, soak.op_bound).await {
                Outcome::Done(sha) if sha == file.inserted.sha => break,
                Outcome::Done(_) => reasons.push(format!("{name}: other content")),
                Outcome::Failed(code) => reasons.push(format!("{name}: {code}")),
                Outcome::Gone(why) => reasons.push(format!("{name}: page unreadable: {why}")),
                Outcome::TimedOut => reasons.push(format!("{name}: no answer in {:?}", soak.op_bound)),
            }
        }
        if reasons.len() == FINAL_READERS.min(readers.len()) {
            lost.push(format!(
                "seed {} ({} B, inserted by {}, fileId {}): {reasons:?}",
                file.seed, file.size, file.owner, file.inserted.file_id
            ));
        } else {
            retries += reasons.len() as u32;
        }
    }
    Final { lost, retries, unchecked: 0 }
}

/// Runs the soak against the signaling server at `origin`.
pub async fn run(browser: &Chromium, origin: &str, soak: &Soak) -> anyhow::Result<Report> {
    let url = format!("{origin}/?{}", soak.query);
    let net = Mutex::new(start_tabs(browser, origin, &url, soak).await?);
    let start = Instant::now();
    let end = start + soak.churn;
    let churn = Churn { browser, origin, url: url.clone(), net: &net, soak, start };
    let workload = Workload {
        start,
        files: Vec::new(),
        insert_failures: BTreeMap::new(),
        lookups_ok: 0,
        lookup_failures: BTreeMap::new(),
        interrupted: 0,
        next_op: 0,
    };
    let churned = tokio::try_join!(
        churn.run(Rng(soak.seed)),
        async { Ok(workload.run(&net, soak, end, Rng(soak.seed ^ 0x5eed)).await) },
        async { Ok(sample(&net, soak, start, end).await) }
    );
    let ((events, live_range), workload, mut samples) = match churned {
        Ok(done) => done,
        Err(e) => {
            let named = lock(&net).named();
            bail!("{e:#}\nstates of the live tabs: {:#?}", states(&named).await);
        }
    };
    let settle = Instant::now();
    let named = lock(&net).named();
    let leaf_sets = match wait_leaf_sets_exact(&named, LEAF_SET_SIZE, soak.settle_bound).await {
        Ok(()) => Ok(settle.elapsed()),
        Err(e) => Err(format!("{e:#}")),
    };
    let checked = final_lookups(&net, &workload.files, soak, &mut Rng(soak.seed ^ 0xf1a1)).await;
    samples.append(&mut sample(&net, soak, start, Instant::now()).await);
    let peer_connections = lock(&net).peer_connections.clone();
    let named = lock(&net).named();
    Ok(Report {
        settings: format!(
            "{} tabs, {:?} of churn, seed {}, page ?{}, events every {:?}..{:?}, operations every {:?}..{:?} ({} % inserts)",
            soak.tabs,
            soak.churn,
            soak.seed,
            soak.query,
            soak.event_gap.0,
            soak.event_gap.1,
            soak.op_gap.0,
            soak.op_gap.1,
            soak.insert_percent
        ),
        events,
        live_range,
        files: workload.files,
        insert_failures: workload.insert_failures,
        lookups_ok: workload.lookups_ok,
        lookup_failures: workload.lookup_failures,
        interrupted: workload.interrupted,
        leaf_sets,
        lost: checked.lost,
        final_retries: checked.retries,
        unchecked: checked.unchecked,
        peer_connections,
        samples,
        states: states(&named).await,
    })
}
