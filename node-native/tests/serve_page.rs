//! `past-node serve --serve-page`: one process is a complete home peer. Run as a child on port
//! 0 with a small page and package, it prints the page's address, serves `/` and `/pkg/`, and
//! a library node joins it through its own signaling server (each in the other's leaf set);
//! a share link made by the serve names that page; on SIGTERM the node leaves (the other's
//! leaf set drops it), the server stops and the process exits 0. Missing page directories
//! are a usage error (exit 1) naming the directory and the command that builds the package.

mod common;

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{BIN, ChildLines, spawn_node, wait_until};
use past_node::{NodeConfig, NodeEvent, NodeHandle};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::Command;

/// The page's marker, in `index.html`.
const PAGE: &str = "<!doctype html><title>PAST</title><p>serve-page test page</p>";
/// The package's marker, in `pkg/past_node_wasm.js`.
const GLUE: &str = "export const servePageTest = 42;";

/// A plain HTTP/1.1 `GET path` on `addr`: the status line, the headers and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("the server accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("response read");
    let response = String::from_utf8(response).expect("a text response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers and a body");
    (head.to_string(), body.to_string())
}

/// The next line the serve printed.
async fn next_line(stdout: &mut ChildLines) -> String {
    tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("the serve prints in time")
        .expect("stdout readable")
        .expect("a line")
}

/// The serve's status through its control socket (`past-node status --json`).
async fn serve_status(store: &Path) -> Value {
    let output = Command::new(BIN)
        .args(["status", "--json", "--store"])
        .arg(store)
        .output()
        .await
        .expect("past-node status runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    serde_json::from_str(stdout.lines().last().expect("a line")).expect("JSON")
}

/// Whether `node` has joined with `id` in its leaf set.
async fn has_leaf(node: &NodeHandle, id: &str) -> bool {
    node.status().await.is_some_and(|s| s.joined && s.leaf_set.iter().any(|l| l == id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_the_page_and_a_node_joins_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let web = dir.path().join("web");
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&web).expect("web dir");
    std::fs::create_dir_all(&pkg).expect("pkg dir");
    std::fs::write(web.join("index.html"), PAGE).expect("the page");
    std::fs::write(pkg.join("past_node_wasm.js"), GLUE).expect("the glue");
    let store = dir.path().join("served");
    let args = [OsStr::new("serve"), "--serve-page".as_ref(), "127.0.0.1:0".as_ref(), "--store".as_ref()];
    let args = args.into_iter().chain([store.as_os_str(), "--web-dir".as_ref(), web.as_os_str()]);
    let args = args.chain(["--pkg-dir".as_ref(), pkg.as_os_str()]);
    let (mut child, mut stdout) = spawn_node(args, &dir.path().join("serve.log"));

    // `serving the page at http://127.0.0.1:PORT/`, then `serving as ID (store DIR)`.
    let line = next_line(&mut stdout).await;
    let page = line.strip_prefix("serving the page at ").unwrap_or_else(|| panic!("the page's line: {line}"));
    let addr: SocketAddr =
        page.strip_prefix("http://").and_then(|a| a.strip_suffix('/')).and_then(|a| a.parse().ok()).expect(page);
    assert_ne!(addr.port(), 0, "the port chosen is printed");
    let line = next_line(&mut stdout).await;
    let serve_id = line
        .strip_prefix("serving as ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the node's line: {line}"))
        .to_string();

    // The page and the package.
    let (head, body) = get(addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, PAGE);
    let (head, body) = get(addr, "/pkg/past_node_wasm.js").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("javascript"), "{head}");
    assert_eq!(body, GLUE);

    // A library node joins through the serve's server: each ends up in the other's leaf set.
    let (node, mut events) =
        past_node::start(NodeConfig::new(format!("ws://{addr}/ws"))).await.expect("the library node starts");
    tokio::spawn(async move { while events.recv().await.is_some_and(|e| e != NodeEvent::Closed) {} });
    let node_id = node.id().as_str().to_string();
    wait_until(
        "the serve and the library node to see each other",
        Duration::from_secs(30),
        async || {
            has_leaf(&node, &serve_id).await
                && serve_status(&store).await["leaf_set"]
                    .as_array()
                    .is_some_and(|leaves| leaves.iter().any(|l| l.as_str() == Some(&node_id)))
        },
        async || format!("library node: {:?}\nserve: {}", node.status().await, serve_status(&store).await),
    )
    .await;

    // A share link the serve makes names its own page.
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, b"hello from the home peer").expect("a file");
    let output = Command::new(BIN)
        .args(["insert", "--k", "2", "--json", "--store"])
        .arg(&store)
        .arg(&file)
        .output()
        .await
        .expect("past-node insert runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let inserted: Value = serde_json::from_str(stdout.lines().last().expect("a line")).expect("JSON");
    let link = inserted["link"].as_str().unwrap_or_else(|| panic!("a link: {inserted}"));
    assert!(link.starts_with(&format!("{page}#")), "{link} names {page}");

    // SIGTERM: the node leaves gracefully, the server stops, exit 0.
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits").expect("status");
    assert_eq!(status.code(), Some(0));
    assert!(!store.join(past_node::control::CONTROL_SOCKET).exists(), "the socket is removed");
    assert!(TcpStream::connect(addr).await.is_err(), "the server stopped");
    wait_until(
        "the library node's leaf set to drop the serve that left",
        Duration::from_secs(3),
        async || node.status().await.is_some_and(|s| !s.leaf_set.contains(&serve_id)),
        async || format!("{:?}", node.status().await),
    )
    .await;
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("the serve's log");
    assert!(log.contains("stopping the signaling server"), "{log}");
    node.shutdown().await;
}

/// Runs `past-node serve --serve-page 127.0.0.1:0 --store STORE` with `args` more in `cwd` to
/// its end: exit code, stdout, stderr.
async fn serve_in(cwd: &Path, store: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let run = Command::new(BIN)
        .current_dir(cwd)
        .args(["serve", "--serve-page", "127.0.0.1:0", "--store"])
        .arg(store)
        .args(args)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run).await.expect("past-node ends").expect("it runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn a_missing_page_directory_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("store");
    let web = dir.path().join("no-web");
    let pkg = dir.path().join("pkg");
    std::fs::create_dir_all(&pkg).expect("pkg dir");

    let (code, _, stderr) =
        serve_in(dir.path(), &store, &["--web-dir".as_ref(), web.as_os_str(), "--pkg-dir".as_ref(), pkg.as_os_str()])
            .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("--web-dir {}", web.display())), "{stderr}");
    assert!(stderr.contains("cargo xtask build-wasm"), "{stderr}");

    // The defaults are relative to the working directory (a temporary one here, with `web`
    // but without `target/web-pkg`); with --json the error line names the directory too.
    std::fs::create_dir_all(dir.path().join("web")).expect("web dir");
    let (code, stdout, stderr) = serve_in(dir.path(), &store, &["--json".as_ref()]).await;
    assert_eq!(code, Some(1), "{stderr}");
    let error: Value = serde_json::from_str(stdout.lines().last().expect("a line")).expect("JSON");
    assert_eq!(error["type"], "error");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("--pkg-dir target/web-pkg")), "{error}");
    assert!(!store.exists(), "no store made");
}
