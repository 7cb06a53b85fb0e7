//! One analysis run: inputs -> (parallel replay) -> one p0f engine -> observations -> outputs.
//!
//! The replay ([`crate::parallel`]) delivers records in input order; [`Analysis`] feeds them
//! to the single stateful [`Engine`] and hands every resulting [`Observation`] to the chosen
//! stdout format (streamed, so memory does not grow with the input), to the optional results
//! Parquet file, and to the [`Aggregator`] behind the summary (`table` and `json`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::ScopedJoinHandle;

use formats::pcap::IngestStats;
use p0f::{Database, Engine, Event, EventKind, Status};
use record::PayloadRecord;

use crate::inputs::Input;
use crate::learn::{self, Candidate, Evidence, SuggestOptions};
use crate::parallel::{self, Batch, Consumer, InputDone, PayloadRef, Progress, Rec, ReplayOptions};
use crate::replay::ReplayError;
use crate::report::Totals;
use crate::report::agg::{Aggregator, Summary};
use crate::report::traffic::FlowTotals;
use crate::results::{self, Observation, ResultsError, ResultsWriter, Sources, TextWriter};

/// What goes to stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// A readable report (totals, OS mix, quality, hosts, unknown signatures, MTU, distance,
    /// traffic by OS).
    Table,
    /// One JSON document: the summary and every observation.
    Json,
    /// One JSON object per observation per line.
    Ndjson,
    /// One CSV row per observation, with a header line.
    Csv,
    /// p0f 3.09b log lines.
    P0f,
}

impl OutputFormat {
    /// Whether the summary (aggregations) is needed.
    fn needs_summary(self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::Json)
    }
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct AnalyzeOptions {
    pub replay: ReplayOptions,
    pub format: OutputFormat,
    /// The database (`--db`); `None`: [`default_database`] for the format.
    pub db: Option<Arc<Database>>,
    /// Results Parquet file (one row per observation).
    pub out: Option<PathBuf>,
    /// Rows in the "top" tables of the summary.
    pub top: usize,
    /// `--suggest-sigs`: make learned signatures with these thresholds
    /// ([`RunReport::suggestions`]).
    pub suggest: Option<SuggestOptions>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            replay: ReplayOptions::default(),
            format: OutputFormat::Table,
            db: None,
            out: None,
            top: 10,
            suggest: None,
        }
    }
}

/// The database of a run without `--db`: p0f.fp and synscope.fp, except for `--format p0f`,
/// whose lines are p0f's own only if the labels come from p0f.fp alone (synscope.fp's
/// additions would turn some of p0f's `os=???` into a label).
pub fn default_database(format: OutputFormat) -> Result<Database, p0f::DbError> {
    match format {
        OutputFormat::P0f => Database::p0f_only(),
        _ => Database::embedded(),
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Db(#[from] p0f::DbError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The cause stays the error's source, not part of its message: `main` looks for a
    /// closed pipe along the chain.
    #[error("writing the output")]
    Write(#[source] std::io::Error),
    #[error("summarising: {0}")]
    Summary(String),
}

/// Name of an engine outcome, for the totals.
pub fn status_name(s: Status) -> String {
    match s {
        Status::Reported => "fingerprinted".into(),
        Status::Skipped(skip) => format!("p0f filter: {}", words(&format!("{skip:?}"))),
        Status::DuplicateSyn => "duplicate syn".into(),
        Status::DuplicateSynAck => "duplicate syn+ack".into(),
        Status::StraySynAck => "syn+ack without syn".into(),
        Status::ReversedSynAck => "syn+ack from the client".into(),
    }
}

/// `CamelCase` -> `camel case` (names of the engine's skip reasons).
fn words(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Adds one to `key`'s count (a handful of distinct keys: a short list beats a map).
fn count<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key, 1)),
    }
}

