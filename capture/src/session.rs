//! A running capture: [`Session::start`] attaches and starts the drain, [`Session::tick`]
//! does what is due (flow rows, counters, rotation, status), [`Session::stop`] drains,
//! detaches and converts.
//!
//! The recording is cut into spans: with `--out` one span (the whole run, converted at the
//! stop), with `--out-dir` one per `--rotate` (converted while the capture goes on). Each span
//! has its own journals and its own counters, counted from the span's start.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use formats::flows::FlowRow;
use formats::meta::{RecordType, RecordingMeta};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use record::{FlowCounters, FlowKey, SynRecord, counter};

use crate::clock::{CLOCK_SOURCE, Clock};
use crate::config::{Config, Destination, Outputs, Summary, counter_pairs};
use crate::drain::{Drained, Drainer};
use crate::error::{CaptureError, Result};
use crate::flowtrack::FlowTracker;
use crate::journal::JournalWriter;
use crate::kernel::{Datapath, Options};
use crate::output::{self, Paths, key};
use crate::retention::{self, Deleted};
use crate::tree::{Converter, Span, Tree, Written, span_end};

/// The longest the main loop sleeps: it takes the drained records for the flow rows at
/// least this often, which bounds the batches waiting for it.
const MAIN_PERIOD: Duration = Duration::from_millis(50);

/// Flow rows buffered before a write to the flow journal.
const ROWS_PER_WRITE: u64 = 4096;

type Counters = [u64; counter::COUNT as usize];
type Pairs = Vec<(String, String)>;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The journals and counters file of the span being filled.
#[derive(Clone, Debug)]
struct SpanFiles {
    syn_journal: std::path::PathBuf,
    flows_journal: std::path::PathBuf,
    counters: std::path::PathBuf,
}

/// Where the spans go.
enum Sink {
    File(Paths),
    Tree {
        tree: Arc<Tree>,
        span: Span,
        converter: Converter,
        /// Monotonic time the span ends.
        rotate_at: u64,
        rotate_every: Duration,
        rotate_size: Option<u64>,
        written: Written,
    },
}

impl Sink {
    fn files(&self) -> SpanFiles {
        match self {
            Sink::File(p) => SpanFiles {
                syn_journal: p.syn_journal.clone(),
                flows_journal: p.flows_journal.clone(),
                counters: p.counters.clone(),
            },
            Sink::Tree { span, .. } => SpanFiles {
                syn_journal: span.syn_journal.clone(),
                flows_journal: span.flows_journal.clone(),
                counters: span.counters.clone(),
            },
        }
    }
}

/// What the counters were at the span's start; its files carry the increase since.
#[derive(Clone, Copy, Debug, Default)]
struct Base {
    counters: Counters,
    drained: Drained,
    overflow: u64,
}

/// The status line on a terminal.
struct Status {
    bar: ProgressBar,
    next: u64,
    drained: u64,
    at: u64,
}

/// A running capture.
pub struct Session {
    /// Apart from the rest, as the stop consumes it while the rest is still needed.
    drainer: Drainer,
    core: Core,
}

/// Everything of a running capture but the drain.
struct Core {
    dp: Datapath,
    clock: Clock,
    tracker: FlowTracker,
    snapshot: Vec<(FlowKey, FlowCounters)>,
    fj: Option<JournalWriter>,
    sink: Sink,
    /// Journal metadata of every span, but its start.
    meta: Pairs,
    /// How the datapath is attached, for the counters.
    attach_info: Pairs,
    base: Base,
    flow_rows: u64,
    deleted: Deleted,
    recovered: Option<(u64, String)>,
    flow_ns: u64,
    flush_ns: u64,
    deadline: Option<u64>,
    next_flush: u64,
    next_flow: u64,
    status: Status,
}

/// What [`open_sink`] found and opened: the sink, what recovery made of a killed run's
/// journals (SYN rows recovered, where they went) and what retention deleted at the start.
type Opened = (Sink, Option<(u64, String)>, Deleted);

