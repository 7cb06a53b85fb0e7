//! `analyze --db` on the real binary: a stack of databases read in order as one, the bundled
//! files named `builtin:p0f.fp` / `builtin:synscope.fp`, the default database of
//! `--format p0f` (p0f.fp alone), and bad databases (`error: FILE:LINE: reason`, exit 2).

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{analyze, fixture_captures};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn p0f_lines(extra: &[&OsStr], input: &Path) -> String {
    let mut args = vec![os("--quiet"), os("--format"), os("p0f")];
    args.extend_from_slice(extra);
    args.push(input.as_os_str());
    let o = analyze(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// A bundled capture with a SYN p0f does not know (`os=???`), and that line's raw signature.
fn capture_with_unknown_syn() -> (PathBuf, String) {
    for cap in fixture_captures() {
        let lines = p0f_lines(&[], &cap);
        let raw = lines
            .lines()
            .filter(|l| l.contains("] mod=syn|") && l.contains("|os=???|"))
            .find_map(|l| l.split("|raw_sig=").nth(1));
        if let Some(raw) = raw {
            return (cap, raw.to_string());
        }
    }
    panic!("no bundled capture has an unknown SYN");
}

/// The database line of an observed raw signature: `ttl+dist` becomes the initial TTL.
fn sig_line(raw: &str) -> String {
    let mut f: Vec<String> = raw.split(':').map(str::to_string).collect();
    let (ttl, dist) = f[1].split_once('+').expect("ttl+dist");
    f[1] = (ttl.parse::<u32>().unwrap() + dist.parse::<u32>().unwrap()).to_string();
    f.join(":")
}

fn stderr_of_failure(args: &[&OsStr]) -> String {
    let o = analyze(args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    assert!(o.stdout.is_empty(), "nothing on stdout");
    stderr
}

#[test]
fn a_later_database_extends_the_earlier_ones() {
    let (cap, raw) = capture_with_unknown_syn();
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.fp");
    // No `classes =` line and no section of p0f.fp's repeated but the one it adds to: the
    // file is read in p0f.fp's parser state.
    std::fs::write(
        &extra,
        format!(
            "; test\n[tcp:request]\nlabel = s:unix:Stacked OS:test\nsig = {}\n",
            sig_line(&raw)
        ),
    )
    .unwrap();
    let stacked = p0f_lines(
        &[
            os("--db"),
            os("builtin:p0f.fp"),
            os("--db"),
            extra.as_os_str(),
        ],
        &cap,
    );
    assert!(
        stacked
            .lines()
            .any(|l| l.contains("|os=Stacked OS test|dist=") && l.ends_with(&raw)),
        "{stacked}"
    );
    // Alone it lacks p0f.fp's classes: an error naming its line.
    let err = stderr_of_failure(&[os("--db"), extra.as_os_str(), cap.as_os_str()]);
    assert_eq!(
        err.trim_end(),
        format!("error: {}:3: unknown class 'unix'", extra.display())
    );
}

#[test]
fn bundled_files_are_named_and_format_p0f_defaults_to_p0f_fp() {
    let cap = &fixture_captures()[0];
    let default = p0f_lines(&[], cap);
    let named = p0f_lines(&[os("--db"), os("builtin:p0f.fp")], cap);
    assert_eq!(default, named);
    let both = p0f_lines(
        &[
            os("--db"),
            os("builtin:p0f.fp"),
            os("--db"),
            os("builtin:synscope.fp"),
        ],
        cap,
    );
    assert!(!both.is_empty());
    let err = stderr_of_failure(&[os("--db"), os("builtin:nope.fp"), cap.as_os_str()]);
    assert!(
        err.starts_with("error: no bundled database 'builtin:nope.fp'"),
        "{err}"
    );
}

#[test]
fn a_malformed_database_names_file_and_line_and_exits_2() {
    let cap = &fixture_captures()[0];
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.fp");
    std::fs::write(
        &bad,
        "; a comment\n\n[tcp:request]\nlabel = s:unix:Linux:x\nsig = 4:64:0:*:mss*10,7:mss,sok,ts,nop,ws:df,id+:zero\n",
    )
    .unwrap();
    for extra in [
        vec![os("--db"), bad.as_os_str()],
        vec![
            os("--db"),
            os("builtin:p0f.fp"),
            os("--db"),
            bad.as_os_str(),
        ],
    ] {
        let mut args = extra.clone();
        args.push(cap.as_os_str());
        let err = stderr_of_failure(&args);
        let line = err.lines().next().unwrap_or("");
        let prefix = format!("error: {}:", bad.display());
        assert!(line.starts_with(&prefix), "{err}");
        let rest = &line[prefix.len()..];
        let (n, reason) = rest.split_once(": ").unwrap();
        // Alone, the label's class is unknown (line 4); after p0f.fp, the signature's
        // quirks are (line 5).
        assert!(n == "4" || n == "5", "{line}");
        assert!(!reason.is_empty());
    }
    let missing = dir.path().join("missing.fp");
    let err = stderr_of_failure(&[os("--db"), missing.as_os_str(), cap.as_os_str()]);
    assert!(
        err.contains("missing.fp") && err.contains("No such file"),
        "{err}"
    );
}
