//! The tab's replica store in IndexedDB: the driver's answer to the core's storage
//! requests (`past_core::past::StorageRequest`).
//!
//! One database per identity slot (`past-store<namespace>-<slot>`), so two tabs of one
//! browser keep separate stores. Object stores: `records` (fileId hex -> the postcard bytes
//! of the `FileRecord`), `chunks` (`[fileId hex, index]` -> the chunk's bytes) and `owned`
//! (what this identity inserted, for the page's "my files"). The driver hands over every
//! request the core emitted in one pass as one batch, carried out in order in one
//! transaction (IndexedDB runs transactions on the same stores in the order they were
//! created, which keeps the core's per-file order across batches) and answered when it
//! commits. A batch that creates, updates or deletes a record commits with strict
//! durability (that is what makes a replica's commit durable); one of chunk writes only
//! with relaxed durability (the strict commit of the record that follows flushes them,
//! IndexedDB's log being written in order); one of reads only is a `readonly` transaction,
//! which may run beside others. A transaction that aborts
//! (`QuotaExceededError` in the middle of an insert) fails every request of its batch and
//! changes nothing: the core then abandons that replica, and what was stored before stays.
//!
//! No IndexedDB crate: the crates (`idb`, `rexie`, `indexed_db_futures`) map one request to
//! one Rust future, which would cost one crossing between wasm and JS per chunk and make a
//! batch awkward to keep inside one transaction; this shape is one call per batch to the
//! 60 lines of JS below.

use js_sys::{Array, Object, Reflect, Uint8Array};
use past_core::past::{
    FileId, FileRecord, Object as Target, StorageError, StorageId, StorageOp, StorageReply, StorageRequest,
};
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::identity::js_text;

#[wasm_bindgen(inline_js = r#"
function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export function openStore(name) {
  const r = indexedDB.open(name, 1);
  r.onupgradeneeded = () => {
    r.result.createObjectStore("records");
    r.result.createObjectStore("chunks");
    r.result.createObjectStore("owned");
  };
  return request(r);
}

function range(file) {
  return IDBKeyRange.bound([file, 0], [file, Infinity]);
}

// Carries out `ops` in order in one transaction; resolves to one result per op
// ({data} for reads, {} otherwise, {error, name} when the transaction failed).
export function runBatch(db, ops) {
  return new Promise((resolve) => {
    const results = ops.map(() => ({}));
    // Reads alone run in a readonly transaction (several at once); chunk writes need not
    // reach the disk before the record that commits them, which goes with strict
    // durability (IndexedDB writes its log in order, so that flush covers them).
    const readsOnly = ops.every((op) => op.op === "read");
    const touchesRecords = ops.some((op) => op.op === "create" || op.op === "put" || op.op === "delete");
    let tx;
    try {
      tx = readsOnly
        ? db.transaction(["chunks"], "readonly")
        : db.transaction(["records", "chunks"], "readwrite", { durability: touchesRecords ? "strict" : "relaxed" });
    } catch (e) {
      resolve(ops.map(() => ({ error: String(e.message || e), name: e.name || "Error" })));
      return;
    }
    const records = readsOnly ? null : tx.objectStore("records"), chunks = tx.objectStore("chunks");
    ops.forEach((op, i) => {
      switch (op.op) {
        case "create":
          chunks.delete(range(op.file));
          records.put(op.record, op.file);
          break;
        case "write":
          chunks.put(op.data, [op.file, op.index]);
          break;
        case "put":
          records.put(op.record, op.file);
          if (op.dropContent) chunks.delete(range(op.file));
          break;
        case "delete":
          records.delete(op.file);
          chunks.delete(range(op.file));
          break;
        case "read": {
          const r = chunks.get([op.file, op.index]);
          r.onsuccess = () => { results[i] = r.result === undefined ? { missing: true } : { data: new Uint8Array(r.result) }; };
          break;
        }
      }
    });
    tx.oncomplete = () => resolve(results);
    const failed = () => {
      const e = tx.error || new Error("the transaction was aborted");
      resolve(ops.map(() => ({ error: String(e.message || e), name: e.name || "Error" })));
    };
    tx.onabort = failed;
    tx.onerror = (event) => event.preventDefault();
  });
}

