//! Loading, configuring and attaching the eBPF datapath, and reading its maps.
//!
//! Detach-on-exit: every attachment is a BPF link owned by this process (TCX links for TC,
//! `bpf_link` XDP attachments), so the kernel removes the hooks when the process dies for any
//! reason, SIGKILL included. Only on kernels without TCX (< 6.6) does TC fall back to a
//! netlink `clsact` filter, which outlives the process; for that case every start first
//! removes filters left behind under our program names.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::maps::{Map, MapData, PerCpuArray, ProgramArray};
use aya::programs::links::LinkOrder;
use aya::programs::tc::{self, NlOptions, TcAttachOptions};
use aya::programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpFlags};
use aya::{Ebpf, EbpfLoader};
use record::{CpuCounters, FlowCounters, FlowKey, counter, names};

use crate::error::{CaptureError, Result};
use crate::ring::Ring;

/// The eBPF object built by `build.rs` (empty when the BPF toolchain was missing).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/synscope-ebpf.o"));

/// How `build.rs` fared (`built` or `missing: why`).
const OBJECT_STATUS: &str = env!("SYNSCOPE_EBPF_BUILD");

pub use crate::mode::Mode;

/// Sizing and feature knobs for [`Datapath::open`].
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Maintain the flow table.
    pub flows: bool,
    /// Flow table capacity (LRU entries).
    pub flow_entries: u32,
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Flood guard: SYN records kept per second per CPU; 0 keeps all of them.
    pub max_syn_rate: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flows: true,
            flow_entries: 65536,
            ring_bytes: 4 << 20,
            max_syn_rate: 0,
        }
    }
}

/// `CpuCounters` as an aya map value.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct CpuValue(CpuCounters);
// SAFETY: `CpuCounters` is `#[repr(C)]` u64s, no padding (layout pinned by a test).
unsafe impl aya::Pod for CpuValue {}

/// The loaded, attached datapath. Dropping it detaches everything.
pub struct Datapath {
    /// Owns the programs and their links.
    _ebpf: Ebpf,
    /// Until [`Datapath::take_ring`] hands it to its reader.
    ring: Option<Ring>,
    flows: MapData,
    counters: PerCpuArray<MapData, CpuValue>,
    /// Human description of the attachment, e.g. `tcx ingress+egress`.
    pub attachment: String,
    /// Interface index.
    pub ifindex: u32,
}

/// Checks that the process may load and attach BPF programs, before trying.
pub fn check_privileges() -> Result<()> {
    // CapEff bits: CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    let mut missing = Vec::new();
    if !has(39) && !has(21) {
        missing.push("CAP_BPF");
    }
    if !has(38) && !has(21) {
        missing.push("CAP_PERFMON");
    }
    if !has(12) {
        missing.push("CAP_NET_ADMIN");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CaptureError::NotPrivileged {
            missing: missing.join(", "),
        })
    }
}

/// The index of interface `name`.
pub fn ifindex(name: &str) -> Result<u32> {
    let unknown = || CaptureError::UnknownInterface(name.to_string());
    let c = std::ffi::CString::new(name).map_err(|_| unknown())?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 { Err(unknown()) } else { Ok(idx) }
}

/// Whether this binary carries an eBPF object.
pub fn object_available() -> Result<()> {
    if OBJECT.is_empty() {
        Err(CaptureError::NoObject(OBJECT_STATUS))
    } else {
        Ok(())
    }
}

/// Verifier log lines shown on rejection: the reason is at the end, after the walk.
/// `capture --check` shows the whole log instead.
const VERIFIER_TAIL_LINES: usize = 25;

/// The last `n` non-blank lines of a verifier log.
fn verifier_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A program's load error; a verifier rejection keeps the last `tail` lines of the log
/// (all of them when `None`).
fn load_err(program: &'static str, e: ProgramError, tail: Option<usize>) -> CaptureError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            CaptureError::Verifier {
                program,
                reason: io_error,
                log: match tail {
                    Some(n) => verifier_tail(&log, n),
                    None => log.trim_end().to_string(),
                },
            }
        }
        other => CaptureError::Load(format!("{program}: {other}")),
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map> {
    ebpf.take_map(name).ok_or(CaptureError::Map {
        map: name,
        reason: "not in the eBPF object".into(),
    })
}

