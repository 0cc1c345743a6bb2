//! End-to-end test harness of PAST in the browser: shared by the scenarios in `tests/`,
//! one scenario per file.
//!
//! It starts the signaling server in-process on a free loopback port, serving the page
//! (`web/`) and the wasm package built by `cargo xtask test`; launches Debian's headless
//! Chromium with the flags of `shared/chromium-flags.md` (loopback only, no DNS, no mDNS, a
//! fresh profile in a temporary directory); opens pages in separate browser contexts with
//! camera/microphone permission granted (so Chromium gathers loopback ICE candidates); and
//! waits for conditions with bounds and clear failure messages.
//!
//! The browser is driven over the DevTools protocol with `chromiumoxide`: pure Rust, no
//! chromedriver or Node needed, and CDP offers browser contexts and permission grants.
//!
//! For the overlay scenarios it reads each page's node view (`node.view()`), computes what
//! the core says the leaf sets must be (`past_core::LeafSet::from_ids` over the live ids),
//! and checks routed messages against the numerically closest id.
//!
//! This crate is test support, not product code: it panics nowhere but returns
//! `anyhow::Error`s with context for the tests to fail on.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::page::{SetWebLifecycleStateParams, SetWebLifecycleStateState};
use chromiumoxide::cdp::browser_protocol::target::{CloseTargetParams, CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::Handler;
use chromiumoxide::types::{Command, Method, MethodId};
use futures::StreamExt as _;
use past_signaling::{Config, ServerHandle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use watchdog::Watchdog;

pub mod churn;
pub mod watchdog;

/// Environment variable naming the page's directory (set by `cargo xtask test`).
pub const ENV_WEB_DIR: &str = "PAST_WEB_DIR";
/// Environment variable naming the wasm-bindgen output directory (set by `cargo xtask test`).
pub const ENV_PKG_DIR: &str = "PAST_PKG_DIR";
/// Environment variable overriding the Chromium binary.
pub const ENV_CHROMIUM: &str = "PAST_CHROMIUM";
/// The real Chromium binary of Debian's `chromium` package (`/usr/bin/chromium` is a
/// wrapper script).
pub const DEFAULT_CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// Launches of Chromium tried before a test gives up.
const LAUNCH_ATTEMPTS: u32 = 3;

/// Flags of `shared/chromium-flags.md`, keys without leading dashes (chromiumoxide adds
/// them; with dashes it silently drops the flag). `--user-data-dir` is added per browser.
/// chromiumoxide adds `--remote-debugging-port=0` and `--disable-extensions` itself.
pub const CHROMIUM_FLAGS: &[(&str, Option<&str>)] = &[
    ("headless", None),
    ("no-sandbox", None),
    ("disable-gpu", None),
    ("disable-quic", None),
    ("no-first-run", None),
    ("disable-background-networking", None),
    ("disable-component-update", None),
    ("disable-sync", None),
    ("allow-loopback-in-peer-connection", None),
    ("disable-features", Some("WebRtcHideLocalIpsWithMdns")),
    ("host-resolver-rules", Some("MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost")),
    ("force-fieldtrials", Some("WebRTC-IPv6Default/Disabled/")),
];

fn dir_from_env(var: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os(var).map(PathBuf::from).ok_or_else(|| {
        anyhow!(
            "{var} is not set: the browser tests need the page (web/) and the wasm package \
             that `cargo xtask test` builds. Run the tests with `cargo xtask test`, which \
             sets {ENV_WEB_DIR} and {ENV_PKG_DIR}."
        )
    })?;
    if !dir.is_dir() {
        bail!("{var}={} is not a directory; run `cargo xtask test`", dir.display());
    }
    Ok(dir)
}

/// The page's directory, from [`ENV_WEB_DIR`].
pub fn web_dir() -> anyhow::Result<PathBuf> {
    dir_from_env(ENV_WEB_DIR)
}

/// The wasm package's directory, from [`ENV_PKG_DIR`]; checks that it holds the module.
pub fn pkg_dir() -> anyhow::Result<PathBuf> {
    let dir = dir_from_env(ENV_PKG_DIR)?;
    for file in ["past_node.js", "past_node_bg.wasm"] {
        if !dir.join(file).is_file() {
            bail!("{} has no {file}; run `cargo xtask test`, which builds it", dir.display());
        }
    }
    Ok(dir)
}

/// Logs of the harness and the server to stderr (shown for failing tests), once.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            "info,past_signaling=debug,chromiumoxide=error,rtc=warn,rtc_ice=error,rtc_dtls=error,webrtc=warn".into()
        }))
        .with_test_writer()
        .try_init();
}

