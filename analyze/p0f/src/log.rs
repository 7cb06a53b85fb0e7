//! p0f's log file format (`p0f -o FILE`), one line per [`Event`].
//!
//! Line layout, from p0f 3.09b's `start_observation()` / `add_observation_field()`:
//! `[YYYY/MM/DD HH:MM:SS] mod=KIND|cli=ADDR/PORT|srv=ADDR/PORT|subj=cli|srv|key=value...`,
//! with missing values printed as `???`. p0f formats the packet time with `localtime()`, i.e.
//! in the `TZ` of the p0f process; [`write_p0f_line`] uses UTC, so compare against p0f run
//! with `TZ=UTC` (or pass the offset to [`write_p0f_line_with_offset`]).
//!
//! Events name their label and link by id; the database they came from gives the text.

use std::io::{self, Write};

use super::db::Database;
use super::event::{
    Event, EventKind, HttpObservation, LabelType, Lang, NatObservation, NatReasons, Params,
};

/// Writes the p0f log line for `ev` (with a trailing newline), timestamps in UTC; `db` is
/// the database of the engine that made `ev`.
pub fn write_p0f_line(db: &Database, ev: &Event, w: &mut impl Write) -> io::Result<()> {
    write_p0f_line_with_offset(db, ev, 0, w)
}

/// Like [`write_p0f_line`], with the timestamp shifted by `utc_offset_secs` (local time).
pub fn write_p0f_line_with_offset(
    db: &Database,
    ev: &Event,
    utc_offset_secs: i64,
    w: &mut impl Write,
) -> io::Result<()> {
    // Put together in memory and written at once: one write per line, whatever the writer.
    let mut line = Vec::with_capacity(256);
    push_p0f_line_with_offset(db, ev, utc_offset_secs, &mut line);
    w.write_all(&line)
}

/// Appends the p0f log line for `ev` (with a trailing newline) to `out`, timestamps in UTC:
/// [`write_p0f_line`] for a buffer of lines, which is how analyze renders them.
pub fn push_p0f_line(db: &Database, ev: &Event, out: &mut Vec<u8>) {
    push_p0f_line_with_offset(db, ev, 0, out);
}

/// Like [`push_p0f_line`], with the timestamp shifted by `utc_offset_secs` (local time).
pub fn push_p0f_line_with_offset(
    db: &Database,
    ev: &Event,
    utc_offset_secs: i64,
    out: &mut Vec<u8>,
) {
    let mut bytes = Bytes(out);
    // Appending to a Vec cannot fail.
    let _ = format_line(db, ev, utc_offset_secs, &mut bytes);
    bytes.0.push(b'\n');
}

/// A byte buffer as a `fmt::Write`: each piece of a line is one inlined append, with no
/// I/O error to carry, so a line costs its copies and little else (BENCHMARKS.md, "p0f lines
/// without core::fmt").
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    #[inline(always)]
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Where a line's text goes: a `fmt::Write` that also takes ASCII bytes as they are.
///
/// The numbers of a line (addresses, the time) are put together as ASCII in small arrays; a
/// `&str` of them costs a UTF-8 check per piece, which was about a tenth of rendering a line
/// (BENCHMARKS.md). A byte buffer takes them without one.
pub trait LineOut: std::fmt::Write {
    /// Appends `ascii`, which holds only ASCII bytes.
    fn ascii(&mut self, ascii: &[u8]) -> std::fmt::Result;
}

impl LineOut for Bytes<'_> {
    #[inline(always)]
    fn ascii(&mut self, ascii: &[u8]) -> std::fmt::Result {
        debug_assert!(ascii.is_ascii());
        self.0.extend_from_slice(ascii);
        Ok(())
    }
}

impl LineOut for String {
    fn ascii(&mut self, ascii: &[u8]) -> std::fmt::Result {
        self.push_str(std::str::from_utf8(ascii).map_err(|_| std::fmt::Error)?);
        Ok(())
    }
}

