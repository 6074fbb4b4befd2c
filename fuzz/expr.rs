//! The expression language the `expr` fuzz target drives, shared with
//! `tests/fuzz_regressions.rs`: any text as a `${…}` expression, evaluated directly and inside a
//! block spec through the whole pipeline.
//!
//! The property: a value or an error message, never a panic, a stack overflow or a hang (the
//! length and depth limits of netstat::spec::expr bound the work).

use netstat::spec::expr::{eval, Vars};
use netstat::spec::node::{Loc, Node, Value};
use std::rc::Rc;

/// Parameters in scope: integers at the edges of i128, a list, a string, a boolean.
fn vars() -> Vars {
    let n = |v: Value| Rc::new(Node::synthetic(Loc::default(), v));
    Vars::from([
        ("w".to_owned(), n(Value::Int(64))),
        ("big".to_owned(), n(Value::Int(i128::MAX))),
        ("small".to_owned(), n(Value::Int(i128::MIN))),
        ("zero".to_owned(), n(Value::Int(0))),
        ("flag".to_owned(), n(Value::Bool(true))),
        ("name".to_owned(), n(Value::Str("conv".into()))),
        ("dims".to_owned(), n(Value::Seq(vec![Node::synthetic(Loc::default(), Value::Int(3))]))),
    ])
}

/// Evaluate `data` (as UTF-8, lossily) as an expression, then as the `out_features` and the
/// name of a layer in a block, through parse, expansion and analysis.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = eval(&text, &vars());
    // In a spec: one `}` or newline would end the expression or the YAML string early; keep
    // what the fuzzer wrote inside a double-quoted scalar by escaping quotes and backslashes.
    let inner: String = text
        .chars()
        .filter(|c| *c != '}' && !c.is_control())
        .collect::<String>()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let spec = format!(
        "name: f\ninput: [4]\nblocks:\n  b:\n    params: {{w: 64, big: 170141183460469231731687303715884105727, flag: true}}\n    layers:\n      - {{name: \"l_${{{inner}}}\", kind: linear, out_features: \"${{{inner}}}\"}}\nlayers:\n  - {{name: top, block: b, repeat: 2}}\n"
    );
    if let Ok(s) = netstat::spec::parse_bytes("fuzz.yaml", spec.as_bytes()) {
        let _ = netstat::analysis::analyze(s);
    }
}
