//! A file over 1 MiB, which a holder answers straight to its reader, still reaches a reader
//! to which no connection can open: here a tab whose connection budget is used up (it
//! joined with a budget of 5, so it refuses every offer after). The holder's offer is
//! refused, and its answer goes back along the lookup's route instead, the content after it,
//! through other tabs. Eight tabs with small tables (l = 4, b = 1) and the default answers
//! (`auto`: along the route to a reader not in the holder's tables, straight for files over
//! 1 MiB); files of 1.1 MiB inserted from one tab (k = 1) are read by the ninth, the one with
//! the small budget. One tab inserts until three files have their root (the tab whose id is
//! closest to the fileId, their only holder) at a tab the reader has no connection to, so
//! the case is exercised however the ids fall; the reader reads those and three others.
//! Files whose root is in the reader's leaf set without a connection are left out: a reader
//! that has forgotten it could not reach it can still take itself for the root and answer
//! "not found" (`core/src/detour.rs` covers the reader that remembers; docs/results-past.md);
//! a reader all of whose unconnected tabs are in its leaf set is closed and another opened.
//! Every
//! read arrives whole and right; the reader never creates more connections than its budget;
//! and a read from a holder it had no connection to went through other tabs, which carried
//! at least the file's size. Each read prints how long it took: one whose holder's offer was
//! refused waits for that refusal, which comes back the way the offer went (through the
//! overlay, then the server), not for a connect timeout.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, NodeView, bytes_relayed, closest, eval, expected_leaf_set, install_helpers,
    open_network, view, wait_joined, with_browser,
};
use serde::Deserialize;

const TABS: usize = 8;
const LEAF_SET: usize = 4;
/// The reader's connection budget: enough to join, none left for a holder's offer.
const BUDGET: u32 = 5;
/// Files to read whose root is a tab the reader has no connection to...
const AWAY: usize = 3;
/// ...and files whose root is the reader or a tab it is connected to.
const NEAR: usize = 3;
/// At most this many inserts to find them (a tab's share of the ring can be small).
const MAX_INSERTS: u64 = 120;
/// Readers opened at most, until one has a tab beyond its leaf set it has no connection to.
const READERS: usize = 3;
/// Over 1 MiB: answered straight when a connection opens.
const SIZE: u64 = (1 << 20) + 100_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inserted {
    file_id: String,
    link: String,
}

/// A file to read: its link and the SHA-256 of its content.
struct File {
    link: String,
    sha256: String,
}

#[derive(Debug, Deserialize)]
struct Read {
    size: u64,
    sha256: String,
    holder: String,
    connected: bool,
}

/// Reads `link` in `page`; also says whether the page had a connection to the holder.
async fn read(page: &Page, link: &str) -> anyhow::Result<Read> {
    let expression = format!(
        "past.node.lookup({link:?}).then(async (r) => {{
           const bytes = new Uint8Array(await (await r.blob()).arrayBuffer());
           const connected = past.node.view().connections.some((c) => c.id === r.holder);
           return {{ size: bytes.length, sha256: await t.sha256(bytes), holder: r.holder, connected }};
         }})"
    );
    eval(page, &expression).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_reaches_a_reader_no_connection_can_open_to_along_the_route() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}&leaf={LEAF_SET}&bits=1");
    let pause = Duration::from_millis(200);
    let pages = open_network(browser, origin, &url, (TABS, pause), LEAF_SET, JOIN_TIMEOUT).await?;
    let mut tabs = Vec::new();
    for (name, page) in &pages {
        tabs.push(view(page).await?.with_context(|| format!("{name} has a node"))?.node_id);
    }
    let (reader, reader_view, away) = open_reader(browser, origin, &url, &tabs).await?;
    let ids: Vec<String> = tabs.into_iter().chain([reader_view.node_id.clone()]).collect();
    let owner = &pages[0].1;
    install_helpers(owner, "true").await?;
    let near: Vec<String> = reader_view.open().into_iter().chain([reader_view.node_id.clone()]).collect();
    let files = insert_files(owner, &ids, (&away, &near)).await?;

    let reader_id = reader_view.node_id;
    let mut without_connection = 0;
    for File { link, sha256: expected } in &files {
        let before = bytes_relayed(&pages).await?;
        let started = Instant::now();
        let got = read(&reader, link).await?;
        let took = started.elapsed();
        ensure!((got.size, &got.sha256) == (SIZE, expected), "the reader read other bytes: {got:?}");
        eprintln!("read {} bytes from {} in {took:.1?} (connected: {})", got.size, got.holder, got.connected);
        if got.connected || got.holder == reader_id {
            continue;
        }
        without_connection += 1;
        let after = bytes_relayed(&pages).await?;
        let carried = after.iter().zip(&before).map(|(a, b)| a - b).max().unwrap_or(0);
        ensure!(
            carried >= SIZE,
            "a read from {} without a connection: no tab carried it ({carried} bytes)",
            got.holder
        );
    }
    let created = view(&reader).await?.context("the reader has a node")?.peer_connections_created;
    ensure!(created <= BUDGET, "the reader created {created} connections, over its budget of {BUDGET}");
    eprintln!("{without_connection} of {} reads came from a holder the reader had no connection to", files.len());
    ensure!(without_connection > 0, "every holder had a connection to the reader: the case is not exercised");
    Ok(())
}

