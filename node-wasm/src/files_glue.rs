//! JS glue of the file operations: AES-GCM with WebCrypto (the format of
//! `past_link::seal`, off the main thread), reading a staged `File` chunk by chunk, the
//! `ReadableStream` a lookup feeds, and errors with a `code` for the JS API.

use js_sys::{Object, Uint8Array};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
// AES-256-GCM as `past_link::seal` does it (docs/encryption.md), with WebCrypto: it runs
// off the main thread, with the CPU's AES instructions.
function nonce(index) {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(8, index);
  return n;
}

export function importKey(raw) {
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

// Bytes start..end of a blob, sealed as chunk `index` when `key` (a promise of a CryptoKey).
async function readChunk(blob, start, end, key, index) {
  const plain = await blob.slice(start, end).arrayBuffer();
  if (!key) return new Uint8Array(plain);
  return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce(index) }, await key, plain));
}

// A file staged for an insert: its chunks, read (and sealed) once for the k storing nodes,
// which pull at about the same pace; the last 64 chunks (4 MiB) are kept.
export function makeUpload(blob, rawKey) {
  const key = rawKey ? importKey(rawKey) : null;
  const recent = new Map();
  return {
    read(index, start, end) {
      let chunk = recent.get(index);
      if (!chunk) {
        chunk = readChunk(blob, start, end, key, index);
        recent.set(index, chunk);
        if (recent.size > 64) recent.delete(recent.keys().next().value);
      }
      return chunk;
    },
  };
}

export function readUpload(upload, index, start, end) { return upload.read(index, start, end); }

// The ReadableStream of a lookup: chunks in order (opened with `key` first when there is
// one). They wait here until the reader asks: `taken()` tells the node one went to the
// reader, so it pulls one more (it keeps at most its window unread), and `cancelled()` that
// the reader gave up or the key is wrong.
export function makeFeeder(key, taken, cancelled) {
  const waiting = [];
  let ended = false, failure = null, wake = () => {};
  const open = (index, bytes) => !key ? Promise.resolve(bytes) : key
    .then((k) => crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce(index) }, k, bytes))
    .catch(() => { throw errorWith("wrong-key", `chunk ${index} does not open with the link's key`); });
  const stream = new ReadableStream({
    async pull(controller) {
      while (!waiting.length && !ended && !failure) await new Promise((ok) => wake = ok);
      if (waiting.length) {
        const plain = await waiting.shift().catch((e) => { cancelled(); throw e; });
        controller.enqueue(new Uint8Array(plain));
        taken();
      } else if (failure) controller.error(failure);
      else controller.close();
    },
    cancel() { ended = true; waiting.length = 0; cancelled(); },
  }, { highWaterMark: 2 });
  return {
    stream,
    push(index, bytes) { const p = open(index, bytes); p.catch(() => {}); waiting.push(p); wake(); },
    end() { ended = true; wake(); },
    fail(e) { failure = e; wake(); },
  };
}

// Files larger than this are collected on disk (the origin private file system), not in
// memory, by blob() and save().
const SPOOL_ABOVE = 16 << 20;

// Writes `stream` to a new file in directory `dirName` of the origin private file system
// and returns it as a File (its bytes stay on disk); null where the browser has no writable
// private file system. The directory belongs to one identity slot and is emptied when the
// slot's next page starts (`clearSpool`).
async function spool(stream, dirName, name, type) {
  const root = await navigator.storage?.getDirectory?.().catch(() => null);
  if (!root) return null;
  const dir = await root.getDirectoryHandle(dirName, { create: true });
  const entry = `${Date.now()}-${crypto.randomUUID()}`;
  const handle = await dir.getFileHandle(entry, { create: true });
  if (!handle.createWritable) {
    await dir.removeEntry(entry);
    return null;
  }
  try {
    await stream.pipeTo(await handle.createWritable());
  } catch (e) {
    await dir.removeEntry(entry).catch(() => {});
    if (e?.name === "QuotaExceededError") throw errorWith("storage-full", `no room on this device for the file: ${e.message}`);
    throw e;
  }
  return new File([await handle.getFile()], name, { type });
}

export async function clearSpool(dirName) {
  const root = await navigator.storage?.getDirectory?.().catch(() => null);
  await root?.removeEntry(dirName, { recursive: true }).catch(() => {});
}

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

// A lookup's result: metadata, the stream, and helpers to collect or save it.
export function lookupResult(meta, stream, spoolDir) {
  const name = meta.name || meta.fileId;
  return Object.assign(meta, {
    stream,
    // The whole file as a Blob: in memory when small, on disk when large.
    async blob() {
      const file = meta.size > SPOOL_ABOVE ? await spool(stream, spoolDir, name, meta.type) : null;
      return file ?? new Blob([await new Response(stream).blob()], { type: meta.type });
    },
    // Saves the file under its name: streamed into a file the person picks when the call
    // comes from a click and the browser can (File System Access), else downloaded.
    async save() {
      if (window.showSaveFilePicker && navigator.userActivation?.isActive) {
        const handle = await showSaveFilePicker({ suggestedName: name });
        await stream.pipeTo(await handle.createWritable());
        return;
      }
      download(await this.blob(), name);
    },
  });
}

export function errorWith(code, message) {
  const e = new Error(message);
  e.code = code;
  return e;
}

export function feed(feeder, index, bytes) { feeder.push(index, bytes); }
export function endFeed(feeder) { feeder.end(); }
export function failFeed(feeder, error) { feeder.fail(error); }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = importKey)]
    pub(crate) fn import_key(raw: &Uint8Array) -> js_sys::Promise;
    #[wasm_bindgen(js_name = makeUpload)]
    pub(crate) fn make_upload(blob: &web_sys::Blob, key: Option<Uint8Array>) -> JsValue;
    #[wasm_bindgen(js_name = readUpload)]
    pub(crate) fn read_upload_chunk(upload: &JsValue, index: u32, start: f64, end: f64) -> js_sys::Promise;
    #[wasm_bindgen(js_name = makeFeeder)]
    pub(crate) fn make_feeder(key: &JsValue, taken: &JsValue, cancelled: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = lookupResult)]
    pub(crate) fn lookup_result(meta: &Object, stream: &JsValue, spool_dir: &str) -> JsValue;
    /// Removes the files earlier lookups spooled to disk (their pages are gone).
    #[wasm_bindgen(js_name = clearSpool)]
    pub(crate) fn clear_spool(dir: &str) -> js_sys::Promise;
    #[wasm_bindgen(js_name = errorWith)]
    pub(crate) fn error_with(code: &str, message: &str) -> JsValue;
    pub(crate) fn feed(feeder: &JsValue, index: u32, bytes: &Uint8Array);
    #[wasm_bindgen(js_name = endFeed)]
    pub(crate) fn end_feed(feeder: &JsValue);
    #[wasm_bindgen(js_name = failFeed)]
    pub(crate) fn fail_feed(feeder: &JsValue, error: &JsValue);
}

/// A failed operation for the JS API: a stable code and a message for people.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    /// The JS `Error` (with `code`).
    pub(crate) fn to_js(&self) -> JsValue {
        error_with(self.code, &self.message)
    }
}
