//! synscope's kernel datapath.
//!
//! Two programs share one parser (the `packet` crate, which `formats::pcap` runs too): a TC
//! classifier (`synscope_tc`, attached to ingress and egress) and an XDP program
//! (`synscope_xdp`, ingress). For every TCP packet they update the flow table; for every SYN / SYN+ACK they copy the raw header fields into a
//! [`record::SynRecord`] on the ring buffer. Packets always pass unchanged.
//!
//! Built for `bpfel-unknown-none` by `capture/build.rs` (nightly, `-Z build-std=core`,
//! bpf-linker). On the host this crate is an empty binary, so `cargo build --workspace` /
//! `cargo test --workspace` keep working without the BPF toolchain.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Atomic read-modify-write on map values (see `datapath::add_to`); the BPF build is nightly.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

#[cfg(target_arch = "bpf")]
mod datapath;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