/// Opens the reader (a tab with a budget of `BUDGET`) and lets its tables settle, spending
/// what is left of its budget. Returns it, its view and the tabs among `tabs` it has no
/// connection to and that are not in its leaf set; a reader with none is closed and another
/// opened, at most `READERS` times.
async fn open_reader(
    browser: &Chromium,
    origin: &str,
    url: &str,
    tabs: &[String],
) -> anyhow::Result<(Page, NodeView, Vec<String>)> {
    for attempt in 1..=READERS {
        let reader = browser.open_in_new_context(origin, &format!("{url}&budget={BUDGET}")).await?;
        wait_joined(&reader, "the reader", JOIN_TIMEOUT).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let reader_view = view(&reader).await?.context("the reader has a node")?;
        let open = reader_view.open();
        let all: Vec<String> = tabs.iter().cloned().chain([reader_view.node_id.clone()]).collect();
        let leaves = expected_leaf_set(&reader_view.node_id, &all, LEAF_SET)?;
        let (in_leaf_set, away): (Vec<String>, Vec<String>) = tabs
            .iter()
            .filter(|id| !open.contains(id))
            .cloned()
            .partition(|id| leaves.counter_clockwise.contains(id) || leaves.clockwise.contains(id));
        eprintln!(
            "reader {attempt}: no connection to {} tabs of its leaf set and {} beyond",
            in_leaf_set.len(),
            away.len()
        );
        if !away.is_empty() {
            install_helpers(&reader, "true").await?;
            return Ok((reader, reader_view, away));
        }
        reader.close().await?;
    }
    bail!("{READERS} readers each had a connection to every tab beyond their leaf set")
}

/// Inserts files from `owner` until it has `AWAY` whose root (among `ids`) is one of
/// `away_tabs` and `NEAR` whose root is one of `near_tabs` (the reader and the tabs it is
/// connected to); returns those, in the order inserted. Other files are not read.
async fn insert_files(
    owner: &Page,
    ids: &[String],
    (away_tabs, near_tabs): (&[String], &[String]),
) -> anyhow::Result<Vec<File>> {
    let (mut files, mut away, mut near) = (Vec::new(), 0, 0);
    for seed in 0..MAX_INSERTS {
        let sha256: String = eval(owner, &format!("t.sha256(t.content({SIZE}, {seed}))")).await?;
        let inserted: Inserted =
            eval(owner, &format!("past.node.insert(new Blob([t.content({SIZE}, {seed})]), {{k: 1, name: 'f{seed}'}})"))
                .await?;
        let root = closest(&inserted.file_id[..32], ids)?;
        let (count, wanted) = if away_tabs.contains(&root) {
            (&mut away, AWAY)
        } else if near_tabs.contains(&root) {
            (&mut near, NEAR)
        } else {
            continue;
        };
        if *count < wanted {
            *count += 1;
            files.push(File { link: inserted.link, sha256 });
        }
        if (away, near) == (AWAY, NEAR) {
            eprintln!("{} inserts gave {AWAY} files whose root the reader has no connection to", seed + 1);
            return Ok(files);
        }
    }
    anyhow::bail!("{MAX_INSERTS} inserts gave only {away} files whose root the reader has no connection to")
}
