//! Load figure for the signaling server: many concurrent WebSocket clients on loopback
//! register (challenge, Ed25519 signature) and relay offers to each other; prints the
//! registration time, the relay latency percentiles and the server's memory.
//!
//! ```sh
//! cargo run --release -p past-signaling --example load -- [CLIENTS] [OFFERS_PER_CLIENT]
//! ```
//! By default (1,000 clients, 5 offers each) it starts the server in this process. To
//! measure the server's own memory, run it as its own process and point the load at it:
//! `cargo run --release -p past-signaling -- --listen 127.0.0.1:9001 &` then
//! `... --example load -- 1000 5 ws://127.0.0.1:9001/ws <server pid>`. Everything is
//! bounded: at most 5,000 clients, 100 offers each, 120 s overall.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer as _, SigningKey};
use futures::{SinkExt as _, StreamExt as _};
use past_core::Id;
use past_signaling::{Config, ServerHandle};
use past_signaling_proto::{ClientMessage, PeerId, ServerMessage, SignalPayload, register_transcript, to_hex};
use tokio::sync::Barrier;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

fn rss_kib(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok();
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

async fn next<S>(stream: &mut S) -> anyhow::Result<ServerMessage>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return Ok(ServerMessage::from_json(text.as_str())?),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(anyhow::Error::from(err)),
            None => anyhow::bail!("closed"),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000).min(5000);
    let offers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5).min(100);
    let url = args.next();
    let server_pid = args.next();
    let (server, url) = match url {
        Some(url) => (None, url),
        None => {
            let config = Config { max_peers: clients + 16, ..Config::loopback_ephemeral() };
            let server = ServerHandle::spawn(config).await?;
            let url = server.ws_url();
            (Some(server), url)
        }
    };
    let pid = server_pid.unwrap_or_else(|| std::process::id().to_string());
    let before = rss_kib(&pid);

    let keys: Vec<SigningKey> = (0..clients)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let peers: Arc<Vec<PeerId>> = Arc::new(
        keys.iter()
            .map(|k| PeerId::new(to_hex(&Id::from_public_key(&k.verifying_key().to_bytes()).to_bytes())))
            .collect::<Result<_, _>>()?,
    );
    let registered = Arc::new(Barrier::new(clients + 1));
    let sent_all = Arc::new(Barrier::new(clients + 1));
    let epoch = Instant::now();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let (url, peers, registered, sent_all) = (url.clone(), peers.clone(), registered.clone(), sent_all.clone());
        tasks.push(tokio::spawn(async move {
            let result: anyhow::Result<(Duration, Vec<f64>)> = async {
                let t0 = Instant::now();
                let (ws, _) = connect_async(url.as_str()).await?;
                let (mut sink, mut stream) = ws.split();
                let ServerMessage::Challenge { nonce } = next(&mut stream).await? else {
                    anyhow::bail!("no challenge")
                };
                let me = peers[i].clone();
                let signature = key.sign(&register_transcript(&nonce, &me)).to_bytes();
                let register = ClientMessage::Register {
                    peer: me,
                    public_key: to_hex(&key.verifying_key().to_bytes()),
                    signature: to_hex(&signature),
                };
                sink.send(Message::text(register.to_json())).await?;
                let ServerMessage::Welcome { .. } = next(&mut stream).await? else { anyhow::bail!("not welcomed") };
                let took = t0.elapsed();
                registered.wait().await;
                // Offers to other clients, ~1 KB like a real SDP, one every 200 ms per client
                // (5,000 a second from 1,000 clients).
                let pad = "a=x-padding\r\n".repeat(70);
                let sending = async {
                    for k in 0..offers {
                        let to = peers[(i + 1 + k * 7) % peers.len()].clone();
                        let sdp = format!("{}\r\n{pad}", epoch.elapsed().as_nanos());
                        let msg = ClientMessage::Signal { to, payload: SignalPayload::Offer { sdp } };
                        sink.send(Message::text(msg.to_json())).await?;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    anyhow::Ok(())
                };
                let receiving = async {
                    let mut latencies = Vec::with_capacity(offers);
                    let deadline = tokio::time::sleep(Duration::from_secs(30));
                    tokio::pin!(deadline);
                    while latencies.len() < offers {
                        tokio::select! {
                            msg = next(&mut stream) => {
                                if let ServerMessage::Signal { payload: SignalPayload::Offer { sdp }, .. } = msg? {
                                    let sent: u128 = sdp.lines().next().unwrap_or("0").parse()?;
                                    latencies.push((epoch.elapsed().as_nanos() - sent) as f64 / 1e6);
                                }
                            }
                            _ = &mut deadline => break,
                        }
                    }
                    anyhow::Ok(latencies)
                };
                let (sent, latencies) = tokio::join!(sending, receiving);
                sent?;
                let latencies = latencies?;
                sent_all.wait().await;
                Ok((took, latencies))
            }
            .await;
            result
        }));
    }
    let overall = tokio::time::timeout(Duration::from_secs(120), async {
        registered.wait().await;
        let registration = start.elapsed();
        let during = rss_kib(&pid);
        sent_all.wait().await;
        (registration, during)
    })
    .await;
    let (registration, during) = overall.map_err(|_| anyhow::anyhow!("the load did not finish in 120 s"))?;
    let mut register_ms = Vec::new();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in tasks {
        match task.await? {
            Ok((took, l)) => {
                register_ms.push(took.as_secs_f64() * 1000.0);
                latencies.extend(l);
            }
            Err(err) => {
                failed += 1;
                eprintln!("client failed: {err:#}");
            }
        }
    }
    register_ms.sort_by(f64::total_cmp);
    latencies.sort_by(f64::total_cmp);
    println!("clients: {clients} concurrent, {offers} offers each (~1 KB), {failed} failed");
    println!("all registered in {:.0} ms", registration.as_secs_f64() * 1000.0);
    println!(
        "registration per client: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&register_ms, 0.5),
        percentile(&register_ms, 0.99)
    );
    println!(
        "relay latency over {} offers: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    if let (Some((rss0, _)), Some((rss1, _))) = (before, during) {
        let label = if server.is_some() { "this process (server and clients)" } else { "server process" };
        println!("memory of {label}: {rss0} KiB before, {rss1} KiB with every client registered");
    }
    if let Some((_, hwm)) = rss_kib(&pid) {
        println!("peak resident memory: {hwm} KiB");
    }
    if let Some(server) = server {
        server.shutdown().await?;
    }
    Ok(())
}
