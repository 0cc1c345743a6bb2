//! `cargo xtask`: the project's automation, the two commands of the README.
//!
//! - `cargo xtask run`: builds the browser node (wasm) and serves the page with the signaling
//!   server on http://127.0.0.1:8080.
//! - `cargo xtask test`: builds everything, then runs every test of the workspace, the
//!   headless-Chromium tests included, inside a loopback-only network namespace.
//!
//! Both install what is missing (the wasm32 target; for `test`, Debian's `chromium` and
//! `chromium-driver`), print each step, and on a second run do no install work and rebuild
//! only what changed. This is not a general build system: it knows this repository's
//! layout and nothing else.

mod prereq;
mod wasm;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

/// Environment variable naming the directory of the page, read by the end-to-end tests.
pub(crate) const ENV_WEB_DIR: &str = "PAST_WEB_DIR";
/// Environment variable naming the wasm-bindgen output directory, read by the end-to-end tests.
pub(crate) const ENV_PKG_DIR: &str = "PAST_PKG_DIR";

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build, serve and test PAST in the browser")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the wasm node and serve the page and signaling on http://127.0.0.1:8080.
    Run {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Port to listen on (overrides the port of --listen).
        #[arg(long)]
        port: Option<u16>,
        /// STUN/TURN URL handed to the pages (repeatable; none by default).
        #[arg(long = "ice-server", value_name = "URL")]
        ice_servers: Vec<String>,
    },
    /// Build everything, check formatting and clippy lints, and run every test of the
    /// workspace, browser tests included.
    Test {
        /// Run the tests in the current network namespace even when a loopback-only one
        /// could be made.
        #[arg(long)]
        no_netns: bool,
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_test_args: Vec<OsString>,
    },
    /// Only build the wasm package into target/web-pkg.
    BuildWasm,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root();
    match cli.command {
        Cmd::Run { mut listen, port, ice_servers } => {
            if let Some(port) = port {
                listen.set_port(port);
            }
            let pkg = wasm::build(&root)?;
            serve(&root, &pkg, listen, &ice_servers)
        }
        Cmd::Test { no_netns, cargo_test_args } => {
            let pkg = wasm::build(&root)?;
            prereq::ensure_chromium()?;
            prereq::ensure_lint_tools()?;
            let lints = lint(&root);
            test(&root, &pkg, no_netns, &cargo_test_args)?;
            lints
        }
        Cmd::BuildWasm => wasm::build(&root).map(|_| ()),
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    // `cargo run` tells the binary where its manifest is now; the path compiled in is only a
    // fallback (a binary built in another checkout sharing the target directory would
    // otherwise work on that checkout).
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir.parent().map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the root) or `target/`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Prints a step the way the README describes it.
pub(crate) fn step(message: impl std::fmt::Display) {
    println!("xtask: {message}");
}

/// Runs `cmd` (printing it), failing with its exit status.
pub(crate) fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    step(format_args!("$ {}", show(cmd)));
    let status = cmd.status().with_context(|| format!("cannot start {}", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(cmd));
    }
    Ok(())
}

/// A command line for people.
pub(crate) fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.contains(' ') || a.is_empty() { format!("'{a}'") } else { a.into_owned() }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn serve(root: &Path, pkg: &Path, listen: SocketAddr, ice_servers: &[String]) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["run", "--package", "past-signaling", "--release", "--"])
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--web-dir")
        .arg(root.join("web"))
        .arg("--pkg-dir")
        .arg(pkg);
    for url in ice_servers {
        cmd.arg("--ice-server").arg(url);
    }
    step(format_args!("serving http://{listen}/ (open it in two tabs; Ctrl-C stops)"));
    step(format_args!("$ {}", show(&cmd)));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Replace this process, so Ctrl-C and SIGTERM go straight to cargo and the server.
        let err = cmd.exec();
        Err(err).context("cannot start cargo")
    }
    #[cfg(not(unix))]
    run_cmd(&mut cmd)
}

/// `cargo fmt --check` and `cargo clippy` with warnings as errors. Both run even when the
/// first fails, and the tests run after them either way, so one run reports everything; the
/// result fails the test command afterwards.
fn lint(root: &Path) -> anyhow::Result<()> {
    let fmt = run_cmd(cargo().current_dir(root).args(["fmt", "--all", "--check"]));
    let clippy =
        run_cmd(cargo().current_dir(root).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]));
    match (fmt, clippy) {
        (Ok(()), Ok(())) => Ok(()),
        (fmt, clippy) => {
            let failed: Vec<String> =
                [fmt.err(), clippy.err()].into_iter().flatten().map(|e| format!("{e:#}")).collect();
            bail!("lints failed (the tests ran anyway): {}", failed.join("; "))
        }
    }
}

fn test(root: &Path, pkg: &Path, no_netns: bool, extra: &[OsString]) -> anyhow::Result<()> {
    // Build every test binary first: inside the namespace there is no registry.
    run_cmd(cargo().current_dir(root).args(["test", "--workspace", "--no-run"]))?;

    let web = root.join("web");
    // --no-fail-fast: one run reports every failing test binary, not just the first.
    let mut test_args: Vec<OsString> =
        ["test", "--workspace", "--offline", "--no-fail-fast"].iter().map(OsString::from).collect();
    test_args.extend(extra.iter().cloned());

    let netns = !no_netns && prereq::can_unshare_net();
    let mut cmd = if netns {
        step("running the tests in a loopback-only network namespace (unshare --net)");
        let mut cmd = Command::new("unshare");
        // "$0" is the cargo binary, "$@" its arguments: no quoting problems.
        cmd.args(["--net", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""]);
        cmd.arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.args(&test_args);
        cmd
    } else {
        if !no_netns {
            println!(
                "xtask: WARNING: cannot create a network namespace (needs root and unshare); \
                 running the tests in the normal network. They only use 127.0.0.1, but \
                 Chromium is then not fenced in."
            );
        }
        let mut cmd = cargo();
        cmd.args(&test_args);
        cmd
    };
    cmd.current_dir(root).env(ENV_WEB_DIR, &web).env(ENV_PKG_DIR, pkg);
    run_cmd(&mut cmd)
}