/// Starts the signaling server on 127.0.0.1 with a free port, serving the page and the
/// wasm package.
pub async fn start_server() -> anyhow::Result<ServerHandle> {
    start_server_with(|_| {}).await
}

/// Bound on one browser scenario as a whole (the longest, the churn soak, takes about 2
/// minutes here): past it the [`Watchdog`] ends the test process, so a hang fails long
/// before CI's limit.
pub const TEST_BOUND: Duration = Duration::from_secs(15 * 60);

/// Runs a browser scenario: starts the signaling server and Chromium, runs `scenario` with
/// them (within [`TEST_BOUND`]), then closes both whatever the outcome.
pub async fn with_browser(
    scenario: impl AsyncFnOnce(&Chromium, &ServerHandle) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    init_tracing();
    let server = start_server().await?;
    let browser = Chromium::launch().await?;
    let watchdog = Watchdog::start("the browser test".into(), TEST_BOUND, browser.pid());
    let result = scenario(&browser, &server).await;
    drop(watchdog);
    browser.close().await;
    server.shutdown().await?;
    result
}

/// [`start_server`] with changes to the configuration (e.g. fewer peers in the welcome).
pub async fn start_server_with(change: impl FnOnce(&mut Config)) -> anyhow::Result<ServerHandle> {
    let mut config = Config { web_dir: Some(web_dir()?), pkg_dir: Some(pkg_dir()?), ..Config::loopback_ephemeral() };
    change(&mut config);
    ServerHandle::spawn(config).await.context("starting the signaling server")
}

/// CDP `Browser.grantPermissions` (not in chromiumoxide's generated protocol).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GrantPermissions {
    permissions: Vec<&'static str>,
    origin: String,
    /// `None`: the browser's own profile (the default context).
    #[serde(skip_serializing_if = "Option::is_none")]
    browser_context_id: Option<BrowserContextId>,
}

impl Method for GrantPermissions {
    fn identifier(&self) -> MethodId {
        "Browser.grantPermissions".into()
    }
}

impl Command for GrantPermissions {
    type Response = serde_json::Value;
}

/// A headless Chromium with its own profile directory. Call [`Chromium::close`] at the
/// end; if a test fails first, dropping it kills the process.
pub struct Chromium {
    browser: Browser,
    pid: Option<u32>,
    handler: JoinHandle<()>,
    _profile: TempDir,
}

