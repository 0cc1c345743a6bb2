//! The page's files, compressed once and revalidated by content hash.
//!
//! [`ServeDir`] still resolves the URL to a file (its path checks, `index.html`, MIME types);
//! this module decides what goes out:
//! - A compressible file (text, JavaScript, JSON, SVG, wasm) up to [`MAX_IN_MEMORY`] bytes is
//!   read and hashed on every request (about 1 ms for the 1 MB module). Its bytes and their
//!   brotli and gzip encodings are kept in memory under that hash, so each encoding of each
//!   version of a file is computed once (by whichever request or the warm-up needs it
//!   first; others wait for it). Below [`MIN_COMPRESS_BYTES`] it goes out as it is.
//! - The strong `ETag` is the hash (plus the coding and its level for an encoded body), so a
//!   file that changed in any way, even with the same size and modification time, gets a new
//!   validator, and the JS glue and the wasm a browser holds are always a matching pair.
//! - `Cache-Control: no-cache` makes the browser revalidate each file on each visit;
//!   `If-None-Match` with the current tag gets `304 Not Modified` without a body.
//! - Other files (images, fonts, anything larger) are streamed by [`ServeDir`] as they are,
//!   with its validator (size and modification time) and the same `If-None-Match` check.
//!
//! Range requests get the whole file (no file of the page needs ranges).

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha1::{Digest as _, Sha1};
use tokio::sync::{OnceCell, Semaphore, watch};
use tower_http::services::ServeDir;

/// Largest file kept in memory (and so compressed); larger ones are streamed as they are.
pub const MAX_IN_MEMORY: usize = 8 * 1024 * 1024;

/// Smallest file worth compressing: below, the saving is a few dozen bytes at most.
pub const MIN_COMPRESS_BYTES: usize = 512;

/// Bytes of file contents kept in the cache (raw sizes; each entry's encodings come on top
/// and are smaller). Beyond, the least recently used contents are forgotten.
const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;

/// Files read into memory at once (each up to [`MAX_IN_MEMORY`]): a burst of requests for
/// the module must not buffer a megabyte per request.
const READS_IN_FLIGHT: usize = 8;

/// Files the warm-up looks at, at most, in each directory tree, and how deep it goes.
const WARM_MAX_FILES: usize = 512;
const WARM_MAX_DEPTH: usize = 8;

/// Brotli's sliding window (log2 bytes): the library's default, and what browsers expect.
const BROTLI_WINDOW: i32 = 22;

/// How the page's files are compressed. Whatever the level, every compressible file gets a
/// content-hash `ETag` and `304 Not Modified` when the browser's copy is current.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Sent as they are.
    Off,
    /// Brotli quality 4 and gzip level 6 (nginx's on-the-fly levels), each computed when a
    /// request first needs it: 40 to 70 ms for the 1 MB module in an optimized build, 0.3 s
    /// or more in a debug build (tests).
    Fast,
    /// Brotli quality 11 and gzip level 9, computed for every file of both directories when
    /// the server starts (in the background) and again when a file changes: the smallest
    /// transfers, for about 2 s of one core per megabyte of wasm, once per version.
    #[default]
    Best,
}

impl Compression {
    /// Brotli quality and gzip level, or `None` when off.
    fn levels(self) -> Option<(u32, u32)> {
        match self {
            Compression::Off => None,
            Compression::Fast => Some((4, 6)),
            Compression::Best => Some((11, 9)),
        }
    }
}

/// A content coding this server produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    Identity,
    Gzip,
    Brotli,
}

impl Coding {
    fn header_value(self) -> Option<HeaderValue> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some(HeaderValue::from_static("gzip")),
            Coding::Brotli => Some(HeaderValue::from_static("br")),
        }
    }
}

/// What went wrong serving one file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StaticError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Open { path: String, source: io::Error },
    /// Reading its body failed midway.
    #[error("cannot read the body of {path}: {source}")]
    Body { path: String, source: axum::Error },
    /// The task hashing it died.
    #[error("cannot hash {path}: {source}")]
    Hash { path: String, source: tokio::task::JoinError },
    /// The encoder failed or its task died.
    #[error("cannot compress {path} with {coding:?}: {source}")]
    Compress { path: String, coding: Coding, source: io::Error },
}

