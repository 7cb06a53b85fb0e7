//! The small p0f.fp database the report's tests share, and its labels and links by name.

use p0f::{Database, LabelId, LabelType, LinkId, MatchedLabel};

/// Labels the tests name, each with a signature (p0f makes a label's record on its
/// first one), the label `s:unix:Linux:3.x` a second time (in `[tcp:response]`: the
/// same text with another id), and two MTU links.
const TEST_FP: &str = "classes = win,unix
[mtu]
label = Ethernet or modem
sig = 1500
label = DSL
sig = 1492
[tcp:request]
label = s:unix:Linux:
sig = *:64:0:*:1001,*:::0
label = s:unix:Windows:
sig = *:64:0:*:1002,*:::0
label = s:unix:Linux:3.x
sig = *:64:0:*:1003,*:::0
label = s:win:Windows:
sig = *:64:0:*:1004,*:::0
label = s:!:Linux:3.x
sys = Linux
sig = *:64:0:*:1005,*:::0
label = s:!:Linux:
sys = Linux
sig = *:64:0:*:1006,*:::0
[tcp:response]
label = s:unix:Linux:3.x
sig = *:64:0:*:1003,*:::0
";

pub(crate) fn test_db() -> &'static Database {
    static DB: std::sync::OnceLock<Database> = std::sync::OnceLock::new();
    DB.get_or_init(|| Database::from_str_named("test.fp", TEST_FP).unwrap())
}

/// The ids of [`test_db`]'s labels with these strings (class `None`: userland).
pub(crate) fn label_ids(class: Option<&str>, name: &str, flavor: Option<&str>) -> Vec<LabelId> {
    let db = test_db();
    (0..db.labels().len() as u32)
        .map(LabelId)
        .filter(|&id| {
            let n = db.label_names(id);
            (n.class, n.name, n.flavor) == (class, name, flavor)
        })
        .collect()
}

/// A match of the first of [`test_db`]'s labels with these strings.
pub(crate) fn label(
    t: LabelType,
    class: Option<&str>,
    name: &str,
    flavor: Option<&str>,
) -> MatchedLabel {
    MatchedLabel {
        label_type: t,
        id: label_ids(class, name, flavor)[0],
        generic: false,
        sig_line: 0,
    }
}

/// [`test_db`]'s link with this name.
pub(crate) fn link(name: &str) -> LinkId {
    let db = test_db();
    db.mtu_sigs()
        .iter()
        .map(|m| m.link)
        .find(|&l| db.link(l) == name)
        .unwrap()
}
