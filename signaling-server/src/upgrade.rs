//! The WebSocket handshake (RFC 6455, section 4.2) on hyper's upgrade: the server checks the
//! request, answers `101 Switching Protocols`, and runs tokio-tungstenite over the upgraded
//! connection. Done here rather than with axum's extractor so the server owns the
//! tungstenite configuration and sees tungstenite's own errors (to close with 1007 or 1009).

use axum::body::Body;
use axum::http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The upgraded connection: the TCP stream itself (taken back from hyper).
pub(crate) type Socket = WebSocketStream<TcpStream>;

/// A checked handshake, ready to answer.
pub(crate) struct Handshake {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

fn header_has_token(headers: &HeaderMap, name: axum::http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl Handshake {
    /// Checks that `request` is a WebSocket handshake (HTTP/1.1 GET with `Connection:
    /// Upgrade`, `Upgrade: websocket`, version 13 and a key) on an upgradable connection;
    /// else why not.
    pub(crate) fn check(request: &mut Request<Body>) -> Result<Self, &'static str> {
        if request.method() != Method::GET {
            return Err("a WebSocket handshake is a GET");
        }
        let headers = request.headers();
        if !header_has_token(headers, CONNECTION, "upgrade") || !header_has_token(headers, UPGRADE, "websocket") {
            return Err("not a WebSocket handshake (Connection: Upgrade and Upgrade: websocket expected)");
        }
        if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
            return Err("unsupported WebSocket version (13 expected)");
        }
        let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else { return Err("no Sec-WebSocket-Key") };
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| "bad Sec-WebSocket-Key")?;
        let on_upgrade = request.extensions_mut().remove::<OnUpgrade>().ok_or("this connection cannot be upgraded")?;
        Ok(Self { accept, on_upgrade })
    }

    /// The `101` response, and the future of the upgraded connection (it resolves once the
    /// response went out). `send_buffer`: the kernel's send buffer of the socket, in bytes
    /// (0: the kernel's default, which grows to megabytes for a client that does not read).
    pub(crate) fn accept(
        self,
        config: WebSocketConfig,
        send_buffer: usize,
    ) -> (Response<Body>, impl Future<Output = std::io::Result<Socket>> + Send + 'static) {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(SEC_WEBSOCKET_ACCEPT, self.accept);
        let on_upgrade = self.on_upgrade;
        let socket = async move {
            let upgraded = on_upgrade.await.map_err(std::io::Error::other)?;
            let parts = upgraded
                .downcast::<TokioIo<TcpStream>>()
                .map_err(|_| std::io::Error::other("the upgraded connection is not a TCP stream"))?;
            let stream = parts.io.into_inner();
            if send_buffer > 0 {
                socket2::SockRef::from(&stream).set_send_buffer_size(send_buffer)?;
            }
            // Bytes the client sent right behind its handshake, already read by hyper.
            let early = parts.read_buf.to_vec();
            Ok(WebSocketStream::from_partially_read(stream, early, Role::Server, Some(config)).await)
        };
        (response, socket)
    }
}
