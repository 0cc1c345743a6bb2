//! A returning visitor revalidates each file (`no-cache` + a content-hash ETag) and gets
//! `304 Not Modified` without a body while the file is unchanged, and the new file as soon as
//! it changed, whatever its size and modification time.

mod support;

use std::time::SystemTime;

use past_signaling::Compression;
use support::{BROWSER, GLUE, IMAGE, PAGE, Reply, Site, TINY, WASM, module};

/// A first request, then the same with `If-None-Match` set to the tag it got.
async fn twice(site: &Site, path: &str, accept: &str) -> (Reply, Reply) {
    let first = site.get(path, &[("Accept-Encoding", accept)]).await;
    let etag = first.header("etag").unwrap_or_else(|| panic!("{path} has no ETag"));
    let again = site.get(path, &[("Accept-Encoding", accept), ("If-None-Match", &etag)]).await;
    (first, again)
}

#[tokio::test]
async fn a_conditional_request_gets_304_without_a_body() {
    let site = Site::start(Compression::Fast).await;
    for (path, accept) in
        [(WASM, BROWSER), (WASM, "gzip"), (WASM, ""), (GLUE, BROWSER), (TINY, BROWSER), (IMAGE, BROWSER)]
    {
        let (first, again) = twice(&site, path, accept).await;
        assert_eq!(first.status, 200, "{path} {accept}");
        assert_eq!(first.header("cache-control").as_deref(), Some("no-cache"), "{path}: revalidate every visit");
        let etag = first.header("etag").unwrap_or_default();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{path}: a strong tag, got {etag}");
        assert_eq!(again.status, 304, "{path} {accept}");
        assert!(again.body.is_empty(), "{path}: {} body bytes in a 304", again.body.len());
        assert_eq!(again.header("etag"), first.header("etag"), "{path}");
        assert_eq!(again.header("cache-control").as_deref(), Some("no-cache"), "{path}");
        assert_eq!(again.varies_on_encoding(), first.varies_on_encoding(), "{path}: a 304 says what a 200 says");
    }
}

#[tokio::test]
async fn each_coding_has_its_own_validator() {
    let site = Site::start(Compression::Fast).await;
    let mut tags = Vec::new();
    for accept in [BROWSER, "gzip", ""] {
        let reply = site.get(WASM, &[("Accept-Encoding", accept)]).await;
        tags.push(reply.header("etag").expect("an ETag"));
    }
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[0], tags[2]);
    assert_ne!(tags[1], tags[2]);
    // A brotli copy does not validate a gzip request: the client gets the gzip body.
    let reply = site.get(WASM, &[("Accept-Encoding", "gzip"), ("If-None-Match", &tags[0])]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding").as_deref(), Some("gzip"));
    // Any of several listed tags matches, weak or not.
    let several = format!("\"other\", W/{}", tags[1]);
    let reply = site.get(WASM, &[("Accept-Encoding", "gzip"), ("If-None-Match", &several)]).await;
    assert_eq!(reply.status, 304);
}

#[tokio::test]
async fn a_changed_file_gets_a_new_validator_even_with_the_same_size_and_time() {
    let site = Site::start(Compression::Fast).await;
    for path in [WASM, PAGE] {
        let file = site.file(path);
        let (first, _) = twice(&site, path, BROWSER).await;
        let old_tag = first.header("etag").expect("an ETag");
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).expect("mtime");

        // A redeploy that keeps the size and the modification time: one byte differs.
        let mut bytes = site.bytes(path);
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        std::fs::write(&file, &bytes).expect("rewrite");
        set_modified(&file, modified);

        let reply = site.get(path, &[("Accept-Encoding", BROWSER), ("If-None-Match", &old_tag)]).await;
        assert_eq!(reply.status, 200, "{path}: the old copy is stale");
        assert_ne!(reply.header("etag").as_deref(), Some(old_tag.as_str()), "{path}");
        assert_eq!(reply.decoded(), bytes, "{path}: the new contents");
        let new_tag = reply.header("etag").expect("an ETag");
        let again = site.get(path, &[("Accept-Encoding", BROWSER), ("If-None-Match", &new_tag)]).await;
        assert_eq!(again.status, 304, "{path}: the new tag validates");
    }
}

#[tokio::test]
async fn a_rebuilt_module_of_another_size_is_served_at_once() {
    let site = Site::start(Compression::Fast).await;
    let (first, _) = twice(&site, WASM, BROWSER).await;
    let old_tag = first.header("etag").expect("an ETag");
    let rebuilt = module(120_000);
    std::fs::write(site.file(WASM), &rebuilt).expect("rewrite");
    let reply = site.get(WASM, &[("Accept-Encoding", BROWSER), ("If-None-Match", &old_tag)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.decoded(), rebuilt);
}

#[tokio::test]
async fn a_second_visit_downloads_no_body() {
    let site = Site::start(Compression::Fast).await;
    let visit = [PAGE, TINY, GLUE, WASM, IMAGE];
    let mut tags = Vec::new();
    let (mut first_bytes, mut second_bytes, mut raw_bytes) = (0, 0, 0);
    for path in visit {
        let reply = site.get(path, &[("Accept-Encoding", BROWSER)]).await;
        assert_eq!(reply.status, 200, "{path}");
        first_bytes += reply.wire_bytes;
        raw_bytes += site.bytes(path).len();
        tags.push(reply.header("etag").expect("an ETag"));
    }
    for (path, tag) in visit.iter().zip(&tags) {
        let reply = site.get(path, &[("Accept-Encoding", BROWSER), ("If-None-Match", tag)]).await;
        assert_eq!(reply.status, 304, "{path}");
        second_bytes += reply.wire_bytes;
    }
    println!("files {raw_bytes} bytes; first visit {first_bytes} bytes on the wire, second {second_bytes}");
    assert!(first_bytes < raw_bytes / 2, "compressed first visit: {first_bytes} of {raw_bytes}");
    assert!(second_bytes < 300 * visit.len(), "headers only: {second_bytes} bytes");
}

/// Sets a file's modification time back (a deploy that preserves times).
fn set_modified(path: &std::path::Path, time: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).expect("open");
    file.set_modified(time).expect("set mtime");
    let now = std::fs::metadata(path).and_then(|m| m.modified()).expect("mtime");
    assert_eq!(now, time, "the test needs the old modification time");
}
