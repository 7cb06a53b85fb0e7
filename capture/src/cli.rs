//! Command-line interface.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, Destination};
use crate::error::Result;
use crate::kernel::Mode;
use crate::output::{self, Paths};
use crate::retention::Limits;
use crate::run;
use crate::tree::Tree;

/// Record TCP SYN and SYN+ACK headers (and per-flow counters) from a live interface with
/// eBPF, to Parquet.
#[derive(Debug, Parser)]
#[command(name = "capture", version)]
pub struct Cli {
    /// Interface to capture on.
    #[arg(long)]
    pub iface: Option<String>,
    /// SYN recording to write; flows go to the sibling `*.flows.parquet`. Converted from
    /// the journals when capture stops.
    #[arg(long, required_unless_present_any = ["check", "out_dir"], conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,
    /// Run as a service: write closed Parquet files every --rotate into the tree
    /// `DIR/syn/host=H/date=YYYY-MM-DD/hour=HH/NAME.parquet` (flows under `DIR/flows/`, same
    /// names), readable while capture runs (DuckDB, polars, Spark: hive partitioning).
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// With --out-dir: the longest span of one file, 15m by default (spans end on multiples
    /// of it within the UTC hour, and at every hour).
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub rotate: Option<Duration>,
    /// With --out-dir: also end a span once its journals (uncompressed, 136 bytes a SYN)
    /// hold this much (`256MiB`, `1GB`, plain bytes); its Parquet files are several times
    /// smaller.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub rotate_size: Option<u64>,
    /// With --out-dir: delete closed files once all their rows are older than this (`7d`).
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub retain: Option<Duration>,
    /// With --out-dir: delete the oldest closed files while the tree holds more than this
    /// (`20GiB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_disk: Option<u64>,
    /// Hook: `tc` (ingress and egress) or `xdp` (ingress).
    #[arg(long, value_enum, default_value = "tc")]
    pub mode: Mode,
    /// Stop after this long (`10s`, `15m`, `2h`, `1d`; a plain number is seconds). Default:
    /// run until SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub duration: Option<Duration>,
    /// Time between flow-table snapshots (one row per active flow per interval).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub flow_interval: Duration,
    /// Time between journal flushes: the most data a crash can lose.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    pub flush_interval: Duration,
    /// Do not keep flow counters.
    #[arg(long)]
    pub no_flows: bool,
    /// Ring buffer size in MiB (power of two). It is mapped into the process, its data
    /// twice: it costs 2x its size in resident memory. Raise it where the CPUs are saturated
    /// for tens of milliseconds at a time (what overflows is counted as `ringbuf_full`).
    #[arg(long, default_value_t = 4)]
    pub ring_mib: u32,
    /// Flow table capacity (LRU entries).
    #[arg(long, default_value_t = 65536)]
    pub flow_entries: u32,
    /// Flood guard: keep at most N SYN records per second on each CPU; the SYNs past the
    /// limit are counted (`syn_sampled_out`), neither recorded nor added to flows.
    /// Default: keep every SYN.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_syn_rate: Option<u32>,
    /// Only recover the journals a killed run left for --out, then exit.
    #[arg(long)]
    pub recover: bool,
    /// Only check that this kernel can run the datapath, then exit (0 if it can, 2 if not):
    /// probe the features it needs and load every program (TC ingress, TC egress, XDP)
    /// through the verifier without attaching anything. A rejected program's verifier log is
    /// printed whole (a failed capture shows only its end).
    #[arg(long, conflicts_with_all = ["iface", "out", "out_dir", "recover"])]
    pub check: bool,
}

/// A size in bytes: a number with an optional unit, `KiB`/`MiB`/`GiB`/`TiB` (or `K`, `M`,
/// `G`, `T`) in powers of 1024, `KB`/`MB`/`GB`/`TB` in powers of 1000; not zero.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 256MiB, 20GiB or plain bytes"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (use KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    let bytes = value * scale;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?}: must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// `--rotate` when not given: 96 files a day per kind, each a quarter hour behind at most.
const DEFAULT_ROTATE: Duration = Duration::from_secs(15 * 60);

/// A duration as people type it ([`formats::time::parse_duration`]), which must not be zero.
fn positive_duration(s: &str) -> std::result::Result<Duration, String> {
    let d = formats::time::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// Runs the command; returns the text to print on success.
pub fn main(cli: Cli) -> Result<String> {
    if cli.check {
        // Not `println!`: a reader that stops early (`| head`) must not make it panic.
        let mut stdout = std::io::stdout();
        crate::kernel::check_kernel(&mut |line| {
            let _ = writeln!(stdout, "{line}");
        })?;
        return Ok("this kernel can run the datapath in both modes".into());
    }
    let tree_only = cli.rotate.is_some()
        || cli.rotate_size.is_some()
        || cli.retain.is_some()
        || cli.max_disk.is_some();
    let dest = match (cli.out, cli.out_dir) {
        (Some(_), None) if tree_only => {
            return Err(crate::CaptureError::Usage(
                "--rotate, --rotate-size, --retain and --max-disk need --out-dir".into(),
            ));
        }
        (Some(out), None) => Destination::File(out),
        (None, Some(dir)) => Destination::Tree {
            dir,
            rotate: cli.rotate.unwrap_or(DEFAULT_ROTATE),
            rotate_size: cli.rotate_size,
            limits: Limits {
                retain: cli.retain,
                max_disk: cli.max_disk,
            },
        },
        _ => {
            return Err(crate::CaptureError::Usage(
                "give one of --out FILE and --out-dir DIR".into(),
            ));
        }
    };
    if cli.recover {
        return recover(&dest, cli.iface.as_deref());
    }
    let Some(iface) = cli.iface else {
        return Err(crate::CaptureError::Usage("--iface is required".into()));
    };
    let cfg = Config {
        iface,
        dest,
        mode: cli.mode,
        duration: cli.duration,
        flow_interval: cli.flow_interval,
        flush_interval: cli.flush_interval,
        flows: !cli.no_flows,
        ring_mib: cli.ring_mib,
        flow_entries: cli.flow_entries,
        max_syn_rate: cli.max_syn_rate.unwrap_or(0),
        status: true,
    };
    run::run(&cfg, &mut |line| eprintln!("{line}")).map(|s| s.report())
}

/// `--recover`: converts what a killed run left, then exits.
fn recover(dest: &Destination, iface: Option<&str>) -> Result<String> {
    let out = match dest {
        Destination::File(out) => out,
        Destination::Tree { dir, .. } => {
            let Some(iface) = iface else {
                return Err(crate::CaptureError::Usage(
                    "--recover --out-dir needs the --iface of the killed run".into(),
                ));
            };
            let mut host = formats::meta::RecordingMeta::new(formats::meta::RecordType::Syn);
            host.fill_local_host();
            let got = Tree::open(dir, &host.host, iface)?.recover()?;
            return Ok(if got.syn.is_empty() {
                "nothing to recover".into()
            } else {
                format!(
                    "recovered {} SYN records into {} files under {}",
                    got.syn_rows(),
                    got.syn.len() + got.flows.len(),
                    dir.display()
                )
            });
        }
    };
    Ok(match output::recover(&Paths::new(out))? {
        Some(c) => format!(
            "recovered {} SYN records -> {}{}",
            c.syn.1.rows,
            c.syn.0.display(),
            c.flows
                .map(|(p, w)| format!(", {} flow rows -> {}", w.rows, p.display()))
                .unwrap_or_default()
        ),
        None => "nothing to recover".into(),
    })
}
