//! Docs as tests: every example in README.md and docs/*.md that shows netstat's output is run
//! through the built binary and compared, so a changed count or a reworded line breaks this test
//! until the doc says the same.
//!
//! An example is a fenced block whose info string is `console`:
//!
//! ````markdown
//! ```console
//! $ netstat specs/lenet.yaml --depth 1
//! lenet — input 1x1x28x28 f32, batch 1
//! …
//! $ netstat tests/bad_specs/channels_linear.yaml; echo "exit $?"
//! error: tests/bad_specs/channels_linear.yaml:7:43: layer #1 "fc" (linear): …
//! exit 2
//! ```
//! ````
//!
//! - `$ netstat ARGS` runs the binary with ARGS (split as a shell would: quotes, no pipes or
//!   redirections). `NAME=value` words before `netstat` set environment variables.
//! - The lines up to the next `$ ` line are the expected output: standard output, then
//!   standard error. Trailing spaces are ignored (comfy-table pads its last column).
//! - The command must exit 0, unless it ends with `; echo "exit $?"`: then any exit code is
//!   accepted and `exit N` is appended to the output, as the shell would print it.
//! - Redaction: a line that is only `…` stands for any number of lines (none included); `…`
//!   inside a line stands for any text within that line (timings, machine figures).
//! - A block that cannot run here (it needs a GPU, or a file that Python makes) starts with a
//!   visible `# not run by the docs test: REASON` line and is skipped with its reason printed.
//!
//! Every other block is left alone, but a `$ netstat` line outside a `console` block is an
//! error: such an example would never be checked.
//!
//! Commands run in a scratch folder that links every entry of the repository (`specs/`,
//! `tests/`, `hardware/`, …) but holds its own copy of `reports/`, so an example that writes
//! reports changes nothing in the checkout. `COLUMNS` is removed (tables are 80 characters
//! wide, as in a pipe) and `RAYON_NUM_THREADS=2` fixes measure's thread count.
//!
//! After an intended output change, `NETSTAT_DOCS_UPDATE=1 cargo test --test docs` rewrites the
//! expected output of every failing block without redactions (`…`) to what the binary printed;
//! a failing block with redactions is left for a person. Review the `git diff` of the docs.
//! `NETSTAT_DOCS_FILE=measure` runs only the files whose path contains `measure`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The line of a doc's `console` block that skips the rest of the block, and its reason.
const SKIP: &str = "# not run by the docs test:";
/// The shell suffix that accepts any exit code and prints it.
const ECHO_EXIT: &str = "; echo \"exit $?\"";
/// The redaction mark.
const ANY: &str = "…";

/// One `$ netstat …` command of a block and the output the doc shows.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    /// 1-based line of the `$ ` line in its file.
    line: usize,
    /// The command as written, without `$ `.
    command: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// `; echo "exit $?"` ends the command.
    echo_exit: bool,
    /// Expected output lines.
    expected: Vec<String>,
}

/// A `console` block.
#[derive(Debug, Clone, PartialEq)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// Why the block is not run, when it starts with [`SKIP`].
    skip: Option<String>,
    examples: Vec<Example>,
}

/// Split a command line as a POSIX shell would for the subset docs use: words separated by
/// spaces, `'…'` and `"…"` quotes (no expansion inside), `\` escaping the next character.
fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '\'' | '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(x) => w.push(x),
                        None => return Err(format!("unclosed {c} quote")),
                    }
                }
            }
            '\\' => cur.get_or_insert_with(String::new).push(chars.next().ok_or("a trailing \\")?),
            '|' | '>' | '<' | ';' | '&' | '`' | '$' => {
                return Err(format!("`{c}` is not supported (one netstat command per `$ ` line)"))
            }
            _ => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    Ok(words)
}

