//! Spec files: YAML text → a checked [`Spec`] (layers with typed fields and source locations).
//!
//! This module knows YAML and field names, nothing about shapes or costs. The format is
//! documented in docs/spec-format.md.
//!
//! Parsing is bounded: the file size ([`MAX_SPEC_BYTES`]) is checked before parsing, and
//! serde-saphyr's budget ([`budget`]) caps events, aliases, anchors, nesting depth and nodes,
//! which stops alias bombs ("billion laughs") and runaway nesting with an error.

pub mod blocks;
pub mod expr;
pub mod fields;
pub mod loss;
pub mod node;
pub mod schema;

use crate::error::{did_you_mean, LayerRef, SpecError};
use crate::kinds::{Kind, COMMON_FIELDS};
use crate::shape::DType;
use fields::Fields;
use node::{Loc, Node, Value};
use std::collections::HashMap;

/// Largest spec file netstat reads: 16 MiB (a 10,000-layer spec is about 0.7 MiB).
pub const MAX_SPEC_BYTES: usize = 16 << 20;

/// Most layers a spec may expand to (after blocks and repeats): 100,000 — about 30 times a
/// 1000-layer ResNet, and small enough that expanding and analysing them stays under a second
/// (a nested `repeat` of 10^9 layers is refused as soon as the count passes it).
pub const MAX_LAYERS: usize = 100_000;

/// Top-level fields of a spec.
pub const TOP_FIELDS: &[&str] =
    &["name", "description", "input", "batch", "dtype", "layers", "blocks", "loss", "dataset"];

/// Fields of `input:` given as a mapping.
pub const INPUT_FIELDS: &[&str] = &["shape", "dtype"];

/// The parse budget: limits on what one spec may make serde-saphyr do.
///
/// Alias and anchor counts, nesting depth, events and nodes are capped well above any real
/// network's spec and far below what would exhaust memory or take more than a second
/// (docs/robustness.md lists every limit with its reason).
pub fn budget() -> serde_saphyr::Budget {
    let mut b = serde_saphyr::Budget::default();
    b.max_events = MAX_EVENTS;
    b.max_aliases = 10_000;
    b.max_anchors = 10_000;
    // A real spec nests about 8 deep (blocks → block → layers → layer → args → list). At 64 a
    // fuzz corpus input overflowed a 2 MiB thread stack in a debug build (tens of KiB of stack
    // per level); flow collections (`[[[…]]]`, 255 by default) get the same cap.
    b.max_depth = 32;
    b.flow_nesting_limit = 32;
    b.max_nodes = 1_000_000;
    b.max_total_scalar_bytes = MAX_SPEC_BYTES;
    b.max_recorded_anchor_events = MAX_ALIAS_EVENTS;
    b
}

/// Most YAML events (scalars, collection starts and ends) a spec may have: 1,000,000, about
/// 150,000 one-line layers. Parsing them takes well under a second in a release build.
pub const MAX_EVENTS: usize = 1_000_000;

/// Most events aliases may replay, and anchors record, in one spec: 100,000. An alias bomb
/// ("billion laughs") stops here; a real spec's `<<: *defaults` merges use a few dozen each.
pub const MAX_ALIAS_EVENTS: usize = 100_000;

/// serde-saphyr options: the [`budget`], alias limits, YAML 1.2 booleans.
pub fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget());
    options.alias_limits.max_total_replayed_events = MAX_ALIAS_EVENTS;
    // YAML 1.2 booleans only: a layer named `n`, `y`, `no` or `off` stays a string.
    options.strict_booleans = true;
    options
}

/// The network's input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Shape without the batch dimension, e.g. `[3, 224, 224]`.
    pub shape: Vec<u64>,
    /// Element type of the input (default: the spec's `dtype`; `i64` for token ids).
    pub dtype: DType,
    /// Where `input` is written.
    pub loc: Loc,
}

/// Where a layer takes one input from.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRef {
    /// A layer name, or `input` for the network input.
    pub name: String,
    /// Where the name is written.
    pub loc: Loc,
}

