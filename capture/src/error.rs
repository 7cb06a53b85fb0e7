//! Errors of the capture library. Every variant is something the user can act on; `main`
//! prints them as `error: {err:#}` and exits with status 2.

use std::io;
use std::path::PathBuf;

/// What can stop a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The binary was built without the BPF toolchain, so it carries no eBPF object.
    #[error(
        "this capture binary has no eBPF object ({0}); install the toolchain with \
         scripts/ebpf-toolchain.sh (nightly + rust-src + bpf-linker) and rebuild"
    )]
    NoObject(&'static str),
    /// Missing privileges.
    #[error(
        "capture needs root or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON (missing: {missing}); \
         run it with sudo"
    )]
    NotPrivileged {
        /// Names of the missing capabilities.
        missing: String,
    },
    /// The interface does not exist.
    #[error("unknown interface {0:?}")]
    UnknownInterface(String),
    /// The kernel refused a program; `log` is the useful end of the verifier log
    /// (`capture --check` prints all of it).
    #[error(
        "the kernel verifier rejected {program}: {reason}\nverifier log (tail; `capture --check` \
         prints all of it):\n{log}"
    )]
    Verifier {
        /// Program name.
        program: &'static str,
        /// The load syscall's error.
        reason: io::Error,
        /// Last lines of the verifier log.
        log: String,
    },
    /// The running kernel lacks a feature the datapath needs (see [`crate::floor`]).
    #[error(
        "kernel {release} lacks {feature} (needs {needs}; {cause}). {}",
        crate::floor::FLOOR
    )]
    Kernel {
        /// `uname -r`, with the upstream version when it differs.
        release: String,
        /// What is missing.
        feature: &'static str,
        /// The release (or configuration) that provides it.
        needs: &'static str,
        /// The probe's or the attach's error.
        cause: String,
    },
    /// `capture --check` found a problem; the details were printed above it.
    #[error("kernel check failed: {0}")]
    CheckFailed(String),
    /// Loading the object or a program failed for another reason.
    #[error("loading the eBPF object: {0}")]
    Load(String),
    /// The hook could not be attached in the requested mode.
    #[error("cannot attach {program} to {iface} in {mode} mode: {reason}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Interface name.
        iface: String,
        /// The mode asked for.
        mode: String,
        /// Why.
        reason: String,
    },
    /// A map was missing or had an unexpected shape.
    #[error("eBPF map {map}: {reason}")]
    Map {
        /// Map name.
        map: &'static str,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        cause: io::Error,
    },
    /// A journal file is not one of ours or is damaged beyond its last whole frame.
    #[error("journal {}: {reason}", path.display())]
    Journal {
        /// The journal.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing a Parquet recording failed.
    #[error("writing {}: {cause}", path.display())]
    Recording {
        /// The output file.
        path: PathBuf,
        /// The writer's error.
        cause: formats::recording::RecordingError,
    },
    /// A system call of the main loop failed.
    #[error("{call}: {cause}")]
    Sys {
        /// Which call.
        call: &'static str,
        /// The OS error.
        cause: io::Error,
    },
    /// Another capture holds the journal lock for this output.
    #[error(
        "another capture is writing {} (same --out, or same --out-dir and interface); stop it or \
         choose another output",
        .0.display()
    )]
    Busy(PathBuf),
    /// Bad combination of options.
    #[error("{0}")]
    Usage(String),
}

/// The stop signals' calls ([`signals::StopSignals`], [`signals::poll_readable`]) fail like
/// the main loop's other system calls.
impl From<signals::SysError> for CaptureError {
    fn from(e: signals::SysError) -> CaptureError {
        CaptureError::Sys {
            call: e.call,
            cause: e.cause,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;

/// Builds a [`CaptureError::Io`] for `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CaptureError {
    let path = path.into();
    move |cause| CaptureError::Io { path, cause }
}
