//! PAST: a large-scale, persistent peer-to-peer storage utility on top of Pastry
//! (Rowstron & Druschel, "Storage management and caching in PAST", SOSP 2001; and Druschel
//! & Rowstron, "PAST: A large-scale, persistent peer-to-peer storage utility", HotOS 2001).
//!
//! PAST stores immutable files. A file is named by its fileId, SHA-1 of its name, its
//! owner's public key and a salt ([`FileId`]); it is stored on the k nodes whose nodeIds are
//! numerically closest to the fileId, found by routing to it. The owner signs a
//! [`FileCertificate`]; each storing node returns a signed [`StoreReceipt`]. A lookup is
//! answered by the first node on its route that holds the file. A [`ReclaimCertificate`]
//! signed by the owner frees the storage, each holder answering with a [`ReclaimReceipt`].
//!
//! Like Pastry in this crate, PAST here is a sans-IO state machine: [`Past`] is an
//! [`Application`](crate::Application) on a [`Node`](crate::Node). Besides sending messages
//! it asks its driver to store and read chunks ([`StorageRequest`]) and to sign
//! ([`SignRequest`]), and takes the answers as inputs, because both are asynchronous in the
//! browser (IndexedDB, WebCrypto). [`SyncPast`] answers them at once from a [`Storage`] and
//! a [`Signer`] (tests, simulator).
//!
//! Modules: [`certificate`] (signed statements, chunks), [`insert`] (the insert protocol
//! and where content travels), [`lookup`] (lookup and caching), [`relay`] (answers along the route), [`reclaim`], [`replica`]
//! (accepting replicas, replica diversion), `maintenance` (replica maintenance), [`cache`] (GreedyDual-Size),
//! [`quota`], [`store`] (the storage interface), [`transfer`] (chunked pulls with flow
//! control and verification).
//!
//! # Driving a PAST node
//! ```
//! use past_core::past::*;
//! use past_core::{Config, Node, Time};
//!
//! // One node, its own network: it is the root and the only replica (k = 1).
//! let key = Ed25519Signer::from_seed([7; 32]);
//! let (public, id) = (key.public_key(), key.node_id());
//! let mut store = MemoryStore::new();
//! store.add_upload(UploadId(1), b"hello PAST".to_vec());
//! let past = Past::new(PastConfig::new(public, 1 << 20));
//! let mut node = Node::new(id, Config::with_seed(1), SyncPast::new(past, store, key));
//! let now = Time::ZERO;
//! node.join(None, now);
//! let spec = InsertRequestSpec { name: "greeting".into(), owner: public, k: 1, upload: UploadId(1), size: 10, created: 0 };
//! let op = node.insert(spec, now).unwrap();
//! let Some(PastEvent::InsertDone { op: done, result: Ok(inserted) }) = node.poll_past_event() else { panic!() };
//! assert_eq!(done, op);
//! let file = inserted.certificate.body.file;
//!
//! let op = node.lookup(file, now);
//! let mut content = Vec::new();
//! while let Some(event) = node.poll_past_event() {
//!     match event {
//!         PastEvent::LookupChunk { data, .. } => content.extend(data),
//!         PastEvent::LookupDone { result, .. } => assert!(result.is_ok()),
//!         _ => {}
//!     }
//! }
//! assert_eq!(content, b"hello PAST");
//! ```

pub mod cache;
pub mod certificate;
mod config;
pub mod crypto;
mod error;
pub mod file_id;
pub mod insert;
mod locate;
pub mod lookup;
mod maintenance;
pub mod messages;
mod node;
pub mod quota;
pub mod reclaim;
mod refetch;
pub mod relay;
pub mod replica;
pub mod sources;
pub mod store;
mod sync;
pub mod transfer;
mod verified;

pub use cache::GreedyDualSize;
pub use certificate::{
    CHUNK_SIZE, CertificateError, FileCertificate, FileCertificateBody, HASHES_PER_PIECE, MAX_FILE_SIZE,
    MAX_NAME_BYTES, ReclaimCertificate, ReclaimCertificateBody, ReclaimReceipt, ReclaimReceiptBody, Signed, SignedBody,
    StoreReceipt, StoreReceiptBody, check_certificate, chunk_count, chunk_len,
};
pub use config::{Answers, PastConfig};
pub use crypto::{Ed25519Signer, Keyring, PublicKey, SignError, SignId, SignRequest, Signature, Signer};
pub use error::{InsertError, LookupError, ReclaimError, Refusal};
pub use file_id::{FileId, Hash};
pub use messages::{PastMessage, Source};
pub use node::{Found, InsertRequestSpec, Inserted, OpId, Past, PastEvent, PastHost, PastStats, Reclaimed};
pub use store::{
    FileRecord, MemoryStore, Object, Role, Storage, StorageError, StorageId, StorageOp, StorageReply, StorageRequest,
    UploadId,
};
pub use sync::SyncPast;
pub use verified::SharedVerified;
