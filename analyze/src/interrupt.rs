//! Ctrl-C (SIGINT) and SIGTERM, caught once.
//!
//! Killed outright, a run prints nothing and leaves its Parquet files half-written under
//! their temporary names, where a later `analyze` of the same folder trips over them. So
//! [`catch`] installs a handler that only notes the signal ([`caught`], [`STOP`]), and the run
//! decides what the note means:
//! - over files, the replay stops within a window or a batch, the temporary files are
//!   removed, and `main` exits with 128 + the signal's number;
//! - with a live stream among the inputs (`tcpdump -U -w - | analyze -`), the signal reached
//!   the capture program too, which closes the pipe: the replay reads on to the stream's end
//!   and finishes its report and files as usual.
//!
//! The handler is installed with `SA_RESETHAND`, so a second signal ends the process the
//! usual way (a stream whose writer does not stop, a run that does not stop fast enough).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set when a signal was caught: what a replay over files watches to stop early.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The number of the signal caught, 0 before any.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signal caught, if any.
pub fn caught() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Catches the next SIGINT and the next SIGTERM (see the module documentation).
#[cfg(unix)]
pub fn catch() -> io::Result<()> {
    extern "C" fn note(signal: libc::c_int) {
        // Atomics only: async-signal-safe.
        SIGNAL.store(signal, Ordering::SeqCst);
        STOP.store(true, Ordering::SeqCst);
    }
    let handler: extern "C" fn(libc::c_int) = note;
    for signal in [libc::SIGINT, libc::SIGTERM] {
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

#[cfg(not(unix))]
pub fn catch() -> io::Result<()> {
    Ok(())
}
