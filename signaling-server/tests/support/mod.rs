//! What the page-delivery tests share: a server over a temporary page and wasm package, and
//! a raw HTTP/1.1 client that shows the bytes as they go over the wire (no decoding).

// Each test file uses a part of this module.
#![allow(dead_code)]

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use past_signaling::{Compression, Config, ServerHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

/// Paths of the test page, as the browser asks for them.
pub(crate) const PAGE: &str = "/";
pub(crate) const GLUE: &str = "/pkg/module.js";
pub(crate) const WASM: &str = "/pkg/module_bg.wasm";
pub(crate) const TINY: &str = "/tiny.css";
pub(crate) const IMAGE: &str = "/logo.png";

/// Browsers' Accept-Encoding (Chromium 14x).
pub(crate) const BROWSER: &str = "gzip, deflate, br, zstd";

/// A server over a temporary `web/` and `pkg/`.
pub(crate) struct Site {
    pub(crate) server: ServerHandle,
    pub(crate) web: PathBuf,
    pub(crate) pkg: PathBuf,
    _dir: tempfile::TempDir,
}

impl Site {
    /// Writes the test page and starts a server over it with `compression`.
    pub(crate) async fn start(compression: Compression) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let (web, pkg) = (dir.path().join("web"), dir.path().join("pkg"));
        for d in [&web, &pkg] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        write(&web.join("index.html"), &text("<p>page</p>", 4_000));
        write(&web.join("tiny.css"), b"body { margin: 0 }\n");
        write(&web.join("logo.png"), &noise(3_000));
        write(&pkg.join("module.js"), &text("export function f() { return 1; }", 30_000));
        write(&pkg.join("module_bg.wasm"), &module(300_000));
        let config = Config {
            web_dir: Some(web.clone()),
            pkg_dir: Some(pkg.clone()),
            compression,
            ..Config::loopback_ephemeral()
        };
        let server = ServerHandle::spawn(config).await.expect("server starts");
        Site { server, web, pkg, _dir: dir }
    }

    /// A GET of `path` with `headers`.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(self.server.local_addr(), "GET", path, headers).await
    }

    /// The file behind a URL path of the page.
    pub(crate) fn file(&self, path: &str) -> PathBuf {
        match path.strip_prefix("/pkg/") {
            Some(rest) => self.pkg.join(rest),
            None if path == "/" => self.web.join("index.html"),
            None => self.web.join(path.trim_start_matches('/')),
        }
    }

    /// The bytes of that file.
    pub(crate) fn bytes(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.file(path)).expect("read the served file")
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write a test file");
}

/// `line` repeated with a counter, about `len` bytes: compresses well, like source text.
pub(crate) fn text(line: &str, len: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < len {
        out.push_str(&format!("{line} // {i}\n"));
        i += 1;
    }
    out.into_bytes()
}

/// Pseudo-random bytes (xorshift): do not compress, like an image.
pub(crate) fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// A wasm-like module: the magic number, then 16-byte "instructions" from a small vocabulary,
/// each with two random "operand" bytes (compresses to a fraction, like real code).
pub(crate) fn module(len: usize) -> Vec<u8> {
    let vocabulary = noise(64 * 16);
    let picks = noise(len / 18 + 1);
    let operands = noise(2 * picks.len() + 7);
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    for (i, pick) in picks.iter().enumerate() {
        let word = usize::from(pick % 64) * 16;
        out.extend_from_slice(&vocabulary[word..word + 16]);
        out.extend_from_slice(&operands[2 * i + 7..2 * i + 9]);
    }
    out.truncate(len);
    out
}

/// A response as it came over the wire.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// Header names in lower case, in order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Everything the server sent: status line, headers and body.
    pub(crate) wire_bytes: usize,
}

impl Reply {
    /// All values of header `name`, joined with ", ".
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> =
            self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// Whether `Vary` names Accept-Encoding.
    pub(crate) fn varies_on_encoding(&self) -> bool {
        self.header("vary").is_some_and(|v| v.split(',').any(|f| f.trim().eq_ignore_ascii_case("accept-encoding")))
    }

    /// The body with its Content-Encoding undone.
    pub(crate) fn decoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.header("content-encoding").as_deref() {
            None => out.clone_from(&self.body),
            Some("br") => {
                brotli::BrotliDecompress(&mut &self.body[..], &mut out).expect("a valid brotli stream");
            }
            Some("gzip") => {
                flate2::read::GzDecoder::new(&self.body[..]).read_to_end(&mut out).expect("a valid gzip stream");
            }
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
        out
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the response to
/// the end.
pub(crate) async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw)).await.expect("response within the bound").expect("read");
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete header section");
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII headers");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let reply = Reply { status, headers, body: raw[end + 4..].to_vec(), wire_bytes: raw.len() };
    assert_ne!(reply.header("transfer-encoding").as_deref(), Some("chunked"), "bodies have a length");
    reply
}