/// One layer of a spec, checked field by field (shapes are checked by the graph).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// Name, index and kind, for messages.
    pub id: LayerRef,
    /// The kind and its fields.
    pub kind: Kind,
    /// Explicit inputs; empty means "the previous layer's output" (or the network input).
    pub inputs: Vec<InputRef>,
    /// Whether the layer's parameters are trained (default true).
    pub trainable: bool,
    /// `shares: NAME`: the layer uses the parameters of layer NAME (same count) instead of its own.
    pub shares: Option<InputRef>,
    /// The layer's mapping as written (for field locations in later errors).
    pub node: Node,
    /// The block-instance copies it was expanded from (activation checkpointing units).
    pub origin: blocks::Origin,
}

impl LayerSpec {
    /// Location of field `key`, or of the layer.
    pub fn loc(&self, key: &str) -> Loc {
        self.node.get(key).map(|n| n.loc).unwrap_or(self.node.loc)
    }
}

/// A whole spec file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The path as given, for messages.
    pub file: String,
    /// `name`.
    pub name: String,
    /// `input`.
    pub input: InputSpec,
    /// `batch` (default 1).
    pub batch: u64,
    /// Element type of activations and weights (`dtype`, default f32).
    pub dtype: DType,
    /// The layers, in file order (blocks expanded). Shared: a spec is cloned for every batch
    /// `memory --fit` and `--sweep-batch` re-analyse, and the layers never change with the batch.
    pub layers: std::sync::Arc<Vec<LayerSpec>>,
    /// `loss:` (for the training-memory model), if given.
    pub loss: Option<loss::LossSpec>,
    /// `dataset: {rows: R}`: samples resident on the device (the batch is a view of them).
    pub dataset_rows: Option<u64>,
}

/// Read and check a spec file; `-` reads the spec from standard input (named `<stdin>` in
/// messages and reports); a path ending in `.onnx` is an ONNX model, imported as a spec
/// ([`crate::onnx::load`]).
///
/// Errors: unreadable file (I/O), too large, not UTF-8, bad YAML, unknown or missing fields,
/// unknown kinds, duplicate names — each with file:line:column; for a model, those of
/// [`crate::onnx::import`].
pub fn load(path: &str) -> Result<Spec, crate::Error> {
    load_with(path, &crate::onnx::ImportOptions::default())
}

/// [`load`], with the options an ONNX model is imported with (ignored for YAML).
pub fn load_with(path: &str, onnx: &crate::onnx::ImportOptions) -> Result<Spec, crate::Error> {
    if path == "-" {
        // The same cap as a file: at most one byte past the limit, which parse_bytes refuses.
        let bytes = crate::files::read_stdin(MAX_SPEC_BYTES as u64)?;
        return Ok(parse_bytes(crate::files::STDIN_NAME, &bytes)?);
    }
    if crate::onnx::is_onnx(path) {
        return crate::onnx::load(path, onnx);
    }
    // Regular files only (a FIFO would hang open(2)), and at most one byte past the limit: a huge
    // file is refused by parse_bytes without being read whole.
    let bytes = crate::files::read_user_file(path, MAX_SPEC_BYTES as u64, true, "specs")?;
    Ok(parse_bytes(path, &bytes)?)
}

/// Check a spec given as bytes; `file` names it in messages.
pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Spec, SpecError> {
    if bytes.len() > MAX_SPEC_BYTES {
        return Err(SpecError::new(
            file,
            Loc { line: 1, col: 1 },
            format!("spec is larger than the limit of {MAX_SPEC_BYTES} bytes (16 MiB)"),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&good[line_start..]).chars().count() as u64 + 1;
        SpecError::new(file, Loc { line, col }, format!("not valid UTF-8 (byte 0x{:02x})", bytes[e.valid_up_to()]))
    })?;
    let root = parse_yaml(file, text)?;
    from_root(file, std::borrow::Cow::Owned(root))
}

/// Parse YAML text into a spanned tree, under [`budget`].
pub fn parse_yaml(file: &str, text: &str) -> Result<Node, SpecError> {
    serde_saphyr::from_str_with_options::<Node>(text, options()).map_err(|e| {
        let loc = e.location().map(|l| Loc { line: l.line(), col: l.column() }).unwrap_or_default();
        SpecError::new(file, loc, format!("invalid YAML: {}", plain_message(&e)))
    })
}

