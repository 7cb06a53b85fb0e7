//! The results model: one flat row per observation, and its writers (NDJSON, CSV, Parquet).
//!
//! An [`Event`] is what the engine says (one p0f log line); an [`Observation`] is that event
//! plus the input it came from. Every output format reads the same flat view of it,
//! [`cells`], in the column order of [`COLUMNS`], so JSON, CSV and Parquet cannot drift apart:
//! a column added here appears in all three.
//!
//! Values are typed (no p0f `???` strings): a missing value is a JSON `null`, an empty CSV
//! field or a Parquet null. Addresses are written in their standard text form (IPv6
//! compressed), times as RFC 3339 UTC with nanoseconds (JSON/CSV) or a UTC nanosecond
//! timestamp (Parquet).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::p0f::event::NatReasons;
use crate::p0f::{Event, EventKind, LabelType, Params, Quality, Subject};

/// One observation: an engine event and the index of its input in [`Sources`].
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub source: usize,
    pub event: Event,
}

/// The input file names observations refer to, by index (so rows share one string each).
#[derive(Clone, Debug, Default)]
pub struct Sources(pub Vec<Arc<str>>);

impl Sources {
    /// Names of `paths`, as given on the command line (or found in a folder).
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Sources {
        Sources(
            paths
                .into_iter()
                .map(|p| Arc::from(p.display().to_string()))
                .collect(),
        )
    }

    fn name(&self, i: usize) -> &str {
        self.0.get(i).map_or("", |s| s)
    }
}

/// Column types, mapped to JSON, CSV and Arrow types by each writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    /// ns since the Unix epoch, UTC.
    Time,
    Str,
    U8,
    U16,
    U32,
    F64,
    Bool,
}

/// One column of the results.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    /// Nullable in Parquet (and possibly empty/null in CSV/JSON).
    pub nullable: bool,
}

const fn c(name: &'static str, ty: ColType, nullable: bool) -> Column {
    Column { name, ty, nullable }
}

/// Every column, in output order. Bump [`RESULTS_SCHEMA_VERSION`] when this changes.
pub const COLUMNS: [Column; 28] = [
    c("time", ColType::Time, false),
    c("source_file", ColType::Str, false),
    c("module", ColType::Str, false),
    c("subject", ColType::Str, false),
    c("ip_version", ColType::U8, false),
    c("client_addr", ColType::Str, false),
    c("client_port", ColType::U16, false),
    c("server_addr", ColType::Str, false),
    c("server_port", ColType::U16, false),
    c("host_addr", ColType::Str, false),
    c("direction", ColType::Str, true),
    c("raw_sig", ColType::Str, true),
    c("label_type", ColType::Str, true),
    c("os_class", ColType::Str, true),
    c("os_name", ColType::Str, true),
    c("os_flavor", ColType::Str, true),
    c("quality", ColType::Str, true),
    c("distance", ColType::U8, true),
    c("distance_upper_bound", ColType::Bool, true),
    c("params", ColType::Str, true),
    c("mtu", ColType::U32, true),
    c("link", ColType::Str, true),
    c("uptime_minutes", ColType::U32, true),
    c("uptime_modulo_days", ColType::U32, true),
    c("uptime_freq_hz", ColType::F64, true),
    c("host_change", ColType::Bool, false),
    c("ip_sharing", ColType::Bool, false),
    c("nat_reasons", ColType::Str, true),
];

/// Number of columns.
pub const NCOLS: usize = COLUMNS.len();

/// Version of the results column layout, stored in the Parquet metadata.
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

/// Metadata key holding [`RESULTS_SCHEMA_VERSION`].
pub const KEY_RESULTS_VERSION: &str = "synscope.results_schema_version";