/// Parse one `$ ` line (without the `$ `).
fn parse_command(line: usize, text: &str) -> Result<Example, String> {
    let (body, echo_exit) = match text.strip_suffix(ECHO_EXIT) {
        Some(b) => (b, true),
        None => (text, false),
    };
    let mut words = shell_words(body)?.into_iter().peekable();
    let mut env = Vec::new();
    while let Some((k, v)) = words.peek().and_then(|w| w.split_once('=')) {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            break;
        }
        env.push((k.to_string(), v.to_string()));
        words.next();
    }
    match words.next().as_deref() {
        Some("netstat") => {}
        other => return Err(format!("expected `netstat`, got {other:?}")),
    }
    Ok(Example { line, command: text.to_string(), env, args: words.collect(), echo_exit, expected: Vec::new() })
}

/// The `console` blocks of a Markdown text. Errors name the line: an unclosed fence, a command
/// that cannot be parsed, output before the first command, or a `$ netstat` line outside a
/// `console` block.
fn parse(text: &str) -> Result<Vec<Block>, Vec<String>> {
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    // (fence, is console, block) of the fenced block we are in.
    let mut open: Option<(String, bool, Block)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let t = raw.trim_start();
        let fence: String = t.chars().take_while(|&c| c == '`' || c == '~').collect();
        match &mut open {
            None if fence.len() >= 3 => {
                let info = t[fence.len()..].trim();
                let console = info.split_whitespace().next() == Some("console");
                open = Some((fence, console, Block { line: n, skip: None, examples: Vec::new() }));
            }
            None => {
                if t.starts_with("$ netstat") {
                    errors.push(format!("{n}: `$ netstat` outside a ```console block is never checked"));
                }
            }
            Some((f, console, block)) => {
                if fence.len() >= f.len() && fence.starts_with(f.as_str()) && t[fence.len()..].trim().is_empty() {
                    let (_, console, block) = open.take().unwrap();
                    if console {
                        blocks.push(block);
                    }
                    continue;
                }
                if !*console {
                    if t.starts_with("$ netstat") {
                        errors.push(format!("{n}: `$ netstat` outside a ```console block is never checked"));
                    }
                    continue;
                }
                if block.examples.is_empty() && block.skip.is_none() {
                    if let Some(reason) = raw.strip_prefix(SKIP) {
                        if reason.trim().is_empty() {
                            errors.push(format!("{n}: `{SKIP}` needs a reason"));
                        }
                        block.skip = Some(reason.trim().to_string());
                        continue;
                    }
                }
                if let Some(cmd) = raw.strip_prefix("$ ") {
                    match parse_command(n, cmd) {
                        Ok(e) => block.examples.push(e),
                        // A skipped block may show what the harness cannot run (pipes, …).
                        Err(_) if block.skip.is_some() => {}
                        Err(e) => errors.push(format!("{n}: {e}")),
                    }
                } else if let Some(e) = block.examples.last_mut() {
                    e.expected.push(raw.to_string());
                } else if block.skip.is_none() {
                    errors.push(format!("{n}: output before the first `$ netstat` line of the block"));
                }
            }
        }
    }
    if let Some((_, _, b)) = open {
        errors.push(format!("{}: the code block opened here is never closed", b.line));
    }
    for b in &blocks {
        if b.examples.is_empty() && b.skip.is_none() {
            errors.push(format!("{}: a ```console block without a `$ netstat` line", b.line));
        }
    }
    if errors.is_empty() {
        Ok(blocks)
    } else {
        Err(errors)
    }
}

/// Does `actual` match the doc's `line`, where `…` stands for any text?
fn line_matches(line: &str, actual: &str) -> bool {
    let (line, actual) = (line.trim_end(), actual.trim_end());
    let parts: Vec<&str> = line.split(ANY).collect();
    if parts.len() == 1 {
        return line == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() || !actual.ends_with(last) {
        return false;
    }
    let mut rest = &actual[first.len()..actual.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(at) => rest = &rest[at + p.len()..],
            None => return false,
        }
    }
    true
}

