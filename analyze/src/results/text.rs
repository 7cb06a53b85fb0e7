//! JSON and CSV text of observations (`--format json|ndjson|csv`).
//!
//! These writers run once per observation (on the rendering thread beside the engine, see
//! `analysis`), so they avoid the `fmt` machinery and allocation per value: rows are
//! rendered straight into one reused byte buffer (integers with `itoa`, IPv4 addresses octet
//! by octet, the date part of timestamps once per second, each distinct raw signature once,
//! a JSON row's keys and constant cells once per row shape) and the buffer goes to the
//! output in large writes.

use std::io::Write;

use p0f::Database;
use p0f::sig::RawSig;
use rustc_hash::FxHashMap;

use super::{COLUMNS, Cell, Observation, Sources, cells};

/// Distinct raw signatures whose text is kept; the cache starts over when it is full, so a
/// capture with endless distinct signatures costs formatting, never memory.
const SIG_CACHE: usize = 4096;

/// Distinct row shapes whose JSON template is kept (a few dozen occur: one per event kind,
/// label presence and the like); bounded like [`SIG_CACHE`] all the same.
const SHAPE_CACHE: usize = 1024;

/// Renders observations as JSON objects or CSV lines into a buffer, and hands the buffer
/// to a writer in large pieces.
pub struct TextWriter {
    buf: Vec<u8>,
    /// Date and time of day (`YYYY-MM-DDTHH:MM:SS`) of the last second rendered.
    time: Option<(u64, [u8; 19])>,
    /// JSON templates by [`shape_key`], as indices into `templates`.
    shapes: FxHashMap<u128, usize>,
    templates: Vec<Template>,
    sigs: FxHashMap<RawSig, Box<str>>,
    scratch: String,
}

impl Default for TextWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TextWriter {
    pub fn new() -> TextWriter {
        TextWriter {
            buf: Vec::new(),
            time: None,
            shapes: FxHashMap::default(),
            templates: Vec::new(),
            sigs: FxHashMap::default(),
            scratch: String::new(),
        }
    }

    /// Renders into `buf` from now on (its contents are kept), so callers can recycle
    /// buffers handed out by [`TextWriter::take_buffer`].
    pub fn set_buffer(&mut self, buf: Vec<u8>) {
        self.buf = buf;
    }

    /// Hands over what was rendered so far, leaving an empty buffer.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The buffer, to render into with other writers (p0f log lines).
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Appends raw bytes (document framing).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends one observation as a JSON object (no newline).
    ///
    /// Rows of one shape (which cells are null, false, true, or a value to render) share
    /// everything but their values: the keys, the constant cells and the quotes come from
    /// the shape's [`Template`] in a few large copies, and only the values are rendered
    /// (no key copy per cell).
    pub fn json_object(&mut self, obs: &Observation, sources: &Sources, db: &Database) {
        // About 600 bytes a row: one reservation instead of a check per value.
        self.buf.reserve(1024);
        let row = cells(obs, sources, db);
        let key = shape_key(&row);
        let index = match self.shapes.get(&key) {
            Some(&i) => i,
            None => {
                if self.templates.len() >= SHAPE_CACHE {
                    self.shapes.clear();
                    self.templates.clear();
                }
                self.templates.push(Template::new(&row));
                self.shapes.insert(key, self.templates.len() - 1);
                self.templates.len() - 1
            }
        };
        // Taken out while the values are rendered (they need `self`), put back after.
        let t = std::mem::take(&mut self.templates[index]);
        let mut at = 0;
        for &(end, column) in &t.holes {
            put_literal(&mut self.buf, &t.text, at, end as usize);
            at = end as usize;
            if let Some(cell) = row.get(usize::from(column)) {
                self.json_value(cell);
            }
        }
        put_literal(&mut self.buf, &t.text, at, t.len);
        self.templates[index] = t;
    }

