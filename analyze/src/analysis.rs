//! One analysis run: inputs -> (parallel replay) -> one p0f engine -> observations -> outputs.
//!
//! The replay ([`crate::parallel`]) delivers records in input order; [`Analysis`] feeds them
//! to the single stateful [`Engine`] and hands every resulting [`Observation`] to the chosen
//! stdout format (streamed, so memory does not grow with the input), to the optional results
//! Parquet file, and to the [`Aggregator`] behind the summary (`table` and `json`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use formats::pcap::IngestStats;
use record::{FlowKey, SynRecord};

use crate::inputs::Input;
use crate::p0f::{Database, Engine, Event, EventKind, Status};
use crate::parallel::{self, Consumer, InputDone, Progress, ReplayOptions};
use crate::replay::ReplayError;
use crate::report::agg::{Aggregator, FlowTotals, Summary};
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
    /// `p0f.fp` replacing the bundled database.
    pub db: Option<PathBuf>,
    /// Results Parquet file (one row per observation).
    pub out: Option<PathBuf>,
    /// Rows in the "top" tables of the summary.
    pub top: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            replay: ReplayOptions::default(),
            format: OutputFormat::Table,
            db: None,
            out: None,
            top: 10,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Db(#[from] crate::p0f::DbError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("writing the output: {0}")]
    Write(#[source] std::io::Error),
    #[error("summarising: {0}")]
    Summary(String),
}

/// Counts over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Inputs read to their end.
    pub inputs: u64,
    /// Inputs that failed (only with `--keep-going`), with their error.
    pub failed: Vec<(String, String)>,
    /// Ingestion counters of all inputs (for recordings only `syn`/`syn_ack`).
    pub ingest: IngestStats,
    /// Records by what the engine did with them (`fingerprinted`, `p0f filter: …`,
    /// `duplicate syn`, …).
    pub engine: BTreeMap<String, u64>,
    /// Observations by module (`syn`, `syn+ack`, `mtu`, `uptime`, `host change`, …).
    pub observations: BTreeMap<String, u64>,
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
    sources: Sources,
    format: OutputFormat,
    out: &'w mut W,
    results: Option<ResultsWriter>,
    agg: Option<Aggregator>,
    totals: Totals,
    /// Engine outcomes and observation modules, counted here and named into `totals` at the
    /// end (naming them per record allocated a string each time).
    statuses: Vec<(Status, u64)>,
    modules: Vec<(&'static str, u64)>,
    flows: FlowTotals,
    /// JSON/CSV rows not yet written to `out`.
    text: TextWriter,
    json_rows: u64,
    error: Option<AnalyzeError>,
    inputs: &'w [Input],
    on_file: &'w mut dyn FnMut(&Input, &IngestStats),
    on_failed: &'w mut dyn FnMut(&Input, &ReplayError),
}

impl<W: Write> Analysis<'_, W> {
    fn observe(&mut self, source: usize, event: Event) -> Result<(), AnalyzeError> {
        count(&mut self.modules, event.module());
        // The client's SYN labels its connection for the traffic-by-OS table.
        if let EventKind::Tcp(t) = &event.kind
            && self.flows.wanted()
            && event.subject == crate::p0f::Subject::Client
        {
            let e = &event.endpoints;
            let (key, _) = FlowKey::new(
                e.ip_version,
                e.client_addr,
                e.client_port,
                e.server_addr,
                e.server_port,
            );
            self.flows.label_connection(key, t.label.as_ref());
        }
        let obs = Observation { source, event };
        match self.format {
            OutputFormat::P0f => crate::p0f::log::write_p0f_line(&obs.event, self.out)
                .map_err(AnalyzeError::Write)?,
            OutputFormat::Ndjson => {
                self.text.json_object(&obs, &self.sources);
                self.text.push(b"\n");
            }
            OutputFormat::Csv => self.text.csv_line(&obs, &self.sources),
            OutputFormat::Json => {
                self.text.push(if self.json_rows == 0 {
                    b"\n    "
                } else {
                    b",\n    "
                });
                self.text.json_object(&obs, &self.sources);
                self.json_rows += 1;
            }
            OutputFormat::Table => {}
        }
        self.text
            .flush_if_full(self.out)
            .map_err(AnalyzeError::Write)?;
        if let Some(r) = &mut self.results {
            r.write(&obs)?;
        }
        if let Some(a) = &mut self.agg {
            a.add(&obs).map_err(AnalyzeError::Summary)?;
        }
        Ok(())
    }
}

