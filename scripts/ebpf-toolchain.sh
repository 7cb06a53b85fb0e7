#!/usr/bin/env bash
# Installs what capture/build.rs needs to build synscope's eBPF object: the nightly pinned in
# ebpf/rust-toolchain.toml, with rust-src (for -Z build-std=core), and bpf-linker 0.10.0.
# Idempotent: does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' ebpf/rust-toolchain.toml)
if [[ -z $toolchain ]]; then
    echo "error: no channel in ebpf/rust-toolchain.toml" >&2
    exit 2
fi
rustup toolchain install "$toolchain" --profile minimal --component rust-src

if command -v bpf-linker >/dev/null 2>&1 && bpf-linker --version 2>/dev/null | grep -q '0\.10\.0'; then
    echo "bpf-linker 0.10.0 already installed"
else
    cargo install bpf-linker --version 0.10.0 --locked
fi
echo "eBPF toolchain ready ($toolchain): rebuild with 'cargo build -p capture' (SYNSCOPE_REQUIRE_EBPF=1 to insist)."
