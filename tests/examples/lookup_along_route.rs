//! Reads answered along the route against reads answered straight, in a real browser (a
//! benchmark, not a test): how long a tab waits for a whole file when its content comes back
//! through the tabs of the lookup's route, and when it comes straight from the holder.
//!
//! ```sh
//! cargo xtask build-wasm
//! PAST_WEB_DIR=web PAST_PKG_DIR=target/web-pkg unshare --net sh -c \
//!   'ip link set lo up && exec cargo run --release -p past-e2e --example lookup_along_route -- 12 24 1024 route'
//! ```
//! Arguments: tabs (12), files (24), file size in KiB (1024) and how tabs answer (`route`,
//! `straight` or `auto`, the page's `?answers=`). The tabs (separate browser contexts) run
//! with a leaf set of 2 and binary digits (`?leaf=2&bits=1`), so that a dozen nodes route
//! over several hops as a large network with the default tables would. Once every leaf set
//! is exact, the first tab inserts the files (encrypted, k = 1, so one node holds each and
//! no cached copy exists before its read), and the second reads each once, from `lookup()`
//! to the end of its stream. Each read is counted under the number of tabs its route passed
//! between reader and holder, and under whether the reader had a connection to the holder
//! open before (answered straight without one, the time includes opening it through the
//! overlay). Files the reader holds itself are left out.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use past_e2e::{Chromium, eval, open_network, start_server, view};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Read {
    holder: String,
    route: Vec<String>,
    bytes: f64,
    ms: f64,
}

/// Looks `link` up, reads the stream to its end, and says how long it took.
fn read_expression(link: &str) -> String {
    format!(
        "(async () => {{
           const started = performance.now();
           const r = await past.node.lookup({link:?});
           const bytes = (await new Response(r.stream).arrayBuffer()).byteLength;
           return {{ holder: r.holder, route: r.route, bytes, ms: performance.now() - started }};
         }})()"
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i).map_or(Ok(default), |a| a.parse().context("tabs, files and KiB are numbers"))
    };
    let (tabs, files, kib) = (number(0, 12)?, number(1, 24)?, number(2, 1024)?);
    let answers = args.get(3).map_or("route", String::as_str);
    if !["route", "straight", "auto"].contains(&answers) {
        bail!("answers is route, straight or auto, not {answers:?}");
    }
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let origin = server.http_origin();
    let url = format!("{origin}/?leaf=2&bits=1&answers={answers}");
    let pause = Duration::from_millis(300);
    let pages = open_network(&browser, &origin, &url, (tabs, pause), 2, Duration::from_secs(60)).await?;
    let (owner, reader) = (&pages[0].1, &pages[1].1);
    let own_id = view(reader).await?.context("the reader has no node")?.node_id;

    // (tabs passed, connected before) -> (times in ms, MB/s)
    let mut reads: BTreeMap<(usize, bool), Vec<(f64, f64)>> = BTreeMap::new();
    for i in 0..files {
        let insert = format!(
            "past.node.insert(new Blob([new Uint8Array({}).fill({})]), {{k: 1, name: 'file-{i}'}}).then((r) => r.link)",
            kib * 1024,
            i % 256
        );
        let link: String = eval(owner, &insert).await?;
        let open = view(reader).await?.context("the reader has no node")?.open();
        let got: Read = eval(reader, &read_expression(&link)).await?;
        if got.holder == own_id {
            continue;
        }
        if got.bytes as usize != kib * 1024 {
            bail!("read {} bytes of {}", got.bytes, kib * 1024);
        }
        let passed = got.route.len().saturating_sub(2);
        let rate = got.bytes / 1e6 / (got.ms / 1000.0);
        reads.entry((passed, open.contains(&got.holder))).or_default().push((got.ms, rate));
    }
    println!("answers,tabs_passed,connection,reads,median_ms,median_mb_per_s");
    for ((passed, connected), list) in reads {
        let connection = if connected { "open" } else { "none" };
        let (mut times, mut rates): (Vec<f64>, Vec<f64>) = list.iter().copied().unzip();
        let (ms, rate) = (median(&mut times), median(&mut rates));
        println!("{answers},{passed},{connection},{},{ms:.0},{rate:.1}", list.len());
    }
    browser.close().await;
    server.shutdown().await?;
    Ok(())
}