// Every record: [[fileIdHex, Uint8Array], ...].
export async function loadRecords(db) {
  const tx = db.transaction("records");
  const store = tx.objectStore("records");
  const [keys, values] = await Promise.all([request(store.getAllKeys()), request(store.getAll())]);
  return keys.map((k, i) => [k, new Uint8Array(values[i])]);
}

export function putOwned(db, file, entry) {
  const tx = db.transaction("owned", "readwrite");
  if (entry === null) tx.objectStore("owned").delete(file); else tx.objectStore("owned").put(entry, file);
  return new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onabort = () => reject(tx.error); });
}

export function loadOwned(db) {
  return request(db.transaction("owned").objectStore("owned").getAll());
}

export async function estimateStorage() {
  if (!navigator.storage || !navigator.storage.estimate) return null;
  const persisted = navigator.storage.persist ? await navigator.storage.persist().catch(() => false) : false;
  const { quota, usage } = await navigator.storage.estimate();
  return { quota: quota || 0, usage: usage || 0, persisted };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = openStore, catch)]
    fn open_store(name: &str) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = runBatch)]
    fn run_batch(db: &JsValue, ops: &Array) -> js_sys::Promise;
    #[wasm_bindgen(js_name = loadRecords, catch)]
    fn load_records(db: &JsValue) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = putOwned, catch)]
    fn put_owned(db: &JsValue, file: &str, entry: &JsValue) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = loadOwned, catch)]
    fn load_owned(db: &JsValue) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = estimateStorage, catch)]
    fn estimate_storage() -> Result<js_sys::Promise, JsValue>;
}

/// The answer to one storage request.
pub(crate) type Answer = (StorageId, Result<StorageReply, StorageError>);

/// An open store.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    db: JsValue,
    /// The directory of the origin private file system where this slot's lookups spool
    /// large files (`files_glue`).
    spool_dir: String,
}

/// What `navigator.storage` says of this origin.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Estimate {
    /// Bytes the origin may use.
    pub(crate) quota: u64,
    /// Bytes it uses.
    pub(crate) usage: u64,
    /// Whether the browser granted persistent storage.
    pub(crate) persisted: bool,
}

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Asks for persistent storage and estimates the quota (`None`: no StorageManager).
pub(crate) async fn estimate() -> Option<Estimate> {
    let value = JsFuture::from(estimate_storage().ok()?).await.ok()?;
    if value.is_null() {
        return None;
    }
    Some(Estimate {
        quota: get(&value, "quota").as_f64().unwrap_or(0.0) as u64,
        usage: get(&value, "usage").as_f64().unwrap_or(0.0) as u64,
        persisted: get(&value, "persisted").as_bool().unwrap_or(false),
    })
}

fn file_key(file: &FileId) -> JsValue {
    JsValue::from_str(&file.to_string())
}

fn record_bytes(record: &FileRecord) -> Uint8Array {
    Uint8Array::from(postcard::to_allocvec(record).unwrap_or_default().as_slice())
}

impl Store {
    /// Opens (creating it the first time) the store of identity slot `slot`.
    pub(crate) async fn open(namespace: &str, slot: u32) -> Result<Self, String> {
        let name = format!("past-store{namespace}-{slot}");
        let db = JsFuture::from(open_store(&name).map_err(|e| js_text(&e))?)
            .await
            .map_err(|e| format!("opening IndexedDB: {}", js_text(&e)))?;
        let spool_dir = format!("{name}-downloads");
        // What the slot's last page spooled is no longer referenced by any page.
        let _ = JsFuture::from(crate::files_glue::clear_spool(&spool_dir)).await;
        Ok(Store { db, spool_dir })
    }

    /// Where lookups of this slot spool large files.
    pub(crate) fn spool_dir(&self) -> &str {
        &self.spool_dir
    }

