//! docs/json.md documents the JSON output field by field: every field the commands below print
//! is on that page, and every field the page lists (but the rows marked †) is printed by one of
//! them, so neither can drift from the other.

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeSet;

/// `layers[].params`-style paths of every leaf and array in `v`.
fn paths(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    let join = |k: &str| if at.is_empty() { k.to_owned() } else { format!("{at}.{k}") };
    match v {
        Value::Object(o) => o.iter().for_each(|(k, x)| paths(x, &join(k), out)),
        Value::Array(a) => {
            out.insert(at.to_owned());
            // Elements that are objects or arrays have fields of their own; numbers and strings
            // are the array's (`output_shape`).
            a.iter().filter(|x| x.is_object() || x.is_array()).for_each(|x| paths(x, &format!("{at}[]"), out));
        }
        _ => {
            out.insert(at.to_owned());
        }
    }
}

fn printed() -> BTreeSet<String> {
    let runs: &[&[&str]] = &[
        &["specs/alexnet-2012.yaml", "--hardware", "gtx580", "--fit", "--devices", "2"],
        &["specs/resnet18.yaml", "--depth", "1"],
        &["tests/data/frozen.yaml"],
        &[
            "memory",
            "specs/resnet18.yaml",
            "--amp",
            "bf16",
            "--adam-impl",
            "foreach",
            "--eager-references",
            "--timeline",
            "--sweep-batch",
            "1,2",
            "--fit",
            "1GiB",
            "--memory-convention",
            "torchinfo",
        ],
        &[
            "memory",
            "specs/resnet18.yaml",
            "--data-parallel",
            "2",
            "--zero",
            "3",
            "--checkpoint",
            "blocks",
            "--tensor-parallel",
            "2",
        ],
        &["memory", "specs/tinyllama-1.1b.yaml", "--kv-cache", "--context", "256"],
        &["specs/alexnet-torchvision.yaml", "--explain"],
        &["diff", "specs/alexnet.yaml", "specs/alexnet-d2l.yaml"],
        &["measure", "specs/lenet.yaml", "--train", "--fake-timings", "--warmup", "0", "--iters", "1"],
    ];
    let mut all = BTreeSet::new();
    for args in runs {
        let out = Command::cargo_bin("netstat").unwrap().args(*args).args(["-f", "json"]).assert().success();
        let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("JSON");
        paths(&v, "", &mut all);
    }
    all
}

/// (every backticked word on the table rows of the page, the first cells' paths that must be printed).
fn documented() -> (BTreeSet<String>, BTreeSet<String>) {
    let doc = std::fs::read_to_string("docs/json.md").unwrap();
    let ticked = |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    let (mut any, mut first) = (BTreeSet::new(), BTreeSet::new());
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        any.extend(ticked(row));
        let cell = row.split('|').nth(1).unwrap();
        if !cell.contains('†') {
            first.extend(ticked(cell));
        }
    }
    (any, first)
}

#[test]
fn every_printed_field_is_documented() {
    let (any, _) = documented();
    let missing: Vec<_> = printed().into_iter().filter(|p| !any.contains(p)).collect();
    assert!(missing.is_empty(), "fields missing from docs/json.md: {missing:#?}");
}

#[test]
fn every_documented_field_is_printed() {
    let (_, first) = documented();
    let printed = printed();
    // An object (`a`, `b`) is printed when a field under it is.
    let is_printed = |p: &String| printed.contains(p) || printed.iter().any(|x| x.starts_with(&format!("{p}.")));
    let stale: Vec<_> = first.iter().filter(|p| !is_printed(p)).collect();
    assert!(stale.is_empty(), "docs/json.md lists fields no command printed: {stale:#?}");
}
