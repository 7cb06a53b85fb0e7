//! The BPF-only part: maps, hooks, the tail calls between a parse's steps and the flow-table
//! update.
//!
//! Every hook is a thin wrapper that runs one step of the parse in [`observe`] (the hooks the
//! first, the decapsulation programs the next) and returns "pass" whatever happens: the
//! datapath only watches. A step that stops at an encapsulation hands its state to the next
//! program ([`hand_off`]).

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_cxchg, atomic_or, atomic_xadd};
use core::mem::MaybeUninit;

use aya_ebpf::{
    EbpfContext,
    bindings::{__sk_buff, BPF_NOEXIST, BPF_RB_NO_WAKEUP, xdp_action, xdp_md},
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_skb_load_bytes,
        r#gen::{bpf_skb_pull_data, bpf_xdp_load_bytes},
    },
    macros::{classifier, map, xdp},
    maps::{LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{TcContext, XdpContext},
};
use record::{
    CpuCounters, Encap, FlowCounters, FlowDirCounters, FlowKey, SynRecord, counter, direction,
    source,
};

use packet::{
    AlignedKey, Packet, Parsed, Resume, Stepped, Syn, first_step, flow_key, next_step, words,
};

/// The licence the kernel reads from the object's `license` section. The programs only copy
/// header bytes, but declaring a GPL-compatible licence keeps every helper available to them.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Ring buffer of [`SynRecord`]s. The loader sets its size (`capture --ring-mib`, default 4 MiB:
/// ~29 000 records of 136 bytes + an 8-byte header, tens of milliseconds of a flood).
///
/// Records are submitted without waking the reader (`BPF_RB_NO_WAKEUP`): userspace drains the
/// ring on a fixed short period instead (`capture::drain::DRAIN_PERIOD`). A wakeup per record
/// costs an irq_work and, in a VM, a self-IPI and an exit, each time the reader has caught
/// up - under a flood that was most of a SYN's cost in the kernel.
#[map]
static SYN_EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Flow table. LRU so a flood of new flows evicts old ones instead of failing inserts.
///
/// It counts every TCP packet except the SYNs whose record reached the ring: userspace adds
/// those back from the records (`capture::flowtrack`). A SYN flood therefore never touches
/// the table, whose inserts (an LRU eviction and a few cache misses each) were most of a
/// flood SYN's cost.
#[map]
static FLOWS: LruHashMap<FlowKey, FlowCounters> = LruHashMap::with_max_entries(65536, 0);

/// Per-CPU counters and flood-guard window, one entry ([`CpuCounters`]).
#[map]
static COUNTERS: PerCpuArray<CpuCounters> = PerCpuArray::with_max_entries(1, 0);

/// The decapsulation program for TC ([`synscope_tc_decap`]) at index 0, for the tail call that
/// takes a packet's parse into its next encapsulation. The loader fills it. (A program array
/// serves programs of one type only, hence one for TC and one for XDP.)
#[map]
static DECAP_TC: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The same for XDP ([`synscope_xdp_decap`]).
#[map]
static DECAP_XDP: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What one program of a packet's chain hands to the next: where the parse goes on and what
/// the first program knew about the packet. Per CPU: a tail call runs on the same CPU, and
/// TC and XDP programs do not nest there (softirq, or bottom halves disabled).
#[repr(C)]
#[derive(Clone, Copy)]
struct Handoff {
    from: Resume,
    ifindex: u32,
    source: u8,
    direction: u8,
    _pad: [u8; 2],
}

#[map]
static HANDOFF: PerCpuArray<Handoff> = PerCpuArray::with_max_entries(1, 0);

/// [`record::names::GLOBAL_FLOWS`]: read-only data the loader sets, so the verifier prunes
/// the flow update when it is 0.
#[unsafe(no_mangle)]
static SYNSCOPE_FLOWS: u32 = 1;

