//! The p0f.fp fingerprint database: parser and in-memory form.
//!
//! The syntax and every acceptance rule follow p0f 3.09b's `readfp.c` and
//! `tcp_register_sig()`, so a file p0f accepts loads here with the same meaning, and a file
//! p0f rejects is rejected here too — as a typed [`DbError`] naming file, line and reason,
//! never a panic. That includes p0f's pointer-walking quirks (for instance the `ittl-` form
//! skips one extra character) because those decide what a line means.
//!
//! Sections: `classes = ...` (before any section), `[mtu]`, `[tcp:request]`,
//! `[tcp:response]`, `[http:request]`, `[http:response]`. HTTP signatures are parsed and kept
//! (for reports and for completeness) but the engine does not match HTTP.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use rustc_hash::FxHashMap;

use super::matcher::{Probe, find_match};
use super::sig::{Layout, MAX_TCP_OPT, WinMulti, detect_win_multi, opt, quirk};

/// The Debian p0f 3.09b database (LGPL-2.1, unmodified).
pub const P0F_FP: &str = include_str!("../data/p0f.fp");
/// synscope's additional signatures, parsed after [`P0F_FP`].
pub const SYNSCOPE_FP: &str = include_str!("../data/synscope.fp");

/// Characters p0f allows in OS / application names besides letters and digits.
const NAME_CHARS: &[u8] = b" ./-_!?()";

/// Why a p0f.fp line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbErrorKind {
    #[error("malformed section identifier")]
    MalformedSection,
    #[error("unrecognized fingerprinting module '{0}'")]
    UnknownModule(String),
    #[error("unrecognized traffic direction")]
    UnknownDirection,
    #[error("unexpected statement")]
    UnexpectedStatement,
    #[error("unrecognized field '{0}'")]
    UnknownField(String),
    #[error("misplaced '{0}'")]
    Misplaced(&'static str),
    #[error("malformed class entry")]
    MalformedClass,
    #[error("unknown class '{0}'")]
    UnknownClass(String),
    #[error("malformed name")]
    MalformedName,
    #[error("malformed sys entry")]
    MalformedSys,
    #[error("empty MTU label")]
    EmptyMtuLabel,
    #[error("malformed MTU value")]
    MalformedMtu,
    #[error("malformed signature: {0}")]
    MalformedSig(&'static str),
    #[error("'{0}' is not valid for IPv{1}")]
    QuirkVersion(&'static str, u8),
    #[error("signature is already covered by line {0}")]
    AlreadyCovered(u32),
    #[error("malformed HTTP signature: {0}")]
    MalformedHttp(&'static str),
}

/// Failure to load a database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    /// A line was rejected.
    #[error("{file}:{line}: {kind}")]
    Parse {
        file: String,
        line: u32,
        kind: DbErrorKind,
    },
}

/// How a signature's window size is expressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinType {
    /// A literal value.
    Normal,
    /// `*`.
    Any,
    /// `%N`: a multiple of N.
    Mod,
    /// `mss*N`.
    Mss,
    /// `mtu*N`.
    Mtu,
}

/// An entry of a userland label's `sys =` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysRef {
    /// `@class`: index into [`Database::classes`].
    Class(u32),
    /// An OS name: index into [`Database::names`].
    Name(u32),
}

/// Which module a label belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    Tcp,
    Http,
}

/// A `label =` line of a TCP or HTTP section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// `g:` (generic) rather than `s:`.
    pub generic: bool,
    /// Class index, or `None` for userland (`!`) labels.
    pub class: Option<u32>,
    /// Name index into [`Database::names`].
    pub name_id: u32,
    /// Flavor (everything after the name's colon), if non-empty.
    pub flavor: Option<&'static str>,
    /// p0f's running label number (1-based, counts TCP and HTTP labels).
    pub label_id: u32,
    /// `sys =` entries (userland labels).
    pub sys: Vec<SysRef>,
    /// Module of the section.
    pub module: Module,
    /// Line of the label.
    pub line: u32,
}

impl Label {
    /// A userland (application, `!` class) label: reported as `app=`, never fuzzy-matched.
    pub fn is_userland(&self) -> bool {
        self.class.is_none()
    }
}

/// A TCP signature (`sig =` in `[tcp:*]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSig {
    /// Line number in its file.
    pub line: u32,
    /// `[tcp:request]` (SYN) rather than `[tcp:response]` (SYN+ACK).
    pub to_srv: bool,
    /// Index into [`Database::labels`].
    pub label: u32,
    /// 4, 6, or -1 for `*`.
    pub ip_ver: i8,
    /// Initial TTL (`N` or `N+D` summed).
    pub ttl: i32,
    /// `N-`: TTL is randomised, any lower value matches exactly.
    pub bad_ttl: bool,
    /// IPv4 options length.
    pub ip_opt_len: i32,
    /// MSS, -1 for `*`.
    pub mss: i32,
    /// Window form.
    pub win_type: WinType,
    /// Window value / divisor / multiplier.
    pub win: i32,
    /// Window scale, -1 for `*`.
    pub wscale: i32,
    /// Option layout.
    pub layout: Layout,
    /// `eol+N` padding.
    pub eol_pad: i32,
    /// Quirk bits.
    pub quirks: u32,
    /// Payload class: -1 (`*`), 0, 1 (`+`).
    pub pay_class: i8,
}

/// An `[mtu]` signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtuSig {
    /// MTU value.
    pub mtu: u16,
    /// Link label.
    pub link: &'static str,
    /// Line number.
    pub line: u32,
}

/// One header of an HTTP signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpHeader {
    /// `?name`: may be absent.
    pub optional: bool,
    /// Header name.
    pub name: String,
    /// `name=[value]`: substring the value must contain.
    pub value: Option<String>,
}