/// One version of a file's contents and its encodings.
struct Content {
    raw: Bytes,
    /// Hex of the first 16 bytes of the SHA-1 of `raw`.
    hash: String,
    brotli: OnceCell<Bytes>,
    gzip: OnceCell<Bytes>,
}

impl Content {
    fn new(raw: Bytes) -> Self {
        let digest = Sha1::digest(&raw);
        let hash = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self { raw, hash, brotli: OnceCell::new(), gzip: OnceCell::new() }
    }

    /// The strong validator of this content sent with `coding` at `levels`.
    fn etag(&self, coding: Coding, levels: Option<(u32, u32)>) -> HeaderValue {
        let tag = match (coding, levels) {
            (Coding::Brotli, Some((br, _))) => format!("\"{}-br{br}\"", self.hash),
            (Coding::Gzip, Some((_, gz))) => format!("\"{}-gz{gz}\"", self.hash),
            _ => format!("\"{}\"", self.hash),
        };
        // Hex digits, letters and quotes only: always a valid header value.
        HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }
}

/// Contents by hash, least recently used forgotten first.
#[derive(Default)]
struct Cache {
    entries: HashMap<String, (Arc<Content>, u64)>,
    bytes: usize,
    clock: u64,
}

impl Cache {
    /// The cached content equal to `content` (same hash), or `content`, now cached.
    fn intern(&mut self, content: Content) -> Arc<Content> {
        self.clock += 1;
        let clock = self.clock;
        if let Some((known, used)) = self.entries.get_mut(&content.hash) {
            *used = clock;
            return known.clone();
        }
        let content = Arc::new(content);
        self.bytes += content.raw.len();
        self.entries.insert(content.hash.clone(), (content.clone(), clock));
        self.evict(&content.hash);
        content
    }

    /// Forgets the least recently used contents (never `keep`) until under the budget.
    fn evict(&mut self, keep: &str) {
        while self.bytes > MAX_CACHED_BYTES {
            let oldest = self.entries.iter().filter(|(hash, _)| *hash != keep).min_by_key(|(_, (_, used))| *used);
            let Some(hash) = oldest.map(|(hash, _)| hash.clone()) else { return };
            if let Some((gone, _)) = self.entries.remove(&hash) {
                self.bytes -= gone.raw.len();
            }
        }
    }
}

/// A directory served with compression and content-hash validators.
pub(crate) struct StaticFiles {
    dir: ServeDir,
    root: PathBuf,
    /// Where the directory is mounted (`""` or `"/pkg"`), for logs.
    mount: &'static str,
    compression: Compression,
    cache: Mutex<Cache>,
    /// [`READS_IN_FLIGHT`] permits to read a file into memory.
    reads: Semaphore,
}

/// What [`ServeDir`] found for a request.
enum Found {
    /// A compressible file, read.
    Content { content: Arc<Content>, content_type: HeaderValue },
    /// Anything else (not found, redirect, a large or incompressible file): passed on.
    Other(Response),
}

