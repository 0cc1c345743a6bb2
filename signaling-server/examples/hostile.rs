//! Memory and log figures of the signaling server under attack: the server runs as a child
//! process (this program with `--serve`, default limits except `max_peers`), 1,000 honest
//! peers register from 20 loopback addresses (127.0.1.1-20, 50 each) and relay offers to
//! each other, then one hostile address (127.0.0.2; four, 127.0.0.2-5, for the slow readers)
//! runs each attack of issue 13 for a while. After each phase it prints the server's
//! resident memory (now and peak), its log output (bytes and lines a second), and how long
//! an honest newcomer from 127.0.0.1 took to register and relay an offer while the attack
//! ran.
//!
//! ```sh
//! cargo run --release -p past-signaling --example hostile -- [--honest 1000] [--phase-secs 10]
//! ```
//! Bounded: at most 2,000 honest peers and 60 s a phase; the whole run takes about nine
//! phases. Figures: `docs/signaling-hardening.md`.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{SinkExt as _, StreamExt as _};
use past_signaling::{Config, raise_fd_limit};
use past_signaling_proto::{ClientMessage, MAX_SDP_BYTES, PeerId, ServerMessage, SignalPayload};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

#[path = "../tests/identity/mod.rs"]
mod identity;
use identity::Key;

type Ws = WebSocketStream<TcpStream>;

const HOSTILE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PROBE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

fn honest_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, 1 + (i % 20) as u8)
}

/// The server's configuration: the defaults, with room for the honest peers, the shares of
/// the four hostile addresses (64 each) and the newcomers.
fn server_config(honest: usize) -> Config {
    Config { listen: SocketAddr::from(([127, 0, 0, 1], 0)), max_peers: honest + 400, ..Config::default() }
}

/// Child mode: run the server, print its address, stop when stdin closes.
async fn serve(honest: usize) -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_ansi(false).with_writer(std::io::stderr).init();
    let _ = raise_fd_limit();
    let config = server_config(honest);
    let listener = past_signaling::bind(&config)?;
    println!("{}", listener.local_addr()?);
    let stop = async {
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {}
        })
        .await;
    };
    past_signaling::run(listener, config, stop).await?;
    Ok(())
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// User and system time of process `pid`, in clock ticks (100 a second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (in parentheses, which may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

async fn tcp_from(from: Ipv4Addr, server: SocketAddr, small_window: bool) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if small_window {
        socket.set_recv_buffer_size(4096)?;
    }
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(server).await
}

async fn ws_from(from: Ipv4Addr, server: SocketAddr, origin: Option<&str>, small_window: bool) -> anyhow::Result<Ws> {
    let stream = tcp_from(from, server, small_window).await?;
    let mut request = format!("ws://{server}/ws").into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", HeaderValue::from_str(origin)?);
    }
    Ok(client_async(request, stream).await?.0)
}

async fn next_message(ws: &mut Ws) -> anyhow::Result<ServerMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await? {
            Some(Ok(Message::Text(text))) => return Ok(ServerMessage::from_json(text.as_str())?),
            Some(Ok(Message::Close(frame))) => anyhow::bail!("closed: {frame:?}"),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
            None => anyhow::bail!("closed"),
        }
    }
}

async fn register(from: Ipv4Addr, server: SocketAddr, key: &Key, small_window: bool) -> anyhow::Result<Ws> {
    let mut ws = ws_from(from, server, None, small_window).await?;
    let ServerMessage::Challenge { nonce } = next_message(&mut ws).await? else { anyhow::bail!("no challenge") };
    ws.send(Message::text(key.register(&nonce).to_json())).await?;
    match next_message(&mut ws).await? {
        ServerMessage::Welcome { .. } => Ok(ws),
        other => anyhow::bail!("refused: {other:?}"),
    }
}

/// Honest traffic: relays received by the honest peers.
#[derive(Default)]
struct Honest {
    relayed: AtomicU64,
    lost: AtomicUsize,
}

