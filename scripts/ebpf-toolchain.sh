#!/usr/bin/env bash
# Installs what capture/build.rs needs to build synscope's eBPF object:
# a nightly toolchain with rust-src (for -Z build-std=core) and bpf-linker 0.10.0.
# Idempotent: does nothing that is already done.
set -euo pipefail

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
rustup component add rust-src --toolchain nightly

if command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version 2>/dev/null | grep -q '0\.10\.0'; then
    echo "bpf-linker 0.10.0 already installed"
else
    cargo install bpf-linker --version 0.10.0 --locked
fi
echo "eBPF toolchain ready: rebuild with 'cargo build -p capture' (SYNSCOPE_REQUIRE_EBPF=1 to insist)."
