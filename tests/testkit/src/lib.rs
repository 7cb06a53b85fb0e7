//! Test support shared by every synscope crate's tests.
//!
//! Some tests need something from outside the workspace: p0f as the oracle, Python with pyarrow
//! and polars, the shared capture corpus, root and the eBPF object. Where that is missing, a test
//! must neither fail (a fresh clone's `cargo test` has to pass) nor pass silently (a user must see
//! what was not covered). This crate decides both in one place:
//!
//! - [`Need`] names one such requirement, how to check it, and the `SYNSCOPE_REQUIRE_*` switch
//!   that turns "cannot run here" into a failure (CI sets them all).
//! - [`main!`] replaces libtest in a test file (`harness = false`, through `libtest-mimic`, which
//!   prints libtest's own lines): a test whose needs are not met is reported
//!   `ignored (needs …)` in cargo's result lines and counted in its `ignored` total, and one
//!   closing line names everything skipped and why.
//! - [`shared_pcaps`] is the only place that knows where the shared corpus lives.
//!
//! Unit tests inside a library cannot use a custom harness; the few of those that sweep the
//! shared corpus are `#[ignore = "needs the shared corpus …"]` and CI runs them with `--ignored`
//! (through [`require_shared_pcaps`], which fails rather than skips).

pub mod modgraph;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// The workspace root: this crate lives in `tests/testkit/`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The variable naming the shared corpus folder explicitly.
pub const PCAPS_VAR: &str = "SYNSCOPE_PCAPS";

/// The shared capture corpus: `$SYNSCOPE_PCAPS`, else `../shared/pcaps` beside the workspace,
/// when that folder exists.
pub fn shared_pcaps() -> Option<PathBuf> {
    let dir = std::env::var_os(PCAPS_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/pcaps"));
    dir.is_dir().then_some(dir)
}

/// The shared corpus for a test that was asked for explicitly (an `#[ignore]`d corpus sweep
/// run with `--ignored`): panics when it is absent, since running it was a request.
pub fn require_shared_pcaps() -> PathBuf {
    shared_pcaps().unwrap_or_else(|| panic!("{}", SHARED_PCAPS.missing()))
}

/// The p0f binary, if one that answers `-h` as p0f is installed.
pub fn p0f() -> Option<PathBuf> {
    [
        "p0f",
        "/usr/sbin/p0f",
        "/usr/local/sbin/p0f",
        "/usr/bin/p0f",
    ]
    .into_iter()
    .find(|cand| {
        Command::new(cand)
            .arg("-h")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("p0f"))
    })
    .map(PathBuf::from)
}

/// A python3 that imports every module in `modules`, if there is one.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Command::new("python3")
        .args(["-c", &code])
        .output()
        .is_ok_and(|o| o.status.success())
        .then(|| PathBuf::from("python3"))
}

/// `Ok` when `program arg` can be started and exits 0 (a tool's version check).
pub fn runs(program: &str, arg: &str) -> Result<(), String> {
    match Command::new(program).arg(arg).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("`{program} {arg}` exited with {}", o.status)),
        Err(e) => Err(format!("{program}: {e}")),
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // `Uid:` lists the real, effective, saved and filesystem ids (proc(5)).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Something a test needs from outside the workspace.
pub struct Need {
    /// What is needed, as the user would install or provide it.
    pub what: &'static str,
    /// The `SYNSCOPE_REQUIRE_*` variable that, set to `1`, makes its absence a failure.
    pub switch: &'static str,
    /// `Err(why)` when it is not available here.
    check: fn() -> Result<(), String>,
    checked: OnceLock<Result<(), String>>,
}

impl Need {
    /// A requirement checked by `check` (once per test binary).
    pub const fn new(
        what: &'static str,
        switch: &'static str,
        check: fn() -> Result<(), String>,
    ) -> Need {
        Need {
            what,
            switch,
            check,
            checked: OnceLock::new(),
        }
    }

    /// `Err(why)` when the requirement is not met here.
    pub fn available(&self) -> Result<(), &str> {
        self.checked
            .get_or_init(self.check)
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }

    /// The sentence a skip or failure prints.
    pub fn missing(&self) -> String {
        let why = self.available().err().unwrap_or("available");
        format!("needs {}: {why}", self.what)
    }
}

/// p0f 3.09b, the oracle for the differential tests.
pub static P0F: Need = Need::new(
    "p0f 3.09b on PATH (apt-get install p0f)",
    "SYNSCOPE_REQUIRE_ORACLE",
    || p0f().map(|_| ()).ok_or_else(|| "p0f not found".into()),
);

/// Python 3 with pyarrow and polars, the notebook users' readers.
pub static PYTHON: Need = Need::new(
    "python3 with pyarrow and polars (pip install -r tests/python/requirements.txt)",
    "SYNSCOPE_REQUIRE_ORACLE",
    || {
        python_with(&["pyarrow", "polars"])
            .map(|_| ())
            .ok_or_else(|| "python3 cannot import pyarrow and polars".into())
    },
);

/// The shared capture corpus.
pub static SHARED_PCAPS: Need = Need::new(
    "the shared capture corpus ($SYNSCOPE_PCAPS or ../shared/pcaps beside the workspace)",
    "SYNSCOPE_REQUIRE_SHARED",
    || {
        shared_pcaps()
            .map(|_| ())
            .ok_or_else(|| "no such folder".into())
    },
);

