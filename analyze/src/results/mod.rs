//! The results model: one flat row per observation, and its writers (JSON/NDJSON/CSV text in
//! [`text`], Parquet in [`parquet`]).
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
//!
//! A row is built for every observation of a run (hundreds of thousands for a large
//! capture), so [`cells`] allocates nothing: addresses, signatures, `params` and NAT reasons
//! stay typed ([`Cell::Ip`], [`Cell::Sig`], ...) and each writer renders them straight into
//! its own buffer.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use p0f::HttpParams;
use p0f::event::{HttpKind, MatchedLabel, NatReasons, TcpKind};
use p0f::sig::RawSig;
use p0f::{Database, Event, EventKind, LabelType, Params, Quality, Subject};

pub mod parquet;
pub mod text;

pub use self::parquet::{RESULTS_ROW_GROUP_ROWS, ResultsError, ResultsWriter, schema};
pub use self::text::{TextWriter, csv_header};

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

/// Declares [`Col`], a name for each column, and [`COLUMNS`], from one list, so a column's
/// name and its place in a row cannot drift apart.
macro_rules! columns {
    ($($col:ident = ($name:literal, $ty:ident, $nullable:literal),)*) => {
        /// A column of the results, by name: [`cells`] fills a row as `row[Col::Mtu] = ...`
        /// and a column's place is `Col::Mtu as usize`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Col {
            $($col,)*
        }

        /// Every column, in output order (the order of [`Col`]). Bump
        /// [`RESULTS_SCHEMA_VERSION`] when this changes.
        pub const COLUMNS: [Column; [$($name),*].len()] = [
            $(Column { name: $name, ty: ColType::$ty, nullable: $nullable },)*
        ];
    };
}

// name = (column, type, nullable in Parquet and possibly empty/null in CSV/JSON)
columns! {
    Time = ("time", Time, false),
    SourceFile = ("source_file", Str, false),
    Module = ("module", Str, false),
    Subject = ("subject", Str, false),
    IpVersion = ("ip_version", U8, false),
    ClientAddr = ("client_addr", Str, false),
    ClientPort = ("client_port", U16, false),
    ServerAddr = ("server_addr", Str, false),
    ServerPort = ("server_port", U16, false),
    HostAddr = ("host_addr", Str, false),
    Direction = ("direction", Str, true),
    RawSig = ("raw_sig", Str, true),
    LabelType = ("label_type", Str, true),
    OsClass = ("os_class", Str, true),
    OsName = ("os_name", Str, true),
    OsFlavor = ("os_flavor", Str, true),
    Quality = ("quality", Str, true),
    Distance = ("distance", U8, true),
    DistanceUpperBound = ("distance_upper_bound", Bool, true),
    Params = ("params", Str, true),
    Mtu = ("mtu", U32, true),
    Link = ("link", Str, true),
    UptimeMinutes = ("uptime_minutes", U32, true),
    UptimeModuloDays = ("uptime_modulo_days", U32, true),
    UptimeFreqHz = ("uptime_freq_hz", F64, true),
    HostChange = ("host_change", Bool, false),
    IpSharing = ("ip_sharing", Bool, false),
    NatReasons = ("nat_reasons", Str, true),
    Encap = ("encap", Str, false),
    EncapId = ("encap_id", U32, true),
    UaOs = ("ua_os", Str, true),
    UaOsClass = ("ua_os_class", Str, true),
}

impl<'a> std::ops::Index<Col> for [Cell<'a>; NCOLS] {
    type Output = Cell<'a>;
    fn index(&self, col: Col) -> &Cell<'a> {
        &self[col as usize]
    }
}

impl<'a> std::ops::IndexMut<Col> for [Cell<'a>; NCOLS] {
    fn index_mut(&mut self, col: Col) -> &mut Cell<'a> {
        &mut self[col as usize]
    }
}

/// Number of columns.
pub const NCOLS: usize = COLUMNS.len();

