//! The accept loop: every TCP connection takes a slot of the pool of HTTP connections (per
//! address and global) or is closed at once; hyper serves it with a header-read timeout
//! (which also closes idle keep-alive connections) and upgrades `/ws` to a WebSocket (which
//! then holds a slot of the WebSocket pools instead). `accept` failing for lack of file
//! descriptors does not stop the loop: it logs (once per interval), waits a little and goes
//! on. At shutdown every connection finishes gracefully and every WebSocket closes, within a
//! few seconds.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use crate::admission::{Refused, Slot};
use crate::stats::Event;
use crate::{Config, Shared, fd_limit, router};

/// How long [`ServerHandle::shutdown`] and [`run`] wait for open connections and WebSockets
/// to close.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Largest request head (request line and headers) read from a client.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most headers in a request.
const MAX_HEADERS: usize = 64;

/// How long the accept loop pauses after `accept` failed for lack of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A listener on `config.listen` with a backlog of `config.listen_backlog` (`SO_REUSEADDR`
/// set, as `std` and tokio do).
pub fn bind(config: &Config) -> io::Result<TcpListener> {
    let socket = if config.listen.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(config.listen)?;
    socket.listen(config.listen_backlog)
}

/// Serves `config` on `listener` until `shutdown` completes, then closes every connection and
/// WebSocket (waiting up to a few seconds for them) and returns.
///
/// The caps of `config` are first fitted to the process's open-file limit (see
/// [`crate::raise_fd_limit`]), so the server never runs out of file descriptors because of
/// its own caps.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limit = fd_limit::fd_limit();
    let (config, lowered) = fd_limit::fit(config, limit);
    if lowered {
        tracing::warn!(
            "the open-file limit ({}) is too low for the configured caps: using at most {} HTTP connections, {} \
             unregistered and {} registered sockets (raise the limit with `ulimit -n`)",
            limit.unwrap_or(0),
            config.max_connections,
            config.max_unregistered,
            config.max_peers
        );
    }
    let (down_tx, down_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let shared = Shared::new(config, down_rx.clone(), alive_tx);
    let app = router(shared.clone());
    tokio::spawn(summaries(shared.clone(), down_rx));

    tokio::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                shared.stats.add(Event::AcceptError);
                if last_accept_error.is_none_or(|at| at.elapsed() >= shared.config.log_interval) {
                    tracing::error!("accept failed: {err}; retrying (logged once per interval)");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match shared.connections.take(remote.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                shared.stats.add(match refused {
                    Refused::PerAddress => Event::ConnPerAddress,
                    Refused::Global => Event::ConnGlobal,
                });
                drop(stream);
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, remote, slot, app.clone(), shared.clone()));
    }
    tracing::info!("shutting down");
    let _ = down_tx.send(true);
    drop(listener);
    drop(app);
    drop(shared);
    // Connections and upgraded WebSockets hold the other senders: wait for them to finish.
    if tokio::time::timeout(CLOSE_GRACE, alive_rx.recv()).await.is_err() {
        tracing::warn!("some connections did not close in time");
    }
    Ok(())
}

/// Errors of one connection (it went away before we accepted it), not of the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Serves one HTTP/1.1 connection until it closes, is upgraded, or the server shuts down.
async fn serve_connection(stream: TcpStream, remote: SocketAddr, slot: Slot, app: Router, shared: Arc<Shared>) {
    let _alive = shared.alive.clone();
    let _ = stream.set_nodelay(true);
    let service = app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request.map(Body::new)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
    tokio::pin!(connection);
    let mut down = shared.shutdown.clone();
    let mut draining = false;
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            _ = down.wait_for(|down| *down), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    };
    if let Err(err) = result {
        if err.is_timeout() {
            shared.stats.add(Event::HeaderTimeout);
        } else if !err.is_incomplete_message() && !err.is_closed() {
            shared.stats.add(Event::HttpError);
        }
        tracing::debug!("HTTP connection from {remote}: {err}");
    }
    drop(slot);
}

/// Writes the summary lines once per interval, and once more at shutdown.
async fn summaries(shared: Arc<Shared>, mut down: watch::Receiver<bool>) {
    let interval = shared.config.log_interval.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => shared.stats.flush(interval, shared.gauges()),
            _ = down.wait_for(|down| *down) => {
                shared.stats.flush(interval, shared.gauges());
                return;
            }
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {err}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A server running on the current tokio runtime (for tests and embedding).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl ServerHandle {
    /// Binds `config.listen` ([`bind`]) and serves in a spawned task.
    pub async fn spawn(config: Config) -> io::Result<Self> {
        let listener = bind(&config)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, stop: Some(stop), task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the origin of the served page.
    pub fn http_origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://<addr>/ws`, the signaling endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops accepting, closes every WebSocket and waits for the server task.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(err) => Err(io::Error::other(err)),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
