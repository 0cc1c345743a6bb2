//! Only pages of the server's own origin may open signaling sockets (before the fix any web
//! page could, e.g. `Origin: http://evil.example`), plus the origins the operator lists;
//! clients without an `Origin` header (native nodes, scripts) always may.

mod hostile;

use hostile::{HONEST, TestServer, refused_status, small_config, ws_from};
use past_signaling::Config;
use tokio_tungstenite::tungstenite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_are_refused_with_403() {
    let server = TestServer::start(small_config());
    let addr = server.addr();
    let own = format!("http://{addr}");

    assert_eq!(refused_status(&ws_from(HONEST, addr, None).await), None, "no Origin: a native node");
    assert_eq!(refused_status(&ws_from(HONEST, addr, Some(&own)).await), None, "the server's own page");
    match ws_from(HONEST, addr, Some("http://evil.example")).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("http://evil.example") && body.contains("--allowed-origin"), "{body}");
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let other_port = format!("http://127.0.0.1:{}", addr.port() + 1);
    assert_eq!(refused_status(&ws_from(HONEST, addr, Some(&other_port)).await), Some(403), "another port");
    assert_eq!(refused_status(&ws_from(HONEST, addr, Some("null")).await), Some(403), "a sandboxed page");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_origins_and_the_wildcard_are_allowed() {
    let listed = TestServer::start(Config { allowed_origins: vec!["https://past.example".into()], ..small_config() });
    assert_eq!(refused_status(&ws_from(HONEST, listed.addr(), Some("https://past.example")).await), None);
    assert_eq!(refused_status(&ws_from(HONEST, listed.addr(), Some("http://evil.example")).await), Some(403));
    listed.stop();

    let any = TestServer::start(Config { allowed_origins: vec!["*".into()], ..small_config() });
    assert_eq!(refused_status(&ws_from(HONEST, any.addr(), Some("http://evil.example")).await), None);
    any.stop();
}
