//! The driver's side of PAST: files staged for inserts (read from the `File`, sealed chunk
//! by chunk), the core's storage requests carried out in IndexedDB ([`crate::store`]), its
//! signing requests answered by the tab's WebCrypto key, and the JS API's inserts, lookups
//! and reclaims waiting for their outcome. Lookups hand the page a `ReadableStream` that
//! receives each chunk as soon as it is verified (and opened with the link's key).

use litemap::LiteMap;

use futures::channel::oneshot;
use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use past_core::past::{
    CHUNK_SIZE, FileCertificate, FileId, Inserted, Object as Target, OpId, PastEvent, PublicKey, Reclaimed, Signature,
    StorageError, StorageOp, StorageReply, StorageRequest, UploadId,
};
use past_core::{Id, Time};
use past_link::seal::{self, FileKey, Meta, PLAIN_CHUNK};
use past_link::share::{MetaError, ShareLink};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};

use super::{Command, Driver, Input, hex};
use crate::files_glue::{
    ApiError, end_feed, fail_feed, feed, import_key, lookup_result, make_feeder, make_upload, read_upload_chunk,
};
use crate::identity::js_text;
use crate::store::Answer;

/// How the JS API waits for an operation.
pub(crate) type Reply = oneshot::Sender<Result<JsValue, ApiError>>;

/// What the page asked to insert.
pub(crate) struct InsertRequest {
    pub(crate) blob: web_sys::Blob,
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) k: u8,
    pub(crate) encrypt: bool,
    pub(crate) on_progress: Option<Function>,
    pub(crate) reply: Reply,
}

impl std::fmt::Debug for InsertRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InsertRequest({:?}, k = {})", self.name, self.k)
    }
}

/// Content staged for an insert.
struct Upload {
    /// The JS side (`makeUpload`): reads and seals chunks of the `File`.
    reader: JsValue,
    key: Option<FileKey>,
    plain: u64,
    op: Option<OpId>,
    /// Chunks read so far, for progress.
    reads: u64,
}

impl Upload {
    /// Bytes of the file in one PAST chunk (less the tag when it is sealed).
    fn piece(&self) -> usize {
        if self.key.is_some() { PLAIN_CHUNK } else { CHUNK_SIZE }
    }

    fn chunks(&self) -> u64 {
        self.plain.div_ceil(self.piece() as u64).max(1)
    }
}

struct InsertWait {
    upload: UploadId,
    meta: Meta,
    key: Option<FileKey>,
    k: u8,
    on_progress: Option<Function>,
    reply: Reply,
}

struct LookupWait {
    link: ShareLink,
    /// Until the certificate is verified; then the stream takes the chunks.
    reply: Option<Reply>,
    /// Feeds the page's stream (`makeFeeder`), once the certificate is verified.
    feeder: Option<JsValue>,
    on_progress: Option<Function>,
    received: u64,
    size: u64,
}

/// Chunk reads of one `readonly` transaction: a small group answers the first chunks of a
/// transfer early, and groups run side by side.
const READS_PER_BATCH: usize = 4;

/// Adds `request` to the batches of this pass, keeping the core's order: runs of reads go
/// in groups of [`READS_PER_BATCH`], runs of other requests in one batch each.
fn batch_up(batches: &mut Vec<Vec<StorageRequest>>, request: StorageRequest) {
    let is_read = |r: &StorageRequest| matches!(r.op, StorageOp::Read { .. });
    let fits = batches.last().is_some_and(|last| match last.first() {
        Some(first) if is_read(first) => is_read(&request) && last.len() < READS_PER_BATCH,
        Some(_) => !is_read(&request),
        None => true,
    });
    match batches.last_mut() {
        Some(last) if fits => last.push(request),
        _ => batches.push(vec![request]),
    }
}

/// The JS API's error for a failed insert; `otherwise`: the code of errors without one of
/// their own (`refused` before anything was sent, `failed` after).
fn insert_error(err: &past_core::past::InsertError, otherwise: &'static str) -> ApiError {
    use past_core::past::InsertError as E;
    let code = match err {
        E::QuotaExceeded { .. } | E::OwnerLimit { .. } => "over-quota",
        E::FileTooLarge { .. } => "too-large",
        E::InsufficientStorage { .. } | E::Refused { reason: past_core::past::Refusal::StorageFull, .. } => {
            "storage-full"
        }
        _ => otherwise,
    };
    ApiError::new(code, err.to_string())
}

