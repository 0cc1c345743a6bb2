//! Issue 10, in a real browser: a file outlives the tabs that hold it. Eight nodes in
//! separate contexts; a 1 MiB file inserted with k = 3:
//! - the holder that answers lookups (the root: with every node in every leaf set, a lookup
//!   goes straight to it) serves a corrupted chunk: the reader detects it and still gets the
//!   file, from another replica;
//! - a reloaded holder comes back with the same nodeId and its replica (restored from
//!   IndexedDB);
//! - with two of the three holders closed, the file is still found, and replica maintenance
//!   has three live nodes hold it again;
//! - with the signaling server stopped, inserts and lookups among the joined nodes still work.

use std::time::Duration;

use anyhow::Context as _;
use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, closest, eval, init_tracing, install_helpers, start_server, wait_for,
    wait_joined, wait_leaf_sets_exact,
};

const HELPERS: &str = r#"(() => {
Object.assign(window.t, {
  async read(link) {
    const r = await past.node.lookup(link);
    return t.sha256(new Uint8Array(await (await r.blob()).arrayBuffer()));
  },
  // Flips a bit of stored chunk `index` of the file in this tab's IndexedDB.
  async corrupt(fileId, index) {
    const slot = past.node.view().slot;
    const db = await new Promise((ok, no) => { const r = indexedDB.open(`past-store-${slot}`); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
    const tx = db.transaction("chunks", "readwrite");
    const store = tx.objectStore("chunks");
    const chunk = await new Promise((ok) => { const r = store.get([fileId, index]); r.onsuccess = () => ok(r.result); });
    const bytes = new Uint8Array(chunk);
    bytes[100] ^= 1;
    store.put(bytes, [fileId, index]);
    await new Promise((ok) => tx.oncomplete = ok);
    db.close();
    return true;
  },
});
return true;
})()"#;

const SIZE: usize = 1 << 20;

struct Tab {
    name: String,
    id: String,
    page: Page,
}

async fn replicas(page: &Page) -> anyhow::Result<u32> {
    eval(page, "past.node.stored().replicas").await
}

async fn insert(tab: &Tab, seed: u32) -> anyhow::Result<(String, String)> {
    let expression = format!("past.node.insert(new Blob([t.content({SIZE}, {seed})]), {{k: 3, name: 'f{seed}'}})");
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inserted {
        file_id: String,
        link: String,
        receipts: u32,
    }
    let inserted: Inserted = eval(&tab.page, &expression).await.with_context(|| format!("insert from {}", tab.name))?;
    anyhow::ensure!(inserted.receipts == 3, "{} receipts", inserted.receipts);
    Ok((inserted.file_id, inserted.link))
}

async fn expect_read(tab: &Tab, link: &str, seed: u32) -> anyhow::Result<()> {
    let expected: String = eval(&tab.page, &format!("t.sha256(t.content({SIZE}, {seed}))")).await?;
    let got: String =
        eval(&tab.page, &format!("t.read({link:?})")).await.with_context(|| format!("{} reads", tab.name))?;
    anyhow::ensure!(got == expected, "{} read other bytes", tab.name);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_outlives_corruption_reloads_closed_holders_and_the_server() -> anyhow::Result<()> {
    init_tracing();
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let origin = server.http_origin();
    let url = format!("{origin}/?{FAST_TIMERS}");
    let mut tabs = Vec::new();
    for i in 0..8 {
        let page = browser.open_in_new_context(&origin, &url).await?;
        let id = wait_joined(&page, &format!("n{i}"), JOIN_TIMEOUT).await?;
        install_helpers(&page, HELPERS).await?;
        tabs.push(Tab { name: format!("n{i}"), id, page });
    }
    let result = scenario(&mut tabs, server).await;
    browser.close().await;
    result
}

async fn scenario(tabs: &mut Vec<Tab>, server: past_signaling::ServerHandle) -> anyhow::Result<()> {
    let named: Vec<(String, Page)> = tabs.iter().map(|t| (t.name.clone(), t.page.clone())).collect();
    wait_leaf_sets_exact(&named, 16, Duration::from_secs(30)).await?;
    let (file, link) = insert(&tabs[0], 1).await?;
    let mut holders = Vec::new();
    for (i, tab) in tabs.iter().enumerate() {
        if replicas(&tab.page).await? == 1 {
            holders.push(i);
        }
    }
    anyhow::ensure!(holders.len() == 3, "holders {holders:?}");

    // The root serves a corrupted chunk: detected, and the file still arrives.
    let ids: Vec<String> = tabs.iter().map(|t| t.id.clone()).collect();
    let root_id = closest(&file[..32], &ids)?;
    let root = tabs.iter().position(|t| t.id == root_id).context("root")?;
    eval::<bool>(&tabs[root].page, &format!("t.corrupt({file:?}, 3)")).await?;
    let reader = (0..tabs.len()).find(|i| !holders.contains(i)).context("a reader")?;
    expect_read(&tabs[reader], &link, 1).await?;
    let bad: u32 = eval(&tabs[reader].page, "past.events.filter((e) => e.type === 'badData').length").await?;
    anyhow::ensure!(bad >= 1, "the reader saw no bad data from the root");
    eprintln!("{} detected the corrupted chunk from {} and read the file", tabs[reader].name, tabs[root].name);

    // A reloaded holder keeps its nodeId and its replica.
    let reloaded = *holders.iter().find(|&&h| h != root).context("a holder besides the root")?;
    tabs[reloaded].page.reload().await?;
    let id = wait_joined(&tabs[reloaded].page, "the reloaded holder", JOIN_TIMEOUT).await?;
    anyhow::ensure!(id == tabs[reloaded].id, "the reload changed the nodeId");
    install_helpers(&tabs[reloaded].page, HELPERS).await?;
    anyhow::ensure!(replicas(&tabs[reloaded].page).await? == 1, "the reloaded holder lost its replica");

    // Two of three holders close: still found; maintenance restores three replicas.
    let closed: Vec<usize> = holders.iter().copied().filter(|&h| h != reloaded).collect();
    for &h in closed.iter().rev() {
        let tab = tabs.remove(h);
        tab.page.close().await?;
    }
    let reader = tabs.iter().position(|t| t.id != ids[reloaded]).context("a reader")?;
    expect_read(&tabs[reader], &link, 1).await?;
    wait_for(
        "three live nodes to hold the file again",
        Duration::from_secs(60),
        || async {
            let mut held = 0;
            for tab in tabs.iter() {
                held += replicas(&tab.page).await?;
            }
            // At least three: a holder that was away for its reload may have been replaced
            // meanwhile, and a replica beyond k is not an error.
            Ok((held >= 3).then_some(()))
        },
        || async {
            let mut counts = Vec::new();
            for tab in tabs.iter() {
                let stored: String =
                    eval(&tab.page, "JSON.stringify(past.node.stored())").await.unwrap_or_else(|e| e.to_string());
                counts.push(format!("{}: {stored}", tab.name));
            }
            format!("replicas per live tab: {}", counts.join(", "))
        },
    )
    .await?;

    // Without the signaling server, the joined nodes insert and look up.
    server.shutdown().await?;
    let (_, link2) = insert(&tabs[1], 2).await?;
    expect_read(&tabs[tabs.len() - 1], &link2, 2).await?;
    Ok(())
}
