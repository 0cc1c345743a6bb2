//! A tab that a read depends on is closed while the file comes from or through it.
//!
//! - **A relay.** A tab that carries a file along a lookup's route is closed mid-way. The
//!   chunks it was carrying are lost, and nothing tells the reader, whose requests have
//!   passed. The reader's pull, silent for 2 s, asks again; the tab before the closed one
//!   sends that request back (or, if it has not noticed yet, the reader gives the way up
//!   after 2 s more); the reader routes its lookup again, and gets the rest of the file from
//!   the same holder, the file's only one, along another way. Tabs answer along the route
//!   always, for files up to 16 MiB (`?answers=route&relaymax=`); files have one replica.
//! - **The holder.** The tab a file is read straight from (6 MiB, above the 1 MiB of what
//!   goes along the route by default) is closed mid-way; the file has three replicas. The
//!   reader's pull, silent for 2 s, asks again; that request cannot be sent to the closed
//!   tab (or, its close not known yet, is lost, and the reader gives the holder up 2 s
//!   later), and the reader goes on straight from another holder the first one named.
//! - **The holder freezes.** As above, but the holder's tab is frozen instead of closed
//!   (DevTools' `Page.setWebLifecycleState`, as a browser freezes a background tab, or as a
//!   hung page looks from outside): it runs no more script, while its connections stay open
//!   at the other end, so what the reader sends it is lost with no error. The reader's peer
//!   manager pings behind what it sends; with no answer in 3 s it takes the holder for
//!   failed, and the reader goes on from another holder.
//!
//! Twelve tabs with small tables (l = 4, b = 1). Files of 6 MiB are inserted and read one
//! after the other, each by the tab farthest from it on the ring (so that it holds no
//! replica and its route likely passes other tabs), until one read has had its tab closed
//! or frozen mid-way (a relay that has carried over 1 MiB of it, or its holder once the
//! reader has 1 MiB); that read must arrive whole and right. Each test prints how long
//! after the tab stopped the read ended, and where it stood still (docs/results-past.md).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chromiumoxide::Page;
use past_core::Id;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, bytes_relayed, eval, eval_slow, found_silent, freeze, install_helpers,
    node_state, open_network, view, with_browser,
};
use serde::Deserialize;

const TABS: usize = 12;
const LEAF_SET: usize = 4;
/// Most files inserted and read; a test stops at the first read whose tab is closed.
const FILES: u64 = 16;
/// Large enough that a read along the route lasts seconds on loopback.
const SIZE: u64 = 6 << 20;
/// Files up to this size are answered along the route.
const RELAY_MAX: u64 = 16 << 20;
/// What a tab must have carried of the read in progress to count as its relay, and what
/// the reader must have of it before its holder is closed.
const CARRIED: u64 = 1 << 20;
/// Longest a read may stand still after its tab closed: less than the pull's stall
/// timeout (30 s), which a read that waits it out exceeds (30.1 and 36.2 s in two of three
/// runs of the holder test before straight pulls gave their holder up). Then 2.1 to
/// 4.2 s, and 14 s once: the lookup routed again after the 4 s of silence was lost at the
/// closed tab, most likely, and sent again after the 10 s request timeout. Since readers
/// go on from a holder the first one named instead, 2.1 to 4.1 s in ten runs; the bound
/// stays above that case, which a reader with no such holder can still meet.
const STALL_BOUND: Duration = Duration::from_secs(25);
/// Longest a read may take, a tab closed or not (its lookup's attempts included).
const READ_BOUND: Duration = Duration::from_secs(80);

#[derive(Debug, Deserialize)]
struct Inserted {
    link: String,
    #[serde(rename = "fileId")]
    file_id: String,
}

#[derive(Debug, Deserialize)]
struct Read {
    size: u64,
    sha256: String,
    holder: String,
}

#[derive(Debug, Deserialize)]
struct Outcome {
    value: Option<Read>,
    error: Option<String>,
}

/// Which tab of a read is closed mid-way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    /// One that has carried [`CARRIED`] bytes of it along the route.
    Relay,
    /// The holder it reads from, once the reader has [`CARRIED`] bytes.
    Holder,
}

