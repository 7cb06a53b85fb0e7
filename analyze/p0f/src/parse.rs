//! The p0f.fp parser: text -> [`Database`].
//!
//! The syntax and every acceptance rule follow p0f 3.09b's `readfp.c` and
//! `tcp_register_sig()`, so a file p0f accepts loads here with the same meaning, and a file
//! p0f rejects is rejected here too — as a typed [`DbError`] naming file, line and reason,
//! never a panic. That includes p0f's pointer-walking quirks (for instance the `ittl-` form
//! skips one extra character) because those decide what a line means.
//!
//! Sections: `classes = ...` (before any section), `[mtu]`, `[tcp:request]`,
//! `[tcp:response]`, `[http:request]`, `[http:response]`. HTTP signatures are kept as text
//! here; [`crate::http::HttpTables`] prepares them for matching. (p0f also refuses an HTTP
//! signature that an earlier one already covers; this parser does not check that.)
//!
//! Values are read with a `Cursor`, which reads a byte past the end as NUL the way p0f
//! walks its C strings, so every field is one call (`c.field(b':', 0..=255, ...)`) instead of
//! p0f's skip-digits, check-separator, `atol`, range-check sequence spelled out each time.

use std::ops::RangeInclusive;
use std::path::Path;

use super::db::{
    Database, HttpHeader, HttpSig, Label, LabelId, LinkId, Module, MtuSig, SysRef, TcpSig, UaOs,
    WinType,
};
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
    /// `builtin:NAME` names no bundled file.
    #[error("no bundled database 'builtin:{0}' (there are builtin:p0f.fp and builtin:synscope.fp)")]
    UnknownBuiltin(String),
    /// A line was rejected.
    #[error("{file}:{line}: {kind}")]
    Parse {
        file: String,
        line: u32,
        kind: DbErrorKind,
    },
}

type R<T> = Result<T, DbErrorKind>;

/// A rejected TCP signature, with p0f's reason.
fn bad_sig(why: &'static str) -> DbErrorKind {
    DbErrorKind::MalformedSig(why)
}

/// One file of a database stack (`analyze --db`): a bundled file or one on disk.
///
/// A stack is parsed in order by one parser, so a later file extends the earlier ones with
/// their classes, names and last section still in force, exactly as synscope.fp has always
/// extended p0f.fp. Naming the bundled files lets a user keep them and add a file of their
/// own (`--db builtin:p0f.fp --db mine.fp`) or drop synscope's additions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbFile {
    /// `builtin:p0f.fp`: Debian's p0f 3.09b database, unmodified ([`P0F_FP`]).
    P0f,
    /// `builtin:synscope.fp`: synscope's additions ([`SYNSCOPE_FP`]).
    Synscope,
    /// A file on disk.
    Path(std::path::PathBuf),
}

impl DbFile {
    /// The prefix that names a bundled file.
    pub const BUILTIN: &'static str = "builtin:";

    /// The default stack: p0f.fp, then synscope.fp.
    pub const DEFAULT: [DbFile; 2] = [DbFile::P0f, DbFile::Synscope];

    /// A command-line value: `builtin:p0f.fp`, `builtin:synscope.fp`, or a path.
    pub fn from_arg(arg: &Path) -> Result<DbFile, DbError> {
        let Some(name) = arg.to_str().and_then(|a| a.strip_prefix(Self::BUILTIN)) else {
            return Ok(DbFile::Path(arg.to_path_buf()));
        };
        match name {
            "p0f.fp" => Ok(DbFile::P0f),
            "synscope.fp" => Ok(DbFile::Synscope),
            _ => Err(DbError::UnknownBuiltin(name.to_string())),
        }
    }

    /// The name errors give, and the text.
    fn load(&self) -> Result<(String, std::borrow::Cow<'static, str>), DbError> {
        match self {
            DbFile::P0f => Ok(("p0f.fp (embedded)".into(), P0F_FP.into())),
            DbFile::Synscope => Ok(("synscope.fp (embedded)".into(), SYNSCOPE_FP.into())),
            DbFile::Path(path) => {
                let text = std::fs::read(path).map_err(|cause| DbError::Io {
                    path: path.display().to_string(),
                    cause,
                })?;
                let text = String::from_utf8_lossy(&text).into_owned();
                Ok((path.display().to_string(), text.into()))
            }
        }
    }
}

