//! `analyze`: replays recordings and captures through the p0f v3 engine.
//!
//! Thin: argument parsing, output plumbing and exit codes. The work is in the `analyze`
//! library.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use analyze::analysis::{self, AnalyzeOptions, OutputFormat};
use analyze::parallel::{Progress, ReplayOptions};

use analyze::inputs;
use analyze::learn::{Candidate, SuggestOptions, suggest};
use analyze::records::{self, RecordsOptions};
use p0f::{Database, DbFile};

const EXAMPLES: &str = "\
Examples:
  analyze trace.pcap                         readable report: totals, OS mix, quality, hosts,
                                             unknown signatures, MTU, distance, traffic by OS
  analyze --format json day.parquet old/     one JSON document (summary + observations);
                                             recordings, captures and folders, mixed
  analyze --format ndjson trace.pcapng | jq  one JSON object per observation per line
  analyze --format csv --out res.parquet x/  CSV on stdout and a Parquet file for notebooks
  analyze --format p0f trace.pcap            p0f 3.09b-compatible log lines on stdout
  analyze --keep-going --threads 8 caps/     use every readable input, report the others
  analyze --since 2h /var/lib/synscope       a capture --out-dir tree, its last two hours
  analyze --records day.parquet trace.pcapng a recording (+ its flow and payload files)
  analyze --db my.fp --format p0f trace.pcap use another p0f.fp instead of the bundled one
  analyze --db builtin:p0f.fp --db builtin:synscope.fp --db mine.fp x.pcap
                                             the bundled databases, extended by mine.fp
  zcat old.pcap.gz | analyze -               a capture on standard input
  tcpdump -U -w - | analyze --format p0f -   live: each packet's lines as it comes

Exit status: 0 on success; 2 on any error (message on stderr starting with `error:`),
including inputs skipped by --keep-going. A closed stdout (`| head`) ends quietly. Ctrl-C or
SIGTERM stops a run over files at once, leaving no partial Parquet file: exit status 130 or
143. With a live stream among the inputs, analyze reads on to the stream's end (the signal
stops the program writing it) and finishes as usual; a second signal ends it at once.";

/// Passive TCP/OS fingerprinting of recordings and pcap/pcapng captures (p0f v3 compatible).
#[derive(Debug, Parser)]
#[command(name = "analyze", version, after_help = EXAMPLES, term_width = 100)]
struct Cli {
    /// pcap, pcapng or recording (.parquet) files, or folders (walked recursively, in sorted
    /// order; files are known by their first bytes and others are skipped, but a file named
    /// .pcap, .cap, .pcapng or .parquet that is none of these is a bad input; `*.flows.parquet`
    /// companions are not inputs of their own, but a recording's `NAME.flows.parquet` sibling
    /// is read for the traffic-by-OS table). `-` reads a capture from standard input, and a
    /// named pipe is read like it (`zcat day.pcap.gz | analyze -`); recordings must be files.
    /// A live stream's observations are written as they come; the first Ctrl-C is left to
    /// the program writing the stream, and analyze finishes (report, files) at its end.
    /// In folders, analyze's own results files (--out) and files named `*.tmp` are left out.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Output on stdout. `table`: a readable report. `json`: one document with every
    /// observation and the summary. `ndjson`: one observation per line. `csv`: one
    /// observation per row, with a header. `p0f`: the lines `p0f -r FILE -o LOG` writes.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Also write every observation to this Parquet file (one row per observation: time,
    /// endpoints, direction, raw_sig, label, quality, distance, MTU, link, uptime, host-change
    /// flags, the OS an HTTP request's User-Agent names, source file), for notebooks. Written under a temporary name, renamed when
    /// complete.
    #[arg(long, short, value_name = "FILE.parquet")]
    out: Option<PathBuf>,

    /// Decoding threads: a recording's row groups and a pcap or pcapng file's packets are
    /// decoded in parallel (a capture on standard input or a pipe is read on one thread).
    /// Output does not depend on it: one p0f engine sees every record in input order.
    /// Default: all cores.
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,