impl StaticFiles {
    /// Serves `root` (mounted at `mount`) with `compression`.
    pub(crate) fn new(root: PathBuf, mount: &'static str, compression: Compression) -> Self {
        let dir = ServeDir::new(&root).append_index_html_on_directories(true);
        let (cache, reads) = (Mutex::new(Cache::default()), Semaphore::new(READS_IN_FLIGHT));
        Self { dir, root, mount, compression, cache, reads }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // Every critical section is a lookup or an insert: a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks [`ServeDir`] for `uri` (a plain GET: preconditions, ranges and codings are ours)
    /// and reads the file if it is one we compress.
    async fn find(&self, uri: &axum::http::Uri) -> Result<Found, StaticError> {
        let path = || format!("{}{}", self.mount, uri.path());
        let request = Request::builder().method(Method::GET).uri(uri.clone()).body(Body::empty());
        let Ok(request) = request else {
            return Ok(Found::Other(StatusCode::BAD_REQUEST.into_response()));
        };
        let response = match self.dir.clone().try_call(request).await {
            Ok(response) => response.map(Body::new),
            Err(err) if is_not_found(&err) => return Ok(Found::Other(StatusCode::NOT_FOUND.into_response())),
            Err(source) => return Err(StaticError::Open { path: path(), source }),
        };
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let content_type = match (response.status(), content_type, length) {
            (StatusCode::OK, Some(ct), Some(len)) if len <= MAX_IN_MEMORY && compressible(&ct) => ct,
            _ => return Ok(Found::Other(response)),
        };
        // Never closed, so `acquire` only waits; without a permit we would still be correct.
        let _permit = self.reads.acquire().await.ok();
        let raw = axum::body::to_bytes(response.into_body(), MAX_IN_MEMORY)
            .await
            .map_err(|source| StaticError::Body { path: path(), source })?;
        // SHA-1 of a megabyte is about a millisecond: off the async workers.
        let content = tokio::task::spawn_blocking(move || Content::new(raw))
            .await
            .map_err(|source| StaticError::Hash { path: path(), source })?;
        let content = self.cache().intern(content);
        Ok(Found::Content { content, content_type })
    }

    /// The coding to send `content` with, given the request's `Accept-Encoding`.
    fn coding_for(&self, content: &Content, accept: Option<&HeaderValue>) -> Coding {
        if self.negotiable(content) { negotiate(accept) } else { Coding::Identity }
    }

    /// Whether `content` has encodings besides identity (then the response varies).
    fn negotiable(&self, content: &Content) -> bool {
        self.compression != Compression::Off && content.raw.len() >= MIN_COMPRESS_BYTES
    }

    /// `content` encoded with `coding`, computed once (on a blocking thread) and kept.
    async fn encoded(&self, content: &Arc<Content>, coding: Coding, path: &str) -> Result<Bytes, StaticError> {
        let Some((br, gz)) = self.compression.levels() else { return Ok(content.raw.clone()) };
        let (cell, level) = match coding {
            Coding::Identity => return Ok(content.raw.clone()),
            Coding::Brotli => (&content.brotli, br),
            Coding::Gzip => (&content.gzip, gz),
        };
        let fail = |source| StaticError::Compress { path: path.to_string(), coding, source };
        let bytes = cell
            .get_or_try_init(|| async {
                let raw = content.raw.clone();
                let started = Instant::now();
                let task = tokio::task::spawn_blocking(move || compress(&raw, coding, level));
                let encoded = task.await.map_err(|err| fail(io::Error::other(err)))?.map_err(fail)?;
                tracing::debug!(
                    "{path}: {coding:?} level {level}, {} -> {} bytes in {:.1?}",
                    content.raw.len(),
                    encoded.len(),
                    started.elapsed()
                );
                Ok::<_, StaticError>(Bytes::from(encoded))
            })
            .await?;
        Ok(bytes.clone())
    }

    /// Answers a GET or HEAD for a file of this directory.
    async fn respond(&self, request: Request) -> Result<Response, StaticError> {
        let (parts, _) = request.into_parts();
        let head = match parts.method {
            Method::GET => false,
            Method::HEAD => true,
            _ => return Ok((StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response()),
        };
        let path = format!("{}{}", self.mount, parts.uri.path());
        let (content, content_type) = match self.find(&parts.uri).await? {
            Found::Content { content, content_type } => (content, content_type),
            Found::Other(response) => return Ok(pass_through(response, &parts.headers, head)),
        };
        let levels = self.compression.levels();
        let mut coding = self.coding_for(&content, parts.headers.get(header::ACCEPT_ENCODING));
        let vary = self.negotiable(&content);
        if none_match(parts.headers.get(header::IF_NONE_MATCH), &content.etag(coding, levels)) {
            return Ok(not_modified(content.etag(coding, levels), vary));
        }
        let body = match self.encoded(&content, coding, &path).await {
            Ok(body) => body,
            Err(err) => {
                tracing::warn!("{err}; sending {path} uncompressed");
                coding = Coding::Identity;
                content.raw.clone()
            }
        };
        let mut headers = validator_headers(content.etag(coding, levels), vary);
        headers.insert(header::CONTENT_TYPE, content_type);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if let Some(value) = coding.header_value() {
            headers.insert(header::CONTENT_ENCODING, value);
        }
        let body = if head { Body::empty() } else { Body::from(body) };
        Ok((StatusCode::OK, headers, body).into_response())
    }

    /// Reads and encodes every file of the directory at this level, in the background, so
    /// the first visitors do not wait for brotli's best level. Stops when `shutdown` turns.
    pub(crate) async fn warm(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let root = self.root.clone();
        let Ok(paths) = tokio::task::spawn_blocking(move || list_files(&root)).await else { return };
        let started = Instant::now();
        let (mut raw, mut br, mut gz) = (0, 0, 0);
        for path in paths {
            if *shutdown.borrow() {
                return;
            }
            let Ok(uri) = path.parse::<axum::http::Uri>() else { continue };
            let Ok(Found::Content { content, .. }) = self.find(&uri).await else { continue };
            if !self.negotiable(&content) {
                continue;
            }
            let full = format!("{}{path}", self.mount);
            raw += content.raw.len();
            br += self.encoded(&content, Coding::Brotli, &full).await.map_or(0, |b| b.len());
            gz += self.encoded(&content, Coding::Gzip, &full).await.map_or(0, |b| b.len());
        }
        tracing::info!(
            "{}/: compressed {raw} bytes to {br} (brotli) and {gz} (gzip) in {:.1?}",
            self.mount,
            started.elapsed()
        );
    }
}

/// The axum handler of a [`StaticFiles`] directory.
pub(crate) async fn serve(State(files): State<Arc<StaticFiles>>, request: Request) -> Response {
    files.respond(request).await.unwrap_or_else(|err| {
        tracing::warn!("{err}");
        (StatusCode::INTERNAL_SERVER_ERROR, "cannot read this file").into_response()
    })
}

/// `ETag`, `Cache-Control: no-cache` and, when the response varies, `Vary`.
fn validator_headers(etag: HeaderValue, vary: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if vary {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    headers
}

fn not_modified(etag: HeaderValue, vary: bool) -> Response {
    (StatusCode::NOT_MODIFIED, validator_headers(etag, vary)).into_response()
}

/// [`ServeDir`]'s own response, with our `If-None-Match` check against its `ETag`, no
/// `Accept-Ranges` (we ignore ranges) and no body for HEAD.
fn pass_through(response: Response, request: &HeaderMap, head: bool) -> Response {
    let etag = response.headers().get(header::ETAG).cloned();
    if response.status() == StatusCode::OK
        && let Some(etag) = etag.filter(|etag| none_match(request.get(header::IF_NONE_MATCH), etag))
    {
        return not_modified(etag, false);
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::ACCEPT_RANGES);
    Response::from_parts(parts, if head { Body::empty() } else { body })
}

/// Whether [`ServeDir`] would answer `err` with 404 (as its `Service` impl does): a missing
/// file, one it may not read, or a path through something that is not a directory.
fn is_not_found(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::NotADirectory)
}

/// Whether a response of this `Content-Type` is worth compressing.
fn compressible(content_type: &HeaderValue) -> bool {
    let Ok(value) = content_type.to_str() else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/wasm" | "application/javascript" | "application/json" | "application/xml"
        )
}

/// The coding to use for an `Accept-Encoding` header (RFC 9110 §12.5.3): the acceptable one
/// (q > 0) with the highest weight, brotli before gzip on a tie; identity when neither is
/// acceptable or the header is absent.
fn negotiate(accept: Option<&HeaderValue>) -> Coding {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else { return Coding::Identity };
    let (mut brotli, mut gzip, mut any) = (None, None, None);
    for item in accept.split(',') {
        let mut fields = item.split(';');
        let name = fields.next().unwrap_or_default().trim().to_ascii_lowercase();
        let weight = fields
            .find_map(|p| p.trim().strip_prefix("q=").map(str::trim))
            .map_or(Some(1.0), |q| q.parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)));
        let Some(weight) = weight else { continue };
        match name.as_str() {
            "br" => brotli = Some(weight),
            "gzip" | "x-gzip" => gzip = Some(weight),
            "*" => any = Some(weight),
            _ => {}
        }
    }
    let brotli = brotli.or(any).unwrap_or(0.0);
    let gzip = gzip.or(any).unwrap_or(0.0);
    match (brotli > 0.0, gzip > 0.0) {
        (true, _) if brotli >= gzip => Coding::Brotli,
        (_, true) => Coding::Gzip,
        _ => Coding::Identity,
    }
}