/// What happens to the victim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Its tab is closed.
    Close,
    /// Its tab is frozen: no more script runs in it, its connections stay open.
    Freeze,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_goes_on_when_the_tab_that_relays_it_closes() -> anyhow::Result<()> {
    let query = format!("answers=route&relaymax={RELAY_MAX}");
    let case = (1, Victim::Relay, Stop::Close);
    with_browser(async |browser, server| scenario(browser, &server.http_origin(), &query, case).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_goes_on_from_another_holder_when_its_holder_closes() -> anyhow::Result<()> {
    let case = (3, Victim::Holder, Stop::Close);
    with_browser(async |browser, server| scenario(browser, &server.http_origin(), "", case).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_goes_on_from_another_holder_when_its_holder_freezes() -> anyhow::Result<()> {
    let case = (3, Victim::Holder, Stop::Freeze);
    with_browser(async |browser, server| scenario(browser, &server.http_origin(), "", case).await).await
}

/// Inserts files with `k` replicas and reads them until one read has had its `victim`
/// closed or frozen (`stop`) mid-way.
async fn scenario(
    browser: &Chromium,
    origin: &str,
    query: &str,
    (k, victim, stop): (u8, Victim, Stop),
) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}&leaf={LEAF_SET}&bits=1&{query}");
    let pause = Duration::from_millis(200);
    let mut pages = open_network(browser, origin, &url, (TABS, pause), LEAF_SET, JOIN_TIMEOUT).await?;
    let mut ids = Vec::new();
    for (name, page) in &pages {
        install_helpers(page, "true").await?;
        let id = view(page).await?.with_context(|| format!("{name} has a node"))?.node_id;
        ids.push(id);
    }
    let owner = pages[0].1.clone();
    for seed in 0..FILES {
        let expected: String = eval(&owner, &format!("t.sha256(t.content({SIZE}, {seed}))")).await?;
        let insert = format!("past.node.insert(new Blob([t.content({SIZE}, {seed})]), {{k: {k}, name: 'f{seed}'}})");
        let inserted: Inserted = eval_slow(&owner, &insert).await?;
        let key = id_of(&inserted.file_id)?;
        let far = (0..pages.len()).map(|i| Ok((id_of(&ids[i])?, i))).collect::<anyhow::Result<Vec<_>>>()?;
        let far = far.iter().max_by_key(|(id, _)| key.ring_distance(*id)).map(|&(_, i)| i).context("a tab")?;
        let reader = pages[far].1.clone();
        start_read(&reader, &inserted.link).await?;
        let (read, stopped) = watch_read((&reader, far), &mut pages, &mut ids, (victim, stop)).await?;
        ensure!((read.size, &read.sha256) == (SIZE, &expected), "the reader read other bytes: {read:?}");
        let Some((stopped, after)) = stopped else {
            eprintln!("read {} bytes from {}; no tab was stopped", read.size, read.holder);
            continue;
        };
        let progress: Vec<(f64, u64)> = eval(&reader, "window.readProgress").await?;
        let stall = Stall::of(&progress, stopped.at_ms).context("the read's progress")?;
        eprintln!(
            "read {} bytes from {}: {:.1} s after {} ({victim:?}, {stop:?}) stopped; {stall}",
            read.size,
            read.holder,
            after.as_secs_f64(),
            stopped.tab
        );
        if stop == Stop::Freeze {
            ensure!(
                found_silent(&reader, &stopped.id).await?,
                "the reader did not find the frozen {} silent: {}",
                stopped.tab,
                node_state(&reader).await
            );
        }
        ensure!(stall.lasted() < STALL_BOUND, "the read stood still longer than {STALL_BOUND:?}: {stall}");
        return Ok(());
    }
    bail!("no read had its {victim:?} stopped ({stop:?}): the case is not exercised")
}

/// Starts reading `link` in `page`; [`watch_read`] waits for the outcome.
async fn start_read(page: &Page, link: &str) -> anyhow::Result<()> {
    let expression = format!(
        "(window.readOutcome = null, window.readProgress = [], window.readHolder = null, past.node.lookup({link:?}).then(async (r) => {{
           window.readHolder = r.holder;
           const parts = [];
           let got = 0;
           for (const reader = r.stream.getReader(); ;) {{
             const {{ done, value }} = await reader.read();
             if (done) break;
             parts.push(value);
             got += value.length;
             window.readProgress.push([performance.now(), got]);
           }}
           const bytes = new Uint8Array(await new Blob(parts).arrayBuffer());
           return {{ size: bytes.length, sha256: await t.sha256(bytes), holder: r.holder }};
         }}).then((value) => window.readOutcome = {{ value }},
                  (e) => window.readOutcome = {{ error: `${{e?.code}}: ${{e?.message ?? e}}` }}), true)"
    );
    eval::<bool>(page, &expression).await.map(drop)
}

/// The ring position of a node id or fileId given in hex (a fileId's first 128 bits, as
/// `FileId::key`).
fn id_of(hex: &str) -> anyhow::Result<Id> {
    let digits = hex.get(..32).with_context(|| format!("{hex:?} is too short for an id"))?;
    Ok(Id::from_u128(u128::from_str_radix(digits, 16).with_context(|| format!("{hex:?} is not hex"))?))
}

/// A tab closed or frozen during a read.
#[derive(Debug)]
struct Stopped {
    /// Its name and node id.
    tab: String,
    id: String,
    /// When, and the reader's `performance.now()` then.
    at: Instant,
    at_ms: f64,
}