/// An HTTP signature (parsed and kept; not matched by the engine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSig {
    /// Line number.
    pub line: u32,
    /// `[http:request]` rather than `[http:response]`.
    pub to_srv: bool,
    /// Index into [`Database::labels`].
    pub label: u32,
    /// HTTP minor version, `None` for `*`.
    pub version: Option<u8>,
    /// Ordered headers.
    pub headers: Vec<HttpHeader>,
    /// Headers that must be absent.
    pub absent: Vec<String>,
    /// Software substring.
    pub software: String,
}

/// An `ua_os` mapping entry: OS name, and the User-Agent substring naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UaOs {
    pub name: String,
    pub ua: Option<String>,
}

/// A loaded fingerprint database.
#[derive(Clone, Debug, Default)]
pub struct Database {
    classes: Vec<&'static str>,
    names: Vec<&'static str>,
    labels: Vec<Label>,
    tcp: Vec<TcpSig>,
    /// (to_srv, layout) -> signature indexes in file order.
    index: FxHashMap<(bool, Layout), Vec<u32>>,
    mtu: Vec<MtuSig>,
    /// MTU -> index of its first signature (p0f takes the first in file order).
    mtu_index: FxHashMap<u16, u32>,
    http: Vec<HttpSig>,
    ua_os: Vec<UaOs>,
}

impl Database {
    /// The default database: Debian's p0f.fp followed by synscope.fp.
    pub fn embedded() -> Result<Database, DbError> {
        let mut p = Parser::new();
        p.parse("p0f.fp (embedded)", P0F_FP)?;
        p.parse("synscope.fp (embedded)", SYNSCOPE_FP)?;
        Ok(p.db)
    }

    /// Loads one file, as `p0f -f FILE` would (it replaces the default database).
    pub fn from_file(path: &Path) -> Result<Database, DbError> {
        let text = std::fs::read(path).map_err(|cause| DbError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        let text = String::from_utf8_lossy(&text);
        Self::from_str_named(&path.display().to_string(), &text)
    }

    /// Parses database text; `name` is used in error messages.
    pub fn from_str_named(name: &str, text: &str) -> Result<Database, DbError> {
        let mut p = Parser::new();
        p.parse(name, text)?;
        Ok(p.db)
    }

    /// OS classes (`classes =`), in file order.
    pub fn classes(&self) -> &[&'static str] {
        &self.classes
    }

    /// Interned OS / application names (first spelling wins, compared case-insensitively).
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Labels in file order.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// TCP signatures in file order.
    pub fn tcp_sigs(&self) -> &[TcpSig] {
        &self.tcp
    }

    /// MTU signatures in file order.
    pub fn mtu_sigs(&self) -> &[MtuSig] {
        &self.mtu
    }

    /// HTTP signatures in file order.
    pub fn http_sigs(&self) -> &[HttpSig] {
        &self.http
    }

    /// `ua_os` entries.
    pub fn ua_os(&self) -> &[UaOs] {
        &self.ua_os
    }

    /// The label of a signature.
    pub fn label_of(&self, s: &TcpSig) -> Option<&Label> {
        self.labels.get(s.label as usize)
    }

    /// Name of a label.
    pub fn name_of(&self, l: &Label) -> &str {
        self.names.get(l.name_id as usize).map_or("", |n| n)
    }

    /// Class name of a label (`None` for userland).
    pub fn class_of(&self, l: &Label) -> Option<&str> {
        l.class
            .and_then(|c| self.classes.get(c as usize))
            .map(|c| &**c)
    }

    /// Signatures that could match a packet with this layout, in file order.
    pub fn candidates(&self, to_srv: bool, layout: &Layout) -> &[u32] {
        self.index
            .get(&(to_srv, *layout))
            .map_or(&[], |v| v.as_slice())
    }

    /// Link label for an MTU, as p0f's `fingerprint_mtu()` finds it.
    pub fn mtu_link(&self, mtu: u16) -> Option<&'static str> {
        self.mtu_index
            .get(&mtu)
            .and_then(|i| self.mtu.get(*i as usize))
            .map(|m| m.link)
    }
}

/// Parser state: what p0f's `CF_NEED_*` says may come next.
#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum State {
    NeedSect,
    NeedLabel,
    NeedSys,
    NeedSig,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ModType {
    None,
    Mtu,
    Tcp,
    Http,
}

/// The database's strings, kept for the life of the process, each distinct one once.
///
/// Observations carry their label's and link's strings. As `&'static str` they are copied
/// with the observation; as `Arc<str>`s their reference counts were written by the engine's
/// thread for every observation while the rendering thread read the strings beside them,
/// which cost more than the copies. However many databases a process loads, it keeps each
/// distinct string once (a few KB for p0f.fp).
fn intern(s: &str) -> &'static str {
    static STRINGS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut strings = STRINGS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&kept) = strings.get(s) {
        return kept;
    }
    let kept: &'static str = Box::leak(Box::from(s));
    strings.insert(kept);
    kept
}

/// Parser state carried across lines (and across files for [`Database::embedded`]).
struct Parser {
    db: Database,
    state: State,
    mod_type: ModType,
    to_srv: bool,
    generic: bool,
    class: Option<u32>,
    name_id: u32,
    flavor: Option<&'static str>,
    mtu_label: Option<&'static str>,
    sys: Vec<SysRef>,
    label_id: u32,
    label_line: u32,
    /// Index of the current label in `db.labels` (created lazily per label line).
    cur_label: Option<u32>,
}

type R<T> = Result<T, DbErrorKind>;