/// The message for a parse that hit one of our limits, naming the limit; `None` for other errors.
fn limit_message(e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::budget::BudgetBreach as B;
    use serde_saphyr::Error as E;
    let mut e = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = e {
        e = error;
    }
    let aliases = || format!("aliases expand to more than {MAX_ALIAS_EVENTS} YAML values (an alias bomb?)");
    Some(match e {
        E::Budget { breach, .. } => match breach {
            B::Events { .. } => format!("more than {MAX_EVENTS} YAML values and collection markers"),
            B::Depth { .. } => format!("nested more than {} levels deep", budget().max_depth),
            B::Nodes { .. } => format!("more than {} YAML nodes", budget().max_nodes),
            B::Aliases { .. } => format!("more than {} aliases", budget().max_aliases),
            B::Anchors { .. } => format!("more than {} anchors", budget().max_anchors),
            B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } | B::AliasAnchorRatio { .. } => aliases(),
            other => format!("a parsing limit was exceeded ({other:?})"),
        },
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => aliases(),
        _ => return None,
    })
    .map(|m| format!("{m}; see the limits in docs/robustness.md"))
}

/// serde-saphyr's message for a spec author (its `UserMessageFormatter`), without the
/// location (which we print in front) or the snippet.
fn plain_message(e: &serde_saphyr::Error) -> String {
    if let Some(m) = limit_message(e) {
        return m;
    }
    let full = e.without_snippet().render_with_formatter(&serde_saphyr::UserMessageFormatter);
    let first = full.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let rest = match first.strip_prefix("line ") {
        Some(r) => r.split_once(": ").map(|(_, m)| m).unwrap_or(r),
        None => first,
    };
    // The location is already in front of the message; drop serde-saphyr's copy of it.
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let rest = match rest.rsplit_once(" at line ") {
        Some((m, at)) if at.split_once(", column ").is_some_and(|(l, c)| is_num(l) && is_num(c)) => m,
        _ => rest,
    };
    rest.to_owned()
}

/// Check a parsed YAML tree as a spec.
pub fn from_node(file: &str, root: &Node) -> Result<Spec, SpecError> {
    from_root(file, std::borrow::Cow::Borrowed(root))
}

/// [`from_node`], taking the layer nodes out of `root` when it is owned (each [`LayerSpec`]
/// keeps its node; moving them instead of cloning saves a copy of every layer's tree).
fn from_root(file: &str, mut root: std::borrow::Cow<'_, Node>) -> Result<Spec, SpecError> {
    let top = LayerRef { index: 0, name: String::new(), kind: String::new() };
    let Value::Map(entries) = &root.value else {
        return Err(SpecError::new(
            file,
            root.loc,
            format!("expected a mapping with `name`, `input` and `layers`, got {}", root.value.type_name()),
        ));
    };
    check_keys(file, entries, TOP_FIELDS, None)?;
    let f = Fields { file, node: &root, layer: &top };
    let strip = |e: SpecError| SpecError { layer: None, ..e };
    let name = f.str("name").map_err(strip)?.unwrap_or("").to_owned();
    // The network's name heads every report: the same rule as a layer's.
    if let Some(m) = bad_name(&name) {
        return Err(SpecError::new(file, f.loc("name"), m));
    }
    let dtype = match f.str("dtype").map_err(strip)? {
        None => DType::F32,
        Some(s) => parse_dtype(file, f.loc("dtype"), s)?,
    };
    let batch = f.pos("batch").map_err(strip)?.unwrap_or(1);
    let input = parse_input(file, &root, dtype)?;
    match root.get("layers") {
        Some(Node { value: Value::Seq(items), .. }) if !items.is_empty() => {}
        Some(n) => {
            return Err(SpecError::new(
                file,
                n.loc,
                format!("`layers`: expected a non-empty list, got {}", crate::spec::fields::describe(n)),
            ))
        }
        None => return Err(SpecError::new(file, root.loc, "missing required field `layers`")),
    };
    let (layer_nodes, mut origins): (Vec<Node>, Vec<blocks::Origin>) = if blocks::needed(&root) {
        blocks::expand(file, &root)?
    } else {
        // `loss` and `dataset` are still read from the root below; `layers` no longer is.
        let layers = match &mut root {
            std::borrow::Cow::Borrowed(r) => r.get("layers").map(|n| n.value.clone()),
            std::borrow::Cow::Owned(r) => r.get_mut("layers").map(|n| std::mem::replace(&mut n.value, Value::Null)),
        };
        match layers {
            Some(Value::Seq(items)) => (items, Vec::new()),
            _ => unreachable!("`layers` was checked to be a non-empty list above"),
        }
    };
    origins.resize(layer_nodes.len(), blocks::Origin::default());
    if layer_nodes.len() > MAX_LAYERS {
        return Err(SpecError::new(
            file,
            root.loc,
            format!("{} layers, more than the limit of {MAX_LAYERS}", layer_nodes.len()),
        ));
    }
    let mut layers = Vec::with_capacity(layer_nodes.len());
    let mut seen: HashMap<String, Loc> = HashMap::new();
    for (index, (n, origin)) in layer_nodes.into_iter().zip(origins).enumerate() {
        let mut l = parse_layer(file, index, n)?;
        l.origin = origin;
        if let Some(first) = seen.get(&l.id.name) {
            return Err(SpecError::new(
                file,
                l.loc("name"),
                format!("duplicate layer name \"{}\" (first defined at {first})", l.id.name),
            )
            .in_layer(&l.id));
        }
        if l.id.name == "input" {
            return Err(SpecError::new(file, l.loc("name"), "the name `input` is reserved for the network input")
                .in_layer(&l.id));
        }
        seen.insert(l.id.name.clone(), l.loc("name"));
        layers.push(l);
    }
    let loss = loss::parse_loss(file, &root)?;
    let dataset_rows = loss::parse_dataset(file, &root)?;
    Ok(Spec { file: file.to_owned(), name, input, batch, dtype, layers: layers.into(), loss, dataset_rows })
}