/// The driver's PAST state. Its tables of operations in progress are sorted vectors
/// (`LiteMap`): far less code in the module than a `BTreeMap` per value type.
#[derive(Default)]
pub(crate) struct Files {
    uploads: LiteMap<UploadId, Upload>,
    inserts: LiteMap<OpId, InsertWait>,
    lookups: LiteMap<OpId, LookupWait>,
    reclaims: LiteMap<OpId, Reply>,
    next_upload: u64,
}

fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(object, &key.into(), &value.into());
}

fn progress(callback: Option<&Function>, stage: &str, done: u64, total: u64) {
    let Some(callback) = callback else { return };
    let event = Object::new();
    set(&event, "stage", stage);
    set(&event, "bytes", done as f64);
    set(&event, "total", total as f64);
    let _ = callback.call1(&JsValue::NULL, &event);
}

/// The page's address without its fragment.
fn page_address() -> String {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return String::new() };
    format!("{}{}", location.origin().unwrap_or_default(), location.pathname().unwrap_or_default())
}

/// Milliseconds since the Unix epoch.
fn date_now() -> u64 {
    js_sys::Date::now() as u64
}

impl Driver {
    // ---- the core's requests ----------------------------------------------------------

    /// Hands the core's storage and signing requests to IndexedDB, the staged files and
    /// WebCrypto.
    pub(crate) fn dispatch_past(&mut self) {
        let mut batches: Vec<Vec<StorageRequest>> = Vec::new();
        while let Some(request) = self.stack.poll_storage() {
            match request.op {
                StorageOp::Read { object: Target::Upload(upload), index } => self.read_upload(request, upload, index),
                _ => batch_up(&mut batches, request),
            }
        }
        for batch in batches {
            let (store, tx) = (self.store.clone(), self.inputs.clone());
            spawn_local(async move {
                let answers = store.run(batch).await;
                let _ = tx.push(Input::Stored(answers));
            });
        }
        while let Some(request) = self.stack.poll_sign() {
            let id = request.id;
            if request.signer != PublicKey(self.identity.public_key) {
                let error = past_core::past::SignError::UnknownKey(request.signer);
                self.stack.handle_signature(id, Err(error), super::now());
                continue;
            }
            let (signing, tx) = (self.identity.sign(&request.message), self.inputs.clone());
            spawn_local(async move {
                let result = signing.await.map(Signature).map_err(past_core::past::SignError::Failed);
                let _ = tx.push(Input::PastSigned { id, result });
            });
        }
    }

    /// Reads chunk `index` of a staged file, sealed when the file is encrypted.
    fn read_upload(&mut self, request: StorageRequest, upload: UploadId, index: u32) {
        let Some(staged) = self.files.uploads.get_mut(&upload) else {
            self.answer_later(vec![(request.id, Err(StorageError::NotFound))]);
            return;
        };
        staged.reads += 1;
        let piece = staged.piece() as u64;
        let start = u64::from(index) * piece;
        let end = (start + piece).min(staged.plain);
        let reading = read_upload_chunk(&staged.reader, index, start as f64, end as f64);
        let (tx, id) = (self.inputs.clone(), request.id);
        spawn_local(async move {
            let result = match JsFuture::from(reading).await {
                Ok(bytes) => Ok(StorageReply::Data(Uint8Array::new(&bytes).to_vec())),
                Err(err) => Err(StorageError::Failed(js_text(&err))),
            };
            let _ = tx.push(Input::Stored(vec![(id, result)]));
        });
        if let Some(op) = staged.op {
            self.insert_progress(op);
        }
    }

    fn answer_later(&self, answers: Vec<Answer>) {
        let _ = self.inputs.push(Input::Stored(answers));
    }

    /// Storage answers arrived.
    pub(crate) fn on_stored(&mut self, answers: Vec<Answer>, t: Time) {
        for (id, result) in answers {
            self.stack.handle_storage(id, result, t);
        }
    }

    // ---- commands from the page ---------------------------------------------------------