impl Datapath {
    /// Loads the object, configures it and attaches it to `iface` in `mode`.
    pub fn open(iface: &str, mode: Mode, opts: Options) -> Result<Datapath> {
        object_available()?;
        check_privileges()?;
        let ifindex = ifindex(iface)?;
        crate::floor::check(mode)?;
        let mut ebpf = load_object(opts)?;

        let attachment = match mode {
            Mode::Tc => attach_tc(&mut ebpf, iface)?,
            Mode::Xdp => attach_xdp(&mut ebpf, iface, ifindex)?,
        };

        let ring = match take_map(&mut ebpf, names::MAP_SYN_EVENTS)? {
            Map::RingBuf(m) => Ring::new(m)?,
            _ => {
                return Err(CaptureError::Map {
                    map: names::MAP_SYN_EVENTS,
                    reason: "not a ring buffer".into(),
                });
            }
        };
        let flows = match take_map(&mut ebpf, names::MAP_FLOWS)? {
            Map::LruHashMap(m) | Map::HashMap(m) => m,
            _ => {
                return Err(CaptureError::Map {
                    map: names::MAP_FLOWS,
                    reason: "not a hash map".into(),
                });
            }
        };
        let counters =
            PerCpuArray::try_from(take_map(&mut ebpf, names::MAP_COUNTERS)?).map_err(|e| {
                CaptureError::Map {
                    map: names::MAP_COUNTERS,
                    reason: e.to_string(),
                }
            })?;
        Ok(Datapath {
            _ebpf: ebpf,
            ring: Some(ring),
            flows,
            counters,
            attachment,
            ifindex,
        })
    }

    /// The ring buffer's reader, once (it may move to a thread of its own).
    pub fn take_ring(&mut self) -> Option<Ring> {
        self.ring.take()
    }

    /// The counters summed over CPUs, indexed by [`record::counter`].
    pub fn counters(&self) -> Result<[u64; counter::COUNT as usize]> {
        let mut out = [0u64; counter::COUNT as usize];
        let cpus = self.counters.get(&0, 0).map_err(|e| CaptureError::Map {
            map: names::MAP_COUNTERS,
            reason: e.to_string(),
        })?;
        for cpu in cpus.iter() {
            for (sum, v) in out.iter_mut().zip(cpu.0.counts) {
                *sum = sum.wrapping_add(v);
            }
        }
        Ok(out)
    }

    /// Reads the whole flow table with `BPF_MAP_LOOKUP_BATCH`, replacing `out`'s contents.
    pub fn flows_snapshot(&self, out: &mut Vec<(FlowKey, FlowCounters)>) -> Result<()> {
        out.clear();
        batch_lookup(self.flows.fd().as_fd().as_raw_fd(), out).map_err(|e| CaptureError::Map {
            map: names::MAP_FLOWS,
            reason: format!("batch lookup: {e}"),
        })
    }
}

/// Parses the object and creates its maps (programs are loaded one by one later).
fn load_object(opts: Options) -> Result<Ebpf> {
    // Kernels before 5.11, and distribution kernels built on them with BPF backports, charge
    // BPF maps to RLIMIT_MEMLOCK, whose default (8 MiB at most) is smaller than the ring
    // buffer; later kernels charge the memory cgroup and ignore it.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `unlimited` is a valid rlimit for the duration of the call. Failure (no
    // CAP_SYS_RESOURCE) leaves the limit as it was; a map that then does not fit says so.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
    let flows = u32::from(opts.flows);
    let mut loader = EbpfLoader::new();
    loader
        .set_max_entries(names::MAP_FLOWS, opts.flow_entries)
        .set_max_entries(names::MAP_SYN_EVENTS, opts.ring_bytes)
        // Read-only data: the verifier sees these values and prunes the code they disable.
        .set_global(names::GLOBAL_FLOWS, &flows, true)
        .set_global(names::GLOBAL_MAX_SYN_RATE, &opts.max_syn_rate, true);
    loader
        .load(OBJECT)
        .map_err(|e| CaptureError::Load(with_sources(&e)))
}