/// The line without its newline, as a `String` (convenient for tests and comparisons).
pub fn p0f_line(db: &Database, ev: &Event) -> String {
    let mut s = String::with_capacity(256);
    // Writing into a String cannot fail.
    let _ = format_line(db, ev, 0, &mut s);
    s
}

/// An address as p0f prints it: dotted quad, or eight uncompressed lower-case hex groups.
pub fn write_addr(ip_version: u8, a: &[u8; 16], out: &mut impl LineOut) -> std::fmt::Result {
    if ip_version == 4 {
        // `write!` with four `{}` went through `fmt`'s padding machinery per octet, a large
        // share of rendering p0f lines.
        let (text, len) = record::ipv4_text(a);
        // Only ASCII digits and dots were written.
        out.ascii(&text[..len])
    } else {
        for g in 0..8 {
            if g > 0 {
                out.write_char(':')?;
            }
            write_hex(u16::from_be_bytes([a[2 * g], a[2 * g + 1]]), out)?;
        }
        Ok(())
    }
}

/// `v` in lower-case hex without leading zeros, as `{:x}` writes it.
fn write_hex(v: u16, out: &mut impl LineOut) -> std::fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 4];
    let mut start = 4;
    let mut rest = v;
    loop {
        start -= 1;
        text[start] = DIGITS[usize::from(rest & 0xf)];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    // Only ASCII hex digits were written.
    out.ascii(&text[start..])
}

/// `YYYY/MM/DD HH:MM:SS` for seconds since the epoch.
pub fn write_time(secs: i64, out: &mut impl LineOut) -> std::fmt::Result {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return write!(
            out,
            "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        );
    }
    // Digits put in place: `write!` with six padded fields would cost more than the rest of
    // the line's numbers together.
    let mut t = *b"0000/00/00 00:00:00";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            t[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    // Bounded above: 0..=9999, 1..=12, 1..=31, 0..=23, 0..=59.
    put(0, 4, y as u32);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, (rem / 3600) as u32);
    put(14, 2, ((rem / 60) % 60) as u32);
    put(17, 2, (rem % 60) as u32);
    out.ascii(&t)
}

/// Proleptic Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Space-separated words, or `empty` when there are none.
struct Words<'a, W: std::fmt::Write> {
    out: &'a mut W,
    any: bool,
}

impl<W: std::fmt::Write> Words<'_, W> {
    /// Starts a word: the separator when one came before. The caller writes the word.
    fn next(&mut self) -> std::fmt::Result {
        if self.any {
            self.out.write_char(' ')?;
        }
        self.any = true;
        Ok(())
    }

    /// A word that is a fixed string (no `format_args!`: `fmt` costs about a thousand
    /// instructions a call, more than the rest of a line).
    fn word(&mut self, word: &str) -> std::fmt::Result {
        self.next()?;
        self.out.write_str(word)
    }

    fn finish(self, empty: &str) -> std::fmt::Result {
        if self.any {
            Ok(())
        } else {
            self.out.write_str(empty)
        }
    }
}

fn write_params(p: &Params, has_match: bool, out: &mut impl LineOut) -> std::fmt::Result {
    let mut w = Words { out, any: false };
    if has_match {
        if p.generic {
            w.word("generic")?;
        }
        if p.fuzzy {
            w.word("fuzzy")?;
        }
        if p.random_ttl {
            w.word("random_ttl")?;
        }
    }
    if p.excess_dist {
        w.word("excess_dist")?;
    }
    if p.tos != 0 {
        w.next()?;
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let t = [
            DIGITS[usize::from(p.tos >> 4)],
            DIGITS[usize::from(p.tos & 0xf)],
        ];
        w.out.write_str("tos:0x")?;
        w.out.ascii(&t)?;
    }
    w.finish("none")
}

fn write_nat(n: &NatObservation, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    out.write_str("|reason=")?;
    let mut w = Words { out, any: false };
    for (bit, name) in NatReasons::NAMES {
        if n.reasons.0 & bit != 0 {
            w.word(name)?;
        }
    }
    w.finish("???")?;
    out.write_str("|raw_hits=")?;
    let mut digits = itoa::Buffer::new();
    for (i, h) in n.raw_hits.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str(digits.format(*h))?;
    }
    Ok(())
}

