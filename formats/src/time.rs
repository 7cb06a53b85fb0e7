//! Times as people type them and as the partitioned tree names them.
//!
//! - [`parse_duration`]: `10s`, `15m`, `7d`, `1h30m`, `250ms`; a plain number is seconds
//!   (`0.5`), so every existing command line keeps its meaning. jiff's `SignedDuration`
//!   refuses days (a calendar unit for it) and plain numbers, and humantime is unmaintained
//!   (RUSTSEC-2026-0542), so this small grammar is ours.
//! - [`parse_rfc3339`]: `2026-12-06T08:00:00Z` (or with `+02:00`, fractions, a space for `T`).
//! - [`Civil`]: ns since the Unix epoch <-> UTC date and hour, for partition names
//!   (`date=2026-12-06/hour=08`) and file names (`20261206T080000Z`).

use std::time::Duration;

const NS_PER_SEC: u64 = 1_000_000_000;
/// ns in one hour.
pub const NS_PER_HOUR: u64 = 3600 * NS_PER_SEC;
/// ns in one day.
pub const NS_PER_DAY: u64 = 24 * NS_PER_HOUR;

/// Parses a duration: one or more `NUMBER UNIT` pairs (`1h30m`, spaces allowed between them),
/// units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`, `w` (and their long forms: `sec`, `secs`,
/// `second(s)`, `min(s)`, `minute(s)`, `hour(s)`, `day(s)`, `week(s)`), or a plain number
/// of seconds. Numbers may have a fraction (`1.5h`). Errors say what was wrong in words
/// meant for a command line.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{text:?}: not a duration (negative or too large)"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| {
            format!("{text:?}: expected a number (like 10s, 15m, 7d, 1h30m or plain seconds)")
        })?;
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = unit_seconds(unit).ok_or_else(|| {
            format!("{text:?}: unknown unit {unit:?} (use ms, s, m, h, d or w; plain numbers are seconds)")
        })?;
        total += value * secs;
        rest = tail.trim_start();
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("{text:?}: duration too large"))
}

fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" | "nsec" => 1e-9,
        "us" | "usec" | "µs" => 1e-6,
        "ms" | "msec" => 1e-3,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ => return None,
    })
}

/// A UTC calendar date and time of day, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// The UTC date and time of `ns` since the Unix epoch.
    pub fn from_ns(ns: u64) -> Civil {
        let secs = ns / NS_PER_SEC;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days as i64);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// ns since the Unix epoch (`None` before 1970 or past `u64`).
    pub fn to_ns(&self) -> Option<u64> {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(secs).ok()?.checked_mul(NS_PER_SEC)
    }

    /// `YYYY-MM-DD`, the `date=` partition value.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `YYYYMMDDTHHMMSSZ`, the start time in file names (sorts as time does).
    pub fn compact(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) -> days since 1970-01-01 (inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DD` (a `date=` partition value) into ns at that day's midnight, UTC.
pub fn parse_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i64 = s.get(0..4)?.parse().ok()?;
    let month: u32 = s.get(5..7)?.parse().ok()?;
    let day: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Civil {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
    }
    .to_ns()
}

/// Parses an RFC 3339 time (`2026-12-06T08:00:00Z`, `2026-12-06T10:00:00.5+02:00`; `t`, `z`
/// and a space instead of `T` accepted) into ns since the Unix epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let midnight = parse_date(s.get(..10)?)?;
    let rest = s.get(10..)?;
    if !rest.starts_with(['T', 't', ' ']) {
        return None;
    }
    let rest = &rest[1..];
    let field = |from: usize| -> Option<u64> {
        let t = rest.get(from..from + 2)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (h, m, sec) = (field(0)?, field(3)?, field(6)?);
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut tail = rest.get(8..)?;
    let mut frac_ns = 0u64;
    if let Some(f) = tail.strip_prefix('.') {
        let digits = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        if digits == 0 {
            return None;
        }
        let d = &f[..digits.min(9)];
        frac_ns = d.parse::<u64>().ok()? * 10u64.pow(9 - d.len() as u32);
        tail = &f[digits..];
    }
    let offset_s: i64 = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = tail.get(1..3)?.parse().ok()?;
            let om: i64 = tail.get(4..6)?.parse().ok()?;
            if tail.len() != 6 || tail.get(3..4)? != ":" {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let local = midnight + (h * 3600 + m * 60 + sec) * NS_PER_SEC + frac_ns;
    u64::try_from(i128::from(local) - i128::from(offset_s) * i128::from(NS_PER_SEC)).ok()
}

/// A time given on a command line: RFC 3339, or a duration (`2h`, `7d`, plain seconds)
/// meaning that long before `now_ns`.
pub fn parse_time_or_ago(s: &str, now_ns: u64) -> Result<u64, String> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    let ago = parse_duration(s).map_err(|_| {
        format!("{s:?}: not a time (use RFC 3339 like 2026-12-06T08:00:00Z, or an age like 2h)")
    })?;
    Ok(now_ns.saturating_sub(u64::try_from(ago.as_nanos()).unwrap_or(u64::MAX)))
}

/// Now, as ns since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(s).unwrap();
        assert_eq!(d("10s"), Duration::from_secs(10));
        assert_eq!(d("10"), Duration::from_secs(10));
        assert_eq!(d("0.5"), Duration::from_millis(500));
        assert_eq!(d("15m"), Duration::from_secs(900));
        assert_eq!(d("7d"), Duration::from_secs(7 * 86_400));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1h 30min"), Duration::from_secs(5400));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("2w"), Duration::from_secs(14 * 86_400));
        assert_eq!(d("0s"), Duration::ZERO);
        for bad in ["", "s", "10x", "-5", "ten", "1..5s", "5 m m"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) || bad.is_empty(),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn civil_round_trips() {
        // 2024-02-29T23:59:59Z (a leap day) and the epoch.
        let c = Civil::from_ns(1_709_251_199 * NS_PER_SEC);
        assert_eq!((c.year, c.month, c.day, c.hour), (2024, 2, 29, 23));
        assert_eq!(c.date(), "2024-02-29");
        assert_eq!(c.compact(), "20240229T235959Z");
        assert_eq!(c.to_ns(), Some(1_709_251_199 * NS_PER_SEC));
        assert_eq!(Civil::from_ns(0).date(), "1970-01-01");
        // Every day of 400 years (a full Gregorian cycle) round-trips.
        for day in (0..146_097u64).step_by(1) {
            let ns = day * NS_PER_DAY;
            let c = Civil::from_ns(ns);
            assert_eq!(parse_date(&c.date()), Some(ns), "{c:?}");
        }
    }

    #[test]
    fn rfc3339() {
        let base = parse_date("2026-12-06").unwrap();
        assert_eq!(
            parse_rfc3339("2026-12-06T08:00:00Z"),
            Some(base + 8 * NS_PER_HOUR)
        );
        assert_eq!(
            parse_rfc3339("2026-12-06T10:00:00.25+02:00"),
            Some(base + 8 * NS_PER_HOUR + 250_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-12-06 07:30:00-00:30"),
            Some(base + 8 * NS_PER_HOUR)
        );
        for bad in [
            "2026-12-06",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-12-06T8:00:00Z",
            "2026-12-06T08:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let now = base + 10 * NS_PER_HOUR;
        assert_eq!(parse_time_or_ago("2h", now), Ok(base + 8 * NS_PER_HOUR));
        assert_eq!(
            parse_time_or_ago("2026-12-06T08:00:00Z", now),
            Ok(base + 8 * NS_PER_HOUR)
        );
        assert!(parse_time_or_ago("yesterday", now).is_err());
    }
}
