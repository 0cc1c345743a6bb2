//! Reads by a tab to which no connection can open: here a tab whose connection budget is
//! used up (it joined with a budget of 5, so it refuses every offer after). Eight tabs with
//! small tables (l = 4, b = 1); twelve files inserted from one tab are read by the ninth,
//! the one with the small budget. Every read arrives whole and right, and the reader never
//! creates more connections than its budget.
//!
//! - **Along the route.** Files of 1.1 MiB with one replica and the default answers
//!   (`auto`: along the route to a reader not in the holder's tables, straight for files
//!   over 1 MiB). The holder's offer is refused, and its answer goes back along the
//!   lookup's route instead, the content after it, through other tabs: a read from a holder
//!   the reader had no connection to went through other tabs, which carried at least the
//!   file's size.
//! - **Handed on.** Files of 150 kB with three replicas, answers always straight, as PAST
//!   (`?answers=straight`). A holder that cannot reach the reader hands the lookup on to the
//!   other holders it knows; one the reader has a connection to answers over it. Some read
//!   was handed on and arrived, every read came from a holder the reader was connected to
//!   (or from itself), and a read may fail only by timing out after its lookup was handed
//!   on: when no holder has a connection to the reader, PAST's way has nothing else to try
//!   (the default answers go along the route then, as above).

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, bytes_relayed, eval, install_helpers, open_network, view, wait_joined,
    with_browser,
};
use serde::Deserialize;

const TABS: usize = 8;
const LEAF_SET: usize = 4;
/// The reader's connection budget: enough to join, none left for a holder's offer.
const BUDGET: u32 = 5;
const FILES: u64 = 12;
/// Over 1 MiB: answered straight when a connection opens.
const LARGE: u64 = (1 << 20) + 100_000;
/// Small enough to go along the route; answered straight all the same in the hand-on test.
const SMALL: u64 = 150_000;