    /// Starts an insert.
    pub(crate) fn insert(&mut self, request: InsertRequest, t: Time) {
        let plain = request.blob.size() as u64;
        let key = request.encrypt.then(|| FileKey(super::random_seed()));
        let meta = Meta { name: request.name.clone(), mime: request.mime.clone(), size: plain };
        let (name, size) = seal::certificate_fields(key.as_ref(), &meta);
        self.files.next_upload += 1;
        let upload = UploadId(self.files.next_upload);
        let reader = make_upload(&request.blob, key.as_ref().map(|k| Uint8Array::from(&k.0[..])));
        let staged = Upload { reader, key: key.clone(), plain, op: None, reads: 0 };
        self.files.uploads.insert(upload, staged);
        let spec = past_core::past::InsertRequestSpec {
            name,
            owner: PublicKey(self.identity.public_key),
            k: request.k,
            upload,
            size,
            created: date_now(),
        };
        match self.stack.insert(spec, t) {
            Ok(op) => {
                if let Some(staged) = self.files.uploads.get_mut(&upload) {
                    staged.op = Some(op);
                }
                let wait = InsertWait {
                    upload,
                    meta,
                    key,
                    k: request.k,
                    on_progress: request.on_progress,
                    reply: request.reply,
                };
                self.files.inserts.insert(op, wait);
            }
            Err(err) => {
                self.files.uploads.remove(&upload);
                let _ = request.reply.send(Err(insert_error(&err, "refused")));
            }
        }
    }

    fn insert_progress(&self, op: OpId) {
        let Some(wait) = self.files.inserts.get(&op) else { return };
        let Some(staged) = self.files.uploads.get(&wait.upload) else { return };
        let chunks = staged.chunks();
        // The first pass over the file hashes (and seals) it; then each of the k storing
        // nodes pulls every chunk.
        let (stage, done, total) = if staged.reads <= chunks {
            ("hashing", staged.reads, chunks)
        } else {
            ("storing", staged.reads - chunks, chunks * u64::from(wait.k))
        };
        let bytes = |n: u64| (n * staged.piece() as u64).min(staged.plain * total / chunks);
        progress(wait.on_progress.as_ref(), stage, bytes(done), bytes(total));
    }

    /// Starts a lookup.
    pub(crate) fn lookup(&mut self, link: ShareLink, on_progress: Option<Function>, reply: Reply, t: Time) {
        let op = self.stack.lookup(link.file, t);
        let wait = LookupWait { link, reply: Some(reply), feeder: None, on_progress, received: 0, size: 0 };
        self.files.lookups.insert(op, wait);
    }

    /// Stops a lookup whose reader went away.
    pub(crate) fn cancel_lookup(&mut self, op: OpId, t: Time) {
        if self.files.lookups.remove(&op).is_some() {
            self.stack.cancel_lookup(op, t);
        }
    }

    /// Starts a reclaim (signed with this tab's key: only the owner's is obeyed).
    pub(crate) fn reclaim(&mut self, file: FileId, reply: Reply, t: Time) {
        let op = self.stack.reclaim(file, PublicKey(self.identity.public_key), date_now(), t);
        self.files.reclaims.insert(op, reply);
    }

    /// What this tab holds for others.
    pub(crate) fn stored(&self) -> Object {
        let past = self.stack.past();
        let (mut replicas, mut cached, mut pointers) = (0u32, 0u32, 0u32);
        for (_, role, committed) in past.files() {
            match role {
                _ if !committed => {}
                past_core::past::Role::Cached => cached += 1,
                past_core::past::Role::Pointer { .. } => pointers += 1,
                _ => replicas += 1,
            }
        }
        let o = Object::new();
        set(&o, "replicas", replicas);
        set(&o, "cached", cached);
        set(&o, "pointers", pointers);
        set(&o, "bytesUsed", past.used() as f64);
        set(&o, "bytesCached", past.cached_bytes() as f64);
        set(&o, "capacity", past.capacity() as f64);
        set(&o, "free", past.capacity().saturating_sub(past.used() + past.cached_bytes()) as f64);
        set(&o, "bytesRelayed", past.stats().bytes_relayed as f64);
        o
    }

    // ---- outcomes -------------------------------------------------------------------------

