//! Things installed outside cargo: the wasm32 target and Debian's Chromium.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::{run_cmd, step};

/// The target the browser node is built for.
pub(crate) const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The real Chromium binary (`/usr/bin/chromium` is a wrapper script).
pub(crate) const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// `rustup target add wasm32-unknown-unknown` unless already installed.
pub(crate) fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).stderr(Stdio::inherit()).output();
    match installed {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
                step(format_args!("{WASM_TARGET} target: installed"));
                return Ok(());
            }
            run_cmd(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        }
        _ => {
            // No rustup: accept a toolchain that ships the target in its sysroot.
            let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().context("cannot run rustc")?;
            let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
            if Path::new(&sysroot).join("lib/rustlib").join(WASM_TARGET).is_dir() {
                step(format_args!("{WASM_TARGET} target: in the sysroot"));
                Ok(())
            } else {
                bail!(
                    "the {WASM_TARGET} target is missing and rustup is not available to add it; \
                     install Rust with rustup"
                )
            }
        }
    }
}

/// The `clippy` and `rustfmt` components, added with rustup when `cargo clippy` or
/// `cargo fmt` is missing.
pub(crate) fn ensure_lint_tools() -> anyhow::Result<()> {
    for (subcommand, component) in [("clippy", "clippy"), ("fmt", "rustfmt")] {
        let present = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([subcommand, "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if present {
            step(format_args!("cargo {subcommand}: installed"));
        } else {
            run_cmd(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

/// Debian's `chromium` and `chromium-driver`, installed with apt-get when missing.
pub(crate) fn ensure_chromium() -> anyhow::Result<()> {
    let have_browser = Path::new(CHROMIUM).is_file();
    let have_driver = Path::new("/usr/bin/chromedriver").is_file();
    if have_browser && have_driver {
        step(format_args!("chromium: installed ({CHROMIUM})"));
        return Ok(());
    }
    if !is_root() {
        bail!(
            "Chromium is missing ({CHROMIUM}). The browser tests need Debian's packages; \
             install them as root: apt-get update && apt-get install -y chromium chromium-driver"
        );
    }
    step("chromium: missing, installing Debian's chromium and chromium-driver");
    run_cmd(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    if !Path::new(CHROMIUM).is_file() {
        bail!("apt-get installed chromium but {CHROMIUM} is still missing");
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether `unshare --net` works here (root, a kernel that allows it, `ip` present).
pub(crate) fn can_unshare_net() -> bool {
    Command::new("unshare")
        .args(["--net", "sh", "-c", "ip link set lo up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
