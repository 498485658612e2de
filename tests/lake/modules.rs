//! Each crate's top-level modules (`src/<module>.rs`, `src/<module>/...`) stand on floors: the crate
//! root documents them bottom up in a paragraph that starts "Floors, from the bottom up", and a module
//! may import only modules on a lower floor of its own crate (the crates themselves are layered by
//! cargo: the engine cannot name the library, the library cannot name the command line). The graph is
//! read from the source: every `crate::<module>` path (in `use` lines and in code, including
//! `use crate::{a::X, b}` groups) and every `super::` path that climbs out of a top-level module, with
//! comments, strings and character literals skipped. Paths to modules a crate re-exports from a crate
//! below it (`quantlake::table` is the engine's) are below every floor.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::repo;

/// The workspace's crates, bottom up.
const CRATES: &[&str] = &["crates/engine", "crates/quantlake", "crates/cli"];

/// Where an edge comes from: file and line.
type Evidence = BTreeMap<(String, String), Vec<String>>;

/// `text` with comments, string literals (normal, byte and raw) and character literals blanked, so
/// that only code is searched. Newlines are kept, so line numbers stay right.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| out.extend(s.iter().map(|&c| if c == b'\n' { '\n' } else { ' ' }));
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0usize, 0);
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if let Some(len) = raw_string_len(rest) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest[0] == b'"' || rest.starts_with(b"b\"") {
            let mut j = if rest[0] == b'"' { 1 } else { 2 };
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A character literal ('x', '\n', '"'), or a lifetime ('a), which stays.
            let len = if rest.get(1) == Some(&b'\\') {
                rest[2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else {
                let ch = text[i + 1..].chars().next();
                ch.map(char::len_utf8).filter(|n| rest.get(1 + n) == Some(&b'\'')).map(|n| n + 2)
            };
            let len = len.unwrap_or(1);
            if len > 1 {
                blank(&mut out, &rest[..len]);
            } else {
                out.push('\'');
            }
            i += len;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The length of a raw string literal (`r"..."`, `r#"..."#`, `br#"..."#`) starting here.
fn raw_string_len(s: &[u8]) -> Option<usize> {
    let start = if s.starts_with(b"br") {
        2
    } else if s.starts_with(b"r") {
        1
    } else {
        return None;
    };
    let hashes = s[start..].iter().take_while(|&&c| c == b'#').count();
    if s.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
    let body = start + hashes + 1;
    let end = s[body..].windows(close.len()).position(|w| w == close.as_slice())?;
    Some(body + end + close.len())
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `code[at..]` starts a path segment (not the tail of a longer identifier or path).
fn starts_path(code: &str, at: usize) -> bool {
    let before = code[..at].chars().next_back();
    !before.is_some_and(|c| is_ident(c) || c == ':')
}

fn ident_at(s: &str) -> &str {
    let s = s.trim_start();
    &s[..s.find(|c: char| !is_ident(c)).unwrap_or(s.len())]
}

/// The top-level modules one file names: `crate::m`, `crate::{m::.., n}`, and `super::` paths that
/// leave the file's top-level module. `module_path` is the file's module path (`["dq", "health"]`).
fn referenced(code: &str, module_path: &[String]) -> Vec<(String, usize)> {
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate") {
        if !starts_path(code, at) {
            continue;
        }
        let rest = code[at + 5..].trim_start();
        let Some(rest) = rest.strip_prefix("::") else { continue };
        let rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // `{a::X, b, c::{Y, Z}}`: the first identifier of each item at depth 0.
            let (mut depth, mut item_start) = (0usize, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && is_ident(c) => {
                        out.push((ident_at(&group[j..]).to_string(), line_of(at)));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push((ident_at(rest).to_string(), line_of(at)));
        }
    }
    for (at, _) in code.match_indices("super") {
        if !starts_path(code, at) {
            continue;
        }
        // Count the chain `super::super::...` and find what follows it.
        let (mut ups, mut rest) = (0, &code[at..]);
        while let Some(r) = rest.strip_prefix("super").and_then(|r| r.trim_start().strip_prefix("::")) {
            ups += 1;
            rest = r.trim_start();
        }
        if ups > 0 && ups == module_path.len() {
            out.push((ident_at(rest).to_string(), line_of(at)));
        }
    }
    out
}

/// The module path of a file under `src/`: `dq/health.rs` -> `[dq, health]`, `dq/mod.rs` -> `[dq]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_string());
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The graph between the top-level modules under `src`, with where each edge comes from.
fn module_graph(src: &Path) -> (BTreeMap<String, BTreeSet<String>>, Evidence) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let roots = ["lib.rs", "main.rs"];
    let modules: BTreeSet<String> = files
        .iter()
        .filter(|f| !roots.iter().any(|r| f.strip_prefix(src).unwrap() == Path::new(r)))
        .filter_map(|f| module_path(f.strip_prefix(src).unwrap()).first().cloned())
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    let mut evidence = Evidence::new();
    for file in &files {
        let relative = file.strip_prefix(src).unwrap();
        let path = module_path(relative);
        if path.is_empty() || roots.iter().any(|r| relative == Path::new(r)) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for (target, line) in referenced(&code, &path) {
            if target != path[0] && modules.contains(&target) {
                graph.get_mut(&path[0]).unwrap().insert(target.clone());
                evidence
                    .entry((path[0].clone(), target))
                    .or_default()
                    .push(format!("src/{}:{line}", relative.display()));
            }
        }
    }
    (graph, evidence)
}

/// One cycle of `graph`, as the modules along it (the first repeated at the end), if there is any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(n, 1);
        stack.push(n);
        for next in g.get(n).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == next).unwrap();
                    return Some(
                        stack[from..].iter().chain(std::iter::once(&next.as_str())).map(|s| s.to_string()).collect(),
                    );
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, g, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    graph
        .keys()
        .find_map(|n| if state.contains_key(n.as_str()) { None } else { visit(n, graph, &mut state, &mut Vec::new()) })
}

fn describe(cycle: &[String], evidence: &Evidence) -> String {
    let edges: Vec<String> = cycle
        .windows(2)
        .map(|w| {
            let at = evidence
                .get(&(w[0].clone(), w[1].clone()))
                .map(|v| v.iter().take(3).cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            format!("  {} -> {} ({at})", w[0], w[1])
        })
        .collect();
    format!("import circle: {}\n{}", cycle.join(" -> "), edges.join("\n"))
}

/// The source trees checked: each crate's `src/`, or `QUANTLAKE_MODULE_GRAPH_SRC` (to try the check on
/// another tree, e.g. an older commit's).
fn source_roots() -> Vec<PathBuf> {
    match std::env::var_os("QUANTLAKE_MODULE_GRAPH_SRC") {
        Some(src) => vec![PathBuf::from(src)],
        None => CRATES.iter().map(|c| repo().join(c).join("src")).collect(),
    }
}

/// The floors a crate root documents: the backquoted names of its doc sentence that starts with
/// "Floors, from the bottom up", in order (up to the sentence's full stop).
fn documented_floors(lib_rs: &str) -> Option<Vec<String>> {
    let docs: Vec<&str> = lib_rs.lines().filter_map(|l| l.trim_start().strip_prefix("//!")).map(str::trim).collect();
    let start = docs.iter().position(|l| l.starts_with("Floors, from the bottom up"))?;
    let paragraph = docs[start..].iter().take_while(|l| !l.is_empty()).copied().collect::<Vec<_>>().join(" ");
    // Outside the quotes (even pieces) the sentence ends at its first full stop.
    let mut names = Vec::new();
    for (i, piece) in paragraph.split('`').enumerate() {
        match i % 2 {
            1 => names.push(piece.to_string()),
            _ if i > 0 && piece.contains('.') => break,
            _ => {}
        }
    }
    Some(names)
}

/// Each import that does not go to a lower floor, and each module missing from the floors or floor
/// without a module, as one line each.
fn floor_violations(graph: &BTreeMap<String, BTreeSet<String>>, evidence: &Evidence, floors: &[String]) -> Vec<String> {
    let floor = |m: &str| floors.iter().position(|f| f == m);
    let mut out: Vec<String> =
        graph.keys().filter(|m| floor(m).is_none()).map(|m| format!("module {m} is on no documented floor")).collect();
    out.extend(floors.iter().filter(|f| !graph.contains_key(*f)).map(|f| format!("floor {f} names no module")));
    for (from, targets) in graph {
        for to in targets {
            if let (Some(a), Some(b)) = (floor(from), floor(to))
                && b >= a
            {
                let at = evidence
                    .get(&(from.clone(), to.clone()))
                    .map(|v| v.iter().take(3).cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                out.push(format!("{from} (floor {a}) imports {to} (floor {b}): {at}"));
            }
        }
    }
    out
}

#[test]
fn no_import_circle_between_top_level_modules() {
    for src in source_roots() {
        let (graph, evidence) = module_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{}: {}", src.display(), describe(&cycle, &evidence));
        }
    }
}

#[test]
fn every_module_imports_only_lower_floors_of_its_crate() {
    for src in source_roots() {
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let floors = documented_floors(&lib).unwrap_or_else(|| {
            panic!("{}/lib.rs documents no \"Floors, from the bottom up\" paragraph", src.display())
        });
        let (graph, evidence) = module_graph(&src);
        let violations = floor_violations(&graph, &evidence, &floors);
        assert!(violations.is_empty(), "{}: floors {}:\n{}", src.display(), floors.join(" < "), violations.join("\n"));
    }
}

#[test]
fn the_graph_reader_finds_circles_and_skips_comments_and_strings() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod a; pub mod b; pub mod c;");
    write(
        "a/mod.rs",
        "mod inner;\n// use crate::c;\nconst S: &str = \"crate::c\";\nconst R: &str = r#\"crate::c\"#;\nfn f<'x>(_: &'x str) -> char { '\"' }\n",
    );
    write("a/inner.rs", "use crate::{error::Result, b::{X, Y}};\n");
    write("b.rs", "/* crate::a /* nested */ crate::a */ pub fn g() { crate::c::h(); }\n");
    write("c/d/mod.rs", "fn k() { super::super::a::f(\"x\"); }\n");
    let (graph, evidence) = module_graph(dir.path());
    let edges = |m: &str| graph[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        (edges("a"), edges("b"), edges("c")),
        (vec!["b".to_string()], vec!["c".to_string()], vec!["a".to_string()])
    );
    let cycle = find_cycle(&graph).expect("a -> b -> c -> a");
    assert_eq!(cycle, ["a", "b", "c", "a"]);
    assert!(describe(&cycle, &evidence).contains("src/c/d/mod.rs:1"), "{}", describe(&cycle, &evidence));
    write("c/d/mod.rs", "fn k() {}\n");
    let (graph, evidence) = module_graph(dir.path());
    assert_eq!(find_cycle(&graph), None);

    // a -> b and b -> c: floors c < b < a hold, a < b < c does not.
    let floors = documented_floors(
        "//! Intro.\n//!\n//! Floors, from the bottom up: `c`,\n//! `b`, `a`. Checked by `t.rs`.\n//!\n//! Not `x`.\n",
    )
    .unwrap();
    assert_eq!(floors, ["c", "b", "a"]);
    assert!(floor_violations(&graph, &evidence, &floors).is_empty());
    let upside_down = floor_violations(&graph, &evidence, &["a".into(), "b".into(), "c".into()]);
    assert_eq!(upside_down.len(), 2, "{upside_down:?}");
    assert!(upside_down[0].starts_with("a (floor 0) imports b (floor 1): src/a/inner.rs:1"), "{upside_down:?}");
    let missing = floor_violations(&graph, &evidence, &["c".into(), "b".into(), "z".into()]);
    assert_eq!(missing, ["module a is on no documented floor", "floor z names no module"]);
}
