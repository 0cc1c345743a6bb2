//! A burst far larger than the data channel's buffer goes through the browser node's send
//! queue (pause above 256 KiB buffered, resume on `bufferedamountlow` at 64 KiB): 128
//! payloads of 60 KiB routed from one node to the other arrive complete and in order.

use std::time::{Duration, Instant};

use anyhow::ensure;
use past_e2e::{Chromium, connected_pair, eval, node_state, wait_for, with_browser};

const COUNT: usize = 128;
const SIZE: usize = 60 * 1024;

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let (a, _id_a, b, id_b, _) = connected_pair(browser, origin).await?;
    let send = format!(
        "(() => {{ \
           for (let i = 0; i < {COUNT}; i++) {{ \
             const chunk = new Uint8Array({SIZE}); \
             new DataView(chunk.buffer).setUint32(0, i); \
             chunk.fill(i & 255, 4); \
             window.past.node.route({id_b:?}, chunk); \
           }} \
           return true; }})()"
    );
    let start = Instant::now();
    ensure!(eval::<bool>(&a, &send).await?, "the burst was not accepted");
    let check = format!(
        "(() => {{ const got = window.past.delivered.filter(d => d.data instanceof Uint8Array); \
           return got.length >= {COUNT} ? got.every((m, i) => m.data.length === {SIZE} \
             && new DataView(m.data.buffer, m.data.byteOffset).getUint32(0) === i \
             && m.data[{SIZE} - 1] === (i & 255)) : null; }})()"
    );
    let in_order: bool = wait_for(
        "the whole burst to arrive",
        Duration::from_secs(30),
        || async { eval::<Option<bool>>(&b, &check).await },
        || node_state(&b),
    )
    .await?;
    ensure!(in_order, "the burst arrived incomplete or out of order");
    let elapsed = start.elapsed();
    let mib = (COUNT * SIZE) as f64 / (1024.0 * 1024.0);
    eprintln!("{mib:.1} MiB in {SIZE}-byte routed payloads delivered in order in {elapsed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_buffer_arrives_complete_and_in_order() -> anyhow::Result<()> {
    with_browser(async |browser, server| scenario(browser, &server.http_origin()).await).await
}
