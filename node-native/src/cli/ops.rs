//! `insert`, `get`, `reclaim` and `status`: a request to the `serve` of the store through its
//! control socket, or, when none runs, a node started here with that store and key that
//! joins, does the one operation, leaves gracefully and exits.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use past_node::control::{self, ControlError, Reply, Request};
use past_node::{ErrorKind, NodeEvent};

use super::output::Output;
use super::{Failure, NodeArgs};

/// How long a node started here may take to join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a node started here waits after joining, for its leaf set to fill.
const SETTLE: Duration = Duration::from_millis(1500);

#[derive(Debug, Args)]
pub(crate) struct InsertArgs {
    /// The file.
    file: PathBuf,
    /// Replicas to keep.
    #[arg(long, default_value_t = 3)]
    k: u8,
    /// Do not encrypt: anyone with the fileId can read the file and its name.
    #[arg(long)]
    public: bool,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// A share link (`http://host/#fileId.key`), its fragment, or a public file's fileId.
    target: String,
    /// The output file, or a directory to write the file under its own name (default: the
    /// current directory).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ReclaimArgs {
    /// The fileId (40 hex digits).
    file_id: String,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    node: NodeArgs,
}

pub(crate) async fn insert(args: InsertArgs, json: bool) -> anyhow::Result<()> {
    let path = std::path::absolute(&args.file).context("the file's path")?;
    let request = Request::Insert { path, k: args.k, public: args.public };
    match perform(&args.node, request, json).await? {
        Reply::Inserted(inserted) => {
            let mut out = Output::new(json);
            out.result(&Reply::Inserted(inserted.clone()), || {
                let how = if inserted.encrypted { "encrypted" } else { "public" };
                format!(
                    "inserted {} ({} bytes, k = {}, {how}, {} store receipts)\nfileId: {}\nlink: {}",
                    inserted.name,
                    inserted.size,
                    inserted.k,
                    inserted.receipts.len(),
                    inserted.file_id,
                    inserted.link
                )
            });
            Ok(())
        }
        other => unexpected(other),
    }
}

pub(crate) async fn get(args: GetArgs, json: bool) -> anyhow::Result<()> {
    let output = std::path::absolute(args.output.unwrap_or_else(|| PathBuf::from("."))).context("the output path")?;
    let request = Request::Get { target: args.target, output };
    match perform(&args.node, request, json).await? {
        Reply::Fetched(fetched) => {
            Output::new(json).result(&Reply::Fetched(fetched.clone()), || {
                format!("{} bytes of {} (verified) written to {}", fetched.size, fetched.name, fetched.path.display())
            });
            Ok(())
        }
        other => unexpected(other),
    }
}

pub(crate) async fn reclaim(args: ReclaimArgs, json: bool) -> anyhow::Result<()> {
    let request = Request::Reclaim { file_id: args.file_id };
    match perform(&args.node, request, json).await? {
        Reply::Reclaimed(reclaimed) => {
            Output::new(json).result(&Reply::Reclaimed(reclaimed.clone()), || {
                let mut text =
                    format!("reclaimed {}: {} reclaim receipts", reclaimed.file_id, reclaimed.receipts.len());
                for node in &reclaimed.receipts {
                    text.push_str(&format!("\n  {node}"));
                }
                text
            });
            Ok(())
        }
        other => unexpected(other),
    }
}

pub(crate) async fn status(args: StatusArgs, json: bool) -> anyhow::Result<()> {
    match perform(&args.node, Request::Status, json).await? {
        Reply::Status(status) => {
            Output::new(json).result(&Reply::Status(status.clone()), || {
                let mut text = format!(
                    "nodeId: {}{}\nleaf set: {} nodes\nrouting table: {} of {} entries\nconnections: {} open ({} made)\n\
                     stored: {} replicas, {} bytes; cached: {} files, {} bytes; capacity {} bytes",
                    status.node_id,
                    if status.joined { "" } else { " (not joined)" },
                    status.leaf_set.len(),
                    status.table_entries,
                    status.table_slots,
                    status.connections,
                    status.connections_made,
                    status.replicas.len(),
                    status.bytes_stored,
                    status.cached,
                    status.bytes_cached,
                    status.capacity
                );
                for leaf in &status.leaf_set {
                    text.push_str(&format!("\n  leaf {leaf}"));
                }
                for file in &status.replicas {
                    text.push_str(&format!("\n  replica {file}"));
                }
                text
            });
            Ok(())
        }
        other => unexpected(other),
    }
}

/// The final reply of an outcome the request does not have: an error (or a protocol slip).
fn unexpected(reply: Reply) -> anyhow::Result<()> {
    match reply {
        Reply::Error { kind, message } => Err(Failure::new(kind, message).into()),
        other => Err(Failure::new(ErrorKind::Unavailable, format!("unexpected answer {other:?}")).into()),
    }
}

/// Sends `request` to the store's running node, or does it with a node of its own; returns
/// the final reply (progress shown on the way).
async fn perform(node: &NodeArgs, request: Request, json: bool) -> anyhow::Result<Reply> {
    let mut out = Output::new(json);
    match control::request(&node.store, &request, |reply| {
        if let Reply::Progress(progress) = reply {
            out.progress(progress);
        }
    })
    .await
    {
        Ok(reply) => {
            out.done();
            return Ok(reply);
        }
        Err(ControlError::NotRunning { .. }) => {}
        Err(err) => return Err(Failure::new(ErrorKind::Unavailable, err).into()),
    }
    tracing::info!("no node serves {}: starting one here", node.store.display());
    let config = node.config()?;
    let (handle, mut events) = past_node::start(config).await.map_err(|e| Failure::new(e.kind(), e))?;
    let joined = tokio::time::timeout(JOIN_TIMEOUT, async {
        while let Some(event) = events.recv().await {
            if event == NodeEvent::Joined {
                return true;
            }
        }
        false
    })
    .await;
    if !matches!(joined, Ok(true)) {
        handle.shutdown().await;
        return Err(Failure::new(ErrorKind::Unavailable, "the node could not join the network").into());
    }
    // Keep draining events so the node never waits on them.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    tokio::time::sleep(SETTLE).await;
    let reply = control::perform(&handle, request, |progress| out.progress(&progress)).await;
    out.done();
    handle.shutdown().await;
    Ok(reply)
}
