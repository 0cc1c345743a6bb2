//! The link between two PAST nodes over one WebRTC data channel, written once for the
//! browser driver (`past-node-wasm`) and the native driver (`past-node`).
//!
//! - [`auth`]: the handshake by which each side proves the nodeId it claims, bound to this
//!   very connection (both DTLS fingerprints and two fresh nonces are signed).
//! - [`frame`]: one header byte (auth, Pastry, chunk) before every data channel message,
//!   chunking of frames over [`frame::MAX_MESSAGE_BYTES`] and their bounded reassembly.
//! - [`app`]: the application messages the drivers route through the Pastry overlay
//!   (connection signaling through the overlay, payloads for demos and tests, PAST).
//! - [`manager`]: the peer manager, a sans-IO state machine that decides which connections
//!   exist (signaling, glare, handshake, queues, eviction, the connection budget and the
//!   limits that keep hearsay and unreachable peers from spending it).
//! - [`stack`]: the Pastry core and the manager wired together, with the bootstrap through
//!   the signaling server's contacts: what a driver drives.
//! - [`version`]: the one version number two nodes must share, exchanged in the handshake
//!   and announced by the signaling server.
//!
//! It is pure: no I/O, no clock, no OS randomness (the driver passes the time with every
//! input and a random seed at the start; signatures come from the driver, which owns the
//! key: WebCrypto in the browser). It is **not** a transport: it never sees a data channel,
//! only the SDP and the bytes that cross it.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod auth;
pub mod frame;
pub mod host;
pub mod manager;
pub mod seal;
pub mod share;
pub mod stack;
pub mod version;

pub use app::{AppMessage, OverlaySignal, Payload, SignalKind};
pub use auth::{AuthError, AuthMessage, Handshake};
pub use frame::{Data, FrameError, Incoming, Reassembler};
pub use host::LinkApp;
pub use manager::{Command, ConnId, ManagerConfig, PeerEvent, PeerManager, Tables};
pub use stack::{Delivery, RouteError, RttSources, Stack, StackEvent};
pub use version::OVERLAY_VERSION;