impl Chromium {
    /// Launches the binary from [`ENV_CHROMIUM`] or [`DEFAULT_CHROMIUM`].
    pub async fn launch() -> anyhow::Result<Self> {
        let binary =
            std::env::var_os(ENV_CHROMIUM).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMIUM));
        if !binary.is_file() {
            bail!(
                "Chromium not found at {}. The browser tests need Debian's `chromium` and \
                 `chromium-driver` packages: run `cargo xtask test` (installs them as root) or \
                 `apt-get install -y chromium chromium-driver`.",
                binary.display()
            );
        }
        // On a loaded machine Chromium sometimes never prints its DevTools address within the
        // launch timeout; a second launch (fresh profile) then starts normally.
        let mut attempt = 1;
        let (profile, mut browser, mut handler) = loop {
            match Self::start(&binary).await {
                Ok(started) => break started,
                Err(err) if attempt < LAUNCH_ATTEMPTS => {
                    tracing::warn!("Chromium launch {attempt} of {LAUNCH_ATTEMPTS} failed, trying again: {err:#}");
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        };
        let pid = browser.get_mut_child().and_then(|c| c.inner.id());
        // Keep reading Chromium's stderr, or a chatty browser blocks on a full pipe.
        if let Some(stderr) = browser.get_mut_child().and_then(|c| c.stderr.take()) {
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt as _;
                let mut lines = tokio::io::BufReader::new(stderr.inner).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "chromium", "{line}");
                }
            });
        }
        let handler = tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(err) = event {
                    tracing::debug!("CDP handler: {err}");
                }
            }
        });
        Ok(Self { browser, pid, handler, _profile: profile })
    }

    /// Starts Chromium once, on a fresh profile directory.
    async fn start(binary: &Path) -> anyhow::Result<(TempDir, Browser, Handler)> {
        let profile = tempfile::Builder::new()
            .prefix("past-e2e-chromium-")
            .tempdir()
            .context("creating the browser's temporary directory")?;
        let config = browser_config(binary, profile.path())?;
        let (browser, handler) =
            Browser::launch(config).await.with_context(|| format!("launching {}", binary.display()))?;
        Ok((profile, browser, handler))
    }

    /// The browser process's id (its renderers are its descendants), when known.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Opens `url` in a new, separate browser context (its own storage, like another
    /// profile), with camera and microphone permission granted to `origin` so Chromium
    /// gathers loopback ICE candidates. The page itself never asks for media.
    pub async fn open_in_new_context(&self, origin: &str, url: &str) -> anyhow::Result<Page> {
        let context = self.new_context(origin).await?;
        self.open_in_context(&context, url).await
    }

    /// A new, separate browser context (its own storage, like another profile), with camera
    /// and microphone permission granted to `origin`.
    pub async fn new_context(&self, origin: &str) -> anyhow::Result<BrowserContextId> {
        let context = self
            .browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .context("CDP Target.createBrowserContext")?;
        self.browser
            .execute(GrantPermissions {
                permissions: vec!["audioCapture", "videoCapture"],
                origin: origin.to_string(),
                browser_context_id: Some(context.clone()),
            })
            .await
            .context("CDP Browser.grantPermissions")?;
        Ok(context)
    }

    /// Opens `url` in a new tab of the browser's own profile, whose storage is on disk (the
    /// contexts of [`Chromium::new_context`] are off the record: their IndexedDB lives in
    /// memory, with a quota to match). Camera and microphone permission go to `origin`.
    pub async fn open_in_profile(&self, origin: &str, url: &str) -> anyhow::Result<Page> {
        self.browser
            .execute(GrantPermissions {
                permissions: vec!["audioCapture", "videoCapture"],
                origin: origin.to_string(),
                browser_context_id: None,
            })
            .await
            .context("CDP Browser.grantPermissions")?;
        self.browser.new_page(url).await.with_context(|| format!("opening {url}"))
    }

    /// Opens `url` in a new tab of `context` (tabs of one context share IndexedDB).
    pub async fn open_in_context(&self, context: &BrowserContextId, url: &str) -> anyhow::Result<Page> {
        let params = CreateTargetParams::builder()
            .url(url)
            .browser_context_id(context.clone())
            .build()
            .map_err(|e| anyhow!("CreateTargetParams: {e}"))?;
        self.browser.new_page(params).await.with_context(|| format!("opening {url}"))
    }

    /// Lets the pages of `context` download files, into `dir` under their own names.
    pub async fn allow_downloads(&self, context: &BrowserContextId, dir: &Path) -> anyhow::Result<()> {
        let params = SetDownloadBehaviorParams::builder()
            .behavior(SetDownloadBehaviorBehavior::Allow)
            .browser_context_id(context.clone())
            .download_path(dir.to_string_lossy())
            .build()
            .map_err(|e| anyhow!("SetDownloadBehaviorParams: {e}"))?;
        self.browser.execute(params).await.context("CDP Browser.setDownloadBehavior")?;
        Ok(())
    }

    /// Closes `page`'s tab from the browser side (CDP `Target.closeTarget`), which works also
    /// for a page whose renderer crashed and no longer answers `Page.close`.
    pub async fn close_target(&self, page: &Page) -> anyhow::Result<()> {
        self.browser
            .execute(CloseTargetParams::new(page.target_id().clone()))
            .await
            .context("CDP Target.closeTarget")?;
        Ok(())
    }

    /// Closes the browser and waits for the process to end (killing it if needed).
    pub async fn close(mut self) {
        let closed = tokio::time::timeout(Duration::from_secs(5), self.browser.close()).await;
        if !matches!(closed, Ok(Ok(_))) {
            let _ = self.browser.kill().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.wait()).await;
        self.handler.abort();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // After `close` this finds the process gone; on a failure path it kills it now
        // rather than whenever the runtime reaps it.
        if let Some(child) = self.browser.get_mut_child()
            && !matches!(child.try_wait(), Ok(Some(_)))
        {
            let _ = child.inner.start_kill();
        }
        self.handler.abort();
    }
}

