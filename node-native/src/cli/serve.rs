//! `serve`: a long-lived peer answering the store's control socket until Ctrl-C or SIGTERM,
//! then leaving gracefully.
//!
//! With `--serve-page ADDR` the same process is a complete home peer: it first starts the
//! signaling server ([`past_signaling`]) on `ADDR`, serving the page (`--web-dir`) and the wasm
//! package (`--pkg-dir`) as `past-signaling` does, then registers the node with that server
//! (and with any `--signaling` servers as further ones), so share links name its page. On
//! Ctrl-C or SIGTERM the node leaves first, while the tabs it hands replicas to can still
//! signal through the server, and the server shuts down after it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use past_node::control;
use past_node::{ErrorKind, NodeEvent};
use past_signaling::{Config as ServerConfig, ServerHandle};
use past_signaling_proto::IceServer;
use tokio::signal::unix::{SignalKind, signal};

use super::{Failure, NodeArgs};

/// The arguments of `serve`: the node's, and the page it may serve.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Also run the signaling server on this address (e.g. `127.0.0.1:8080`, `0.0.0.0:8080`;
    /// port 0 picks a free one), serving the page and the wasm package, and register with it
    /// first: one binary is a complete home peer, and share links name this page. The
    /// `--ice-server` URLs are then named to every client of the server, the tabs included.
    #[arg(long, value_name = "ADDR")]
    serve_page: Option<SocketAddr>,
    /// The page's directory, served at `/` (with --serve-page).
    #[arg(long, value_name = "DIR", default_value = "web", requires = "serve_page")]
    web_dir: PathBuf,
    /// The wasm package's directory (`cargo xtask build-wasm` writes it), served at `/pkg/`
    /// (with --serve-page).
    #[arg(long, value_name = "DIR", default_value = "target/web-pkg", requires = "serve_page")]
    pkg_dir: PathBuf,
    /// The page's address as others reach it, which share links start with (for example
    /// `https://files.example.org/` behind a proxy, or the machine's LAN address when
    /// --serve-page listens on 0.0.0.0). Default: the page served here, else the first
    /// signaling server's.
    #[arg(long, value_name = "URL")]
    page_url: Option<String>,
}

pub(crate) async fn run(args: ServeArgs, json: bool) -> anyhow::Result<()> {
    let ServeArgs { node: node_args, serve_page, web_dir, pkg_dir, page_url: public_page } = args;
    if serve_page.is_some() {
        // Before the store and its key are made: a wrong directory is a typo to fix first.
        check_page_dirs(&web_dir, &pkg_dir)?;
    }
    let mut config = node_args.config()?;
    let server = match serve_page {
        Some(listen) => {
            let server = start_server(listen, &web_dir, &pkg_dir, &config.ice_servers).await?;
            // Our own server first (its page is the one share links name), then the servers
            // given, except ours named again.
            let own = own_ws_url(server.local_addr());
            let given = node_args.explicit_signaling().iter().filter(|url| **url != own).cloned().collect();
            config.signaling_url = own;
            config.more_signaling_urls = given;
            // The server names the ICE servers in every welcome, ours included.
            config.ice_servers.clear();
            Some(server)
        }
        None => None,
    };
    config.page_url = public_page.or(config.page_url);
    let page = server.as_ref().map(|s| page_url(s.local_addr()));
    if let Some(page) = &page
        && !json
    {
        println!("serving the page at {page}");
    }
    let result = run_node(&node_args, config, page.as_deref(), json).await;
    if let Some(server) = server {
        tracing::info!("stopping the signaling server");
        server.shutdown().await.context("stopping the signaling server")?;
    }
    result
}