#[derive(Debug, Deserialize)]
struct Inserted {
    link: String,
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

/// Lookups handed on by all tabs (`stored().lookupsHandedOn`).
async fn handed_on(pages: &[(String, Page)]) -> anyhow::Result<u64> {
    let mut sum = 0;
    for (_, page) in pages {
        sum += eval::<u64>(page, "past.node.stored().lookupsHandedOn").await?;
    }
    Ok(sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_reaches_a_reader_no_connection_can_open_to_along_the_route() -> anyhow::Result<()> {
    with_browser(async |browser, server| along_the_route(browser, &server.http_origin()).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_reach_the_reader_hands_the_lookup_on() -> anyhow::Result<()> {
    with_browser(async |browser, server| handed_on_to_a_connected_holder(browser, &server.http_origin()).await).await
}

/// The test's tabs: [`TABS`] joined ones, and the reader, out of its budget.
struct Tabs {
    pages: Vec<(String, Page)>,
    reader: Page,
    reader_id: String,
}

/// The page address of the test's tabs.
fn tab_url(origin: &str, answers: &str) -> String {
    format!("{origin}/?{FAST_TIMERS}&leaf={LEAF_SET}&bits=1&answers={answers}")
}

async fn open_network_of(browser: &Chromium, origin: &str, answers: &str) -> anyhow::Result<Vec<(String, Page)>> {
    let pause = Duration::from_millis(200);
    open_network(browser, origin, &tab_url(origin, answers), (TABS, pause), LEAF_SET, JOIN_TIMEOUT).await
}

/// Opens the reader, with its small budget, in the network of `pages`.
async fn open_reader(
    browser: &Chromium,
    origin: &str,
    answers: &str,
    pages: Vec<(String, Page)>,
) -> anyhow::Result<Tabs> {
    let url = format!("{}&budget={BUDGET}", tab_url(origin, answers));
    let reader = browser.open_in_new_context(origin, &url).await?;
    wait_joined(&reader, "the reader", JOIN_TIMEOUT).await?;
    install_helpers(&reader, "true").await?;
    // Let the reader's tables settle, spending what is left of its budget.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let reader_id = view(&reader).await?.context("the reader has a node")?.node_id;
    Ok(Tabs { pages, reader, reader_id })
}

/// Inserts [`FILES`] files of `size` bytes with `k` replicas from the first tab; returns
/// their links and SHA-256 digests.
async fn insert_files(pages: &[(String, Page)], size: u64, k: u8) -> anyhow::Result<Vec<(String, String)>> {
    let owner = &pages[0].1;
    install_helpers(owner, "true").await?;
    let mut files = Vec::new();
    for seed in 0..FILES {
        let expected: String = eval(owner, &format!("t.sha256(t.content({size}, {seed}))")).await?;
        let insert = format!("past.node.insert(new Blob([t.content({size}, {seed})]), {{k: {k}, name: 'f{seed}'}})");
        let inserted: Inserted = eval(owner, &insert).await?;
        files.push((inserted.link, expected));
    }
    Ok(files)
}

/// Reads `link` at the reader and checks it arrived whole and right.
async fn read_right(tabs: &Tabs, (link, expected): &(String, String), size: u64) -> anyhow::Result<Read> {
    let started = Instant::now();
    let got = read(&tabs.reader, link).await?;
    let took = started.elapsed();
    ensure!((got.size, &got.sha256) == (size, expected), "the reader read other bytes: {got:?}");
    let from = if got.holder == tabs.reader_id { "itself" } else { &got.holder };
    eprintln!("read {} bytes from {from} in {took:.1?} (connected: {})", got.size, got.connected);
    Ok(got)
}

async fn ensure_within_budget(tabs: &Tabs) -> anyhow::Result<()> {
    let created = view(&tabs.reader).await?.context("the reader has a node")?.peer_connections_created;
    ensure!(created <= BUDGET, "the reader created {created} connections, over its budget of {BUDGET}");
    Ok(())
}

async fn along_the_route(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let pages = open_network_of(browser, origin, "auto").await?;
    let tabs = open_reader(browser, origin, "auto", pages).await?;
    let files = insert_files(&tabs.pages, LARGE, 1).await?;
    let mut without_connection = 0;
    for file in &files {
        let before = bytes_relayed(&tabs.pages).await?;
        let got = read_right(&tabs, file, LARGE).await?;
        if got.connected || got.holder == tabs.reader_id {
            continue;
        }
        without_connection += 1;
        let after = bytes_relayed(&tabs.pages).await?;
        let carried = after.iter().zip(&before).map(|(a, b)| a - b).max().unwrap_or(0);
        ensure!(
            carried >= LARGE,
            "a read from {} without a connection: no tab carried it ({carried} bytes)",
            got.holder
        );
    }
    ensure_within_budget(&tabs).await?;
    eprintln!("{without_connection} of {FILES} reads came from a holder the reader had no connection to");
    ensure!(without_connection > 0, "every holder had a connection to the reader: the case is not exercised");
    Ok(())
}

async fn handed_on_to_a_connected_holder(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    // Inserted before the reader joins: in PAST's way, a holder that cannot pull a new
    // file's content from its client (as the reader could not) fails the insert.
    let pages = open_network_of(browser, origin, "straight").await?;
    let files = insert_files(&pages, SMALL, 3).await?;
    let tabs = open_reader(browser, origin, "straight", pages).await?;
    let (mut handed, mut unreachable) = (0, 0);
    for file in &files {
        let before = handed_on(&tabs.pages).await?;
        let got = read_right(&tabs, file, SMALL).await;
        let by = handed_on(&tabs.pages).await? - before;
        match got {
            Ok(got) => {
                handed += u64::from(by > 0);
                ensure!(
                    got.connected || got.holder == tabs.reader_id,
                    "read from {}, which the reader had no connection to (handed on {by} times)",
                    got.holder
                );
            }
            // PAST's way has nothing more to try when no holder has a connection to the
            // reader: each hands the lookup on, and the reader's lookup times out.
            Err(e) if by > 0 && format!("{e:#}").contains("timed out") => {
                eprintln!("no holder reached the reader (handed on {by} times): the lookup timed out");
                unreachable += 1;
            }
            Err(e) => return Err(e.context(format!("a read that was handed on {by} times"))),
        }
    }
    ensure_within_budget(&tabs).await?;
    eprintln!("{handed} of {FILES} reads were handed on and arrived; {unreachable} reached no holder");
    ensure!(handed > 0, "no read was handed on to a holder that reached the reader: the case is not exercised");
    Ok(())
}