fn browser_config(binary: &Path, profile: &Path) -> anyhow::Result<BrowserConfig> {
    let mut builder = BrowserConfig::builder()
        .chrome_executable(binary)
        .disable_default_args()
        // "with head" only stops chromiumoxide from adding its own headless flags; ours
        // include --headless.
        .with_head()
        .user_data_dir(profile.join("user-data"))
        .env("XDG_CONFIG_HOME", profile.join("config").display().to_string())
        .env("XDG_CACHE_HOME", profile.join("cache").display().to_string())
        .launch_timeout(Duration::from_secs(20))
        .request_timeout(Duration::from_secs(20));
    for (key, value) in CHROMIUM_FLAGS {
        builder = match value {
            Some(value) => builder.arg((*key, *value)),
            None => builder.arg(*key),
        };
    }
    builder.build().map_err(|e| anyhow!("browser configuration: {e}"))
}

/// Bound on one page command of the harness. chromiumoxide's request timeout (20 s) does
/// not end an evaluation that awaits a promise (a `save()` that waits out a lookup's retries
/// takes about 30 s and passes), nor one in a page whose renderer crashed while its tab is
/// still open, which waits for ever (checked on 2026-12-03: no answer in 30 s, where a
/// closed tab's command fails within 25 ms), as the workload of the churn soak may while
/// the churn crashes the tab it polls. So this bound is well above the longest evaluation
/// a test awaits.
pub const EVAL_BOUND: Duration = Duration::from_secs(90);

/// Evaluates `expression` in `page` (awaiting it if it is a promise) and returns its value
/// through JSON (`undefined` reads as `null`, so `T = Option<_>` can see it), within
/// [`EVAL_BOUND`].
pub async fn eval<T: DeserializeOwned>(page: &Page, expression: &str) -> anyhow::Result<T> {
    let wrapped = format!("(async () => JSON.stringify((await ({expression})) ?? null))()");
    let params = EvaluateParams::builder()
        .expression(wrapped)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(|e| anyhow!("EvaluateParams: {e}"))?;
    let result = tokio::time::timeout(EVAL_BOUND, page.evaluate_expression(params))
        .await
        .map_err(|_| anyhow!("the page did not answer in {EVAL_BOUND:?}"))
        .and_then(|evaluated| evaluated.map_err(anyhow::Error::from))
        .with_context(|| format!("evaluating `{expression}`"))?;
    let json: String = result.into_value().with_context(|| format!("reading the value of `{expression}`"))?;
    serde_json::from_str(&json).with_context(|| format!("decoding the value of `{expression}`: {json}"))
}

/// [`eval`] for work that may outlast the CDP request timeout (20 s), such as inserting a
/// large file: starts it in the page, then asks for its outcome every 200 ms.
pub async fn eval_slow<T: DeserializeOwned>(page: &Page, expression: &str) -> anyhow::Result<T> {
    let start = format!(
        "(window.slowOutcome = null, Promise.resolve().then(() => ({expression})).then(
           (v) => window.slowOutcome = {{ value: JSON.stringify(v ?? null) }},
           (e) => window.slowOutcome = {{ error: String(e?.message ?? e) }}), true)"
    );
    eval::<bool>(page, &start).await?;
    #[derive(Deserialize)]
    struct Outcome {
        value: Option<String>,
        error: Option<String>,
    }
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(outcome) = eval::<Option<Outcome>>(page, "window.slowOutcome").await? else { continue };
        if let Some(error) = outcome.error {
            bail!("`{expression}` failed: {error}");
        }
        let json = outcome.value.unwrap_or_else(|| "null".into());
        return serde_json::from_str(&json).with_context(|| format!("decoding the value of `{expression}`: {json}"));
    }
}