/// An error and its sources, `a: b: c` (aya's map errors keep the OS error in the source).
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Some wrappers repeat their source's message in their own.
        let text = c.to_string();
        if !s.ends_with(&text) {
            s.push_str(&format!(": {text}"));
        }
        cur = c.source();
    }
    s
}

/// `capture --check`: whether this kernel can run the datapath, without touching any
/// interface. Probes each feature of [`crate::floor`], then loads every program through the
/// verifier (TC ingress, TC egress, XDP, and the two decapsulation programs) and detaches nothing
/// because nothing is attached.
/// Each result goes to `out` as one line (`feature ...: ok|MISSING`, `verifier PROGRAM:
/// accepted|REJECTED`); a rejection is followed by the whole verifier log, since this is the
/// command to run when the tail in the usual error is not enough. Fails with
/// [`CaptureError::CheckFailed`] naming what failed.
pub fn check_kernel(out: &mut dyn FnMut(&str)) -> Result<()> {
    object_available()?;
    check_privileges()?;
    out(&format!("kernel {}", crate::floor::kernel_release()));
    let mut failed: Vec<String> = Vec::new();
    for f in crate::floor::Feature::ALL {
        let modes = if f.needed_by(Mode::Tc) {
            "tc, xdp"
        } else {
            "xdp"
        };
        let status = match f.probe() {
            Ok(()) => "ok".to_string(),
            Err(e) => {
                failed.push(format!("{} missing", f.describe()));
                format!("MISSING ({e})")
            }
        };
        out(&format!(
            "feature {} ({}; --mode {modes}): {status}",
            f.describe(),
            f.since()
        ));
    }
    let mut ebpf = match load_object(Options::default()) {
        Ok(e) => e,
        Err(e) => {
            out(&format!("object: NOT LOADED ({e})"));
            failed.push("the eBPF object could not be loaded".into());
            return Err(CaptureError::CheckFailed(failed.join("; ")));
        }
    };
    for name in [
        names::PROG_TC,
        names::PROG_TC_EGRESS,
        names::PROG_TC_DECAP,
        names::PROG_XDP,
        names::PROG_XDP_DECAP,
    ] {
        let name: &'static str = name;
        let loaded = match ebpf.program_mut(name) {
            None => Err(CaptureError::Load(format!(
                "program {name} not in the object"
            ))),
            Some(aya::programs::Program::SchedClassifier(p)) => {
                p.load().map_err(|e| load_err(name, e, None))
            }
            Some(aya::programs::Program::Xdp(p)) => p.load().map_err(|e| load_err(name, e, None)),
            Some(_) => Err(CaptureError::Load(format!(
                "{name}: unexpected program type"
            ))),
        };
        match loaded {
            Ok(()) => out(&format!("verifier {name}: accepted")),
            Err(CaptureError::Verifier {
                program,
                reason,
                log,
            }) => {
                out(&format!("verifier {program}: REJECTED ({reason})"));
                out(&format!("--- verifier log of {program} (whole) ---"));
                out(&log);
                out(&format!("--- end of verifier log of {program} ---"));
                failed.push(format!("{program} rejected by the verifier"));
            }
            Err(e) => {
                out(&format!("verifier {name}: NOT LOADED ({e})"));
                failed.push(format!("{name} not loaded"));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CaptureError::CheckFailed(failed.join("; ")))
    }
}

/// Loads a decapsulation program and puts it at index 0 of the program array its hooks
/// tail-call through, before any hook is attached: a hook that finds the array empty counts
/// the packet as lost (`decap_lost`) instead of parsing it.
fn fill_decap(ebpf: &mut Ebpf, program: &'static str, array: &'static str) -> Result<()> {
    let missing = || CaptureError::Load(format!("program {program} not in the object"));
    let fd = match ebpf.program_mut(program).ok_or_else(missing)? {
        aya::programs::Program::SchedClassifier(p) => {
            p.load()
                .map_err(|e| load_err(program, e, Some(VERIFIER_TAIL_LINES)))?;
            p.fd()
        }
        aya::programs::Program::Xdp(p) => {
            p.load()
                .map_err(|e| load_err(program, e, Some(VERIFIER_TAIL_LINES)))?;
            p.fd()
        }
        _ => {
            return Err(CaptureError::Load(format!(
                "{program}: unexpected program type"
            )));
        }
    }
    .map_err(|e| CaptureError::Load(format!("{program}: {e}")))?
    .try_clone()
    .map_err(|e| CaptureError::Load(format!("{program}: {e}")))?;
    let map_err = |reason: String| CaptureError::Map { map: array, reason };
    let map = ebpf
        .map_mut(array)
        .ok_or_else(|| map_err("not in the object".into()))?;
    let mut progs =
        ProgramArray::try_from(map).map_err(|e| map_err(format!("not a program array: {e}")))?;
    progs
        .set(0, &fd, 0)
        .map_err(|e| map_err(format!("setting index 0 to {program}: {e}")))
}

fn attach_tc(ebpf: &mut Ebpf, iface: &str) -> Result<String> {
    fill_decap(ebpf, names::PROG_TC_DECAP, names::MAP_DECAP_TC)?;
    let mut how = "tcx";
    for (name, at) in [
        (names::PROG_TC, TcAttachType::Ingress),
        (names::PROG_TC_EGRESS, TcAttachType::Egress),
    ] {
        let name: &'static str = name;
        // Stale netlink filters from a killed run on a pre-TCX kernel (none under TCX).
        let _ = tc::qdisc_detach_program(iface, at, name);
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| CaptureError::Load(format!("program {name} not in the object")))?
            .try_into()
            .map_err(|e: ProgramError| CaptureError::Load(format!("{name}: {e}")))?;
        prog.load()
            .map_err(|e| load_err(name, e, Some(VERIFIER_TAIL_LINES)))?;
        match prog.attach_with_options(iface, at, TcAttachOptions::TcxOrder(LinkOrder::default())) {
            Ok(_) => {}
            Err(tcx_err) => {
                // Kernels before 6.6 have no TCX: classic clsact + cls_bpf filter. When that
                // fails too, the kernel lacks a TC hook (sch_ingress or cls_bpf not built):
                // say so in kernel terms rather than as two raw errors.
                how = "clsact";
                let no_hook = |clsact: String| CaptureError::Kernel {
                    release: crate::floor::kernel_release(),
                    feature: "a TC hook (neither TCX nor clsact + cls_bpf worked)",
                    needs: "TCX, Linux >= 6.6, or the clsact qdisc with cls_bpf filters, \
                            CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF",
                    cause: format!("TCX: {tcx_err}; clsact: {clsact}"),
                };
                if let Err(e) = tc::qdisc_add_clsact(iface)
                    && e.kind() != io::ErrorKind::AlreadyExists
                {
                    return Err(no_hook(format!("adding the qdisc: {e}")));
                }
                prog.attach_with_options(iface, at, TcAttachOptions::Netlink(NlOptions::default()))
                    .map_err(|e| no_hook(format!("cls_bpf filter: {e}")))?;
            }
        }
    }
    Ok(format!("{how} ingress+egress"))
}