/// One honest peer: reads everything (answering pings) and sends a ~1 KB offer to another
/// honest peer every 2 s.
async fn honest_peer(mut ws: Ws, peers: Arc<Vec<PeerId>>, me: usize, stats: Arc<Honest>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(2_000 * me as u64 / peers.len() as u64),
        Duration::from_secs(2),
    );
    let pad = "a=x-padding\r\n".repeat(70);
    let mut k = me;
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str().contains("\"signal\"") {
                        stats.relayed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    stats.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            },
            _ = tick.tick() => {
                k = (k * 7 + 13) % peers.len();
                let to = peers[if k == me { (k + 1) % peers.len() } else { k }].clone();
                let offer = ClientMessage::Signal { to, payload: SignalPayload::Offer { sdp: pad.clone() } };
                if ws.send(Message::text(offer.to_json())).await.is_err() {
                    stats.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    let _ = ws.close(None).await;
}

/// A newcomer from 127.0.0.1: two nodes register and relay an offer; the time it took.
async fn probe(server: SocketAddr, round: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (a, b) = (Key::new(10_000_000 + 2 * round), Key::new(10_000_001 + 2 * round));
    let mut wa = register(PROBE, server, &a, false).await?;
    let mut wb = register(PROBE, server, &b, false).await?;
    let offer = SignalPayload::Offer { sdp: "v=0\r\n".into() };
    wb.send(Message::text(ClientMessage::Signal { to: a.peer(), payload: offer }.to_json())).await?;
    loop {
        if let ServerMessage::Signal { .. } = next_message(&mut wa).await? {
            break;
        }
    }
    let took = started.elapsed();
    let _ = wa.close(None).await;
    let _ = wb.close(None).await;
    Ok(took)
}

/// `peers` of the server's `/health`.
async fn registered_now(server: SocketAddr) -> Option<u64> {
    use tokio::io::AsyncReadExt as _;
    let mut stream = tcp_from(PROBE, server, false).await.ok()?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await.ok()?.ok()?;
    let body: serde_json::Value = serde_json::from_str(response.split("\r\n\r\n").nth(1)?).ok()?;
    body["peers"].as_u64()
}

/// Runs `attack` for `duration` while probing twice a second; returns the slowest probe and
/// the failures.
async fn phase<F>(name: &str, server: SocketAddr, duration: Duration, ctx: &Ctx, attack: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<AtomicBool>) -> tokio::task::JoinHandle<String>,
{
    let (log_bytes0, log_lines0) = (ctx.log_bytes.load(Ordering::Relaxed), ctx.log_lines.load(Ordering::Relaxed));
    let relayed0 = ctx.honest.relayed.load(Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let task = attack(stop.clone());
    // The newcomers probe from a thread and runtime of their own: the attack's client load
    // in this process does not delay them (the machine's cores are still shared).
    let (pid, first_round) = (ctx.pid, ctx.round.fetch_add(1_000, Ordering::Relaxed));
    let cpu0 = cpu_ticks(pid);
    let probing = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move {
            let (mut slowest, mut failures, mut probes, mut peak_rss) = (Duration::ZERO, Vec::new(), 0, 0);
            while started.elapsed() < duration {
                tokio::time::sleep(Duration::from_millis(500)).await;
                peak_rss = peak_rss.max(status_kib(pid, "VmRSS:"));
                match probe(server, first_round + probes).await {
                    Ok(took) => slowest = slowest.max(took),
                    Err(err) => failures.push(err.to_string()),
                }
                probes += 1;
            }
            anyhow::Ok((slowest, failures, probes, peak_rss))
        })
    });
    let (slowest, failures, probes, peak_rss) = probing.await??;
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / 100.0;
    stop.store(true, Ordering::Relaxed);
    let attack_report = task.await?;
    let peers_now = registered_now(server).await;
    let elapsed = started.elapsed().as_secs_f64();
    let log_bytes = ctx.log_bytes.load(Ordering::Relaxed) - log_bytes0;
    let log_lines = ctx.log_lines.load(Ordering::Relaxed) - log_lines0;
    let relayed = ctx.honest.relayed.load(Ordering::Relaxed) - relayed0;
    println!("## {name} ({elapsed:.0} s)");
    if !attack_report.is_empty() {
        println!("   attack: {attack_report}");
    }
    println!("   registered at the end of the phase (/health): {}", peers_now.map_or("?".into(), |n| n.to_string()));
    println!(
        "   server RSS: {:.1} MiB at the end, {:.1} MiB highest sampled, {:.1} MiB peak since start",
        status_kib(ctx.pid, "VmRSS:") as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        status_kib(ctx.pid, "VmHWM:") as f64 / 1024.0
    );
    println!("   server CPU: {:.0} % of a core", cpu / elapsed * 100.0);
    println!(
        "   server log: {log_bytes} bytes, {log_lines} lines ({:.0} B/s, {:.1} lines/s)",
        log_bytes as f64 / elapsed,
        log_lines as f64 / elapsed
    );
    println!(
        "   honest newcomers: {probes} probes, slowest registration + relay {:.0} ms, {} failed{}; relays between \
         the {} registered honest peers: {relayed} ({:.0}/s), {} of them lost their socket",
        slowest.as_secs_f64() * 1000.0,
        failures.len(),
        failures.first().map(|f| format!(" (first: {f})")).unwrap_or_default(),
        ctx.honest_count,
        relayed as f64 / elapsed,
        ctx.honest.lost.load(Ordering::Relaxed)
    );
    Ok(())
}

