//! A reader that stops when asked and counts what it read: the one way both the replay
//! ([`crate::parallel`]) and `--records` ([`crate::records`]) read a capture file in order.
//!
//! A signal or an abandoned replay sets a flag; the reader checks it before each read, so a
//! large capture is not read to its end for nothing. The failure is an ordinary I/O error
//! (the capture readers pass it on as they would a disk error), whose inner error is
//! [`Stopped`].

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why a [`Stoppable`] read failed: its stop flag was set.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Stopped;

/// `inner`, failing with [`Stopped`] once `stop` is set, and adding the bytes it reads to a
/// counter (the progress bar's) when it has one.
pub struct Stoppable<'a, R> {
    inner: R,
    stop: Option<&'a AtomicBool>,
    read: Option<&'a AtomicU64>,
}

impl<'a, R: Read> Stoppable<'a, R> {
    /// Reads `inner` until `stop` (when given) is set.
    pub fn new(inner: R, stop: Option<&'a AtomicBool>) -> Self {
        Stoppable {
            inner,
            stop,
            read: None,
        }
    }

    /// Also adds every byte read to `read`.
    pub fn counting(self, read: &'a AtomicU64) -> Self {
        Stoppable {
            read: Some(read),
            ..self
        }
    }
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(io::Error::other(Stopped));
        }
        let n = self.inner.read(buf)?;
        if let Some(read) = self.read {
            read.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_counts_until_stopped() {
        let stop = AtomicBool::new(false);
        let read = AtomicU64::new(0);
        let mut r = Stoppable::new(&b"abcdef"[..], Some(&stop)).counting(&read);
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).expect("reads"), 4);
        assert_eq!(read.load(Ordering::Relaxed), 4);
        stop.store(true, Ordering::Relaxed);
        let err = r.read(&mut buf).expect_err("stopped");
        assert_eq!(err.to_string(), "interrupted");
        assert!(err.get_ref().is_some_and(|e| e.is::<Stopped>()));
        // Nothing more was read or counted.
        assert_eq!(read.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn without_a_flag_it_reads_to_the_end() {
        let mut out = Vec::new();
        Stoppable::new(&b"abc"[..], None)
            .read_to_end(&mut out)
            .expect("reads");
        assert_eq!(out, b"abc");
    }
}