fn attach_xdp(ebpf: &mut Ebpf, iface: &str, ifindex: u32) -> Result<String> {
    fill_decap(ebpf, names::PROG_XDP_DECAP, names::MAP_DECAP_XDP)?;
    let name = names::PROG_XDP;
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| CaptureError::Load(format!("program {name} not in the object")))?
        .try_into()
        .map_err(|e: ProgramError| CaptureError::Load(format!("{name}: {e}")))?;
    prog.load()
        .map_err(|e| load_err(name, e, Some(VERIFIER_TAIL_LINES)))?;
    match prog.attach_to_if_index(ifindex, XdpFlags::DRV_MODE) {
        Ok(_) => Ok("xdp native".into()),
        Err(native) => match prog.attach_to_if_index(ifindex, XdpFlags::SKB_MODE) {
            Ok(_) => Ok("xdp generic".into()),
            Err(generic) => Err(CaptureError::Attach {
                program: name,
                iface: iface.to_string(),
                mode: "xdp".into(),
                reason: format!("native: {native}; generic: {generic}"),
            }),
        },
    }
}

/// `union bpf_attr` as used by the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per syscall. Must exceed the longest hash bucket (else ENOSPC, handled
/// by growing); 4096 keeps each call around 480 KiB of buffers.
const BATCH: usize = 4096;

