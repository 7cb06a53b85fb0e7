//! Kernel timestamps to UTC.
//!
//! The datapath stamps packets with `bpf_ktime_get_ns()` (CLOCK_MONOTONIC). At start the
//! capture measures `CLOCK_REALTIME - CLOCK_MONOTONIC` once (the tightest of a few paired
//! reads) and adds it to every timestamp, so a recording's times stay monotonic even if NTP
//! steps the wall clock during the capture. The offset and method go into the file metadata.

use std::io;

use crate::error::{CaptureError, Result};

/// How recordings describe this clock (`synscope.clock_source`).
pub const CLOCK_SOURCE: &str = "monotonic+offset";

/// Fixed monotonic-to-UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// UTC ns minus monotonic ns.
    offset_ns: i128,
}

fn now(clock: libc::clockid_t) -> Result<i128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Err(CaptureError::Sys {
            call: "clock_gettime",
            cause: io::Error::last_os_error(),
        });
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

impl Clock {
    /// An explicit offset (tests, recovery).
    pub fn with_offset(offset_ns: i128) -> Clock {
        Clock { offset_ns }
    }

    /// Measures the offset: of 5 reads of realtime bracketed by two monotonic reads, the one
    /// with the smallest bracket wins, and the realtime read is matched to its midpoint.
    pub fn measure() -> Result<Clock> {
        let mut best: Option<(i128, i128)> = None; // (bracket width, offset)
        for _ in 0..5 {
            let m0 = now(libc::CLOCK_MONOTONIC)?;
            let r = now(libc::CLOCK_REALTIME)?;
            let m1 = now(libc::CLOCK_MONOTONIC)?;
            let width = m1 - m0;
            let offset = r - (m0 + width / 2);
            if best.is_none_or(|(w, _)| width < w) {
                best = Some((width, offset));
            }
        }
        let (_, offset_ns) = best.unwrap_or((0, 0));
        Ok(Clock { offset_ns })
    }

    /// The offset in ns (UTC minus monotonic).
    pub fn offset_ns(&self) -> i128 {
        self.offset_ns
    }

    /// Converts a monotonic timestamp to ns since the Unix epoch, clamped to `u64`.
    pub fn to_utc(&self, mono_ns: u64) -> u64 {
        let v = i128::from(mono_ns) + self.offset_ns;
        v.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Current monotonic time, ns.
    pub fn mono_now() -> Result<u64> {
        Ok(now(libc::CLOCK_MONOTONIC)?.max(0) as u64)
    }

    /// Current time as ns since the Unix epoch, on this clock.
    pub fn utc_now(&self) -> Result<u64> {
        Ok(self.to_utc(Clock::mono_now()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn offset_matches_system_time() {
        let c = Clock::measure().unwrap();
        let ours = c.utc_now().unwrap() as i128;
        let std_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        // Both read CLOCK_REALTIME (directly or via the offset) microseconds apart.
        assert!((ours - std_now).abs() < 50_000_000, "{ours} vs {std_now}");
    }

    #[test]
    fn conversion_clamps() {
        let c = Clock::with_offset(-10);
        assert_eq!(c.to_utc(5), 0);
        assert_eq!(c.to_utc(15), 5);
        let c = Clock::with_offset(10);
        assert_eq!(c.to_utc(u64::MAX), u64::MAX);
    }
}