/// [`record::names::GLOBAL_MAX_SYN_RATE`]: SYN records kept per CPU per second; 0 = all.
#[unsafe(no_mangle)]
static SYNSCOPE_MAX_SYN_RATE: u32 = 0;

/// `TC_ACT_UNSPEC`: under TCX this is "next" (let later programs run), under cls_bpf
/// direct-action it is "no verdict" - either way the packet continues untouched.
const TC_ACT_UNSPEC: i32 = -1;
const EEXIST: i64 = 17;

/// Offsets past this are read through the load helpers: it bounds the offset the verifier
/// sees added to a packet pointer (its limit is 0xffff), far beyond any header we read.
const MAX_DIRECT_OFFSET: u32 = 0x3fff;

/// The largest read the parser makes (an IPv6 header, or a full TCP option area).
const MAX_READ: usize = 40;

/// Per-CPU buffer for the rare read that direct access cannot serve (see [`direct`]). Looked
/// up only then, so it costs the common path nothing.
#[map]
static SCRATCH: PerCpuArray<[u8; MAX_READ]> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU room for a new flow's first counters, which [`update_flow`] inserts. Off the
/// stack: the key, these counters and the caller's record together passed the 512 bytes a
/// chain of BPF frames may hold once the key carried the encapsulation. Looked up only for a
/// flow's first packet.
#[map]
static NEW_FLOW: PerCpuArray<FlowCounters> = PerCpuArray::with_max_entries(1, 0);

/// Direct packet access: the `N` bytes at `off` in place, when they lie in `[data, end)`.
/// A plain load is several times cheaper than a helper call and nothing is copied; the
/// helpers stay as the fallback for bytes outside the linear part (a non-linear skb, a
/// multi-buffer XDP frame).
///
/// `FENCED`: the decapsulation programs' offsets are sums of values read from the packet and
/// from the hand-off map, and LLVM, knowing how they were built, may rebuild the offset it
/// adds to `data` in another register than the one it bounds-checked, which the verifier
/// then cannot bound ("R7 offset is outside of the packet"). An empty `asm!` makes the
/// checked value and the added value one register. The hooks' first programs read at
/// constant offsets and go without it.
#[inline(always)]
fn direct<'a, const N: usize, const FENCED: bool>(
    data: usize,
    end: usize,
    off: u32,
) -> Option<&'a [u8; N]> {
    let mut off = off;
    if FENCED {
        // SAFETY: an empty instruction sequence; it reads and writes only `off`.
        unsafe { core::arch::asm!("/* {0} */", inout(reg) off) };
    }
    if off > MAX_DIRECT_OFFSET {
        return None;
    }
    let start = data + off as usize;
    if start + N > end {
        return None;
    }
    // SAFETY: `[start, start + N)` lies inside the packet, checked just above against `end`
    // (the verifier checks the same comparison); packet memory outlives the program run and
    // `[u8; N]` has no alignment requirement.
    Some(unsafe { &*(start as *const [u8; N]) })
}

/// The fallback: `load` copies `N` bytes at `off` into this CPU's [`SCRATCH`] buffer.
#[inline(always)]
fn via_scratch<'a, const N: usize>(load: impl FnOnce(*mut u8) -> bool) -> Option<&'a [u8; N]> {
    let buf = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU buffer of MAX_READ bytes, used by one program run at a time on this
    // CPU; `Packet::bytes` takes `&mut self`, so the previous view is dead before this
    // overwrites it.
    let buf = unsafe { &mut *buf };
    let dst = buf.first_chunk_mut::<N>()?;
    if load(dst.as_mut_ptr()) {
        Some(dst)
    } else {
        None
    }
}

/// An skb; `FENCED` for the decapsulation program (see [`direct`]).
struct Skb<const FENCED: bool> {
    skb: *mut __sk_buff,
    data: usize,
    end: usize,
}

