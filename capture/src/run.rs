//! The capture loop: drain the ring buffer, snapshot flows, flush journals, stop cleanly.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use formats::flows::FlowRow;
use formats::meta::{RecordType, RecordingMeta};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use record::{FlowCounters, FlowKey, SynRecord, counter};

use crate::clock::{CLOCK_SOURCE, Clock};
use crate::drain::{Drained, Drainer};
use crate::error::{CaptureError, Result};
use crate::flowtrack::FlowTracker;
use crate::journal::JournalWriter;
use crate::kernel::{Datapath, Mode, Options};
use crate::output::{self, Converted, Paths, key};
use signals::{StopSignals, poll_readable};

/// Everything a capture needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// Interface to capture on.
    pub iface: String,
    /// SYN recording path (`.flows.parquet` sibling for flows).
    pub out: PathBuf,
    /// Hook.
    pub mode: Mode,
    /// Stop after this long (else at SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// Flow snapshot period.
    pub flow_interval: Duration,
    /// Journal flush period (the most a SIGKILL can lose).
    pub flush_interval: Duration,
    /// Keep the flow table.
    pub flows: bool,
    /// Ring buffer size, MiB (power of two).
    pub ring_mib: u32,
    /// Flow table capacity.
    pub flow_entries: u32,
    /// Flood guard: SYN records kept per second per CPU (0: all).
    pub max_syn_rate: u32,
    /// Draw a status line on stderr (only honoured when stderr is a terminal).
    pub status: bool,
}

/// The longest the main loop sleeps: it takes the drained records for the flow rows at
/// least this often, which bounds the batches waiting for it.
const MAIN_PERIOD: Duration = Duration::from_millis(50);

/// Flow rows buffered before a write to the flow journal.
const ROWS_PER_WRITE: u64 = 4096;

/// Names of the kernel counters, by [`record::counter`] index, as used in metadata.
pub const COUNTER_NAMES: [(u32, &str); 7] = [
    (counter::SYN_RECORDS, "syn_records"),
    (counter::RINGBUF_FULL, "ringbuf_full"),
    (counter::FLOW_INSERT_FAILED, "flow_insert_failed"),
    (counter::SYN_UNPARSED, "syn_unparsed"),
    (counter::TCP_PACKETS, "tcp_packets"),
    (counter::SYN_SEEN, "syn_seen"),
    (counter::SYN_SAMPLED_OUT, "syn_sampled_out"),
];

/// What a finished capture did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Kernel counters at the end, by [`record::counter`] index.
    pub counters: [u64; counter::COUNT as usize],
    /// SYN records drained from the ring buffer.
    pub syn_drained: u64,
    /// Longest time between two drains, µs.
    pub drain_max_gap_us: u64,
    /// Flow rows written.
    pub flow_rows: u64,
    /// Recorded SYNs no flow row counts (see [`FlowTracker::overflow`]).
    pub flow_overflow: u64,
    /// Ring-buffer entries of the wrong size (always 0 with a matching object).
    pub malformed: u64,
    /// How the datapath was attached.
    pub attachment: String,
    /// The outputs.
    pub outputs: Converted,
    /// Outputs recovered from a killed earlier run.
    pub recovered: Option<Converted>,
    /// Why it stopped.
    pub stopped_by: String,
}

impl Summary {
    /// Human report printed at exit.
    pub fn report(&self) -> String {
        let c = |i: u32| self.counters.get(i as usize).copied().unwrap_or(0);
        let mut s = String::new();
        if let Some(r) = &self.recovered {
            s.push_str(&format!(
                "recovered a killed run: {} SYN records -> {}\n",
                r.syn.1.rows,
                r.syn.0.display()
            ));
        }
        s.push_str(&format!(
            "stopped by {}; attached as {}\n\
             SYN seen {} | recorded {} | drained {} (longest gap {} ms) | dropped (ring full) {} | unparsed {} | \
             sampled out {}\n\
             TCP packets {} | flow rows {} | flow insert failures {} | SYNs in no flow row {}\n\
             wrote {} ({} rows, {} bytes)",
            self.stopped_by,
            self.attachment,
            c(counter::SYN_SEEN),
            c(counter::SYN_RECORDS),
            self.syn_drained,
            self.drain_max_gap_us / 1000,
            c(counter::RINGBUF_FULL),
            c(counter::SYN_UNPARSED),
            c(counter::SYN_SAMPLED_OUT),
            c(counter::TCP_PACKETS),
            self.flow_rows,
            c(counter::FLOW_INSERT_FAILED),
            self.flow_overflow,
            self.outputs.syn.0.display(),
            self.outputs.syn.1.rows,
            self.outputs.syn.1.bytes,
        ));
        if let Some((p, w)) = &self.outputs.flows {
            s.push_str(&format!(
                "\nwrote {} ({} rows, {} bytes)",
                p.display(),
                w.rows,
                w.bytes
            ));
        }
        s
    }
}