impl<W: Write> Consumer for Analysis<'_, W> {
    fn records(&mut self, index: usize, records: &[SynRecord]) {
        for r in records {
            if self.error.is_some() {
                return;
            }
            let status = self.engine.process(r, &mut self.events);
            count(&mut self.statuses, status);
            let events = std::mem::take(&mut self.events);
            for ev in events {
                if let Err(e) = self.observe(index, ev) {
                    self.error = Some(e);
                    break;
                }
            }
        }
    }

    fn input_done(&mut self, index: usize, done: InputDone) {
        self.totals.inputs += 1;
        self.totals.ingest.merge(&done.stats);
        if let Some(table) = &done.flows {
            self.flows.add_table(table);
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
}

/// What a run produced besides its stdout.
#[derive(Debug)]
pub struct RunReport {
    pub totals: Totals,
    /// The summary, for `table`/`json` formats.
    pub summary: Option<Summary>,
    /// Rows written to the results file.
    pub results_rows: Option<u64>,
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
        Some(path) => Database::from_file(path)?,
        None => Database::embedded()?,
    };
    let sources = Sources::from_paths(inputs.iter().map(|i| i.path.as_path()));
    let results = match &opts.out {
        Some(path) => Some(ResultsWriter::create(path, sources.clone())?),
        None => None,
    };
    let summary = opts.format.needs_summary();
    let mut replay_opts = opts.replay;
    replay_opts.flows = summary;
    let mut a = Analysis {
        engine: Engine::new(Arc::new(db)),
        events: Vec::new(),
        sources,
        format: opts.format,
        out,
        results,
        agg: summary.then(Aggregator::new),
        totals: Totals::default(),
        statuses: Vec::new(),
        modules: Vec::new(),
        flows: FlowTotals::new(summary),
        text: TextWriter::new(),
        json_rows: 0,
        error: None,
        inputs,
        on_file,
        on_failed,
    };
    match opts.format {
        OutputFormat::Csv => a
            .out
            .write_all(results::csv_header().as_bytes())
            .map_err(AnalyzeError::Write)?,
        OutputFormat::Json => a
            .out
            .write_all(b"{\n  \"observations\": [")
            .map_err(AnalyzeError::Write)?,
        _ => {}
    }
    parallel::replay(inputs, &replay_opts, progress, &mut a)?;
    if let Some(e) = a.error.take() {
        return Err(e);
    }
    a.text.flush(a.out).map_err(AnalyzeError::Write)?;
    for (status, n) in std::mem::take(&mut a.statuses) {
        *a.totals.engine.entry(status_name(status)).or_default() += n;
    }
    for (module, n) in std::mem::take(&mut a.modules) {
        *a.totals.observations.entry(module.to_string()).or_default() += n;
    }
    let summary = match a.agg.take() {
        Some(agg) => Some(
            agg.finish(&a.totals, &a.flows, opts.top)
                .map_err(AnalyzeError::Summary)?,
        ),
        None => None,
    };
    match (opts.format, &summary) {
        (OutputFormat::Table, Some(s)) => {
            crate::report::table::write(s, a.out).map_err(AnalyzeError::Write)?
        }
        (OutputFormat::Json, Some(s)) => {
            let mut text = String::from(if a.json_rows == 0 { "],\n" } else { "\n  ],\n" });
            text.push_str("  \"summary\": ");
            crate::report::json::summary(s, &mut text);
            text.push_str("\n}\n");
            a.out
                .write_all(text.as_bytes())
                .map_err(AnalyzeError::Write)?
        }
        _ => {}
    }
    let results_rows = match a.results.take() {
        Some(r) => Some(r.close()?),
        None => None,
    };
    Ok(RunReport {
        totals: a.totals,
        summary,
        results_rows,
    })
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
            status_name(Status::Skipped(crate::p0f::Skip::Ipv6ExtensionHeaders)),
            "p0f filter: ipv6 extension headers"
        );
        assert_eq!(status_name(Status::Reported), "fingerprinted");
    }
}