impl<const FENCED: bool> Packet for Skb<FENCED> {
    #[inline(always)]
    fn bytes<const N: usize>(&mut self, off: u32) -> Option<&[u8; N]> {
        if let Some(b) = direct::<N, FENCED>(self.data, self.end, off) {
            return Some(b);
        }
        let skb = self.skb;
        via_scratch(|dst| {
            // SAFETY: the helper checks `off + N` against the packet and writes at most N
            // bytes into `dst`, which has N bytes.
            unsafe { bpf_skb_load_bytes(skb as *const _, off, dst as *mut _, N as u32) == 0 }
        })
    }
}

/// An XDP buffer; `FENCED` for the decapsulation program (see [`direct`]).
struct Xdp<const FENCED: bool> {
    ctx: *mut xdp_md,
    data: usize,
    end: usize,
}

impl<const FENCED: bool> Packet for Xdp<FENCED> {
    #[inline(always)]
    fn bytes<const N: usize>(&mut self, off: u32) -> Option<&[u8; N]> {
        if let Some(b) = direct::<N, FENCED>(self.data, self.end, off) {
            return Some(b);
        }
        let ctx = self.ctx;
        // SAFETY: as above, for the XDP buffer (including multi-buffer frames).
        via_scratch(|dst| unsafe { bpf_xdp_load_bytes(ctx, off, dst as *mut _, N as u32) == 0 })
    }
}

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
        && same_name(record::names::PROG_TC_DECAP, "synscope_tc_decap")
        && same_name(record::names::PROG_XDP_DECAP, "synscope_xdp_decap")
        && same_name(record::names::MAP_DECAP_TC, "DECAP_TC")
        && same_name(record::names::MAP_DECAP_XDP, "DECAP_XDP")
        && same_name(record::names::MAP_SYN_EVENTS, "SYN_EVENTS")
        && same_name(record::names::MAP_FLOWS, "FLOWS")
        && same_name(record::names::MAP_COUNTERS, "COUNTERS")
        && same_name(record::names::GLOBAL_FLOWS, "SYNSCOPE_FLOWS")
        && same_name(record::names::GLOBAL_MAX_SYN_RATE, "SYNSCOPE_MAX_SYN_RATE")
);

/// TC ingress hook.
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

/// TC decapsulation: the next step of a packet's parse, reached by tail call from the TC
/// hooks (and from itself, once per encapsulation).
#[classifier]
pub fn synscope_tc_decap(ctx: TcContext) -> i32 {
    try_tc_decap(&ctx);
    TC_ACT_UNSPEC
}

/// XDP hook (ingress only).
#[xdp]
pub fn synscope_xdp(ctx: XdpContext) -> u32 {
    try_xdp(&ctx);
    xdp_action::XDP_PASS
}

/// XDP decapsulation, as [`synscope_tc_decap`].
#[xdp]
pub fn synscope_xdp_decap(ctx: XdpContext) -> u32 {
    try_xdp_decap(&ctx);
    xdp_action::XDP_PASS
}

/// What a hook knows about a packet besides its bytes.
#[derive(Clone, Copy)]
struct Meta {
    ifindex: u32,
    source: u8,
    direction: u8,
}

#[inline(always)]
fn try_xdp(ctx: &XdpContext) {
    // SAFETY: `ctx.ctx` is the context pointer the kernel passed in; reading a field of it
    // is what the verifier allows for xdp_md.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let meta = Meta {
        ifindex,
        source: source::XDP,
        direction: direction::INGRESS,
    };
    let mut pkt = xdp_packet::<false>(ctx);
    if let Some(from) = observe(&mut pkt, meta, first_subprog) {
        hand_off(ctx, &DECAP_XDP, meta, from);
    }
}

#[inline(always)]
fn try_xdp_decap(ctx: &XdpContext) {
    let Some((meta, from)) = handed() else {
        return;
    };
    let mut pkt = xdp_packet::<true>(ctx);
    if let Some(from) = observe(&mut pkt, meta, |p, rec, out| {
        next_subprog(p, &from, rec, out)
    }) {
        hand_off(ctx, &DECAP_XDP, meta, from);
    }
}