/// The engine and everything observations flow into.
struct Analysis<'w, W: Write> {
    engine: Engine,
    events: Vec<Event>,
    /// The fields of the payload record handed to the engine, loaded from each batch's
    /// compact form in turn; the head goes over from the batch itself
    /// ([`PayloadRef::fields_into`]), so this record's own head stays zero (boxed: 8 KiB).
    payload: Box<PayloadRecord>,
    sources: Sources,
    out: &'w mut W,
    results: Option<ResultsWriter>,
    agg: Option<Aggregator>,
    /// What hosts' User-Agents say, for the agreement section and `--suggest-sigs`.
    evidence: Option<Evidence>,
    totals: Totals,
    /// Engine outcomes and observation modules, counted here and named into `totals` at the
    /// end (naming them per record allocated a string each time).
    statuses: Vec<(Status, u64)>,
    modules: Vec<(&'static str, u64)>,
    flows: FlowTotals,
    /// Where observations are rendered as text (every format but `table`).
    text: Option<TextStage>,
    error: Option<AnalyzeError>,
    inputs: &'w [Input],
    on_file: &'w mut dyn FnMut(&Input, &IngestStats),
    on_failed: &'w mut dyn FnMut(&Input, &ReplayError),
}

impl<W: Write> Analysis<'_, W> {
    /// Hands on the engine's events of one record. Each becomes an [`Observation`] once,
    /// where it is kept (the rendering batch, when there is one), and the other outputs read
    /// it there, so no event is moved through temporaries (memmove on the engine's thread).
    fn observe_events(&mut self, source: usize) -> Result<(), AnalyzeError> {
        let events = self
            .events
            .drain(..)
            .map(|event| Observation { source, event });
        let mut outputs = Outputs {
            modules: &mut self.modules,
            flows: &mut self.flows,
            results: &mut self.results,
            agg: &mut self.agg,
            evidence: &mut self.evidence,
        };
        match &mut self.text {
            Some(t) => {
                let from = t.batch.len();
                t.batch.extend(events);
                for obs in &t.batch[from..] {
                    outputs.observe(obs)?;
                }
                if t.batch.len() >= RENDER_BATCH {
                    t.send(self.out).map_err(AnalyzeError::Write)?;
                }
            }
            None => {
                for obs in events {
                    outputs.observe(&obs)?;
                }
            }
        }
        Ok(())
    }
}

/// What reads every observation besides the text output.
struct Outputs<'a> {
    modules: &'a mut Vec<(&'static str, u64)>,
    flows: &'a mut FlowTotals,
    results: &'a mut Option<ResultsWriter>,
    agg: &'a mut Option<Aggregator>,
    evidence: &'a mut Option<Evidence>,
}

impl Outputs<'_> {
    fn observe(&mut self, obs: &Observation) -> Result<(), AnalyzeError> {
        let event = &obs.event;
        count(self.modules, event.module());
        // The client's SYN labels its connection for the traffic-by-OS table.
        if let EventKind::Tcp(t) = &event.kind
            && self.flows.wanted()
            && event.subject == p0f::Subject::Client
        {
            self.flows
                .label_connection(event.endpoints.flow_key(), t.label.as_ref());
        }
        if let Some(r) = self.results {
            r.write(obs)?;
        }
        if let Some(a) = self.agg {
            a.add(obs).map_err(AnalyzeError::Summary)?;
        }
        if let Some(e) = self.evidence {
            e.add(obs);
        }
        Ok(())
    }
}

/// Observations handed to the rendering thread at a time.
const RENDER_BATCH: usize = 512;

/// Bytes of text a rendered observation takes, about (a JSON row; a p0f line or a CSV line
/// takes less), for the rendering buffers' first allocation.
const RENDERED_ROW: usize = 1024;

/// Batches queued for, or rendered and not yet written by, the rendering thread.
const RENDER_IN_FLIGHT: usize = 8;

/// Text rendering (JSON, NDJSON, CSV, p0f lines) on a thread of its own, next to the engine.
///
/// Why: the engine is the one sequential stage of a run, and rendering a JSON row costs
/// about as much as fingerprinting its record. Observations go over in batches, come
/// back as bytes in the same order, and are written to the output on this thread (which owns
/// it: stdout's lock cannot move between threads).
struct TextStage {
    batch: Vec<Observation>,
    /// Empty batches and byte buffers back from the thread, for reuse.
    spare: Vec<(Vec<Observation>, Vec<u8>)>,
    to_thread: Option<SyncSender<(Vec<Observation>, Vec<u8>)>>,
    from_thread: Receiver<(Vec<Observation>, Vec<u8>)>,
    in_flight: usize,
}

