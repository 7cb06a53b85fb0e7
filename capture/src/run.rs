//! [`run`] drives a [`Session`] until a signal or the end of `--duration`.

use signals::{StopSignals, poll_readable};

use crate::config::{Config, Summary};
use crate::error::{CaptureError, Result};
use crate::session::Session;

/// Runs a capture to completion. `log` receives progress lines meant for a human (the
/// binary prints them on stderr), notably one starting with `attached` once the hooks are
/// live.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<Summary> {
    if cfg.flush_interval.is_zero() || cfg.flow_interval.is_zero() {
        return Err(CaptureError::Usage("intervals must be positive".into()));
    }
    if !cfg.ring_mib.is_power_of_two() || cfg.ring_mib > 1024 {
        return Err(CaptureError::Usage(
            "--ring-mib must be a power of two, at most 1024".into(),
        ));
    }
    // Blocked before anything else so a Ctrl-C during setup still ends in a clean stop.
    let signals = StopSignals::install()?;
    let mut session = Session::start(cfg, log)?;
    loop {
        let timeout_ms = session.wait_ms()?;
        let ready = poll_readable(&[signals.fd()], timeout_ms)?;
        if let Some(sig) = ready
            .first()
            .copied()
            .unwrap_or(false)
            .then(|| signals.take())
            .flatten()
        {
            let by = match sig as i32 {
                libc::SIGINT => "SIGINT".into(),
                libc::SIGTERM => "SIGTERM".into(),
                n => format!("signal {n}"),
            };
            return session.stop(by, log);
        }
        if !session.tick(log)? {
            return session.stop("end of --duration".into(), log);
        }
    }
}
