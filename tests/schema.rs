//! `netstat schema`: the JSON Schema of the spec format accepts every spec in specs/ (and every
//! complete spec in docs/spec-format.md), rejects bad ones, and the committed copy
//! docs/spec.schema.json (the file editors point at) is what the binary prints.
//!
//! The validator below implements the draft 2020-12 keywords the schema uses and panics on any
//! other, so a keyword it does not know cannot pass silently.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn schema() -> Value {
    let out = Command::cargo_bin("netstat").unwrap().arg("schema").assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).expect("netstat schema prints JSON")
}

/// Errors of `v` against `s` (empty when valid), each with the JSON path.
fn check(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Value::Object(s) = s else { panic!("schema at {at} is not an object: {s}") };
    for (k, kw) in s {
        match k.as_str() {
            "$schema" | "title" | "description" | "$defs" => {}
            "$ref" => {
                let name = kw.as_str().unwrap().strip_prefix("#/$defs/").expect("local $ref");
                check(root, &root["$defs"][name], v, at, errs);
            }
            "type" => {
                let ok = |t: &str| match t {
                    "object" => v.is_object(),
                    "array" => v.is_array(),
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "boolean" => v.is_boolean(),
                    "null" => v.is_null(),
                    other => panic!("type {other}"),
                };
                if !ok(kw.as_str().unwrap()) {
                    errs.push(format!("{at}: expected {kw}, got {v}"));
                }
            }
            "enum" => {
                if !kw.as_array().unwrap().contains(v) {
                    errs.push(format!("{at}: {v} is not one of {kw}"));
                }
            }
            "const" => {
                if kw != v {
                    errs.push(format!("{at}: expected {kw}, got {v}"));
                }
            }
            "minimum" => {
                if v.as_f64().is_some_and(|x| x < kw.as_f64().unwrap()) {
                    errs.push(format!("{at}: {v} < {kw}"));
                }
            }
            "minItems" => {
                if v.as_array().is_some_and(|a| (a.len() as u64) < kw.as_u64().unwrap()) {
                    errs.push(format!("{at}: fewer than {kw} items"));
                }
            }
            "minLength" => {
                if v.as_str().is_some_and(|x| (x.chars().count() as u64) < kw.as_u64().unwrap()) {
                    errs.push(format!("{at}: shorter than {kw}"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in kw.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            errs.push(format!("{at}: missing required field {r}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in kw.as_object().unwrap() {
                        if let Some(x) = o.get(name) {
                            check(root, sub, x, &format!("{at}.{name}"), errs);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let props = s.get("properties").and_then(Value::as_object);
                    for (name, x) in o {
                        if props.is_some_and(|p| p.contains_key(name)) {
                            continue;
                        }
                        match kw {
                            Value::Bool(false) => errs.push(format!("{at}: unknown field `{name}`")),
                            Value::Bool(true) => {}
                            sub => check(root, sub, x, &format!("{at}.{name}"), errs),
                        }
                    }
                }
            }
            "items" => {
                if let Some(a) = v.as_array() {
                    for (i, x) in a.iter().enumerate() {
                        check(root, kw, x, &format!("{at}[{i}]"), errs);
                    }
                }
            }
            "anyOf" => {
                let subs = kw.as_array().unwrap();
                if !subs.iter().any(|sub| valid(root, sub, v)) {
                    errs.push(format!("{at}: matches none of {} alternatives", subs.len()));
                }
            }
            "allOf" => {
                for sub in kw.as_array().unwrap() {
                    check(root, sub, v, at, errs);
                }
            }
            "if" => {
                if valid(root, kw, v) {
                    if let Some(then) = s.get("then") {
                        check(root, then, v, at, errs);
                    }
                }
            }
            "then" => {}
            other => panic!("the test's validator does not know keyword {other} (at {at})"),
        }
    }
}

fn valid(root: &Value, s: &Value, v: &Value) -> bool {
    let mut e = Vec::new();
    check(root, s, v, "", &mut e);
    e.is_empty()
}

fn errors(root: &Value, yaml: &str) -> Vec<String> {
    let v: Value = serde_saphyr::from_str(yaml).expect("YAML");
    let mut e = Vec::new();
    check(root, root, &v, "$", &mut e);
    e
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

#[test]
fn every_spec_in_specs_validates() {
    let s = schema();
    let mut files = Vec::new();
    yaml_files(Path::new("specs"), &mut files);
    // 13 at the top of specs/ and 2 in specs/examples/ when this test was written.
    assert!(files.len() >= 15, "{files:?}");
    for f in files {
        let e = errors(&s, &std::fs::read_to_string(&f).unwrap());
        assert!(e.is_empty(), "{}: {e:#?}", f.display());
    }
}

#[test]
fn every_complete_spec_in_the_docs_validates() {
    let s = schema();
    let doc = std::fs::read_to_string("docs/spec-format.md").unwrap();
    let mut n = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let body = block.split("```").next().unwrap();
        // A complete spec starts with `name:` (as tests/architectures.rs reads them).
        if body.starts_with("name:") {
            let e = errors(&s, body);
            assert!(e.is_empty(), "{body}\n{e:#?}");
            n += 1;
        }
    }
    assert!(n >= 3, "found only {n} complete specs in docs/spec-format.md");
}

#[test]
fn bad_specs_are_rejected() {
    let s = schema();
    let ok = "name: t\ninput: [3, 8, 8]\nlayers:\n  - {name: c, kind: conv2d, c_out: 4, kernel: 3}\n";
    assert_eq!(errors(&s, ok), Vec::<String>::new());
    let cases = [
        // a misspelled field of a kind
        (ok.replace("c_out:", "c_outt:"), "unknown field `c_outt`"),
        // a field of another kind (linear's on a conv2d)
        (ok.replace("kernel: 3", "kernel: 3, out_features: 3"), "unknown field `out_features`"),
        // an unknown kind
        (ok.replace("conv2d", "conv3d"), "matches none"),
        // no input
        (ok.replace("input: [3, 8, 8]\n", ""), "missing required field \"input\""),
        // a layer without a name
        (ok.replace("name: c, ", ""), "missing required field \"name\""),
        // an unknown top-level field
        (format!("{ok}optimiser: adam\n"), "unknown field `optimiser`"),
        // a dtype no one spells
        (format!("{ok}dtype: f31\n"), "is not one of"),
        // a block instance with a field instances lack
        (
            ok.replace("{name: c, kind: conv2d, c_out: 4, kernel: 3}", "{name: b, block: x, c_out: 4}"),
            "unknown field `c_out`",
        ),
    ];
    for (yaml, want) in cases {
        let e = errors(&s, &yaml);
        assert!(e.iter().any(|m| m.contains(want)), "{yaml}\nwanted {want:?}, got {e:#?}");
    }
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string("docs/spec.schema.json").unwrap()).expect("JSON");
    assert!(
        committed == schema(),
        "docs/spec.schema.json is stale: regenerate with `netstat schema > docs/spec.schema.json`"
    );
}

#[test]
fn every_kind_is_in_the_schema() {
    let s = schema();
    for k in netstat::kinds::Kind::NAMES {
        let d = &s["$defs"][format!("kind.{k}")];
        assert_eq!(d["properties"]["kind"]["const"], *k, "{k}");
        for f in netstat::kinds::Kind::fields(k).unwrap() {
            assert!(d["properties"].get(*f).is_some(), "{k}.{f} missing from the schema");
        }
    }
}
