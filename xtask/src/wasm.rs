//! The browser node: cargo build for wasm32, the wasm-bindgen step (the library, pinned to
//! the same version as the `wasm-bindgen` crate), and `wasm-opt -Oz` (installed from npm
//! when missing and npm is there; skipped with a message otherwise).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use sha1::{Digest as _, Sha1};

use crate::prereq::{WASM_TARGET, ensure_wasm_target};
use crate::{cargo, run_cmd, show, step};

/// Cargo package of the browser node.
const PACKAGE: &str = "past-node-wasm";
/// Its artifact name.
const ARTIFACT: &str = "past_node_wasm.wasm";
/// Base name of the generated files: `/pkg/past_node.js` and `/pkg/past_node_bg.wasm`.
const OUT_NAME: &str = "past_node";
/// Cargo profile (opt-level z, LTO; see the root Cargo.toml).
const PROFILE: &str = "wasm-release";
/// Written into the stamp so a change of bindgen settings invalidates it.
const BINDGEN_SETTINGS: &str = "wasm-bindgen-cli-support =0.2.130, target web, default module path, no typescript, name section only with PAST_WASM_NAMES";

/// Environment variable that keeps the wasm name section (function names in browser
/// profiles; about 100 KB more), for profiling only.
const KEEP_NAMES: &str = "PAST_WASM_NAMES";

/// Builds the browser node into `target/web-pkg` and returns that directory.
pub(crate) fn build(root: &Path) -> anyhow::Result<PathBuf> {
    ensure_wasm_target()?;
    run_cmd(cargo().current_dir(root).args([
        "build",
        "--package",
        PACKAGE,
        "--target",
        WASM_TARGET,
        "--profile",
        PROFILE,
    ]))?;

    let target_dir = crate::target_dir(root);
    let input = target_dir.join(WASM_TARGET).join(PROFILE).join(ARTIFACT);
    let out_dir = target_dir.join("web-pkg");
    let wasm_opt = find_wasm_opt(root).or_else(|| install_wasm_opt(root));
    let keep_names = std::env::var_os(KEEP_NAMES).is_some();

    let wasm = std::fs::read(&input).with_context(|| format!("cannot read {}", input.display()))?;
    let mut hasher = Sha1::new();
    hasher.update(&wasm);
    hasher.update(BINDGEN_SETTINGS.as_bytes());
    hasher.update(format!("wasm-opt: {wasm_opt:?}, names kept: {keep_names}").as_bytes());
    let stamp_value: String =
        hasher.finalize().iter().map(|b| format!("{b:02x}")).chain(std::iter::once("\n".to_string())).collect();
    let stamp = out_dir.join(".stamp");
    let outputs = [out_dir.join(format!("{OUT_NAME}.js")), out_dir.join(format!("{OUT_NAME}_bg.wasm"))];
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_value) && outputs.iter().all(|p| p.is_file()) {
        step(format_args!("wasm-bindgen: {} unchanged, {} up to date", input.display(), out_dir.display()));
        report_size(&outputs[1]);
        return Ok(out_dir);
    }

    step(format_args!("wasm-bindgen (library {BINDGEN_SETTINGS}): {} -> {}", input.display(), out_dir.display()));
    let _ = std::fs::remove_file(&stamp);
    std::fs::create_dir_all(&out_dir)?;
    bindgen(&input, &out_dir, keep_names)?;

    match wasm_opt {
        Some(bin) => {
            let mut cmd = Command::new(&bin);
            cmd.arg(&outputs[1])
                .arg("-o")
                .arg(&outputs[1])
                .arg("-Oz")
                // The features rustc enables by default for wasm32-unknown-unknown.
                .args([
                    "--enable-bulk-memory",
                    "--enable-mutable-globals",
                    "--enable-nontrapping-float-to-int",
                    "--enable-sign-ext",
                    "--enable-reference-types",
                    "--enable-multivalue",
                ]);
            if let Err(err) = run_cmd(&mut cmd) {
                // Optional step: an old wasm-opt must not break the build.
                step(format_args!("wasm-opt failed, keeping the unoptimized module: {err:#} ({})", show(&cmd)));
                bindgen(&input, &out_dir, keep_names)?;
            }
        }
        None => step(
            "wasm-opt: not found on PATH or in node_modules/.bin and npm could not install it, \
             skipping (the module stays about 10 % larger; `apt-get install binaryen` or \
             `npm install binaryen` to shrink it)",
        ),
    }
    std::fs::write(&stamp, stamp_value)?;
    report_size(&outputs[1]);
    Ok(out_dir)
}

/// The wasm-bindgen step, as `wasm-bindgen --target web` does it.
fn bindgen(input: &Path, out_dir: &Path, keep_names: bool) -> anyhow::Result<()> {
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(input)
        .out_name(OUT_NAME)
        .web(true)?
        // The library omits `new URL("..._bg.wasm", import.meta.url)` unless told; the CLI
        // keeps it, and the page relies on it (`await init()`).
        .omit_default_module_path(false)
        .typescript(false)
        .remove_name_section(!keep_names)
        .remove_producers_section(true)
        .generate(out_dir)
        .context("wasm-bindgen failed")
}

fn report_size(wasm: &Path) {
    if let Ok(meta) = std::fs::metadata(wasm) {
        step(format_args!("{}: {} bytes", wasm.display(), meta.len()));
    }
}

/// npm's `binaryen`, pinned (a newer wasm-opt may optimize differently).
const BINARYEN: &str = "binaryen@132.0.0";

/// Installs `wasm-opt` into the repository's `node_modules` with npm (about 5 s); `None`
/// when npm is missing or fails.
fn install_wasm_opt(root: &Path) -> Option<PathBuf> {
    step(format_args!("wasm-opt: not found, installing npm {BINARYEN} into {}", root.join("node_modules").display()));
    let mut cmd = Command::new("npm");
    cmd.current_dir(root).args(["install", "--no-save", "--no-audit", "--no-fund", "--no-package-lock", BINARYEN]);
    if let Err(err) = run_cmd(&mut cmd) {
        step(format_args!("npm install {BINARYEN} failed: {err:#}"));
        return None;
    }
    find_wasm_opt(root)
}

/// `wasm-opt` from PATH, else from the repository's `node_modules/.bin`.
fn find_wasm_opt(root: &Path) -> Option<PathBuf> {
    let local = root.join("node_modules/.bin/wasm-opt");
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("wasm-opt"))
        .chain(std::iter::once(local))
        .find(|p| p.is_file())
}