fn counter_pairs(
    c: &[u64; counter::COUNT as usize],
    drained: &Drained,
    flow_overflow: u64,
) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = COUNTER_NAMES
        .iter()
        .map(|(i, n)| {
            (
                n.to_string(),
                c.get(*i as usize).copied().unwrap_or(0).to_string(),
            )
        })
        .collect();
    v.push(("syn_drained".into(), drained.records.to_string()));
    v.push(("ring_malformed".into(), drained.malformed.to_string()));
    v.push(("drain_max_gap_us".into(), drained.max_gap_us.to_string()));
    v.push(("flow_overflow".into(), flow_overflow.to_string()));
    v
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

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
    let paths = Paths::new(&cfg.out);
    // Blocked before anything else so a Ctrl-C during setup still ends in a clean stop.
    let signals = StopSignals::install()?;
    let recovered = output::recover(&paths)?;

    // Cheap checks first, so a bad interface, missing privileges or a kernel below the floor
    // fail before any file is touched.
    crate::kernel::object_available()?;
    crate::kernel::check_privileges()?;
    crate::kernel::ifindex(&cfg.iface)?;
    crate::floor::check(cfg.mode)?;
    let clock = Clock::measure()?;
    let mut host = RecordingMeta::new(RecordType::Syn);
    host.fill_local_host();
    let start_mono = Clock::mono_now()?;
    let start_utc = clock.to_utc(start_mono);
    let meta: Vec<(String, String)> = vec![
        (key::HOST.into(), host.host),
        (key::INTERFACE.into(), cfg.iface.clone()),
        (key::KERNEL.into(), host.kernel),
        (key::CLOCK_SOURCE.into(), CLOCK_SOURCE.into()),
        (key::START_UTC_NS.into(), start_utc.to_string()),
        ("clock_offset_ns".into(), clock.offset_ns().to_string()),
        ("mode".into(), cfg.mode.name().into()),
        (
            "flush_interval_ms".into(),
            cfg.flush_interval.as_millis().to_string(),
        ),
        (
            "flow_interval_ms".into(),
            cfg.flow_interval.as_millis().to_string(),
        ),
        // 0: every SYN kept. Beside the `syn_sampled_out` counter, so a reader of the
        // recording knows a busy minute was sampled, and at what rate.
        ("max_syn_rate".into(), cfg.max_syn_rate.to_string()),
    ];
    // Journals before attaching: an unwritable output directory must not cost an attach.
    let sj = JournalWriter::create::<SynRecord>(&paths.syn_journal, &meta)?;
    let fj = if cfg.flows {
        JournalWriter::create::<FlowRow>(&paths.flows_journal, &meta).map(Some)
    } else {
        Ok(None)
    };
    let opened = fj.and_then(|fj| {
        Datapath::open(
            &cfg.iface,
            cfg.mode,
            Options {
                flows: cfg.flows,
                flow_entries: cfg.flow_entries,
                ring_bytes: cfg.ring_mib << 20,
                max_syn_rate: cfg.max_syn_rate,
            },
        )
        .map(|dp| (dp, fj))
    });
    let (mut dp, mut fj) = match opened {
        Ok(x) => x,
        Err(e) => {
            // Nothing was captured: leave no journal for a later start to "recover".
            let _ = std::fs::remove_file(&paths.syn_journal);
            let _ = std::fs::remove_file(&paths.flows_journal);
            return Err(e);
        }
    };

    log(&format!(
        "attached to {} as {}; recording to {} (journal {})",
        cfg.iface,
        dp.attachment,
        paths.syn.display(),
        paths.syn_journal.display()
    ));
    // Known only once attached, so kept with the counters (and in the final metadata).
    let attach_info: Vec<(String, String)> = vec![
        ("attachment".into(), dp.attachment.clone()),
        ("ifindex".into(), dp.ifindex.to_string()),
    ];

    let bar = if cfg.status && std::io::stderr().is_terminal() {
        let b = ProgressBar::new_spinner();
        b.set_draw_target(ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    } else {
        ProgressBar::hidden()
    };

    let Some(ring) = dp.take_ring() else {
        return Err(CaptureError::Map {
            map: record::names::MAP_SYN_EVENTS,
            reason: "ring buffer already taken".into(),
        });
    };
    let flows = fj.is_some();
    let drainer = Drainer::start(ring, sj, clock, cfg.flush_interval, flows)?;

    let flush_ns = nanos(cfg.flush_interval);
    let flow_ns = nanos(cfg.flow_interval);
    let deadline = cfg.duration.map(|d| start_mono.saturating_add(nanos(d)));
    let mut next_flush = start_mono.saturating_add(flush_ns);
    let mut next_flow = start_mono.saturating_add(flow_ns);
    let mut next_status = start_mono;
    let mut tracker = FlowTracker::new(start_mono, cfg.flow_entries as usize);
    let mut snapshot: Vec<(FlowKey, FlowCounters)> = Vec::new();
    let mut flow_rows = 0u64;
    let mut status_drained = 0u64;
    let mut status_at = start_mono;
    let mut stopped_by = String::from("end of --duration");

    // Adds every batch the drain has handed over to the flows; returns at once.
    let take_records = |drainer: &Drainer, tracker: &mut FlowTracker| {
        while let Ok(batch) = drainer.records.try_recv() {
            tracker.record_all(&batch);
            drainer.recycle(batch);
        }
    };
    let mut flows_step = |dp: &Datapath,
                          now: u64,
                          fj: &mut Option<JournalWriter>,
                          tracker: &mut FlowTracker|
     -> Result<u64> {
        let Some(fj) = fj.as_mut() else { return Ok(0) };
        dp.flows_snapshot(&mut snapshot)?;
        let (mut n, mut failed) = (0u64, None);
        tracker.interval(&snapshot, now, &clock, &mut |r| {
            fj.push(&r);
            n += 1;
            // Written out as it goes, so a flood's interval is never held in memory whole.
            if n % ROWS_PER_WRITE == 0 && failed.is_none() {
                failed = fj.write_out().err();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        fj.flush()?;
        Ok(n)
    };
    // What the counters file and the outputs' metadata say.
    let pairs_of = |c: &[u64; counter::COUNT as usize], drained: &Drained, flow_overflow: u64| {
        let mut pairs = counter_pairs(c, drained, flow_overflow);
        pairs.extend(attach_info.iter().cloned());
        pairs
    };

    loop {
        let now = Clock::mono_now()?;
        if deadline.is_some_and(|d| now >= d) || drainer.failed() {
            break;
        }
        let mut wake = next_flush.min(next_flow);
        if let Some(d) = deadline {
            wake = wake.min(d);
        }
        if !bar.is_hidden() {
            wake = wake.min(next_status);
        }
        let timeout_ms = (wake.saturating_sub(now) / 1_000_000).min(MAIN_PERIOD.as_millis() as u64);
        let ready = poll_readable(&[signals.fd()], timeout_ms as i32)?;
        take_records(&drainer, &mut tracker);
        let stop = if ready.first().copied().unwrap_or(false) {
            signals.take()
        } else {
            None
        };
        let now = Clock::mono_now()?;
        if now >= next_flow {
            flow_rows += flows_step(&dp, now, &mut fj, &mut tracker)?;
            next_flow = now.saturating_add(flow_ns);
        }
        if now >= next_flush {
            let pairs = pairs_of(&dp.counters()?, &drainer.progress(), tracker.overflow());
            output::write_counters(&paths.counters, &pairs)?;
            next_flush = now.saturating_add(flush_ns);
        }
        if !bar.is_hidden() && now >= next_status {
            let c = dp.counters()?;
            let drained = drainer.progress().records;
            let secs = (now.saturating_sub(status_at)) as f64 / 1e9;
            let rate = if secs > 0.0 {
                (drained - status_drained) as f64 / secs
            } else {
                0.0
            };
            let written = drainer.journal_bytes() + fj.as_ref().map_or(0, |f| f.bytes());
            bar.set_message(format!(
                "{rate:.0} SYN/s | {drained} SYN | {} flows | {} drops | {written} bytes written",
                tracker.flows(),
                c.get(counter::RINGBUF_FULL as usize).copied().unwrap_or(0)
                    + c.get(counter::FLOW_INSERT_FAILED as usize)
                        .copied()
                        .unwrap_or(0),
            ));
            bar.tick();
            status_drained = drained;
            status_at = now;
            next_status = now.saturating_add(500_000_000);
        }
        if let Some(sig) = stop {
            stopped_by = match sig as i32 {
                libc::SIGINT => "SIGINT".into(),
                libc::SIGTERM => "SIGTERM".into(),
                n => format!("signal {n}"),
            };
            break;
        }
    }

    // Clean stop: last drain (the journal closed and synced), last flow interval, flush, then
    // detach before converting.
    let drained = drainer.stop_keeping(|records| {
        for batch in records.try_iter() {
            tracker.record_all(&batch);
        }
    })?;
    let now = Clock::mono_now()?;
    flow_rows += flows_step(&dp, now, &mut fj, &mut tracker)?;
    if let Some(fj) = fj.as_mut() {
        fj.finish()?;
    }
    let counters = dp.counters()?;
    let pairs = pairs_of(&counters, &drained, tracker.overflow());
    output::write_counters(&paths.counters, &pairs)?;
    let attachment = dp.attachment.clone();
    let flow_overflow = tracker.overflow();
    // The conversion below is the peak of a long capture's memory: free the flow state and
    // unmap the maps first.
    drop((tracker, snapshot));
    drop(dp);
    drop(fj);
    bar.finish_and_clear();
    let outputs = output::convert(&paths, &paths.syn, &paths.flows, &pairs)?;
    Ok(Summary {
        counters,
        syn_drained: drained.records,
        drain_max_gap_us: drained.max_gap_us,
        flow_rows,
        flow_overflow,
        malformed: drained.malformed,
        attachment,
        outputs,
        recovered,
        stopped_by,
    })
}
