//! A burst far larger than the data channel's buffer goes through the browser node's send
//! queue (pause above 256 KiB buffered, resume on `bufferedamountlow` at 64 KiB) and arrives
//! complete and in order.

use std::time::Duration;

use anyhow::ensure;
use past_e2e::{Chromium, connected_pair, eval, init_tracing, page_state, start_server, wait_for};

/// Messages in the burst and the size of each (the chunk size of the design).
const COUNT: usize = 128;
const CHUNK: usize = 64 * 1024;

async fn scenario(browser: &Chromium, origin: &str) -> anyhow::Result<()> {
    let (a, _id_a, b, id_b, _) = connected_pair(browser, origin).await?;

    // Queue the whole burst at once: most of it must wait in the node's queue.
    let send = format!(
        "(async () => {{ \
           const sends = []; \
           for (let i = 0; i < {COUNT}; i++) {{ \
             const chunk = new Uint8Array({CHUNK}); \
             new DataView(chunk.buffer).setUint32(0, i); \
             chunk.fill(i & 255, 4); \
             sends.push(window.past.node.send({id_b:?}, chunk)); \
           }} \
           window.past.burstStart = performance.now(); \
           await Promise.all(sends); \
           return true; }})()"
    );
    ensure!(eval::<bool>(&a, &send).await?, "the burst was not accepted");

    let check = format!(
        "window.past.received.length >= {COUNT} ? window.past.received.every((m, i) => \
           m.data instanceof Uint8Array && m.data.length === {CHUNK} \
           && new DataView(m.data.buffer, m.data.byteOffset).getUint32(0) === i \
           && m.data[{CHUNK} - 1] === (i & 255)) : null"
    );
    let in_order: bool = wait_for(
        "the whole burst to arrive",
        Duration::from_secs(30),
        || async { eval::<Option<bool>>(&b, &check).await },
        || page_state(&b),
    )
    .await?;
    ensure!(in_order, "the burst arrived incomplete or out of order");
    eprintln!("{} MiB in {CHUNK}-byte messages delivered in order", COUNT * CHUNK / (1024 * 1024));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_buffer_arrives_complete_and_in_order() -> anyhow::Result<()> {
    init_tracing();
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let result = scenario(&browser, &server.http_origin()).await;
    browser.close().await;
    server.shutdown().await?;
    result
}