/// Byte at `i`, or 0 past the end: p0f walks NUL-terminated strings.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// C `atol()` from position `i`: optional blanks, sign, digits; saturating.
fn atol(s: &[u8], mut i: usize) -> i64 {
    while matches!(at(s, i), b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match at(s, i) {
        b'-' => {
            i += 1;
            true
        }
        b'+' => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while at(s, i).is_ascii_digit() {
        v = v
            .saturating_mul(10)
            .saturating_add(i64::from(at(s, i) - b'0'));
        i += 1;
    }
    if neg { -v } else { v }
}

fn skip_digits(s: &[u8], mut i: usize) -> usize {
    while at(s, i).is_ascii_digit() {
        i += 1;
    }
    i
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || (c != 0 && NAME_CHARS.contains(&c))
}

impl Parser {
    fn new() -> Parser {
        Parser {
            db: Database::default(),
            state: State::NeedSect,
            mod_type: ModType::None,
            to_srv: false,
            generic: false,
            class: None,
            name_id: 0,
            flavor: None,
            mtu_label: None,
            sys: Vec::new(),
            label_id: 0,
            label_line: 0,
            cur_label: None,
        }
    }

    fn parse(&mut self, file: &str, text: &str) -> Result<(), DbError> {
        for (n, raw) in text.split('\n').enumerate() {
            let line_no = u32::try_from(n + 1).unwrap_or(u32::MAX);
            let line = raw.trim_start_matches([' ', '\t']);
            if line.is_empty() || line.starts_with(';') {
                continue;
            }
            self.parse_line(line.as_bytes(), line_no)
                .map_err(|kind| DbError::Parse {
                    file: file.to_string(),
                    line: line_no,
                    kind,
                })?;
        }
        Ok(())
    }

    fn parse_line(&mut self, line: &[u8], line_no: u32) -> R<()> {
        if line[0] == b'[' {
            let rest = &line[1..];
            if rest == b"mtu]" {
                self.mod_type = ModType::Mtu;
                self.state = State::NeedLabel;
                return Ok(());
            }
            let colon = rest
                .iter()
                .position(|c| *c == b':')
                .ok_or(DbErrorKind::MalformedSection)?;
            let (module, dir) = (&rest[..colon], &rest[colon + 1..]);
            self.mod_type = match module {
                b"tcp" => ModType::Tcp,
                b"http" => ModType::Http,
                other => {
                    return Err(DbErrorKind::UnknownModule(
                        String::from_utf8_lossy(other).into_owned(),
                    ));
                }
            };
            self.to_srv = match dir {
                b"request]" => true,
                b"response]" => false,
                _ => return Err(DbErrorKind::UnknownDirection),
            };
            self.state = State::NeedLabel;
            return Ok(());
        }

        // name = value
        let mut v = 0;
        while line
            .get(v)
            .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            v += 1;
        }
        let eon = v;
        while is_blank(at(line, v)) {
            v += 1;
        }
        if v == 0 || at(line, v) != b'=' {
            return Err(DbErrorKind::UnexpectedStatement);
        }
        v += 1;
        while is_blank(at(line, v)) {
            v += 1;
        }
        let name = &line[..eon];
        let val = line.get(v..).unwrap_or(&[]);
        match name {
            b"classes" => {
                if self.state != State::NeedSect {
                    return Err(DbErrorKind::Misplaced("classes"));
                }
                self.parse_classes(val)
            }
            b"ua_os" => {
                if self.state != State::NeedLabel || !self.to_srv || self.mod_type != ModType::Http
                {
                    return Err(DbErrorKind::Misplaced("ua_os"));
                }
                self.parse_ua_os(val)
            }
            b"label" => {
                if self.state != State::NeedLabel && self.state != State::NeedSig {
                    return Err(DbErrorKind::Misplaced("label"));
                }
                self.parse_label(val, line_no)?;
                self.state = if self.mod_type != ModType::Mtu && self.class.is_none() {
                    State::NeedSys
                } else {
                    State::NeedSig
                };
                Ok(())
            }
            b"sys" => {
                if self.state != State::NeedSys {
                    return Err(DbErrorKind::Misplaced("sys"));
                }
                self.parse_sys(val)?;
                self.state = State::NeedSig;
                Ok(())
            }
            b"sig" => {
                if self.state != State::NeedSig {
                    return Err(DbErrorKind::Misplaced("sig"));
                }
                match self.mod_type {
                    ModType::Tcp => self.register_tcp(val, line_no),
                    ModType::Mtu => self.register_mtu(val, line_no),
                    ModType::Http => self.register_http(val, line_no),
                    ModType::None => Err(DbErrorKind::Misplaced("sig")),
                }
            }
            other => Err(DbErrorKind::UnknownField(
                String::from_utf8_lossy(other).into_owned(),
            )),
        }
    }

    fn parse_classes(&mut self, val: &[u8]) -> R<()> {
        let mut i = 0;
        while i < val.len() {
            while is_blank(at(val, i)) || at(val, i) == b',' {
                i += 1;
            }
            let start = i;
            while at(val, i).is_ascii_alphanumeric() {
                i += 1;
            }
            if i == start || (at(val, i) != 0 && at(val, i) != b',') {
                return Err(DbErrorKind::MalformedClass);
            }
            self.db
                .classes
                .push(intern(&String::from_utf8_lossy(&val[start..i])));
        }
        Ok(())
    }

    fn find_class(&self, name: &[u8]) -> Option<u32> {
        self.db
            .classes
            .iter()
            .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
            .map(|i| i as u32)
    }

    /// p0f's `lookup_name_id()`: case-insensitive, creating the name on first use.
    fn lookup_name(&mut self, name: &[u8]) -> u32 {
        if let Some(i) = self
            .db
            .names
            .iter()
            .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
        {
            return i as u32;
        }
        self.db.names.push(intern(&String::from_utf8_lossy(name)));
        (self.db.names.len() - 1) as u32
    }

    fn parse_label(&mut self, val: &[u8], line_no: u32) -> R<()> {
        if self.mod_type == ModType::Mtu {
            if val.is_empty() {
                return Err(DbErrorKind::EmptyMtuLabel);
            }
            self.mtu_label = Some(intern(&String::from_utf8_lossy(val)));
            return Ok(());
        }
        self.generic = match at(val, 0) {
            b'g' => true,
            b's' => false,
            _ => return Err(DbErrorKind::MalformedClass),
        };
        if at(val, 1) != b':' {
            return Err(DbErrorKind::MalformedClass);
        }
        let mut i = 2;
        let cstart = i;
        while at(val, i).is_ascii_alphanumeric() || at(val, i) == b'!' {
            i += 1;
        }
        if i == cstart || at(val, i) != b':' {
            return Err(DbErrorKind::MalformedClass);
        }
        if at(val, cstart) == b'!' && at(val, cstart + 1) == b':' {
            self.class = None;
        } else {
            let cname = &val[cstart..i];
            self.class = Some(self.find_class(cname).ok_or_else(|| {
                DbErrorKind::UnknownClass(String::from_utf8_lossy(cname).into_owned())
            })?);
        }
        i += 1;
        let nstart = i;
        while is_name_char(at(val, i)) {
            i += 1;
        }
        if i == nstart || at(val, i) != b':' {
            return Err(DbErrorKind::MalformedName);
        }
        self.name_id = self.lookup_name(&val[nstart..i]);
        let flavor = &val[i + 1..];
        self.flavor = if flavor.is_empty() {
            None
        } else {
            Some(intern(&String::from_utf8_lossy(flavor)))
        };
        self.label_id += 1;
        self.label_line = line_no;
        self.cur_label = None;
        Ok(())
    }

    fn parse_sys(&mut self, val: &[u8]) -> R<()> {
        self.sys.clear();
        let mut i = 0;
        while i < val.len() {
            while is_blank(at(val, i)) || at(val, i) == b',' {
                i += 1;
            }
            let is_class = at(val, i) == b'@';
            if is_class {
                i += 1;
            }
            let start = i;
            while is_name_char(at(val, i)) {
                i += 1;
            }
            if i == start || (at(val, i) != 0 && at(val, i) != b',') {
                return Err(DbErrorKind::MalformedSys);
            }
            let name = &val[start..i];
            if is_class {
                let c = self.find_class(name).ok_or_else(|| {
                    DbErrorKind::UnknownClass(String::from_utf8_lossy(name).into_owned())
                })?;
                self.sys.push(SysRef::Class(c));
            } else {
                let n = self.lookup_name(name);
                self.sys.push(SysRef::Name(n));
            }
        }
        Ok(())
    }

    fn parse_ua_os(&mut self, val: &[u8]) -> R<()> {
        let mut i = 0;
        while i < val.len() {
            while is_blank(at(val, i)) || at(val, i) == b',' {
                i += 1;
            }
            let start = i;
            while is_name_char(at(val, i)) {
                i += 1;
            }
            if i == start {
                return Err(DbErrorKind::MalformedHttp("bad ua_os entry"));
            }
            let name = String::from_utf8_lossy(&val[start..i]).into_owned();
            let mut ua = None;
            if at(val, i) == b'=' {
                if at(val, i + 1) != b'[' {
                    return Err(DbErrorKind::MalformedHttp("ua_os value must be [..]"));
                }
                let vstart = i + 2;
                let end = val[vstart..]
                    .iter()
                    .position(|c| *c == b']')
                    .ok_or(DbErrorKind::MalformedHttp("unterminated ua_os value"))?;
                ua = Some(String::from_utf8_lossy(&val[vstart..vstart + end]).into_owned());
                i = vstart + end + 1;
            }
            if at(val, i) != 0 && at(val, i) != b',' {
                return Err(DbErrorKind::MalformedHttp("bad ua_os separator"));
            }
            self.db.ua_os.push(UaOs { name, ua });
        }
        Ok(())
    }

    /// The `Label` record for the current label line, created on its first signature.
    fn current_label(&mut self, module: Module) -> u32 {
        if let Some(l) = self.cur_label {
            return l;
        }
        self.db.labels.push(Label {
            generic: self.generic,
            class: self.class,
            name_id: self.name_id,
            flavor: self.flavor,
            label_id: self.label_id,
            sys: self.sys.clone(),
            module,
            line: self.label_line,
        });
        let idx = (self.db.labels.len() - 1) as u32;
        self.cur_label = Some(idx);
        idx
    }

    fn register_mtu(&mut self, val: &[u8], line_no: u32) -> R<()> {
        let end = skip_digits(val, 0);
        if end == 0 || end != val.len() {
            return Err(DbErrorKind::MalformedMtu);
        }
        let mtu = atol(val, 0);
        if mtu <= 0 || mtu > 65535 {
            return Err(DbErrorKind::MalformedMtu);
        }
        let link = self.mtu_label.ok_or(DbErrorKind::Misplaced("sig"))?;
        let mtu = mtu as u16;
        let idx = self.db.mtu.len() as u32;
        self.db.mtu.push(MtuSig {
            mtu,
            link,
            line: line_no,
        });
        self.db.mtu_index.entry(mtu).or_insert(idx);
        Ok(())
    }

    fn register_http(&mut self, val: &[u8], line_no: u32) -> R<()> {
        let version = match (at(val, 0), at(val, 1)) {
            (b'0', b':') => Some(0),
            (b'1', b':') => Some(1),
            (b'*', b':') => None,
            _ => return Err(DbErrorKind::MalformedHttp("bad HTTP version")),
        };
        let mut i = 2;
        let mut headers = Vec::new();
        while at(val, i) != b':' {
            let optional = at(val, i) == b'?';
            if optional {
                i += 1;
            }
            let start = i;
            while !matches!(at(val, i), 0 | b'=' | b',' | b':') {
                i += 1;
            }
            if i == start {
                return Err(DbErrorKind::MalformedHttp("empty header name"));
            }
            let name = String::from_utf8_lossy(&val[start..i]).into_owned();
            let mut value = None;
            if at(val, i) == b'=' {
                if at(val, i + 1) != b'[' {
                    return Err(DbErrorKind::MalformedHttp("header value must be [..]"));
                }
                let vstart = i + 2;
                let end = val
                    .get(vstart..)
                    .and_then(|s| s.iter().position(|c| *c == b']'))
                    .ok_or(DbErrorKind::MalformedHttp("unterminated header value"))?;
                value = Some(String::from_utf8_lossy(&val[vstart..vstart + end]).into_owned());
                i = vstart + end + 1;
            }
            headers.push(HttpHeader {
                optional,
                name,
                value,
            });
            match at(val, i) {
                b',' => i += 1,
                b':' => {}
                _ => return Err(DbErrorKind::MalformedHttp("truncated header list")),
            }
        }
        i += 1;
        let mut absent = Vec::new();
        while at(val, i) != b':' {
            let start = i;
            while !matches!(at(val, i), 0 | b',' | b':') {
                i += 1;
            }
            if i == start {
                return Err(DbErrorKind::MalformedHttp("empty absent-header name"));
            }
            absent.push(String::from_utf8_lossy(&val[start..i]).into_owned());
            match at(val, i) {
                b',' => i += 1,
                b':' => {}
                _ => return Err(DbErrorKind::MalformedHttp("truncated absent-header list")),
            }
        }
        i += 1;
        let software = String::from_utf8_lossy(val.get(i..).unwrap_or(&[])).into_owned();
        let label = self.current_label(Module::Http);
        self.db.http.push(HttpSig {
            line: line_no,
            to_srv: self.to_srv,
            label,
            version,
            headers,
            absent,
            software,
        });
        Ok(())
    }

    /// `tcp_register_sig()`: parse, check for duplicates, register.
    fn register_tcp(&mut self, val: &[u8], line_no: u32) -> R<()> {
        use DbErrorKind::MalformedSig as M;
        let s = val;
        let ip_ver: i8 = match at(s, 0) {
            b'4' => 4,
            b'6' => 6,
            b'*' => -1,
            _ => return Err(M("unrecognized IP version")),
        };
        if at(s, 1) != b':' {
            return Err(M("expected ':' after IP version"));
        }
        let mut v = 2;

        // Initial TTL: N, N+D or N-.
        let mut nxt = skip_digits(s, v);
        if !matches!(at(s, nxt), b':' | b'+' | b'-') {
            return Err(M("bad initial TTL"));
        }
        let mut ittl = atol(s, v);
        if !(1..=255).contains(&ittl) {
            return Err(M("bogus initial TTL"));
        }
        v = nxt + 1;
        let mut bad_ttl = false;
        if at(s, nxt) == b'-' && at(s, nxt + 1) == b':' {
            bad_ttl = true;
            // p0f advances two more bytes here, skipping the first character of the next
            // field; we do the same so lines mean what they mean to p0f.
            v += 2;
        } else if at(s, nxt) == b'+' {
            nxt = skip_digits(s, nxt + 1);
            if at(s, nxt) != b':' {
                return Err(M("bad TTL distance"));
            }
            let add = atol(s, v);
            if add < 0 || ittl + add > 255 {
                return Err(M("bogus initial TTL"));
            }
            ittl += add;
            v = nxt + 1;
        }

        // IP options length.
        nxt = skip_digits(s, v);
        if at(s, nxt) != b':' {
            return Err(M("bad IP options length"));
        }
        let olen = atol(s, v);
        if !(0..=255).contains(&olen) {
            return Err(M("bogus IP option length"));
        }
        v = nxt + 1;

        // MSS.
        let mss = if at(s, v) == b'*' && at(s, v + 1) == b':' {
            v += 2;
            -1
        } else {
            nxt = skip_digits(s, v);
            if at(s, nxt) != b':' {
                return Err(M("bad MSS"));
            }
            let m = atol(s, v);
            if !(0..=65535).contains(&m) {
                return Err(M("bogus MSS"));
            }
            v = nxt + 1;
            m
        };

        // Window size, then ','.
        let (win_type, win) = if at(s, v) == b'*' && at(s, v + 1) == b',' {
            v += 2;
            (WinType::Any, 0)
        } else if at(s, v) == b'%' {
            v += 1;
            nxt = skip_digits(s, v);
            if at(s, nxt) != b',' {
                return Err(M("bad '%' window"));
            }
            let w = atol(s, v);
            if !(2..=65535).contains(&w) {
                return Err(M("bogus '%' value"));
            }
            v = nxt + 1;
            (WinType::Mod, w)
        } else if s.get(v..v + 4) == Some(b"mss*") || s.get(v..v + 4) == Some(b"mtu*") {
            let t = if at(s, v + 1) == b's' {
                WinType::Mss
            } else {
                WinType::Mtu
            };
            v += 4;
            nxt = skip_digits(s, v);
            if at(s, nxt) != b',' {
                return Err(M("bad MSS/MTU multiplier"));
            }
            let w = atol(s, v);
            if !(1..=1000).contains(&w) {
                return Err(M("bogus MSS/MTU multiplier"));
            }
            v = nxt + 1;
            (t, w)
        } else {
            nxt = skip_digits(s, v);
            if at(s, nxt) != b',' {
                return Err(M("bad window size"));
            }
            let w = atol(s, v);
            if !(0..=65535).contains(&w) {
                return Err(M("bogus window size"));
            }
            v = nxt + 1;
            (WinType::Normal, w)
        };

        // Window scale.
        let wscale = if at(s, v) == b'*' && at(s, v + 1) == b':' {
            v += 2;
            -1
        } else {
            nxt = skip_digits(s, v);
            if at(s, nxt) != b':' {
                return Err(M("bad window scale"));
            }
            let w = atol(s, v);
            if !(0..=255).contains(&w) {
                return Err(M("bogus window scale"));
            }
            v = nxt + 1;
            w
        };

        // Option layout.
        let mut layout = Layout::default();
        let mut eol_pad = 0i64;
        while at(s, v) != b':' {
            if usize::from(layout.len) >= MAX_TCP_OPT {
                return Err(M("too many TCP options"));
            }
            let rest = s.get(v..).unwrap_or(&[]);
            if rest.starts_with(b"eol") {
                layout.push(opt::EOL);
                v += 3;
                if at(s, v) != b'+' {
                    return Err(M("malformed EOL option"));
                }
                v += 1;
                nxt = skip_digits(s, v);
                if at(s, nxt) == 0 {
                    return Err(M("truncated options"));
                }
                if at(s, nxt) != b':' {
                    return Err(M("EOL must be the last option"));
                }
                eol_pad = atol(s, v);
                if !(0..=255).contains(&eol_pad) {
                    return Err(M("bogus EOL padding"));
                }
                v = nxt;
            } else if rest.starts_with(b"nop") {
                layout.push(opt::NOP);
                v += 3;
            } else if rest.starts_with(b"mss") {
                layout.push(opt::MSS);
                v += 3;
            } else if rest.starts_with(b"ws") {
                layout.push(opt::WS);
                v += 2;
            } else if rest.starts_with(b"sok") {
                layout.push(opt::SOK);
                v += 3;
            } else if rest.starts_with(b"sack") {
                layout.push(opt::SACK);
                v += 4;
            } else if rest.starts_with(b"ts") {
                layout.push(opt::TS);
                v += 2;
            } else if at(s, v) == b'?' {
                v += 1;
                nxt = skip_digits(s, v);
                if at(s, nxt) != b':' && at(s, nxt) != b',' {
                    return Err(M("malformed '?' option"));
                }
                let n = atol(s, v);
                if !(0..=255).contains(&n) {
                    return Err(M("bogus '?' option"));
                }
                layout.push(n as u8);
                v = nxt;
            } else {
                return Err(M("unrecognized TCP option"));
            }
            if at(s, v) == b':' {
                break;
            }
            if at(s, v) != b',' {
                return Err(M("malformed TCP options"));
            }
            v += 1;
        }
        v += 1;

        // Quirks.
        let mut quirks = 0u32;
        while at(s, v) != b':' {
            let rest = s.get(v..).unwrap_or(&[]);
            let Some((bit, name)) = quirk::ALL
                .iter()
                .find(|(_, name)| rest.starts_with(name.as_bytes()))
                .copied()
            else {
                return Err(M("unrecognized quirk"));
            };
            let v6_only = bit == quirk::FLOW;
            let v4_only = matches!(
                bit,
                quirk::DF | quirk::NZ_ID | quirk::ZERO_ID | quirk::NZ_MBZ
            );
            if v4_only && ip_ver == 6 {
                return Err(DbErrorKind::QuirkVersion(name, 6));
            }
            if v6_only && ip_ver == 4 {
                return Err(DbErrorKind::QuirkVersion(name, 4));
            }
            quirks |= bit;
            v += name.len();
            if at(s, v) == b':' {
                break;
            }
            if at(s, v) != b',' {
                return Err(M("malformed quirks"));
            }
            v += 1;
        }
        v += 1;

        // Payload class: the rest of the line, exactly.
        let pay_class: i8 = match s.get(v..).unwrap_or(&[]) {
            b"*" => -1,
            b"0" => 0,
            b"+" => 1,
            _ => return Err(M("malformed payload class")),
        };

        let label = self.current_label(Module::Tcp);
        let sig = TcpSig {
            line: line_no,
            to_srv: self.to_srv,
            label,
            ip_ver,
            ttl: ittl as i32,
            bad_ttl,
            ip_opt_len: olen as i32,
            mss: mss as i32,
            win_type,
            win: win as i32,
            wscale: wscale as i32,
            layout,
            eol_pad: eol_pad as i32,
            quirks,
            pay_class,
        };

        // p0f runs the new signature through the matcher: an exact, specific match means an
        // earlier line already says the same thing, which p0f refuses.
        let win_multi = if sig.win_type == WinType::Normal {
            detect_win_multi(sig.win as u16, sig.mss, false, sig.ip_ver, 0, 0)
        } else {
            WinMulti {
                multi: -1,
                use_mtu: false,
            }
        };
        let probe = Probe {
            ip_ver: sig.ip_ver,
            quirks: sig.quirks,
            eol_pad: sig.eol_pad,
            ip_opt_len: sig.ip_opt_len,
            ttl: sig.ttl,
            mss: sig.mss,
            wscale: sig.wscale,
            pay_class: sig.pay_class,
            win_type: sig.win_type,
            win: sig.win,
            win_multi,
        };
        let m = find_match(&self.db, sig.to_srv, &sig.layout, &probe, true);
        if let Some(prev) = m.sig.and_then(|i| self.db.tcp.get(i as usize)) {
            return Err(DbErrorKind::AlreadyCovered(prev.line));
        }

        let idx = self.db.tcp.len() as u32;
        self.db
            .index
            .entry((sig.to_srv, sig.layout))
            .or_default()
            .push(idx);
        self.db.tcp.push(sig);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "classes = win,unix,other\n[tcp:request]\nlabel = s:unix:Linux:3.x\n";

    fn parse(text: &str) -> Result<Database, DbError> {
        Database::from_str_named("t.fp", text)
    }

    fn err(text: &str) -> (u32, DbErrorKind) {
        match parse(text) {
            Err(DbError::Parse { line, kind, .. }) => (line, kind),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    fn one_sig(sig: &str) -> TcpSig {
        match parse(&format!("{HEAD}sig = {sig}\n")) {
            Ok(db) => db.tcp_sigs()[0].clone(),
            Err(e) => panic!("{sig}: {e}"),
        }
    }

    #[test]
    fn embedded_database_loads() {
        let db = Database::embedded().unwrap_or_else(|e| panic!("{e}"));
        // Counted independently: `grep -c '^sig' /etc/p0f/p0f.fp` per section.
        let count = |from: &str, to: &str| {
            let start = P0F_FP.find(from).unwrap_or(0);
            let end = P0F_FP.find(to).unwrap_or(P0F_FP.len());
            P0F_FP[start..end]
                .lines()
                .filter(|l| l.trim_start().starts_with("sig"))
                .count()
        };
        let n_req = count("[tcp:request]", "[tcp:response]");
        let n_resp = count("[tcp:response]", "[http:request]");
        let n_mtu = count("[mtu]", "[tcp:request]");
        assert_eq!(db.tcp_sigs().iter().filter(|s| s.to_srv).count(), n_req);
        assert_eq!(db.tcp_sigs().iter().filter(|s| !s.to_srv).count(), n_resp);
        assert_eq!(db.mtu_sigs().len(), n_mtu);
        assert!(!db.http_sigs().is_empty());
        assert_eq!(db.classes()[1], "unix");
        assert_eq!(db.mtu_link(1500), Some("Ethernet or modem"));
    }

    #[test]
    fn ittl_forms() {
        let s = one_sig("*:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0");
        assert_eq!((s.ttl, s.bad_ttl, s.ip_ver), (64, false, -1));
        let s = one_sig("4:60+4:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0");
        assert_eq!((s.ttl, s.bad_ttl), (64, false));
        let s = one_sig("4:64-:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0");
        assert_eq!((s.ttl, s.bad_ttl, s.ip_opt_len), (64, true, 0));
        // p0f's `N-:` skips one extra character: "64-:12:" reads the options length as 2.
        let s = one_sig("4:64-:12:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0");
        assert_eq!(s.ip_opt_len, 2);
        assert!(matches!(
            err(&format!("{HEAD}sig = 4:0:0:*:*,*::0:0\n")).1,
            DbErrorKind::MalformedSig("bogus initial TTL")
        ));
        assert!(matches!(
            err(&format!("{HEAD}sig = 4:250+10:0:*:*,*::0:0\n")).1,
            DbErrorKind::MalformedSig("bogus initial TTL")
        ));
        assert!(matches!(
            err(&format!("{HEAD}sig = 4:64x:0:*:*,*::0:0\n")).1,
            DbErrorKind::MalformedSig("bad initial TTL")
        ));
    }

    #[test]
    fn wsize_forms() {
        let cases = [
            ("*", WinType::Any, 0),
            ("%512", WinType::Mod, 512),
            ("mss*44", WinType::Mss, 44),
            ("mtu*4", WinType::Mtu, 4),
            ("8192", WinType::Normal, 8192),
        ];
        for (w, t, n) in cases {
            let s = one_sig(&format!("4:64:0:*:{w},7:mss,nop,ws:df:0"));
            assert_eq!((s.win_type, s.win), (t, n), "{w}");
        }
        for bad in ["%1", "mss*0", "mss*1001", "70000", "abc"] {
            let (line, kind) = err(&format!("{HEAD}sig = 4:64:0:*:{bad},7:mss:df:0\n"));
            assert_eq!(line, 4);
            assert!(
                matches!(kind, DbErrorKind::MalformedSig(_)),
                "{bad}: {kind}"
            );
        }
    }

    #[test]
    fn layout_quirks_pclass() {
        let s = one_sig("4:64:0:1460:mss*4,0:mss,nop,?30,eol+3:df,id-,ecn,ts2+,bad:+");
        assert_eq!(s.layout.as_slice(), &[2, 1, 30, 0]);
        assert_eq!(s.eol_pad, 3);
        assert_eq!(
            s.quirks,
            quirk::DF | quirk::ZERO_ID | quirk::ECN | quirk::OPT_NZ_TS2 | quirk::OPT_BAD
        );
        assert_eq!((s.mss, s.wscale, s.pay_class), (1460, 0, 1));
        let s = one_sig("6:64:0:*:*,*::flow:*");
        assert_eq!((s.layout.len, s.quirks, s.pay_class), (0, quirk::FLOW, -1));
    }

    #[test]
    fn syntax_errors_name_line_and_reason() {
        let cases: [(&str, DbErrorKind); 18] = [
            ("[tcp:sideways]\n", DbErrorKind::UnknownDirection),
            ("[udp:request]\n", DbErrorKind::UnknownModule("udp".into())),
            ("[tcp\n", DbErrorKind::MalformedSection),
            ("sig 4:64\n", DbErrorKind::UnexpectedStatement),
            ("color = red\n", DbErrorKind::UnknownField("color".into())),
            ("label = x:unix:Linux:\n", DbErrorKind::MalformedClass),
            (
                "label = s:beos:BeOS:\n",
                DbErrorKind::UnknownClass("beos".into()),
            ),
            ("label = s:unix::\n", DbErrorKind::MalformedName),
            (
                "label = s:!:nmap:\nsig = *:64:0:*:*,*::0:0\n",
                DbErrorKind::Misplaced("sig"),
            ),
            (
                "label = s:!:nmap:\nsys = @beos\n",
                DbErrorKind::UnknownClass("beos".into()),
            ),
            ("label = s:!:nmap:\nsys = a,\n", DbErrorKind::MalformedSys),
            (
                "sig = 5:64:0:*:*,*::0:0\n",
                DbErrorKind::MalformedSig("unrecognized IP version"),
            ),
            (
                "sig = 4:64:0:*:*,*:mss,eol+1,nop:0:0\n",
                DbErrorKind::MalformedSig("EOL must be the last option"),
            ),
            (
                "sig = 4:64:0:*:*,*:foo:0:0\n",
                DbErrorKind::MalformedSig("unrecognized TCP option"),
            ),
            (
                "sig = 4:64:0:*:*,*::flow:0\n",
                DbErrorKind::QuirkVersion("flow", 4),
            ),
            (
                "sig = 6:64:0:*:*,*::df:0\n",
                DbErrorKind::QuirkVersion("df", 6),
            ),
            (
                "sig = 4:64:0:*:*,*::zz:0\n",
                DbErrorKind::MalformedSig("unrecognized quirk"),
            ),
            (
                "sig = 4:64:0:*:*,*::df:0 \n",
                DbErrorKind::MalformedSig("malformed payload class"),
            ),
        ];
        for (body, want) in cases {
            let (line, kind) = err(&format!(
                "classes = win,unix\n[tcp:request]\nlabel = s:unix:Linux:\n{body}"
            ));
            assert!(line >= 4, "{body}");
            assert_eq!(kind, want, "{body}");
        }
        // `classes` after a section is misplaced.
        let (line, kind) = err("[mtu]\nclasses = a\n");
        assert_eq!((line, kind), (2, DbErrorKind::Misplaced("classes")));
        let (line, kind) = err("classes = a,,\n");
        assert_eq!((line, kind), (1, DbErrorKind::MalformedClass));
        let (_, kind) = err("[mtu]\nlabel = DSL\nsig = 14x2\n");
        assert_eq!(kind, DbErrorKind::MalformedMtu);
        let (_, kind) = err("[mtu]\nlabel = DSL\nsig = 0\n");
        assert_eq!(kind, DbErrorKind::MalformedMtu);
        // Error display names file and line.
        let e = parse("[x]\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(e, "t.fp:1: malformed section identifier");
    }

    #[test]
    fn duplicates_are_rejected() {
        let base = "4:64:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0";
        let (line, kind) = err(&format!("{HEAD}sig = {base}\nsig = {base}\n"));
        assert_eq!((line, kind), (5, DbErrorKind::AlreadyCovered(4)));
        // A TTL within MAX_DIST below is covered too (it would match exactly).
        let (_, kind) = err(&format!(
            "{HEAD}sig = {base}\nsig = 4:40:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0\n"
        ));
        assert_eq!(kind, DbErrorKind::AlreadyCovered(4));
        // A higher TTL is not (it would only match fuzzily).
        assert!(
            parse(&format!(
                "{HEAD}sig = {base}\nsig = 4:128:0:*:mss*20,10:mss,sok,ts,nop,ws:df,id+:0\n"
            ))
            .is_ok()
        );
        // A generic earlier signature does not cover.
        let text = format!(
            "classes = unix\n[tcp:request]\nlabel = g:unix:Linux:\nsig = {base}\nlabel = s:unix:Linux:x\nsig = {base}\n"
        );
        assert!(parse(&text).is_ok());
        // Wildcard MSS covers a literal one; a fixed window covers by mss*N arithmetic.
        let (_, kind) = err(&format!(
            "{HEAD}sig = 4:64:0:*:*,10:mss:df:0\nsig = 4:64:0:1460:8192,10:mss:df:0\n"
        ));
        assert_eq!(kind, DbErrorKind::AlreadyCovered(4));
        let (_, kind) = err(&format!(
            "{HEAD}sig = 4:64:0:1460:mss*10,10:mss:df:0\nsig = 4:64:0:1460:14600,10:mss:df:0\n"
        ));
        assert_eq!(kind, DbErrorKind::AlreadyCovered(4));
    }

    #[test]
    fn userland_labels_and_names() {
        let text = "classes = win,unix\n[tcp:request]\nlabel = s:!:NMap:SYN scan\nsys = @unix,@win,Linux\nsig = *:64-:0:1460:1024,0:mss::0\nlabel = s:unix:linux:2.6\nsig = 4:64:0:*:*,*::df:0\n";
        let db = parse(text).unwrap_or_else(|e| panic!("{e}"));
        let l0 = &db.labels()[0];
        assert!(l0.is_userland());
        assert_eq!(
            l0.sys,
            vec![SysRef::Class(1), SysRef::Class(0), SysRef::Name(1)]
        );
        assert_eq!(db.name_of(l0), "NMap");
        assert_eq!(l0.flavor, Some("SYN scan"));
        // `linux` is the same name as the `Linux` of the sys line; first spelling wins.
        let l1 = &db.labels()[1];
        assert_eq!((l1.name_id, db.name_of(l1)), (1, "Linux"));
        assert_eq!(db.class_of(l1), Some("unix"));
        assert_eq!((l0.label_id, l1.label_id), (1, 2));
    }

    #[test]
    fn http_sections_parse() {
        let text = "classes = win\n[http:request]\nua_os = Linux,iOS=[iPad]\nlabel = s:!:Firefox:2.x\nsys = Windows\nsig = *:Host,User-Agent,Accept=[,*/*;q=],?Accept-Language::Firefox/\n[http:response]\nlabel = s:!:Apache:2.x\nsys = Windows\nsig = 1:Date,Server:Keep-Alive,Accept-Ranges:Apache\n";
        let db = parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(db.ua_os().len(), 2);
        assert_eq!(db.ua_os()[1].ua.as_deref(), Some("iPad"));
        let h = &db.http_sigs()[0];
        assert_eq!(h.headers.len(), 4);
        assert_eq!(h.headers[2].value.as_deref(), Some(",*/*;q="));
        assert!(h.headers[3].optional);
        assert_eq!(h.software, "Firefox/");
        let r = &db.http_sigs()[1];
        assert_eq!((r.version, r.absent.len(), r.to_srv), (Some(1), 2, false));
    }
}
