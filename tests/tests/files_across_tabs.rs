//! Issue 10, in a real browser: eight nodes in separate browser contexts and two tabs
//! sharing one context. A 5 MiB file inserted from one with k = 3 is read back from every
//! other node, bytes equal, and by a tab that asks before it has joined; the storing nodes
//! hold it in IndexedDB as ciphertext only; a
//! wrong key, an unknown fileId, an insert over quota and a file above the size limit each
//! give their error; a public file is read by its link without a key; a reclaim by another
//! identity is refused and the owner's frees every replica.

use std::time::Duration;

use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, eval, init_tracing, install_helpers, start_server, wait_joined,
    wait_leaf_sets_exact,
};
use serde::Deserialize;

/// Helpers evaluated in every page besides `past_e2e::install_helpers`' (content, SHA-256): a look into the
/// tab's own IndexedDB store.
const HELPERS: &str = r#"(() => {
Object.assign(window.t, {
  // Every chunk this tab stores for the file, as arrays of bytes.
  async storedChunks(fileId) {
    const slot = past.node.view().slot;
    const db = await new Promise((ok, no) => { const r = indexedDB.open(`past-store-${slot}`); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
    const range = IDBKeyRange.bound([fileId, 0], [fileId, Infinity]);
    const values = await new Promise((ok, no) => { const r = db.transaction("chunks").objectStore("chunks").getAll(range); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
    db.close();
    return values.map((v) => new Uint8Array(v));
  },
  contains(haystack, needle) {
    outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
      for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
      return true;
    }
    return false;
  },
});
return true;
})()
"#;

const SIZE: usize = 5 << 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inserted {
    file_id: String,
    link: String,
    key: Option<String>,
    receipts: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Read {
    name: String,
    size: u64,
    verified: bool,
    sha256: String,
}

/// The outcome of an operation that must fail: its error code.
async fn error_code(page: &Page, expression: &str) -> anyhow::Result<String> {
    let wrapped = format!("({expression}).then(() => 'no error', (e) => e.code ?? String(e))");
    eval(page, &wrapped).await
}

fn read_expression(link: &str) -> String {
    format!(
        "past.node.lookup({link:?}).then(async (r) => {{
           const bytes = new Uint8Array(await (await r.blob()).arrayBuffer());
           return {{ name: r.name, size: r.size, verified: r.verified, sha256: await t.sha256(bytes) }};
         }})"
    )
}

async fn read(page: &Page, link: &str) -> anyhow::Result<Read> {
    eval(page, &read_expression(link)).await
}