/// Version of the results column layout, stored in the Parquet metadata.
///
/// History: 1, the first layout; 2 added `encap` and `encap_id`; 3 added `ua_os` and
/// `ua_os_class` (HTTP requests: the OS the User-Agent names, to compare with the host's SYN
/// rows).
pub const RESULTS_SCHEMA_VERSION: u32 = 3;

/// Metadata key holding [`RESULTS_SCHEMA_VERSION`] (defined in `formats`, where the input
/// side checks for it).
pub use formats::meta::KEY_RESULTS_VERSION;

/// One value of a flat row.
///
/// Text-like values that would need formatting (addresses, signatures, `params`, NAT
/// reasons) stay typed; [`Cell::text`] renders them, and the text writers render them
/// without an intermediate `String`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    Null,
    Time(u64),
    Str(&'a str),
    /// A string from the short fixed list of its column's values (`module`, `subject`,
    /// `direction`, `label_type`, `quality`), with its place in that list (1 to
    /// [`WORD_CODES`]): the JSON writer keeps such cells in a row shape's template, as it
    /// does nulls and booleans, instead of rendering them row by row.
    Word(u8, &'static str),
    /// An address: IP version (4 or 6) and 16 bytes in network order (IPv4 in bytes 0..4).
    Ip(u8, &'a [u8; 16]),
    /// A raw signature in p0f.fp syntax.
    Sig(&'a RawSig),
    /// p0f's `params=` words for a TCP observation (matched or not); never empty (a row
    /// without words gets [`Cell::Null`]).
    Params(Params, bool),
    /// Host-change / IP-sharing reason names.
    Nat(NatReasons),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

impl Cell<'_> {
    /// Appends the text form of a string-typed cell ([`Cell::Str`], [`Cell::Word`],
    /// [`Cell::Ip`], [`Cell::Sig`], [`Cell::Params`], [`Cell::Nat`]); other cells append
    /// nothing.
    pub fn text(&self, out: &mut String) {
        match *self {
            Cell::Str(s) | Cell::Word(_, s) => out.push_str(s),
            Cell::Ip(4, a) => {
                let _ = write!(out, "{}", std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            }
            Cell::Ip(_, a) => {
                let _ = write!(out, "{}", std::net::Ipv6Addr::from(*a));
            }
            Cell::Sig(sig) => {
                let _ = write!(out, "{sig}");
            }
            Cell::Params(p, matched) => params_text(&p, matched, out),
            Cell::Nat(r) => nat_reason_text(r, out),
            Cell::Null | Cell::Time(_) | Cell::UInt(_) | Cell::Float(_) | Cell::Bool(_) => {}
        }
    }
}

/// The address of the host an observation is about (its subject).
pub fn host_addr(ev: &Event) -> std::net::IpAddr {
    match ev.subject {
        Subject::Client => ev.endpoints.client_ip(),
        Subject::Server => ev.endpoints.server_ip(),
    }
}

/// Whether p0f's `params=` has any word for these flags.
fn has_params(p: &Params, matched: bool) -> bool {
    (matched && (p.generic || p.fuzzy || p.random_ttl)) || p.excess_dist || p.tos != 0
}

/// Appends p0f's `params=` words (`generic fuzzy random_ttl excess_dist tos:0xNN`), space
/// separated; nothing when there are none.
fn params_text(p: &Params, matched: bool, out: &mut String) {
    let start = out.len();
    let word = |w: &str, out: &mut String| {
        if out.len() > start {
            out.push(' ');
        }
        out.push_str(w);
    };
    if matched {
        if p.generic {
            word("generic", out);
        }
        if p.fuzzy {
            word("fuzzy", out);
        }
        if p.random_ttl {
            word("random_ttl", out);
        }
    }
    if p.excess_dist {
        word("excess_dist", out);
    }
    if p.tos != 0 {
        word("", out);
        let _ = write!(out, "tos:0x{:02x}", p.tos);
    }
}

/// Appends the host-change reason names, space separated, in p0f's order.
fn nat_reason_text(r: NatReasons, out: &mut String) {
    let mut first = true;
    for (_, name) in NatReasons::NAMES.iter().filter(|(bit, _)| r.0 & bit != 0) {
        if !first {
            out.push(' ');
        }
        out.push_str(name);
        first = false;
    }
}

/// `label_type` text.
pub fn label_type_name(t: LabelType) -> &'static str {
    match t {
        LabelType::Os => "os",
        LabelType::App => "app",
    }
}

/// Largest [`Cell::Word`] code.
pub const WORD_CODES: u8 = 10;

/// `module` as a word: [`TcpKind`]s first, then the other modules.
fn module_word(ev: &Event) -> Cell<'static> {
    let code = match &ev.kind {
        EventKind::Tcp(t) => match t.kind {
            TcpKind::Syn => 1,
            TcpKind::SynAck => 2,
            TcpKind::SendsynProbe => 3,
            TcpKind::SendsynResponse => 4,
        },
        EventKind::Mtu { .. } => 5,
        EventKind::Uptime { .. } => 6,
        EventKind::HostChange(_) => 7,
        EventKind::IpSharing(_) => 8,
        EventKind::Http(h) => match h.kind {
            HttpKind::Request => 9,
            HttpKind::Response => 10,
        },
    };
    Cell::Word(code, ev.module())
}

/// `direction` as a word: the codes 0..=2 of [`record::direction`] as 1..=3.
fn direction_cell(direction: u8) -> Cell<'static> {
    record::direction::name(direction).map_or(Cell::Null, |d| Cell::Word(direction + 1, d))
}

/// The label columns of a matched SYN or HTTP signature.
fn label_cells<'a>(row: &mut [Cell<'a>; NCOLS], l: &MatchedLabel, db: &'a Database) {
    let code = match l.label_type {
        LabelType::Os => 1,
        LabelType::App => 2,
    };
    row[Col::LabelType] = Cell::Word(code, label_type_name(l.label_type));
    let names = db.label_names(l.id);
    row[Col::OsClass] = names.class.map_or(Cell::Null, Cell::Str);
    row[Col::OsName] = Cell::Str(names.name);
    row[Col::OsFlavor] = names.flavor.map_or(Cell::Null, Cell::Str);
}