/// Polls `check` every 50 ms until it yields `Some`, for at most `timeout`. On timeout the
/// error says what was awaited, for how long, and what `describe` reports then (e.g. the
/// page's status).
pub async fn wait_for<T, C, CF, D, DF>(what: &str, timeout: Duration, mut check: C, describe: D) -> anyhow::Result<T>
where
    C: FnMut() -> CF,
    CF: Future<Output = anyhow::Result<Option<T>>>,
    D: FnOnce() -> DF,
    DF: Future<Output = String>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if start.elapsed() >= timeout {
            let state = describe().await;
            bail!("timed out after {timeout:?} waiting for {what}; state: {state}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bound for a page to load the wasm node and claim its identity.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(20);

/// Bound for a data channel to open and authenticate once both sides are running.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens `url` in `n` new browser contexts (`name0`, `name1`, …) and waits until each
/// node joined and every leaf set is exact; returns the named pages and their contexts.
pub async fn joined_contexts(
    browser: &Chromium,
    origin: &str,
    url: &str,
    n: usize,
    name: &str,
) -> anyhow::Result<(Vec<(String, Page)>, Vec<BrowserContextId>)> {
    let (mut named, mut contexts) = (Vec::new(), Vec::new());
    for i in 0..n {
        let context = browser.new_context(origin).await?;
        let page = browser.open_in_context(&context, url).await?;
        wait_joined(&page, &format!("{name}{i}"), JOIN_TIMEOUT).await?;
        named.push((format!("{name}{i}"), page));
        contexts.push(context);
    }
    wait_leaf_sets_exact(&named, 16, Duration::from_secs(30)).await?;
    Ok((named, contexts))
}

/// Bound for a node to join.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The page's state as JSON (status line, last events), for failure messages.
pub async fn page_state(page: &Page) -> String {
    eval::<String>(
        page,
        "JSON.stringify({status: document.getElementById('status')?.textContent, \
         events: (window.past?.events ?? []).slice(-10)})",
    )
    .await
    .unwrap_or_else(|e| format!("(page unreadable: {e:#})"))
}

/// Waits until `page` has loaded the wasm node; returns its id.
pub async fn registered_id(page: &Page, name: &str) -> anyhow::Result<String> {
    wait_for(
        &format!("page {name} to load the wasm node"),
        REGISTER_TIMEOUT,
        || async { eval::<Option<String>>(page, "window.past?.node?.id() ?? null").await },
        || page_state(page),
    )
    .await
}

/// Waits until `page` has an open, authenticated connection to `peer`.
pub async fn wait_connected(page: &Page, name: &str, peer: &str) -> anyhow::Result<()> {
    wait_for(
        &format!("node {name} to have an authenticated connection to {peer}"),
        CONNECT_TIMEOUT,
        || async { Ok(view(page).await?.filter(|v| v.open().iter().any(|p| p == peer)).map(|_| ())) },
        || node_state(page),
    )
    .await
}

/// Two joined nodes of `origin` in two browser contexts, connected to each other: the first
/// founds the overlay, then the second joins through it. Returns `(a, id_a, b, id_b)` and
/// how long the second took from page open to joined.
pub async fn connected_pair(
    browser: &Chromium,
    origin: &str,
) -> anyhow::Result<(Page, String, Page, String, Duration)> {
    let url = format!("{origin}/?{FAST_TIMERS}");
    let a = browser.open_in_new_context(origin, &url).await?;
    let id_a = wait_joined(&a, "A", JOIN_TIMEOUT).await?;
    let start = Instant::now();
    let b = browser.open_in_new_context(origin, &url).await?;
    let id_b = wait_joined(&b, "B", JOIN_TIMEOUT).await?;
    let joined = start.elapsed();
    wait_connected(&b, "B", &id_a).await?;
    wait_connected(&a, "A", &id_b).await?;
    Ok((a, id_a, b, id_b, joined))
}

/// Query string of the page with short timers for tests (keep-alive 500 ms, probe timeout
/// 2.5 s, join timeout 2 s, failed nodes remembered 5 s, connect timeout 6 s).
pub const FAST_TIMERS: &str = "keepalive=500&probe=2500&join=2000&failedmemory=5000&connect=6000";

/// A leaf set as the page shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeafSetView {
    /// Smaller ids, nearest first.
    pub counter_clockwise: Vec<String>,
    /// Larger ids, nearest first.
    pub clockwise: Vec<String>,
}

/// A connection as the page shows it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    /// The peer.
    pub id: String,
    /// `signaling`, `authenticating` or `open`.
    pub state: String,
    /// `out` or `in`.
    pub direction: String,
    /// `server` or `overlay`.
    pub via: String,
    /// Round-trip time, if measured.
    pub rtt_ms: Option<f64>,
}