/// Parse a dtype spelling written at `loc`.
pub fn parse_dtype(file: &str, loc: Loc, s: &str) -> Result<DType, SpecError> {
    DType::parse(s).ok_or_else(|| {
        SpecError::new(
            file,
            loc,
            format!(
                "unknown dtype \"{s}\"{}; expected one of {}",
                did_you_mean(s, DType::NAMES),
                DType::NAMES.join(", ")
            ),
        )
    })
}

fn parse_input(file: &str, root: &Node, dtype: DType) -> Result<InputSpec, SpecError> {
    let Some(n) = root.get("input") else {
        return Err(SpecError::new(
            file,
            root.loc,
            "missing required field `input` (the input shape without batch, e.g. [3, 224, 224])",
        ));
    };
    let (shape_node, in_dtype) = match &n.value {
        Value::Seq(_) => (n, dtype),
        Value::Map(entries) => {
            check_keys(file, entries, INPUT_FIELDS, None)?;
            let shape =
                n.get("shape").ok_or_else(|| SpecError::new(file, n.loc, "`input`: missing required field `shape`"))?;
            let d = match n.get("dtype") {
                None => dtype,
                Some(dn) => match dn.as_str() {
                    Some(s) => parse_dtype(file, dn.loc, s)?,
                    None => {
                        return Err(SpecError::new(
                            file,
                            dn.loc,
                            format!("`dtype`: expected a string, got {}", fields::describe(dn)),
                        ))
                    }
                },
            };
            (shape, d)
        }
        _ => {
            return Err(SpecError::new(
                file,
                n.loc,
                format!(
                    "`input`: expected a shape list such as [3, 224, 224] or {{shape: [...], dtype: ...}}, got {}",
                    fields::describe(n)
                ),
            ))
        }
    };
    let Value::Seq(items) = &shape_node.value else {
        return Err(SpecError::new(
            file,
            shape_node.loc,
            format!("`shape`: expected a list of positive integers, got {}", fields::describe(shape_node)),
        ));
    };
    if items.is_empty() {
        return Err(SpecError::new(file, shape_node.loc, "`input`: expected at least one dimension, got []"));
    }
    // With the batch, the tensor has one more dimension than listed.
    crate::shape::check_rank(items.len() + 1)
        .map_err(|m| SpecError::new(file, shape_node.loc, format!("`input`: {m} (batch included)")))?;
    let shape = items
        .iter()
        .map(|d| match d.value {
            Value::Int(v) if v >= 1 && v <= u64::MAX as i128 => Ok(v as u64),
            _ => Err(SpecError::new(
                file,
                d.loc,
                format!("`input`: expected a positive integer dimension, got {}", fields::describe(d)),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InputSpec { shape, dtype: in_dtype, loc: n.loc })
}

/// Longest layer name, in bytes (after block expansion: `layer2.0.conv1` is 14).
pub const MAX_NAME_BYTES: usize = 1024;

/// Why `name` cannot be a layer name, if it cannot: too long, or a control character in it
/// (a newline or an ESC sequence in a name would forge lines in errors and tables).
pub fn bad_name(name: &str) -> Option<String> {
    if name.len() > MAX_NAME_BYTES {
        return Some(format!("`name`: {} bytes, more than the limit of {MAX_NAME_BYTES}", name.len()));
    }
    name.chars().find(|c| c.is_control()).map(|c| {
        format!("`name`: control character {} in a layer name (names must be printable)", crate::error::quote_char(c))
    })
}

/// Error on any key of `entries` not in `known` (with "did you mean"); keys must be strings.
pub(crate) fn check_keys(
    file: &str,
    entries: &[(Node, Node)],
    known: &[&str],
    layer: Option<&LayerRef>,
) -> Result<(), SpecError> {
    for (k, _) in entries {
        let err = |msg: String| {
            let e = SpecError::new(file, k.loc, msg);
            match layer {
                Some(l) => e.in_layer(l),
                None => e,
            }
        };
        match &k.value {
            Value::Str(s) if known.contains(&s.as_str()) => {}
            Value::Str(s) => {
                return Err(err(format!(
                    "unknown field `{s}`{}; expected one of: {}",
                    did_you_mean(s, known.iter().copied()),
                    known.join(", ")
                )))
            }
            _ => return Err(err(format!("expected a field name, got {}", fields::describe(k)))),
        }
    }
    Ok(())
}

/// [`check_keys`] for a layer of a kind with fields `kind_fields`: the list of known fields
/// (common ones first) is built only for the message of an unknown one.
fn check_layer_keys(
    file: &str,
    entries: &[(Node, Node)],
    kind_fields: &[&str],
    id: &LayerRef,
) -> Result<(), SpecError> {
    let all_known = entries.iter().all(|(k, _)| {
        matches!(&k.value, Value::Str(s) if COMMON_FIELDS.contains(&s.as_str()) || kind_fields.contains(&s.as_str()))
    });
    if all_known {
        return Ok(());
    }
    let known: Vec<&str> = COMMON_FIELDS.iter().chain(kind_fields).copied().collect();
    check_keys(file, entries, &known, Some(id))
}

fn parse_layer(file: &str, index: usize, node: Node) -> Result<LayerSpec, SpecError> {
    let n = &node;
    // Before its name and kind are read, a layer is named by its index (`#3`) and kind `?`;
    // built only for an error (100,000 layers would otherwise make 200,000 strings for nothing).
    let unnamed = || LayerRef { index, name: format!("#{index}"), kind: "?".into() };
    let Value::Map(entries) = &n.value else {
        return Err(SpecError::new(
            file,
            n.loc,
            format!("expected a layer mapping with `name` and `kind`, got {}", fields::describe(n)),
        )
        .in_layer(&unnamed()));
    };
    let name = match n.get("name") {
        Some(Node { value: Value::Str(s), loc }) if !s.is_empty() => {
            if let Some(m) = bad_name(s) {
                return Err(SpecError::new(file, *loc, m).in_layer(&LayerRef { name: s.clone(), ..unnamed() }));
            }
            s.clone()
        }
        Some(v) => {
            return Err(SpecError::new(
                file,
                v.loc,
                format!("`name`: expected a non-empty string, got {}", fields::describe(v)),
            )
            .in_layer(&unnamed()))
        }
        None => return Err(SpecError::new(file, n.loc, "missing required field `name`").in_layer(&unnamed())),
    };
    let named = |name: &str| LayerRef { name: name.to_owned(), ..unnamed() };
    let kind_name = match n.get("kind") {
        Some(Node { value: Value::Str(s), .. }) => s.as_str(),
        Some(v) => {
            return Err(SpecError::new(file, v.loc, format!("`kind`: expected a string, got {}", fields::describe(v)))
                .in_layer(&named(&name)))
        }
        None => return Err(SpecError::new(file, n.loc, "missing required field `kind`").in_layer(&named(&name))),
    };
    let Some(kind_fields) = Kind::fields(kind_name) else {
        let loc = n.get("kind").map(|k| k.loc).unwrap_or(n.loc);
        return Err(SpecError::new(
            file,
            loc,
            format!(
                "unknown kind \"{kind_name}\"{}; known kinds: {}",
                did_you_mean(kind_name, Kind::NAMES.iter().copied()),
                Kind::NAMES.join(", ")
            ),
        )
        .in_layer(&named(&name)));
    };
    let id = LayerRef { index, name, kind: kind_name.to_owned() };
    check_layer_keys(file, entries, kind_fields, &id)?;
    let f = Fields { file, node: n, layer: &id };
    let inputs = match f.get("inputs") {
        None => Vec::new(),
        Some(Node { value: Value::Str(s), loc }) => vec![InputRef { name: s.clone(), loc: *loc }],
        Some(Node { value: Value::Seq(items), loc }) => {
            if items.is_empty() {
                return Err(f.err(*loc, "`inputs`: expected at least one layer name, got []"));
            }
            items
                .iter()
                .map(|i| match &i.value {
                    Value::Str(s) => Ok(InputRef { name: s.clone(), loc: i.loc }),
                    _ => Err(f.err(i.loc, format!("`inputs`: expected a layer name, got {}", fields::describe(i)))),
                })
                .collect::<Result<_, _>>()?
        }
        Some(v) => {
            return Err(f.err(v.loc, format!("`inputs`: expected a list of layer names, got {}", fields::describe(v))))
        }
    };
    let trainable = f.bool("trainable")?.unwrap_or(true);
    let shares = match f.get("shares") {
        None => None,
        Some(Node { value: Value::Str(s), loc }) => Some(InputRef { name: s.clone(), loc: *loc }),
        Some(v) => return Err(f.err(v.loc, format!("`shares`: expected a layer name, got {}", fields::describe(v)))),
    };
    let kind = Kind::parse(kind_name, &f)?;
    Ok(LayerSpec { id, kind, inputs, trainable, shares, node, origin: blocks::Origin::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_bytes("t.yaml", text.as_bytes()).unwrap_err().to_string()
    }

    const HEAD: &str = "name: t\ninput: [3, 8, 8]\nlayers:\n";

    #[test]
    fn parses_a_small_spec() {
        let s = parse_bytes(
            "t.yaml",
            format!("{HEAD}  - {{name: c, kind: conv2d, c_out: 4, kernel: 3}}\n  - {{name: r, kind: relu}}\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(s.input.shape, vec![3, 8, 8]);
        assert_eq!((s.batch, s.dtype), (1, DType::F32));
        assert_eq!(s.layers.len(), 2);
        assert_eq!(s.layers[1].kind.name(), "relu");
    }

    #[test]
    fn errors_name_file_line_col_and_layer() {
        assert_eq!(
            err(&format!("{HEAD}  - {{name: c, kind: conv2, c_out: 4}}\n")),
            format!(
                "t.yaml:4:21: layer #0 \"c\" (?): unknown kind \"conv2\" (did you mean `conv2d`?); known kinds: {}",
                Kind::NAMES.join(", ")
            )
        );
        assert!(err(&format!("{HEAD}  - {{name: c, kind: conv2d, c_out: 4, kernal: 3}}\n"))
            .starts_with("t.yaml:4:39: layer #0 \"c\" (conv2d): unknown field `kernal` (did you mean `kernel`?)"));
        assert!(err(&format!("{HEAD}  - {{name: c, kind: relu}}\n  - {{name: c, kind: relu}}\n"))
            .starts_with("t.yaml:5:12: layer #1 \"c\" (relu): duplicate layer name \"c\" (first defined at 4:12)"));
        assert!(err("name: t\ninput: [3, 8\n").starts_with("t.yaml:2:8: invalid YAML: "));
        assert!(err(&format!("{HEAD}  - {{name: c, kind: conv2d, c_out: -4, kernel: 3}}\n"))
            .contains("`c_out`: expected a positive integer, got -4"));
    }

    #[test]
    fn non_utf8_is_located() {
        let e = parse_bytes("t.yaml", b"name: t\ninput: [3\xff]\n").unwrap_err();
        assert_eq!(e.to_string(), "t.yaml:2:10: not valid UTF-8 (byte 0xff)");
    }

    #[test]
    fn alias_bomb_is_refused() {
        // "billion laughs": 9 levels of 10 aliases each would expand to 10^9 nodes.
        let mut y = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let (p, c) = ((b'a' + i - 1) as char, (b'a' + i) as char);
            y += &format!("{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n");
        }
        let e = parse_bytes("t.yaml", y.as_bytes()).unwrap_err();
        assert!(e.message.starts_with("invalid YAML"), "{e}");
    }
}
