//! Benchmark of the journal-to-Parquet conversion a clean stop runs (`output::convert`),
//! issue 18: under a SYN flood this is most of capture's CPU.
//!
//! Two steps, so that the measured process does nothing but convert:
//!
//! ```sh
//! convert_bench make DIR [SYNS] [--sources N] [--flow-entries N]
//!                                   # journals of a SYN flood (default 1,000,000 SYNs)
//! convert_bench convert DIR [--no-flows] [--keep]
//! convert_bench compare A.parquet B.parquet
//! ```
//!
//! `make` writes `DIR/flood.parquet.journal` and `DIR/flood.flows.parquet.journal` with
//! capture's own `JournalWriter`: random IPv4 sources and ports, one destination
//! (198.51.100.3:80), Linux's SYN options (`mss,sackOK,ts,nop,ws`, as `bench/flood.sh`
//! sends), 400k SYN/s; the flow journal has one row per SYN (every SYN of such a flood is a
//! new flow), in 10 s intervals, in hash order as the flow table hands them out.
//! `--sources N` draws sources from N addresses 198.51.100.16... instead (`bench/flood.sh`
//! uses 239); `--flow-entries N` keeps only the last N flows of each interval, as capture's
//! LRU flow table of `--flow-entries` (default 65,536) does: what `bench/flood.sh` records.
//!
//! `convert` hard-links both journals into a fresh `DIR/run-PID/` (the conversion deletes
//! its journals; the originals stay), converts them, and prints one line of `key=value`
//! pairs: CPU seconds (user + sys, `getrusage`) and wall seconds of the conversion, the
//! process's peak RSS (`VmHWM`), rows and file sizes. `bench/convert.sh` runs it in rounds.
//!
//! `compare` reads two recordings of the same kind and fails unless their rows, metadata
//! and Arrow schemas are equal: how a cheaper writer shows it wrote the same files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use capture::journal::JournalWriter;
use capture::output::{self, Paths};
use formats::flows::{FlowReader, FlowRow};
use formats::meta::RecordType;
use formats::syn::SynReader;
use record::{FlowCounters, FlowKey, SynRecord, direction, ip_frag, source, tcp_flag};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The SYN's options as Linux sends them (`bench/flood.sh` sends these bytes).
const OPTIONS: [u8; 20] = [
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x01, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x07,
];
/// 2026-12-06 00:00 UTC.
const START_NS: u64 = 1_796_515_200_000_000_000;
/// 400k SYN/s, about what capture kept in the flood benchmark.
const GAP_NS: u64 = 2_500;
/// capture's default `--flow-interval`.
const FLOW_INTERVAL_NS: u64 = 10_000_000_000;
const DST: [u8; 4] = [198, 51, 100, 3];

/// splitmix64: deterministic, so every `make` writes the same journals.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// 198.51.100.16, the first source address `bench/flood.sh` draws from.
const FLOOD_SH_FIRST_SOURCE: u32 = 0xc633_6410;

/// The shape of a generated flood.
#[derive(Clone, Copy, Debug)]
struct Shape {
    syns: u64,
    /// `None`: every IPv4 address.
    sources: Option<u32>,
    /// `None`: every flow of an interval gets its row.
    flow_entries: Option<usize>,
}

fn syn(i: u64, rng: &mut Rng, sources: Option<u32>) -> SynRecord {
    let mut r = SynRecord::ZERO;
    let a = rng.next();
    r.ts_ns = START_NS + i * GAP_NS + (a >> 60);
    r.ifindex = 7;
    r.direction = direction::INGRESS;
    r.source = source::TC;
    r.ip_version = 4;
    let src = match sources {
        Some(n) => FLOOD_SH_FIRST_SOURCE.wrapping_add(a as u32 % n.max(1)),
        None => a as u32,
    };
    r.src_addr[..4].copy_from_slice(&src.to_be_bytes());
    r.dst_addr[..4].copy_from_slice(&DST);
    r.src_port = (a >> 32) as u16;
    r.dst_port = 80;
    r.ttl = 64;
    r.ip_len = 60;
    r.ip_id = (a >> 48) as u16;
    r.ip_frag = ip_frag::DF;
    r.ip_hdr_len = 20;
    r.tcp_flags = tcp_flag::SYN;
    r.seq = rng.next() as u32;
    r.window = 64240;
    r.tcp_hdr_len = 40;
    r.tcp_opts_len = OPTIONS.len() as u8;
    r.tcp_opts[..OPTIONS.len()].copy_from_slice(&OPTIONS);
    r
}

