//! No module of any workspace crate imports, directly or through others, from a module that
//! imports from it (issue 21, item 5): each module can then be read and tested on top of the
//! ones it uses, and data flows one way. The graph is read from the source by
//! [`testkit::modgraph`]; `cargo run -p testkit --bin module-graph -- --edges` lists it.

use testkit::modgraph::{crate_graph, cycles, display, workspace_crates};

/// Cycles tolerated for a while (work that removes them is under way on a branch):
/// `(crate root, modules of the cycle as printed, sorted)`. Empty since issue 21's branches
/// landed; an entry that no longer matches a cycle fails the test, so the list only shrinks.
const ALLOWED: &[(&str, &[&str])] = &[];

#[test]
fn no_module_import_cycles() {
    let root = testkit::workspace_root();
    let crates = workspace_crates(&root).expect("the workspace manifest lists its members");
    let mut unexpected = Vec::new();
    let mut seen_allowed = Vec::new();
    for krate in &crates {
        let name = krate
            .strip_prefix(&root)
            .unwrap_or(krate)
            .display()
            .to_string();
        let graph = crate_graph(krate).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        for cycle in cycles(&graph) {
            let mut members: Vec<String> = cycle[..cycle.len() - 1]
                .iter()
                .map(|m| display(m))
                .collect();
            members.sort();
            let allowed = ALLOWED.iter().position(|(c, m)| {
                *c == name && m.iter().map(|s| s.to_string()).eq(members.iter().cloned())
            });
            match allowed {
                Some(i) => seen_allowed.push(i),
                None => unexpected.push(format!(
                    "{name}: {}",
                    cycle
                        .iter()
                        .map(|m| display(m))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                )),
            }
        }
    }
    let stale: Vec<String> = (0..ALLOWED.len())
        .filter(|i| !seen_allowed.contains(i))
        .map(|i| format!("{}: {}", ALLOWED[i].0, ALLOWED[i].1.join(" <-> ")))
        .collect();
    assert!(
        unexpected.is_empty(),
        "module import cycles (break each by moving what both sides need to one of them or \
         below both):\n  {}",
        unexpected.join("\n  ")
    );
    assert!(
        stale.is_empty(),
        "allowed cycles that are gone: remove them from ALLOWED:\n  {}",
        stale.join("\n  ")
    );
}
