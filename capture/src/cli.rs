//! Command-line interface.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::error::Result;
use crate::kernel::Mode;
use crate::output::{self, Paths};
use crate::run::{self, Config};

/// Record TCP SYN and SYN+ACK headers (and per-flow counters) from a live interface with
/// eBPF, to Parquet.
#[derive(Debug, Parser)]
#[command(name = "capture", version)]
pub struct Cli {
    /// Interface to capture on.
    #[arg(long)]
    pub iface: Option<String>,
    /// SYN recording to write; flows go to the sibling `*.flows.parquet`.
    #[arg(long, required_unless_present = "check")]
    pub out: Option<PathBuf>,
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
    #[arg(long, conflicts_with_all = ["iface", "out", "recover"])]
    pub check: bool,
}

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
    let Some(out) = cli.out else {
        return Err(crate::CaptureError::Usage("--out is required".into()));
    };
    if cli.recover {
        return Ok(match output::recover(&Paths::new(&out))? {
            Some(c) => format!(
                "recovered {} SYN records -> {}{}",
                c.syn.1.rows,
                c.syn.0.display(),
                c.flows
                    .map(|(p, w)| format!(", {} flow rows -> {}", w.rows, p.display()))
                    .unwrap_or_default()
            ),
            None => "nothing to recover".into(),
        });
    }
    let Some(iface) = cli.iface else {
        return Err(crate::CaptureError::Usage("--iface is required".into()));
    };
    let cfg = Config {
        iface,
        out,
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
