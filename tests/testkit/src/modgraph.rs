//! The module import graph of a crate, and its cycles.
//!
//! A module that imports from a module that imports from it cannot be read, tested or moved
//! on its own, and data stops flowing one way (issue 21, item 5). This reads a crate's source
//! as text, the way a reader would: which modules there are (`mod x;` declarations, from the
//! crate root), and which other module each one names in a path (`use crate::a::b`,
//! `super::x`, `self::x`, a child's name, `crate::a::f()` in code). Every file is one node;
//! inline modules (`mod tests { … }`) belong to their file's node, with `super` and `self`
//! resolved inside them as rustc does.
//!
//! A name that a module only re-exports (`pub use inner::Name;`) is followed to where it is
//! defined, so a facade (`report::Totals` re-exporting `report::totals::Totals`) is no edge of
//! its own: `pub use` lines are not edges from the module that holds them. Paths inside
//! `#[cfg(test)]` items count like any other: a test that needs the module that depends on it
//! is the same knot.
//!
//! It is text, not rustc: macros that build paths, `#[path]` attributes and glob re-exports are
//! not followed. That is enough for this workspace, whose modules use plain paths.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path from its crate root (`["report", "agg"]`; the root is `[]`).
pub type ModPath = Vec<String>;

/// The graph of one crate.
#[derive(Debug, Default)]
pub struct Graph {
    /// Every file module, with its file.
    pub modules: BTreeMap<ModPath, PathBuf>,
    /// `from -> to`: `from` names something of `to` (never `from == to`).
    pub edges: BTreeSet<(ModPath, ModPath)>,
}

/// Why a crate could not be read.
#[derive(Debug)]
pub struct ReadError(pub String);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A module's name as people write it: `report::agg`, `crate` for the root.
pub fn display(path: &[String]) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        path.join("::")
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Semi,
    Comma,
    Star,
    Hash,
    Bang,
    LBracket,
    RBracket,
    Other,
}