/// The flow row a flow-table snapshot makes of one SYN.
fn flow(r: &SynRecord) -> FlowRow {
    let (key, dir) = FlowKey::new(4, r.src_addr, r.src_port, r.dst_addr, r.dst_port);
    let mut counters = FlowCounters::default();
    counters
        .dir_mut(dir)
        .add(r.ts_ns, u64::from(r.ip_len), r.tcp_flags);
    let start = START_NS + (r.ts_ns - START_NS) / FLOW_INTERVAL_NS * FLOW_INTERVAL_NS;
    FlowRow {
        interval_start_ns: start,
        interval_end_ns: start + FLOW_INTERVAL_NS,
        key,
        counters,
    }
}

fn journal_meta() -> Vec<(String, String)> {
    [
        (output::key::HOST, "bench"),
        (output::key::INTERFACE, "vb"),
        (output::key::KERNEL, "6.18.44"),
        (output::key::CLOCK_SOURCE, "monotonic+offset"),
        (output::key::START_UTC_NS, "1796515200000000000"),
        ("mode", "tc"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn paths(dir: &Path) -> Paths {
    Paths::new(&dir.join("flood.parquet"))
}

fn make(dir: &Path, shape: Shape) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let p = paths(dir);
    let meta = journal_meta();
    let mut sj = JournalWriter::create::<SynRecord>(&p.syn_journal, &meta)?;
    let mut fj = JournalWriter::create::<FlowRow>(&p.flows_journal, &meta)?;
    let mut rng = Rng(18);
    // Flow rows come out of a snapshot per interval, in hash-table order.
    let mut interval: Vec<FlowRow> = Vec::new();
    let flush_interval = |rows: &mut Vec<FlowRow>, fj: &mut JournalWriter| -> Res<()> {
        // An LRU table of N entries holds the interval's last N flows (every SYN is a new
        // flow) when it is read.
        if let Some(n) = shape.flow_entries {
            rows.drain(..rows.len().saturating_sub(n));
        }
        rows.sort_unstable_by_key(|f| {
            let k = &f.key;
            (u64::from(k.port_a) << 32 | u64::from(k.port_b)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ u64::from(u32::from_be_bytes([
                    k.addr_a[0],
                    k.addr_a[1],
                    k.addr_a[2],
                    k.addr_a[3],
                ]))
        });
        for f in rows.drain(..) {
            fj.push(&f);
        }
        fj.write_out()?;
        Ok(())
    };
    for i in 0..shape.syns {
        let r = syn(i, &mut rng, shape.sources);
        let f = flow(&r);
        if interval
            .first()
            .is_some_and(|g| g.interval_start_ns != f.interval_start_ns)
        {
            flush_interval(&mut interval, &mut fj)?;
        }
        interval.push(f);
        sj.push(&r);
        if i % 4096 == 4095 {
            sj.write_out()?;
        }
    }
    flush_interval(&mut interval, &mut fj)?;
    sj.finish()?;
    fj.finish()?;
    println!(
        "wrote {} ({} bytes) and {} ({} bytes)",
        p.syn_journal.display(),
        sj.bytes(),
        p.flows_journal.display(),
        fj.bytes()
    );
    Ok(())
}

/// User + system CPU seconds of this process so far.
fn cpu_s() -> f64 {
    // SAFETY: an all-zero rusage is a valid value to be overwritten by getrusage.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A `VmHWM`/`VmRSS` line of /proc/self/status, in MiB.
fn status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn convert(dir: &Path, flows: bool, keep: bool) -> Res<()> {
    let src = paths(dir);
    let run = dir.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&run)?;
    let p = paths(&run);
    std::fs::hard_link(&src.syn_journal, &p.syn_journal)?;
    if flows {
        std::fs::hard_link(&src.flows_journal, &p.flows_journal)?;
    }
    let extra = vec![
        ("syn_seen".to_string(), "1000000".to_string()),
        ("ringbuf_full".to_string(), "0".to_string()),
    ];
    let rss_before = status_mib("VmRSS:");
    let (cpu0, t0) = (cpu_s(), Instant::now());
    let got = output::convert(&p, &p.syn, &p.flows, &extra)?;
    let (cpu, wall) = (cpu_s() - cpu0, t0.elapsed().as_secs_f64());
    let rows = got.syn.1.rows;
    let (flow_rows, flow_bytes) = got.flows.as_ref().map_or((0, 0), |f| (f.1.rows, f.1.bytes));
    println!(
        "syn_rows={rows} flow_rows={flow_rows} cpu_s={cpu:.3} wall_s={wall:.3} \
         cpu_s_per_M={:.3} hwm_mib={:.1} rss_before_mib={rss_before:.1} syn_bytes={} \
         flow_bytes={flow_bytes} syn_row_groups={} damaged={}",
        cpu * 1e6 / rows.max(1) as f64,
        status_mib("VmHWM:"),
        got.syn.1.bytes,
        got.syn.1.row_groups,
        got.damaged,
    );
    if keep {
        println!("kept {}", run.display());
    } else {
        std::fs::remove_dir_all(&run)?;
    }
    Ok(())
}

fn compare(a: &Path, b: &Path) -> Res<()> {
    let kind = SynReader::open(a)
        .map(|_| RecordType::Syn)
        .or_else(|_| FlowReader::open(a).map(|_| RecordType::Flows))?;
    let rows = match kind {
        RecordType::Syn => {
            let (ra, rb) = (SynReader::open(a)?, SynReader::open(b)?);
            if ra.meta() != rb.meta() {
                return Err(format!("metadata differs: {:?} vs {:?}", ra.meta(), rb.meta()).into());
            }
            same_rows(ra.records(), rb.records())?
        }
        RecordType::Flows => {
            let (ra, rb) = (FlowReader::open(a)?, FlowReader::open(b)?);
            if ra.meta() != rb.meta() {
                return Err(format!("metadata differs: {:?} vs {:?}", ra.meta(), rb.meta()).into());
            }
            same_rows(ra.records(), rb.records())?
        }
        // Not a kind `kind` above can be: capture writes no payload recordings.
        RecordType::Payload => return Err("payload recordings are not compared".into()),
    };
    let schema = |p: &Path| -> Res<_> {
        let f = std::fs::File::open(p)?;
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)?;
        Ok(r.schema().clone())
    };
    if schema(a)? != schema(b)? {
        return Err("Arrow schemas differ".into());
    }
    println!("same: {rows} rows, metadata and schema ({kind:?})");
    Ok(())
}

fn same_rows<T: PartialEq + std::fmt::Debug, E: std::error::Error + 'static>(
    a: impl Iterator<Item = Result<T, E>>,
    b: impl Iterator<Item = Result<T, E>>,
) -> Res<u64> {
    let (mut a, mut b, mut n) = (a, b, 0u64);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ok(n),
            (Some(x), Some(y)) => {
                let (x, y) = (x?, y?);
                if x != y {
                    return Err(format!("row {n} differs: {x:?} vs {y:?}").into());
                }
            }
            _ => return Err(format!("row counts differ after {n} rows").into()),
        }
        n += 1;
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    match args.first().map(String::as_str) {
        Some("make") if args.len() >= 2 => {
            let value = |f: &str| -> Res<Option<u64>> {
                match args.iter().position(|a| a == f) {
                    Some(i) => Ok(Some(args.get(i + 1).ok_or("a value")?.parse::<u64>()?)),
                    None => Ok(None),
                }
            };
            let syns = match args.get(2).filter(|a| !a.starts_with("--")) {
                Some(s) => s.parse::<u64>()?,
                None => 1_000_000,
            };
            let shape = Shape {
                syns,
                sources: value("--sources")?.map(u32::try_from).transpose()?,
                flow_entries: value("--flow-entries")?.map(usize::try_from).transpose()?,
            };
            make(&PathBuf::from(&args[1]), shape)
        }
        Some("convert") if args.len() >= 2 => convert(
            &PathBuf::from(&args[1]),
            !flag("--no-flows"),
            flag("--keep"),
        ),
        Some("compare") if args.len() == 3 => compare(Path::new(&args[1]), Path::new(&args[2])),
        _ => Err(
            "usage: convert_bench make DIR [SYNS] [--sources N] [--flow-entries N] \
                  | convert DIR [--no-flows] [--keep] \
                  | compare A.parquet B.parquet"
                .into(),
        ),
    }
}
