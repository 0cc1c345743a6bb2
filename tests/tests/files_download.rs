//! Issue 10, in a real browser: getting a looked-up file out of the page. `save()` downloads
//! it under its name with the right bytes; a large file is collected on disk (the origin
//! private file system), not in memory, by `save()` and `blob()`; a small one in memory;
//! a save cut short (the only holder leaves) fails and leaves nothing behind; the files
//! spooled by a page are removed when its identity slot starts again (a reload).

use std::path::Path;
use std::time::Duration;

use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, eval, eval_slow, install_helpers, joined_contexts, wait_for, wait_joined,
    with_browser,
};

/// Above the 16 MiB from which lookups spool to disk.
const LARGE: usize = 20 << 20;

/// Helpers besides `past_e2e::install_helpers`' (content, SHA-256).
const HELPERS: &str = r#"(() => {
Object.assign(window.t, {
  // Files this slot's lookups spooled to the origin private file system.
  async spooled() {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle(`past-store-${past.node.view().slot}-downloads`).catch(() => null);
    if (!dir) return 0;
    let n = 0;
    for await (const _ of dir.keys()) n++;
    return n;
  },
  // blob() of a lookup: whether it is a File (spooled), its size and SHA-256.
  async blobOf(link) {
    const b = await (await past.node.lookup(link)).blob();
    return [b instanceof File, b.size, await t.sha256(new Uint8Array(await b.arrayBuffer()))];
  },
});
return true;
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looked_up_file_downloads_under_its_name_and_large_ones_go_through_disk() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}

/// The bytes of the helpers' `t.content(size, seed)` (xorshift32, low byte of each step).
fn content(size: usize, seed: u32) -> Vec<u8> {
    let mut x = if seed == 0 { 1 } else { seed };
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 255) as u8
        })
        .collect()
}

async fn spooled(page: &Page) -> anyhow::Result<u32> {
    eval(page, "t.spooled()").await
}

async fn replicas(page: &Page) -> anyhow::Result<u32> {
    eval(page, "past.node.stored().replicas").await
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}");
    let (named, contexts) = joined_contexts(browser, origin, &url, 3, "n").await?;
    for (_, page) in &named {
        install_helpers(page, HELPERS).await?;
    }
    let owner = &named[0].1;

    // One replica (k = 1), so the reader is a node without it and the holder's going away
    // cuts the transfer.
    let insert = |size: usize, seed: u32, name: &str| {
        format!("past.node.insert(new Blob([t.content({size}, {seed})]), {{k: 1, name: {name:?}}}).then((r) => r.link)")
    };
    let large: String = eval(owner, &insert(LARGE, 7, "report.bin")).await?;
    let mut holder = None;
    for (i, (_, page)) in named.iter().enumerate() {
        if replicas(page).await? > 0 && holder.is_none() {
            holder = Some(i);
        }
    }
    let holder = holder.ok_or_else(|| anyhow::anyhow!("no node holds the file"))?;
    let reader_index = if holder == 1 { 2 } else { 1 };
    let reader = &named[reader_index].1;
    anyhow::ensure!(replicas(reader).await? == 0, "the reader holds a replica");
    let small: String = eval(owner, &insert(1000, 8, "note.txt")).await?;
    let downloads = tempfile::tempdir()?;
    browser.allow_downloads(&contexts[reader_index], downloads.path()).await?;

    // save(): the download arrives under the file's name with its bytes.
    eval::<bool>(reader, &format!("past.node.lookup({large:?}).then((r) => r.save()).then(() => true)")).await?;
    let saved = downloads.path().join("report.bin");
    wait_for(
        "the download of report.bin",
        Duration::from_secs(30),
        || async { Ok(std::fs::metadata(&saved).ok().filter(|m| m.len() == LARGE as u64)) },
        || async { listing(downloads.path()) },
    )
    .await?;
    anyhow::ensure!(std::fs::read(&saved)? == content(LARGE, 7), "the saved file's bytes differ");
    anyhow::ensure!(spooled(reader).await? == 1, "the large download was not spooled to disk");

    // blob(): a disk-backed File when large, an in-memory Blob when small; bytes equal.
    let expected: String = eval(reader, &format!("t.sha256(t.content({LARGE}, 7))")).await?;
    let (file, size, sha): (bool, usize, String) = eval(reader, &format!("t.blobOf({large:?})")).await?;
    anyhow::ensure!(file && size == LARGE && sha == expected, "large blob(): file {file}, {size} bytes");
    anyhow::ensure!(spooled(reader).await? == 2, "the large blob() was not spooled");
    let expected: String = eval(reader, "t.sha256(t.content(1000, 8))").await?;
    let (file, size, sha): (bool, usize, String) = eval(reader, &format!("t.blobOf({small:?})")).await?;
    anyhow::ensure!(!file && size == 1000 && sha == expected, "small blob(): file {file}, {size} bytes");
    anyhow::ensure!(spooled(reader).await? == 2, "a small file was spooled");

    // The only holder goes away while the lookup's stream waits unread (the node pulls no
    // more than a window ahead of the reader): save() fails and keeps no spooled part.
    eval::<bool>(reader, &format!("past.node.lookup({large:?}).then((r) => (window.pending = r, true))")).await?;
    named[holder].1.clone().close().await?;
    // It fails once the lookup has tried again, which takes longer than a CDP request may.
    let outcome: String =
        eval_slow(reader, "pending.save().then(() => 'saved', (e) => e.code ?? e.message ?? String(e))").await?;
    anyhow::ensure!(outcome != "saved", "the file was saved without its holder");
    eprintln!("save() with the holder gone: {outcome}");
    anyhow::ensure!(spooled(reader).await? == 2, "a failed save left a spooled part");

    // A reload starts the slot again: what its last page spooled is removed.
    reader.reload().await?;
    wait_joined(reader, "reader after reload", JOIN_TIMEOUT).await?;
    install_helpers(reader, HELPERS).await?;
    anyhow::ensure!(spooled(reader).await? == 0, "spooled files outlived the page");
    let files = listing(downloads.path());
    anyhow::ensure!(files == "report.bin", "downloads: {files}");
    Ok(())
}

/// The names in `dir`, for messages.
fn listing(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.join(", ")
}