/// The tokens of Rust source that matter for paths; comments, strings and chars are dropped.
fn tokens(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'r'
            && matches!(b.get(i + 1), Some(b'#' | b'"'))
            && raw_string_end(b, i).is_some()
        {
            i = raw_string_end(b, i).unwrap_or(b.len());
        } else if c == b'"' || (c == b'b' && b.get(i + 1) == Some(&b'"')) {
            i += if c == b'b' { 2 } else { 1 };
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(Tok::Other);
        } else if c == b'\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): a literal closes
            // with a quote within a few bytes, a lifetime does not.
            let rest = &b[i + 1..];
            let close = if rest.first() == Some(&b'\\') {
                rest.iter().skip(2).position(|&x| x == b'\'').map(|p| p + 2)
            } else {
                (1..=4).find(|&k| rest.get(k) == Some(&b'\''))
            };
            match close {
                Some(k) if k <= 10 => i += k + 2,
                _ => i += 1,
            }
            out.push(Tok::Other);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_string()));
        } else {
            out.push(match c {
                b':' if b.get(i + 1) == Some(&b':') => {
                    i += 1;
                    Tok::PathSep
                }
                b'{' => Tok::Open,
                b'}' => Tok::Close,
                b';' => Tok::Semi,
                b',' => Tok::Comma,
                b'*' => Tok::Star,
                b'#' => Tok::Hash,
                b'!' => Tok::Bang,
                b'[' => Tok::LBracket,
                b']' => Tok::RBracket,
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    out
}

/// The end of a raw string starting at `i` (`r"…"`, `r#"…"#`), if it is one.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let mut hashes = 0;
    while b.get(j) == Some(&b'#') {
        hashes += 1;
        j += 1;
    }
    if b.get(j) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = j + 1;
    b[body..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map(|p| body + p + close.len())
}

/// One path a file names, with the inline module it sits in.
#[derive(Debug, PartialEq)]
struct Named {
    /// Inline modules around it (`["tests"]`).
    inline: Vec<String>,
    segments: Vec<String>,
    /// From a `pub use`: a re-export, not a use.
    reexport: bool,
    /// The name a `use` binds (`as` alias or last segment), for later relative paths.
    binds: Option<String>,
}

/// What one file declares and names.
#[derive(Debug, Default)]
struct FileScan {
    /// `mod x;` at the file's top level.
    children: Vec<String>,
    paths: Vec<Named>,
}

/// Expands a use tree at `toks[*i]` into full paths (prefix + each leaf), with the bound name.
fn use_tree(
    toks: &[Tok],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(w)) => {
                *i += 1;
                if w == "self"
                    && !path.is_empty()
                    && matches!(toks.get(*i), Some(Tok::Comma | Tok::Close | Tok::Ident(_)))
                {
                    // `a::{self}`: the module `a` itself.
                } else {
                    path.push(w.clone());
                }
                match toks.get(*i) {
                    Some(Tok::PathSep) => *i += 1,
                    Some(Tok::Ident(a)) if a == "as" => {
                        let alias = match toks.get(*i + 1) {
                            Some(Tok::Ident(n)) => Some(n.clone()),
                            _ => None,
                        };
                        *i += 2;
                        out.push((path, alias));
                        return;
                    }
                    _ => {
                        let last = path.last().cloned();
                        out.push((path, last));
                        return;
                    }
                }
            }
            Some(Tok::Open) => {
                *i += 1;
                while !matches!(toks.get(*i), Some(Tok::Close) | None) {
                    let before = *i;
                    use_tree(toks, i, &path, out);
                    if toks.get(*i) == Some(&Tok::Comma) || *i == before {
                        // Past the comma, or past a token no use tree starts with.
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            Some(Tok::Star) => {
                *i += 1;
                out.push((path, None));
                return;
            }
            _ => return,
        }
    }
}

fn scan(src: &str) -> FileScan {
    let toks = tokens(src);
    let mut scan = FileScan::default();
    // Inline modules open at this point, with the brace depth at which each was opened.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_inline: Option<String> = None;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Open => {
                depth += 1;
                if let Some(name) = pending_inline.take() {
                    inline.push((name, depth));
                }
                i += 1;
            }
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Hash => {
                // An attribute, `#[…]` or `#![…]`: its paths (`derive(serde::X)`) import nothing.
                let mut j = i + 1;
                if toks.get(j) == Some(&Tok::Bang) {
                    j += 1;
                }
                if toks.get(j) == Some(&Tok::LBracket) {
                    let mut brackets = 0;
                    while j < toks.len() {
                        match toks[j] {
                            Tok::LBracket => brackets += 1,
                            Tok::RBracket => brackets -= 1,
                            _ => {}
                        }
                        j += 1;
                        if brackets == 0 {
                            break;
                        }
                    }
                }
                i = j;
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    match toks.get(i + 2) {
                        Some(Tok::Semi) if inline.is_empty() => scan.children.push(name.clone()),
                        Some(Tok::Open) => pending_inline = Some(name.clone()),
                        _ => {}
                    }
                }
                i += 2;
            }
            Tok::Ident(w) if w == "use" => {
                let reexport = i > 0 && matches!(&toks[i - 1], Tok::Ident(p) if p == "pub")
                    || i > 3 && matches!(&toks[i - 4], Tok::Ident(p) if p == "pub");
                i += 1;
                let mut leaves = Vec::new();
                use_tree(&toks, &mut i, &[], &mut leaves);
                for (segments, binds) in leaves {
                    scan.paths.push(Named {
                        inline: inline.iter().map(|(n, _)| n.clone()).collect(),
                        segments,
                        reexport,
                        binds,
                    });
                }
            }
            Tok::Ident(w) => {
                let mut segments = vec![w.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::PathSep) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(n)) => {
                            segments.push(n.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                let preceded_by_sep = i > 0 && toks[i - 1] == Tok::PathSep;
                if segments.len() > 1 && !preceded_by_sep {
                    scan.paths.push(Named {
                        inline: inline.iter().map(|(n, _)| n.clone()).collect(),
                        segments,
                        reexport: false,
                        binds: None,
                    });
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    scan
}

/// The file of child module `name` of the module in `file` (`mod.rs`, `lib.rs`, `main.rs`
/// own their folder; `a.rs` owns `a/`).
fn child_file(file: &Path, name: &str) -> Option<PathBuf> {
    let dir = file.parent()?;
    let stem = file.file_stem()?.to_str()?;
    let base = if matches!(stem, "mod" | "lib" | "main") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    [
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The graph of the crate whose root file is `root` (`src/lib.rs`, `src/main.rs`).
pub fn crate_graph(root: &Path) -> Result<Graph, ReadError> {
    let mut graph = Graph::default();
    let mut scans: BTreeMap<ModPath, FileScan> = BTreeMap::new();
    let mut todo = vec![(ModPath::new(), root.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let src =
            fs::read_to_string(&file).map_err(|e| ReadError(format!("{}: {e}", file.display())))?;
        let s = scan(&src);
        for child in &s.children {
            // A `mod x;` without a file is under a `#[cfg]` for another target: nothing to read.
            if let Some(f) = child_file(&file, child) {
                let mut p = path.clone();
                p.push(child.clone());
                todo.push((p, f));
            }
        }
        graph.modules.insert(path.clone(), file);
        scans.insert(path, s);
    }
    // Names each module binds with `use`, to their absolute paths.
    let mut bound: BTreeMap<(ModPath, Vec<String>), BTreeMap<String, Vec<String>>> =
        BTreeMap::new();
    for (module, s) in &scans {
        for n in &s.paths {
            if let (Some(name), Some(abs)) = (&n.binds, absolute(&graph, module, n, None)) {
                bound
                    .entry((module.clone(), n.inline.clone()))
                    .or_default()
                    .insert(name.clone(), abs);
            }
        }
    }
    // Re-exports: (module, name) -> absolute path of what it re-exports.
    let mut reexports: BTreeMap<(ModPath, String), Vec<String>> = BTreeMap::new();
    for (module, s) in &scans {
        for n in s.paths.iter().filter(|n| n.reexport && n.inline.is_empty()) {
            if let (Some(name), Some(abs)) = (&n.binds, absolute(&graph, module, n, None)) {
                reexports.insert((module.clone(), name.clone()), abs);
            }
        }
    }
    for (module, s) in &scans {
        for n in s.paths.iter().filter(|n| !n.reexport) {
            let names = bound.get(&(module.clone(), n.inline.clone()));
            let Some(abs) = absolute(&graph, module, n, names) else {
                continue;
            };
            let target = defining_module(&graph, &reexports, abs);
            if &target != module {
                graph.edges.insert((module.clone(), target));
            }
        }
    }
    Ok(graph)
}

/// The absolute path (from the crate root) that `n`, named in `module`, stands for; `None`
/// for another crate's path or a local name.
fn absolute(
    graph: &Graph,
    module: &ModPath,
    n: &Named,
    names: Option<&BTreeMap<String, Vec<String>>>,
) -> Option<Vec<String>> {
    let mut here: Vec<String> = module.iter().chain(&n.inline).cloned().collect();
    let mut seg = n.segments.iter().peekable();
    let first = seg.peek()?.as_str();
    match first {
        "crate" => {
            seg.next();
            here.clear();
        }
        "self" => {
            seg.next();
        }
        "super" => {
            while seg.peek().is_some_and(|s| *s == "super") {
                seg.next();
                here.pop()?;
            }
        }
        _ => {
            let mut child = here.clone();
            child.push(first.to_string());
            if graph.modules.contains_key(&child) {
                // A child module by its name.
            } else if let Some(abs) = names.and_then(|m| m.get(first)) {
                seg.next();
                let mut p = abs.clone();
                p.extend(seg.cloned());
                return Some(p);
            } else {
                return None;
            }
        }
    }
    here.extend(seg.cloned());
    Some(here)
}

/// The file module an absolute path lands in, following named re-exports to their source.
fn defining_module(
    graph: &Graph,
    reexports: &BTreeMap<(ModPath, String), Vec<String>>,
    mut path: Vec<String>,
) -> ModPath {
    for _ in 0..16 {
        let mut module = path.clone();
        while !graph.modules.contains_key(&module) {
            module.pop();
        }
        let Some(next) = path.get(module.len()) else {
            return module;
        };
        match reexports.get(&(module.clone(), next.clone())) {
            Some(target) if target != &path => {
                let mut p = target.clone();
                p.extend(path[module.len() + 1..].iter().cloned());
                path = p;
            }
            _ => return module,
        }
    }
    path
}

/// The cycles of `graph`: its strongly connected components of two or more modules, each as
/// one cycle through them (`a -> b -> a`), sorted.
pub fn cycles(graph: &Graph) -> Vec<Vec<ModPath>> {
    let nodes: Vec<&ModPath> = graph.modules.keys().collect();
    let index: BTreeMap<&ModPath, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (a, b) in &graph.edges {
        if let (Some(&x), Some(&y)) = (index.get(a), index.get(b)) {
            next[x].push(y);
        }
    }
    // Reachability by depth-first search: fine for crates of tens of modules.
    let reach = |from: usize| {
        let mut seen = vec![false; nodes.len()];
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            for &y in &next[x] {
                if !seen[y] {
                    seen[y] = true;
                    stack.push(y);
                }
            }
        }
        seen
    };
    let reach: Vec<Vec<bool>> = (0..nodes.len()).map(reach).collect();
    let mut done = vec![false; nodes.len()];
    let mut out = Vec::new();
    for a in 0..nodes.len() {
        if done[a] {
            continue;
        }
        let component: Vec<usize> = (0..nodes.len())
            .filter(|&b| b != a && reach[a][b] && reach[b][a])
            .collect();
        if component.is_empty() {
            continue;
        }
        done[a] = true;
        for &b in &component {
            done[b] = true;
        }
        out.push(cycle_through(a, &next, &component));
    }
    out.into_iter()
        .map(|c| c.into_iter().map(|i| nodes[i].clone()).collect())
        .collect()
}

/// A shortest cycle from `a` back to `a` inside `component` (breadth-first).
fn cycle_through(a: usize, next: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let inside = |x: usize| x == a || component.contains(&x);
    let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([a]);
    while let Some(x) = queue.pop_front() {
        for &y in &next[x] {
            if y == a {
                let mut path = vec![a];
                let mut at = x;
                while at != a {
                    path.push(at);
                    at = parent[&at];
                }
                path[1..].reverse();
                path.push(a);
                return path;
            }
            if inside(y) && !parent.contains_key(&y) {
                parent.insert(y, x);
                queue.push_back(y);
            }
        }
    }
    vec![a, a]
}

/// The crate roots of the workspace at `root`: `src/lib.rs`, `src/main.rs` and
/// `src/bin/*.rs` of every member listed in its `Cargo.toml`.
pub fn workspace_crates(root: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let manifest = root.join("Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .map_err(|e| ReadError(format!("{}: {e}", manifest.display())))?;
    let members = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("members"))
        .and_then(|l| Some(l[l.find('[')? + 1..l.find(']')?].to_string()))
        .ok_or_else(|| {
            ReadError(format!(
                "{}: no one-line `members = [...]`",
                manifest.display()
            ))
        })?;
    let mut roots = Vec::new();
    for member in members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        let src = root.join(member).join("src");
        roots.extend(
            ["lib.rs", "main.rs"]
                .map(|f| src.join(f))
                .into_iter()
                .filter(|p| p.is_file()),
        );
        if let Ok(bins) = fs::read_dir(src.join("bin")) {
            let mut bins: Vec<PathBuf> = bins
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect();
            bins.sort();
            roots.extend(bins);
        }
    }
    if roots.is_empty() {
        return Err(ReadError(format!(
            "{}: no member has a src/lib.rs or src/main.rs",
            manifest.display()
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate in a temporary folder from `(relative path, source)` pairs.
    fn krate(files: &[(&str, &str)]) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        for (path, src) in files {
            let p = dir.0.join(path);
            fs::create_dir_all(p.parent().expect("a file in a folder")).expect("mkdir");
            fs::write(&p, src).expect("write");
        }
        let root = dir.0.join("src/lib.rs");
        (dir, root)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "modgraph-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).expect("temp dir");
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn p(s: &str) -> ModPath {
        if s == "crate" {
            vec![]
        } else {
            s.split("::").map(String::from).collect()
        }
    }

    fn names(c: &[Vec<ModPath>]) -> Vec<String> {
        c.iter()
            .map(|c| {
                c.iter()
                    .map(|m| display(m))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            })
            .collect()
    }

    #[test]
    fn finds_a_sibling_cycle_through_use_and_code_paths() {
        let (_d, root) = krate(&[
            ("src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            ("src/a.rs", "use crate::b::{self, Thing};\n"),
            // A path in code, in a string and in a comment: only the code counts.
            (
                "src/b.rs",
                "fn f() { let s = \"crate::c::X\"; /* crate::c::Y */ crate::a::g(); }\n",
            ),
            ("src/c.rs", "// use crate::a::Z;\nuse super::b::Thing;\n"),
        ]);
        let g = crate_graph(&root).expect("reads");
        assert_eq!(g.modules.len(), 4);
        assert!(g.edges.contains(&(p("a"), p("b"))));
        assert!(g.edges.contains(&(p("b"), p("a"))));
        assert!(g.edges.contains(&(p("c"), p("b"))));
        assert!(!g.edges.contains(&(p("b"), p("c"))));
        assert_eq!(names(&cycles(&g)), ["a -> b -> a"]);
    }

    #[test]
    fn reexports_lead_to_the_defining_module() {
        // `report` only re-exports `totals::Totals`: agg -> report::totals, not agg -> report.
        let (_d, root) = krate(&[
            ("src/lib.rs", "pub mod report;\n"),
            (
                "src/report/mod.rs",
                "pub mod agg;\npub mod totals;\npub use totals::Totals;\npub use agg::Agg;\n",
            ),
            (
                "src/report/agg.rs",
                "use crate::report::Totals;\npub struct Agg;\n",
            ),
            ("src/report/totals.rs", "pub struct Totals;\n"),
        ]);
        let g = crate_graph(&root).expect("reads");
        assert_eq!(
            g.edges.iter().cloned().collect::<Vec<_>>(),
            [(p("report::agg"), p("report::totals"))]
        );
        assert!(cycles(&g).is_empty());
    }

    #[test]
    fn super_inside_an_inline_module_is_the_file_itself() {
        // `use super::*` in `mod tests` names the file's own module; `super::super` its parent.
        let (_d, root) = krate(&[
            ("src/lib.rs", "pub mod a;\npub mod b;\npub fn f() {}\n"),
            (
                "src/a.rs",
                "#[cfg(test)]\nmod tests {\n    use super::*;\n    fn t() { super::super::b::g(); }\n}\n",
            ),
            (
                "src/b.rs",
                "pub fn g() { crate::f(); let c = 'x'; let l: &'static str = \"}\"; }\n",
            ),
        ]);
        let g = crate_graph(&root).expect("reads");
        assert_eq!(
            g.edges.iter().cloned().collect::<Vec<_>>(),
            [(p("a"), p("b")), (p("b"), p("crate"))]
        );
        assert!(cycles(&g).is_empty());
    }

    #[test]
    fn a_module_bound_by_use_resolves_its_children_and_cycles_span_levels() {
        let (_d, root) = krate(&[
            ("src/lib.rs", "mod x;\nmod y;\n"),
            ("src/x/mod.rs", "pub mod inner;\n"),
            (
                "src/x/inner.rs",
                "use crate::y as why;\nfn f() { why::h(); }\n",
            ),
            ("src/y.rs", "use crate::x;\nfn h() { x::inner::f(); }\n"),
        ]);
        let g = crate_graph(&root).expect("reads");
        assert!(g.edges.contains(&(p("y"), p("x::inner"))));
        assert!(g.edges.contains(&(p("x::inner"), p("y"))));
        assert_eq!(names(&cycles(&g)), ["x::inner -> y -> x::inner"]);
    }

    #[test]
    fn this_workspace_lists_every_member() {
        let roots = workspace_crates(&crate::workspace_root()).expect("reads Cargo.toml");
        for want in [
            "formats/src/lib.rs",
            "analyze/src/lib.rs",
            "analyze/src/main.rs",
            "analyze/p0f/src/lib.rs",
            "capture/src/lib.rs",
            "ebpf/src/main.rs",
            "formats/record/src/lib.rs",
        ] {
            assert!(
                roots.iter().any(|r| r.ends_with(want)),
                "{want} missing from {roots:?}"
            );
        }
    }
}