/// Whether `If-None-Match` lists `etag` (weak comparison, RFC 9110 §13.1.2) or is `*`.
fn none_match(if_none_match: Option<&HeaderValue>, etag: &HeaderValue) -> bool {
    let Some(value) = if_none_match else { return false };
    let value = value.as_bytes();
    if value.iter().all(|b| b.is_ascii_whitespace() || *b == b'*') && value.contains(&b'*') {
        return true;
    }
    let ours = etag.as_bytes().strip_prefix(b"W/").unwrap_or(etag.as_bytes());
    let mut rest = value;
    loop {
        rest = trim_start(rest, |b| b.is_ascii_whitespace() || b == b',');
        if rest.is_empty() {
            return false;
        }
        rest = rest.strip_prefix(b"W/").unwrap_or(rest);
        // An entity tag is a quoted string without inner quotes; anything else ends the list.
        let Some(inner) = rest.strip_prefix(b"\"") else { return false };
        let Some(end) = inner.iter().position(|b| *b == b'"') else { return false };
        if &rest[..end + 2] == ours {
            return true;
        }
        rest = &inner[end + 1..];
    }
}

fn trim_start(bytes: &[u8], skip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|b| !skip(*b)).unwrap_or(bytes.len());
    &bytes[start..]
}

/// `raw` encoded with `coding` at `level`.
fn compress(raw: &[u8], coding: Coding, level: u32) -> io::Result<Vec<u8>> {
    match coding {
        Coding::Identity => Ok(raw.to_vec()),
        Coding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: i32::try_from(level).unwrap_or(11),
                lgwin: BROTLI_WINDOW,
                size_hint: raw.len(),
                ..Default::default()
            };
            let mut out = Vec::with_capacity(raw.len() / 3);
            brotli::BrotliCompress(&mut &raw[..], &mut out, &params)?;
            Ok(out)
        }
        Coding::Gzip => {
            let out = Vec::with_capacity(raw.len() / 3);
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            encoder.write_all(raw)?;
            encoder.finish()
        }
    }
}