/// Recovers what a killed run left and opens the sink: the lock and retention of a tree too.
fn open_sink(cfg: &Config, host: &str) -> Result<Opened> {
    match &cfg.dest {
        Destination::File(out) => {
            let paths = Paths::new(out);
            let recovered =
                output::recover(&paths)?.map(|c| (c.syn.1.rows, c.syn.0.display().to_string()));
            Ok((Sink::File(paths), recovered, Deleted::default()))
        }
        Destination::Tree {
            dir,
            rotate,
            rotate_size,
            limits,
        } => {
            let tree = Arc::new(Tree::open(dir, host, &cfg.iface)?);
            let got = tree.recover()?;
            let recovered = (!got.syn.is_empty()).then(|| {
                let at = format!(
                    "{} files under {}",
                    got.syn.len() + got.flows.len(),
                    dir.display()
                );
                (got.syn_rows(), at)
            });
            let deleted = retention::apply(dir, formats::time::now_ns(), *limits)?;
            let converter = Converter::start(Arc::clone(&tree), *limits)?;
            let sink = Sink::Tree {
                span: tree.span(0),
                tree,
                converter,
                rotate_at: 0,
                rotate_every: *rotate,
                rotate_size: *rotate_size,
                written: Written::default(),
            };
            Ok((sink, recovered, deleted))
        }
    }
}

/// Creates a span's journals (the flow journal only with flows).
fn open_journals(
    files: &SpanFiles,
    meta: &Pairs,
    start_utc: u64,
    flows: bool,
) -> Result<(JournalWriter, Option<JournalWriter>)> {
    let mut meta = meta.clone();
    meta.push((key::START_UTC_NS.into(), start_utc.to_string()));
    let sj = JournalWriter::create::<SynRecord>(&files.syn_journal, &meta)?;
    let fj = if flows {
        Some(JournalWriter::create::<FlowRow>(
            &files.flows_journal,
            &meta,
        )?)
    } else {
        None
    };
    Ok((sj, fj))
}

/// The journal metadata every span of this run carries.
fn journal_meta(cfg: &Config, clock: &Clock, start_utc: u64) -> Pairs {
    let mut host = RecordingMeta::new(RecordType::Syn);
    host.fill_local_host();
    vec![
        (key::HOST.into(), host.host),
        (key::INTERFACE.into(), cfg.iface.clone()),
        (key::KERNEL.into(), host.kernel),
        (key::CLOCK_SOURCE.into(), CLOCK_SOURCE.into()),
        ("capture_start_utc_ns".into(), start_utc.to_string()),
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
    ]
}