/// Starts the node, answers its control socket until Ctrl-C, SIGTERM or its end, then leaves.
async fn run_node(
    args: &NodeArgs,
    config: past_node::NodeConfig,
    page: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    // The store is opened (and locked) first: a second serve of one store stops here.
    let (node, mut events) = past_node::start(config).await.map_err(|e| Failure::new(e.kind(), e))?;
    let listener = match control::bind(&args.store).await {
        Ok(listener) => listener,
        Err(err) => {
            node.shutdown().await;
            let message = format!("cannot listen on the control socket in {}: {err}", args.store.display());
            return Err(Failure::new(ErrorKind::BadInput, message).into());
        }
    };
    tokio::spawn(control::serve(listener, node.clone()));
    if json {
        let mut line = serde_json::json!({ "type": "serving", "node_id": node.id().as_str() });
        if let Some(page) = page {
            line["page"] = page.into();
        }
        println!("{line}");
    } else {
        println!("serving as {} (store {})", node.id(), args.store.display());
    }
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(NodeEvent::Joined) => tracing::info!("joined the network"),
                Some(NodeEvent::Closed) | None => break,
                Some(NodeEvent::Error(message)) => tracing::warn!("{message}"),
                Some(other) => tracing::debug!("{other:?}"),
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("leaving the network");
    node.shutdown().await;
    let _ = std::fs::remove_file(args.store.join(control::CONTROL_SOCKET));
    Ok(())
}

/// Fails with a usage error naming the first of the page's directories that is not one.
fn check_page_dirs(web_dir: &Path, pkg_dir: &Path) -> anyhow::Result<()> {
    for (flag, dir) in [("--web-dir", web_dir), ("--pkg-dir", pkg_dir)] {
        if !dir.is_dir() {
            let message = format!(
                "{flag} {} is not a directory (run `cargo xtask build-wasm` in the repository to build the page's \
                 wasm package into target/web-pkg, and run serve from there, or name the directories with \
                 --web-dir and --pkg-dir)",
                dir.display()
            );
            return Err(Failure::new(ErrorKind::BadInput, message).into());
        }
    }
    Ok(())
}

/// Starts the signaling server on `listen`, serving the page from `web_dir` and the package
/// from `pkg_dir`, and naming `ice_servers` to its clients.
async fn start_server(
    listen: SocketAddr,
    web_dir: &Path,
    pkg_dir: &Path,
    ice_servers: &[String],
) -> anyhow::Result<ServerHandle> {
    let config = ServerConfig {
        listen,
        ice_servers: ice_servers.iter().cloned().map(IceServer::new).collect(),
        web_dir: Some(web_dir.to_path_buf()),
        pkg_dir: Some(pkg_dir.to_path_buf()),
        ..ServerConfig::default()
    };
    // The embedded server sizes its connection caps from the open-file limit.
    match past_signaling::raise_fd_limit() {
        Ok(limit) => tracing::debug!("open-file limit: {limit}"),
        Err(err) => tracing::warn!("cannot raise the open-file limit: {err}"),
    }
    let server = ServerHandle::spawn(config)
        .await
        .map_err(|e| Failure::new(ErrorKind::BadInput, format!("cannot serve the page on {listen}: {e}")))?;
    let addr = server.local_addr();
    tracing::info!(
        web = %web_dir.display(),
        pkg = %pkg_dir.display(),
        "serving the page at {} (signaling at {})",
        page_url(addr),
        own_ws_url(addr)
    );
    Ok(server)
}

/// Where this host reaches a server bound to `addr`: loopback for a wildcard address.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// The signaling URL of our own server bound to `addr`.
fn own_ws_url(addr: SocketAddr) -> String {
    format!("ws://{}/ws", reachable(addr))
}

/// The page's URL of our own server bound to `addr`.
fn page_url(addr: SocketAddr) -> String {
    format!("http://{}/", reachable(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_address_is_reached_on_loopback() {
        let any4: SocketAddr = "0.0.0.0:8080".parse().expect("an address");
        let any6: SocketAddr = "[::]:8080".parse().expect("an address");
        let lan: SocketAddr = "192.168.1.2:80".parse().expect("an address");
        assert_eq!(own_ws_url(any4), "ws://127.0.0.1:8080/ws");
        assert_eq!(page_url(any6), "http://[::1]:8080/");
        assert_eq!(page_url(lan), "http://192.168.1.2:80/");
    }
}
