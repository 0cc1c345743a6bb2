//! A deterministic simulator of Pastry networks, driving the real `past-core` nodes.
//!
//! Nodes are placed at random points of a square; the latency between two nodes is their
//! Euclidean distance (the Pastry paper's Euclidean model). Messages travel through an event
//! queue in virtual time, so a run is exactly reproducible from its seed. Nodes join one by
//! one through the real join protocol, each through the node nearest to it; every node's
//! state comes from protocol messages only.
//!
//! This crate is **not** part of the product: it measures the protocol (hops, locality,
//! failure recovery, scale) and is the harness of the deterministic simulation tests. Its
//! binaries print the figures kept in `docs/results.md`.

pub mod churn;
pub mod experiment;
pub mod measure;
pub mod network;
pub mod past;
pub mod plane;
pub mod plot;
pub mod transfers;

/// Peak resident memory of this process as the kernel reports it (`VmHWM`, Linux only).
pub fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:")).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into())
}