/// The flat row of an observation, in [`COLUMNS`] order; `db` is the database of the engine
/// that made it (its label and link strings).
pub fn cells<'a>(
    obs: &'a Observation,
    sources: &'a Sources,
    db: &'a Database,
) -> [Cell<'a>; NCOLS] {
    use Cell::*;
    let ev = &obs.event;
    let e = &ev.endpoints;
    let s = |v: &'a str| Str(v);
    let opt_s = |v: Option<&'a str>| v.map_or(Null, s);
    let (host_ip, host) = match ev.subject {
        Subject::Client => (e.ip_version, &e.client_addr),
        Subject::Server => (e.ip_version, &e.server_addr),
    };
    let mut row: [Cell<'a>; NCOLS] = std::array::from_fn(|_| Null);
    row[Col::Time] = Time(ev.ts_ns);
    row[Col::SourceFile] = s(sources.name(obs.source));
    row[Col::Module] = module_word(ev);
    row[Col::Subject] = Word(
        match ev.subject {
            Subject::Client => 1,
            Subject::Server => 2,
        },
        ev.subject.short(),
    );
    row[Col::IpVersion] = UInt(u64::from(e.ip_version));
    row[Col::ClientAddr] = Ip(e.ip_version, &e.client_addr);
    row[Col::ClientPort] = UInt(u64::from(e.client_port));
    row[Col::ServerAddr] = Ip(e.ip_version, &e.server_addr);
    row[Col::ServerPort] = UInt(u64::from(e.server_port));
    row[Col::HostAddr] = Ip(host_ip, host);
    row[Col::HostChange] = Bool(false);
    row[Col::IpSharing] = Bool(false);
    row[Col::Encap] = s(record::encap::name(e.encap.kind).unwrap_or("invalid"));
    row[Col::EncapId] = e.encap.id().map_or(Null, |id| UInt(u64::from(id)));
    match &ev.kind {
        EventKind::Tcp(t) => {
            row[Col::Direction] = direction_cell(t.direction);
            row[Col::RawSig] = Sig(&t.raw_sig);
            if let Some(l) = &t.label {
                label_cells(&mut row, l, db);
            }
            row[Col::Quality] = Word(
                match t.quality {
                    Quality::Exact => 1,
                    Quality::Generic => 2,
                    Quality::Fuzzy => 3,
                    Quality::Unknown => 4,
                },
                t.quality.name(),
            );
            row[Col::Distance] = UInt(u64::from(t.distance));
            row[Col::DistanceUpperBound] = Bool(t.distance_upper_bound);
            let matched = t.label.is_some();
            if has_params(&t.params, matched) {
                row[Col::Params] = Params(t.params, matched);
            }
        }
        EventKind::Mtu { link, mtu } => {
            row[Col::Mtu] = UInt(u64::from(*mtu));
            row[Col::Link] = opt_s(link.map(|l| db.link(l)));
        }
        EventKind::Uptime {
            minutes,
            modulo_days,
            raw_freq,
        } => {
            row[Col::UptimeMinutes] = UInt(u64::from(*minutes));
            row[Col::UptimeModuloDays] = UInt(u64::from(*modulo_days));
            row[Col::UptimeFreqHz] = if raw_freq.is_finite() {
                Float(*raw_freq)
            } else {
                Null
            };
        }
        EventKind::HostChange(n) => {
            row[Col::HostChange] = Bool(true);
            row[Col::NatReasons] = Nat(n.reasons);
        }
        EventKind::IpSharing(n) => {
            row[Col::IpSharing] = Bool(true);
            row[Col::NatReasons] = Nat(n.reasons);
        }
        EventKind::Http(h) => {
            row[Col::Direction] = direction_cell(h.direction);
            row[Col::RawSig] = Str(&h.raw_sig);
            if let Some(l) = &h.label {
                label_cells(&mut row, l, db);
            }
            row[Col::Params] = opt_s(http_params_text(h.params));
            if let Some(name) = h.ua_os.and_then(|e| db.ua_os_name(e)) {
                row[Col::UaOs] = s(name);
                row[Col::UaOsClass] = opt_s(db.class_of_name(name));
            }
        }
    }
    row
}

/// p0f's `params=` words of an HTTP observation (`dishonest`, `anonymous`, `generic`, in
/// p0f's order), `None` for none. Three flags make eight texts, so a table of static
/// strings serves every row without an allocation.
pub fn http_params_text(p: HttpParams) -> Option<&'static str> {
    const TEXTS: [Option<&str>; 8] = [
        None,
        Some("dishonest"),
        Some("anonymous"),
        Some("dishonest anonymous"),
        Some("generic"),
        Some("dishonest generic"),
        Some("anonymous generic"),
        Some("dishonest anonymous generic"),
    ];
    let i = usize::from(p.dishonest) | usize::from(p.anonymous) << 1 | usize::from(p.generic) << 2;
    TEXTS[i]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p0f::event::{Endpoints, NatObservation};
    use p0f::{Database, Engine};
    use std::path::Path;
    use std::sync::OnceLock;

    /// The embedded database, which [`real_syn`]'s engine uses too.
    pub(crate) fn db() -> &'static Database {
        static DB: OnceLock<Database> = OnceLock::new();
        DB.get_or_init(|| Database::embedded().unwrap())
    }

    pub(crate) fn endpoints() -> Endpoints {
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
            encap: record::Encap::NONE,
        }
    }

    /// A real TCP observation from the engine: the SYN of a fixture capture.
    pub(crate) fn real_syn() -> Observation {
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

    /// An HTTP observation's row says what its p0f line says: the module, the params words
    /// in p0f's order (every combination), the raw signature, an unknown application.
    #[test]
    fn http_row_agrees_with_the_p0f_line() {
        let sources = Sources(vec![Arc::from("x.pcap")]);
        for bits in 0u8..8 {
            for kind in [p0f::HttpKind::Request, p0f::HttpKind::Response] {
                let obs = Observation {
                    source: 0,
                    event: Event {
                        ts_ns: 1_700_000_000_000_000_000,
                        endpoints: endpoints(),
                        subject: match kind {
                            p0f::HttpKind::Request => Subject::Client,
                            p0f::HttpKind::Response => Subject::Server,
                        },
                        kind: EventKind::Http(p0f::HttpObservation {
                            kind,
                            label: None,
                            lang: p0f::Lang::None,
                            params: HttpParams {
                                dishonest: bits & 1 != 0,
                                anonymous: bits & 2 != 0,
                                generic: bits & 4 != 0,
                            },
                            raw_sig: "1:Host,User-Agent:Accept:curl/8.5.0".into(),
                            direction: record::direction::UNKNOWN,
                            ua_os: None,
                        }),
                    },
                };
                let line = p0f::log::p0f_line(db(), &obs.event);
                let row = cells(&obs, &sources, db());
                let get = |name: &str| row[COLUMNS.iter().position(|c| c.name == name).unwrap()];
                let text = |name: &str| {
                    let mut t = String::new();
                    get(name).text(&mut t);
                    t
                };
                assert!(line.contains(&format!("mod={}|", text("module"))), "{line}");
                let params = match get("params") {
                    Cell::Null => "none".to_string(),
                    _ => text("params"),
                };
                assert!(line.contains(&format!("|params={params}|")), "{line}");
                assert!(
                    line.ends_with(&format!("|raw_sig={}", text("raw_sig"))),
                    "{line}"
                );
                assert!(line.contains("|app=???|"), "{line}");
                assert_eq!(get("os_name"), Cell::Null);
            }
        }
    }

    #[test]
    fn tcp_row_agrees_with_the_p0f_line() {
        let obs = real_syn();
        let sources = Sources(vec![Arc::from("x.pcap")]);
        let line = p0f::log::p0f_line(db(), &obs.event);
        let row = cells(&obs, &sources, db());
        let get = |name: &str| {
            let i = COLUMNS.iter().position(|c| c.name == name).unwrap();
            row[i]
        };
        let mut raw = String::new();
        get("raw_sig").text(&mut raw);
        assert!(line.ends_with(&format!("|raw_sig={raw}")), "{line}");
        assert_eq!(get("module"), Cell::Word(1, "syn"));
        assert_eq!(get("source_file"), Cell::Str("x.pcap"));
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
        let mut w = TextWriter::new();
        w.json_object(&obs, &sources, db());
        let js = w.take_buffer();
        let v: serde_json::Value = serde_json::from_slice(&js).unwrap();
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
        let row = cells(&obs, &sources, db());
        let text = |c: Cell<'_>| {
            let mut s = String::new();
            c.text(&mut s);
            s
        };
        assert_eq!(text(row[9]), "198.51.100.80", "host is the server");
        assert_eq!(row[25], Cell::Bool(true));
        assert_eq!(text(row[27]), "os_diff ttl");
        let mut w = TextWriter::new();
        w.csv_line(&obs, &sources, db());
        let line = w.take_buffer();
        assert_eq!(line.iter().filter(|&&b| b == b',').count(), NCOLS - 1);

        let mtu = Observation {
            source: 0,
            event: Event {
                ts_ns: 0,
                endpoints: endpoints(),
                subject: Subject::Client,
                kind: EventKind::Mtu {
                    link: db().mtu_link(1500),
                    mtu: 1500,
                },
            },
        };
        let row = cells(&mtu, &sources, db());
        assert_eq!(row[20], Cell::UInt(1500));
        assert_eq!(row[21], Cell::Str("Ethernet or modem"));
        assert_eq!(row[16], Cell::Null, "no quality for mtu rows");
    }
}
