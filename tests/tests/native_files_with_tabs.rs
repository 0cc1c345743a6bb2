//! Issue 12, mixed: two native nodes (`past-node` with disk stores) and two tabs in headless
//! Chromium form one network. A file the native node inserts (encrypted, k = 3) is opened by
//! its share link in a tab: verified, named, bytes equal. A file dropped in a tab is fetched by
//! its link with the native node's `get`, streamed to disk: bytes equal. Both sides use the
//! same encryption (`past_link::seal`) and links (`past_link::share`).

use std::time::Duration;

use past_e2e::{Chromium, JOIN_TIMEOUT, eval, install_helpers, wait_for, wait_joined, with_browser};
use past_node::files::InsertOptions;
use past_node::{NodeConfig, NodeEvent, NodeHandle, start};
use serde::Deserialize;

const SIZE: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Read {
    name: String,
    size: u64,
    verified: bool,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inserted {
    link: String,
    receipts: u32,
}

/// The bytes of the page helper `t.content(size, seed)` (32-bit xorshift).
fn content(size: usize, seed: u32) -> Vec<u8> {
    let mut x = if seed == 0 { 1 } else { seed };
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

async fn native(ws_url: &str, store: &std::path::Path) -> anyhow::Result<NodeHandle> {
    let mut config = NodeConfig::new(ws_url);
    config.store = Some(store.to_path_buf());
    let (node, mut events) = start(config).await?;
    tokio::spawn(async move { while events.recv().await.is_some_and(|e| e != NodeEvent::Closed) {} });
    Ok(node)
}

async fn scenario(browser: &Chromium, origin: &str, ws_url: &str) -> anyhow::Result<()> {
    let mut pages = Vec::new();
    for name in ["tab0", "tab1"] {
        let page = browser.open_in_new_context(origin, &format!("{origin}/")).await?;
        wait_joined(&page, name, JOIN_TIMEOUT).await?;
        install_helpers(&page, "true").await?;
        pages.push(page);
    }
    let dir = tempfile::tempdir()?;
    let natives = [native(ws_url, &dir.path().join("a")).await?, native(ws_url, &dir.path().join("b")).await?];
    wait_for(
        "the native nodes to join with every other node in their leaf sets",
        JOIN_TIMEOUT,
        || async {
            for node in &natives {
                let status = node.status().await.ok_or_else(|| anyhow::anyhow!("a native node stopped"))?;
                if !status.joined || status.leaf_set.len() < 3 {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
        || async { format!("{:?} {:?}", natives[0].status().await, natives[1].status().await) },
    )
    .await?;

    // Native -> tab: inserted by the native node, opened by its link in a tab.
    let source = dir.path().join("from-native.bin");
    std::fs::write(&source, content(SIZE, 21))?;
    let (progress, _) = tokio::sync::mpsc::unbounded_channel();
    let inserted = natives[0].insert(&source, InsertOptions { k: 3, encrypt: true }, progress).await?;
    assert_eq!(inserted.receipts.len(), 3, "{inserted:?}");
    assert!(inserted.link.starts_with(&format!("{origin}/#{}.", inserted.file_id)), "{}", inserted.link);
    let expected: String = eval(&pages[1], &format!("t.sha256(t.content({SIZE}, 21))")).await?;
    let read: Read = eval(
        &pages[1],
        &format!(
            "past.node.lookup({:?}).then(async (r) => {{
               const bytes = new Uint8Array(await (await r.blob()).arrayBuffer());
               return {{ name: r.name, size: r.size, verified: r.verified, sha256: await t.sha256(bytes) }};
             }})",
            inserted.link
        ),
    )
    .await?;
    assert_eq!((read.name.as_str(), read.size, read.verified), ("from-native.bin", SIZE as u64, true));
    assert_eq!(read.sha256, expected, "the tab read other bytes");

    // Tab -> native: dropped in a tab, fetched by its link to disk by the other native node.
    let dropped: Inserted =
        eval(&pages[0], &format!("past.node.insert(new File([t.content({SIZE}, 22)], 'from-tab.bin'), {{k: 3}})"))
            .await?;
    assert_eq!(dropped.receipts, 3);
    let (progress, _) = tokio::sync::mpsc::unbounded_channel();
    let fetched = natives[1].get(&dropped.link, Some(dir.path()), progress).await?;
    assert_eq!(fetched.path, dir.path().join("from-tab.bin"));
    assert!(std::fs::read(&fetched.path)? == content(SIZE, 22), "the native node wrote other bytes");

    for node in &natives {
        node.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_cross_between_native_nodes_and_tabs_by_their_links() -> anyhow::Result<()> {
    with_browser(async |browser, server| {
        tokio::time::timeout(Duration::from_secs(120), scenario(browser, &server.http_origin(), &server.ws_url()))
            .await?
    })
    .await
}