/// URL paths (`/a/b.js`) of the files under `root`, at most [`WARM_MAX_FILES`] down to
/// [`WARM_MAX_DEPTH`] levels, skipping hidden files and names that would need escaping.
fn list_files(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new(), 0)];
    'walk: while let Some((dir, prefix, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if found.len() >= WARM_MAX_FILES {
                break 'walk;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| plain_name(n)) else { continue };
            let url = format!("{prefix}/{name}");
            match std::fs::metadata(entry.path()) {
                Ok(meta) if meta.is_dir() && depth < WARM_MAX_DEPTH => pending.push((entry.path(), url, depth + 1)),
                Ok(meta) if meta.is_file() => found.push(url),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

/// A file name that is its own URL segment and not hidden.
fn plain_name(name: &str) -> bool {
    !name.starts_with('.') && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn negotiation_follows_the_weights() {
        let cases = [
            (None, Coding::Identity),
            (Some(""), Coding::Identity),
            (Some("identity"), Coding::Identity),
            (Some("gzip, deflate, br, zstd"), Coding::Brotli),
            (Some("gzip"), Coding::Gzip),
            (Some("x-gzip"), Coding::Gzip),
            (Some("GZIP, BR"), Coding::Brotli),
            (Some("br;q=0, gzip"), Coding::Gzip),
            (Some("br;q=0.5, gzip;q=0.8"), Coding::Gzip),
            (Some("br;q=0.8, gzip;q=0.8"), Coding::Brotli),
            (Some("br; q=0 , gzip ; q=0"), Coding::Identity),
            (Some("*"), Coding::Brotli),
            (Some("*;q=0"), Coding::Identity),
            (Some("br;q=0, *"), Coding::Gzip),
            (Some("br;q=nonsense, gzip"), Coding::Gzip),
            (Some("deflate, zstd"), Coding::Identity),
        ];
        for (accept, expected) in cases {
            let header = accept.map(value);
            assert_eq!(negotiate(header.as_ref()), expected, "Accept-Encoding: {accept:?}");
        }
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let etag = value("\"abc-br11\"");
        let cases = [
            (None, false),
            (Some("\"abc-br11\""), true),
            (Some("W/\"abc-br11\""), true),
            (Some("\"x\", \"abc-br11\""), true),
            (Some("\"x\",W/\"abc-br11\""), true),
            (Some("*"), true),
            (Some("\"abc\""), false),
            (Some("\"abc-br11"), false),
            (Some("abc-br11"), false),
            (Some("\"abc-br1\", \"bc-br11\""), false),
            (Some("\"a,b\", \"abc-br11\""), true),
        ];
        for (header, expected) in cases {
            let header = header.map(value);
            assert_eq!(none_match(header.as_ref(), &etag), expected, "If-None-Match: {header:?}");
        }
    }

    #[test]
    fn text_wasm_and_json_are_compressible_images_are_not() {
        for yes in
            ["text/html", "text/javascript; charset=utf-8", "application/wasm", "image/svg+xml", "application/json"]
        {
            assert!(compressible(&HeaderValue::from_static(yes)), "{yes}");
        }
        for no in ["image/png", "font/woff2", "application/octet-stream", "video/mp4"] {
            assert!(!compressible(&HeaderValue::from_static(no)), "{no}");
        }
    }

    #[test]
    fn etags_differ_per_coding_and_content() {
        let a = Content::new(Bytes::from_static(b"one"));
        let b = Content::new(Bytes::from_static(b"two"));
        let levels = Compression::Best.levels();
        let tags = [
            a.etag(Coding::Identity, levels),
            a.etag(Coding::Brotli, levels),
            a.etag(Coding::Gzip, levels),
            a.etag(Coding::Brotli, Compression::Fast.levels()),
            b.etag(Coding::Identity, levels),
        ];
        for (i, x) in tags.iter().enumerate() {
            assert!(x.as_bytes().starts_with(b"\"") && x.as_bytes().ends_with(b"\""), "{x:?} is a strong tag");
            for y in &tags[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn encodings_decode_to_the_input() {
        let raw: Vec<u8> = (0..20_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let br = compress(&raw, Coding::Brotli, 5).expect("brotli");
        let mut decoded = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut decoded).expect("brotli decodes");
        assert_eq!(decoded, raw);
        assert!(br.len() < raw.len() / 4, "brotli compresses: {} of {}", br.len(), raw.len());
        let gz = compress(&raw, Coding::Gzip, 6).expect("gzip");
        let mut decoded = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut decoded).expect("gzip decodes");
        assert_eq!(decoded, raw);
    }

    #[test]
    fn the_cache_keeps_one_copy_per_content_and_a_bounded_total() {
        let mut cache = Cache::default();
        let a1 = cache.intern(Content::new(Bytes::from_static(b"same")));
        let a2 = cache.intern(Content::new(Bytes::from_static(b"same")));
        assert!(Arc::ptr_eq(&a1, &a2), "equal contents share one entry");
        let chunk = MAX_CACHED_BYTES / 4 + 1;
        for i in 0..8u8 {
            cache.intern(Content::new(Bytes::from(vec![i; chunk])));
            assert!(cache.bytes <= MAX_CACHED_BYTES, "{} bytes cached", cache.bytes);
        }
        // Three chunks fit in the budget, four do not.
        assert_eq!(cache.entries.len(), 3);
        assert!(!cache.entries.contains_key(&a1.hash), "the least recently used went first");
    }

    #[test]
    fn warm_up_lists_plain_files_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("snippets/x")).expect("mkdir");
        for name in ["index.html", ".stamp", "with space.js", "snippets/x/inline0.js"] {
            std::fs::write(root.join(name), "x").expect("write");
        }
        assert_eq!(list_files(root), ["/index.html", "/snippets/x/inline0.js"]);
    }
}
