//! Builds the eBPF object (`ebpf` crate) and hands its path to `capture` via `OUT_DIR`.
//!
//! The BPF build needs the nightly pinned in `ebpf/rust-toolchain.toml`, with `rust-src`, and
//! `bpf-linker`. When they are missing, the
//! build still succeeds (so plain `cargo build` / `cargo test` on stable work anywhere): an
//! empty object is embedded and `capture` refuses to run, telling the user how to build it.
//! `SYNSCOPE_REQUIRE_EBPF=1` (CI) turns the fallback into a build failure.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// File name of the object inside `OUT_DIR`.
const OBJECT: &str = "synscope-ebpf.o";

/// The file that pins the eBPF build's toolchain, relative to the workspace root.
const TOOLCHAIN_FILE: &str = "ebpf/rust-toolchain.toml";

fn main() -> ExitCode {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let root = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
    for p in [
        "ebpf/src",
        "ebpf/Cargo.toml",
        TOOLCHAIN_FILE,
        "formats/record/src",
        "formats/packet/src",
        "formats/packet/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=SYNSCOPE_REQUIRE_EBPF");
    println!("cargo:rerun-if-env-changed=SYNSCOPE_EBPF_OBJECT");
    let require = env::var("SYNSCOPE_REQUIRE_EBPF").is_ok_and(|v| v == "1");
    let dest = out_dir.join(OBJECT);

    let result = match env::var_os("SYNSCOPE_EBPF_OBJECT") {
        // A prebuilt object (cross builds, packaging).
        Some(p) => fs::copy(&p, &dest).map(|_| ()).map_err(|e| {
            format!(
                "copying SYNSCOPE_EBPF_OBJECT={}: {e}",
                PathBuf::from(&p).display()
            )
        }),
        None => build_object(&root).and_then(|obj| {
            fs::copy(&obj, &dest)
                .map(|_| ())
                .map_err(|e| format!("copying {}: {e}", obj.display()))
        }),
    };
    match result {
        Ok(()) => {
            println!("cargo:rustc-env=SYNSCOPE_EBPF_BUILD=built");
            ExitCode::SUCCESS
        }
        Err(why) if require => {
            eprintln!(
                "error: SYNSCOPE_REQUIRE_EBPF=1 but the eBPF object could not be built: {why}"
            );
            ExitCode::FAILURE
        }
        Err(why) => {
            let first = why.lines().next().unwrap_or("unknown reason");
            println!(
                "cargo:warning=eBPF object not built ({first}); `capture` will refuse to run. \
                 Install the toolchain with scripts/ebpf-toolchain.sh."
            );
            if let Err(e) = fs::write(&dest, []) {
                eprintln!("error: writing {}: {e}", dest.display());
                return ExitCode::FAILURE;
            }
            println!(
                "cargo:rustc-env=SYNSCOPE_EBPF_BUILD=missing: {}",
                first.replace('\n', " ")
            );
            ExitCode::SUCCESS
        }
    }
}

/// The channel `ebpf/rust-toolchain.toml` pins (`channel = "nightly-YYYY-MM-DD"`).
fn pinned_toolchain(root: &Path) -> Result<String, String> {
    let path = root.join(TOOLCHAIN_FILE);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .find(|v| !v.is_empty())
        .ok_or_else(|| format!("{}: no `channel = \"...\"` line", path.display()))
}

/// Runs the pinned nightly's `cargo build` for the BPF target in its own target directory (so
/// it never waits on the outer build's lock) and returns the object path.
fn build_object(root: &Path) -> Result<PathBuf, String> {
    let toolchain = pinned_toolchain(root)?;
    // Asked first: with auto-install on, `rustup run` would download a missing toolchain in
    // the middle of a plain `cargo build`.
    let installed = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map_err(|e| format!("`rustup` not available: {e}"))?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.starts_with(&toolchain))
    {
        return Err(format!(
            "{toolchain} (pinned in {TOOLCHAIN_FILE}) is not installed: \
             bash scripts/ebpf-toolchain.sh installs it"
        ));
    }
    check_tool("rustup", &["run", &toolchain, "rustc", "--version"])?;
    check_tool("bpf-linker", &["--version"])?;
    let sysroot = Command::new("rustup")
        .args(["run", &toolchain, "rustc", "--print", "sysroot"])
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Err(format!("{toolchain} has no rust-src component"));
    }
    let target_root = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target_dir = target_root.join("ebpf");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(root)
        .args([
            "run",
            &toolchain,
            "cargo",
            "build",
            "--release",
            "-p",
            "ebpf",
        ])
        .args(["--bin", "synscope-ebpf", "--target", "bpfel-unknown-none"])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer cargo's settings must not leak into the nested nightly build.
    for (k, _) in env::vars_os() {
        if is_leaky(&k) {
            cmd.env_remove(&k);
        }
    }
    // BPF ISA v3: 32-bit atomics and atomic fetch/cmpxchg (Linux >= 5.12).
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-cpu=v3");
    let out = cmd
        .output()
        .map_err(|e| format!("running nightly cargo: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("nightly BPF build failed:\n{}", tail.join("\n")));
    }
    let obj = target_dir.join("bpfel-unknown-none/release/synscope-ebpf");
    if obj.is_file() {
        Ok(obj)
    } else {
        Err(format!("BPF build produced no {}", obj.display()))
    }
}

fn is_leaky(k: &OsString) -> bool {
    let k = k.to_string_lossy();
    k == "RUSTC"
        || k == "RUSTDOC"
        || k == "RUSTC_WRAPPER"
        || k == "RUSTC_WORKSPACE_WRAPPER"
        || k == "RUSTFLAGS"
        || k == "RUSTUP_TOOLCHAIN"
        || k == "CARGO_TARGET_DIR"
        || k == "CARGO_BUILD_TARGET"
        || k == "CARGO_MAKEFLAGS"
        || k == "MAKEFLAGS"
        || k == "MFLAGS"
        || k == "CARGO_ENCODED_RUSTFLAGS"
        || k.starts_with("CARGO_PROFILE_")
        || k.starts_with("CARGO_CFG_")
        || k.starts_with("CARGO_FEATURE_")
        || k.starts_with("CARGO_PKG_")
        || k.starts_with("DEP_")
}

fn check_tool(tool: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(tool).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`{tool} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("`{tool}` not available: {e}")),
    }
}
