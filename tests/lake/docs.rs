//! The documentation's commands are run. Every shell block (```sh) in README.md and docs/*.md carries
//! one marker on the line before its fence:
//!
//! - `<!-- run: NAME -->`: run here. The blocks of one document with the same NAME run in order as one
//!   bash script (so an `export` carries on), in a fresh folder laid out like the repository's root
//!   (`config/` and `tests/` linked, the lake at `./lake`), with HOME and TMPDIR inside it, `/tmp/` in
//!   the text mapped to TMPDIR, and this build's `quantlake` and the test venv's `python3` first on
//!   PATH. `<!-- run: NAME; after: COMMAND -->` runs COMMAND first (what an earlier, unrun block did,
//!   e.g. `quantlake demo` for scripts/demo.sh).
//! - `<!-- not run: REASON -->`: shown, not run (it needs a TWS, an API key, a container, runs until
//!   Ctrl-C, ...), and the reason says so.
//!
//! What is checked: every command exits 0, except a command written `COMMAND; echo $?   # N ...`,
//! which must exit N; and after the closing fence, `<!-- expect: "text", "text" -->` names text the
//! block's output (stdout and stderr) must contain.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::{python, repo};

/// The documents whose `run` blocks a test below runs; a `run` block anywhere else is an error.
const RUN: &[&str] = &[
    "README.md",
    "docs/reading.md",
    "docs/data-quality.md",
    "docs/research.md",
    "docs/fundamentals.md",
    "docs/securities.md",
    "docs/python.md",
];

#[derive(Debug)]
enum Marker {
    Run { sandbox: String, after: Option<String> },
    NotRun,
}

#[derive(Debug)]
struct Block {
    /// 1-based line of the block's first line in its document.
    line: usize,
    text: Vec<String>,
    marker: Marker,
    expect: Vec<String>,
}

