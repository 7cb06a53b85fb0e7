//! SIGINT / SIGTERM as a pollable file descriptor.
//!
//! The signals are blocked for the whole process and read through a `signalfd`, so the main
//! loop sees them in the same `poll` as the ring buffer and can stop cleanly (drain, flush,
//! close, detach) instead of dying mid-write. No async-signal-safety concerns arise because no
//! handler runs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{CaptureError, Result};

/// The blocked signals and their descriptor.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
}

fn sys(call: &'static str) -> CaptureError {
    CaptureError::Sys {
        call,
        cause: io::Error::last_os_error(),
    }
}

impl StopSignals {
    /// Blocks SIGINT and SIGTERM in the calling thread (call before spawning threads) and
    /// opens a non-blocking signalfd for them.
    pub fn install() -> Result<StopSignals> {
        // SAFETY: `set` is a plain sigset_t initialised by sigemptyset before use; the calls
        // only read/write it and the thread's signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(sys("pthread_sigmask"));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(sys("signalfd"));
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

/// Waits until one of `fds` is readable or `timeout_ms` passes; returns which are readable.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> Result<Vec<bool>> {
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
        return Err(CaptureError::Sys {
            call: "poll",
            cause: e,
        });
    }
    Ok(p.iter().map(|x| x.revents & libc::POLLIN != 0).collect())
}