/// Waits for the read started in `reader` (the page at index `at` of `pages`, whose node
/// ids are `ids`), closing or freezing its `victim` mid-way (`stop`). Returns the read, and,
/// if a tab was stopped, that tab and how long after it the read ended. A stopped tab leaves
/// `pages` and `ids`.
async fn watch_read(
    (reader, at): (&Page, usize),
    pages: &mut Vec<(String, Page)>,
    ids: &mut Vec<String>,
    (victim, stop): (Victim, Stop),
) -> anyhow::Result<(Read, Option<(Stopped, Duration)>)> {
    let started = Instant::now();
    let before = bytes_relayed(pages).await?;
    let mut stopped: Option<Stopped> = None;
    while started.elapsed() < READ_BOUND {
        if let Some(outcome) = eval::<Option<Outcome>>(reader, "window.readOutcome").await? {
            let read = match outcome {
                Outcome { value: Some(read), .. } => read,
                Outcome { error, .. } => {
                    let state = node_state(reader).await;
                    bail!("the read failed: {error:?} (stopped: {stopped:?}); the reader: {state}")
                }
            };
            let after = stopped.as_ref().map(|s| s.at.elapsed());
            return Ok((read, stopped.zip(after)));
        }
        let found = match (&stopped, victim) {
            (Some(_), _) => None,
            (None, Victim::Relay) => carrier(pages, &before, at).await?,
            (None, Victim::Holder) => holder(reader, ids).await?.filter(|&i| i != at),
        };
        if let Some(i) = found {
            let ((tab, page), id) = (pages.remove(i), ids.remove(i));
            eprintln!("stopping {tab} ({stop:?}), the read's {victim:?}");
            let at_ms: f64 = eval(reader, "performance.now()").await?;
            match stop {
                Stop::Close => page.close().await?,
                Stop::Freeze => freeze(&page).await?,
            }
            stopped = Some(Stopped { tab, id, at: Instant::now(), at_ms });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the read did not end in {READ_BOUND:?} (stopped: {stopped:?})")
}

/// The index of the first tab of `pages` but `reader` that has carried over [`CARRIED`]
/// bytes since `before`.
async fn carrier(pages: &[(String, Page)], before: &[u64], reader: usize) -> anyhow::Result<Option<usize>> {
    let now = bytes_relayed(pages).await?;
    Ok((0..pages.len()).find(|&i| i != reader && now[i] - before[i] >= CARRIED))
}

/// The index in `ids` of the holder `reader` reads from, once it has over [`CARRIED`] bytes.
async fn holder(reader: &Page, ids: &[String]) -> anyhow::Result<Option<usize>> {
    let expression = format!("window.readProgress.at(-1)?.[1] > {CARRIED} ? window.readHolder : null");
    let Some(holder) = eval::<Option<String>>(reader, &expression).await? else {
        return Ok(None);
    };
    Ok(ids.iter().position(|id| *id == holder))
}

/// Where a read whose tab stopped stood still: from the reader's progress (`[ms, bytes so
/// far]` at each piece) and the moment the tab stopped (same clock).
#[derive(Debug)]
struct Stall {
    /// Bytes the reader had when the tab stopped.
    had: u64,
    /// The longest stretch with no bytes that ended after the tab stopped: its start and end,
    /// in ms after it stopped (the start is the stop itself if no byte came in between).
    from_ms: f64,
    to_ms: f64,
    /// From the end of that stretch to the last byte, and the bytes that came after it.
    rest_ms: f64,
    rest: u64,
}

impl Stall {
    fn of(progress: &[(f64, u64)], stopped_ms: f64) -> Option<Stall> {
        let had = progress.iter().take_while(|&&(t, _)| t <= stopped_ms).last().map_or(0, |&(_, b)| b);
        let after: Vec<(f64, u64)> = progress.iter().filter(|&&(t, _)| t > stopped_ms).copied().collect();
        let starts = std::iter::once((stopped_ms, had)).chain(after.iter().copied());
        let (start, end) =
            starts.zip(after.iter().copied()).max_by(|a, b| (a.1.0 - a.0.0).total_cmp(&(b.1.0 - b.0.0)))?;
        let &(last_ms, size) = progress.last()?;
        Some(Stall {
            had,
            from_ms: start.0 - stopped_ms,
            to_ms: end.0 - stopped_ms,
            rest_ms: last_ms - end.0,
            rest: size - end.1,
        })
    }

    /// How long the read stood still.
    fn lasted(&self) -> Duration {
        Duration::from_secs_f64((self.to_ms - self.from_ms) / 1e3)
    }
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        write!(
            f,
            "it had {:.2} MiB then; no bytes from {:.1} to {:.1} s after it stopped, then {:.2} MiB in {:.1} s",
            mib(self.had),
            self.from_ms / 1e3,
            self.to_ms / 1e3,
            mib(self.rest),
            self.rest_ms / 1e3
        )
    }
}
