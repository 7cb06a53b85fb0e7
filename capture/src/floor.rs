//! The kernel floor: which kernel features the datapath needs, probed before anything loads.
//!
//! Without this check an old kernel shows up as a raw verifier log (`unknown opcode`,
//! `invalid func unknown#189`) or a bare `Invalid argument` from a map create, which tells the
//! user nothing about what to upgrade. Each feature is probed directly (create the map, load a
//! five-instruction program that uses the instruction or helper) rather than inferred from the
//! version number, because distribution kernels backport BPF features (RHEL 8's 4.18 has the
//! ring buffer) and a version check would refuse kernels that work. The version only appears
//! in the message, next to the release that introduced the missing feature.
//!
//! What the datapath uses and where it came from:
//!
//! | feature | Linux | used by |
//! |---|---|---|
//! | BPF ring buffer map | 5.8 | every mode (`SYN_EVENTS`) |
//! | BPF atomics (`cmpxchg`, `or`, fetch; the object is built for BPF ISA v3) | 5.12 | every mode (flow counters) |
//! | `bpf_xdp_load_bytes` helper | 5.18 | `--mode xdp` |
//! | TCX links, else clsact qdisc + cls_bpf filter | 6.6, else 4.5 | `--mode tc` (checked when attaching) |
//!
//! BTF is not needed: the object has no CO-RE relocations and aya loads its BTF only when the
//! kernel accepts it. So the floor is Linux 5.12 for `--mode tc` and 5.18 for `--mode xdp`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::error::{CaptureError, Result};
use crate::mode::Mode;

/// The floor in one sentence, appended to every kernel-feature error.
pub const FLOOR: &str = "capture needs Linux >= 5.12 for --mode tc and >= 5.18 for --mode xdp \
                         (CI tests 6.1, 6.12 and its host's kernel)";

/// A kernel feature the datapath needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// `BPF_MAP_TYPE_RINGBUF`.
    RingBuf,
    /// BPF ISA v3 atomics: `BPF_CMPXCHG`, `BPF_OR`, `BPF_FETCH`.
    Atomics,
    /// The `bpf_xdp_load_bytes` helper.
    XdpLoadBytes,
}

impl Feature {
    /// Every feature, in the order they are checked (oldest first, so the message names the
    /// first thing to upgrade for).
    pub const ALL: [Feature; 3] = [Feature::RingBuf, Feature::Atomics, Feature::XdpLoadBytes];

    /// What it is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::RingBuf => "the BPF ring buffer map (BPF_MAP_TYPE_RINGBUF)",
            Feature::Atomics => "BPF atomics (cmpxchg, atomic or; BPF ISA v3)",
            Feature::XdpLoadBytes => "the bpf_xdp_load_bytes helper",
        }
    }

    /// The first mainline release that has it.
    pub fn since(self) -> &'static str {
        match self {
            Feature::RingBuf => "Linux >= 5.8",
            Feature::Atomics => "Linux >= 5.12",
            Feature::XdpLoadBytes => "Linux >= 5.18",
        }
    }

    /// Whether `mode` needs it.
    pub fn needed_by(self, mode: Mode) -> bool {
        match self {
            Feature::RingBuf | Feature::Atomics => true,
            Feature::XdpLoadBytes => mode == Mode::Xdp,
        }
    }

    /// Asks the running kernel.
    pub fn probe(self) -> io::Result<()> {
        match self {
            Feature::RingBuf => probe_ringbuf(),
            Feature::Atomics => probe_atomics(),
            Feature::XdpLoadBytes => probe_xdp_load_bytes(),
        }
    }
}

