//! Command-line habits (issue 16 item 3): `-o FILE` picks the format from the extension, a
//! mistyped subcommand gets "did you mean", a spec can come from standard input (`-`), and
//! `netstat completions SHELL` prints a completion script.

use assert_cmd::Command;

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    String::from_utf8(netstat().args(args).assert().success().get_output().stdout.clone()).unwrap()
}

/// What `args` plus `-o DIR/NAME` writes.
fn written(args: &[&str], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    netstat().args(args).arg("-o").arg(&p).assert().success().stdout("");
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn output_extension_picks_the_format() {
    let lenet = ["specs/lenet.yaml"];
    for (name, format) in [
        ("out.json", "json"),
        ("out.JSON", "json"),
        ("out.md", "markdown"),
        ("out.markdown", "markdown"),
        ("out.csv", "csv"),
        ("out.tex", "latex"),
        ("out.txt", "table"),
        ("out", "table"),
        ("out.bin", "table"),
    ] {
        assert_eq!(written(&lenet, name), stdout_of(&["specs/lenet.yaml", "-f", format]), "{name}");
    }
    // --format wins over the extension.
    assert_eq!(written(&["specs/lenet.yaml", "-f", "csv"], "out.json"), stdout_of(&["specs/lenet.yaml", "-f", "csv"]));
}

#[test]
fn output_extension_picks_the_format_of_memory_and_diff() {
    assert_eq!(
        written(&["memory", "specs/lenet.yaml"], "m.json"),
        stdout_of(&["memory", "specs/lenet.yaml", "-f", "json"])
    );
    assert_eq!(
        written(&["diff", "specs/alexnet.yaml", "specs/alexnet-d2l.yaml"], "d.md"),
        stdout_of(&["diff", "specs/alexnet.yaml", "specs/alexnet-d2l.yaml", "-f", "markdown"])
    );
    // memory refuses LaTeX, whether asked by --format or by the extension.
    let dir = tempfile::tempdir().unwrap();
    netstat()
        .args(["memory", "specs/lenet.yaml", "-o"])
        .arg(dir.path().join("m.tex"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("LaTeX tables come from"));
}

#[test]
fn a_mistyped_subcommand_gets_did_you_mean() {
    for (typo, meant) in [("mesure", "measure"), ("memroy", "memory"), ("reprot", "report"), ("dif", "diff")] {
        netstat()
            .args([typo, "specs/alexnet.yaml"])
            .assert()
            .code(2)
            .stdout("")
            .stderr(format!("error: `{typo}` is neither a command nor a spec file (did you mean `{meant}`?)\n"));
    }
    // Alone too (clap would otherwise read it as the spec path).
    netstat().arg("mesure").assert().code(2).stderr(predicates::str::contains("did you mean `measure`"));
    // A word close to no command is still a missing file (exit 1, the I/O error).
    netstat().arg("zzz").assert().code(1).stderr(predicates::str::contains("zzz: No such file"));
}

#[test]
fn spec_from_stdin() {
    let lenet = std::fs::read("specs/lenet.yaml").unwrap();
    for args in [vec!["-"], vec!["memory", "-"], vec!["-", "--depth", "1", "-f", "csv"]] {
        let from_file: Vec<&str> = args.iter().map(|a| if *a == "-" { "specs/lenet.yaml" } else { a }).collect();
        let out = netstat().args(&args).write_stdin(lenet.clone()).assert().success().get_output().stdout.clone();
        assert_eq!(String::from_utf8(out).unwrap(), stdout_of(&from_file), "{args:?}");
    }
    // diff: one side from stdin (Δ of a spec against itself is all zero: the totals row says 0).
    let out = netstat()
        .args(["diff", "specs/lenet.yaml", "-", "-f", "csv"])
        .write_stdin(lenet.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        stdout_of(&["diff", "specs/lenet.yaml", "specs/lenet.yaml", "-f", "csv"])
    );
    netstat()
        .args(["diff", "-", "-"])
        .assert()
        .code(2)
        .stderr("error: only one of A and B can be read from standard input (`-`)\n");
}

#[test]
fn a_bad_spec_from_stdin_names_stdin() {
    // Line 4: the first layer, whose field is misspelled.
    let bad = "name: t\ninput: [4]\nlayers:\n  - {name: fc, kind: linear, out_featres: 3}\n";
    netstat()
        .arg("-")
        .write_stdin(bad)
        .assert()
        .code(2)
        .stderr(predicates::str::starts_with("error: <stdin>:4:"))
        .stderr(predicates::str::contains("did you mean `out_features`"));
    // Read capped like a file: one byte over 16 MiB (MAX_SPEC_BYTES) is refused, not parsed.
    let big = vec![b'#'; netstat::spec::MAX_SPEC_BYTES + 1];
    netstat()
        .arg("-")
        .write_stdin(big)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("<stdin>:1:1: spec is larger than the limit of 16777216 bytes"));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = stdout_of(&["completions", shell]);
        // Every subcommand and a long option are offered.
        for word in ["measure", "memory", "report", "diff", "schema", "completions", "--hardware"] {
            assert!(out.contains(word), "{shell}: no {word}");
        }
    }
    assert!(stdout_of(&["completions", "bash"]).contains("complete -F _netstat"));
    netstat().args(["completions", "tcsh"]).assert().code(2);
}