/// `node.view()` of a page.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// The node's id.
    pub node_id: String,
    /// Whether it has joined.
    pub joined: bool,
    /// Status word.
    pub status: String,
    /// Status detail.
    pub detail: String,
    /// Leaf set.
    pub leaf_set: LeafSetView,
    /// Connections.
    pub connections: Vec<ConnectionView>,
    /// `RTCPeerConnection`s created.
    pub peer_connections_created: u32,
    /// Round trips measured from the connections' statistics (`getStats`).
    pub rtts_from_transport: u64,
    /// Round trips left to probes because the statistics had none.
    pub rtts_by_probe: u64,
}

impl NodeView {
    /// Ids of the open (authenticated) connections.
    pub fn open(&self) -> Vec<String> {
        self.connections.iter().filter(|c| c.state == "open").map(|c| c.id.clone()).collect()
    }
}

/// The node view of `page`, `None` before the node started.
pub async fn view(page: &Page) -> anyhow::Result<Option<NodeView>> {
    eval(page, "window.past?.node?.view() ?? null").await
}

/// The node's status and view summary, for failure messages.
pub async fn node_state(page: &Page) -> String {
    match view(page).await {
        Ok(Some(v)) => {
            let trouble = "(window.past?.events ?? []).filter(e => e.type === 'error' || e.type === 'refused' \
                 || (e.type === 'connection' && e.state === 'closed')).slice(-5) \
                 .map(e => `${e.type} ${e.peer?.slice(0, 8) ?? ''} ${e.reason ?? e.message ?? ''}`)";
            let recent: Vec<String> = eval(page, trouble).await.unwrap_or_default();
            // What the peer manager noted (refused and failed attempts), newest last.
            let manager = "(window.past?.node?.view()?.recentTrouble ?? []).slice(-8) \
                 .map(t => `${t.peer.slice(0, 8)} ${Math.round(t.agoMs / 100) / 10}s ago: ${t.what}`)";
            let noted: Vec<String> = eval(page, manager).await.unwrap_or_default();
            format!(
                "{} ({}); leaf set {:?}; open {:?}; all {:?}; recent trouble {:?}; manager noted {:?}",
                v.status,
                v.detail,
                v.leaf_set,
                v.open(),
                v.connections.iter().map(|c| format!("{}:{}:{}", &c.id[..8], c.state, c.via)).collect::<Vec<_>>(),
                recent,
                noted
            )
        }
        Ok(None) => page_state(page).await,
        Err(e) => format!("(page unreadable: {e:#})"),
    }
}

/// [`node_state`] of every page, with its name and id.
pub async fn states(pages: &[(String, Page)]) -> Vec<String> {
    let mut states = Vec::new();
    for (name, page) in pages {
        let id = view(page).await.ok().flatten().map(|v| v.node_id[..8].to_string()).unwrap_or_default();
        states.push(format!("{name} ({id}): {}", node_state(page).await));
    }
    states
}

/// Waits until `page`'s node has joined; returns its id.
pub async fn wait_joined(page: &Page, name: &str, timeout: Duration) -> anyhow::Result<String> {
    wait_for(
        &format!("node {name} to join the overlay"),
        timeout,
        || async { Ok(view(page).await?.filter(|v| v.joined).map(|v| v.node_id)) },
        || node_state(page),
    )
    .await
}

