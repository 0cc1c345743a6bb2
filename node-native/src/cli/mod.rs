//! The subcommands and what they share: arguments, exit codes, logging, error reports.

mod connect;
mod ops;
mod output;
mod serve;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use past_node::ErrorKind;
use tracing_subscriber::EnvFilter;

/// The signaling server used when no `--signaling` is given: the one `cargo xtask run` starts.
const DEFAULT_SIGNALING: &str = "ws://127.0.0.1:8080/ws";

/// Exit code of bad usage, configuration or input.
pub(crate) const USAGE: u8 = 1;
/// Exit code of a file no node holds.
const NOT_FOUND: u8 = 2;
/// Exit code of a network that could not do it.
const UNAVAILABLE: u8 = 3;
/// Exit code of a full network or an exceeded quota.
const STORAGE_FULL: u8 = 4;
/// Exit code of a refusal (not the owner, wrong or missing key).
const REFUSED: u8 = 5;
/// Exit code of a local file that could not be read or written.
pub(crate) const IO: u8 = 6;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The native PAST node: a full peer of the browsers' storage network",
    after_help = "Exit codes: 0 success; 1 bad usage, configuration or input (key file, corrupted or busy \
                  store, malformed link); 2 not found; 3 network unavailable; 4 storage full or over quota; \
                  5 refused (not the owner, wrong or missing key); 6 a local file could not be read or written."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Print one JSON object per line (progress, then the outcome or the error) for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log filter for stderr (`error`, `warn`, `info`, `debug`, or a tracing filter);
    /// `RUST_LOG` overrides it. Default: `info` for serve and connect, `warn` otherwise.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
}

/// Where the node is and how to start one.
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeArgs {
    /// The node's store directory: replicas, the identity key (`node.key`, mode 0600) and
    /// the control socket of a running `serve`.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// WebSocket URL of a signaling server (insert, get, reclaim and status use it only
    /// when no serve runs on the store). Repeatable: the node registers with every one
    /// given, so that networks bootstrapped through different servers form one ring; share
    /// links name the first one's page. Default: `ws://127.0.0.1:8080/ws`, except for
    /// `serve --serve-page`, which registers with its own server first and then with these.
    #[arg(long, value_name = "URL")]
    signaling: Vec<String>,
    /// Bytes this node offers to store for others.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    capacity: u64,
    /// A STUN or TURN server URL besides those the signaling server names (repeatable).
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
}

impl NodeArgs {
    /// The node's configuration: its key from the store's key file.
    fn config(&self) -> anyhow::Result<past_node::NodeConfig> {
        // A new store directory is its owner's only (an existing one is left as it is).
        let mut builder = std::fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.recursive(true).create(&self.store).map_err(|e| {
            Failure::new(ErrorKind::BadInput, format!("cannot create the store {}: {e}", self.store.display()))
        })?;
        let key_path = self.store.join(past_node::key_file::KEY_FILE);
        let key = past_node::key_file::load_or_create(&key_path).map_err(|e| Failure::new(ErrorKind::BadInput, e))?;
        let (first, more) = match self.signaling.split_first() {
            Some((first, more)) => (first.clone(), more),
            None => (DEFAULT_SIGNALING.to_string(), &[][..]),
        };
        let mut config = past_node::NodeConfig::new(first);
        config.more_signaling_urls = more.to_vec();
        config.key = Some(key);
        config.store = Some(self.store.clone());
        config.capacity = self.capacity;
        config.ice_servers = self.ice_servers.clone();
        Ok(config)
    }

    /// The `--signaling` URLs given on the command line (none: the default applies).
    pub(crate) fn explicit_signaling(&self) -> &[String] {
        &self.signaling
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run a long-lived peer: join the network, store replicas for others, answer the other
    /// subcommands on the store's control socket; Ctrl-C or SIGTERM leaves gracefully. With
    /// --serve-page, also run the signaling server serving the page and the wasm.
    Serve(serve::ServeArgs),
    /// Insert a file (encrypted unless --public); prints its fileId and share link.
    Insert(ops::InsertArgs),
    /// Fetch a file by share link or fileId, verified (and decrypted), to disk.
    Get(ops::GetArgs),
    /// Reclaim a file this node's key inserted; prints the reclaim receipts.
    Reclaim(ops::ReclaimArgs),
    /// The node's id, leaf set, routing table fill, connections and stored files.
    Status(ops::StatusArgs),
    /// Register with a signaling server, join the overlay without a store, print payloads
    /// routed to this node (a debugging tool).
    Connect(connect::ConnectArgs),
}

impl Cli {
    /// Logs to stderr.
    pub(crate) fn init_logging(&self) {
        let default = match (&self.log_level, &self.command) {
            (Some(level), _) => level.as_str(),
            (None, Cmd::Serve(_) | Cmd::Connect(_)) => "info",
            (None, _) => "warn",
        };
        let quiet_webrtc = ",rtc=warn,rtc_ice=error,rtc_dtls=error,webrtc=warn";
        let filter = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(format!("{default}{quiet_webrtc}")))
            .unwrap_or_else(|_| EnvFilter::new("warn"));
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }

    pub(crate) async fn run(self) -> anyhow::Result<()> {
        let json = self.json;
        match self.command {
            Cmd::Serve(args) => serve::run(args, json).await,
            Cmd::Insert(args) => ops::insert(args, json).await,
            Cmd::Get(args) => ops::get(args, json).await,
            Cmd::Reclaim(args) => ops::reclaim(args, json).await,
            Cmd::Status(args) => ops::status(args, json).await,
            Cmd::Connect(args) => connect::run(args).await,
        }
    }
}

/// A failure of a known kind (it chooses the exit code).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Failure {
    kind: ErrorKind,
    message: String,
}

impl Failure {
    pub(crate) fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Self {
        Failure { kind, message: message.to_string() }
    }
}

fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Unavailable | ErrorKind::Closed => UNAVAILABLE,
        ErrorKind::StorageFull => STORAGE_FULL,
        ErrorKind::Refused => REFUSED,
        ErrorKind::Io => IO,
        _ => USAGE,
    }
}

/// Prints `err` (as JSON on stdout too with `--json`) and gives its exit code.
pub(crate) fn report_error(err: &anyhow::Error, json: bool) -> u8 {
    let kind = err.downcast_ref::<Failure>().map_or(ErrorKind::BadInput, |f| f.kind);
    eprintln!("error: {err:#}");
    if json {
        output::print_json(&past_node::control::Reply::Error { kind, message: format!("{err:#}") });
    }
    exit_code(kind)
}