/// The fields of p0f's `fingerprint_http()` observation.
fn write_http(
    db: &Database,
    h: &HttpObservation,
    out: &mut impl std::fmt::Write,
) -> std::fmt::Result {
    match &h.label {
        Some(l) => {
            out.write_str(match l.label_type {
                LabelType::Os => "|os=",
                LabelType::App => "|app=",
            })?;
            let names = db.label_names(l.id);
            out.write_str(names.name)?;
            if let Some(f) = names.flavor {
                out.write_char(' ')?;
                out.write_str(f)?;
            }
        }
        None => out.write_str("|app=???")?,
    }
    out.write_str("|lang=")?;
    out.write_str(match h.lang {
        Lang::None => "none",
        Lang::Unknown => "???",
        Lang::Known(name) => name,
    })?;
    out.write_str("|params=")?;
    let mut w = Words { out, any: false };
    let p = &h.params;
    if p.dishonest {
        w.word("dishonest")?;
    }
    if p.anonymous {
        w.word("anonymous")?;
    }
    if p.generic {
        w.word("generic")?;
    }
    w.finish("none")?;
    out.write_str("|raw_sig=")?;
    out.write_str(&h.raw_sig)
}

fn format_line(
    db: &Database,
    ev: &Event,
    utc_offset_secs: i64,
    out: &mut impl LineOut,
) -> std::fmt::Result {
    let e = &ev.endpoints;
    out.write_char('[')?;
    let secs = i64::try_from(ev.ts_ns / 1_000_000_000).unwrap_or(i64::MAX);
    write_time(secs.saturating_add(utc_offset_secs), out)?;
    let mut digits = itoa::Buffer::new();
    out.write_str("] mod=")?;
    out.write_str(ev.module())?;
    out.write_str("|cli=")?;
    write_addr(e.ip_version, &e.client_addr, out)?;
    out.write_char('/')?;
    out.write_str(digits.format(e.client_port))?;
    out.write_str("|srv=")?;
    write_addr(e.ip_version, &e.server_addr, out)?;
    out.write_char('/')?;
    out.write_str(digits.format(e.server_port))?;
    out.write_str("|subj=")?;
    out.write_str(ev.subject.short())?;
    match &ev.kind {
        EventKind::Tcp(t) => {
            match &t.label {
                Some(l) => {
                    let key = match l.label_type {
                        LabelType::Os => "os",
                        LabelType::App => "app",
                    };
                    out.write_char('|')?;
                    out.write_str(key)?;
                    out.write_char('=')?;
                    let names = db.label_names(l.id);
                    out.write_str(names.name)?;
                    if let Some(f) = names.flavor {
                        out.write_char(' ')?;
                        out.write_str(f)?;
                    }
                }
                None => out.write_str("|os=???")?,
            }
            out.write_str(if t.distance_upper_bound {
                "|dist=<= "
            } else {
                "|dist="
            })?;
            out.write_str(digits.format(t.distance))?;
            out.write_str("|params=")?;
            write_params(&t.params, t.label.is_some(), out)?;
            out.write_str("|raw_sig=")?;
            t.raw_sig.write_to(out)?;
        }
        EventKind::Mtu { link, mtu } => {
            out.write_str("|link=")?;
            out.write_str(link.map_or("???", |l| db.link(l)))?;
            out.write_str("|raw_mtu=")?;
            out.write_str(digits.format(*mtu))?;
        }
        EventKind::Uptime {
            minutes,
            modulo_days,
            raw_freq,
        } => {
            write!(
                out,
                "|uptime={} days {} hrs {} min (modulo {modulo_days} days)|raw_freq={raw_freq:.2} Hz",
                minutes / 60 / 24,
                (minutes / 60) % 24,
                minutes % 60
            )?;
        }
        EventKind::HostChange(n) | EventKind::IpSharing(n) => write_nat(n, out)?,
        EventKind::Http(h) => write_http(db, h, out)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formatting() {
        // 2022-10-28 09:46:19 UTC, as printed by `TZ=UTC p0f` for a capture packet.
        let mut s = String::new();
        let _ = write_time(1_666_950_379, &mut s);
        assert_eq!(s, "2022/10/28 09:46:19");
        s.clear();
        let _ = write_time(0, &mut s);
        assert_eq!(s, "1970/01/01 00:00:00");
        s.clear();
        let _ = write_time(951_782_400, &mut s); // leap day
        assert_eq!(s, "2000/02/29 00:00:00");
    }

    /// The digits put in place agree with `fmt`'s padded fields over the whole range they
    /// serve (years 0 to 9999), and later years still print in full.
    #[test]
    fn time_digits_agree_with_fmt() {
        let reference = |secs: i64| {
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let rem = secs.rem_euclid(86_400);
            format!(
                "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
                rem / 3600,
                (rem / 60) % 60,
                rem % 60
            )
        };
        let last_9999 = 253_402_300_799; // 9999-12-31 23:59:59
        let mut cases = vec![
            -62_167_219_200,
            0,
            59,
            3_599,
            86_399,
            last_9999,
            last_9999 + 1,
        ];
        // A spread of instants, none of them special.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x % 300_000_000_000) as i64);
        }
        for secs in cases {
            let mut s = String::new();
            let _ = write_time(secs, &mut s);
            assert_eq!(s, reference(secs), "{secs}");
        }
        let mut s = String::new();
        let _ = write_time(last_9999 + 1, &mut s);
        assert_eq!(s, "10000/01/01 00:00:00");
    }

    #[test]
    fn ipv4_addresses_render_like_std() {
        let mut a = [0u8; 16];
        for octets in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [9, 10, 99, 100],
            [198, 51, 100, 7],
        ] {
            a[..4].copy_from_slice(&octets);
            let mut s = String::new();
            let _ = write_addr(4, &a, &mut s);
            assert_eq!(s, std::net::Ipv4Addr::from(octets).to_string());
        }
    }

    /// `params=` as p0f's `snprintf` pieces would print it, for every flag combination and
    /// every TOS value, against the words written in place.
    #[test]
    fn params_agree_with_fmt() {
        for bits in 0..16u8 {
            for tos in 0..=u8::MAX {
                for has_match in [false, true] {
                    let p = Params {
                        generic: bits & 1 != 0,
                        fuzzy: bits & 2 != 0,
                        random_ttl: bits & 4 != 0,
                        excess_dist: bits & 8 != 0,
                        tos,
                    };
                    let mut words = Vec::new();
                    if has_match && p.generic {
                        words.push("generic".to_string());
                    }
                    if has_match && p.fuzzy {
                        words.push("fuzzy".to_string());
                    }
                    if has_match && p.random_ttl {
                        words.push("random_ttl".to_string());
                    }
                    if p.excess_dist {
                        words.push("excess_dist".to_string());
                    }
                    if tos != 0 {
                        words.push(format!("tos:0x{tos:02x}"));
                    }
                    let want = if words.is_empty() {
                        "none".to_string()
                    } else {
                        words.join(" ")
                    };
                    let mut line = Vec::new();
                    let _ = write_params(&p, has_match, &mut Bytes(&mut line));
                    assert_eq!(String::from_utf8(line).unwrap(), want, "{p:?} {has_match}");
                }
            }
        }
    }

    #[test]
    fn hex_digits_agree_with_fmt() {
        for v in 0..=u16::MAX {
            let mut s = String::new();
            let _ = write_hex(v, &mut s);
            assert_eq!(s, format!("{v:x}"));
        }
    }

    #[test]
    fn address_formatting() {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut s = String::new();
        let _ = write_addr(4, &a, &mut s);
        assert_eq!(s, "10.0.0.1");
        let v6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        s.clear();
        let _ = write_addr(6, &v6, &mut s);
        // p0f does not compress zero groups.
        assert_eq!(s, "2001:db8:0:0:0:0:0:1");
    }
}
