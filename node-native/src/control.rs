//! The control socket: how the CLI's `insert`, `get`, `reclaim` and `status` reach a running
//! `serve`.
//!
//! `serve` listens on the Unix socket [`CONTROL_SOCKET`] in its store directory (mode 0600:
//! whoever may connect acts as the node's owner). A client writes one [`Request`] as a line of
//! JSON; the node answers with lines of JSON: any number of [`Reply::Progress`], then one final
//! reply (the outcome or [`Reply::Error`]), and closes the connection. Paths in requests are
//! absolute (the node does not know the client's working directory).
//!
//! ```text
//! > {"op":"insert","path":"/home/me/a.pdf","k":3,"public":false}
//! < {"type":"progress","stage":"hashing","bytes":65520,"total":1000000}
//! < {"type":"inserted","file_id":"…","link":"http://…/#…","receipts":["…","…","…"],…}
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::NodeHandle;
use crate::files::{ErrorKind, Fetched, InsertOptions, Inserted, Progress, ReclaimOutcome, Status};

/// The socket's name in the store directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Insert the file at `path`.
    Insert {
        /// Absolute path of the file.
        path: PathBuf,
        /// Replicas.
        k: u8,
        /// Unencrypted (readable by anyone with the fileId).
        public: bool,
    },
    /// Fetch a file by share link or fileId.
    Get {
        /// The link or fileId.
        target: String,
        /// Absolute path of the output file or directory.
        output: PathBuf,
    },
    /// Reclaim a file this node owns.
    Reclaim {
        /// Its fileId.
        file_id: String,
    },
    /// The node's status.
    Status,
}

/// What the node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reply {
    /// Progress of the transfer (not final).
    Progress(Progress),
    /// The file was inserted.
    Inserted(Inserted),
    /// The file was fetched.
    Fetched(Fetched),
    /// The file was reclaimed.
    Reclaimed(ReclaimOutcome),
    /// The status.
    Status(Status),
    /// The request failed.
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// What happened.
        message: String,
    },
}

impl Reply {
    fn error(kind: ErrorKind, message: impl std::fmt::Display) -> Self {
        Reply::Error { kind, message: message.to_string() }
    }
}

/// Why a request through the socket failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No node listens on the socket.
    #[error("no node serves the store (nothing listens on {path})")]
    NotRunning {
        /// The socket.
        path: PathBuf,
    },
    /// The socket failed.
    #[error("the control socket {path} failed: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node sent something that is not a reply, or closed without a final one.
    #[error("the node's answer is unreadable: {0}")]
    Protocol(String),
}

/// Carries out `request` on `node`, passing progress to `on_progress`; returns the final
/// reply.
pub async fn perform(node: &NodeHandle, request: Request, mut on_progress: impl FnMut(Progress)) -> Reply {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let op = async move {
        match request {
            Request::Insert { path, k, public } => {
                let options = InsertOptions { k, encrypt: !public };
                match node.insert(&path, options, tx).await {
                    Ok(inserted) => Reply::Inserted(inserted),
                    Err(err) => Reply::error(err.kind(), err),
                }
            }
            Request::Get { target, output } => match node.get(&target, Some(&output), tx).await {
                Ok(fetched) => Reply::Fetched(fetched),
                Err(err) => Reply::error(err.kind(), err),
            },
            Request::Reclaim { file_id } => match node.reclaim(&file_id).await {
                Ok(reclaimed) => Reply::Reclaimed(reclaimed),
                Err(err) => Reply::error(err.kind(), err),
            },
            Request::Status => match node.status().await {
                Some(status) => Reply::Status(status),
                None => Reply::error(ErrorKind::Closed, "the node is closed"),
            },
        }
    };
    tokio::pin!(op);
    loop {
        tokio::select! {
            reply = &mut op => {
                while let Ok(progress) = rx.try_recv() {
                    on_progress(progress);
                }
                return reply;
            }
            Some(progress) = rx.recv() => on_progress(progress),
        }
    }
}

/// Binds the control socket in `dir` (a stale socket of a node that is gone is replaced),
/// readable and writable by its owner only.
pub async fn bind(dir: &Path) -> std::io::Result<UnixListener> {
    let path = dir.join(CONTROL_SOCKET);
    if UnixStream::connect(&path).await.is_ok() {
        return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another node serves this store"));
    }
    match std::fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Answers the clients of `listener` with `node`, each connection in a task of its own,
/// until the listener fails.
pub async fn serve(listener: UnixListener, node: NodeHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let node = node.clone();
                tokio::spawn(async move {
                    if let Err(err) = answer(stream, &node).await {
                        tracing::debug!("a control connection failed: {err}");
                    }
                });
            }
            Err(err) => {
                tracing::warn!("the control socket failed: {err}");
                return;
            }
        }
    }
}

async fn answer(stream: UnixStream, node: &NodeHandle) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST as u64);
    reader.read_line(&mut line).await?;
    let request = match serde_json::from_str::<Request>(&line) {
        Ok(request) => request,
        Err(err) => return send(&mut write, &Reply::error(ErrorKind::BadInput, format!("bad request: {err}"))).await,
    };
    tracing::info!(?request, "control request");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let writer = async move {
        while let Some(reply) = rx.recv().await {
            send(&mut write, &reply).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    let work = async move {
        let reply = perform(node, request, |progress| {
            let _ = tx.send(Reply::Progress(progress));
        })
        .await;
        let _ = tx.send(reply);
    };
    let ((), written) = tokio::join!(work, writer);
    written
}

async fn send(write: &mut (impl tokio::io::AsyncWrite + Unpin), reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

/// Sends `request` to the node serving the store in `dir`, passing each reply to
/// `on_reply` (progress first); returns the final reply.
pub async fn request(dir: &Path, request: &Request, mut on_reply: impl FnMut(&Reply)) -> Result<Reply, ControlError> {
    let path = dir.join(CONTROL_SOCKET);
    let io = |source| ControlError::Io { path: path.clone(), source };
    let mut stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(err) if matches!(err.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Err(ControlError::NotRunning { path });
        }
        Err(err) => return Err(io(err)),
    };
    let mut line = serde_json::to_vec(request).map_err(|e| ControlError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).await.map_err(io)?;
    let mut lines = BufReader::new(stream).lines();
    while let Some(line) = lines.next_line().await.map_err(io)? {
        let reply: Reply = serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))?;
        on_reply(&reply);
        if !matches!(reply, Reply::Progress(_)) {
            return Ok(reply);
        }
    }
    Err(ControlError::Protocol("the node closed the connection without an answer".into()))
}