/// One value of a flat row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Time(u64),
    Str(Cow<'a, str>),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

/// The address of the host an observation is about (its subject).
pub fn host_addr(ev: &Event) -> std::net::IpAddr {
    match ev.subject {
        Subject::Client => ev.endpoints.client_ip(),
        Subject::Server => ev.endpoints.server_ip(),
    }
}

/// p0f's `params=` words (`generic fuzzy random_ttl excess_dist tos:0xNN`), `None` when none.
fn params_text(p: &Params, matched: bool) -> Option<String> {
    let mut words: Vec<Cow<'static, str>> = Vec::new();
    if matched {
        if p.generic {
            words.push("generic".into());
        }
        if p.fuzzy {
            words.push("fuzzy".into());
        }
        if p.random_ttl {
            words.push("random_ttl".into());
        }
    }
    if p.excess_dist {
        words.push("excess_dist".into());
    }
    if p.tos != 0 {
        words.push(format!("tos:0x{:02x}", p.tos).into());
    }
    (!words.is_empty()).then(|| words.join(" "))
}

/// Host-change reason names, space separated, in p0f's order.
pub fn nat_reason_text(r: NatReasons) -> String {
    NatReasons::NAMES
        .iter()
        .filter(|(bit, _)| r.0 & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `label_type` text.
pub fn label_type_name(t: LabelType) -> &'static str {
    match t {
        LabelType::Os => "os",
        LabelType::App => "app",
    }
}

/// The flat row of an observation, in [`COLUMNS`] order.
pub fn cells<'a>(obs: &'a Observation, sources: &'a Sources) -> [Cell<'a>; NCOLS] {
    use Cell::*;
    let ev = &obs.event;
    let e = &ev.endpoints;
    let s = |v: &'a str| Str(Cow::Borrowed(v));
    let opt_s = |v: Option<&'a str>| v.map_or(Null, s);
    let mut row: [Cell<'a>; NCOLS] = std::array::from_fn(|_| Null);
    row[0] = Time(ev.ts_ns);
    row[1] = s(sources.name(obs.source));
    row[2] = s(ev.module());
    row[3] = s(ev.subject.short());
    row[4] = UInt(u64::from(e.ip_version));
    row[5] = Str(e.client_ip().to_string().into());
    row[6] = UInt(u64::from(e.client_port));
    row[7] = Str(e.server_ip().to_string().into());
    row[8] = UInt(u64::from(e.server_port));
    row[9] = Str(host_addr(ev).to_string().into());
    row[25] = Bool(false);
    row[26] = Bool(false);
    match &ev.kind {
        EventKind::Tcp(t) => {
            row[10] = opt_s(record::direction::name(t.direction));
            row[11] = Str(t.raw_sig.to_string().into());
            if let Some(l) = &t.label {
                row[12] = s(label_type_name(l.label_type));
                row[13] = opt_s(l.class.as_deref());
                row[14] = s(&l.name);
                row[15] = opt_s(l.flavor.as_deref());
            }
            row[16] = s(t.quality.name());
            row[17] = UInt(u64::from(t.distance));
            row[18] = Bool(t.distance_upper_bound);
            row[19] = params_text(&t.params, t.label.is_some()).map_or(Null, |p| Str(p.into()));
        }
        EventKind::Mtu { link, mtu } => {
            row[20] = UInt(u64::from(*mtu));
            row[21] = opt_s(link.as_deref());
        }
        EventKind::Uptime {
            minutes,
            modulo_days,
            raw_freq,
        } => {
            row[22] = UInt(u64::from(*minutes));
            row[23] = UInt(u64::from(*modulo_days));
            row[24] = if raw_freq.is_finite() {
                Float(*raw_freq)
            } else {
                Null
            };
        }
        EventKind::HostChange(n) => {
            row[25] = Bool(true);
            row[27] = Str(nat_reason_text(n.reasons).into());
        }
        EventKind::IpSharing(n) => {
            row[26] = Bool(true);
            row[27] = Str(nat_reason_text(n.reasons).into());
        }
    }
    row
}

/// Quality of a TCP observation (`None` for other modules).
pub fn quality_of(ev: &Event) -> Option<Quality> {
    match &ev.kind {
        EventKind::Tcp(t) => Some(t.quality),
        _ => None,
    }
}

/// RFC 3339 UTC time with nanoseconds, e.g. `2024-05-01T12:00:03.000250000Z`.
pub fn rfc3339(ts_ns: u64, out: &mut String) {
    let secs = i64::try_from(ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
    let start = out.len();
    // `write_time` gives `YYYY/MM/DD HH:MM:SS`; RFC 3339 wants `-` and `T`.
    let _ = crate::p0f::log::write_time(secs, out);
    // SAFETY of the slice: only ASCII was written from `start`.
    let fixed: String = out[start..]
        .chars()
        .map(|ch| match ch {
            '/' => '-',
            ' ' => 'T',
            other => other,
        })
        .collect();
    out.truncate(start);
    out.push_str(&fixed);
    let _ = write!(out, ".{:09}Z", ts_ns % 1_000_000_000);
}

/// Appends `s` as a JSON string literal.
pub fn json_str(s: &str, out: &mut String) {
    out.push('"');
    // Almost every value (addresses, signatures, labels) needs no escaping: copy it whole.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends one observation as a JSON object (no newline).
pub fn json_object(obs: &Observation, sources: &Sources, out: &mut String) {
    out.push('{');
    for (i, (col, cell)) in COLUMNS.iter().zip(cells(obs, sources)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(col.name, out);
        out.push(':');
        match cell {
            Cell::Null => out.push_str("null"),
            Cell::Time(ns) => {
                out.push('"');
                rfc3339(ns, out);
                out.push('"');
            }
            Cell::Str(v) => json_str(&v, out),
            Cell::UInt(v) => {
                let _ = write!(out, "{v}");
            }
            // Finite by construction (see `cells`); `{}` prints the shortest exact form.
            Cell::Float(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Bool(v) => out.push_str(if v { "true" } else { "false" }),
        }
    }
    out.push('}');
}

/// Appends `s` as a CSV field (RFC 4180 quoting when needed).
fn csv_field(s: &str, out: &mut String) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// The CSV header line (with newline).
pub fn csv_header() -> String {
    let mut s = COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>().join(",");
    s.push('\n');
    s
}

/// Appends one observation as a CSV line (with newline). Nulls are empty fields.
pub fn csv_line(obs: &Observation, sources: &Sources, out: &mut String) {
    for (i, cell) in cells(obs, sources).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Null => {}
            Cell::Time(ns) => rfc3339(ns, out),
            Cell::Str(v) => csv_field(&v, out),
            Cell::UInt(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Float(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Bool(v) => out.push_str(if v { "true" } else { "false" }),
        }
    }
    out.push('\n');
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| {
            let t = match c.ty {
                ColType::Time => formats::recording::timestamp_type(),
                ColType::Str => DataType::Utf8,
                ColType::U8 => DataType::UInt8,
                ColType::U16 => DataType::UInt16,
                ColType::U32 => DataType::UInt32,
                ColType::F64 => DataType::Float64,
                ColType::Bool => DataType::Boolean,
            };
            Field::new(c.name, t, c.nullable)
        })
        .collect();
    Arc::new(Schema::new(fields))
});

/// The Arrow schema of the results Parquet file.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Why the results file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        source: arrow::error::ArrowError,
    },
}

/// Rows per row group of the results file: bounded so the writer's memory is, and readers
/// can split the file.
pub const RESULTS_ROW_GROUP_ROWS: usize = 65536;

/// Rows turned into one Arrow batch at a time.
const BATCH_ROWS: usize = 8192;

/// Streaming writer of the results Parquet file (`--out results.parquet`).
///
/// Written to `NAME.tmp` and renamed into place by [`ResultsWriter::close`], so a failed run
/// leaves no file that looks complete. Metadata: `synscope.record_type = results` and
/// [`KEY_RESULTS_VERSION`].
pub struct ResultsWriter {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<ArrowWriter<File>>,
    pending: Vec<Observation>,
    sources: Sources,
    rows: u64,
}

impl std::fmt::Debug for ResultsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl ResultsWriter {
    /// Starts writing `path` (through a temporary sibling).
    pub fn create(path: &Path, sources: Sources) -> Result<ResultsWriter, ResultsError> {
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let file = File::create(&tmp).map_err(|source| ResultsError::Io {
            path: tmp.clone(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(
                |source| ResultsError::Parquet {
                    path: path.to_path_buf(),
                    source,
                },
            )?))
            .set_max_row_group_row_count(Some(RESULTS_ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    formats::meta::KEY_RECORD_TYPE.to_string(),
                    "results".to_string(),
                ),
                KeyValue::new(
                    KEY_RESULTS_VERSION.to_string(),
                    RESULTS_SCHEMA_VERSION.to_string(),
                ),
                KeyValue::new(
                    formats::meta::KEY_TOOL_VERSION.to_string(),
                    format!("analyze {}", env!("CARGO_PKG_VERSION")),
                ),
            ]))
            .build();
        let writer = ArrowWriter::try_new(file, schema(), Some(props)).map_err(|source| {
            ResultsError::Parquet {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(ResultsWriter {
            path: path.to_path_buf(),
            tmp,
            writer: Some(writer),
            pending: Vec::with_capacity(BATCH_ROWS),
            sources,
            rows: 0,
        })
    }

    /// Adds one observation.
    pub fn write(&mut self, obs: &Observation) -> Result<(), ResultsError> {
        self.pending.push(obs.clone());
        self.rows += 1;
        if self.pending.len() >= BATCH_ROWS {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), ResultsError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = encode(&self.pending, &self.sources).map_err(|source| ResultsError::Arrow {
            path: self.path.clone(),
            source,
        })?;
        self.pending.clear();
        if let Some(w) = &mut self.writer {
            w.write(&batch).map_err(|source| ResultsError::Parquet {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Writes the footer and renames the file into place. Returns the number of rows.
    pub fn close(mut self) -> Result<u64, ResultsError> {
        self.write_pending()?;
        if let Some(w) = self.writer.take() {
            w.close().map_err(|source| ResultsError::Parquet {
                path: self.path.clone(),
                source,
            })?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|source| ResultsError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.rows)
    }
}

impl Drop for ResultsWriter {
    fn drop(&mut self) {
        // Not closed (an error elsewhere): leave no half-written temporary behind.
        if self.writer.is_some() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Observations -> one Arrow batch with [`schema`].
pub fn encode(
    rows: &[Observation],
    sources: &Sources,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    enum B {
        Time(TimestampNanosecondBuilder),
        Str(StringBuilder),
        U8(UInt8Builder),
        U16(UInt16Builder),
        U32(UInt32Builder),
        F64(Float64Builder),
        Bool(BooleanBuilder),
    }
    let n = rows.len();
    let mut builders: Vec<B> = COLUMNS
        .iter()
        .map(|c| match c.ty {
            ColType::Time => {
                B::Time(TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"))
            }
            ColType::Str => B::Str(StringBuilder::with_capacity(n, n * 16)),
            ColType::U8 => B::U8(UInt8Builder::with_capacity(n)),
            ColType::U16 => B::U16(UInt16Builder::with_capacity(n)),
            ColType::U32 => B::U32(UInt32Builder::with_capacity(n)),
            ColType::F64 => B::F64(Float64Builder::with_capacity(n)),
            ColType::Bool => B::Bool(BooleanBuilder::with_capacity(n)),
        })
        .collect();
    for obs in rows {
        for (b, cell) in builders.iter_mut().zip(cells(obs, sources)) {
            match (b, cell) {
                (B::Time(b), Cell::Time(ns)) => b.append_option(i64::try_from(ns).ok()),
                (B::Str(b), Cell::Str(s)) => b.append_value(s),
                (B::U8(b), Cell::UInt(v)) => b.append_option(u8::try_from(v).ok()),
                (B::U16(b), Cell::UInt(v)) => b.append_option(u16::try_from(v).ok()),
                (B::U32(b), Cell::UInt(v)) => b.append_option(u32::try_from(v).ok()),
                (B::F64(b), Cell::Float(v)) => b.append_value(v),
                (B::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (B::Time(b), _) => b.append_null(),
                (B::Str(b), _) => b.append_null(),
                (B::U8(b), _) => b.append_null(),
                (B::U16(b), _) => b.append_null(),
                (B::U32(b), _) => b.append_null(),
                (B::F64(b), _) => b.append_null(),
                (B::Bool(b), _) => b.append_null(),
            }
        }
    }
    let arrays: Vec<ArrayRef> = builders
        .into_iter()
        .map(|b| -> ArrayRef {
            match b {
                B::Time(mut b) => Arc::new(b.finish()),
                B::Str(mut b) => Arc::new(b.finish()),
                B::U8(mut b) => Arc::new(b.finish()),
                B::U16(mut b) => Arc::new(b.finish()),
                B::U32(mut b) => Arc::new(b.finish()),
                B::F64(mut b) => Arc::new(b.finish()),
                B::Bool(mut b) => Arc::new(b.finish()),
            }
        })
        .collect();
    RecordBatch::try_new(schema(), arrays)
}

/// Writes NDJSON lines or CSV rows to a stream, buffering one line at a time.
pub fn write_json_line(
    obs: &Observation,
    sources: &Sources,
    buf: &mut String,
    w: &mut impl Write,
) -> io::Result<()> {
    buf.clear();
    json_object(obs, sources, buf);
    buf.push('\n');
    w.write_all(buf.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p0f::event::{Endpoints, NatObservation};
    use crate::p0f::{Database, Engine};

    fn endpoints() -> Endpoints {
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(&[198, 51, 100, 7]);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[198, 51, 100, 80]);
        Endpoints {
            ip_version: 4,
            client_addr: c,
            client_port: 40000,
            server_addr: s,
            server_port: 443,
        }
    }

    /// A real TCP observation from the engine: the SYN of a fixture capture.
    fn real_syn() -> Observation {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/pcap/tcpdump/tests__tcp-handshake-nano.pcap");
        let mut recs = Vec::new();
        formats::pcap::open(&path).unwrap().run(&mut recs).unwrap();
        let mut engine = Engine::new(Arc::new(Database::embedded().unwrap()));
        let mut events = Vec::new();
        for r in &recs {
            engine.process(r, &mut events);
        }
        let ev = events
            .into_iter()
            .find(|e| matches!(e.kind, EventKind::Tcp(_)))
            .unwrap();
        Observation {
            source: 0,
            event: ev,
        }
    }

    #[test]
    fn time_is_rfc3339() {
        let mut s = String::new();
        // 2022-10-28 09:46:19 UTC (the p0f log test's instant) plus 250 µs.
        rfc3339(1_666_950_379_000_250_000, &mut s);
        assert_eq!(s, "2022-10-28T09:46:19.000250000Z");
    }

    #[test]
    fn json_escapes_and_csv_quotes() {
        let mut s = String::new();
        json_str("a\"b\\c\n\u{1}", &mut s);
        assert_eq!(s, r#""a\"b\\c\n\u0001""#);
        let mut s = String::new();
        csv_field("x,\"y\"", &mut s);
        assert_eq!(s, "\"x,\"\"y\"\"\"");
        let mut s = String::new();
        csv_field("plain", &mut s);
        assert_eq!(s, "plain");
    }

    #[test]
    fn tcp_row_agrees_with_the_p0f_line() {
        let obs = real_syn();
        let sources = Sources(vec![Arc::from("x.pcap")]);
        let line = crate::p0f::log::p0f_line(&obs.event);
        let row = cells(&obs, &sources);
        let get = |name: &str| {
            let i = COLUMNS.iter().position(|c| c.name == name).unwrap();
            row[i].clone()
        };
        let raw = match get("raw_sig") {
            Cell::Str(s) => s.into_owned(),
            other => panic!("{other:?}"),
        };
        assert!(line.ends_with(&format!("|raw_sig={raw}")), "{line}");
        assert_eq!(get("module"), Cell::Str("syn".into()));
        assert_eq!(get("source_file"), Cell::Str("x.pcap".into()));
        if let Cell::Str(name) = get("os_name") {
            assert!(line.contains(&format!("|os={name}")), "{line}");
        } else {
            assert!(line.contains("|os=???"), "{line}");
        }
        let dist = match get("distance") {
            Cell::UInt(d) => d,
            other => panic!("{other:?}"),
        };
        assert!(line.contains(&format!("|dist={dist}|")), "{line}");
        // The JSON object parses back with the same values.
        let mut js = String::new();
        json_object(&obs, &sources, &mut js);
        let v: serde_json::Value = serde_json::from_str(&js).unwrap();
        assert_eq!(v["raw_sig"], serde_json::Value::String(raw));
        assert_eq!(v["distance"], serde_json::json!(dist));
        assert_eq!(v.as_object().unwrap().len(), NCOLS);
    }

    #[test]
    fn nat_and_mtu_rows() {
        let ev = Event {
            ts_ns: 5,
            endpoints: endpoints(),
            subject: Subject::Server,
            kind: EventKind::HostChange(NatObservation {
                reasons: NatReasons(NatReasons::TTL | NatReasons::OS_SIG),
                raw_hits: [0; 4],
            }),
        };
        let sources = Sources::default();
        let obs = Observation {
            source: 3,
            event: ev,
        };
        let row = cells(&obs, &sources);
        assert_eq!(
            row[9],
            Cell::Str("198.51.100.80".into()),
            "host is the server"
        );
        assert_eq!(row[25], Cell::Bool(true));
        assert_eq!(row[27], Cell::Str("os_diff ttl".into()));
        let mut line = String::new();
        csv_line(&obs, &sources, &mut line);
        assert_eq!(line.matches(',').count(), NCOLS - 1);

        let mtu = Observation {
            source: 0,
            event: Event {
                ts_ns: 0,
                endpoints: endpoints(),
                subject: Subject::Client,
                kind: EventKind::Mtu {
                    link: Some(Arc::from("Ethernet or modem")),
                    mtu: 1500,
                },
            },
        };
        let row = cells(&mtu, &sources);
        assert_eq!(row[20], Cell::UInt(1500));
        assert_eq!(row[16], Cell::Null, "no quality for mtu rows");
    }

    #[test]
    fn parquet_round_trip() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("res.parquet");
        let obs = real_syn();
        let mut w = ResultsWriter::create(&path, Sources(vec![Arc::from("a.pcap")])).unwrap();
        for _ in 0..10 {
            w.write(&obs).unwrap();
        }
        assert!(!path.exists(), "only renamed into place on close");
        assert_eq!(w.close().unwrap(), 10);
        let f = File::open(&path).unwrap();
        let b = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let kv = b
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .clone();
        assert!(kv.iter().any(|k| k.key == KEY_RESULTS_VERSION
            && k.value.as_deref() == Some(&RESULTS_SCHEMA_VERSION.to_string())));
        let batches: Vec<_> = b.build().unwrap().collect::<Result<_, _>>().unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 10);
        assert_eq!(batches[0].schema().fields().len(), NCOLS);
    }
}