/// The running kernel: `uname -r` and, when it can be worked out, the upstream version
/// (Debian's `6.1.0-50-amd64` is really 6.1.176, which aya reads from `uname -v`).
pub fn kernel_release() -> String {
    // SAFETY: `utsname` is plain old data; `uname` fills it and NUL-terminates its fields.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable `utsname`.
    let release = if unsafe { libc::uname(&mut u) } == 0 {
        // SAFETY: on success `release` is a NUL-terminated string inside `u`.
        unsafe { CStr::from_ptr(u.release.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        "unknown".to_string()
    };
    match aya::util::KernelVersion::current() {
        Ok(v) => {
            let code = v.code();
            // `code()` is LINUX_VERSION_CODE, whose patch level saturates at 255.
            let upstream = match code & 0xff {
                255 => format!("{}.{}", code >> 16, (code >> 8) & 0xff),
                patch => format!("{}.{}.{patch}", code >> 16, (code >> 8) & 0xff),
            };
            if release.starts_with(&upstream) {
                release
            } else {
                format!("{release} (Linux {upstream})")
            }
        }
        Err(_) => release,
    }
}

/// The decision, apart from the probing so it can be tested: the first feature `mode` needs
/// whose probe failed becomes the error.
pub fn decide(mode: Mode, release: &str, probes: &[(Feature, io::Result<()>)]) -> Result<()> {
    for (feature, outcome) in probes {
        if let Err(e) = outcome
            && feature.needed_by(mode)
        {
            return Err(CaptureError::Kernel {
                release: release.to_string(),
                feature: feature.describe(),
                needs: feature.since(),
                cause: format!("probe: {e}"),
            });
        }
    }
    Ok(())
}

/// Probes what `mode` needs and fails with [`CaptureError::Kernel`] naming the first missing
/// feature and the release that introduced it. Needs the BPF privileges (check them first).
pub fn check(mode: Mode) -> Result<()> {
    let probes: Vec<(Feature, io::Result<()>)> = Feature::ALL
        .iter()
        .filter(|f| f.needed_by(mode))
        .map(|f| (*f, f.probe()))
        .collect();
    if probes.iter().all(|(_, r)| r.is_ok()) {
        return Ok(());
    }
    decide(mode, &kernel_release(), &probes)
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_FUNC_XDP_LOAD_BYTES: i32 = 189;

/// The leading fields of `union bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD` (up to `expected_attach_type`,
/// which every kernel since 4.17 knows; older ones accept the zeroed tail).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// One BPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high one (little-endian bitfields).
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes used below: BPF_ALU64|BPF_MOV|BPF_K, BPF_ALU64|BPF_MOV|BPF_X,
// BPF_ALU64|BPF_ADD|BPF_K, BPF_STX|BPF_MEM|BPF_DW, BPF_STX|BPF_ATOMIC|BPF_DW,
// BPF_JMP|BPF_CALL, BPF_JMP|BPF_EXIT.
const MOV64_IMM: u8 = 0xb7;
const MOV64_REG: u8 = 0xbf;
const ADD64_IMM: u8 = 0x07;
const STX_DW: u8 = 0x7b;
const ATOMIC_DW: u8 = 0xdb;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
/// `BPF_CMPXCHG` (`0xf0 | BPF_FETCH`).
const BPF_CMPXCHG: i32 = 0xf1;

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a `#[repr(C)]` prefix of `union bpf_attr` for `cmd`, alive and
    // exclusively borrowed for the call; pointers inside it point at live buffers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            size_of::<T>() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the syscall returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn load(prog_type: u32, insns: &[Insn]) -> io::Result<()> {
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    sys_bpf(BPF_PROG_LOAD, &mut attr).map(drop)
}

fn probe_ringbuf() -> io::Result<()> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_RINGBUF,
        max_entries: u32::try_from(page).unwrap_or(4096),
        ..MapCreateAttr::default()
    };
    sys_bpf(BPF_MAP_CREATE, &mut attr).map(drop)
}

fn probe_atomics() -> io::Result<()> {
    // *(u64 *)(fp - 8) = 0; r0 = cmpxchg(fp - 8, r0 = 0, r1 = 1); return 0
    load(
        BPF_PROG_TYPE_SOCKET_FILTER,
        &[
            insn(MOV64_IMM, 0, 0, 0, 0),
            insn(STX_DW, 10, 0, -8, 0),
            insn(MOV64_IMM, 1, 0, 0, 1),
            insn(ATOMIC_DW, 10, 1, -8, BPF_CMPXCHG),
            insn(MOV64_IMM, 0, 0, 0, 0),
            insn(EXIT, 0, 0, 0, 0),
        ],
    )
}