struct Ctx {
    pid: u32,
    log_bytes: Arc<AtomicU64>,
    log_lines: Arc<AtomicU64>,
    honest: Arc<Honest>,
    honest_count: usize,
    round: AtomicU64,
}

fn arg(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("a value")?.parse()?),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let honest_count = arg(&args, "--honest", 1000)?.min(2000);
    if args.iter().any(|a| a == "--serve") {
        return serve(honest_count).await;
    }
    let phase_secs = Duration::from_secs(arg(&args, "--phase-secs", 10)?.min(60) as u64);
    let _ = raise_fd_limit();

    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve", "--honest", &honest_count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut addr_line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut addr_line)?;
    let server: SocketAddr = addr_line.trim().parse().context("the server's address")?;
    let (log_bytes, log_lines) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut last_lines = Vec::new();
    {
        let (bytes, lines) = (log_bytes.clone(), log_lines.clone());
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                bytes.fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
                lines.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(line);
            }
        });
        last_lines.push(rx);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "server pid {pid} at {server}; {honest_count} honest peers; phases of {phase_secs:?}; load average before: {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let ctx =
        Ctx { pid, log_bytes, log_lines, honest: Arc::new(Honest::default()), honest_count, round: AtomicU64::new(0) };
    println!("## idle server: RSS {:.1} MiB", status_kib(pid, "VmRSS:") as f64 / 1024.0);

    // The honest peers: 50 per address, at most 8 registering at once per address.
    let started = Instant::now();
    let keys: Vec<Key> = (0..honest_count as u64).map(Key::new).collect();
    let peers: Arc<Vec<PeerId>> = Arc::new(keys.iter().map(Key::peer).collect());
    let gates: Arc<Vec<Semaphore>> = Arc::new((0..20).map(|_| Semaphore::new(8)).collect());
    let mut joins = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let gates = gates.clone();
        joins.push(tokio::spawn(async move {
            let _permit = gates[i % 20].acquire().await.ok()?;
            for _ in 0..20 {
                if let Ok(ws) = register(honest_address(i), server, &key, false).await {
                    return Some(ws);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }));
    }
    let stop_honest = Arc::new(AtomicBool::new(false));
    let mut registered = 0;
    for (i, join) in joins.into_iter().enumerate() {
        if let Some(ws) = join.await? {
            registered += 1;
            tokio::spawn(honest_peer(ws, peers.clone(), i, ctx.honest.clone(), stop_honest.clone()));
        }
    }
    anyhow::ensure!(registered == honest_count, "only {registered} of {honest_count} honest peers registered");
    println!("{honest_count} honest peers registered in {:.1} s", started.elapsed().as_secs_f64());

    phase("1,000 honest peers, no attack", server, phase_secs, &ctx, |_| tokio::spawn(async { String::new() })).await?;

    phase("unregistered sockets: 1,100 opened and held, reopened when closed", server, phase_secs, &ctx, |stop| {
        tokio::spawn(async move {
            let (opened, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let mut tasks = Vec::new();
            for _ in 0..1_100 {
                let (stop, opened, refused) = (stop.clone(), opened.clone(), refused.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match ws_from(HOSTILE, server, None, false).await {
                            Ok(mut ws) => {
                                opened.fetch_add(1, Ordering::Relaxed);
                                while !stop.load(Ordering::Relaxed) {
                                    let read = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
                                    if let Ok(None | Some(Err(_))) = read {
                                        break;
                                    }
                                }
                            }
                            Err(_) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
            format!("{} sockets opened, {} refused", opened.load(Ordering::Relaxed), refused.load(Ordering::Relaxed))
        })
    })
    .await?;

    phase(
        "throwaway registrations: 1,024 keys registered (attempted), never read",
        server,
        phase_secs * 2,
        &ctx,
        |stop| {
            tokio::spawn(async move {
                let mut kept = Vec::new();
                let mut refused = 0;
                for n in 0..1_024u64 {
                    match register(HOSTILE, server, &Key::new(50_000_000 + n), false).await {
                        Ok(ws) => kept.push(ws),
                        Err(_) => refused += 1,
                    }
                }
                let held = kept.len();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                format!("{held} registered, {refused} refused (the address's share is 64; silent ones expire)")
            })
        },
    )
    .await?;

    phase("3,000 idle or half-sent HTTP connections, reopened when closed", server, phase_secs, &ctx, |stop| {
        tokio::spawn(async move {
            let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let mut tasks = Vec::new();
            for i in 0..3_000 {
                let (stop, opened, closed) = (stop.clone(), opened.clone(), closed.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut stream) = tcp_from(HOSTILE, server, false).await else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        opened.fetch_add(1, Ordering::Relaxed);
                        if i % 2 == 1 {
                            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
                        }
                        let mut buf = [0u8; 256];
                        while !stop.load(Ordering::Relaxed) {
                            use tokio::io::AsyncReadExt as _;
                            let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
                            if let Ok(Ok(0) | Err(_)) = read {
                                closed.fetch_add(1, Ordering::Relaxed);
                                // Reopen a second later (not a connect flood).
                                tokio::time::sleep(Duration::from_secs(1)).await;
                                break;
                            }
                        }
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
            format!(
                "{} connections opened, {} closed by the server",
                opened.load(Ordering::Relaxed),
                closed.load(Ordering::Relaxed)
            )
        })
    })
    .await?;

    phase(
        "256 registered peers that never read (from 127.0.0.2-5), sent 12 KiB offers by each other",
        server,
        phase_secs,
        &ctx,
        |stop| {
            tokio::spawn(async move {
                let mut sockets = Vec::new();
                let mut targets = Vec::new();
                for n in 0..256u64 {
                    let from = Ipv4Addr::new(127, 0, 0, 2 + (n % 4) as u8);
                    let key = Key::new(60_000_000 + n);
                    if let Ok(ws) = register(from, server, &key, true).await {
                        targets.push(key.peer());
                        sockets.push(ws);
                    }
                }
                let sent = Arc::new(AtomicUsize::new(0));
                let targets = Arc::new(targets);
                let sdp = "a".repeat(MAX_SDP_BYTES);
                let mut tasks = Vec::new();
                for (i, ws) in sockets.into_iter().enumerate() {
                    let (stop, sent, targets, sdp) = (stop.clone(), sent.clone(), targets.clone(), sdp.clone());
                    tasks.push(tokio::spawn(async move {
                        let (mut sink, _stream) = ws.split();
                        let mut k = i;
                        // At the rate limit (20 a second).
                        let mut tick = tokio::time::interval(Duration::from_millis(50));
                        while !stop.load(Ordering::Relaxed) {
                            tick.tick().await;
                            k = (k + 1) % targets.len();
                            let offer = ClientMessage::Signal {
                                to: targets[k].clone(),
                                payload: SignalPayload::Offer { sdp: sdp.clone() },
                            };
                            match tokio::time::timeout(
                                Duration::from_millis(200),
                                sink.send(Message::text(offer.to_json())),
                            )
                            .await
                            {
                                Ok(Ok(())) => {
                                    sent.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(Err(_)) => return,
                                Err(_) => {}
                            }
                        }
                    }));
                }
                let registered = tasks.len();
                for task in tasks {
                    let _ = task.await;
                }
                format!("{registered} non-readers registered, {} offers of 12 KiB sent", sent.load(Ordering::Relaxed))
            })
        },
    )
    .await?;

    for (name, frame) in [
        ("tiny frames as fast as possible (16 sockets at once, reconnecting)", Message::text("x")),
        ("pings as fast as possible (16 sockets at once, reconnecting)", Message::Ping(Bytes::from_static(b"p"))),
    ] {
        phase(name, server, phase_secs, &ctx, move |stop| {
            tokio::spawn(async move {
                let (sockets, frames) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
                let mut tasks = Vec::new();
                for _ in 0..16 {
                    let (stop, sockets, frames, frame) = (stop.clone(), sockets.clone(), frames.clone(), frame.clone());
                    tasks.push(tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let Ok(ws) = ws_from(HOSTILE, server, None, false).await else {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            };
                            sockets.fetch_add(1, Ordering::Relaxed);
                            let (mut sink, mut stream) = ws.split();
                            let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                            let mut n = 0;
                            while !stop.load(Ordering::Relaxed) && !reader.is_finished() {
                                if sink.feed(frame.clone()).await.is_err() {
                                    break;
                                }
                                n += 1;
                                if n % 64 == 0 && sink.flush().await.is_err() {
                                    break;
                                }
                            }
                            frames.fetch_add(n, Ordering::Relaxed);
                            reader.abort();
                        }
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
                format!(
                    "{} sockets, {} frames sent (each socket closed with 1008 after its allowance)",
                    sockets.load(Ordering::Relaxed),
                    frames.load(Ordering::Relaxed)
                )
            })
        })
        .await?;
    }

    phase(
        "invalid UTF-8, oversized frames, and pages of another origin, in a loop",
        server,
        phase_secs,
        &ctx,
        |stop| {
            tokio::spawn(async move {
                let (mut closes, mut forbidden) = (std::collections::BTreeMap::<u16, usize>::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    for bad in [
                        Message::Frame(Frame::message(vec![0xff, 0xfe], OpCode::Data(Data::Text), true)),
                        Message::text("x".repeat(past_signaling::MAX_FRAME_BYTES + 1)),
                    ] {
                        let Ok(mut ws) = ws_from(HOSTILE, server, None, false).await else { continue };
                        let _ = ws.send(bad).await;
                        while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                            if let Message::Close(Some(close)) = frame {
                                *closes.entry(u16::from(close.code)).or_default() += 1;
                                break;
                            }
                        }
                    }
                    if ws_from(HOSTILE, server, Some("http://evil.example"), false).await.is_err() {
                        forbidden += 1;
                    }
                }
                format!("close codes seen {closes:?}; {forbidden} handshakes from http://evil.example refused")
            })
        },
    )
    .await?;

    stop_honest.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(child.stdin.take());
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    println!("server exited: {status}");
    let rx = last_lines.pop().context("log")?;
    let tail: Vec<String> = rx.try_iter().collect();
    println!("last server log lines:");
    for line in tail.iter().rev().take(6).rev() {
        println!("   {line}");
    }
    Ok(())
}