    /// A PAST event.
    pub(crate) fn on_past_event(&mut self, event: PastEvent) {
        match event {
            PastEvent::InsertDone { op, result } => self.insert_done(op, result),
            PastEvent::LookupFound { op, certificate, holder, hops, route } => {
                self.lookup_found(op, &certificate, holder, (hops, route))
            }
            PastEvent::LookupChunk { op, index, data } => self.lookup_chunk(op, index, data),
            PastEvent::LookupDone { op, result } => {
                let Some(mut wait) = self.files.lookups.remove(&op) else { return };
                let error = match result {
                    Ok(_) => {
                        if let Some(feeder) = &wait.feeder {
                            end_feed(feeder);
                        }
                        return;
                    }
                    Err(past_core::past::LookupError::NotFound { file }) => {
                        ApiError::new("not-found", format!("no node holds file {file} (never inserted, or reclaimed)"))
                    }
                    Err(err) => ApiError::new("unavailable", err.to_string()),
                };
                match (wait.reply.take(), &wait.feeder) {
                    (Some(reply), _) => {
                        let _ = reply.send(Err(error));
                    }
                    (None, Some(feeder)) => fail_feed(feeder, &error.to_js()),
                    (None, None) => {}
                }
            }
            PastEvent::ReclaimDone { op, result } => self.reclaim_done(op, result),
            PastEvent::BadData { file, holder } => {
                self.page.emit("badData", &[("fileId", file.to_string().into()), ("holder", hex(holder).into())]);
            }
            _ => {}
        }
    }

    fn insert_done(&mut self, op: OpId, result: Result<Inserted, past_core::past::InsertError>) {
        let Some(wait) = self.files.inserts.remove(&op) else { return };
        self.files.uploads.remove(&wait.upload);
        let inserted = match result {
            Ok(inserted) => inserted,
            Err(err) => {
                let _ = wait.reply.send(Err(insert_error(&err, "failed")));
                return;
            }
        };
        let file = inserted.certificate.body.file;
        let link = ShareLink { file, key: wait.key.clone() };
        let address = format!("{}#{}", page_address(), link.fragment());
        let receipts = Array::new();
        for receipt in &inserted.receipts {
            receipts.push(&hex(receipt.body.node).into());
        }
        let entry = Object::new();
        set(&entry, "fileId", file.to_string());
        set(&entry, "name", wait.meta.name.as_str());
        set(&entry, "type", wait.meta.mime.as_str());
        set(&entry, "size", wait.meta.size as f64);
        set(&entry, "k", wait.k);
        set(&entry, "encrypted", wait.key.is_some());
        set(&entry, "created", inserted.certificate.body.created as f64);
        set(&entry, "link", address.as_str());
        set(&entry, "receipts", receipts.length());
        let store = self.store.clone();
        let saved = entry.clone();
        spawn_local(async move {
            if let Err(err) = store.put_owned(&file, Some(&saved)).await {
                tracing::warn!("recording an inserted file: {err}");
            }
        });
        set(&entry, "key", wait.key.as_ref().map(FileKey::to_text).map_or(JsValue::NULL, JsValue::from));
        set(&entry, "receiptNodes", receipts);
        set(&entry, "attempts", inserted.attempts);
        let _ = wait.reply.send(Ok(entry.into()));
    }

