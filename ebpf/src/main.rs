//! synscope's kernel datapath.
//!
//! The hooks share one parser (the `packet` crate, which `formats::pcap` runs too): TC
//! classifiers (`synscope_tc` on ingress, `synscope_tc_egress` on egress) and an XDP program
//! (`synscope_xdp`, ingress), each with a decapsulation program (`synscope_tc_decap`,
//! `synscope_xdp_decap`) that an encapsulated packet's parse reaches by tail call, one step
//! per encapsulation. For every TCP packet they update the flow table; for every SYN /
//! SYN+ACK they copy the raw header fields into a [`record::SynRecord`] on the ring buffer.
//! Packets always pass unchanged.
//!
//! Built for `bpfel-unknown-none` by `capture/build.rs` (nightly, `-Z build-std=core`,
//! bpf-linker). On the host this crate is an empty binary, so `cargo build --workspace` /
//! `cargo test --workspace` keep working without the BPF toolchain.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Atomic read-modify-write on map values (see `datapath::add_to`); the BPF build is nightly.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
// An empty `asm!` as a register fence for the verifier (see `datapath::direct`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod datapath;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