impl TextStage {
    /// Starts the rendering thread in `scope`; it ends when the stage is finished or dropped
    /// and returns the number of JSON rows it rendered.
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        format: OutputFormat,
        sources: Sources,
        db: Arc<Database>,
    ) -> std::io::Result<(TextStage, ScopedJoinHandle<'scope, u64>)> {
        let (to_thread, batches) = sync_channel(RENDER_IN_FLIGHT);
        let (rendered, from_thread) = sync_channel(RENDER_IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name("analyze-render".into())
            .spawn_scoped(scope, move || {
                render(format, &sources, &db, &batches, &rendered)
            })?;
        let stage = TextStage {
            batch: Vec::with_capacity(RENDER_BATCH),
            spare: Vec::new(),
            to_thread: Some(to_thread),
            from_thread,
            in_flight: 0,
        };
        Ok((stage, handle))
    }

    /// Sends the current batch, writing whatever is rendered meanwhile.
    fn send(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let (next, bytes) = self.spare.pop().unwrap_or_else(|| {
            // Room for a batch of JSON rows (about 700 bytes each) from the start: grown
            // from nothing by doubling, each new buffer was copied about nine times over
            // (BENCHMARKS.md).
            let bytes = Vec::with_capacity(RENDER_BATCH * RENDERED_ROW);
            (Vec::with_capacity(RENDER_BATCH), bytes)
        });
        let batch = std::mem::replace(&mut self.batch, next);
        let Some(tx) = &self.to_thread else {
            return Ok(());
        };
        if tx.send((batch, bytes)).is_err() {
            return Err(std::io::Error::other("the rendering thread stopped"));
        }
        self.in_flight += 1;
        while let Ok(done) = self.from_thread.try_recv() {
            self.write(done, out)?;
        }
        while self.in_flight > RENDER_IN_FLIGHT {
            self.wait(out)?;
        }
        Ok(())
    }

    fn wait(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        match self.from_thread.recv() {
            Ok(done) => self.write(done, out),
            Err(_) => Err(std::io::Error::other("the rendering thread stopped")),
        }
    }

    fn write(
        &mut self,
        (batch, mut bytes): (Vec<Observation>, Vec<u8>),
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        self.in_flight -= 1;
        out.write_all(&bytes)?;
        bytes.clear();
        self.spare.push((batch, bytes));
        Ok(())
    }

    /// Renders and writes everything observed so far; the thread stays.
    fn drain(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if !self.batch.is_empty() {
            self.send(out)?;
        }
        while self.in_flight > 0 {
            self.wait(out)?;
        }
        Ok(())
    }

    /// Renders and writes everything still pending; the thread then ends.
    fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.drain(out)?;
        self.to_thread = None;
        Ok(())
    }
}

/// The rendering thread: batches in, their text out, in order. Returns the JSON rows
/// rendered (the document's closing bracket depends on whether there were any).
fn render(
    format: OutputFormat,
    sources: &Sources,
    db: &Database,
    batches: &Receiver<(Vec<Observation>, Vec<u8>)>,
    rendered: &SyncSender<(Vec<Observation>, Vec<u8>)>,
) -> u64 {
    let mut text = TextWriter::new();
    let mut json_rows = 0u64;
    for (mut batch, bytes) in batches {
        text.set_buffer(bytes);
        for obs in &batch {
            match format {
                OutputFormat::P0f => p0f::log::push_p0f_line(db, &obs.event, text.buffer()),
                OutputFormat::Ndjson => {
                    text.json_object(obs, sources, db);
                    text.push(b"\n");
                }
                OutputFormat::Csv => text.csv_line(obs, sources, db),
                OutputFormat::Json => {
                    text.push(if json_rows == 0 {
                        b"\n    "
                    } else {
                        b",\n    "
                    });
                    text.json_object(obs, sources, db);
                    json_rows += 1;
                }
                OutputFormat::Table => {}
            }
        }
        batch.clear();
        if rendered.send((batch, text.take_buffer())).is_err() {
            break;
        }
    }
    json_rows
}

impl<W: Write> Analysis<'_, W> {
    /// One payload record through the engine's HTTP module.
    fn payload(&mut self, index: usize, p: PayloadRef<'_>) {
        if self.error.is_some() {
            return;
        }
        let head = p.fields_into(&mut self.payload);
        self.engine
            .payload_parts(&self.payload, head, &mut self.events);
        if let Err(e) = self.observe_events(index) {
            self.error = Some(e);
        }
    }

    /// Names the engine outcomes and observation modules counted during the replay into the
    /// totals (once, when it ends).
    fn name_counts(&mut self) {
        for (status, n) in std::mem::take(&mut self.statuses) {
            *self.totals.engine.entry(status_name(status)).or_default() += n;
        }
        for (module, n) in std::mem::take(&mut self.modules) {
            *self
                .totals
                .observations
                .entry(module.to_string())
                .or_default() += n;
        }
    }
}

