//! Lists the module import graph of every crate in the workspace and its cycles
//! ([`testkit::modgraph`]): `cargo run -p testkit --bin module-graph [--edges]`.
//! Exits 1 when a crate has a cycle; the test `module_cycles` checks the same, with the
//! cycles being removed elsewhere allowed.

use std::process::ExitCode;

use testkit::modgraph::{crate_graph, cycles, display, workspace_crates};

fn main() -> ExitCode {
    let edges = std::env::args().any(|a| a == "--edges");
    let root = testkit::workspace_root();
    let crates = match workspace_crates(&root) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut found = false;
    for krate in crates {
        let name = krate
            .strip_prefix(&root)
            .unwrap_or(&krate)
            .display()
            .to_string();
        let graph = match crate_graph(&krate) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        println!(
            "{name}: {} modules, {} edges",
            graph.modules.len(),
            graph.edges.len()
        );
        if edges {
            for (a, b) in &graph.edges {
                println!("  {} -> {}", display(a), display(b));
            }
        }
        for cycle in cycles(&graph) {
            found = true;
            let names: Vec<String> = cycle.iter().map(|m| display(m)).collect();
            println!("  CYCLE {}", names.join(" -> "));
        }
    }
    if found {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