/// Do the `actual` lines match the doc's `expected` lines? A line that is only `…` matches any
/// number of lines. `Err` holds the index of the first expected line that could not be
/// matched (as far as the longest partial match got) and the actual line it was compared with.
fn lines_match(expected: &[String], actual: &[&str]) -> Result<(), (usize, Option<usize>)> {
    // reach[i][j]: expected[i..] matches actual[j..]; filled from the end.
    let (ne, na) = (expected.len(), actual.len());
    let mut reach = vec![vec![false; na + 1]; ne + 1];
    reach[ne][na] = true;
    for i in (0..ne).rev() {
        let gap = expected[i].trim() == ANY;
        for j in (0..=na).rev() {
            reach[i][j] = if gap {
                reach[i + 1][j] || (j < na && reach[i][j + 1])
            } else {
                j < na && line_matches(&expected[i], actual[j]) && reach[i + 1][j + 1]
            };
        }
    }
    if reach[0][0] {
        return Ok(());
    }
    // Walk the greedy path to the first mismatch, for the message.
    let (mut i, mut j) = (0, 0);
    while i < ne {
        if expected[i].trim() == ANY {
            // Skip to the first actual line from which the rest could match, else to the next
            // line matching the expected line after the gap.
            match (j..=na).find(|&k| reach[i + 1][k]) {
                Some(k) => {
                    j = k;
                    i += 1;
                    continue;
                }
                None => {
                    let next = expected.get(i + 1);
                    match next.and_then(|e| (j..na).find(|&k| line_matches(e, actual[k]))) {
                        Some(k) => {
                            i += 1;
                            j = k;
                            continue;
                        }
                        None => return Err((i + 1, (j < na).then_some(j))),
                    }
                }
            }
        }
        if j < na && line_matches(&expected[i], actual[j]) {
            i += 1;
            j += 1;
        } else {
            return Err((i, (j < na).then_some(j)));
        }
    }
    Err((ne, (j < na).then_some(j)))
}

/// A scratch folder that links every entry of the repository but `reports/` (copied) and
/// `target/`.
fn scratch(repo: &Path) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let t = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &t);
            } else {
                std::fs::copy(e.path(), t).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(repo).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        match name.to_str() {
            Some("target" | ".git") => {}
            Some("reports") => copy(&e.path(), &dir.path().join("reports")),
            _ => std::os::unix::fs::symlink(e.path(), dir.path().join(&name)).unwrap(),
        }
    }
    dir
}