    /// With several inputs, report an unreadable or corrupt one on stderr and go on with the
    /// others (the exit status is still 2). Without it the first bad input stops the run.
    #[arg(long)]
    keep_going: bool,

    /// In a partitioned tree (`capture --out-dir`), skip the `date=`/`hour=` partitions that
    /// end before this time, without opening their files: RFC 3339
    /// (`2026-12-06T08:00:00Z`) or an age (`2h`, `7d`). Hour granularity: rows of the
    /// partition holding the time are all read.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,

    /// In a partitioned tree, skip the partitions that start at or after this time (RFC 3339
    /// or an age, as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,

    /// Rows in the report's top-hosts and unknown-signature tables.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,

    /// Signature database in p0f.fp format, replacing the bundled one. Repeatable: the files
    /// are read in order as one database, each extending the ones before it (a later file's
    /// signatures come after the earlier ones', so they cannot override them). The bundled
    /// files are `builtin:p0f.fp` (Debian's p0f 3.09b database, unmodified) and
    /// `builtin:synscope.fp` (synscope's additions); without --db the database is both, in
    /// that order, except with `--format p0f`, which uses `builtin:p0f.fp` alone so that its
    /// lines are p0f's. To keep the bundled files and add one:
    /// `--db builtin:p0f.fp --db builtin:synscope.fp --db mine.fp`. A file p0f would reject
    /// is an error naming its file and line.
    #[arg(long, value_name = "FILE")]
    db: Vec<PathBuf>,

    /// Also write candidate p0f.fp entries learned from the inputs to this file: SYN and
    /// SYN+ACK signatures the database does not know, matches only generically or fuzzily,
    /// or labels with another OS than the HTTP User-Agent of the hosts sending them, when
    /// enough hosts agree (--suggest-min-hosts, --suggest-max-conflict). Each entry has its
    /// evidence in a comment; entries a later file cannot override (an earlier database
    /// matches them exactly) are written commented out. The file loads after the run's
    /// databases (`--db builtin:p0f.fp --db builtin:synscope.fp --db FILE.fp`). Written under
    /// a temporary name, renamed when complete.
    #[arg(long, value_name = "FILE.fp")]
    suggest_sigs: Option<PathBuf>,

    /// With --suggest-sigs: distinct hosts whose User-Agent must name the OS.
    #[arg(long, value_name = "N", default_value_t = 3)]
    suggest_min_hosts: u64,

    /// With --suggest-sigs: largest share (0 to 1) of a signature's hosts whose User-Agent
    /// names another OS.
    #[arg(long, value_name = "SHARE", default_value_t = 0.1)]
    suggest_max_conflict: f64,

    /// Instead of fingerprinting, convert pcap/pcapng inputs into a recording: SYN records to
    /// OUT (e.g. `day.parquet`), flow counters to its `.flows.parquet` sibling, in the schema
    /// `capture` writes, and the segments p0f's HTTP module reads (the first 8 KiB of each
    /// direction of flows that start like HTTP) to its `.payload.parquet` sibling, so
    /// analyzing the recording gives the HTTP lines too. A summary goes to stderr.
    #[arg(long, value_name = "OUT.parquet")]
    records: Option<PathBuf>,

    /// With --records: length of a flow-counter interval in seconds; each flow gets one row
    /// per interval it was active in (like `capture --flow-interval`).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    flow_interval: u64,

    /// No progress bar or warnings on stderr (errors are still printed). The progress bar
    /// (bytes read, rate, ETA) only appears when stderr is a terminal.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Readable report.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per observation per line.
    Ndjson,
    /// CSV with a header line.
    Csv,
    /// p0f 3.09b log lines.
    P0f,
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> OutputFormat {
        match f {
            Format::Table => OutputFormat::Table,
            Format::Json => OutputFormat::Json,
            Format::Ndjson => OutputFormat::Ndjson,
            Format::Csv => OutputFormat::Csv,
            Format::P0f => OutputFormat::P0f,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            match signals::caught() {
                // The run stopped for the signal (and removed its temporary files).
                Some(signal) => ExitCode::from(128u8.saturating_add(signal as u8)),
                None => ExitCode::from(2),
            }
        }
    }
}