async fn stored_replicas(page: &Page) -> anyhow::Result<u32> {
    eval(page, "past.node.stored().replicas").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_dropped_in_one_tab_is_read_in_all_others_and_reclaimed() -> anyhow::Result<()> {
    init_tracing();
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let result = scenario(&browser, &server.http_origin()).await;
    browser.close().await;
    server.shutdown().await?;
    result
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}");
    let mut pages: Vec<(String, Page)> = Vec::new();
    for i in 0..8 {
        // Node 1 may insert at most 1 MB of replicas (k x size).
        let url = if i == 1 { format!("{url}&quota=1000000") } else { url.clone() };
        pages.push((format!("n{i}"), browser.open_in_new_context(origin, &url).await?));
    }
    let shared = browser.new_context(origin).await?;
    for i in 0..2 {
        pages.push((format!("tab{i}"), browser.open_in_context(&shared, &url).await?));
    }
    for (name, page) in &pages {
        wait_joined(page, name, JOIN_TIMEOUT).await?;
        install_helpers(page, HELPERS).await?;
    }
    wait_leaf_sets_exact(&pages, 16, Duration::from_secs(30)).await?;

    // Insert 5 MiB from n0 with k = 3.
    let owner = &pages[0].1;
    let expected: String = eval(owner, &format!("t.sha256(t.content({SIZE}, 7))")).await?;
    let inserted: Inserted = eval(
        owner,
        &format!("past.node.insert(new File([t.content({SIZE}, 7)], 'report.bin', {{type: 'application/octet-stream'}}), {{k: 3}})"),
    )
    .await?;
    eprintln!("inserted {} with {} receipts", inserted.file_id, inserted.receipts);
    assert_eq!(inserted.receipts, 3);
    let key = inserted.key.clone().expect("encrypted by default");
    assert!(inserted.link.ends_with(&format!("#{}.{key}", inserted.file_id)));

    // Exactly three nodes hold a replica, as ciphertext: a sample of the plaintext appears
    // in none of their chunks.
    let mut holders = Vec::new();
    for (name, page) in &pages {
        if stored_replicas(page).await? == 1 {
            holders.push(name.clone());
            let check = format!(
                "t.storedChunks({:?}).then((chunks) => {{
                   const sample = t.content({SIZE}, 7).subarray(1 << 20, (1 << 20) + 32);
                   return [chunks.length, chunks.some((c) => t.contains(c, sample))];
                 }})",
                inserted.file_id
            );
            let (chunks, leaks): (usize, bool) = eval(page, &check).await?;
            assert_eq!(chunks, SIZE.div_ceil(64 * 1024 - 16), "{name} holds every chunk");
            assert!(!leaks, "{name} stores plaintext");
        }
    }
    assert_eq!(holders.len(), 3, "replicas at {holders:?}");

    // Every other node reads it back, verified, bytes equal.
    for (name, page) in &pages[1..] {
        let got = read(page, &inserted.link).await?;
        eprintln!("{name} read {} bytes", got.size);
        assert_eq!((got.name.as_str(), got.size, got.verified), ("report.bin", SIZE as u64, true));
        assert_eq!(got.sha256, expected, "{name} read other bytes");
    }

    // A tab that opens the link asks at once, before it has joined: the lookup waits for the
    // join.
    let late = browser.open_in_new_context(origin, &url).await?;
    install_helpers(&late, HELPERS).await?;
    let early = format!(
        "past.ready.then(async () => {{ const joined = past.node.view().joined; return [joined, await {}]; }})",
        read_expression(&inserted.link)
    );
    let (joined_when_asked, got): (bool, Read) = eval(&late, &early).await?;
    assert!(!joined_when_asked, "the tab had joined already: the case is not exercised");
    assert_eq!(got.sha256, expected);
    // The tab closes: until the others notice, it is still in their leaf sets, and the
    // not-found answer below must not wait for it.
    late.close().await?;

    // Bad input, each with its error.
    let reader = &pages[5].1;
    let wrong_key = format!("{}#{}.{}", origin, inserted.file_id, "A".repeat(43));
    assert_eq!(error_code(reader, &format!("past.node.lookup({wrong_key:?})")).await?, "wrong-key");
    let unknown = "ab".repeat(20);
    let started = std::time::Instant::now();
    let not_found =
        format!("past.node.lookup({unknown:?}).then(() => 'no error', (e) => `${{e.code}}: ${{e.message}}`)");
    let answer: String = eval(reader, &not_found).await?;
    assert!(answer.starts_with("not-found:"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(8), "not found took {:?}", started.elapsed());
    eprintln!("not found in {:?}", started.elapsed());
    let over = format!("past.node.insert(new Blob([t.content({SIZE}, 9)]), {{k: 3, name: 'big'}})");
    assert_eq!(error_code(&pages[1].1, &over).await?, "over-quota");
    // A node whose limit is 1 MB neither inserts nor stores larger files: it joins now, so
    // that it was not among the 5 MiB file's storing nodes.
    let small = browser.open_in_new_context(origin, &format!("{url}&maxfile=1000000")).await?;
    wait_joined(&small, "small", JOIN_TIMEOUT).await?;
    install_helpers(&small, HELPERS).await?;
    assert_eq!(error_code(&small, &over).await?, "too-large");
    small.close().await?;
    wait_leaf_sets_exact(&pages, 16, Duration::from_secs(30)).await?;

    // A public file: no key in its link, read as it is.
    let public: Inserted = eval(
        &pages[4].1,
        "past.node.insert(new Blob([t.content(200000, 3)]), {k: 2, encrypt: false, name: 'open.txt'})",
    )
    .await?;
    assert!(public.key.is_none() && public.link.ends_with(&format!("#{}", public.file_id)));
    let got = read(&pages[6].1, &public.link).await?;
    let expected_public: String = eval(&pages[6].1, "t.sha256(t.content(200000, 3))").await?;
    assert_eq!((got.name.as_str(), got.size, got.sha256), ("open.txt", 200000, expected_public));
    let reclaim = format!("past.node.reclaim({:?}).then((r) => r.receipts)", public.file_id);
    assert_eq!(eval::<u32>(&pages[4].1, &reclaim).await?, 2);

    // Only the owner may reclaim.
    let stranger = format!("past.node.reclaim({:?})", inserted.file_id);
    assert_eq!(error_code(&pages[2].1, &stranger).await?, "not-owner");
    let receipts: u32 =
        eval(owner, &format!("past.node.reclaim({:?}).then((r) => r.receipts)", inserted.file_id)).await?;
    assert_eq!(receipts, 3);
    for (name, page) in &pages {
        assert_eq!(stored_replicas(page).await?, 0, "{name} still holds a replica");
    }
    let files: usize = eval(owner, "past.node.files().then((f) => f.length)").await?;
    assert_eq!(files, 0, "a reclaimed file leaves the owner's list");
    Ok(())
}