impl Database {
    /// The default database: Debian's p0f.fp followed by synscope.fp.
    pub fn embedded() -> Result<Database, DbError> {
        Self::stack(&DbFile::DEFAULT)
    }

    /// Debian's p0f.fp alone: the database whose matches are p0f's own, for output that must
    /// be p0f-exact (`--format p0f`).
    pub fn p0f_only() -> Result<Database, DbError> {
        Self::stack(&[DbFile::P0f])
    }

    /// The files parsed in order into one database, each extending the ones before it.
    pub fn stack(files: &[DbFile]) -> Result<Database, DbError> {
        Ok(Parser::stacked(files)?.db)
    }

    /// The files, then `text` (named `name` in errors), parsed in order into one database:
    /// how a file made for a stack is checked before it is written.
    pub fn stack_then(files: &[DbFile], name: &str, text: &str) -> Result<Database, DbError> {
        let mut p = Parser::stacked(files)?;
        p.parse(name, text)?;
        Ok(p.db)
    }

    /// Loads one file, as `p0f -f FILE` would (it replaces the default database).
    pub fn from_file(path: &Path) -> Result<Database, DbError> {
        Self::stack(&[DbFile::Path(path.to_path_buf())])
    }

    /// Parses database text; `name` is used in error messages.
    pub fn from_str_named(name: &str, text: &str) -> Result<Database, DbError> {
        let mut p = Parser::new();
        p.parse(name, text)?;
        Ok(p.db)
    }
}

