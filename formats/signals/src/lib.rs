//! SIGINT and SIGTERM, the signals that ask synscope's binaries to stop, in one place.
//!
//! Killed outright, a run leaves files half-written under their temporary names and prints
//! no report, so both binaries catch these two signals and stop cleanly. They wait in two
//! ways, and this crate has both, so the signal set and the unsafe libc calls exist once:
//!
//! - [`catch`] (`analyze`): a handler that only notes the signal ([`STOP`], [`caught`]).
//!   Reader threads check the flag between reads; the handler is installed with
//!   `SA_RESETHAND`, so a second signal ends the process the usual way (a stream whose writer
//!   does not stop, a run that does not stop fast enough).
//! - [`StopSignals`] (`capture`, Linux): the signals are blocked and read through a
//!   `signalfd`, so a `poll` loop sees them next to its other descriptors ([`poll_readable`])
//!   and no handler runs at all.
//!
//! It sits in `formats/` beside `record` and `packet`, the other small crates both binaries
//! share; it knows nothing of files or records.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// A system call that failed, with the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {cause}")]
pub struct SysError {
    /// Which call.
    pub call: &'static str,
    /// The OS error.
    pub cause: io::Error,
}

impl SysError {
    /// `call` failed with the thread's last OS error.
    #[cfg(unix)]
    fn last(call: &'static str) -> SysError {
        SysError {
            call,
            cause: io::Error::last_os_error(),
        }
    }
}

/// The signals that ask for a clean stop.
#[cfg(unix)]
pub const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Set when [`catch`]'s handler noted a signal: what a run's threads watch to stop early.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The number of the signal [`catch`]'s handler noted, 0 before any.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signal [`catch`]'s handler noted, if any.
pub fn caught() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Catches the next SIGINT and the next SIGTERM: each only sets [`STOP`] and the number
/// [`caught`] returns; a second one ends the process as if uncaught.
#[cfg(unix)]
pub fn catch() -> io::Result<()> {
    extern "C" fn note(signal: libc::c_int) {
        // Atomics only: async-signal-safe.
        SIGNAL.store(signal, Ordering::SeqCst);
        STOP.store(true, Ordering::SeqCst);
    }
    let handler: extern "C" fn(libc::c_int) = note;
    for signal in STOP_SIGNALS {
        // SAFETY: `act` is fully initialised (zeroed, then an empty mask, the flags and a
        // handler that only stores to atomics); no old action is read.
        let rc = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            libc::sigemptyset(&mut act.sa_mask);
            act.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
            act.sa_sigaction = handler as libc::sighandler_t;
            libc::sigaction(signal, &act, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Without Unix signals there is nothing to catch.
#[cfg(not(unix))]
pub fn catch() -> io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
pub use descriptor::{StopSignals, poll_readable};

#[cfg(target_os = "linux")]
mod descriptor {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    use super::{STOP_SIGNALS, SysError};

    /// The stop signals, blocked, and the descriptor they are read from.
    #[derive(Debug)]
    pub struct StopSignals {
        fd: OwnedFd,
    }

    impl StopSignals {
        /// Blocks SIGINT and SIGTERM in the calling thread (call before spawning threads, which
        /// inherit the mask) and opens a non-blocking signalfd for them.
        pub fn install() -> Result<StopSignals, SysError> {
            // SAFETY: `set` is a plain sigset_t initialised by sigemptyset before use; the
            // calls only read/write it and the thread's signal mask.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                for signal in STOP_SIGNALS {
                    libc::sigaddset(&mut set, signal);
                }
                if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                    return Err(SysError::last("pthread_sigmask"));
                }
                let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
                if fd < 0 {
                    return Err(SysError::last("signalfd"));
                }
                Ok(StopSignals {
                    fd: OwnedFd::from_raw_fd(fd),
                })
            }
        }

        /// The descriptor to poll.
        pub fn fd(&self) -> RawFd {
            self.fd.as_raw_fd()
        }

        /// The pending stop signal's number, if any (consumes it).
        pub fn take(&self) -> Option<u32> {
            // SAFETY: signalfd_siginfo is plain data; read() writes at most its size into it.
            unsafe {
                let mut info: libc::signalfd_siginfo = std::mem::zeroed();
                let n = libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size_of::<libc::signalfd_siginfo>(),
                );
                if n == size_of::<libc::signalfd_siginfo>() as isize {
                    Some(info.ssi_signo)
                } else {
                    None
                }
            }
        }
    }

    /// Waits until one of `fds` is readable or `timeout_ms` passes; returns which are
    /// readable (none when a signal interrupted the wait).
    pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> Result<Vec<bool>, SysError> {
        let mut p: Vec<libc::pollfd> = fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `p` is a valid array of `p.len()` pollfd structs for the duration of the call.
        let rc = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(vec![false; fds.len()]);
            }
            return Err(SysError {
                call: "poll",
                cause: e,
            });
        }
        Ok(p.iter().map(|x| x.revents & libc::POLLIN != 0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_reports_a_readable_descriptor_and_times_out_on_an_empty_one() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (read, write) = (fds[0], fds[1]);
        assert_eq!(poll_readable(&[read], 0).expect("polls"), [false]);
        // SAFETY: one byte from a valid buffer to the pipe's write end.
        assert_eq!(unsafe { libc::write(write, b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(poll_readable(&[read], 1000).expect("polls"), [true]);
        // SAFETY: both descriptors are ours and closed once.
        unsafe {
            libc::close(read);
            libc::close(write);
        }
    }

    #[test]
    fn nothing_is_caught_before_a_signal() {
        // Installing the handler changes nothing until a signal comes (raising one here would
        // stop every other test of this binary).
        catch().expect("installs");
        assert_eq!(caught(), None);
        assert!(!STOP.load(Ordering::SeqCst));
    }
}