/// A reader of our stdout went away (`analyze ... | head`): not an error worth a word.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // First, and without context: a bad database line is `error: FILE:LINE: reason`.
    let db_files = db_files(cli)?;
    let db = if cli.db.is_empty() {
        None
    } else {
        Some(Arc::new(Database::stack(&db_files)?))
    };
    if !(0.0..=1.0).contains(&cli.suggest_max_conflict) {
        anyhow::bail!("--suggest-max-conflict must be between 0 and 1");
    }
    let (inputs, unusable) = collect_inputs(cli)?;
    signals::catch().context("setting up SIGINT and SIGTERM")?;
    // A run over files stops at a signal; one with a live stream reads on to its end.
    let stop = if inputs.iter().any(|i| i.kind == inputs::InputKind::Stream) {
        None
    } else {
        Some(&signals::STOP)
    };
    if let Some(out) = &cli.records {
        return write_records(cli, &inputs, out, stop);
    }
    if let Some(out) = &cli.out
        && analysis::out_is_an_input(out, &inputs)
    {
        anyhow::bail!("--out {} is one of the inputs", out.display());
    }
    let opts = AnalyzeOptions {
        replay: ReplayOptions {
            threads: cli.threads.unwrap_or_else(default_threads).max(1),
            keep_going: cli.keep_going,
            stop,
            ..ReplayOptions::default()
        },
        format: cli.format.into(),
        db,
        out: cli.out.clone(),
        top: cli.top,
        suggest: cli.suggest_sigs.as_ref().map(|_| SuggestOptions {
            min_hosts: cli.suggest_min_hosts.max(1),
            max_conflict: cli.suggest_max_conflict,
        }),
    };
    let progress = Progress::default();
    let show_bar = !cli.quiet && io::stderr().is_terminal();
    let finished = AtomicBool::new(false);
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let quiet = cli.quiet;
    let report = std::thread::scope(|s| {
        if show_bar {
            s.spawn(|| draw_progress(&progress, &finished));
        }
        let r = analysis::run(
            &inputs,
            &opts,
            &progress,
            &mut out,
            &mut |input, stats| warn_truncated(quiet, &input.path, stats),
            // Printed whatever --quiet says: with --keep-going this is the only report of it.
            &mut |_, err| eprintln!("error: skipped input: {err}"),
        );
        finished.store(true, Ordering::Relaxed);
        r
    });
    let report = report.context("fingerprinting")?;
    out.flush().context("writing to stdout")?;
    if let (Some(path), Some(cands), Some(o)) =
        (&cli.suggest_sigs, report.suggestions, opts.suggest)
    {
        write_suggestions(path, cands, &db_files, o, cli.quiet)?;
    }
    let failed = report.totals.failed.len() + unusable;
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} inputs could not be read (see above)",
            inputs.len() + unusable
        );
    }
    Ok(())
}

/// The files of the run's database: `--db`'s, or the default of the format (see
/// [`analysis::default_database`]).
fn db_files(cli: &Cli) -> Result<Vec<DbFile>, p0f::DbError> {
    if cli.db.is_empty() {
        return Ok(match cli.format {
            Format::P0f => vec![DbFile::P0f],
            _ => DbFile::DEFAULT.to_vec(),
        });
    }
    cli.db.iter().map(|a| DbFile::from_arg(a)).collect()
}

/// `--suggest-sigs`: the candidates checked against the run's databases and written.
fn write_suggestions(
    path: &std::path::Path,
    cands: Vec<Candidate>,
    files: &[DbFile],
    opts: SuggestOptions,
    quiet: bool,
) -> anyhow::Result<()> {
    let name = path.display().to_string();
    let (text, cands) = suggest::checked(cands, files, &name, opts)?;
    suggest::write(path, &text)?;
    if !quiet {
        let blocked = cands.iter().filter(|c| c.blocked.is_some()).count();
        eprintln!(
            "wrote {} learned signatures to {name} ({blocked} of them commented out)",
            cands.len()
        );
    }
    Ok(())
}