/// A read position in one p0f.fp value. A byte past the end reads as NUL, as p0f walks
/// NUL-terminated strings, so p0f's checks (`*nxt != ':'`) carry over unchanged.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a [u8]) -> Cursor<'a> {
        Cursor { s, i: 0 }
    }

    /// The byte `k` places ahead (0 past the end).
    fn peek_at(&self, k: usize) -> u8 {
        self.s.get(self.i + k).copied().unwrap_or(0)
    }

    fn peek(&self) -> u8 {
        self.peek_at(0)
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    /// What is left of the value.
    fn rest(&self) -> &'a [u8] {
        self.s.get(self.i..).unwrap_or(&[])
    }

    fn skip(&mut self, n: usize) {
        self.i += n;
    }

    /// Steps over `b` when it is next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.peek() == b;
        if next {
            self.i += 1;
        }
        next
    }

    /// Steps over `lit` when the value continues with it.
    fn eat_str(&mut self, lit: &[u8]) -> bool {
        let next = self.rest().starts_with(lit);
        if next {
            self.i += lit.len();
        }
        next
    }

    /// Steps over `*` followed by `end` (p0f's wildcard field), when they are next.
    fn wildcard(&mut self, end: u8) -> bool {
        let next = self.peek() == b'*' && self.peek_at(1) == end;
        if next {
            self.i += 2;
        }
        next
    }

    /// Steps over the bytes matching `keep`, returning them.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek() != 0 && keep(self.peek()) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or(&[])
    }

    /// Steps over blanks and commas (the separators of p0f's list values).
    fn skip_separators(&mut self) {
        self.take_while(|c| is_blank(c) || c == b',');
    }

    /// Where the run of digits at the cursor ends.
    fn digits_end(&self) -> usize {
        let mut end = self.i;
        while self.s.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        end
    }

    /// The byte after the run of digits at the cursor.
    fn after_digits(&self) -> u8 {
        self.s.get(self.digits_end()).copied().unwrap_or(0)
    }

    /// A number ended by one of `ends`, the cursor left on its end: p0f skips the digits,
    /// checks what follows (else `bad`), reads the value with `atol()` from where it started
    /// and checks its range (else `bogus`).
    fn number(
        &mut self,
        ends: &[u8],
        range: RangeInclusive<i64>,
        bad: &'static str,
        bogus: &'static str,
    ) -> R<i64> {
        if !ends.contains(&self.after_digits()) {
            return Err(bad_sig(bad));
        }
        let v = atol(self.rest());
        if !range.contains(&v) {
            return Err(bad_sig(bogus));
        }
        self.i = self.digits_end();
        Ok(v)
    }

    /// A number ended by `end`, which is stepped over (one field of a signature).
    fn field(
        &mut self,
        end: u8,
        range: RangeInclusive<i64>,
        bad: &'static str,
        bogus: &'static str,
    ) -> R<i64> {
        let v = self.number(&[end], range, bad, bogus)?;
        self.i += 1;
        Ok(v)
    }
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// C `atol()`: optional blanks, sign, digits; saturating.
fn atol(s: &[u8]) -> i64 {
    let mut c = Cursor::new(s);
    c.take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
    let neg = if c.eat(b'-') {
        true
    } else {
        c.eat(b'+');
        false
    };
    let v = c
        .take_while(|b| b.is_ascii_digit())
        .iter()
        .fold(0i64, |v, d| {
            v.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if neg { -v } else { v }
}

/// A name or flavor as the database keeps it (p0f.fp is read as bytes; invalid UTF-8 is
/// replaced, as when the file was read).
fn text(b: &[u8]) -> Box<str> {
    String::from_utf8_lossy(b).into()
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || (c != 0 && NAME_CHARS.contains(&c))
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

/// Parser state carried across lines (and across files for [`Database::embedded`]).
struct Parser {
    db: Database,
    state: State,
    mod_type: ModType,
    to_srv: bool,
    generic: bool,
    class: Option<u32>,
    name_id: u32,
    flavor: Option<Box<str>>,
    /// The link of the current `[mtu]` label.
    mtu_label: Option<LinkId>,
    sys: Vec<SysRef>,
    /// p0f's running label number ([`Label::number`]).
    label_number: u32,
    label_line: u32,
    /// The current label's record in `db.labels` (created lazily per label line).
    cur_label: Option<LabelId>,
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
            label_number: 0,
            label_line: 0,
            cur_label: None,
        }
    }

    /// A parser that has read `files` in order.
    fn stacked(files: &[DbFile]) -> Result<Parser, DbError> {
        let mut p = Parser::new();
        for f in files {
            let (name, text) = f.load()?;
            p.parse(&name, &text)?;
        }
        Ok(p)
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
        if let Some(section) = line.strip_prefix(b"[") {
            return self.parse_section(section);
        }
        // name = value
        let mut c = Cursor::new(line);
        let name = c.take_while(|b| b.is_ascii_alphabetic() || b == b'_');
        c.take_while(is_blank);
        if name.is_empty() || !c.eat(b'=') {
            return Err(DbErrorKind::UnexpectedStatement);
        }
        c.take_while(is_blank);
        let val = c.rest();
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

    /// `[mtu]`, `[tcp:request]`, ...: what follows the `[`.
    fn parse_section(&mut self, rest: &[u8]) -> R<()> {
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
        Ok(())
    }

    fn parse_classes(&mut self, val: &[u8]) -> R<()> {
        let mut c = Cursor::new(val);
        while !c.at_end() {
            c.skip_separators();
            let class = c.take_while(|b| b.is_ascii_alphanumeric());
            if class.is_empty() || !matches!(c.peek(), 0 | b',') {
                return Err(DbErrorKind::MalformedClass);
            }
            self.db.classes.push(text(class));
        }
        Ok(())
    }

    fn find_class(&self, name: &[u8]) -> R<u32> {
        self.db
            .classes
            .iter()
            .position(|c| c.as_bytes().eq_ignore_ascii_case(name))
            .map(|i| i as u32)
            .ok_or_else(|| DbErrorKind::UnknownClass(String::from_utf8_lossy(name).into_owned()))
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
        self.db.names.push(text(name));
        (self.db.names.len() - 1) as u32
    }

    /// `label = [gs]:CLASS:NAME:FLAVOR` (a TCP or HTTP label), or the link name of `[mtu]`.
    fn parse_label(&mut self, val: &[u8], line_no: u32) -> R<()> {
        if self.mod_type == ModType::Mtu {
            if val.is_empty() {
                return Err(DbErrorKind::EmptyMtuLabel);
            }
            self.mtu_label = Some(self.link_id(val));
            return Ok(());
        }
        let mut c = Cursor::new(val);
        self.generic = match c.peek() {
            b'g' => true,
            b's' => false,
            _ => return Err(DbErrorKind::MalformedClass),
        };
        c.skip(1);
        if !c.eat(b':') {
            return Err(DbErrorKind::MalformedClass);
        }
        let class = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'!');
        if class.is_empty() || c.peek() != b':' {
            return Err(DbErrorKind::MalformedClass);
        }
        // `!` is the userland class (applications, `sys =` line next).
        self.class = if class == b"!" {
            None
        } else {
            Some(self.find_class(class)?)
        };
        c.skip(1);
        let name = c.take_while(is_name_char);
        if name.is_empty() || !c.eat(b':') {
            return Err(DbErrorKind::MalformedName);
        }
        self.name_id = self.lookup_name(name);
        let flavor = c.rest();
        self.flavor = (!flavor.is_empty()).then(|| text(flavor));
        self.label_number += 1;
        self.label_line = line_no;
        self.cur_label = None;
        Ok(())
    }

    /// The id of an `[mtu]` link name, given a new one the first time it is seen.
    fn link_id(&mut self, name: &[u8]) -> LinkId {
        let name = text(name);
        let i = match self.db.links.iter().position(|l| *l == name) {
            Some(i) => i,
            None => {
                self.db.links.push(name);
                self.db.links.len() - 1
            }
        };
        LinkId(i as u32)
    }

    /// `sys = @class,Name,...` of a userland label.
    fn parse_sys(&mut self, val: &[u8]) -> R<()> {
        self.sys.clear();
        let mut c = Cursor::new(val);
        while !c.at_end() {
            c.skip_separators();
            let is_class = c.eat(b'@');
            let name = c.take_while(is_name_char);
            if name.is_empty() || !matches!(c.peek(), 0 | b',') {
                return Err(DbErrorKind::MalformedSys);
            }
            let entry = if is_class {
                SysRef::Class(self.find_class(name)?)
            } else {
                SysRef::Name(self.lookup_name(name))
            };
            self.sys.push(entry);
        }
        Ok(())
    }

    /// `ua_os = Name,Name=[substring],...` of `[http:request]`.
    fn parse_ua_os(&mut self, val: &[u8]) -> R<()> {
        use DbErrorKind::MalformedHttp as M;
        let mut c = Cursor::new(val);
        while !c.at_end() {
            c.skip_separators();
            let name = c.take_while(is_name_char);
            if name.is_empty() {
                return Err(M("bad ua_os entry"));
            }
            let name = String::from_utf8_lossy(name).into_owned();
            let ua = value(
                &mut c,
                "ua_os value must be [..]",
                "unterminated ua_os value",
            )?;
            if !matches!(c.peek(), 0 | b',') {
                return Err(M("bad ua_os separator"));
            }
            self.db.ua_os.push(UaOs { name, ua });
        }
        Ok(())
    }

    /// The `Label` record for the current label line, created on its first signature.
    fn current_label(&mut self, module: Module) -> LabelId {
        if let Some(l) = self.cur_label {
            return l;
        }
        self.db.labels.push(Label {
            generic: self.generic,
            class: self.class,
            name_id: self.name_id,
            flavor: self.flavor.clone(),
            number: self.label_number,
            sys: self.sys.clone(),
            module,
            line: self.label_line,
        });
        let id = LabelId((self.db.labels.len() - 1) as u32);
        self.cur_label = Some(id);
        id
    }

    fn register_mtu(&mut self, val: &[u8], line_no: u32) -> R<()> {
        let c = Cursor::new(val);
        if val.is_empty() || c.digits_end() != val.len() {
            return Err(DbErrorKind::MalformedMtu);
        }
        let mtu = atol(val);
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

    /// `sig = VER:HEADERS:ABSENT:SOFTWARE` of an HTTP section.
    fn register_http(&mut self, val: &[u8], line_no: u32) -> R<()> {
        use DbErrorKind::MalformedHttp as M;
        let mut c = Cursor::new(val);
        let version = match (c.peek(), c.peek_at(1)) {
            (b'0', b':') => Some(0),
            (b'1', b':') => Some(1),
            (b'*', b':') => None,
            _ => return Err(M("bad HTTP version")),
        };
        c.skip(2);
        let mut headers = Vec::new();
        while c.peek() != b':' {
            let optional = c.eat(b'?');
            let name = c.take_while(|b| !matches!(b, b'=' | b',' | b':'));
            if name.is_empty() {
                return Err(M("empty header name"));
            }
            headers.push(HttpHeader {
                optional,
                name: String::from_utf8_lossy(name).into_owned(),
                value: value(
                    &mut c,
                    "header value must be [..]",
                    "unterminated header value",
                )?,
            });
            if !c.eat(b',') && c.peek() != b':' {
                return Err(M("truncated header list"));
            }
        }
        c.skip(1);
        let mut absent = Vec::new();
        while c.peek() != b':' {
            let name = c.take_while(|b| !matches!(b, b',' | b':'));
            if name.is_empty() {
                return Err(M("empty absent-header name"));
            }
            absent.push(String::from_utf8_lossy(name).into_owned());
            if !c.eat(b',') && c.peek() != b':' {
                return Err(M("truncated absent-header list"));
            }
        }
        c.skip(1);
        let software = String::from_utf8_lossy(c.rest()).into_owned();
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
        let mut c = Cursor::new(val);
        let ip_ver = ip_version(&mut c)?;
        let (ttl, bad_ttl) = initial_ttl(&mut c)?;
        let ip_opt_len = c.field(
            b':',
            0..=255,
            "bad IP options length",
            "bogus IP option length",
        )?;
        let mss = if c.wildcard(b':') {
            -1
        } else {
            c.field(b':', 0..=65535, "bad MSS", "bogus MSS")?
        };
        let (win_type, win) = window(&mut c)?;
        let wscale = if c.wildcard(b':') {
            -1
        } else {
            c.field(b':', 0..=255, "bad window scale", "bogus window scale")?
        };
        let (layout, eol_pad) = option_layout(&mut c)?;
        c.skip(1);
        let quirks = quirks(&mut c, ip_ver)?;
        c.skip(1);
        // Payload class: the rest of the line, exactly.
        let pay_class: i8 = match c.rest() {
            b"*" => -1,
            b"0" => 0,
            b"+" => 1,
            _ => return Err(bad_sig("malformed payload class")),
        };
        // Every value was range-checked above, so the narrowing casts below keep it.
        let sig = TcpSig {
            line: line_no,
            to_srv: self.to_srv,
            label: self.current_label(Module::Tcp),
            ip_ver,
            ttl: ttl as i32,
            bad_ttl,
            ip_opt_len: ip_opt_len as i32,
            mss: mss as i32,
            win_type,
            win: win as i32,
            wscale: wscale as i32,
            layout,
            eol_pad: eol_pad as i32,
            quirks,
            pay_class,
        };
        if let Some(prev) = self.covering(&sig) {
            return Err(DbErrorKind::AlreadyCovered(prev));
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

    /// The line of an earlier signature that already says what `sig` says: p0f runs a new
    /// signature through the matcher and refuses it on an exact, specific match.
    fn covering(&self, sig: &TcpSig) -> Option<u32> {
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
        m.sig
            .and_then(|i| self.db.tcp.get(i as usize))
            .map(|prev| prev.line)
    }
}

/// The `=[text]` that may follow a name in an HTTP section (the cursor just past the name):
/// the text, or `None` when there is no `=`.
fn value(
    c: &mut Cursor<'_>,
    not_bracketed: &'static str,
    unterminated: &'static str,
) -> R<Option<String>> {
    if !c.eat(b'=') {
        return Ok(None);
    }
    if !c.eat(b'[') {
        return Err(DbErrorKind::MalformedHttp(not_bracketed));
    }
    let end = c
        .rest()
        .iter()
        .position(|b| *b == b']')
        .ok_or(DbErrorKind::MalformedHttp(unterminated))?;
    let text = String::from_utf8_lossy(&c.rest()[..end]).into_owned();
    c.skip(end + 1);
    Ok(Some(text))
}

/// `4:`, `6:` or `*:` (-1).
fn ip_version(c: &mut Cursor<'_>) -> R<i8> {
    let v = match c.peek() {
        b'4' => 4,
        b'6' => 6,
        b'*' => -1,
        _ => return Err(bad_sig("unrecognized IP version")),
    };
    c.skip(1);
    if !c.eat(b':') {
        return Err(bad_sig("expected ':' after IP version"));
    }
    Ok(v)
}

/// The initial TTL, `N:`, `N+D:` (summed) or `N-:` (randomised: `bad_ttl`).
fn initial_ttl(c: &mut Cursor<'_>) -> R<(i64, bool)> {
    let mut ttl = c.number(b":+-", 1..=255, "bad initial TTL", "bogus initial TTL")?;
    let sep = c.peek();
    c.skip(1);
    if sep == b'-' && c.peek() == b':' {
        // p0f advances two more bytes here, skipping the first character of the next
        // field; so do we, so that lines mean what they mean to p0f.
        c.skip(2);
        return Ok((ttl, true));
    }
    if sep == b'+' {
        let add = c.field(b':', 0..=i64::MAX, "bad TTL distance", "bogus initial TTL")?;
        if add > 255 - ttl {
            return Err(bad_sig("bogus initial TTL"));
        }
        ttl += add;
    }
    Ok((ttl, false))
}

/// The window size and its `,`: `*`, `%N`, `mss*N`, `mtu*N` or a value.
fn window(c: &mut Cursor<'_>) -> R<(WinType, i64)> {
    if c.wildcard(b',') {
        return Ok((WinType::Any, 0));
    }
    if c.eat(b'%') {
        let w = c.field(b',', 2..=65535, "bad '%' window", "bogus '%' value")?;
        return Ok((WinType::Mod, w));
    }
    let multiple = if c.eat_str(b"mss*") {
        Some(WinType::Mss)
    } else if c.eat_str(b"mtu*") {
        Some(WinType::Mtu)
    } else {
        None
    };
    if let Some(t) = multiple {
        let w = c.field(
            b',',
            1..=1000,
            "bad MSS/MTU multiplier",
            "bogus MSS/MTU multiplier",
        )?;
        return Ok((t, w));
    }
    let w = c.field(b',', 0..=65535, "bad window size", "bogus window size")?;
    Ok((WinType::Normal, w))
}

/// The option layout and the `eol+N` padding, the cursor left on the `:` after them.
fn option_layout(c: &mut Cursor<'_>) -> R<(Layout, i64)> {
    const NAMED: [(&[u8], u8); 5] = [
        (b"nop", opt::NOP),
        (b"mss", opt::MSS),
        (b"ws", opt::WS),
        (b"sok", opt::SOK),
        (b"sack", opt::SACK),
    ];
    let mut layout = Layout::default();
    let mut eol_pad = 0;
    while c.peek() != b':' {
        if usize::from(layout.len) >= MAX_TCP_OPT {
            return Err(bad_sig("too many TCP options"));
        }
        if c.eat_str(b"eol") {
            layout.push(opt::EOL);
            if !c.eat(b'+') {
                return Err(bad_sig("malformed EOL option"));
            }
            if c.after_digits() == 0 {
                return Err(bad_sig("truncated options"));
            }
            eol_pad = c.number(
                b":",
                0..=255,
                "EOL must be the last option",
                "bogus EOL padding",
            )?;
        } else if let Some((_, kind)) = NAMED.iter().find(|(name, _)| c.eat_str(name)) {
            layout.push(*kind);
        } else if c.eat_str(b"ts") {
            layout.push(opt::TS);
        } else if c.eat(b'?') {
            let n = c.number(b":,", 0..=255, "malformed '?' option", "bogus '?' option")?;
            layout.push(n as u8);
        } else {
            return Err(bad_sig("unrecognized TCP option"));
        }
        if c.peek() == b':' {
            break;
        }
        if !c.eat(b',') {
            return Err(bad_sig("malformed TCP options"));
        }
    }
    Ok((layout, eol_pad))
}

/// The quirk bits, the cursor left on the `:` after them. A quirk of the other IP version
/// than the signature's is an error, as in p0f.
fn quirks(c: &mut Cursor<'_>, ip_ver: i8) -> R<u32> {
    let mut quirks = 0;
    while c.peek() != b':' {
        let Some(&(bit, name)) = quirk::ALL
            .iter()
            .find(|(_, name)| c.eat_str(name.as_bytes()))
        else {
            return Err(bad_sig("unrecognized quirk"));
        };
        let v4_only = matches!(
            bit,
            quirk::DF | quirk::NZ_ID | quirk::ZERO_ID | quirk::NZ_MBZ
        );
        if v4_only && ip_ver == 6 {
            return Err(DbErrorKind::QuirkVersion(name, 6));
        }
        if bit == quirk::FLOW && ip_ver == 4 {
            return Err(DbErrorKind::QuirkVersion(name, 4));
        }
        quirks |= bit;
        if c.peek() == b':' {
            break;
        }
        if !c.eat(b',') {
            return Err(bad_sig("malformed quirks"));
        }
    }
    Ok(quirks)
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
        let db = Database::p0f_only().unwrap_or_else(|e| panic!("{e}"));
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
        assert_eq!(&*db.classes()[1], "unix");
        assert_eq!(
            db.mtu_link(1500).map(|l| db.link(l)),
            Some("Ethernet or modem")
        );
        // The default stack adds synscope.fp's TCP signatures, and nothing else.
        let stacked = Database::embedded().unwrap_or_else(|e| panic!("{e}"));
        let added = SYNSCOPE_FP
            .lines()
            .filter(|l| l.trim_start().starts_with("sig"))
            .count();
        assert!(added > 0);
        assert_eq!(stacked.tcp_sigs().len(), db.tcp_sigs().len() + added);
        assert_eq!(stacked.mtu_sigs().len(), n_mtu);
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

    /// A field's value is `atol()` from where the field starts, as in p0f, even where
    /// the digit run that decides where it ends is empty: `+5` as a TTL reads 5, and its
    /// `+5` then adds 5 more.
    #[test]
    fn fields_read_like_atol() {
        let s = one_sig("4:+5:0:*:*,*::df:0");
        assert_eq!((s.ttl, s.bad_ttl), (10, false));
        let mut c = Cursor::new(b"12:x");
        assert_eq!(c.field(b':', 0..=255, "bad", "bogus"), Ok(12));
        assert_eq!(c.rest(), b"x");
        let mut c = Cursor::new(b"300,");
        assert_eq!(
            c.field(b',', 0..=255, "bad", "bogus"),
            Err(DbErrorKind::MalformedSig("bogus"))
        );
        let mut c = Cursor::new(b"12;");
        assert_eq!(
            c.field(b':', 0..=255, "bad", "bogus"),
            Err(DbErrorKind::MalformedSig("bad"))
        );
        // Past the end reads as NUL.
        let mut c = Cursor::new(b"*");
        assert!(!c.wildcard(b':'));
        assert_eq!((c.peek(), c.peek_at(5)), (b'*', 0));
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
        assert_eq!(l0.flavor.as_deref(), Some("SYN scan"));
        // `linux` is the same name as the `Linux` of the sys line; first spelling wins.
        let l1 = &db.labels()[1];
        assert_eq!((l1.name_id, db.name_of(l1)), (1, "Linux"));
        assert_eq!(db.class_of(l1), Some("unix"));
        assert_eq!((l0.number, l1.number), (1, 2));
    }

    /// The database owns its strings: a label's come back by id, and `[mtu]` labels with
    /// one text share a link id.
    #[test]
    fn labels_and_links_by_id() {
        let text = "classes = unix\n[mtu]\nlabel = DSL\nsig = 1492\nlabel = Ethernet\nsig = 1500\nlabel = DSL\nsig = 1454\n[tcp:request]\nlabel = g:unix:Linux:2.6.x\nsig = *:64:0:*:*,*::df:0\n";
        let db = parse(text).unwrap_or_else(|e| panic!("{e}"));
        let (dsl, eth, dsl2) = (db.mtu_link(1492), db.mtu_link(1500), db.mtu_link(1454));
        assert_eq!(dsl, dsl2);
        assert_ne!(dsl, eth);
        assert_eq!(dsl.map(|l| db.link(l)), Some("DSL"));
        assert_eq!(db.mtu_link(9000), None);
        let id = db.tcp_sigs()[0].label;
        let names = db.label_names(id);
        assert_eq!(
            (names.class, names.name, names.flavor),
            (Some("unix"), "Linux", Some("2.6.x"))
        );
        // An id of another database resolves to nothing, without a panic.
        assert_eq!(db.label_names(LabelId(7)).name, "");
        assert_eq!(db.link(LinkId(7)), "");
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