fn status_bar(cfg: &Config) -> ProgressBar {
    if !(cfg.status && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new_spinner();
    b.set_draw_target(ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    b
}

impl Session {
    /// Recovers a killed run's journals, checks what can be checked before touching the
    /// kernel, opens the first span's journals, attaches and starts the drain.
    pub fn start(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<Session> {
        let mut host = RecordingMeta::new(RecordType::Syn);
        host.fill_local_host();
        let (mut sink, recovered, deleted) = open_sink(cfg, &host.host)?;
        // Cheap checks first, so a bad interface, missing privileges or a kernel below the
        // floor fail before any journal is created.
        crate::kernel::object_available()?;
        crate::kernel::check_privileges()?;
        crate::kernel::ifindex(&cfg.iface)?;
        crate::floor::check(cfg.mode)?;
        let clock = Clock::measure()?;
        let start_mono = Clock::mono_now()?;
        let start_utc = clock.to_utc(start_mono);
        if let Sink::Tree {
            tree,
            span,
            rotate_at,
            rotate_every,
            ..
        } = &mut sink
        {
            *span = tree.span(start_utc);
            *rotate_at = start_mono + (span_end(start_utc, *rotate_every) - start_utc);
        }
        let meta = journal_meta(cfg, &clock, start_utc);
        let files = sink.files();
        // Journals before attaching: an unwritable output must not cost an attach.
        let (sj, fj) = open_journals(&files, &meta, start_utc, cfg.flows)?;
        let opts = Options {
            flows: cfg.flows,
            flow_entries: cfg.flow_entries,
            ring_bytes: cfg.ring_mib << 20,
            max_syn_rate: cfg.max_syn_rate,
        };
        let mut dp = match Datapath::open(&cfg.iface, cfg.mode, opts) {
            Ok(dp) => dp,
            Err(e) => {
                // Nothing was captured: leave no journal for a later start to "recover".
                drop((sj, fj));
                let _ = std::fs::remove_file(&files.syn_journal);
                let _ = std::fs::remove_file(&files.flows_journal);
                return Err(e);
            }
        };
        log(&format!(
            "attached to {} as {}; recording to {} (journal {})",
            cfg.iface,
            dp.attachment,
            match &cfg.dest {
                Destination::File(p) | Destination::Tree { dir: p, .. } => p.display(),
            },
            files.syn_journal.display()
        ));
        let attach_info = vec![
            ("attachment".into(), dp.attachment.clone()),
            ("ifindex".into(), dp.ifindex.to_string()),
        ];
        let Some(ring) = dp.take_ring() else {
            return Err(CaptureError::Map {
                map: record::names::MAP_SYN_EVENTS,
                reason: "ring buffer already taken".into(),
            });
        };
        let drainer = Drainer::start(ring, sj, clock, cfg.flush_interval, fj.is_some())?;
        let (flush_ns, flow_ns) = (nanos(cfg.flush_interval), nanos(cfg.flow_interval));
        let core = Core {
            dp,
            clock,
            tracker: FlowTracker::new(start_mono, cfg.flow_entries as usize),
            snapshot: Vec::new(),
            fj,
            sink,
            meta,
            attach_info,
            base: Base::default(),
            flow_rows: 0,
            deleted,
            recovered,
            flow_ns,
            flush_ns,
            deadline: cfg.duration.map(|d| start_mono.saturating_add(nanos(d))),
            next_flush: start_mono.saturating_add(flush_ns),
            next_flow: start_mono.saturating_add(flow_ns),
            status: Status {
                bar: status_bar(cfg),
                next: start_mono,
                drained: 0,
                at: start_mono,
            },
        };
        Ok(Session { drainer, core })
    }

    /// How long the main loop may wait for a signal before the next [`Session::tick`], ms.
    pub fn wait_ms(&self) -> Result<i32> {
        let now = Clock::mono_now()?;
        let mut wake = self.core.next_flush.min(self.core.next_flow);
        if let Some(d) = self.core.deadline {
            wake = wake.min(d);
        }
        if let Sink::Tree { rotate_at, .. } = &self.core.sink {
            wake = wake.min(*rotate_at);
        }
        if !self.core.status.bar.is_hidden() {
            wake = wake.min(self.core.status.next);
        }
        let ms = (wake.saturating_sub(now) / 1_000_000).min(MAIN_PERIOD.as_millis() as u64);
        Ok(ms as i32)
    }

    /// Does what is due. `false` once the capture should stop: the end of `--duration`, or
    /// the drain ended (only an error makes it; [`Session::stop`] reports it).
    pub fn tick(&mut self, log: &mut dyn FnMut(&str)) -> Result<bool> {
        self.take_records();
        self.core.take_conversions(log)?;
        let now = Clock::mono_now()?;
        if self.core.deadline.is_some_and(|d| now >= d) || self.drainer.failed() {
            return Ok(false);
        }
        if self.rotation_due(now) {
            self.rotate(now)?;
        }
        if now >= self.core.next_flow {
            self.core.flow_rows += self.core.flows_step(now)?;
            self.core.next_flow = now.saturating_add(self.core.flow_ns);
        }
        if now >= self.core.next_flush {
            let pairs = self
                .core
                .span_pairs(&self.core.dp.counters()?, &self.drainer.progress());
            output::write_counters(&self.core.sink.files().counters, &pairs)?;
            self.core.next_flush = now.saturating_add(self.core.flush_ns);
        }
        self.draw_status(now)
    }

    /// Adds every batch the drain has handed over to the flows; returns at once.
    fn take_records(&mut self) {
        while let Ok(batch) = self.drainer.records.try_recv() {
            self.core.tracker.record_all(&batch);
            self.drainer.recycle(batch);
        }
    }

    fn rotation_due(&self, now: u64) -> bool {
        let Sink::Tree {
            rotate_at,
            rotate_size,
            ..
        } = &self.core.sink
        else {
            return false;
        };
        let bytes = self.drainer.journal_bytes() + self.core.fj.as_ref().map_or(0, |f| f.bytes());
        now >= *rotate_at || rotate_size.is_some_and(|max| bytes >= max)
    }

    /// Ends the span at `now`: its last flow interval, its journals closed, its counters
    /// saved and its conversion queued; the next span's journals take over.
    fn rotate(&mut self, now: u64) -> Result<()> {
        self.take_records();
        self.core.flow_rows += self.core.flows_step(now)?;
        self.core.next_flow = now.saturating_add(self.core.flow_ns);
        let utc = self.core.clock.to_utc(now);
        let Sink::Tree {
            tree,
            span,
            rotate_at,
            rotate_every,
            ..
        } = &mut self.core.sink
        else {
            return Ok(());
        };
        let next = tree.span(utc);
        *rotate_at = now + (span_end(utc, *rotate_every) - utc);
        let files = SpanFiles {
            syn_journal: next.syn_journal.clone(),
            flows_journal: next.flows_journal.clone(),
            counters: next.counters.clone(),
        };
        let old = std::mem::replace(span, next);
        let (sj, fj) = open_journals(&files, &self.core.meta, utc, self.core.fj.is_some())?;
        drop(self.drainer.swap_journal(sj)?);
        if let Some(mut old_fj) = std::mem::replace(&mut self.core.fj, fj) {
            old_fj.finish()?;
        }
        let (counters, drained) = (self.core.dp.counters()?, self.drainer.progress());
        let pairs = self.core.span_pairs(&counters, &drained);
        output::write_counters(&old.counters, &pairs)?;
        self.core.base = Base {
            counters,
            drained,
            overflow: self.core.tracker.overflow(),
        };
        match &self.core.sink {
            Sink::Tree { converter, .. } => converter.send(old, pairs),
            Sink::File(_) => Ok(()),
        }
    }

    fn draw_status(&mut self, now: u64) -> Result<bool> {
        let st = &mut self.core.status;
        if st.bar.is_hidden() || now < st.next {
            return Ok(true);
        }
        let c = self.core.dp.counters()?;
        let drained = self.drainer.progress().records;
        let secs = now.saturating_sub(st.at) as f64 / 1e9;
        let rate = if secs > 0.0 {
            drained.saturating_sub(st.drained) as f64 / secs
        } else {
            0.0
        };
        let written = self.drainer.journal_bytes() + self.core.fj.as_ref().map_or(0, |f| f.bytes());
        let get = |i: u32| c.get(i as usize).copied().unwrap_or(0);
        st.bar.set_message(format!(
            "{rate:.0} SYN/s | {drained} SYN | {} flows | {} drops | {written} bytes in journals",
            self.core.tracker.flows(),
            get(counter::RINGBUF_FULL) + get(counter::FLOW_INSERT_FAILED),
        ));
        st.bar.tick();
        (st.drained, st.at, st.next) = (drained, now, now.saturating_add(500_000_000));
        Ok(true)
    }

    /// Clean stop: last drain (the journal closed and synced), last flow interval, counters,
    /// detach, then the last span converted (and, in a tree, every queued span).
    pub fn stop(self, stopped_by: String, log: &mut dyn FnMut(&str)) -> Result<Summary> {
        let Session { drainer, mut core } = self;
        let tracker = &mut core.tracker;
        let drained = drainer.stop_keeping(|records| {
            for batch in records.try_iter() {
                tracker.record_all(&batch);
            }
        })?;
        let now = Clock::mono_now()?;
        core.flow_rows += core.flows_step(now)?;
        if let Some(fj) = core.fj.as_mut() {
            fj.finish()?;
        }
        let counters = core.dp.counters()?;
        let pairs = core.span_pairs(&counters, &drained);
        output::write_counters(&core.sink.files().counters, &pairs)?;
        let attachment = core.dp.attachment.clone();
        let flow_overflow = core.tracker.overflow();
        // The conversion below is the peak of a long capture's memory: free the flow state and
        // unmap the maps first.
        let Core {
            sink,
            dp,
            tracker,
            snapshot,
            fj,
            status,
            mut deleted,
            flow_rows,
            recovered,
            ..
        } = core;
        drop((tracker, snapshot, dp, fj));
        status.bar.finish_and_clear();
        let outputs = match sink {
            Sink::File(paths) => {
                Outputs::File(output::convert(&paths, &paths.syn, &paths.flows, &pairs)?)
            }
            Sink::Tree {
                tree,
                span,
                converter,
                mut written,
                ..
            } => {
                converter.send(span, pairs)?;
                for done in converter.finish() {
                    let (w, d) = done?;
                    written.extend(w);
                    deleted.add(d);
                }
                log(&format!(
                    "closed the last span under {}",
                    tree.dir.display()
                ));
                Outputs::Tree(tree.dir.clone(), written)
            }
        };
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
            deleted,
            stopped_by,
        })
    }
}

impl Core {
    /// Collects the converter's results; its error (a full disk, say) stops the capture.
    fn take_conversions(&mut self, log: &mut dyn FnMut(&str)) -> Result<()> {
        let Sink::Tree {
            converter, written, ..
        } = &mut self.sink
        else {
            return Ok(());
        };
        while let Ok(done) = converter.done.try_recv() {
            let (w, d) = done?;
            for (p, s) in &w.syn {
                log(&format!("closed {} ({} SYN rows)", p.display(), s.rows));
            }
            written.extend(w);
            self.deleted.add(d);
        }
        Ok(())
    }

    /// Takes a flow snapshot and writes the interval's rows; returns how many.
    fn flows_step(&mut self, now: u64) -> Result<u64> {
        let Some(fj) = self.fj.as_mut() else {
            return Ok(0);
        };
        self.dp.flows_snapshot(&mut self.snapshot)?;
        let (mut n, mut failed) = (0u64, None);
        self.tracker
            .interval(&self.snapshot, now, &self.clock, &mut |r| {
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
    }

    /// What the span's counters file and files say: the increase since the span started,
    /// how the datapath is attached, and (in a tree) what retention deleted so far.
    fn span_pairs(&self, c: &Counters, drained: &Drained) -> Pairs {
        let b = &self.base;
        let mut delta = *c;
        for (d, s) in delta.iter_mut().zip(&b.counters) {
            *d = d.saturating_sub(*s);
        }
        let drained = Drained {
            records: drained.records.saturating_sub(b.drained.records),
            malformed: drained.malformed.saturating_sub(b.drained.malformed),
            max_gap_us: drained.max_gap_us,
        };
        let overflow = self.tracker.overflow().saturating_sub(b.overflow);
        let mut pairs = counter_pairs(&delta, &drained, overflow);
        pairs.extend(self.attach_info.iter().cloned());
        if matches!(self.sink, Sink::Tree { .. }) {
            pairs.push((
                "retention_deleted_files".into(),
                self.deleted.files.to_string(),
            ));
            pairs.push((
                "retention_deleted_bytes".into(),
                self.deleted.bytes.to_string(),
            ));
        }
        pairs
    }
}
