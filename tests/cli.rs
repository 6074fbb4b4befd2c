//! The built binary, as a user runs it: one snapshot per format, and one test per error class
//! (exit code 2, `error: FILE:LINE:COL: layer …`, no output file, no panic).

use assert_cmd::Command;
use std::path::Path;

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = netstat().args(args).assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn table_is_the_default_and_fits_80_columns() {
    let out = stdout_of(&["specs/alexnet.yaml"]);
    for line in out.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
    insta::assert_snapshot!("alexnet_table", out);
}

#[test]
fn markdown() {
    insta::assert_snapshot!("alexnet_markdown", stdout_of(&["specs/alexnet.yaml", "--format", "markdown"]));
}

#[test]
fn csv() {
    let out = stdout_of(&["specs/alexnet.yaml", "--format", "csv"]);
    // one header, 21 layers, one totals row
    assert_eq!(out.lines().count(), 23);
    insta::assert_snapshot!("alexnet_csv", out);
}

#[test]
fn json() {
    let out = stdout_of(&["specs/alexnet.yaml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["totals"]["params"], 50_844_008u64);
    assert_eq!(v["totals"]["flops"], 2 * 1_009_945_728u64);
    insta::assert_snapshot!("alexnet_json", out.replace(env!("CARGO_PKG_VERSION"), "[version]"));
}

#[test]
fn batch_flag_shows_in_the_report() {
    let out = stdout_of(&["specs/alexnet.yaml", "--batch", "10", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spec"]["batch"], 10);
    // 10 × 1,009,945,728
    assert_eq!(v["totals"]["macs"], 10_099_457_280u64);
    assert_eq!(v["layers"][0]["output_shape"], serde_json::json!([10, 96, 54, 54]));
    assert!(
        stdout_of(&["specs/alexnet.yaml", "--batch", "10"]).starts_with("alexnet — input 10x3x224x224 f32, batch 10")
    );
}

#[test]
fn output_file_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alexnet.csv");
    netstat().args(["specs/alexnet.yaml", "--format", "csv", "-o"]).arg(&path).assert().success().stdout("");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with("total,,,50844008,1009945728,2019891456,5364128,0\n"), "{text}");
    // no temporary file left beside it
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn help_states_the_counting_convention() {
    let out = stdout_of(&["--help"]).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(out.contains("torchvision publishes as `_ops`"), "{out}");
    assert!(out.contains("FLOPs = 2 x MACs"), "{out}");
}

/// Run a bad spec; it must exit 2 with a one-line `error: FILE:LINE:COL: …` message containing
/// `want`, write no output file and not panic.
fn bad(yaml: &str, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    std::fs::write(&spec, yaml).unwrap();
    let out_path = dir.path().join("out.json");
    let out =
        netstat().arg(&spec).args(["--format", "json", "-o"]).arg(&out_path).assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    let prefix = format!("error: {}:", spec.display());
    assert!(err.starts_with(&prefix), "{err}");
    let rest = &err[prefix.len()..];
    let mut parts = rest.splitn(3, ':');
    let (line, col) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(line.parse::<u64>().unwrap() >= 1 && col.parse::<u64>().unwrap() >= 1, "{err}");
    assert!(err.contains(want), "expected {want:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!Path::new(&out_path).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the spec remains");
}

const HEAD: &str = "name: t\ninput: [3, 32, 32]\nlayers:\n";

#[test]
fn error_bad_yaml() {
    // The bracket opened at line 2, column 8 is never closed.
    bad("name: t\ninput: [3, 32\n", ":2:8: invalid YAML: unclosed bracket '['");
}

#[test]
fn error_unknown_kind() {
    bad(
        &format!("{HEAD}  - {{name: c1, kind: convolution, c_out: 8}}\n"),
        ":4:22: layer #0 \"c1\" (?): unknown kind \"convolution\"",
    );
}

#[test]
fn error_unknown_field_suggests() {
    bad(
        &format!("{HEAD}  - {{name: c1, kind: conv2d, c_out: 8, kernal: 3}}\n"),
        "unknown field `kernal` (did you mean `kernel`?)",
    );
}

#[test]
fn error_missing_input_name() {
    bad(
        &format!("{HEAD}  - {{name: conv1, kind: conv2d, c_out: 8, kernel: 3}}\n  - {{name: r, kind: relu, inputs: [conv2]}}\n"),
        ":5:36: layer #1 \"r\" (relu): unknown input \"conv2\" (did you mean `conv1`?)",
    );
}

#[test]
fn error_missing_name() {
    bad(&format!("{HEAD}  - {{kind: relu}}\n"), ":4:5: layer #0 \"#0\" (?): missing required field `name`");
}

#[test]
fn error_duplicate_name() {
    bad(&format!("{HEAD}  - {{name: a, kind: relu}}\n  - {{name: a, kind: relu}}\n"), "duplicate layer name \"a\"");
}

#[test]
fn error_cycle() {
    bad(
        &format!("{HEAD}  - {{name: a, kind: relu, inputs: [b]}}\n  - {{name: b, kind: relu, inputs: [a]}}\n"),
        "cycle in the layer graph",
    );
}

#[test]
fn error_groups_not_dividing_channels() {
    // c_in 3 is not a multiple of groups 2; the error points at the value of `groups` (column 59).
    bad(
        &format!("{HEAD}  - {{name: c1, kind: conv2d, c_out: 8, kernel: 3, groups: 2}}\n"),
        ":4:59: layer #0 \"c1\" (conv2d): groups 2 does not divide c_in 3",
    );
}

#[test]
fn error_kernel_larger_than_padded_input() {
    // 32 + 2·1 = 34 < 35
    bad(
        &format!("{HEAD}  - {{name: c1, kind: conv2d, c_out: 8, kernel: 35, padding: 1}}\n"),
        "kernel larger than the padded input: dilated kernel 35 > padded input 34",
    );
}

#[test]
fn error_zero_and_negative_sizes() {
    bad(
        &format!("{HEAD}  - {{name: c1, kind: conv2d, c_out: 0, kernel: 3}}\n"),
        "`c_out`: expected a positive integer, got 0",
    );
    bad(
        &format!("{HEAD}  - {{name: c1, kind: conv2d, c_out: -8, kernel: 3}}\n"),
        "`c_out`: expected a positive integer, got -8",
    );
    bad(
        "name: t\ninput: [3, 0, 32]\nlayers:\n  - {name: r, kind: relu}\n",
        ":2:12: `input`: expected a positive integer dimension, got 0",
    );
}

#[test]
fn error_overflow() {
    // 2^32 · 2^32 elements overflow u64.
    bad("name: t\ninput: [4294967296, 4294967296]\nlayers:\n  - {name: r, kind: relu}\n", "overflows u64");
    // A linear layer whose weight count 2^40 · 2^40 overflows.
    bad(
        "name: t\ninput: [1099511627776]\nlayers:\n  - {name: fc, kind: linear, out_features: 1099511627776}\n",
        "layer #0 \"fc\" (linear): weight count overflows u64",
    );
}

#[test]
fn error_rank_mismatch() {
    bad(
        "name: t\ninput: [100]\nlayers:\n  - {name: c, kind: conv2d, c_out: 8, kernel: 3}\n",
        "expected a rank-4 input (N×C×H×W), got 1x100 (rank 2)",
    );
}

#[test]
fn an_error_caused_by_an_override_names_it() {
    // specs/alexnet.yaml is fine at 3×224×224. At 3×10×10, conv1 (kernel 11, stride 4, padding
    // 2) gives (10 + 4 − 11)/4 + 1 = 1 row, and pool1's 3×3 window does not fit: the error is
    // at pool1's line (14:45) and says which override the analysis ran with.
    let out = netstat().args(["specs/alexnet.yaml", "--input", "3x10x10"]).assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: specs/alexnet.yaml:14:45: layer #2 \"pool1\" (max_pool2d): "), "{err}");
    assert!(err.trim_end().ends_with("(analysed with --input 3x10x10)"), "{err}");
    // 10^14 × 3·224·224 = 1.5·10^19 elements: fits u64, but × 4 bytes does not.
    let out =
        netstat().args(["specs/alexnet.yaml", "--batch", "100000000000000"]).assert().code(2).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("input bytes overflows u64") && err.contains("(analysed with --batch 100000000000000)"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = netstat().args(["specs/alexnet.yaml", "--input", "3x0x5"]).assert().code(2).get_output().clone();
    assert!(String::from_utf8(out.stderr).unwrap().starts_with("error: --input: expected dimensions"));
    netstat().args(["specs/alexnet.yaml", "--format", "yaml"]).assert().code(2);
    netstat().args(["no/such/spec.yaml"]).assert().code(1);
}
