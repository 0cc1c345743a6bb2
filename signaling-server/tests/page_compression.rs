//! The page, its JS and the wasm module go out compressed as the client's Accept-Encoding
//! allows; small and incompressible files, /health and /ws go out as they are.

mod support;

use futures::StreamExt as _;
use past_signaling::{Compression, MIN_COMPRESS_BYTES};
use past_signaling_proto::ServerMessage;
use support::{BROWSER, GLUE, IMAGE, PAGE, Site, TINY, WASM, request};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[tokio::test]
async fn brotli_when_the_browser_accepts_it() {
    let site = Site::start(Compression::Fast).await;
    for path in [WASM, GLUE, PAGE] {
        let reply = site.get(path, &[("Accept-Encoding", BROWSER)]).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-encoding").as_deref(), Some("br"), "{path}");
        assert!(reply.varies_on_encoding(), "{path}: Vary: {:?}", reply.header("vary"));
        let file = site.bytes(path);
        assert_eq!(reply.decoded(), file, "{path} decodes to the file");
        assert!(reply.body.len() * 2 < file.len(), "{path}: {} bytes sent for {}", reply.body.len(), file.len());
        assert_eq!(reply.header("content-length"), Some(reply.body.len().to_string()), "{path}");
    }
    let wasm = site.get(WASM, &[("Accept-Encoding", BROWSER)]).await;
    assert_eq!(wasm.header("content-type").as_deref(), Some("application/wasm"), "instantiateStreaming needs it");
}

#[tokio::test]
async fn gzip_when_only_gzip_is_accepted() {
    let site = Site::start(Compression::Fast).await;
    for accept in ["gzip", "br;q=0, gzip", "gzip;q=1, br;q=0.5", "deflate, x-gzip"] {
        let reply = site.get(WASM, &[("Accept-Encoding", accept)]).await;
        assert_eq!(reply.status, 200, "{accept}");
        assert_eq!(reply.header("content-encoding").as_deref(), Some("gzip"), "Accept-Encoding: {accept}");
        assert!(reply.varies_on_encoding(), "{accept}");
        assert_eq!(reply.decoded(), site.bytes(WASM), "{accept}");
        assert!(reply.body.len() * 2 < site.bytes(WASM).len(), "{accept}: {} bytes", reply.body.len());
    }
}

#[tokio::test]
async fn identity_when_nothing_is_accepted() {
    let site = Site::start(Compression::Fast).await;
    let none: &[(&str, &str)] = &[];
    for headers in [none, &[("Accept-Encoding", "identity")], &[("Accept-Encoding", "br;q=0, gzip;q=0, deflate")]] {
        let reply = site.get(WASM, headers).await;
        assert_eq!(reply.status, 200, "{headers:?}");
        assert_eq!(reply.header("content-encoding"), None, "{headers:?}");
        assert!(reply.varies_on_encoding(), "an identity response of a negotiable file varies too: {headers:?}");
        assert_eq!(reply.body, site.bytes(WASM), "{headers:?}");
    }
}

#[tokio::test]
async fn compression_off_sends_files_as_they_are() {
    let site = Site::start(Compression::Off).await;
    let reply = site.get(WASM, &[("Accept-Encoding", BROWSER)]).await;
    assert_eq!(reply.header("content-encoding"), None);
    assert!(!reply.varies_on_encoding());
    assert_eq!(reply.body, site.bytes(WASM));
    assert!(reply.header("etag").is_some(), "still validated");
}

#[tokio::test]
async fn tiny_and_incompressible_files_go_out_as_they_are() {
    let site = Site::start(Compression::Fast).await;
    assert!(site.bytes(TINY).len() < MIN_COMPRESS_BYTES);
    for path in [TINY, IMAGE] {
        let reply = site.get(path, &[("Accept-Encoding", BROWSER)]).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-encoding"), None, "{path}");
        assert!(!reply.varies_on_encoding(), "{path}: nothing to vary");
        assert_eq!(reply.body, site.bytes(path), "{path}");
        assert!(reply.header("etag").is_some(), "{path} has a validator");
    }
}

#[tokio::test]
async fn head_sends_the_headers_of_get_without_a_body() {
    let site = Site::start(Compression::Fast).await;
    let accept = [("Accept-Encoding", BROWSER)];
    let get = site.get(WASM, &accept).await;
    let head = request(site.server.local_addr(), "HEAD", WASM, &accept).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "{} body bytes", head.body.len());
    for name in ["content-encoding", "content-length", "etag", "vary", "content-type"] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    let post = request(site.server.local_addr(), "POST", WASM, &accept).await;
    assert_eq!(post.status, 405);
}

#[tokio::test]
async fn health_and_the_websocket_are_not_compressed() {
    let site = Site::start(Compression::Fast).await;
    let health = site.get("/health", &[("Accept-Encoding", BROWSER)]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-encoding"), None);
    assert!(String::from_utf8_lossy(&health.body).contains("\"status\":\"ok\""));

    let mut ws_request = site.server.ws_url().into_client_request().expect("a ws request");
    ws_request.headers_mut().insert("accept-encoding", BROWSER.parse().expect("header value"));
    let (mut ws, response) = tokio_tungstenite::connect_async(ws_request).await.expect("websocket connects");
    assert_eq!(response.status(), 101);
    assert!(response.headers().get("content-encoding").is_none());
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("a challenge in time")
        .expect("open")
        .expect("no error");
    let text = frame.into_text().expect("a text frame");
    assert!(matches!(ServerMessage::from_json(text.as_str()), Ok(ServerMessage::Challenge { .. })), "{text}");
}