#[inline(always)]
fn xdp_packet<const FENCED: bool>(ctx: &XdpContext) -> Xdp<FENCED> {
    Xdp {
        ctx: ctx.ctx,
        data: ctx.data(),
        end: ctx.data_end(),
    }
}

#[inline(always)]
fn try_tc(ctx: &TcContext, dir: u8) {
    let skb = ctx.skb.skb;
    // SAFETY: context field reads, as above.
    let (ifindex, len) = unsafe { ((*skb).ifindex, (*skb).len) };
    let (mut data, mut end) = (ctx.data(), ctx.data_end());
    let linear = end - data;
    if linear < MIN_LINEAR && (len as usize) > linear {
        // SAFETY: the helper takes the context and a length. Whatever it returns, the
        // verifier has dropped every packet pointer: they are read again from the context
        // (on failure the packet is as before and the parse falls back to the load helper).
        unsafe { bpf_skb_pull_data(skb, len.min(PULL_BYTES)) };
        (data, end) = (ctx.data(), ctx.data_end());
    }
    let meta = Meta {
        ifindex,
        source: source::TC,
        direction: dir,
    };
    let mut pkt = Skb::<false> { skb, data, end };
    if let Some(from) = observe(&mut pkt, meta, first_subprog) {
        hand_off(ctx, &DECAP_TC, meta, from);
    }
}

#[inline(always)]
fn try_tc_decap(ctx: &TcContext) {
    let Some((meta, from)) = handed() else {
        return;
    };
    let mut pkt = Skb::<true> {
        skb: ctx.skb.skb,
        data: ctx.data(),
        end: ctx.data_end(),
    };
    if let Some(from) = observe(&mut pkt, meta, |p, rec, out| {
        next_subprog(p, &from, rec, out)
    }) {
        hand_off(ctx, &DECAP_TC, meta, from);
    }
}

/// Passes the parse on to the decapsulation program: the state into [`HANDOFF`], then the
/// tail call, which does not return when it succeeds. When it fails (the program array not
/// filled, or the kernel's limit of 33 chained calls, which the bounds keep far away) the
/// packet is counted as lost to decapsulation.
#[inline(always)]
fn hand_off<C: EbpfContext>(ctx: &C, progs: &ProgramArray, meta: Meta, from: Resume) {
    if let Some(h) = HANDOFF.get_ptr_mut(0) {
        // SAFETY: per-CPU value, see [`Handoff`]; a plain store of integers.
        unsafe {
            *h = Handoff {
                from,
                ifindex: meta.ifindex,
                source: meta.source,
                direction: meta.direction,
                _pad: [0; 2],
            };
        }
        // SAFETY: the context is the one this program was called with.
        let _ = unsafe { progs.tail_call(ctx, 0) };
    }
    if let Some(cpu) = COUNTERS.get_ptr_mut(0) {
        // SAFETY: per-CPU value, as in [`observe`].
        bump(unsafe { &mut *cpu }, counter::DECAP_LOST);
    }
}

/// The state the previous program of the chain handed over.
#[inline(always)]
fn handed() -> Option<(Meta, Resume)> {
    let h = HANDOFF.get(0)?;
    Some((
        Meta {
            ifindex: h.ifindex,
            source: h.source,
            direction: h.direction,
        },
        h.from,
    ))
}

/// An skb whose linear part is shorter than this (Ethernet + IPv4 + TCP without options)
/// cannot hold its headers: [`try_tc`] pulls them in first (`bpf_skb_pull_data`, up to
/// [`PULL_BYTES`]). A packet sent from a packet socket's TX ring (trafgen's flood; the same
/// for some drivers) arrives with only its Ethernet header linear, and reading each header
/// through `bpf_skb_load_bytes` was most of the parse's cost under that flood (BENCHMARKS.md).
/// The stack pulls the same headers a moment later (`ip_rcv`, TCP's early demux) and then
/// finds them in place; the packet's bytes do not change. Packets whose headers are linear
/// (what NIC drivers and GRO build) are never pulled.
const MIN_LINEAR: usize = 54;