impl<W: Write> Consumer for Analysis<'_, W> {
    fn records(&mut self, index: usize, records: &Batch) {
        for r in records.in_order() {
            let r = match r {
                Rec::Syn(r) => r,
                Rec::Payload(p) => {
                    self.payload(index, p);
                    continue;
                }
            };
            if self.error.is_some() {
                return;
            }
            let status = self.engine.process(r, &mut self.events);
            count(&mut self.statuses, status);
            if r.encap_kind != record::encap::NONE {
                self.totals.count_encapsulated(r);
            }
            if let Err(e) = self.observe_events(index) {
                self.error = Some(e);
            }
        }
    }

    fn input_done(&mut self, index: usize, done: InputDone) {
        self.totals.inputs += 1;
        self.totals.ingest.merge(&done.stats);
        if let Some(flows) = done.flows {
            self.flows.add_flows(flows);
        }
        if let Some(input) = self.inputs.get(index) {
            (self.on_file)(input, &done.stats);
        }
    }

    fn input_failed(&mut self, index: usize, error: &ReplayError) {
        if let Some(input) = self.inputs.get(index) {
            self.totals
                .failed
                .push((input.path.display().to_string(), error.to_string()));
            (self.on_failed)(input, error);
        }
    }

    fn stop(&self) -> bool {
        self.error.is_some()
    }

    /// A live stream is quiet: every observation so far goes out and stdout is flushed, so
    /// that `tcpdump -w - | analyze --format p0f -` prints each line when its packet comes.
    fn idle(&mut self) {
        if self.error.is_some() {
            return;
        }
        let drained = match &mut self.text {
            Some(t) => t.drain(self.out),
            None => Ok(()),
        };
        if let Err(e) = drained.and_then(|()| self.out.flush()) {
            self.error = Some(AnalyzeError::Write(e));
        }
    }
}

/// What a run produced besides its stdout.
#[derive(Debug)]
pub struct RunReport {
    pub totals: Totals,
    /// The summary, for `table`/`json` formats.
    pub summary: Option<Summary>,
    /// Rows written to the results file.
    pub results_rows: Option<u64>,
    /// With [`AnalyzeOptions::suggest`]: the learned signatures, in file order.
    pub suggestions: Option<Vec<Candidate>>,
}

/// Runs the analysis of `inputs`, writing `opts.format` to `out`.
///
/// `on_file` sees every input read to its end (ingestion warnings live in its statistics),
/// `on_failed` every input skipped by `--keep-going`.
pub fn run(
    inputs: &[Input],
    opts: &AnalyzeOptions,
    progress: &Progress,
    out: &mut impl Write,
    on_file: &mut dyn FnMut(&Input, &IngestStats),
    on_failed: &mut dyn FnMut(&Input, &ReplayError),
) -> Result<RunReport, AnalyzeError> {
    let db = match &opts.db {
        Some(db) => Arc::clone(db),
        None => Arc::new(default_database(opts.format)?),
    };
    let sources = Sources::from_paths(inputs.iter().map(|i| i.path.as_path()));
    let results = match &opts.out {
        Some(path) => Some(ResultsWriter::create(
            path,
            sources.clone(),
            Arc::clone(&db),
        )?),
        None => None,
    };
    let summary = opts.format.needs_summary();
    let mut replay_opts = opts.replay;
    replay_opts.flows = summary;
    // p0f's HTTP lines: captures hand over the payload of the flows that look like HTTP
    // (formats::pcap::HttpFilter), and only those, so the engine is told it gets some
    // packets only.
    replay_opts.http = true;
    let mut engine = Engine::new(Arc::clone(&db));
    engine.set_some_packets(true);
    let mut a = Analysis {
        engine,
        payload: Box::new(PayloadRecord::ZERO),
        events: Vec::new(),
        sources,
        out,
        results,
        agg: summary.then(Aggregator::new),
        evidence: (summary || opts.suggest.is_some()).then(Evidence::default),
        totals: Totals::default(),
        statuses: Vec::new(),
        modules: Vec::new(),
        flows: FlowTotals::new(summary),
        text: None,
        error: None,
        inputs,
        on_file,
        on_failed,
    };
    write_head(opts.format, a.out)?;
    let (json_rows, summary) = std::thread::scope(|s| -> Result<_, AnalyzeError> {
        let renderer = match opts.format {
            OutputFormat::Table => None,
            format => {
                let (stage, handle) =
                    TextStage::start(s, format, a.sources.clone(), Arc::clone(&db))
                        .map_err(|e| ReplayError::Threads(e.to_string()))?;
                a.text = Some(stage);
                Some(handle)
            }
        };
        let replayed = parallel::replay(inputs, &replay_opts, progress, &mut a);
        let ok = replayed.is_ok() && a.error.is_none();
        a.name_counts();
        // The summary is made while the rendering thread renders the last batches: both run
        // after the replay, on the wall-clock path.
        let summary = match a.agg.take() {
            Some(agg) if ok => Some(agg.finish(&a.totals, &a.flows, opts.top, &db)),
            _ => None,
        };
        // Ends the rendering thread whatever happened (dropping the stage hangs up on it).
        let finished = match a.text.take() {
            Some(mut t) if ok => t.finish(a.out),
            _ => Ok(()),
        };
        let json_rows = match renderer.map(|h| h.join()) {
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return Err(AnalyzeError::Write(std::io::Error::other(
                    "the rendering thread panicked",
                )));
            }
            None => 0,
        };
        replayed?;
        if let Some(e) = a.error.take() {
            return Err(e);
        }
        finished.map_err(AnalyzeError::Write)?;
        let summary = summary.transpose().map_err(AnalyzeError::Summary)?;
        Ok((json_rows, summary))
    })?;
    let mut summary = summary;
    let suggestions = a
        .evidence
        .as_ref()
        .and_then(|e| learned(e, &db, &a.sources, opts, summary.as_mut()));
    if let Some(s) = &summary {
        write_summary(opts.format, s, json_rows, a.out)?;
    }
    let results_rows = match a.results.take() {
        Some(r) => Some(r.close()?),
        None => None,
    };
    Ok(RunReport {
        totals: a.totals,
        summary,
        results_rows,
        suggestions,
    })
}

