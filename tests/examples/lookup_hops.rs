//! Lookup latency of a small file by routing hops (a benchmark, not a test): how long a tab
//! waits for a 1 KiB file found 1, 2 or 3 hops away, with and without a connection to the
//! holder already open.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example lookup_hops -- 12 40'
//! ```
//! Arguments: tabs (12) and files (40). The tabs (separate browser contexts) run with a leaf
//! set of 2 and binary digits (`?leaf=2&bits=1`), so that a dozen nodes route over several
//! hops as a large network with the default tables would. Once every leaf set is exact, the
//! first tab inserts the files (1 KiB, encrypted, k = 1, so only the node closest to each
//! fileId holds it and no cached copy exists yet), and the second looks each up once, from
//! `lookup()` to the end of its stream. Each lookup is counted under the hops the lookup
//! message took (reported with the result) and under whether the reader had a connection
//! to the holder open before (if not, the time includes opening one through the overlay:
//! signalling routed by Pastry, ICE on loopback, DTLS, the handshake). Files the reader
//! holds itself are left out.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use past_e2e::{Chromium, eval, open_network, start_server, view};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Lookup {
    hops: u8,
    holder: String,
    ms: f64,
}

/// Looks `link` up, reads the stream to its end, and says how long it took.
fn lookup_expression(link: &str) -> String {
    format!(
        "(async () => {{
           const started = performance.now();
           const r = await past.node.lookup({link:?});
           await new Response(r.stream).arrayBuffer();
           return {{ hops: r.hops, holder: r.holder, ms: performance.now() - started }};
         }})()"
    )
}

fn median_and_worst(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() - 1])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().context("tabs and files are numbers"));
    let tabs = args.next().transpose()?.unwrap_or(12);
    let files = args.next().transpose()?.unwrap_or(40);
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let origin = server.http_origin();
    let url = format!("{origin}/?leaf=2&bits=1");
    let pause = Duration::from_millis(300);
    let pages = open_network(&browser, &origin, &url, (tabs, pause), 2, Duration::from_secs(60)).await?;
    let (owner, reader) = (&pages[0].1, &pages[1].1);
    let own_id = view(reader).await?.context("the reader has no node")?.node_id;

    // (hops, connected before) -> times in ms
    let mut times: BTreeMap<(u8, bool), Vec<f64>> = BTreeMap::new();
    for i in 0..files {
        let insert = format!(
            "past.node.insert(new Blob([new Uint8Array(1024).fill({})]), {{k: 1, name: 'small-{i}'}}).then((r) => r.link)",
            i % 256
        );
        let link: String = eval(owner, &insert).await?;
        let open = view(reader).await?.context("the reader has no node")?.open();
        let got: Lookup = eval(reader, &lookup_expression(&link)).await?;
        if got.holder == own_id {
            continue;
        }
        times.entry((got.hops, open.contains(&got.holder))).or_default().push(got.ms);
    }
    println!("hops,connection,lookups,median_ms,worst_ms");
    for ((hops, connected), mut list) in times {
        let (median, worst) = median_and_worst(&mut list);
        let connection = if connected { "open" } else { "opened" };
        println!("{hops},{connection},{},{median:.1},{worst:.1}", list.len());
    }
    browser.close().await;
    server.shutdown().await?;
    Ok(())
}