/// How much a pull makes linear: Ethernet, two VLAN tags, the longest IPv4 header and the
/// longest TCP header (14 + 8 + 60 + 60), rounded up so an IPv6 header and an extension
/// header or two fit as well.
const PULL_BYTES: u32 = 192;

/// Runs one step of a packet's parse and, when the parse is over, accounts for the packet
/// exactly once: a SYN whose record reaches the ring is counted there (userspace adds it to
/// its flow), every other TCP packet in the flow table. Returns where the parse goes on when
/// the step stopped at an encapsulation.
#[inline(always)]
fn observe<P: Packet>(
    pkt: &mut P,
    meta: Meta,
    step: impl FnOnce(&mut P, &mut SynRecord, &mut StepOut) -> u32,
) -> Option<Resume> {
    let cpu = COUNTERS.get_ptr_mut(0)?;
    // SAFETY: per-CPU value; TC and XDP programs run with migration disabled, so nothing
    // else touches this CPU's copy while the program runs.
    let cpu = unsafe { &mut *cpu };
    let mut rec = MaybeUninit::<SynRecord>::uninit();
    let rec = zeroed(&mut rec);
    let mut out = StepOut::SKIP;
    let what = step(pkt, rec, &mut out);
    let syn = match what {
        StepOut::TCP => out.syn,
        StepOut::INNER => return Some(out.from),
        _ => return None,
    };
    let l3_bytes = out.l3_bytes;
    bump(cpu, counter::TCP_PACKETS);
    // The exact time only for a record; the flow table's times have the kernel tick's
    // precision (CLOCK_MONOTONIC_COARSE, 1-10 ms), which costs a few ns where reading the
    // clock source costs tens (an rdtsc, in a VM more).
    let mut ts = 0;
    if syn != StepOut::SYN_NO {
        bump(cpu, counter::SYN_SEEN);
        if syn != StepOut::SYN_RECORD {
            bump(cpu, counter::SYN_UNPARSED);
        } else {
            // SAFETY: a helper without arguments.
            ts = unsafe { bpf_ktime_get_ns() };
            if !guard_keeps(cpu, ts) {
                // Left out on purpose: neither recorded nor counted in the flow table, so
                // that a flood past the limit costs the host as little as possible.
                bump(cpu, counter::SYN_SAMPLED_OUT);
                return None;
            }
            rec.ts_ns = ts;
            rec.ifindex = meta.ifindex;
            rec.source = meta.source;
            rec.direction = meta.direction;
            if submit(rec) {
                bump(cpu, counter::SYN_RECORDS);
                return None;
            }
            bump(cpu, counter::RINGBUF_FULL);
        }
    }
    // SAFETY: read-only data set by the loader (a volatile read, so the compiler does not
    // fold the default value in).
    if unsafe { core::ptr::read_volatile(&SYNSCOPE_FLOWS) } != 0 {
        if ts == 0 {
            // SAFETY: a helper without arguments.
            ts = unsafe { bpf_ktime_get_coarse_ns() };
        }
        update_flow(cpu, rec, u64::from(l3_bytes), ts);
    }
    None
}

/// A zeroed record, written a word at a time ([`words`]).
#[inline(always)]
fn zeroed(rec: &mut MaybeUninit<SynRecord>) -> &mut SynRecord {
    // SAFETY: the record is 136 bytes, 8-aligned; all-zero is a valid SynRecord (integers).
    unsafe {
        words::zero::<{ SynRecord::SIZE / 8 }>(rec.as_mut_ptr().cast::<u64>());
        rec.assume_init_mut()
    }
}

