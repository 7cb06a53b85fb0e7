//! `analyze`: replays recordings and captures through the p0f v3 engine.
//!
//! Thin: argument parsing, output plumbing and exit codes. The work is in the `analyze`
//! library.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use analyze::inputs;
use analyze::records::{self, RecordsOptions};

const EXAMPLES: &str = "\
Examples:
  analyze --format p0f trace.pcap            p0f 3.09b-compatible log lines on stdout
  analyze --format p0f day.parquet old/      recordings, captures and folders, mixed
  analyze --records day.parquet trace.pcapng a recording (+ day.flows.parquet) from a capture
  analyze --db my.fp --format p0f trace.pcap use another p0f.fp instead of the bundled one";

/// Passive TCP/OS fingerprinting of recordings and pcap/pcapng captures (p0f v3 compatible).
#[derive(Debug, Parser)]
#[command(name = "analyze", version, after_help = EXAMPLES)]
struct Cli {
    /// pcap, pcapng or recording (.parquet) files, or folders (walked recursively, in sorted
    /// order; `*.flows.parquet` companions are not inputs of their own).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Instead of fingerprinting, convert pcap/pcapng inputs into a recording: SYN records to
    /// OUT (e.g. `day.parquet`) and flow counters to its `.flows.parquet` sibling, in the
    /// schema `capture` writes. A summary of what was read goes to stderr.
    #[arg(long, value_name = "OUT.parquet")]
    records: Option<PathBuf>,

    /// Output format of the fingerprints on stdout. `p0f`: the lines `p0f -r FILE -o LOG`
    /// writes (mod=syn, syn+ack, mtu, uptime, host change, ip sharing).
    #[arg(long, value_enum, default_value_t = Format::P0f)]
    format: Format,

    /// Signature database in p0f.fp format, replacing the bundled one (Debian's p0f 3.09b
    /// database plus synscope's additions).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,

    /// With --records: length of a flow-counter interval in seconds; each flow gets one row
    /// per interval it was active in (like `capture --flow-interval`).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    flow_interval: u64,

    /// No progress or summary on stderr (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// p0f 3.09b log lines.
    P0f,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
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
    let inputs = inputs::expand(&cli.inputs).context("reading the inputs")?;
    if let Some(out) = &cli.records {
        let opts = RecordsOptions {
            flow_interval_ns: cli.flow_interval.saturating_mul(1_000_000_000),
            ..RecordsOptions::default()
        };
        let quiet = cli.quiet;
        let report = records::write_recording(&inputs, out, &opts, |f| {
            if !quiet {
                eprintln!("{}: {}", f.path.display(), f.stats);
            }
            warn_truncated(quiet, &f.path, &f.stats);
        })
        .with_context(|| format!("writing the recording {}", out.display()))?;
        if !cli.quiet {
            eprintln!(
                "total ({} files): {}\nwrote {} SYN records to {} and {} flow rows to {}",
                report.files.len(),
                report.total,
                report.syn.rows,
                report.syn_path.display(),
                report.flows.rows,
                report.flows_path.display()
            );
        }
        return Ok(());
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match cli.format {
        Format::P0f => {
            let quiet = cli.quiet;
            analyze::replay::write_p0f_log(&inputs, cli.db.as_deref(), &mut out, |input, s| {
                warn_truncated(quiet, &input.path, &s.ingest)
            })
            .context("fingerprinting")?
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(())
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