fn probe_xdp_load_bytes() -> io::Result<()> {
    // bpf_xdp_load_bytes(ctx, 0, fp - 8, 1); return XDP_PASS
    load(
        BPF_PROG_TYPE_XDP,
        &[
            insn(MOV64_IMM, 2, 0, 0, 0),
            insn(MOV64_REG, 3, 10, 0, 0),
            insn(ADD64_IMM, 3, 0, 0, -8),
            insn(MOV64_IMM, 4, 0, 0, 1),
            insn(CALL, 0, 0, 0, BPF_FUNC_XDP_LOAD_BYTES),
            insn(MOV64_IMM, 0, 0, 0, 2),
            insn(EXIT, 0, 0, 0, 0),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }

    #[test]
    fn all_present_is_ok() {
        let probes = Feature::ALL.map(|f| (f, Ok(())));
        assert!(decide(Mode::Tc, "6.1.0", &probes).is_ok());
        assert!(decide(Mode::Xdp, "6.1.0", &probes).is_ok());
    }

    #[test]
    fn the_first_missing_feature_is_named_with_its_release() {
        let probes = [
            (Feature::RingBuf, missing()),
            (Feature::Atomics, missing()),
            (Feature::XdpLoadBytes, missing()),
        ];
        let e = decide(Mode::Tc, "5.4.0-150-generic", &probes).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, CaptureError::Kernel { .. }));
        assert!(msg.contains("5.4.0-150-generic"), "{msg}");
        assert!(msg.contains("BPF ring buffer"), "{msg}");
        assert!(msg.contains("Linux >= 5.8"), "{msg}");
        assert!(msg.contains("Invalid argument"), "{msg}");
        assert!(msg.contains(FLOOR), "{msg}");
    }

    #[test]
    fn atomics_missing_names_5_12() {
        let probes = [(Feature::RingBuf, Ok(())), (Feature::Atomics, missing())];
        let msg = decide(Mode::Xdp, "5.10.0-30-amd64", &probes)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("BPF atomics") && msg.contains("Linux >= 5.12"),
            "{msg}"
        );
    }

    #[test]
    fn xdp_helper_only_matters_for_xdp() {
        let probes = [
            (Feature::RingBuf, Ok(())),
            (Feature::Atomics, Ok(())),
            (Feature::XdpLoadBytes, missing()),
        ];
        assert!(decide(Mode::Tc, "5.15.0", &probes).is_ok());
        let msg = decide(Mode::Xdp, "5.15.0", &probes)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("bpf_xdp_load_bytes") && msg.contains("Linux >= 5.18"),
            "{msg}"
        );
    }

    /// The hand-assembled probes must pass on any kernel the tests run on (>= 5.18 with BPF
    /// privileges); a wrong encoding would otherwise refuse every kernel. CI runs it with
    /// `--ignored`, as root.
    #[test]
    #[ignore = "needs root (it loads BPF programs): run with --ignored"]
    fn probes_pass_here() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "needs root");
        for f in Feature::ALL {
            if let Err(e) = f.probe() {
                panic!("{f:?} probe failed on {}: {e}", kernel_release());
            }
        }
        assert!(check(Mode::Tc).is_ok() && check(Mode::Xdp).is_ok());
        // And they test what they say: the same program with an atomic operation that does
        // not exist, or a helper that does not exist, is refused.
        let bad_atomic = load(
            BPF_PROG_TYPE_SOCKET_FILTER,
            &[
                insn(MOV64_IMM, 0, 0, 0, 0),
                insn(STX_DW, 10, 0, -8, 0),
                insn(MOV64_IMM, 1, 0, 0, 1),
                insn(ATOMIC_DW, 10, 1, -8, 0x0f),
                insn(MOV64_IMM, 0, 0, 0, 0),
                insn(EXIT, 0, 0, 0, 0),
            ],
        );
        assert!(bad_atomic.is_err(), "an invalid atomic op was accepted");
        let bad_helper = load(
            BPF_PROG_TYPE_XDP,
            &[
                insn(CALL, 0, 0, 0, 100_000),
                insn(MOV64_IMM, 0, 0, 0, 2),
                insn(EXIT, 0, 0, 0, 0),
            ],
        );
        assert!(bad_helper.is_err(), "an unknown helper was accepted");
    }
}