/// Opens `count` tabs of `url` (named t0, t1, ...), each in a browser context of its own
/// and `pause` after the one before, then waits until all have joined and every leaf set
/// (of size `leaf_set`) is exact, each wait up to `timeout`.
pub async fn open_network(
    browser: &Chromium,
    origin: &str,
    url: &str,
    (count, pause): (usize, Duration),
    leaf_set: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, Page)>> {
    let mut pages = Vec::new();
    for i in 0..count {
        pages.push((format!("t{i}"), browser.open_in_new_context(origin, url).await?));
        tokio::time::sleep(pause).await;
    }
    for (name, page) in &pages {
        wait_joined(page, name, timeout).await?;
    }
    wait_leaf_sets_exact(&pages, leaf_set, timeout).await?;
    Ok(pages)
}

/// An id from the page's hex.
pub fn parse_id(hex: &str) -> anyhow::Result<past_core::Id> {
    let value = u128::from_str_radix(hex, 16).with_context(|| format!("{hex:?} is not a hex id"))?;
    anyhow::ensure!(hex.len() == 32, "{hex:?} is not 32 hex digits");
    Ok(past_core::Id::from_u128(value))
}

/// The hex of an id, as pages show it.
pub fn hex(id: past_core::Id) -> String {
    format!("{:032x}", id.as_u128())
}

/// The leaf set the core computes for `own` when the live nodes are `live`.
pub fn expected_leaf_set(own: &str, live: &[String], size: usize) -> anyhow::Result<LeafSetView> {
    let ids = live.iter().map(|h| parse_id(h)).collect::<anyhow::Result<Vec<_>>>()?;
    let set = past_core::LeafSet::from_ids(parse_id(own)?, size, ids);
    Ok(LeafSetView {
        counter_clockwise: set.side(past_core::Side::CounterClockwise).iter().map(|&i| hex(i)).collect(),
        clockwise: set.side(past_core::Side::Clockwise).iter().map(|&i| hex(i)).collect(),
    })
}