    /// The records kept: committed ones to restore; uncommitted ones (an insert or a
    /// transfer cut short) are deleted with their chunks, as are records that do not decode.
    pub(crate) async fn restore(&self) -> Result<Vec<FileRecord>, String> {
        let rows = JsFuture::from(load_records(&self.db).map_err(|e| js_text(&e))?)
            .await
            .map_err(|e| format!("reading the store: {}", js_text(&e)))?;
        let (mut kept, drop) = (Vec::new(), Array::new());
        for row in Array::from(&rows).iter() {
            let row = Array::from(&row);
            let (key, bytes) = (row.get(0), Uint8Array::new(&row.get(1)).to_vec());
            match postcard::from_bytes::<FileRecord>(&bytes) {
                Ok(record) if record.committed => kept.push(record),
                _ => {
                    let op = Object::new();
                    let _ = Reflect::set(&op, &"op".into(), &"delete".into());
                    let _ = Reflect::set(&op, &"file".into(), &key);
                    drop.push(&op);
                }
            }
        }
        if drop.length() > 0 {
            tracing::info!(count = drop.length(), "deleting replicas left uncommitted");
            let _ = JsFuture::from(run_batch(&self.db, &drop)).await;
        }
        Ok(kept)
    }

    /// Carries out `requests` (no upload reads) in one transaction.
    pub(crate) async fn run(&self, requests: Vec<StorageRequest>) -> Vec<Answer> {
        let ops = Array::new();
        for request in &requests {
            ops.push(&op_object(&request.op));
        }
        let results = match JsFuture::from(run_batch(&self.db, &ops)).await {
            Ok(results) if Array::is_array(&results) => Array::from(&results),
            Ok(_) | Err(_) => {
                let failed = || Err(StorageError::Failed("the IndexedDB batch did not answer".into()));
                return requests.into_iter().map(|r| (r.id, failed())).collect();
            }
        };
        requests
            .into_iter()
            .enumerate()
            .map(|(i, request)| (request.id, answer(&request.op, &results.get(i as u32))))
            .collect()
    }

    /// Records (or forgets, with `None`) a file this identity inserted.
    pub(crate) async fn put_owned(&self, file: &FileId, entry: Option<&Object>) -> Result<(), String> {
        let entry = entry.map_or(JsValue::NULL, |e| e.into());
        let promise = put_owned(&self.db, &file.to_string(), &entry).map_err(|e| js_text(&e))?;
        JsFuture::from(promise).await.map(|_| ()).map_err(|e| js_text(&e))
    }

    /// The files this identity inserted, as recorded.
    pub(crate) async fn owned(&self) -> Result<Array, String> {
        let promise = load_owned(&self.db).map_err(|e| js_text(&e))?;
        JsFuture::from(promise).await.map(|v| Array::from(&v)).map_err(|e| js_text(&e))
    }
}

/// The JS object of one operation.
fn op_object(op: &StorageOp) -> Object {
    let o = Object::new();
    let set = |k: &str, v: &JsValue| {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    };
    match op {
        StorageOp::Create { file, record } => {
            set("op", &"create".into());
            set("file", &file_key(file));
            set("record", &record_bytes(record));
        }
        StorageOp::Write { file, index, data } => {
            set("op", &"write".into());
            set("file", &file_key(file));
            set("index", &(*index).into());
            set("data", &Uint8Array::from(data.as_slice()));
        }
        StorageOp::PutRecord { file, record } => {
            set("op", &"put".into());
            set("file", &file_key(file));
            set("record", &record_bytes(record));
            set("dropContent", &(!record.role.has_content()).into());
        }
        StorageOp::Read { object: Target::File(file), index } => {
            set("op", &"read".into());
            set("file", &file_key(file));
            set("index", &(*index).into());
        }
        StorageOp::Read { object: Target::Upload(_), .. } => set("op", &"none".into()),
        StorageOp::Delete { file } => {
            set("op", &"delete".into());
            set("file", &file_key(file));
        }
    }
    o
}

/// The core's answer from one JS result.
fn answer(op: &StorageOp, result: &JsValue) -> Result<StorageReply, StorageError> {
    let error = get(result, "error");
    if let Some(message) = error.as_string() {
        let name = get(result, "name").as_string().unwrap_or_default();
        return Err(if name == "QuotaExceededError" { StorageError::Full } else { StorageError::Failed(message) });
    }
    match op {
        StorageOp::Read { .. } => match get(result, "data").dyn_into::<Uint8Array>() {
            Ok(bytes) => Ok(StorageReply::Data(bytes.to_vec())),
            Err(_) => Err(StorageError::NotFound),
        },
        _ => Ok(StorageReply::Done),
    }
}