/// Reads every entry of a `FlowKey -> FlowCounters` hash map.
///
/// Hash maps have no snapshot semantics: entries added or evicted during the walk may or may
/// not appear, which is fine for periodic counters.
fn batch_lookup(fd: RawFd, out: &mut Vec<(FlowKey, FlowCounters)>) -> io::Result<()> {
    let mut chunk = BATCH;
    let mut keys = vec![0u8; chunk * FlowKey::SIZE];
    let mut values = vec![0u8; chunk * FlowCounters::SIZE];
    // Opaque position tokens (a bucket index for hash maps); 8 bytes is enough for all types.
    let mut in_batch = [0u8; 8];
    let mut out_batch = [0u8; 8];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { in_batch.as_ptr() as u64 },
            out_batch: out_batch.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` describes buffers of `count` keys and values of the map's sizes
        // (FlowKey / FlowCounters, checked by the verifier-facing layout) and two 8-byte
        // tokens, all alive and exclusively borrowed for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as libc::c_uint,
            )
        };
        let err = if rc < 0 {
            Some(io::Error::last_os_error())
        } else {
            None
        };
        let done = match &err {
            None => false,
            Some(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Some(e) if e.raw_os_error() == Some(libc::ENOSPC) && attr.count == 0 => {
                // A bucket holds more entries than `chunk`: retry the same position bigger.
                chunk *= 2;
                keys.resize(chunk * FlowKey::SIZE, 0);
                values.resize(chunk * FlowCounters::SIZE, 0);
                continue;
            }
            Some(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        };
        let n = (attr.count as usize).min(chunk);
        for i in 0..n {
            let k = keys
                .get(i * FlowKey::SIZE..(i + 1) * FlowKey::SIZE)
                .map(bytemuck::pod_read_unaligned::<FlowKey>);
            let v = values
                .get(i * FlowCounters::SIZE..(i + 1) * FlowCounters::SIZE)
                .map(bytemuck::pod_read_unaligned::<FlowCounters>);
            if let (Some(k), Some(v)) = (k, v) {
                out.push((k, v));
            }
        }
        if done {
            return Ok(());
        }
        in_batch = out_batch;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_tail_keeps_the_end() {
        let log =
            "0: (b7) r0 = 0\n\n1: (95) exit\nR1 invalid mem access 'scalar'\n\nprocessed 2 insns\n";
        assert_eq!(
            verifier_tail(log, 2),
            "R1 invalid mem access 'scalar'\nprocessed 2 insns"
        );
        assert_eq!(verifier_tail(log, 100).lines().count(), 4);
        assert_eq!(verifier_tail("", 5), "");
    }

    #[test]
    fn unknown_interface_is_reported() {
        let e = ifindex("synscope-no-such-if0").unwrap_err();
        assert!(e.to_string().contains("unknown interface"), "{e}");
        assert!(matches!(
            ifindex("bad\0name"),
            Err(CaptureError::UnknownInterface(_))
        ));
    }
}
