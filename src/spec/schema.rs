//! The JSON Schema (draft 2020-12) of the spec format, for editors' YAML language servers
//! (`netstat schema`; docs/spec-format.md shows the `# yaml-language-server: $schema=` line).
//!
//! Generated from the same lists the parser checks against — the top-level fields
//! ([`super::TOP_FIELDS`]), every kind and its fields ([`Kind::NAMES`], [`Kind::fields`],
//! [`COMMON_FIELDS`]), block definitions and instances ([`super::blocks::BLOCK_FIELDS`],
//! [`super::blocks::INSTANCE_FIELDS`]), `input`, `loss`, `dataset` and the dtype spellings
//! ([`DType::SPELLINGS`]) — so it cannot drift from the parser. It checks structure: which
//! fields a layer of each kind may have, which are required, and the spellings of kinds and
//! dtypes. Values of kind fields are not typed (inside blocks any of them may be a `${…}`
//! template); shapes and arithmetic are the parser's and the analysis' job.

use super::blocks::{BLOCK_FIELDS, INSTANCE_FIELDS};
use super::loss::{LossKind, DATASET_FIELDS, LABELS_FIELDS, LOSS_FIELDS};
use super::{INPUT_FIELDS, TOP_FIELDS};
use crate::kinds::{Kind, COMMON_FIELDS};
use crate::shape::DType;
use serde_json::{json, Map, Value};

/// An object schema allowing exactly `fields` (each unconstrained unless `typed` gives it a
/// schema) and requiring `required`.
fn object(fields: &[&str], typed: &[(&str, Value)], required: &[&str]) -> Value {
    let mut props = Map::new();
    for f in fields {
        let s = typed.iter().find(|(k, _)| k == f).map_or_else(|| json!({}), |(_, v)| v.clone());
        props.insert((*f).to_owned(), s);
    }
    let mut o = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// The JSON Schema of a spec file.
pub fn schema() -> Value {
    let dtype = json!({"enum": DType::SPELLINGS.iter().map(|(s, _)| *s).collect::<Vec<_>>()});
    let shape = json!({"type": "array", "items": {"type": "integer", "minimum": 1}});
    let names = json!({"type": "array", "items": {"type": "string"}});
    let layer_common = [
        ("name", json!({"type": "string", "minLength": 1})),
        ("inputs", names.clone()),
        ("shares", json!({"type": "string"})),
    ];
    // One `if kind == K then K's fields` per kind: an editor names the field a kind lacks.
    let mut per_kind = Vec::new();
    let mut defs = Map::new();
    for &k in Kind::NAMES {
        let own = Kind::fields(k).expect("every name in Kind::NAMES has fields");
        let fields: Vec<&str> = COMMON_FIELDS.iter().chain(own).chain(&["if"]).copied().collect();
        let mut typed = layer_common.to_vec();
        typed.push(("kind", json!({"const": k})));
        defs.insert(format!("kind.{k}"), object(&fields, &typed, &["name", "kind"]));
        per_kind.push(json!({
            "if": {"required": ["kind"], "properties": {"kind": {"const": k}}},
            "then": {"$ref": format!("#/$defs/kind.{k}")}
        }));
    }
    per_kind.push(json!({"if": {"required": ["block"]}, "then": {"$ref": "#/$defs/instance"}}));
    defs.insert(
        "instance".into(),
        object(
            INSTANCE_FIELDS,
            &[
                ("name", json!({"type": "string", "minLength": 1})),
                ("block", json!({"type": "string"})),
                ("inputs", names.clone()),
                ("args", json!({"type": "object"})),
                ("first", json!({"type": "object"})),
            ],
            &["name", "block"],
        ),
    );
    defs.insert(
        "layer".into(),
        json!({
            "type": "object",
            "anyOf": [
                {"required": ["kind"], "properties": {"kind": {"enum": Kind::NAMES}}},
                {"required": ["block"]}
            ],
            "allOf": per_kind
        }),
    );
    defs.insert("layers".into(), json!({"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/layer"}}));
    let block = object(
        BLOCK_FIELDS,
        &[
            ("params", json!({"type": "object"})),
            ("inputs", names),
            ("output", json!({"type": "string"})),
            ("layers", json!({"$ref": "#/$defs/layers"})),
            ("description", json!({"type": "string"})),
        ],
        &["layers"],
    );
    let input = json!({"anyOf": [
        shape.clone(),
        object(INPUT_FIELDS, &[("shape", shape.clone()), ("dtype", dtype.clone())], &["shape"])
    ]});
    // `~` (null) means "not given" for `loss` and `loss.labels`.
    let labels = json!({"anyOf": [
        {"type": "null"},
        object(LABELS_FIELDS, &[("shape", shape), ("dtype", dtype.clone())], &[])
    ]});
    let loss = json!({"anyOf": [
        {"type": "null"},
        object(LOSS_FIELDS, &[("kind", json!({"enum": LossKind::NAMES})), ("labels", labels)], &["kind"])
    ]});
    let dataset = object(DATASET_FIELDS, &[("rows", json!({"type": "integer", "minimum": 1}))], &["rows"]);
    let mut top = object(
        TOP_FIELDS,
        &[
            ("name", json!({"type": "string"})),
            ("description", json!({"type": "string"})),
            ("input", input),
            ("batch", json!({"type": "integer", "minimum": 1})),
            ("dtype", dtype),
            ("layers", json!({"$ref": "#/$defs/layers"})),
            ("blocks", json!({"type": "object", "additionalProperties": block})),
            ("loss", loss),
            ("dataset", dataset),
        ],
        &["input", "layers"],
    );
    let o = top.as_object_mut().expect("object() builds an object");
    let mut head = Map::new();
    head.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
    head.insert("title".into(), json!("netstat spec"));
    head.insert(
        "description".into(),
        json!("A network for netstat: input, layers (kinds and their fields), blocks; docs/spec-format.md"),
    );
    head.append(o);
    head.insert("$defs".into(), Value::Object(defs));
    Value::Object(head)
}
