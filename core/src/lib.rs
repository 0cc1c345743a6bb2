//! Pastry routing and PAST storage as deterministic, sans-IO state machines.
//!
//! This crate is the protocol of "PAST in the browser", written once and driven by three
//! drivers: the browser node (WebRTC data channels, IndexedDB, WebCrypto), the native node
//! (the `webrtc` crate, files on disk) and the simulator (an in-memory network of up to
//! millions of nodes with fixed seeds).
//!
//! It is **not** a network library: it has no sockets, no clocks, no threads, no async
//! runtime and no OS randomness. The driver hands a [`Node`] the messages that arrive, the
//! time ([`Time`]) with every input, and a random seed in its [`Config`]; the node answers
//! with messages to send ([`Transmit`]), events ([`Event`]) and the time of its next timer.
//! Peers are named by their [`Id`]; turning an id into a connection, and proving the id of
//! whoever is at the other end, is the driver's job.
//!
//! # Pastry in brief
//! Every node has a 128-bit id, SHA-1 of its public key. A message for a key is delivered
//! to the live node whose id is numerically closest to the key, in about log_{2^b} N hops:
//! each hop goes to a node sharing one more digit with the key ([`RoutingTable`]) until the
//! key falls within the node's [`LeafSet`]. Tables prefer nodes close by round-trip time, so
//! routes are short in the network as well as in hops. See the Pastry paper (Rowstron &
//! Druschel, Middleware 2001) and the module docs, which cite it.
//!
//! # The run loop
//! ```
//! use past_core::{Application, Config, Id, Net, Node, Time};
//!
//! /// An application that counts what is delivered to it.
//! struct Count(u32);
//! impl Application for Count {
//!     type Message = Vec<u8>;
//!     fn deliver(&mut self, _: &mut dyn Net<Vec<u8>>, _key: Id, _message: Vec<u8>, _hops: u8) {
//!         self.0 += 1;
//!     }
//! }
//!
//! // Two nodes; the first founds the overlay, the second joins through it.
//! let (a, b) = (Id::from_u128(1 << 100), Id::from_u128(7 << 120));
//! let mut nodes = vec![Node::new(a, Config::with_seed(1), Count(0)), Node::new(b, Config::with_seed(2), Count(0))];
//! let mut now = Time::ZERO;
//! nodes[0].join(None, now);
//! nodes[1].join(Some(a), now);
//!
//! // The driver loop: move every transmit to its destination until nothing is in flight
//! // (a real driver sends them over the network, and sleeps until `poll_timeout`).
//! let index = |id: Id| if id == a { 0 } else { 1 };
//! loop {
//!     let mut moved = false;
//!     for i in 0..nodes.len() {
//!         while let Some(t) = nodes[i].poll_transmit() {
//!             let from = nodes[i].id();
//!             now = Time::from_micros(now.as_micros() + 1_000);
//!             nodes[index(t.to)].handle_message(from, t.message, now);
//!             moved = true;
//!         }
//!     }
//!     if !moved { break; }
//! }
//! assert!(nodes[1].is_joined());
//! nodes[0].route(Id::from_u128(7 << 120), b"hello".to_vec(), now);
//! let t = nodes[0].poll_transmit().unwrap();
//! nodes[1].handle_message(a, t.message, now);
//! assert_eq!(nodes[1].app().0, 1);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod detour;
mod filter;
mod id;
mod join;
mod leaf_set;
mod maintenance;
mod neighborhood;
mod net;
mod node;
mod overlay;
pub mod past;
mod refine;
mod repair;
mod route;
mod routing_table;
mod time;
pub mod wire;

pub use config::{Config, Proximity};
pub use id::{DigitBase, Id, InvalidDigitBase};
pub use leaf_set::{LeafSet, Side};
pub use neighborhood::NeighborhoodSet;
pub use net::{Narrow, Net};
pub use node::{Application, Forward, Node, SendFailure};
pub use overlay::{Event, MAX_OUTBOX, Overlay, Phase, Transmit};
pub use route::{Hop, RoutingState};
pub use routing_table::{Considered, Entry, RoutingTable};
pub use time::{Rtt, Time};