    /// The text of a value a [`Template`] leaves a hole for, without the quotes around it
    /// (they are in the template).
    fn json_value(&mut self, cell: &Cell<'_>) {
        match *cell {
            Cell::Time(ns) => self.time(ns),
            // Words are in the template, except ones with a code out of range.
            Cell::Str(s) | Cell::Word(_, s) => json_str_body(s, &mut self.buf),
            Cell::UInt(v) => self.uint(v),
            // Finite by construction (see `cells`); `{}` prints the shortest exact form.
            Cell::Float(v) => {
                let _ = write!(self.buf, "{v}");
            }
            // Constants are in the template, never in a hole; written all the same.
            Cell::Null => self.buf.extend_from_slice(b"null"),
            Cell::Bool(v) => self
                .buf
                .extend_from_slice(if v { b"true" } else { b"false" }),
            // Addresses, signatures, params and NAT words never contain a character
            // JSON must escape.
            Cell::Ip(..) | Cell::Sig(_) | Cell::Params(..) | Cell::Nat(_) => self.plain(cell),
        }
    }

    /// Appends one observation as a CSV line (with newline). Nulls are empty fields.
    pub fn csv_line(&mut self, obs: &Observation, sources: &Sources, db: &Database) {
        for (i, cell) in cells(obs, sources, db).into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            match cell {
                Cell::Null => {}
                Cell::Time(ns) => self.time(ns),
                Cell::Str(s) | Cell::Word(_, s) => csv_field(s, &mut self.buf),
                Cell::UInt(v) => self.uint(v),
                Cell::Float(v) => {
                    let _ = write!(self.buf, "{v}");
                }
                Cell::Bool(v) => self
                    .buf
                    .extend_from_slice(if v { b"true" } else { b"false" }),
                // Signatures contain commas and must be quoted (they never contain `"`).
                Cell::Sig(_) => {
                    self.buf.push(b'"');
                    self.plain(&cell);
                    self.buf.push(b'"');
                }
                other => self.plain(&other),
            }
        }
        self.buf.push(b'\n');
    }

    fn uint(&mut self, v: u64) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// RFC 3339 UTC time with nanoseconds, e.g. `2024-05-01T12:00:03.000250000Z`.
    fn time(&mut self, ts_ns: u64) {
        let secs = ts_ns / 1_000_000_000;
        let date = match self.time {
            Some((s, text)) if s == secs => text,
            _ => {
                let text = date_time(secs);
                self.time = Some((secs, text));
                text
            }
        };
        self.buf.extend_from_slice(&date);
        // `.nnnnnnnnnZ`, all nine digits put in place: a fixed-size copy, where itoa's
        // digits (1 to 9 of them) were a memmove call.
        let mut frac = ts_ns % 1_000_000_000;
        let mut tail = *b".000000000Z";
        for d in tail[1..10].iter_mut().rev() {
            *d = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        self.buf.extend_from_slice(&tail);
    }

    /// Appends the text of an address, signature, params or NAT cell (no quoting).
    fn plain(&mut self, cell: &Cell<'_>) {
        match *cell {
            Cell::Ip(4, a) => {
                // Put together on the stack and copied once (a copy per octet was a memmove
                // call for 1 to 3 bytes, three addresses a row).
                let (text, len) = record::ipv4_text(a);
                put_padded(&mut self.buf, &text, len);
            }
            Cell::Sig(sig) => {
                if self.sigs.len() >= SIG_CACHE && !self.sigs.contains_key(sig) {
                    self.sigs.clear();
                }
                let text = self
                    .sigs
                    .entry(*sig)
                    .or_insert_with(|| sig.to_string().into_boxed_str());
                self.buf.extend_from_slice(text.as_bytes());
            }
            _ => {
                self.scratch.clear();
                cell.text(&mut self.scratch);
                self.buf.extend_from_slice(self.scratch.as_bytes());
            }
        }
    }
}

