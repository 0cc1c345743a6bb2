//! A tab that carries a file along a lookup's route is closed while the file comes through
//! it. The chunks it was carrying are lost, and nothing tells the reader, whose requests
//! have passed. The reader's pull, silent for 2 s, asks again; the tab before the closed
//! one sends that request back (or, if it has not noticed yet, the reader gives the way up
//! after 2 s more); the reader routes its lookup again, and gets the rest of the file from
//! the same holder, the file's only one, along another way.
//!
//! Twelve tabs with small tables (l = 4, b = 1) answering along the route always, for files
//! up to 16 MiB (`?answers=route&relaymax=`). Files of 6 MiB, one replica each, are inserted
//! and read one after the other, each by the tab farthest from it on the ring (so that its
//! route likely passes other tabs), until one read has had its relay tab closed mid-way (the
//! tab that has carried over 1 MiB of it); that read must arrive whole and right. It prints
//! how long after the close the read ended, and where it stood still (docs/results-past.md).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chromiumoxide::Page;
use past_core::Id;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, bytes_relayed, eval, eval_slow, install_helpers, node_state, open_network,
    view, with_browser,
};
use serde::Deserialize;

const TABS: usize = 12;
const LEAF_SET: usize = 4;
/// Most files inserted and read; the test stops at the first read whose relay is closed.
const FILES: u64 = 16;
/// Large enough that a read along the route lasts seconds on loopback.
const SIZE: u64 = 6 << 20;
/// Files up to this size are answered along the route.
const RELAY_MAX: u64 = 16 << 20;
/// What a tab must have carried of the read in progress to count as its relay.
const CARRIED: u64 = 1 << 20;
/// Longest a read may take, relay closed or not (its lookup's attempts included).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_goes_on_when_the_tab_that_relays_it_closes() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}&leaf={LEAF_SET}&bits=1&answers=route&relaymax={RELAY_MAX}");
    let pause = Duration::from_millis(200);
    let mut pages = open_network(browser, origin, &url, (TABS, pause), LEAF_SET, JOIN_TIMEOUT).await?;
    let mut ids = Vec::new();
    for (name, page) in &pages {
        install_helpers(page, "true").await?;
        let id = view(page).await?.with_context(|| format!("{name} has a node"))?.node_id;
        ids.push(id_of(&id)?);
    }
    let owner = pages[0].1.clone();
    for seed in 0..FILES {
        let expected: String = eval(&owner, &format!("t.sha256(t.content({SIZE}, {seed}))")).await?;
        let insert = format!("past.node.insert(new Blob([t.content({SIZE}, {seed})]), {{k: 1, name: 'f{seed}'}})");
        let inserted: Inserted = eval_slow(&owner, &insert).await?;
        let key = id_of(&inserted.file_id)?;
        let far = (0..pages.len()).max_by_key(|&i| key.ring_distance(ids[i])).context("a tab")?;
        let reader = pages[far].1.clone();
        start_read(&reader, &inserted.link).await?;
        let (read, closed) = watch_read((&reader, far), &mut pages).await?;
        ensure!((read.size, &read.sha256) == (SIZE, &expected), "{} read other bytes: {read:?}", pages[far].0);
        let Some((tab, after, closed_at_ms)) = closed else {
            eprintln!("read {} bytes from {}; no tab carried it", read.size, read.holder);
            continue;
        };
        let progress: Vec<(f64, u64)> = eval(&reader, "window.readProgress").await?;
        let stall = Stall::of(&progress, closed_at_ms).context("the read's progress")?;
        eprintln!(
            "read {} bytes from {}: {:.1} s after its relay {tab} closed; {stall}",
            read.size,
            read.holder,
            after.as_secs_f64()
        );
        return Ok(());
    }
    bail!("no read went through another tab: the case is not exercised")
}

/// Starts reading `link` in `page`; [`watch_read`] waits for the outcome.
async fn start_read(page: &Page, link: &str) -> anyhow::Result<()> {
    let expression = format!(
        "(window.readOutcome = null, window.readProgress = [], past.node.lookup({link:?}).then(async (r) => {{
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

/// Waits for the read started in `reader` (the page at index `at` of `pages`), closing the
/// first other tab that carries over [`CARRIED`] bytes of it before it ends. Returns the
/// read, and, if a tab was closed, its name, how long after its closing the read ended and
/// the reader's `performance.now()` when it was closed.
async fn watch_read(
    (reader, at): (&Page, usize),
    pages: &mut Vec<(String, Page)>,
) -> anyhow::Result<(Read, Option<(String, Duration, f64)>)> {
    let started = Instant::now();
    let before = bytes_relayed(pages).await?;
    let mut closed: Option<(String, Instant, f64)> = None;
    while started.elapsed() < READ_BOUND {
        if let Some(outcome) = eval::<Option<Outcome>>(reader, "window.readOutcome").await? {
            let read = match outcome {
                Outcome { value: Some(read), .. } => read,
                Outcome { error, .. } => {
                    let state = node_state(reader).await;
                    bail!("the read failed: {error:?} (relay closed: {closed:?}); the reader: {state}")
                }
            };
            return Ok((read, closed.map(|(tab, at, at_ms)| (tab, at.elapsed(), at_ms))));
        }
        if closed.is_none() {
            let now = bytes_relayed(pages).await?;
            if let Some(i) = (0..pages.len()).find(|&i| i != at && now[i] - before[i] >= CARRIED) {
                let (tab, page) = pages.remove(i);
                eprintln!("closing {tab}, which carried {} bytes of the read", now[i] - before[i]);
                let at_ms: f64 = eval(reader, "performance.now()").await?;
                page.close().await?;
                closed = Some((tab, Instant::now(), at_ms));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the read did not end in {READ_BOUND:?} (relay closed: {closed:?})")
}

/// Where a read whose relay closed stood still: from the reader's progress (`[ms, bytes
/// so far]` at each piece) and the moment the relay closed (same clock).
#[derive(Debug)]
struct Stall {
    /// Bytes the reader had when the relay closed.
    had: u64,
    /// The longest stretch with no bytes that ended after the close: its start and end,
    /// in ms after the close (the start is the close itself if no byte came in between).
    from_ms: f64,
    to_ms: f64,
    /// From the end of that stretch to the last byte, and the bytes that came after it.
    rest_ms: f64,
    rest: u64,
}

impl Stall {
    fn of(progress: &[(f64, u64)], closed_ms: f64) -> Option<Stall> {
        let had = progress.iter().take_while(|&&(t, _)| t <= closed_ms).last().map_or(0, |&(_, b)| b);
        let after: Vec<(f64, u64)> = progress.iter().filter(|&&(t, _)| t > closed_ms).copied().collect();
        let starts = std::iter::once((closed_ms, had)).chain(after.iter().copied());
        let (start, end) =
            starts.zip(after.iter().copied()).max_by(|a, b| (a.1.0 - a.0.0).total_cmp(&(b.1.0 - b.0.0)))?;
        let &(last_ms, size) = progress.last()?;
        Some(Stall {
            had,
            from_ms: start.0 - closed_ms,
            to_ms: end.0 - closed_ms,
            rest_ms: last_ms - end.0,
            rest: size - end.1,
        })
    }
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        write!(
            f,
            "it had {:.2} MiB then; no bytes from {:.1} to {:.1} s after the close, then {:.2} MiB in {:.1} s",
            mib(self.had),
            self.from_ms / 1e3,
            self.to_ms / 1e3,
            mib(self.rest),
            self.rest_ms / 1e3
        )
    }
}
