//! The node's identity in the browser: an Ed25519 key pair made by WebCrypto, its private
//! key non-extractable, kept in IndexedDB, and claimed by one tab at a time.
//!
//! Two tabs of one browser share IndexedDB, so identities live in numbered slots. A tab
//! claims a slot by holding a Web Lock named after it for its whole life
//! (`navigator.locks.request(name, {ifAvailable: true}, ...)` with a promise that never
//! settles), and remembers the slot in `sessionStorage`, so a reload takes the same slot
//! back (waiting up to 3 s for the unloading page to release the lock) and keeps its
//! nodeId. A tab never uses a slot whose lock another live tab holds. The glue is a small
//! JS snippet: IndexedDB and Web Locks are callback APIs that are much shorter in JS.
//!
//! The nodeId is `past_core::Id::from_public_key` of the raw public key. Signing is
//! asynchronous (WebCrypto); the driver does it outside the core and feeds the result back.

use js_sys::{Reflect, Uint8Array};
use past_core::Id;
use wasm_bindgen::JsCast as _;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
const STORE = "identities";

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDb(name) {
  const r = indexedDB.open(name, 1);
  r.onupgradeneeded = () => r.result.createObjectStore(STORE);
  return request(r);
}

// Resolves true once the lock is ours (held until the page goes away), false if it is
// taken (at once with waitMs = 0, else after waitMs).
function tryLock(name, waitMs) {
  return new Promise((resolve) => {
    const options = waitMs > 0 ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
    navigator.locks.request(name, options, (lock) => {
      if (!lock) { resolve(false); return undefined; }
      resolve(true);
      return new Promise(() => {});
    }).catch(() => resolve(false));
  });
}

export async function claimIdentity(namespace, slots) {
  if (!navigator.locks) throw new Error("the Web Locks API is not available (a secure context is needed)");
  if (!crypto.subtle) throw new Error("WebCrypto is not available (a secure context is needed)");
  const remembered = sessionStorage.getItem(`past-identity-slot${namespace}`);
  let slot = null;
  if (remembered !== null && await tryLock(`past-identity${namespace}-${remembered}`, 3000)) {
    slot = Number(remembered);
  }
  for (let i = 0; slot === null && i < slots; i++) {
    if (await tryLock(`past-identity${namespace}-${i}`, 0)) slot = i;
  }
  if (slot === null) throw new Error(`no free identity slot: ${slots} tabs hold one`);
  sessionStorage.setItem(`past-identity-slot${namespace}`, String(slot));
  const db = await openDb(`past-node${namespace}`);
  try {
    let record = await request(db.transaction(STORE).objectStore(STORE).get(slot));
    if (!record) {
      const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
      const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      record = { privateKey: pair.privateKey, publicKey: pair.publicKey, raw };
      const tx = db.transaction(STORE, "readwrite");
      tx.objectStore(STORE).put(record, slot);
      await new Promise((resolve, reject) => { tx.oncomplete = resolve; tx.onerror = () => reject(tx.error); });
    }
    return { slot, privateKey: record.privateKey, publicKey: record.raw };
  } finally {
    db.close();
  }
}

export async function signWith(privateKey, data) {
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, privateKey, data));
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = claimIdentity, catch)]
    fn claim_identity(namespace: &str, slots: u32) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(js_name = signWith, catch)]
    fn sign_with(private_key: &JsValue, data: &Uint8Array) -> Result<js_sys::Promise, JsValue>;
}

/// Most identity slots, hence most tabs of one browser profile running a node at once.
pub(crate) const SLOTS: u32 = 64;

/// The identity this tab claimed.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// The slot held.
    pub(crate) slot: u32,
    /// The raw Ed25519 public key.
    pub(crate) public_key: [u8; 32],
    /// The nodeId derived from it.
    pub(crate) id: Id,
    /// The non-extractable `CryptoKey`.
    private_key: JsValue,
}

impl Identity {
    /// Claims a free slot (the one this tab held before a reload if possible) and loads or
    /// creates its key. `namespace` separates identities of different uses of one origin
    /// (tests); it is usually empty.
    pub(crate) async fn claim(namespace: &str) -> Result<Self, String> {
        let record = JsFuture::from(claim_identity(namespace, SLOTS).map_err(|e| js_text(&e))?)
            .await
            .map_err(|e| format!("claiming an identity: {}", js_text(&e)))?;
        let slot = Reflect::get(&record, &"slot".into()).ok().and_then(|v| v.as_f64()).unwrap_or(0.0) as u32;
        let private_key = Reflect::get(&record, &"privateKey".into()).map_err(|e| js_text(&e))?;
        let raw = Reflect::get(&record, &"publicKey".into())
            .map_err(|e| js_text(&e))?
            .dyn_into::<Uint8Array>()
            .map_err(|_| "the stored public key is not bytes".to_string())?;
        let public_key: [u8; 32] =
            raw.to_vec().try_into().map_err(|_| "the stored public key is not 32 bytes".to_string())?;
        Ok(Identity { slot, public_key, id: Id::from_public_key(&public_key), private_key })
    }

    /// A future signing `data` with the private key (WebCrypto).
    pub(crate) fn sign(&self, data: &[u8]) -> impl std::future::Future<Output = Result<[u8; 64], String>> + 'static {
        let promise = sign_with(&self.private_key, &Uint8Array::from(data));
        async move {
            let value = JsFuture::from(promise.map_err(|e| js_text(&e))?).await.map_err(|e| js_text(&e))?;
            let bytes = value.dyn_into::<Uint8Array>().map_err(|_| "signature is not bytes".to_string())?;
            bytes.to_vec().try_into().map_err(|_| "signature is not 64 bytes".to_string())
        }
    }
}

/// The message of a JS exception or value.
pub(crate) fn js_text(value: &JsValue) -> String {
    if let Some(err) = value.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
