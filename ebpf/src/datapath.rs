//! The BPF-only part: maps, hooks and the flow-table update.
//!
//! Every hook is a thin wrapper that calls [`observe`] and returns "pass" whatever happens:
//! the datapath only watches.

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_cxchg, atomic_or, atomic_xadd};

use aya_ebpf::{
    bindings::{__sk_buff, BPF_NOEXIST, BPF_RB_NO_WAKEUP, xdp_action, xdp_md},
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes, r#gen::bpf_xdp_load_bytes},
    macros::{classifier, map, xdp},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
};
use record::{
    DatapathConfig, FlowCounters, FlowDirCounters, FlowKey, SynRecord, config_flag, counter,
    direction, source,
};

use crate::flow::flow_key;
use crate::parse::{Packet, Parsed, parse};

/// The licence the kernel reads from the object's `license` section. The programs only copy
/// header bytes, but declaring a GPL-compatible licence keeps every helper available to them.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Ring buffer of [`SynRecord`]s. 16 MiB holds ~120 000 records (128 bytes + 8 header), enough
/// to ride out a SYN flood between two userspace drains; the loader may resize it.
///
/// Records are submitted without waking the reader (`BPF_RB_NO_WAKEUP`): userspace drains the
/// ring on a fixed short period instead (`capture::run::DRAIN_PERIOD`). A wakeup per record
/// costs an irq_work and, in a VM, a self-IPI and an exit, each time the reader has caught
/// up - under a flood that was most of a SYN's cost in the kernel.
#[map]
static SYN_EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Flow table. LRU so a flood of new flows evicts old ones instead of failing inserts.
#[map]
static FLOWS: LruHashMap<FlowKey, FlowCounters> = LruHashMap::with_max_entries(65536, 0);

/// Per-CPU counters indexed by [`record::counter`].
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Configuration written by the loader (index 0).
#[map]
static CONFIG: Array<DatapathConfig> = Array::with_max_entries(1, 0);

/// `TC_ACT_UNSPEC`: under TCX this is "next" (let later programs run), under cls_bpf
/// direct-action it is "no verdict" - either way the packet continues untouched.
const TC_ACT_UNSPEC: i32 = -1;
const EEXIST: i64 = 17;

struct Skb(*mut __sk_buff);

impl Packet for Skb {
    #[inline(always)]
    fn load<const N: usize>(&self, off: u32, out: &mut [u8; N]) -> bool {
        // SAFETY: the helper checks `off + N` against the packet and writes at most N bytes
        // into `out`, which is N bytes long.
        unsafe {
            bpf_skb_load_bytes(
                self.0 as *const _,
                off,
                out.as_mut_ptr() as *mut _,
                N as u32,
            ) == 0
        }
    }
}

struct Xdp(*mut xdp_md);

impl Packet for Xdp {
    #[inline(always)]
    fn load<const N: usize>(&self, off: u32, out: &mut [u8; N]) -> bool {
        // SAFETY: as above, for the XDP buffer (including multi-buffer frames).
        unsafe { bpf_xdp_load_bytes(self.0, off, out.as_mut_ptr() as *mut _, N as u32) == 0 }
    }
}

/// TC ingress hook.
/// aya names each program after its function and each map after its static; this ties those
/// names to the constants the loader uses, at compile time.
const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(
    same_name(record::names::PROG_TC, "synscope_tc")
        && same_name(record::names::PROG_TC_EGRESS, "synscope_tc_egress")
        && same_name(record::names::PROG_XDP, "synscope_xdp")
        && same_name(record::names::MAP_SYN_EVENTS, "SYN_EVENTS")
        && same_name(record::names::MAP_FLOWS, "FLOWS")
        && same_name(record::names::MAP_COUNTERS, "COUNTERS")
        && same_name(record::names::MAP_CONFIG, "CONFIG")
);

#[classifier]
pub fn synscope_tc(ctx: TcContext) -> i32 {
    try_tc(&ctx, direction::INGRESS);
    TC_ACT_UNSPEC
}

/// TC egress hook: the same code, a separate program so the direction is known exactly
/// (nothing in `__sk_buff` says which side of the device a program runs on).
#[classifier]
pub fn synscope_tc_egress(ctx: TcContext) -> i32 {
    try_tc(&ctx, direction::EGRESS);
    TC_ACT_UNSPEC
}

/// XDP hook (ingress only).
#[xdp]
pub fn synscope_xdp(ctx: XdpContext) -> u32 {
    // SAFETY: `ctx.ctx` is the context pointer the kernel passed in; reading a field of it
    // is what the verifier allows for xdp_md.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    observe(&Xdp(ctx.ctx), ifindex, source::XDP, direction::INGRESS);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn try_tc(ctx: &TcContext, dir: u8) {
    let skb = ctx.skb.skb;
    // SAFETY: context field read, as above.
    let ifindex = unsafe { (*skb).ifindex };
    observe(&Skb(skb), ifindex, source::TC, dir);
}