/// What the evidence says: the summary's agreement section (when there is a summary), and
/// the learned signatures when `--suggest-sigs` asks for them.
fn learned(
    evidence: &Evidence,
    db: &Database,
    sources: &Sources,
    opts: &AnalyzeOptions,
    summary: Option<&mut Summary>,
) -> Option<Vec<Candidate>> {
    let resolved = evidence.resolve(db);
    if let Some(s) = summary {
        s.agreement = learn::agreement(&resolved, evidence.dishonest_requests, db, opts.top);
    }
    opts.suggest
        .map(|o| learn::suggest::candidates(&resolved, db, sources, o))
}

/// What stdout starts with before the first observation: CSV's header, or the opening of
/// JSON's `observations` array.
fn write_head(format: OutputFormat, out: &mut impl Write) -> Result<(), AnalyzeError> {
    let head = match format {
        OutputFormat::Csv => results::csv_header(),
        OutputFormat::Json => "{\n  \"observations\": [".into(),
        _ => return Ok(()),
    };
    out.write_all(head.as_bytes()).map_err(AnalyzeError::Write)
}

/// The summary after the observations: the table report, or JSON's `summary` member closing
/// the document (`json_rows` observations were written before it).
fn write_summary(
    format: OutputFormat,
    summary: &Summary,
    json_rows: u64,
    out: &mut impl Write,
) -> Result<(), AnalyzeError> {
    match format {
        OutputFormat::Table => {
            crate::report::table::write(summary, out).map_err(AnalyzeError::Write)
        }
        OutputFormat::Json => {
            let mut text = String::from(if json_rows == 0 { "],\n" } else { "\n  ],\n" });
            text.push_str("  \"summary\": ");
            crate::report::json::summary(summary, &mut text);
            text.push_str("\n}\n");
            out.write_all(text.as_bytes()).map_err(AnalyzeError::Write)
        }
        _ => Ok(()),
    }
}

/// The path a run would refuse to overwrite: an input given as `--out`.
pub fn out_is_an_input(out: &Path, inputs: &[Input]) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let o = canon(out);
    o.is_some() && inputs.iter().any(|i| canon(&i.path) == o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_words() {
        assert_eq!(words("BadIpVersion"), "bad ip version");
        assert_eq!(
            status_name(Status::Skipped(p0f::Skip::Ipv6ExtensionHeaders)),
            "p0f filter: ipv6 extension headers"
        );
        assert_eq!(status_name(Status::Reported), "fingerprinted");
    }
}