/// Waits until the leaf set of every page is exactly what the core computes from the ids
/// of all the pages (leaf set size `size`).
pub async fn wait_leaf_sets_exact(pages: &[(String, Page)], size: usize, timeout: Duration) -> anyhow::Result<()> {
    let mut live = Vec::new();
    for (name, page) in pages {
        live.push(view(page).await?.map(|v| v.node_id).with_context(|| format!("node {name} has no id"))?);
    }
    let start = Instant::now();
    loop {
        let mut wrong = Vec::new();
        for ((name, page), id) in pages.iter().zip(&live) {
            let expected = expected_leaf_set(id, &live, size)?;
            let got = view(page).await?.map(|v| v.leaf_set).unwrap_or_default();
            if got != expected {
                wrong.push(format!("{name} ({}): has {got:?}, expected {expected:?}", &id[..8]));
            }
        }
        if wrong.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            bail!(
                "timed out after {timeout:?} waiting for exact leaf sets; wrong: {wrong:#?}; states: {:#?}",
                states(pages).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A payload delivered at a page.
#[derive(Clone, Debug, Deserialize)]
pub struct Delivery {
    /// The key it was routed to.
    pub key: String,
    /// The node that routed it.
    pub origin: String,
    /// Hops taken.
    pub hops: u32,
    /// The payload (text).
    pub data: serde_json::Value,
    /// `performance.timeOrigin + performance.now()` at delivery, in ms.
    pub at: f64,
}

/// Bytes each of `pages` passed on along lookup routes for other tabs so far
/// (`stored().bytesRelayed`), in order.
pub async fn bytes_relayed(pages: &[(String, Page)]) -> anyhow::Result<Vec<u64>> {
    let mut all = Vec::with_capacity(pages.len());
    for (_, page) in pages {
        all.push(eval(page, "past.node.stored().bytesRelayed").await?);
    }
    Ok(all)
}

/// Everything delivered at `page` so far.
pub async fn deliveries(page: &Page) -> anyhow::Result<Vec<Delivery>> {
    Ok(eval::<Option<Vec<Delivery>>>(page, "window.past?.delivered ?? []").await?.unwrap_or_default())
}

/// Routes the text `payload` from `page` to `key`.
pub async fn route(page: &Page, key: &str, payload: &str) -> anyhow::Result<()> {
    eval::<Option<bool>>(page, &format!("(window.past.node.route({key:?}, {payload:?}), true)")).await?;
    Ok(())
}

/// Freezes the tab of `page` (CDP `Page.setWebLifecycleState`), as a browser freezes a
/// background tab and as a hung page looks from outside: no script runs in it any more,
/// while its data channels stay open at the other end, where what is sent is lost.
pub async fn freeze(page: &Page) -> anyhow::Result<()> {
    let frozen = SetWebLifecycleStateParams::new(SetWebLifecycleStateState::Frozen);
    page.execute(frozen).await.context("freezing a tab")?;
    Ok(())
}

/// What a peer manager notes of a peer that stopped answering its pings
/// (`link/src/manager/liveness.rs`).
const FOUND_SILENT: &str = "the peer stopped answering";

/// Whether the peer manager of `page` found the peer `id` silent: it answered no ping in
/// time (`recentTrouble`).
pub async fn found_silent(page: &Page, id: &str) -> anyhow::Result<bool> {
    let expression =
        format!("past.node.view().recentTrouble.some((t) => t.peer === {id:?} && t.what.startsWith({FOUND_SILENT:?}))");
    eval(page, &expression).await
}

/// The id numerically closest to `key` among `ids` (as the core decides).
pub fn closest(key: &str, ids: &[String]) -> anyhow::Result<String> {
    let key = parse_id(key)?;
    let parsed = ids.iter().map(|h| parse_id(h)).collect::<anyhow::Result<Vec<_>>>()?;
    key.closest(parsed).map(hex).context("no ids")
}

/// Routes one message from every page to a random key (from `seed`) and checks that each
/// is delivered exactly at the page whose id is numerically closest to its key.
pub async fn check_routing(pages: &[(String, Page)], seed: u64, timeout: Duration) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for (name, page) in pages {
        ids.push(view(page).await?.map(|v| v.node_id).with_context(|| format!("node {name} has no id"))?);
    }
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut sent = Vec::new();
    for (i, (_, page)) in pages.iter().enumerate() {
        let key = format!("{:016x}{:016x}", next(), next());
        let tag = format!("check-{seed}-{i}");
        route(page, &key, &tag).await?;
        sent.push((key, tag, ids[i].clone()));
    }
    let start = Instant::now();
    loop {
        let mut missing = Vec::new();
        for (key, tag, origin) in &sent {
            let expected = closest(key, &ids)?;
            let index = ids.iter().position(|i| *i == expected).context("closest id is a page")?;
            let got = deliveries(&pages[index].1).await?;
            let found = got.iter().any(|d| d.data == serde_json::json!(tag) && d.key == *key && d.origin == *origin);
            if !found {
                missing.push(format!("{tag} for {key} expected at {}", pages[index].0));
            }
        }
        // Nothing may arrive anywhere else.
        for ((name, page), id) in pages.iter().zip(&ids) {
            for d in deliveries(page).await? {
                if let Some((key, _, _)) = sent.iter().find(|(_, tag, _)| d.data == serde_json::json!(tag))
                    && closest(key, &ids)? != *id
                {
                    bail!(
                        "{:?} for {key} was delivered at {name} after {} hops, which is not the closest node; \
                         states: {:#?}",
                        d.data,
                        d.hops,
                        states(pages).await
                    );
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            bail!(
                "timed out after {timeout:?} waiting for deliveries: {missing:#?}; states: {:#?}",
                states(pages).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// JS helpers for tests of files, as `window.t`: `content(size, seed)` (deterministic
/// pseudo-random bytes) and `sha256(bytes)` (hex).
const FILE_HELPERS: &str = r#"(() => {
window.t = {
  content(size, seed) {
    const bytes = new Uint8Array(size);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < size; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; bytes[i] = x & 255; }
    return bytes;
  },
  async sha256(bytes) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  },
};
return true;
})()"#;

/// Installs `FILE_HELPERS` in `page`, then `more` (an expression that extends `window.t`
/// and yields `true`).
pub async fn install_helpers(page: &Page, more: &str) -> anyhow::Result<()> {
    eval::<bool>(page, FILE_HELPERS).await?;
    eval::<bool>(page, more).await?;
    Ok(())
}