    fn lookup_found(&mut self, op: OpId, certificate: &FileCertificate, holder: Id, (hops, route): (u8, Vec<Id>)) {
        let own = self.id();
        let Some(wait) = self.files.lookups.get_mut(&op) else { return };
        let body = &certificate.body;
        let sealed = seal::is_sealed_name(&body.name);
        let meta = wait.link.open_meta(&body.name, body.size).map_err(|e| match e {
            MetaError::KeyNeeded => ApiError::new("key-needed", e.to_string()),
            _ => ApiError::new("wrong-key", e.to_string()),
        });
        let Some(reply) = wait.reply.take() else { return };
        let meta = match meta {
            Ok(meta) => meta,
            Err(error) => {
                // The content is of no use without the key: stop pulling it.
                self.cancel_lookup(op, super::now());
                let _ = reply.send(Err(error));
                return;
            }
        };
        wait.size = meta.size;
        let key = wait.link.key.as_ref().map_or(JsValue::UNDEFINED, |k| import_key(&Uint8Array::from(&k.0[..])).into());
        let tell = |command: fn(OpId) -> Command| {
            let tx = self.inputs.clone();
            Closure::<dyn FnMut()>::new(move || {
                let _ = tx.push(Input::Command(command(op)));
            })
            .into_js_value()
        };
        let feeder = make_feeder(&key, &tell(Command::LookupRead), &tell(Command::LookupCancel));
        let stream = Reflect::get(&feeder, &"stream".into()).unwrap_or(JsValue::UNDEFINED);
        wait.feeder = Some(feeder);
        let o = Object::new();
        set(&o, "fileId", body.file.to_string());
        set(&o, "name", meta.name.as_str());
        set(&o, "type", meta.mime.as_str());
        set(&o, "size", meta.size as f64);
        set(&o, "owner", past_signaling_proto::to_hex(&body.owner.0));
        set(&o, "created", body.created as f64);
        set(&o, "k", body.k);
        set(&o, "encrypted", sealed);
        set(&o, "verified", true);
        set(&o, "holder", hex(holder));
        set(&o, "hops", hops);
        set(&o, "route", route_path(own, &route, holder));
        let _ = reply.send(Ok(lookup_result(&o, &stream, self.store.spool_dir())));
    }

    fn lookup_chunk(&mut self, op: OpId, index: u32, data: Vec<u8>) {
        let Some(wait) = self.files.lookups.get_mut(&op) else { return };
        let Some(feeder) = &wait.feeder else { return };
        let tag = if wait.link.key.is_some() { seal::TAG } else { 0 };
        wait.received += data.len().saturating_sub(tag) as u64;
        feed(feeder, index, &Uint8Array::from(data.as_slice()));
        progress(wait.on_progress.as_ref(), "receiving", wait.received, wait.size);
    }

    fn reclaim_done(&mut self, op: OpId, result: Result<Reclaimed, past_core::past::ReclaimError>) {
        let Some(reply) = self.files.reclaims.remove(&op) else { return };
        let reclaimed = match result {
            Ok(reclaimed) => reclaimed,
            Err(err) => {
                let code = match err {
                    past_core::past::ReclaimError::NotOwner { .. } => "not-owner",
                    past_core::past::ReclaimError::NotFound { .. } => "not-found",
                    _ => "failed",
                };
                let _ = reply.send(Err(ApiError::new(code, err.to_string())));
                return;
            }
        };
        let file = reclaimed.certificate.body.file;
        let store = self.store.clone();
        spawn_local(async move {
            let _ = store.put_owned(&file, None).await;
        });
        let o = Object::new();
        let nodes = Array::new();
        for receipt in &reclaimed.receipts {
            nodes.push(&hex(receipt.body.node).into());
        }
        set(&o, "fileId", file.to_string());
        set(&o, "receipts", nodes.length());
        set(&o, "receiptNodes", nodes);
        let _ = reply.send(Ok(o.into()));
    }
}

/// The route of a lookup as hex ids: this node, the nodes it went through, then the holder
/// (when the last of them asked the replica set and another node answered).
fn route_path(own: Id, route: &[Id], holder: Id) -> js_sys::Array {
    let mut path = vec![own];
    path.extend(route.iter().copied().filter(|id| *id != own));
    if path.last() != Some(&holder) {
        path.push(holder);
    }
    path.into_iter().map(|id| JsValue::from(hex(id))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use past_core::past::{FileId, StorageId};

    fn request(id: u64, read: bool) -> StorageRequest {
        let file = FileId([1; 20]);
        let op =
            if read { StorageOp::Read { object: Target::File(file), index: 0 } } else { StorageOp::Delete { file } };
        StorageRequest { id: StorageId(id), op }
    }

    #[test]
    fn batches_keep_the_order_and_group_reads_by_four() {
        let mut batches = Vec::new();
        let pattern = [false, false, true, true, true, true, true, false, true];
        for (i, read) in pattern.into_iter().enumerate() {
            batch_up(&mut batches, request(i as u64, read));
        }
        let ids: Vec<Vec<u64>> = batches.iter().map(|b| b.iter().map(|r| r.id.0).collect()).collect();
        assert_eq!(ids, vec![vec![0, 1], vec![2, 3, 4, 5], vec![6], vec![7], vec![8]]);
    }
}