/// The shell blocks of one document, or what is wrong with their markers.
fn blocks(doc: &str) -> Result<Vec<Block>, Vec<String>> {
    let text = std::fs::read_to_string(repo().join(doc)).unwrap_or_else(|e| panic!("read {doc}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let end = (i + 1..lines.len()).find(|&j| lines[j].starts_with("```")).unwrap_or(lines.len());
        if ["sh", "bash", "shell", "console"].contains(&info.trim()) {
            let before = (0..i).rev().map(|j| lines[j].trim()).find(|l| !l.is_empty()).unwrap_or("");
            let after = (end + 1..lines.len()).map(|j| lines[j].trim()).find(|l| !l.is_empty()).unwrap_or("");
            let marker = if let Some(m) = comment(before, "run:") {
                let (sandbox, after) = match m.split_once("; after:") {
                    Some((s, a)) => (s.trim().to_string(), Some(a.trim().to_string())),
                    None => (m.to_string(), None),
                };
                Marker::Run { sandbox, after }
            } else if comment(before, "not run:").is_some_and(|reason| !reason.is_empty()) {
                Marker::NotRun
            } else {
                errors.push(format!(
                    "{doc}:{}: a shell block needs `<!-- run: NAME -->` or `<!-- not run: REASON -->` on the line before it",
                    i + 1
                ));
                Marker::NotRun
            };
            let expect = comment(after, "expect:").map(quoted).unwrap_or_default();
            let text = lines[i + 1..end].iter().map(|l| (*l).to_string()).collect();
            out.push(Block { line: i + 2, text, marker, expect });
        }
        i = end + 1;
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The body of `<!-- KEY body -->`.
fn comment<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.strip_prefix("<!--")?.strip_suffix("-->")?.trim().strip_prefix(key).map(str::trim)
}

/// The double-quoted strings in `s`.
fn quoted(s: &str) -> Vec<String> {
    s.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// The exit code a command line promises (`COMMAND; echo $?   # N ...`), 0 for any other line.
fn promised_code(command: &str) -> Result<i32, String> {
    if !command.contains("echo $?") {
        return Ok(0);
    }
    let comment = command.rsplit_once("echo $?").and_then(|(_, rest)| rest.split_once('#')).map(|(_, c)| c.trim());
    comment
        .and_then(|c| c.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("`{command}` echoes its exit code but does not say which (`; echo $?   # N`)"))
}

/// Runs the `run` blocks of `doc`, sandbox by sandbox, and panics with every failure and the output.
fn run_document(doc: &str) {
    let blocks = blocks(doc).unwrap_or_else(|errors| panic!("{}", errors.join("\n")));
    let mut sandboxes: BTreeMap<&str, (Option<&str>, Vec<&Block>)> = BTreeMap::new();
    for b in &blocks {
        if let Marker::Run { sandbox, after } = &b.marker {
            let entry = sandboxes.entry(sandbox).or_default();
            entry.0 = entry.0.or(after.as_deref());
            entry.1.push(b);
        }
    }
    assert!(!sandboxes.is_empty(), "{doc} has no `run` block: take it out of RUN");
    for (name, (after, blocks)) in sandboxes {
        run_sandbox(doc, name, after, &blocks);
    }
}

fn run_sandbox(doc: &str, name: &str, after: Option<&str>, blocks: &[&Block]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for link in ["config", "tests"] {
        std::os::unix::fs::symlink(repo().join(link), root.join(link)).expect("link");
    }
    std::fs::create_dir(root.join("tmp")).expect("tmp");
    // The script, and for each of its lines the block and line it came from.
    let mut script = String::from("exec 2>&1\ntrap 'printf \"\\n::exit %s %s\\n\" \"$?\" \"$LINENO\"' ERR\n");
    let mut origin: Vec<Option<(usize, usize)>> = vec![None, None];
    if let Some(command) = after {
        script.push_str(&format!("{command} >/dev/null\n"));
        origin.push(None);
    }
    for (k, block) in blocks.iter().enumerate() {
        for (n, line) in block.text.iter().enumerate() {
            script.push_str(&line.replace("/tmp/", "$TMPDIR/"));
            script.push('\n');
            origin.push(Some((k, n)));
        }
        script.push_str(&format!("printf '\\n::block {k}\\n'\n"));
        origin.push(None);
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_quantlake")).parent().expect("bin dir").to_path_buf();
    let venv = python().parent().expect("venv bin").to_path_buf();
    let path = std::env::join_paths(
        [bin, venv].into_iter().chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .expect("PATH");
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(root);
    let inherited = |k: &str| {
        ["AWS_", "QUANTLAKE_", "POLYGON_", "APCA_", "BACKFILL_", "FEATURE_BREADTH_"].iter().any(|p| k.starts_with(p))
            || ["MIN_TARGET_COVERAGE", "DAYS_BACK", "CARGO_TARGET_DIR"].contains(&k)
    };
    for (k, _) in std::env::vars().filter(|(k, _)| inherited(k)) {
        cmd.env_remove(k);
    }
    cmd.env("HOME", root).env("TMPDIR", root.join("tmp")).env("PATH", path).env("NO_COLOR", "1");
    let out = cmd.output().expect("run bash");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let problems = check(doc, blocks, &origin, &output);
    assert!(
        problems.is_empty(),
        "{doc}, blocks `{name}`:\n{}\n--- output ---\n{output}",
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    );
}

/// What went wrong: exit codes against the promised ones, and the expected text per block.
fn check(doc: &str, blocks: &[&Block], origin: &[Option<(usize, usize)>], output: &str) -> Vec<String> {
    let mut problems = Vec::new();
    // Each line's logical command (a line ending in a backslash continues on the next), by its first line.
    let first_of: Vec<Vec<usize>> = blocks
        .iter()
        .map(|b| {
            let mut first = Vec::with_capacity(b.text.len());
            for n in 0..b.text.len() {
                let continued = n > 0 && b.text[n - 1].ends_with('\\');
                first.push(if continued { first[n - 1] } else { n });
            }
            first
        })
        .collect();
    // Exit records (`::exit CODE LINE`), by block and first line of the command.
    let mut exits: BTreeMap<(usize, usize), i32> = BTreeMap::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("::exit ") else { continue };
        let mut parts = rest.split_whitespace().map(|p| p.parse::<i32>().unwrap_or(-1));
        let (code, at) = (parts.next().unwrap_or(-1), parts.next().unwrap_or(0));
        let origin = usize::try_from(at - 1).ok().and_then(|i| origin.get(i).copied().flatten());
        match origin {
            Some((k, n)) => {
                exits.insert((k, first_of[k][n]), code);
            }
            None => problems.push(format!("exit {code} outside the documented commands (script line {at})")),
        }
    }
    for (k, block) in blocks.iter().enumerate() {
        let mut n = 0;
        while n < block.text.len() {
            let first = n;
            let mut command = block.text[n].clone();
            while command.ends_with('\\') && n + 1 < block.text.len() {
                n += 1;
                command = format!("{} {}", command.trim_end_matches('\\'), block.text[n].trim());
            }
            n += 1;
            let at = format!("{doc}:{}", block.line + first);
            let promised = match promised_code(&command) {
                Ok(code) => code,
                Err(e) => {
                    problems.push(format!("{at}: {e}"));
                    continue;
                }
            };
            let got = exits.remove(&(k, first)).unwrap_or(0);
            if got != promised {
                problems.push(format!("{at}: `{}` exited {got}, the document says {promised}", command.trim()));
            }
        }
        let section = output.split(&format!("\n::block {k}\n")).next().unwrap_or("");
        let section =
            if k == 0 { section } else { section.rsplit(&format!("\n::block {}\n", k - 1)).next().unwrap_or("") };
        for text in &block.expect {
            if !section.contains(text.as_str()) {
                problems.push(format!("{doc}:{}: the block's output lacks {text:?}", block.line));
            }
        }
    }
    problems.extend(exits.keys().map(|(k, n)| format!("{doc}:{}: an unexpected exit", blocks[*k].line + n)));
    problems
}

#[test]
fn every_shell_block_is_run_or_marked_with_why_not() {
    let mut docs = vec!["README.md".to_string()];
    let mut listed: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| format!("docs/{}", e.expect("entry").file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".md"))
        .collect();
    listed.sort();
    docs.extend(listed);
    let mut errors = Vec::new();
    for doc in &docs {
        match blocks(doc) {
            Err(e) => errors.extend(e),
            Ok(blocks) => {
                let runs = blocks.iter().any(|b| matches!(b.marker, Marker::Run { .. }));
                if runs && !RUN.contains(&doc.as_str()) {
                    errors.push(format!("{doc} has `run` blocks but no test runs them: add it to RUN and a test"));
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn readme() {
    run_document("README.md");
}

#[test]
fn reading() {
    run_document("docs/reading.md");
}

#[test]
fn data_quality() {
    run_document("docs/data-quality.md");
}

#[test]
fn research() {
    run_document("docs/research.md");
}

#[test]
fn fundamentals() {
    run_document("docs/fundamentals.md");
}

#[test]
fn securities() {
    run_document("docs/securities.md");
}

#[test]
fn python_package() {
    run_document("docs/python.md");
}

mod parsing {
    use super::*;

    #[test]
    fn promised_codes() {
        assert_eq!(promised_code("quantlake health"), Ok(0));
        assert_eq!(promised_code("quantlake validate --full; echo $?   # 2: files GREEN"), Ok(2));
        assert_eq!(promised_code("quantlake health-check; echo $?   # 1 (YELLOW)"), Ok(1));
        assert!(promised_code("quantlake score; echo $?").is_err());
    }

    #[test]
    fn markers() {
        assert_eq!(comment("<!-- run: tour; after: quantlake demo -->", "run:"), Some("tour; after: quantlake demo"));
        assert_eq!(comment("<!-- not run: needs a TWS -->", "not run:"), Some("needs a TWS"));
        assert_eq!(quoted(r#""307500 rows", "GREEN""#), vec!["307500 rows", "GREEN"]);
    }
}