/// Copies the record into the ring; `false` when the ring is full.
#[inline(always)]
fn submit(rec: &SynRecord) -> bool {
    match SYN_EVENTS.reserve::<SynRecord>(0) {
        Some(mut entry) => {
            // Reserved memory is not zeroed; writing the whole (canonical) record covers
            // every byte.
            // SAFETY: the entry and the record are both 136 bytes, 8-aligned.
            unsafe {
                words::copy::<{ SynRecord::SIZE / 8 }>(
                    entry.as_mut_ptr().cast::<u64>(),
                    (rec as *const SynRecord).cast::<u64>(),
                )
            };
            entry.submit(u64::from(BPF_RB_NO_WAKEUP));
            true
        }
        None => false,
    }
}

/// The flood guard: whether this CPU may keep one more SYN record in the current second.
/// Always true when no limit is set (the branch is pruned at load time then).
#[inline(always)]
fn guard_keeps(cpu: &mut CpuCounters, ts: u64) -> bool {
    // SAFETY: read-only data set by the loader, as above.
    let limit = u64::from(unsafe { core::ptr::read_volatile(&SYNSCOPE_MAX_SYN_RATE) });
    if limit == 0 {
        return true;
    }
    if ts.wrapping_sub(cpu.guard_window_ns) >= CpuCounters::GUARD_WINDOW_NS {
        cpu.guard_window_ns = ts;
        cpu.guard_window_kept = 0;
    }
    if cpu.guard_window_kept >= limit {
        return false;
    }
    cpu.guard_window_kept += 1;
    true
}

/// A step's result as the subprograms below hand it back: plain integers with every byte
/// written. (Returned as the `Stepped` enum, the parts a variant leaves unset were stored
/// from registers that held nothing, which the verifier rejects: "R1 !read_ok".)
#[repr(C)]
#[derive(Clone, Copy)]
struct StepOut {
    /// [`StepOut::SKIP`], [`StepOut::TCP`] or [`StepOut::INNER`].
    what: u32,
    /// TCP: the packet's layer-3 bytes.
    l3_bytes: u32,
    /// TCP: [`StepOut::SYN_NO`], [`StepOut::SYN_RECORD`] or [`StepOut::SYN_UNREADABLE`].
    syn: u32,
    _pad: u32,
    /// INNER: where the parse goes on.
    from: Resume,
}

impl StepOut {
    const SKIP: StepOut = StepOut {
        what: 0,
        l3_bytes: 0,
        syn: 0,
        _pad: 0,
        from: Resume {
            off: 0,
            what: 0,
            vlans: 0,
            links: 0,
            steps: 0,
            encaps: Encap::NONE,
        },
    };
    const TCP: u32 = 1;
    const INNER: u32 = 2;
    const SYN_NO: u32 = 0;
    const SYN_RECORD: u32 = 1;
    const SYN_UNREADABLE: u32 = 2;

    #[inline(always)]
    fn set(&mut self, stepped: Stepped) {
        match stepped {
            Stepped::Done(Parsed::Skip(_)) => self.what = 0,
            Stepped::Done(Parsed::Tcp { l3_bytes, syn, .. }) => {
                self.what = StepOut::TCP;
                self.l3_bytes = l3_bytes;
                self.syn = match syn {
                    Syn::No => StepOut::SYN_NO,
                    Syn::Record => StepOut::SYN_RECORD,
                    Syn::Unreadable(_) => StepOut::SYN_UNREADABLE,
                };
            }
            Stepped::Inner(from) => {
                self.what = StepOut::INNER;
                self.from = from;
            }
        }
    }
}

/// [`first_step`] as its own BPF subprogram (own stack frame). Returns the result's
/// [`StepOut::what`]: a subprogram's `r0` must hold a value when it returns, and with no
/// return value LLVM may leave a pointer to the caller's stack there, which newer verifiers
/// refuse ("cannot return stack pointer to the caller").
#[inline(never)]
fn first_subprog<P: Packet>(pkt: &mut P, rec: &mut SynRecord, out: &mut StepOut) -> u32 {
    out.set(first_step(pkt, rec));
    out.what
}