/// How a cell appears in a row's JSON: as a constant (`null`, `false`, `true`, a word), or
/// as a value rendered into a quoted or a bare hole of the template.
fn shape_code(cell: &Cell<'_>) -> u128 {
    match cell {
        Cell::Null => 1,
        Cell::Bool(false) => 2,
        Cell::Bool(true) => 3,
        // 6 to 15.
        Cell::Word(code @ 1..=super::WORD_CODES, _) => 5 + u128::from(*code),
        Cell::Word(..)
        | Cell::Time(_)
        | Cell::Str(_)
        | Cell::Ip(..)
        | Cell::Sig(_)
        | Cell::Params(..)
        | Cell::Nat(_) => 4,
        Cell::UInt(_) | Cell::Float(_) => 5,
    }
}

/// Bits of [`shape_code`] per column in [`shape_key`].
const SHAPE_BITS: usize = 4;
const _: () = assert!(5 + (super::WORD_CODES as usize) < (1 << SHAPE_BITS));
const _: () = assert!(SHAPE_BITS * super::NCOLS <= 128);

/// A row's shape: [`shape_code`] of every cell (shifted in by a constant: a shift of a
/// `u128` by a variable amount was a third of the row's own time).
fn shape_key(row: &[Cell<'_>]) -> u128 {
    row.iter().fold(0, |k, c| k << SHAPE_BITS | shape_code(c))
}

/// Literal bytes copied as one fixed-size block when a literal is at most this long (a copy
/// of a constant size is a few inline moves; one of a variable length is a memmove call).
const BLOCK: usize = 32;

/// The JSON text of one row shape: keys, constants and quotes, with holes for the values.
#[derive(Debug, Default)]
struct Template {
    /// The text, followed by [`BLOCK`] bytes of padding so any literal can be copied as a
    /// whole block.
    text: Vec<u8>,
    /// Length of the text without the padding.
    len: usize,
    /// Each hole: where in `text` it is (the literal before it ends there) and the column
    /// whose value fills it.
    holes: Vec<(u32, u8)>,
}

impl Template {
    fn new(row: &[Cell<'_>]) -> Template {
        let mut text = Vec::new();
        let mut holes = Vec::new();
        for (i, (col, cell)) in COLUMNS.iter().zip(row).enumerate() {
            // Column names are plain ASCII identifiers (a test checks): no escaping.
            text.push(if i == 0 { b'{' } else { b',' });
            text.push(b'"');
            text.extend_from_slice(col.name.as_bytes());
            text.extend_from_slice(b"\":");
            let hole = |text: &Vec<u8>| (u32::try_from(text.len()).unwrap_or(u32::MAX), i as u8);
            match shape_code(cell) {
                1 => text.extend_from_slice(b"null"),
                2 => text.extend_from_slice(b"false"),
                3 => text.extend_from_slice(b"true"),
                6.. => {
                    text.push(b'"');
                    if let Cell::Word(_, w) = cell {
                        json_str_body(w, &mut text);
                    }
                    text.push(b'"');
                }
                4 => {
                    text.push(b'"');
                    holes.push(hole(&text));
                    text.push(b'"');
                }
                _ => holes.push(hole(&text)),
            }
        }
        text.push(b'}');
        let len = text.len();
        text.extend_from_slice(&[b' '; BLOCK]);
        Template { text, len, holes }
    }
}

/// Appends `text[from..to]`: as a whole [`BLOCK`] cut to length when it is that short and
/// the block is in bounds (a [`Template`]'s padding sees to it).
#[inline(always)]
fn put_literal(buf: &mut Vec<u8>, text: &[u8], from: usize, to: usize) {
    let len = to.saturating_sub(from);
    match text.get(from..).and_then(|t| t.first_chunk::<BLOCK>()) {
        Some(block) if len <= BLOCK => put_padded(buf, block, len),
        _ => buf.extend_from_slice(text.get(from..to).unwrap_or_default()),
    }
}

/// Appends the first `len` bytes of `block` by appending all of it (a copy of a constant
/// size, done inline) and cutting the rest off.
#[inline(always)]
fn put_padded<const N: usize>(buf: &mut Vec<u8>, block: &[u8; N], len: usize) {
    let start = buf.len();
    buf.extend_from_slice(block);
    buf.truncate(start + len.min(N));
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time.
fn date_time(secs: u64) -> [u8; 19] {
    let mut s = String::with_capacity(19);
    // `write_time` gives `YYYY/MM/DD HH:MM:SS`; RFC 3339 wants `-` and `T`.
    let _ = p0f::log::write_time(i64::try_from(secs).unwrap_or(i64::MAX), &mut s);
    let mut out = [b'0'; 19];
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = match b {
            b'/' => b'-',
            b' ' => b'T',
            other => other,
        };
    }
    out
}

/// Whether `s` holds a byte JSON escapes (a control byte, `"` or `\\`). Almost every value
/// (addresses, signatures, labels) has none and is copied whole, so this check runs over
/// nearly every byte `--format json` writes: it tests eight bytes at a time.
fn needs_json_escape(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero exactly when some byte of `v` is below `n` (for `n` up to 0x80): a byte's
    // borrow can only set a higher byte's mark when that lower byte was below `n` itself.
    let any_below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS;
    let any_equal = |v: u64, c: u8| any_below(v ^ (ONES * u64::from(c)), 1);
    let word = |w: &[u8]| {
        // Short tails are padded with a byte that needs no escape.
        let mut b = [b'a'; 8];
        b[..w.len()].copy_from_slice(w);
        let v = u64::from_ne_bytes(b);
        any_below(v, 0x20) | any_equal(v, b'"') | any_equal(v, b'\\') != 0
    };
    let mut words = s.chunks_exact(8);
    if words.any(word) {
        return true;
    }
    // The last bytes as one word: the last 8 (overlapping what was tested: it is a yes or
    // no), or all of a string shorter than a word.
    let tail = if s.len() >= 8 { &s[s.len() - 8..] } else { s };
    !words.remainder().is_empty() && word(tail)
}

/// Appends `s` escaped for a JSON string literal, without the quotes.
fn json_str_body(s: &str, out: &mut Vec<u8>) {
    if !needs_json_escape(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// Appends `s` as a CSV field (RFC 4180 quoting when needed).
fn csv_field(s: &str, out: &mut Vec<u8>) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// The CSV header line (with newline).
pub fn csv_header() -> String {
    let mut s = COLUMNS.iter().map(|c| c.name).collect::<Vec<_>>().join(",");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{db, endpoints, real_syn};
    use p0f::Subject;
    use p0f::event::{Event, EventKind};
    use std::sync::Arc;

    fn rendered(w: &mut TextWriter) -> String {
        String::from_utf8(w.take_buffer()).unwrap()
    }

    #[test]
    fn escape_check_agrees_with_a_byte_loop() {
        let plain = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        // Every byte value at every place of strings as long as a few words, among bytes
        // on both sides of each boundary the word test depends on.
        let fillers = [
            b'a',
            0x20,
            0x21,
            b'"' + 1,
            b'\\' - 1,
            0x7f,
            0x80,
            0x9f,
            0xa2,
            0xdc,
            0xff,
        ];
        for len in 1..27 {
            for at in 0..len {
                for filler in fillers {
                    for b in 0..=u8::MAX {
                        let mut s = vec![filler; len];
                        s[at] = b;
                        assert_eq!(needs_json_escape(&s), plain(&s), "{s:?}");
                    }
                }
            }
        }
        assert!(!needs_json_escape(b""));
    }

    #[test]
    fn time_is_rfc3339_and_the_second_cache_follows_time() {
        let mut w = TextWriter::new();
        // 2022-10-28 09:46:19 UTC (the p0f log test's instant) plus 250 µs, then the next
        // second, then back (the cache must not stick), then the epoch.
        for ns in [
            1_666_950_379_000_250_000,
            1_666_950_380_999_999_999,
            1_666_950_379_000_000_001,
            0,
        ] {
            w.time(ns);
            w.push(b" ");
        }
        assert_eq!(
            rendered(&mut w),
            "2022-10-28T09:46:19.000250000Z 2022-10-28T09:46:20.999999999Z \
             2022-10-28T09:46:19.000000001Z 1970-01-01T00:00:00.000000000Z "
        );
    }

    #[test]
    fn json_escapes_and_csv_quotes() {
        let raw = "a\"b\\c\n\u{1}é";
        let mut s = Vec::new();
        json_str_body(raw, &mut s);
        let body = String::from_utf8(s).unwrap();
        assert_eq!(body, r#"a\"b\\c\n\u0001é"#);
        let back: String = serde_json::from_str(&format!("\"{body}\"")).unwrap();
        assert_eq!(back, raw);
        let mut s = Vec::new();
        csv_field("x,\"y\"", &mut s);
        assert_eq!(s, b"\"x,\"\"y\"\"\"");
        let mut s = Vec::new();
        csv_field("plain", &mut s);
        assert_eq!(s, b"plain");
    }

    #[test]
    fn column_names_need_no_json_escaping() {
        for c in COLUMNS {
            assert!(
                c.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{}",
                c.name
            );
        }
    }

    /// Every cell of the fast writers equals its reference text (`Cell::text`, std's
    /// address `Display`), for IPv4 and IPv6 rows, and the signature cache gives the same
    /// text on a second use.
    #[test]
    fn fast_cells_equal_their_reference_text() {
        let sources = Sources(vec![Arc::from("a,b.pcap")]);
        let v4 = real_syn();
        let mut v6 = v4.clone();
        v6.event.endpoints.ip_version = 6;
        v6.event.endpoints.client_addr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        v6.event.endpoints.server_addr =
            [0xfd, 0, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x22];
        for obs in [&v4, &v6, &v4] {
            let mut w = TextWriter::new();
            w.json_object(obs, &sources, db());
            let js: serde_json::Value = serde_json::from_str(&rendered(&mut w)).unwrap();
            w.csv_line(obs, &sources, db());
            let csv_text = rendered(&mut w);
            let mut fields = Vec::new();
            // Split the CSV line honouring quotes (RFC 4180).
            let (mut cur, mut quoted, mut chars) =
                (String::new(), false, csv_text.trim_end().chars().peekable());
            while let Some(ch) = chars.next() {
                match ch {
                    '"' if quoted && chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            fields.push(cur);
            assert_eq!(fields.len(), COLUMNS.len());
            for ((col, cell), field) in COLUMNS.iter().zip(cells(obs, &sources, db())).zip(&fields)
            {
                let mut want = String::new();
                cell.text(&mut want);
                match cell {
                    Cell::Str(_)
                    | Cell::Word(..)
                    | Cell::Ip(..)
                    | Cell::Sig(_)
                    | Cell::Params(..)
                    | Cell::Nat(_) => {
                        assert_eq!(
                            js[col.name],
                            serde_json::Value::String(want.clone()),
                            "{}",
                            col.name
                        );
                        assert_eq!(field, &want, "{}", col.name);
                    }
                    Cell::Null => {
                        assert!(js[col.name].is_null(), "{}", col.name);
                        assert_eq!(field, "", "{}", col.name);
                    }
                    Cell::UInt(v) => {
                        assert_eq!(js[col.name], serde_json::json!(v), "{}", col.name);
                        assert_eq!(field, &v.to_string(), "{}", col.name);
                    }
                    Cell::Bool(v) => {
                        assert_eq!(js[col.name], serde_json::json!(v), "{}", col.name);
                        assert_eq!(field, &v.to_string(), "{}", col.name);
                    }
                    Cell::Time(_) | Cell::Float(_) => {}
                }
            }
            let ip = |a: &[u8; 16]| -> String {
                if obs.event.endpoints.ip_version == 4 {
                    std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
                } else {
                    std::net::Ipv6Addr::from(*a).to_string()
                }
            };
            assert_eq!(
                js["client_addr"],
                serde_json::json!(ip(&obs.event.endpoints.client_addr))
            );
            assert_eq!(
                js["server_addr"],
                serde_json::json!(ip(&obs.event.endpoints.server_addr))
            );
        }
    }

    #[test]
    fn nat_and_params_words() {
        let sources = Sources::default();
        let obs = Observation {
            source: 0,
            event: Event {
                ts_ns: 1,
                endpoints: endpoints(),
                subject: Subject::Client,
                kind: EventKind::IpSharing(p0f::event::NatObservation {
                    reasons: p0f::event::NatReasons(
                        p0f::event::NatReasons::TS | p0f::event::NatReasons::PORT,
                    ),
                    raw_hits: [0; 4],
                }),
            },
        };
        let mut w = TextWriter::new();
        w.json_object(&obs, &sources, db());
        let js: serde_json::Value = serde_json::from_str(&rendered(&mut w)).unwrap();
        assert_eq!(js["nat_reasons"], "tstamp port");
        assert_eq!(js["ip_sharing"], true);
        let mut syn = real_syn();
        if let EventKind::Tcp(t) = &mut syn.event.kind {
            t.params = p0f::Params {
                excess_dist: true,
                tos: 0x2e,
                ..Default::default()
            };
        }
        w.json_object(&syn, &sources, db());
        let js: serde_json::Value = serde_json::from_str(&rendered(&mut w)).unwrap();
        assert_eq!(js["params"], "excess_dist tos:0x2e");
    }

    /// One event of every kind but TCP.
    fn other_kinds() -> [EventKind; 4] {
        use crate::results::NatReasons;
        use p0f::event::NatObservation;
        let nat = NatObservation {
            reasons: NatReasons(NatReasons::TTL),
            raw_hits: [0; 4],
        };
        [
            EventKind::Mtu {
                link: None,
                mtu: 1492,
            },
            EventKind::Uptime {
                minutes: 90,
                modulo_days: 49,
                raw_freq: 100.0,
            },
            EventKind::HostChange(nat),
            EventKind::IpSharing(nat),
        ]
    }

    /// Rows of every kind, rendered twice by one writer (the second time from the template
    /// cache): every column once, in order, each null and boolean cell as itself.
    #[test]
    fn templates_render_like_their_cells() {
        use crate::results::NCOLS;
        let sources = Sources(vec![Arc::from("x.pcap")]);
        let syn = real_syn();
        let mut unmatched = syn.clone();
        if let EventKind::Tcp(t) = &mut unmatched.event.kind {
            t.label = None;
        }
        let mut rows = vec![syn, unmatched];
        rows.extend(other_kinds().into_iter().map(|kind| Observation {
            source: 0,
            event: Event {
                ts_ns: 1,
                endpoints: endpoints(),
                subject: p0f::Subject::Client,
                kind,
            },
        }));
        let mut w = TextWriter::new();
        for pass in 0..2 {
            for obs in &rows {
                w.json_object(obs, &sources, db());
                let text = rendered(&mut w);
                let js: serde_json::Value = serde_json::from_str(&text).unwrap();
                let mut at = 0;
                for (col, cell) in COLUMNS.iter().zip(cells(obs, &sources, db())) {
                    let key = format!("\"{}\":", col.name);
                    let found = text[at..].find(&key).map(|i| at + i);
                    assert!(
                        found.is_some(),
                        "pass {pass}: {} missing or out of order",
                        col.name
                    );
                    at = found.unwrap_or(at) + key.len();
                    match cell {
                        Cell::Null => assert!(js[col.name].is_null(), "{}", col.name),
                        Cell::Bool(v) => assert_eq!(js[col.name], v, "{}", col.name),
                        _ => assert!(!js[col.name].is_null(), "{}", col.name),
                    }
                }
                assert_eq!(js.as_object().map(|o| o.len()), Some(NCOLS));
            }
        }
        assert_eq!(w.templates.len(), rows.len());
        let (null, fals, tru) = (Cell::Null, Cell::Bool(false), Cell::Bool(true));
        let (text, num) = (Cell::Str("x"), Cell::UInt(1));
        for (a, b) in [
            (null, fals),
            (fals, tru),
            (null, text),
            (text, num),
            (num, null),
        ] {
            assert_ne!(shape_key(&[a, null]), shape_key(&[b, null]));
            assert_ne!(shape_key(&[null, a]), shape_key(&[null, b]));
        }
    }

    /// Words are constants of their row's template: every word a column can hold has a
    /// code in range and its own within the column, and rows that differ by one word get
    /// templates of their own, each with its own word.
    #[test]
    fn words_are_template_constants() {
        use crate::results::{NCOLS, WORD_CODES};
        use p0f::{LabelType, Quality, TcpKind};
        let sources = Sources(vec![Arc::from("x.pcap")]);
        let syn = real_syn();
        // Every value of every word column, one row each.
        let mut rows = Vec::new();
        for kind in [
            TcpKind::Syn,
            TcpKind::SynAck,
            TcpKind::SendsynProbe,
            TcpKind::SendsynResponse,
        ] {
            for quality in [
                Quality::Exact,
                Quality::Generic,
                Quality::Fuzzy,
                Quality::Unknown,
            ] {
                for direction in 0..=2 {
                    for label_type in [LabelType::Os, LabelType::App] {
                        let mut r = syn.clone();
                        if let EventKind::Tcp(t) = &mut r.event.kind {
                            t.kind = kind;
                            t.quality = quality;
                            t.direction = direction;
                            if let Some(l) = &mut t.label {
                                l.label_type = label_type;
                            }
                        }
                        rows.push(r);
                    }
                }
            }
        }
        for kind in other_kinds() {
            let mut r = syn.clone();
            r.event.kind = kind;
            rows.push(r);
        }
        for subject in [Subject::Client, Subject::Server] {
            let mut r = syn.clone();
            r.event.subject = subject;
            rows.push(r);
        }
        // column -> code -> word
        let mut seen: Vec<std::collections::BTreeMap<u8, &str>> = vec![Default::default(); NCOLS];
        let mut w = TextWriter::new();
        for obs in &rows {
            let row = cells(obs, &sources, db());
            w.json_object(obs, &sources, db());
            let js: serde_json::Value = serde_json::from_str(&rendered(&mut w)).unwrap();
            for (i, cell) in row.iter().enumerate() {
                if let Cell::Word(code, word) = *cell {
                    assert!((1..=WORD_CODES).contains(&code), "{word}: {code}");
                    let known = *seen[i].entry(code).or_insert(word);
                    assert_eq!(known, word, "{}: code {code}", COLUMNS[i].name);
                    assert_eq!(js[COLUMNS[i].name], word, "{}", COLUMNS[i].name);
                }
            }
        }
        let words: usize = seen.iter().map(|m| m.len()).sum();
        // 8 modules, 2 subjects, 3 directions, 2 label types, 4 qualities.
        assert_eq!(words, 19);
        for m in &seen {
            let distinct: std::collections::BTreeSet<_> = m.values().collect();
            assert_eq!(distinct.len(), m.len());
        }
        let (a, b) = (Cell::Word(1, "syn"), Cell::Word(2, "syn+ack"));
        assert_ne!(shape_key(&[a, Cell::Null]), shape_key(&[b, Cell::Null]));
        assert_ne!(shape_key(&[a]), shape_key(&[Cell::Str("syn")]));
    }

    /// Literals of every length up to past a block, at the end of a template's text (in its
    /// padding) or not, copy exactly their bytes.
    #[test]
    fn literals_copy_exactly_their_bytes() {
        let text: Vec<u8> = (0..100u8).collect();
        for from in 0..100 {
            for to in from..=100 {
                let mut buf = vec![7u8];
                put_literal(&mut buf, &text, from, to);
                assert_eq!(&buf[1..], &text[from..to], "{from}..{to}");
            }
        }
    }

    /// IPv4 addresses render as std prints them, whatever their octets' widths.
    #[test]
    fn addresses_render_like_std() {
        let mut w = TextWriter::new();
        // Every octet value in every position, next to octets of other widths.
        let all = (0..=255u8).flat_map(|v| {
            [
                [v, 0, 100, 255],
                [9, v, 255, 10],
                [255, 99, v, 0],
                [0, 1, 22, v],
                [v, v, v, v],
            ]
        });
        for octets in all {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&octets);
            w.plain(&Cell::Ip(4, &a));
            let want = std::net::Ipv4Addr::from(octets).to_string();
            assert_eq!(rendered(&mut w), want);
        }
    }
}