/// Root, for network namespaces, BPF and dropping privileges.
pub static ROOT: Need = Need::new("root", "SYNSCOPE_REQUIRE_LIVE", || {
    if is_root() {
        Ok(())
    } else {
        Err("not running as root".into())
    }
});

/// One test of a [`main!`] harness.
pub struct Test {
    name: &'static str,
    body: fn(),
    needs: Vec<&'static Need>,
}

impl Test {
    /// Test `body` (it fails by panicking, as a `#[test]` does), needing `needs`.
    pub fn new(name: &'static str, body: fn(), needs: Vec<&'static Need>) -> Test {
        Test { name, body, needs }
    }
}

/// What to do with a test, given its needs.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Run,
    /// Not here: ignored, with the reason.
    Skip {
        reason: String,
        switch: &'static str,
    },
    /// Not here, and the switch forbids skipping.
    Fail(String),
}

/// The verdict for `needs`, where `required(switch)` says whether a switch is set.
fn verdict(needs: &[&Need], required: impl Fn(&str) -> bool) -> Verdict {
    let Some(need) = needs.iter().find(|n| n.available().is_err()) else {
        return Verdict::Run;
    };
    let reason = need.missing();
    if required(need.switch) {
        Verdict::Fail(format!("{reason}, and {}=1 forbids skipping", need.switch))
    } else {
        Verdict::Skip {
            reason,
            switch: need.switch,
        }
    }
}

/// Whether `switch` is set to `1` in the environment.
fn switch_set(switch: &str) -> bool {
    std::env::var(switch).is_ok_and(|v| v == "1")
}

/// What [`run`] could not run, for its closing line.
static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Runs `tests` with libtest's command line and output. A test whose needs are not met is
/// ignored with the reason (or fails, when a need's switch is set); after the summary, one
/// line lists what was skipped.
pub fn run(tests: Vec<Test>) -> ExitCode {
    let args = Arguments::from_args();
    let trials = tests
        .into_iter()
        .map(|t| {
            let Test { name, body, needs } = t;
            Trial::ignorable_test(name, move || match verdict(&needs, switch_set) {
                Verdict::Run => {
                    body();
                    Ok(Completion::Completed)
                }
                Verdict::Fail(why) => Err(Failed::from(why)),
                Verdict::Skip { reason, switch } => {
                    if let Ok(mut s) = SKIPPED.lock() {
                        s.push(format!("{name}: {reason}; {switch}=1 makes this a failure"));
                    }
                    Ok(Completion::ignored_with(reason))
                }
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let mut skipped = SKIPPED.lock().map(|s| s.clone()).unwrap_or_default();
    if !skipped.is_empty() {
        skipped.sort();
        println!(
            "SKIPPED {} test(s) that cannot run here (shown as ignored above):",
            skipped.len()
        );
        for s in &skipped {
            println!("  {s}");
        }
        println!();
    }
    conclusion.exit_code()
}

/// The `main` of a test file with `harness = false`: each entry is a test function, optionally
/// followed by `needs [..]` and the [`Need`]s it cannot run without.
///
/// ```text
/// testkit::main! {
///     parses_the_header,
///     matches_p0f needs [testkit::P0F, testkit::SHARED_PCAPS],
/// }
/// ```
#[macro_export]
macro_rules! main {
    ($($test:ident $(needs [$($need:expr),+ $(,)?])?),* $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            $crate::run(vec![
                $($crate::Test::new(
                    stringify!($test),
                    $test,
                    vec![$($(&$need),+)?],
                )),*
            ])
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    static NEVER: Need = Need::new("a thing nobody has", "SYNSCOPE_REQUIRE_NOTHING", || {
        Err("absent by construction".into())
    });
    static ALWAYS: Need = Need::new("a thing everybody has", "SYNSCOPE_REQUIRE_NOTHING", || {
        Ok(())
    });

    #[test]
    fn a_missing_need_says_what_and_why() {
        assert_eq!(
            NEVER.missing(),
            "needs a thing nobody has: absent by construction"
        );
        assert!(NEVER.available().is_err());
        assert!(ALWAYS.available().is_ok());
    }

    #[test]
    fn a_test_runs_skips_or_fails_by_its_needs_and_switches() {
        let none = |_: &str| false;
        let all = |_: &str| true;
        assert_eq!(verdict(&[], none), Verdict::Run);
        assert_eq!(verdict(&[&ALWAYS], all), Verdict::Run);
        assert_eq!(
            verdict(&[&ALWAYS, &NEVER], none),
            Verdict::Skip {
                reason: "needs a thing nobody has: absent by construction".into(),
                switch: "SYNSCOPE_REQUIRE_NOTHING",
            }
        );
        assert_eq!(
            verdict(&[&NEVER], |s| s == "SYNSCOPE_REQUIRE_NOTHING"),
            Verdict::Fail(
                "needs a thing nobody has: absent by construction, and \
                 SYNSCOPE_REQUIRE_NOTHING=1 forbids skipping"
                    .into()
            )
        );
    }

    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml"))
            .expect("workspace Cargo.toml");
        assert!(manifest.contains("[workspace]"));
    }
}