/// [`next_step`] as its own BPF subprogram (own stack frame); returns as [`first_subprog`].
#[inline(never)]
fn next_subprog<P: Packet>(
    pkt: &mut P,
    from: &Resume,
    rec: &mut SynRecord,
    out: &mut StepOut,
) -> u32 {
    out.set(next_step(pkt, *from, rec));
    out.what
}

#[inline(always)]
fn bump(cpu: &mut CpuCounters, idx: u32) {
    if let Some(c) = cpu.counts.get_mut(idx as usize) {
        *c += 1;
    }
}

/// Race-free flow update: lookup, else insert-if-absent, else (someone else inserted first)
/// look up again. Counter updates are atomic adds so concurrent CPUs never lose packets.
///
/// Not inlined: as a BPF subprogram its stack frame (the key) is separate from
/// the caller's record, which keeps every frame and the whole call chain under 512 bytes.
#[inline(never)]
fn update_flow(cpu: &mut CpuCounters, rec: &SynRecord, bytes: u64, ts: u64) {
    let mut key = MaybeUninit::<AlignedKey>::uninit();
    // SAFETY: six zero words make a valid all-zero key (48 bytes, 8-aligned, integers).
    let key = unsafe {
        words::zero::<{ FlowKey::SIZE / 8 }>(key.as_mut_ptr().cast::<u64>());
        key.assume_init_mut()
    };
    let dir = flow_key(rec, key);
    let key = &key.0;
    if let Some(v) = FLOWS.get_ptr_mut(key) {
        add_to(v, dir, bytes, ts, rec.tcp_flags);
        return;
    }
    let Some(fresh) = NEW_FLOW.get_ptr_mut(0) else {
        bump(cpu, counter::FLOW_INSERT_FAILED);
        return;
    };
    // SAFETY: per-CPU value, as in [`observe`]; FlowCounters is 80 bytes of u64-aligned
    // integers, so ten zero words make a valid, all-zero value.
    let fresh = unsafe {
        words::zero::<{ FlowCounters::SIZE / 8 }>(fresh.cast::<u64>());
        &mut *fresh
    };
    fresh.dir_mut(dir).add(ts, bytes, rec.tcp_flags);
    match FLOWS.insert(key, &*fresh, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        Err(e) if e == -EEXIST => match FLOWS.get_ptr_mut(&key) {
            Some(v) => add_to(v, dir, bytes, ts, rec.tcp_flags),
            None => bump(cpu, counter::FLOW_INSERT_FAILED),
        },
        Err(_) => bump(cpu, counter::FLOW_INSERT_FAILED),
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
        // first_seen is claimed once, by the direction's first packet: a plain read skips
        // the locked compare-and-swap for every later packet.
        if core::ptr::read_volatile(&raw const (*d).first_seen_ns) == 0 {
            let _ =
                atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(&raw mut (*d).first_seen_ns, 0, ts);
        }
        // last_seen is a plain store: concurrent packets are within nanoseconds of each other
        // and userspace only needs "recently active".
        // (A volatile store: the BPF backend cannot select an atomic store, and an aligned
        // 64-bit store is single-copy atomic on every BPF JIT anyway.)
        core::ptr::write_volatile(&raw mut (*d).last_seen_ns, ts);
        // tcp_flags (u16) is followed by zero padding: OR into the 32-bit word holding it
        // (little-endian: the flags are its low half), since BPF atomics are 32/64-bit. Only
        // when it adds a bit: after the handshake a flow's flags rarely change.
        let word = (&raw mut (*d).tcp_flags) as *mut u32;
        let flags = u32::from(flags);
        if core::ptr::read_volatile(word) & flags != flags {
            atomic_or::<u32, u32, { Relaxed }>(word, flags);
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Nothing in this crate can panic (no indexing, no unwrap); the verifier would reject a
    // program that reached here anyway, since it loops forever.
    loop {}
}
