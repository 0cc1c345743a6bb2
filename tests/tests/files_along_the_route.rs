//! Answers along the route, in a real browser: ten tabs with small tables (l = 4, b = 1), each
//! answering lookups back along their route (`answers=route`). Eight files inserted from one
//! tab are read from every other. Every read arrives whole and right; a read whose route
//! passed other tabs went through them (each of those tabs passed on at least the file's
//! size, counted in `stored().bytesRelayed`), and the reader opened no connection to the
//! holder outside its own tables. A tab that passed reads on says so on the page.

use std::time::Duration;

use anyhow::Context as _;
use chromiumoxide::Page;
use past_e2e::{
    Chromium, FAST_TIMERS, JOIN_TIMEOUT, bytes_relayed, eval, install_helpers, open_network, view, with_browser,
};
use serde::Deserialize;

const TABS: usize = 10;
const LEAF_SET: usize = 4;
const FILES: u64 = 8;
const SIZE: u64 = 150_000;

/// Whether this tab holds a node in its tables, and whether it has a connection to it.
const HELPERS: &str = r#"(() => {
Object.assign(window.t, {
  knows(id) {
    const v = past.node.view();
    return [...v.leafSet.counterClockwise, ...v.leafSet.clockwise, ...v.routingTable.map((e) => e.id),
      ...v.neighborhood.map((e) => e.id)].includes(id);
  },
  connectedTo(id) {
    return past.node.view().connections.some((c) => c.id === id);
  },
});
return true;
})()
"#;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inserted {
    link: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Read {
    size: u64,
    sha256: String,
    holder: String,
    /// The reader, the nodes the lookup passed, the holder.
    route: Vec<String>,
}

async fn read(page: &Page, link: &str) -> anyhow::Result<Read> {
    let expression = format!(
        "past.node.lookup({link:?}).then(async (r) => {{
           const bytes = new Uint8Array(await (await r.blob()).arrayBuffer());
           return {{ size: bytes.length, sha256: await t.sha256(bytes), holder: r.holder, route: r.route }};
         }})"
    );
    eval(page, &expression).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_along_the_route_pass_the_routes_tabs_and_open_no_connection_to_the_holder() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let url = format!("{origin}/?{FAST_TIMERS}&leaf={LEAF_SET}&bits=1&answers=route");
    let pause = Duration::from_millis(200);
    let pages = open_network(browser, origin, &url, (TABS, pause), LEAF_SET, JOIN_TIMEOUT).await?;
    let mut ids = Vec::new();
    for (_, page) in &pages {
        ids.push(view(page).await?.context("a joined tab has a node")?.node_id);
        install_helpers(page, HELPERS).await?;
    }

    let owner = &pages[0].1;
    let mut files = Vec::new();
    for seed in 0..FILES {
        let expected: String = eval(owner, &format!("t.sha256(t.content({SIZE}, {seed}))")).await?;
        let inserted: Inserted =
            eval(owner, &format!("past.node.insert(new Blob([t.content({SIZE}, {seed})]), {{k: 2, name: 'f{seed}'}})"))
                .await?;
        files.push((inserted.link, expected));
    }

    let mut along_a_route = 0;
    for (link, expected) in &files {
        for (name, page) in &pages[1..] {
            let before = bytes_relayed(&pages).await?;
            let got = read(page, link).await?;
            assert_eq!((got.size, &got.sha256), (SIZE, expected), "{name} read other bytes");
            // A holder reads its own replica: its route is itself alone.
            let passed = got.route.get(1..got.route.len().saturating_sub(1)).unwrap_or_default();
            eprintln!("{name} read {} bytes from {} through {passed:?}", got.size, got.holder);
            if passed.is_empty() {
                continue;
            }
            along_a_route += 1;
            let after = bytes_relayed(&pages).await?;
            for node in passed {
                let tab = ids.iter().position(|id| id == node).expect("a tab of the test");
                let carried = after[tab] - before[tab];
                assert!(carried >= SIZE, "{name}'s read passed {node} (tab t{tab}), which carried {carried} bytes");
            }
            let (connected, knows): (bool, bool) =
                eval(page, &format!("[t.connectedTo({:?}), t.knows({:?})]", got.holder, got.holder)).await?;
            assert!(!connected || knows, "{name} opened a connection to the holder {} for its read", got.holder);
        }
    }
    eprintln!("{along_a_route} of {} reads passed other tabs", FILES as usize * (TABS - 1));
    assert!(along_a_route > 0, "no read passed another tab: the case is not exercised");

    // A tab that passed reads on says so where it shows what it holds for others (the page
    // renders every second).
    let carried = bytes_relayed(&pages).await?;
    let tab = carried.iter().position(|&b| b >= SIZE).expect("the tabs of those routes carried the files");
    let shows = "(document.querySelector('[data-testid=stored-here]')?.textContent ?? '').includes('downloads passed through this tab')";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !eval::<bool>(&pages[tab].1, shows).await? {
        assert!(std::time::Instant::now() < deadline, "tab t{tab} does not show what it passed on");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