/// The inputs the command line names (folders walked, a tree's partitions kept to
/// `--since`/`--until`), and how many paths were unusable (only with `--keep-going`, which
/// reports them and goes on).
fn collect_inputs(cli: &Cli) -> anyhow::Result<(Vec<inputs::Input>, usize)> {
    let now = formats::time::now_ns();
    let time = |t: &Option<String>, what: &str| {
        t.as_deref()
            .map(|t| formats::time::parse_time_or_ago(t, now))
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--{what}"))
    };
    let range = inputs::TimeRange {
        since: time(&cli.since, "since")?,
        until: time(&cli.until, "until")?,
    };
    // With --keep-going a missing or unknown path is reported like any other bad input.
    let mut unusable = 0;
    let inputs = if cli.keep_going && cli.records.is_none() {
        let mut all = Vec::new();
        for p in &cli.inputs {
            match inputs::expand_within(std::slice::from_ref(p), range) {
                Ok(v) => all.extend(v),
                Err(e) => {
                    eprintln!("error: skipped input: {e}");
                    unusable += 1;
                }
            }
        }
        all
    } else {
        inputs::expand_within(&cli.inputs, range).context("reading the inputs")?
    };
    Ok((inputs, unusable))
}

/// `analyze --records OUT`: the inputs become one recording (SYN records, flow rows, payload
/// rows).
fn write_records(
    cli: &Cli,
    inputs: &[inputs::Input],
    out: &std::path::Path,
    stop: Option<&'static std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let opts = RecordsOptions {
        flow_interval_ns: cli.flow_interval.saturating_mul(1_000_000_000),
        stop,
        ..RecordsOptions::default()
    };
    let quiet = cli.quiet;
    let report = records::write_recording(inputs, out, &opts, |f| {
        if !quiet {
            eprintln!("{}: {}", f.path.display(), f.stats);
        }
        warn_truncated(quiet, &f.path, &f.stats);
    })
    .with_context(|| format!("writing the recording {}", out.display()))?;
    if !cli.quiet {
        eprintln!(
            "total ({} files): {}\nwrote {} SYN records to {}, {} flow rows to {} and {} \
             payload rows to {}",
            report.files.len(),
            report.total,
            report.syn.rows,
            report.syn_path.display(),
            report.flows.rows,
            report.flows_path.display(),
            report.payload.rows,
            report.payload_path.display()
        );
    }
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Draws the progress bar on stderr until `finished`: bytes of input done, rate, ETA; with
/// a stream among the inputs (total unknown), bytes done and rate only.
fn draw_progress(progress: &Progress, finished: &AtomicBool) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let sized = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} \
         {binary_bytes_per_sec} ETA {eta}",
    );
    let open_ended = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {binary_bytes} {binary_bytes_per_sec}",
    );
    // The total is set once the replay has looked at its inputs, maybe after the first tick.
    let mut known = None;
    while !finished.load(Ordering::Relaxed) {
        let total = progress.total.load(Ordering::Relaxed);
        if known != Some(total > 0) {
            known = Some(total > 0);
            let style = if total > 0 { &sized } else { &open_ended };
            if let Ok(style) = style {
                bar.set_style(style.clone());
            }
            bar.set_length(total);
        }
        bar.set_position(progress.done.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

/// A capture cut short is read up to the damage (not an error): say where the damage is.
fn warn_truncated(quiet: bool, path: &std::path::Path, stats: &formats::pcap::IngestStats) {
    if quiet {
        return;
    }
    if let Some(at) = stats.truncated_at {
        eprintln!(
            "warning: {}: unreadable from byte {at} ({}); used the {} packets before it",
            path.display(),
            stats.truncation.as_deref().unwrap_or("truncated"),
            stats.packets
        );
    }
}
