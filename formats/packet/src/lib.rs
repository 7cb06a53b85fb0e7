//! The one packet parser: a frame's bytes -> the raw header fields of a [`record::SynRecord`],
//! the packet's [`record::FlowKey`], or the reason it was skipped.
//!
//! Live capture and replay must give the same record for the same packet, so both run this
//! code: the kernel datapath (`ebpf`, built for `bpfel-unknown-none`) over packet memory, and
//! `formats::pcap` over the frames of a capture file. Hence the constraints of the whole crate:
//! `no_std`, no allocation, no panics, every read of a constant size and bounds-checked, loops
//! with constant bounds (the BPF verifier's rules; see [`parse`]).
//!
//! A crate of its own rather than part of `record`: `record` is the data layout every crate
//! speaks (the p0f engine and the Parquet files included) and stays free of `unsafe`; parsing
//! is needed only by the two producers of records, and needs a little `unsafe` for the
//! kernel's word-at-a-time key and record writes ([`words`]).
//!
//! What lives elsewhere: link types other than Ethernet, pcapng interfaces, timestamps and the
//! `SNAPPED` flag are `formats::pcap`'s (a capture file's business); maps, hooks and the flow
//! update are `ebpf`'s. Tests that compare this parser with an independent one (etherparse)
//! over real captures are in `formats::pcap`, where the captures are read.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
mod encap_tests;
mod flow;
mod layer;
mod link;
mod parse;
mod tunnel;
pub mod words;

pub use flow::{AlignedKey, flow_key};
pub use layer::resume;
pub use link::ip_of_ethertype;
pub use parse::{
    Frame, IpVersion, Link, MAX_IPV6_EXT, Packet, Parsed, Resume, Skip, Stepped, Syn, by_steps,
    ethernet, first_step, ip, ip_inner, ip_step, next_step, parse_ethernet,
};