/// Run `e` in `cwd`: standard output then standard error, and `exit N` when asked for.
/// `Err` when it exits non-zero without `; echo "exit $?"`.
fn run(e: &Example, cwd: &Path) -> (String, Option<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_netstat"))
        .args(&e.args)
        .current_dir(cwd)
        .env_remove("COLUMNS")
        .env_remove("NETSTAT_FAKE_TIMINGS")
        .env("RAYON_NUM_THREADS", "2")
        .envs(e.env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run netstat");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let code = out.status.code().unwrap_or(-1);
    if e.echo_exit {
        let _ = writeln!(text, "exit {code}");
        (text, None)
    } else if code != 0 {
        (text, Some(format!("exited with {code} (add `{ECHO_EXIT}` to the command if that is the example)")))
    } else {
        (text, None)
    }
}

/// The failure report of one example: where, what differs, both texts.
fn mismatch(file: &str, e: &Example, actual: &str, why: &str) -> String {
    let mut m = format!("{file}:{}: `$ {}`: {why}\n", e.line, e.command);
    let lines: Vec<&str> = actual.lines().collect();
    if let Err((i, j)) = lines_match(&e.expected, &lines) {
        let doc = e.expected.get(i).map(String::as_str).unwrap_or("(end of the example)");
        let got = j.map(|j| lines[j]).unwrap_or("(end of the output)");
        let _ = writeln!(m, "  first difference, {file}:{}:", e.line + 1 + i);
        let _ = writeln!(m, "    doc:    {doc}");
        let _ = writeln!(m, "    actual: {got}");
    }
    let _ = writeln!(m, "  --- diff (- doc, + actual; redactions `…` not applied) ---");
    for d in diff(&e.expected.iter().map(|s| s.trim_end()).collect::<Vec<_>>(), &lines) {
        let _ = writeln!(m, "  {d}");
    }
    m
}

/// A line diff (longest common subsequence), trailing spaces ignored.
fn diff(a: &[&str], b: &[&str]) -> Vec<String> {
    let b: Vec<&str> = b.iter().map(|s| s.trim_end()).collect();
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] { l[i + 1][j + 1] + 1 } else { l[i + 1][j].max(l[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || l[i][j + 1] >= l[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out
}

/// README.md and every docs/*.md, relative to the repository.
fn doc_files(repo: &Path) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(repo).unwrap().to_path_buf())
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Replace the expected output of `e` in `text` (the lines after its `$ ` line) by `actual`.
fn rewrite(text: &str, e: &Example, actual: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = e.line; // 0-based index of the first output line
    let mut out: Vec<String> = lines[..start].iter().map(|s| s.to_string()).collect();
    out.extend(actual.lines().map(|l| l.trim_end().to_string()));
    out.extend(lines[start + e.expected.len()..].iter().map(|s| s.to_string()));
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[test]
fn every_documented_command_prints_what_the_docs_show() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("NETSTAT_DOCS_UPDATE").is_some();
    let only = std::env::var("NETSTAT_DOCS_FILE").unwrap_or_default();
    let dir = scratch(repo);
    let (mut failures, mut checked, mut skipped) = (Vec::new(), 0, Vec::new());
    for file in doc_files(repo) {
        let name = file.display().to_string();
        if !name.contains(&only) {
            continue;
        }
        let mut text = std::fs::read_to_string(repo.join(&file)).unwrap();
        let blocks = match parse(&text) {
            Ok(b) => b,
            Err(errs) => {
                failures.extend(errs.into_iter().map(|e| format!("{name}:{e}")));
                continue;
            }
        };
        // Rewrites go from the end of the file so earlier line numbers stay valid.
        let mut rewrites = Vec::new();
        for b in &blocks {
            if let Some(reason) = &b.skip {
                skipped.push(format!("{name}:{}: {reason}", b.line));
                continue;
            }
            for e in &b.examples {
                checked += 1;
                let (actual, bad_exit) = run(e, dir.path());
                let lines: Vec<&str> = actual.lines().collect();
                let matched = lines_match(&e.expected, &lines).is_ok();
                if matched && bad_exit.is_none() {
                    continue;
                }
                let why = bad_exit.unwrap_or_else(|| "the output differs from the doc".into());
                if update && matched {
                    failures.push(mismatch(&name, e, &actual, &why));
                } else if update && !e.expected.iter().any(|l| l.contains(ANY)) {
                    rewrites.push((e.clone(), actual));
                } else {
                    failures.push(mismatch(&name, e, &actual, &why));
                }
            }
        }
        if !rewrites.is_empty() {
            for (e, actual) in rewrites.iter().rev() {
                text = rewrite(&text, e, actual);
            }
            std::fs::write(repo.join(&file), &text).unwrap();
            eprintln!("{name}: rewrote {} example(s); review `git diff {name}`", rewrites.len());
        }
    }
    for s in &skipped {
        eprintln!("not run: {s}");
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} documented examples fail:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "no ```console example found");
}

#[cfg(test)]
mod harness {
    use super::*;

    fn ex(expected: &[&str]) -> Vec<String> {
        expected.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_changed_count_is_a_mismatch_and_redactions_match_only_what_they_cover() {
        let actual = ["params 61,706", "MACs 416,520", "whole forward: median 12.5 ms"];
        assert!(lines_match(&ex(&["params 61,706", "MACs 416,520", "whole forward: median 12.5 ms"]), &actual).is_ok());
        // One digit changed: the first difference is that line.
        assert_eq!(lines_match(&ex(&["params 61,706", "MACs 416,521", "…"]), &actual), Err((1, Some(1))));
        // `…` in a line covers text within that line only.
        assert!(lines_match(&ex(&["params 61,706", "MACs 416,520", "whole forward: median … ms"]), &actual).is_ok());
        assert!(lines_match(&ex(&["params …", "whole forward: median … ms"]), &actual).is_err());
        // A `…` line covers any number of lines, none included.
        assert!(lines_match(&ex(&["…", "whole forward: median 12.5 ms"]), &actual).is_ok());
        assert!(lines_match(&ex(&["params 61,706", "…", "MACs 416,520", "…"]), &actual).is_ok());
        assert!(lines_match(&ex(&["params 61,706", "…"]), &actual).is_ok());
        // But not lines that are not there, and not a missing line at the end.
        assert!(lines_match(&ex(&["…", "FLOPs 833,040"]), &actual).is_err());
        assert_eq!(lines_match(&ex(&["params 61,706", "MACs 416,520"]), &actual), Err((2, Some(2))));
        // Trailing spaces do not count; leading ones do.
        assert!(line_matches("total 5 ", "total 5"));
        assert!(!line_matches(" total 5", "total 5"));
        assert!(!line_matches("a…b…c", "abc-b"));
        assert!(line_matches("a…b…c", "a-b-c"));
    }

    #[test]
    fn blocks_parse_commands_env_exit_codes_and_skips() {
        let md = "text\n```console\n$ netstat specs/lenet.yaml --depth 1\nlenet\n…\n$ RAYON_NUM_THREADS=1 netstat 'a b.yaml'; echo \"exit $?\"\nerror: x\nexit 2\n```\n\n```console\n# not run by the docs test: needs a GPU\n$ netstat measure x --device cuda:0 | head\nout\n```\n```sh\nnetstat x\n```\n";
        let b = parse(md).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].line, 2);
        let e = &b[0].examples;
        assert_eq!(
            (e[0].line, &e[0].args[..], e[0].echo_exit),
            (3, &["specs/lenet.yaml".to_string(), "--depth".into(), "1".into()][..], false)
        );
        assert_eq!(e[0].expected, ["lenet", "…"]);
        assert_eq!(e[1].env, [("RAYON_NUM_THREADS".to_string(), "1".to_string())]);
        assert_eq!((e[1].args.clone(), e[1].echo_exit), (vec!["a b.yaml".to_string()], true));
        assert_eq!(e[1].expected, ["error: x", "exit 2"]);
        assert_eq!(b[1].skip.as_deref(), Some("needs a GPU"));
        // What is refused, with the line.
        let bad = parse("```console\n$ netstat a | head\n```\n    $ netstat b\n```text\n$ netstat c\n```\n```console\nout\n```\n```console\n");
        assert_eq!(
            bad.unwrap_err(),
            [
                "2: `|` is not supported (one netstat command per `$ ` line)",
                "4: `$ netstat` outside a ```console block is never checked",
                "6: `$ netstat` outside a ```console block is never checked",
                "9: output before the first `$ netstat` line of the block",
                "11: the code block opened here is never closed",
                "1: a ```console block without a `$ netstat` line",
                "8: a ```console block without a `$ netstat` line",
            ]
        );
    }

    #[test]
    fn the_update_mode_replaces_exactly_the_output_of_one_example() {
        let md = "a\n```console\n$ netstat x\nold 1\nold 2\n$ netstat y\nkeep\n```\n";
        let b = parse(md).unwrap();
        let new = rewrite(md, &b[0].examples[0], "new 1   \n");
        assert_eq!(new, "a\n```console\n$ netstat x\nnew 1\n$ netstat y\nkeep\n```\n");
    }
}