/// Parses one packet and records what it must: flow counters for any TCP packet, a ring-buffer
/// record for a SYN.
#[inline(always)]
fn observe<P: Packet>(pkt: &P, ifindex: u32, src: u8, dir: u8) {
    let mut rec = SynRecord::ZERO;
    let (l3_bytes, syn, syn_ok) = match parse_subprog(pkt, &mut rec) {
        Parsed::NotTcp => return,
        Parsed::Tcp {
            l3_bytes,
            syn,
            syn_ok,
        } => (l3_bytes, syn, syn_ok),
    };
    let ts = unsafe { bpf_ktime_get_ns() };
    bump(counter::TCP_PACKETS);
    if flows_enabled() {
        update_flow(&rec, u64::from(l3_bytes), ts);
    }
    if !syn {
        return;
    }
    bump(counter::SYN_SEEN);
    if !syn_ok {
        bump(counter::SYN_UNPARSED);
        return;
    }
    rec.ts_ns = ts;
    rec.ifindex = ifindex;
    rec.source = src;
    rec.direction = dir;
    match SYN_EVENTS.reserve::<SynRecord>(0) {
        Some(mut entry) => {
            // Reserved memory is not zeroed; writing the whole (canonical) record covers
            // every byte.
            entry.write(rec);
            entry.submit(u64::from(BPF_RB_NO_WAKEUP));
            bump(counter::SYN_RECORDS);
        }
        None => bump(counter::RINGBUF_FULL),
    }
}

/// [`parse`] as its own BPF subprogram (own stack frame for the header copies).
#[inline(never)]
fn parse_subprog<P: Packet>(pkt: &P, rec: &mut SynRecord) -> Parsed {
    parse(pkt, rec)
}

#[inline(always)]
fn flows_enabled() -> bool {
    match CONFIG.get(0) {
        Some(c) => c.flags & config_flag::FLOWS != 0,
        None => false,
    }
}

#[inline(always)]
fn bump(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot; TC and XDP programs run with migration disabled, so no other
        // writer touches this CPU's copy concurrently.
        unsafe { *p += 1 };
    }
}

/// Race-free flow update: lookup, else insert-if-absent, else (someone else inserted first)
/// look up again. Counter updates are atomic adds so concurrent CPUs never lose packets.
///
/// Not inlined: as a BPF subprogram its stack frame (key, fresh counters) is separate from
/// the caller's record, which keeps every frame and the whole call chain under 512 bytes.
#[inline(never)]
fn update_flow(rec: &SynRecord, bytes: u64, ts: u64) {
    let mut key = FlowKey {
        addr_a: [0; 16],
        addr_b: [0; 16],
        port_a: 0,
        port_b: 0,
        ip_version: 0,
        _pad0: [0; 3],
    };
    let dir = flow_key(rec, &mut key);
    if let Some(v) = FLOWS.get_ptr_mut(&key) {
        add_to(v, dir, bytes, ts, rec.tcp_flags);
        return;
    }
    let mut fresh = FlowCounters::default();
    fresh.dir_mut(dir).add(ts, bytes, rec.tcp_flags);
    match FLOWS.insert(&key, &fresh, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        Err(e) if e == -EEXIST => match FLOWS.get_ptr_mut(&key) {
            Some(v) => add_to(v, dir, bytes, ts, rec.tcp_flags),
            None => bump(counter::FLOW_INSERT_FAILED),
        },
        Err(_) => bump(counter::FLOW_INSERT_FAILED),
    }
}

#[inline(always)]
fn add_to(v: *mut FlowCounters, dir: u8, bytes: u64, ts: u64, flags: u16) {
    // SAFETY: `v` points at a live map value (8-byte aligned); every field access goes through
    // atomics because other CPUs may update the same flow concurrently.
    unsafe {
        let d: *mut FlowDirCounters = if dir == record::flow_dir::A_TO_B {
            &raw mut (*v).a_to_b
        } else {
            &raw mut (*v).b_to_a
        };
        // The BPF target has no `core::sync::atomic` read-modify-write support, so the
        // intrinsics are used directly; with `-C target-cpu=v3` they lower to BPF_ATOMIC.
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*d).packets, 1);
        atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*d).bytes, bytes);
        // First packet in this direction: claim first_seen once.
        let _ = atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(&raw mut (*d).first_seen_ns, 0, ts);
        // last_seen is a plain store: concurrent packets are within nanoseconds of each other
        // and userspace only needs "recently active".
        // (A volatile store: the BPF backend cannot select an atomic store, and an aligned
        // 64-bit store is single-copy atomic on every BPF JIT anyway.)
        core::ptr::write_volatile(&raw mut (*d).last_seen_ns, ts);
        // tcp_flags (u16) is followed by zero padding: OR into the 32-bit word holding it
        // (little-endian: the flags are its low half), since BPF atomics are 32/64-bit.
        let word = (&raw mut (*d).tcp_flags) as *mut u32;
        atomic_or::<u32, u32, { Relaxed }>(word, u32::from(flags));
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Nothing in this crate can panic (no indexing, no unwrap); the verifier would reject a
    // program that reached here anyway, since it loops forever.
    loop {}
}
