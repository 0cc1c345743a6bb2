//! `serve`: a long-lived peer answering the store's control socket until Ctrl-C or SIGTERM,
//! then leaving gracefully.

use anyhow::Context as _;
use past_node::control;
use past_node::{ErrorKind, NodeEvent};
use tokio::signal::unix::{SignalKind, signal};

use super::{Failure, NodeArgs};

pub(crate) async fn run(args: NodeArgs, json: bool) -> anyhow::Result<()> {
    let config = args.config()?;
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
        println!("{}", serde_json::json!({ "type": "serving", "node_id": node.id().as_str() }));
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
