//! Reusable blocks: parameterised groups of layers, expanded into plain layers before the
//! typed parsing of [`super::from_node`].
//!
//! Expansion works on the spanned [`Node`] tree and keeps every node's line:column from the
//! original text, so an error in an expanded layer points into the block's definition (the
//! message names the expanded layer, e.g. `layer2.0.conv1`). The syntax (docs/spec-format.md):
//!
//! ```yaml
//! blocks:
//!   basic:                       # a block named `basic`
//!     params: {width: 64, stride: 1, downsample: false}   # defaults (`~` = required)
//!     inputs: [input]            # names of the block's inputs (default [input])
//!     output: relu_1             # the block's output (default: its last layer)
//!     layers:
//!       - {name: conv1, kind: conv2d, c_out: "${width}", kernel: 3, stride: "${stride}"}
//!       - {name: downsample.0, kind: conv2d, c_out: "${width}", kernel: 1, inputs: [input], if: "${downsample}"}
//!       - {name: add, kind: add, inputs: [conv1, downsample.0]}
//! layers:
//!   - {name: layer1, block: basic, repeat: 2, args: {width: 64}, first: {stride: 2, downsample: true}}
//! ```
//!
//! * A layer entry with `block:` is an instance: its layers are named `NAME.LOCAL`, or
//!   `NAME.K.LOCAL` for repetition `K` of `repeat: N` (PyTorch module paths: `layer1.0.conv1`).
//!   Repetition `K + 1` takes repetition `K`'s output as its first input; `first:` overrides
//!   `args` for repetition 0 only; `${i}` (the repetition index) may be used in `args` and in
//!   the name (`encoder_layer_${i}` names repetitions `encoder_layer_0`, `encoder_layer_1`, …
//!   instead of `NAME.K`). The instance's name then stands for its output.
//! * Inside a block, names refer to the block's own layers and inputs only.
//! * `${expr}`: a parameter, or integer arithmetic on parameters (`+ - * / %`, parentheses;
//!   `/` rounds down). A string that is exactly `${expr}` takes the value's type (integer,
//!   boolean, list, …); elsewhere in a string the value is written as text.
//! * `if: false` (usually `if: "${param}"`) removes a layer; a reference to it then means its
//!   (first) input, so an optional branch (a downsample shortcut) falls back to the identity.

use super::expr::{eval, is_ident, list_names, Evaluated, Vars};
use super::node::{Loc, Node, Value};
use super::{check_keys, fields::describe, MAX_LAYERS};
use crate::error::{did_you_mean, LayerRef, SpecError};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Fields of a block instance entry.
pub const INSTANCE_FIELDS: &[&str] = &["name", "block", "args", "first", "repeat", "inputs", "if", "checkpoint"];

/// Which block-instance copies an expanded layer belongs to (for activation checkpointing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The top-level block-instance copy the layer was expanded from (`model.layers.3`, `layer1.0`,
    /// `dec`): a unit of `--checkpoint blocks`. `None` for a layer written at the top level.
    pub block_copy: Option<String>,
    /// The outermost copy of an instance with `checkpoint: true` that the layer is in: its
    /// checkpointed unit. `None` when no enclosing instance says `checkpoint: true`.
    pub checkpoint: Option<String>,
}

/// Fields of a block definition.
pub const BLOCK_FIELDS: &[&str] = &["params", "inputs", "output", "layers", "description"];

/// Deepest nesting of block instances (a block that instantiates itself stops here).
pub const MAX_NESTING: usize = 32;

struct Block<'a> {
    name: &'a str,
    params: Vec<(String, Rc<Node>)>,
    inputs: Vec<String>,
    output: Option<&'a Node>,
    layers: &'a [Node],
}

struct Ctx<'a> {
    file: &'a str,
    blocks: HashMap<&'a str, Block<'a>>,
    out: Vec<Node>,
    /// Nodes and text produced so far.
    produced: Produced,
    /// Layer entries and repetitions visited so far ([`MAX_EXPANSION_STEPS`]).
    steps: usize,
    /// The block instances being expanded, outermost first (for the nesting message).
    stack: Vec<String>,
    /// Argument values by node: `Some` (shared) when they hold no `${…}`, `None` when they do.
    literal: HashMap<*const Node, Option<Rc<Node>>>,
    /// The origin of each layer in `out`.
    origins: Vec<Origin>,
    /// The instance copies being expanded now.
    origin: Origin,
}

/// Whether `n` has a `${` in any string (then it must be substituted per repetition).
fn has_template(n: &Node) -> bool {
    match &n.value {
        Value::Str(s) => s.contains("${"),
        Value::Seq(items) => items.iter().any(has_template),
        Value::Map(entries) => entries.iter().any(|(k, v)| has_template(k) || has_template(v)),
        _ => false,
    }
}

/// A chain of block names for a message: the first three, "…", the last three.
fn list_chain(stack: &[String]) -> String {
    if stack.len() <= 6 {
        return stack.join(" → ");
    }
    format!("{} → … → {}", stack[..3].join(" → "), stack[stack.len() - 3..].join(" → "))
}

/// One level of expansion: the top level, or one repetition of a block instance.
struct Scope {
    /// `layer1.0.` (empty at the top level).
    prefix: String,
    /// Parameter values.
    vars: Vars,
    /// Local name → full name of the layer whose output it means.
    names: HashMap<String, String>,
    /// Plain layer names of this block, for forward references.
    local: HashSet<String>,
    /// Full name of the output the next layer reads by default.
    last: String,
    /// Block name, for messages (`None` at the top level).
    block: Option<String>,
    /// Names of block instances in this scope (for duplicate-name messages).
    instances: HashSet<String>,
    depth: usize,
}

/// Whether the spec uses blocks, `if:` or `${…}` in its layers and so needs [`expand`].
pub fn needed(root: &Node) -> bool {
    if root.get("blocks").is_some() {
        return true;
    }
    match root.get("layers") {
        Some(Node { value: Value::Seq(items), .. }) => {
            items.iter().any(|l| l.get("block").is_some() || l.get("if").is_some())
        }
        _ => false,
    }
}

/// The layer list with every block instance expanded into plain layers (names hierarchical,
/// inputs explicit and resolved to full names, locations kept).
///
/// Errors: unknown blocks, parameters or names; bad `${…}` expressions; a non-boolean `if`;
/// wrong input counts; nesting deeper than [`MAX_NESTING`]; more than [`MAX_LAYERS`] layers.
pub fn expand(file: &str, root: &Node) -> Result<(Vec<Node>, Vec<Origin>), SpecError> {
    let mut ctx = Ctx {
        file,
        blocks: HashMap::new(),
        out: Vec::new(),
        produced: Produced::default(),
        steps: 0,
        stack: Vec::new(),
        literal: HashMap::new(),
        origins: Vec::new(),
        origin: Origin::default(),
    };
    if let Some(b) = root.get("blocks") {
        let Value::Map(entries) = &b.value else {
            return Err(SpecError::new(
                file,
                b.loc,
                format!("`blocks`: expected a mapping of block names to blocks, got {}", describe(b)),
            ));
        };
        for (k, v) in entries {
            let Value::Str(name) = &k.value else {
                return Err(SpecError::new(file, k.loc, format!("expected a block name, got {}", describe(k))));
            };
            let block = parse_block(file, name, v)?;
            ctx.blocks.insert(name.as_str(), block);
        }
    }
    let layers = match root.get("layers") {
        Some(Node { value: Value::Seq(items), .. }) => items.as_slice(),
        _ => return Ok((Vec::new(), Vec::new())),
    };
    let mut top = Scope {
        prefix: String::new(),
        vars: HashMap::new(),
        names: HashMap::from([("input".to_owned(), "input".to_owned())]),
        local: HashSet::new(),
        last: "input".into(),
        block: None,
        instances: HashSet::new(),
        depth: 0,
    };
    ctx.layers(&mut top, layers)?;
    Ok((ctx.out, ctx.origins))
}

fn parse_block<'a>(file: &str, name: &'a str, n: &'a Node) -> Result<Block<'a>, SpecError> {
    let Value::Map(entries) = &n.value else {
        return Err(SpecError::new(
            file,
            n.loc,
            format!("block `{name}`: expected a mapping with `layers`, got {}", describe(n)),
        ));
    };
    check_keys(file, entries, BLOCK_FIELDS, None)?;
    let mut params = Vec::new();
    if let Some(p) = n.get("params") {
        let Value::Map(pe) = &p.value else {
            return Err(SpecError::new(
                file,
                p.loc,
                format!("block `{name}`: `params`: expected a mapping of names to defaults, got {}", describe(p)),
            ));
        };
        for (k, v) in pe {
            match &k.value {
                Value::Str(s) if is_ident(s) => params.push((s.clone(), Rc::new(v.clone()))),
                _ => {
                    return Err(SpecError::new(
                        file,
                        k.loc,
                        format!("block `{name}`: expected a parameter name (letters, digits, _), got {}", describe(k)),
                    ))
                }
            }
        }
    }
    let inputs = match n.get("inputs") {
        None => vec!["input".to_owned()],
        Some(Node { value: Value::Seq(items), .. }) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or_else(|| {
                    SpecError::new(
                        file,
                        i.loc,
                        format!("block `{name}`: `inputs`: expected a name, got {}", describe(i)),
                    )
                })
            })
            .collect::<Result<_, SpecError>>()?,
        Some(v) => {
            return Err(SpecError::new(
                file,
                v.loc,
                format!("block `{name}`: `inputs`: expected a non-empty list of names, got {}", describe(v)),
            ))
        }
    };
    let layers = match n.get("layers") {
        Some(Node { value: Value::Seq(items), .. }) if !items.is_empty() => items.as_slice(),
        Some(v) => {
            return Err(SpecError::new(
                file,
                v.loc,
                format!("block `{name}`: `layers`: expected a non-empty list, got {}", describe(v)),
            ))
        }
        None => return Err(SpecError::new(file, n.loc, format!("block `{name}`: missing required field `layers`"))),
    };
    Ok(Block { name, params, inputs, output: n.get("output"), layers })
}

/// Where a layer entry's `name` is written (or the entry, without one).
fn name_loc(l: &Node) -> Loc {
    l.get("name").map_or(l.loc, |n| n.loc)
}

fn str_node(loc: Loc, s: &str) -> Node {
    Node::synthetic(loc, Value::Str(s.to_owned()))
}

impl<'a> Ctx<'a> {
    fn err(&self, loc: Loc, name: &str, kind: &str, msg: impl Into<String>) -> SpecError {
        SpecError::new(self.file, loc, msg).in_layer(&LayerRef {
            index: self.out.len(),
            name: name.to_owned(),
            kind: kind.to_owned(),
        })
    }

    fn layers(&mut self, scope: &mut Scope, layers: &'a [Node]) -> Result<(), SpecError> {
        for l in layers {
            if l.get("block").is_none() {
                if let Some(Value::Str(s)) = l.get("name").map(|n| &n.value) {
                    if !s.contains("${") {
                        scope.local.insert(s.clone());
                    }
                }
            }
        }
        for l in layers {
            self.entry(scope, l)?;
        }
        Ok(())
    }

    /// Resolve a reference written in `scope` to a full layer name; `field` is what holds it
    /// (`inputs`, `output`, `tied_to`, `shares`), for messages.
    fn resolve(&self, scope: &Scope, r: &Node, layer: &str, kind: &str, field: &str) -> Result<String, SpecError> {
        let s = match &self.subst(&scope.vars, r).map_err(|e| e.in_layer(&self.layer_ref(layer, kind)))?.value {
            Value::Str(s) => s.clone(),
            _ => {
                return Err(self.err(
                    r.loc,
                    layer,
                    kind,
                    format!("`{field}`: expected a layer name, got {}", describe(r)),
                ))
            }
        };
        if let Some(full) = scope.names.get(&s) {
            return Ok(full.clone());
        }
        match &scope.block {
            None => Ok(s),
            Some(_) if scope.local.contains(&s) => Ok(format!("{}{s}", scope.prefix)),
            Some(b) => {
                let known = || scope.names.keys().map(String::as_str).chain(scope.local.iter().map(String::as_str));
                let hint = did_you_mean(&s, known());
                let what = if field == "inputs" { "input" } else { field };
                Err(self.err(
                    r.loc,
                    layer,
                    kind,
                    format!(
                        "unknown {what} \"{s}\"{hint} in block `{b}`: expected one of the block's layers or inputs ({})",
                        list_names(known())
                    ),
                ))
            }
        }
    }

    fn layer_ref(&self, name: &str, kind: &str) -> LayerRef {
        LayerRef { index: self.out.len(), name: name.to_owned(), kind: kind.to_owned() }
    }

    fn entry(&mut self, scope: &mut Scope, l: &'a Node) -> Result<(), SpecError> {
        let Value::Map(entries) = &l.value else {
            return Err(self.err(
                l.loc,
                &format!("#{}", self.out.len()),
                "?",
                format!("expected a layer mapping with `name` and `kind`, got {}", describe(l)),
            ));
        };
        self.steps += 1;
        if self.steps > MAX_EXPANSION_STEPS {
            return Err(self.err(
                l.loc,
                &format!("#{}", self.out.len()),
                "?",
                format!(
                    "block expansion visits more than {MAX_EXPANSION_STEPS} layer entries and repetitions \
                     (layers removed by `if: false` count too)"
                ),
            ));
        }
        let kind = match (l.get("block"), l.get("kind")) {
            (Some(b), _) => b.as_str().unwrap_or("?").to_owned(),
            (None, Some(k)) => k.as_str().unwrap_or("?").to_owned(),
            (None, None) => "?".into(),
        };
        let name_node = l.get("name");
        let deferred = l.get("block").is_some() && l.get("repeat").is_some();
        let name_node = match name_node {
            // `${i}` in a repeated instance's name is the repetition index, filled in per repetition.
            Some(n) if deferred => Some(n.clone()),
            Some(n) => Some(self.subst(&scope.vars, n).map_err(|e| {
                // The name is what failed: name the layer by its text as written.
                let written =
                    n.as_str().map_or_else(|| format!("#{}", self.out.len()), |t| format!("{}{t}", scope.prefix));
                e.in_layer(&self.layer_ref(&written, &kind))
            })?),
            None => None,
        };
        let local = match name_node {
            Some(Node { value: Value::Str(s), .. }) if !s.is_empty() => s,
            Some(v) => {
                return Err(self.err(
                    v.loc,
                    &format!("#{}", self.out.len()),
                    "?",
                    format!("`name`: expected a non-empty string, got {}", describe(&v)),
                ))
            }
            None => return Err(self.err(l.loc, &format!("#{}", self.out.len()), "?", "missing required field `name`")),
        };
        let full = format!("{}{local}", scope.prefix);
        // Inputs, resolved (default: the previous output in this scope).
        let inputs: Vec<(String, Loc)> = match l.get("inputs") {
            None | Some(Node { value: Value::Null, .. }) => vec![(scope.last.clone(), l.loc)],
            Some(n @ Node { value: Value::Str(_), .. }) => {
                vec![(self.resolve(scope, n, &full, &kind, "inputs")?, n.loc)]
            }
            Some(Node { value: Value::Seq(items), loc }) => {
                if items.is_empty() {
                    return Err(self.err(*loc, &full, &kind, "`inputs`: expected at least one layer name, got []"));
                }
                items.iter().map(|i| Ok((self.resolve(scope, i, &full, &kind, "inputs")?, i.loc))).collect::<Result<
                    _,
                    SpecError,
                >>(
                )?
            }
            Some(v) => {
                return Err(self.err(
                    v.loc,
                    &full,
                    &kind,
                    format!("`inputs`: expected a list of layer names, got {}", describe(v)),
                ))
            }
        };
        if scope.names.contains_key(&local) && local != "input" {
            let what = if scope.instances.contains(&local) { "a block instance" } else { "a layer" };
            return Err(self.err(
                name_loc(l),
                &full,
                &kind,
                format!("duplicate name \"{local}\": {what} here already has it"),
            ));
        }
        if let Some(c) = l.get("if") {
            let v = self.subst(&scope.vars, c).map_err(|e| e.in_layer(&self.layer_ref(&full, &kind)))?;
            match v.value {
                Value::Bool(true) => {}
                Value::Bool(false) => {
                    scope.names.insert(local, inputs[0].0.clone());
                    return Ok(());
                }
                _ => {
                    return Err(self.err(
                        c.loc,
                        &full,
                        &kind,
                        format!("`if`: expected true or false, got {}", describe(&v)),
                    ))
                }
            }
        }
        if let Some(b) = l.get("block") {
            return self.instance(scope, l, entries, b, local, full, inputs);
        }
        if self.out.len() >= MAX_LAYERS {
            return Err(self.err(l.loc, &full, &kind, format!("more than {MAX_LAYERS} layers after expanding blocks")));
        }
        let mut new_entries = Vec::with_capacity(entries.len() + 1);
        for (k, v) in entries {
            match k.as_str() {
                Some("name") => new_entries.push((k.clone(), str_node(v.loc, &full))),
                Some("inputs") | Some("if") => {}
                // Names of other layers: block-local inside a block, like `inputs`.
                Some(field @ ("tied_to" | "shares")) if v.as_str().is_some() => {
                    let r = self.resolve(scope, v, &full, &kind, field)?;
                    new_entries.push((k.clone(), str_node(v.loc, &r)))
                }
                _ => new_entries.push((
                    k.clone(),
                    self.subst(&scope.vars, v).map_err(|e| e.in_layer(&self.layer_ref(&full, &kind)))?,
                )),
            }
        }
        let in_loc = l.get("inputs").map_or(l.loc, |n| n.loc);
        let seq = inputs.iter().map(|(s, loc)| str_node(*loc, s)).collect();
        new_entries.push((str_node(in_loc, "inputs"), Node::synthetic(in_loc, Value::Seq(seq))));
        self.out.push(Node::synthetic(l.loc, Value::Map(new_entries)));
        self.origins.push(self.origin.clone());
        scope.names.insert(local, full.clone());
        scope.last = full;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn instance(
        &mut self,
        scope: &mut Scope,
        l: &'a Node,
        entries: &'a [(Node, Node)],
        b: &'a Node,
        local: String,
        full: String,
        inputs: Vec<(String, Loc)>,
    ) -> Result<(), SpecError> {
        let bname = match &b.value {
            Value::Str(s) => s.as_str(),
            _ => {
                return Err(self.err(b.loc, &full, "?", format!("`block`: expected a block name, got {}", describe(b))))
            }
        };
        let lref = self.layer_ref(&full, bname);
        check_keys(self.file, entries, INSTANCE_FIELDS, Some(&lref))?;
        if l.get("kind").is_some() {
            return Err(self.err(l.loc, &full, bname, "a layer has either `kind` or `block`, not both"));
        }
        let Some(block) = self.blocks.get(bname) else {
            let hint = did_you_mean(bname, self.blocks.keys().copied());
            return Err(self.err(
                b.loc,
                &full,
                bname,
                format!("unknown block \"{bname}\"{hint}; defined blocks: {}", list_names(self.blocks.keys().copied())),
            ));
        };
        if scope.depth >= MAX_NESTING {
            // Say whether a block really contains itself, or the chain is just long.
            let why = match self.stack.iter().rposition(|s| s == bname) {
                Some(p) => format!("block `{bname}` contains itself: {} → {bname}", self.stack[p..].join(" → ")),
                None => format!("the chain is {} → {bname}", list_chain(&self.stack)),
            };
            return Err(self.err(b.loc, &full, bname, format!("blocks nested more than {MAX_NESTING} deep ({why})")));
        }
        let (block_name, block_inputs, block_output, block_layers) =
            (block.name, block.inputs.clone(), block.output, block.layers);
        let defaults: Vec<(String, Rc<Node>)> = block.params.clone();
        if inputs.len() != block_inputs.len() {
            let loc = l.get("inputs").map_or(l.loc, |n| n.loc);
            return Err(self.err(
                loc,
                &full,
                bname,
                format!(
                    "block `{bname}` takes {} input(s) ({}), got {}",
                    block_inputs.len(),
                    block_inputs.join(", "),
                    inputs.len()
                ),
            ));
        }
        let args = |this: &mut Self, key: &str, vars: &Vars| -> Result<Vec<(String, Rc<Node>)>, SpecError> {
            let Some(a) = l.get(key) else { return Ok(Vec::new()) };
            let Value::Map(ae) = &a.value else {
                return Err(SpecError::new(
                    this.file,
                    a.loc,
                    format!("`{key}`: expected a mapping of parameter values, got {}", describe(a)),
                )
                .in_layer(&lref));
            };
            let mut out = Vec::new();
            for (k, v) in ae {
                let Some(s) = k.as_str() else {
                    return Err(SpecError::new(
                        this.file,
                        k.loc,
                        format!("`{key}`: expected a parameter name, got {}", describe(k)),
                    )
                    .in_layer(&lref));
                };
                if !defaults.iter().any(|(p, _)| p == s) {
                    let hint = did_you_mean(s, defaults.iter().map(|(p, _)| p.as_str()));
                    return Err(SpecError::new(
                        this.file,
                        k.loc,
                        format!(
                            "block `{bname}` has no parameter `{s}`{hint}; its parameters: {}",
                            list_names(defaults.iter().map(|(p, _)| p.as_str()))
                        ),
                    )
                    .in_layer(&lref));
                }
                // A value without `${…}` is the same in every repetition and every visit: share it.
                let key = v as *const Node;
                let literal = match this.literal.get(&key) {
                    Some(c) => c.clone(),
                    None => {
                        let c = (!has_template(v)).then(|| Rc::new(v.clone()));
                        this.literal.insert(key, c.clone());
                        c
                    }
                };
                let value = match literal {
                    Some(rc) => rc,
                    None => Rc::new(this.subst(vars, v).map_err(|e| e.in_layer(&lref))?),
                };
                out.push((s.to_owned(), value));
            }
            Ok(out)
        };
        let repeat = match l.get("repeat") {
            None => None,
            Some(r) => match self.subst(&scope.vars, r).map_err(|e| e.in_layer(&lref))?.value {
                Value::Int(v) if v >= 1 && v <= MAX_LAYERS as i128 => Some(v as usize),
                _ => {
                    return Err(self.err(
                        r.loc,
                        &full,
                        bname,
                        format!("`repeat`: expected a positive integer up to {MAX_LAYERS}, got {}", describe(r)),
                    ))
                }
            },
        };
        let checkpoint = match l.get("checkpoint") {
            None => false,
            Some(c) => match self.subst(&scope.vars, c).map_err(|e| e.in_layer(&lref))?.value {
                Value::Bool(v) => v,
                _ => {
                    return Err(self.err(
                        c.loc,
                        &full,
                        bname,
                        format!("`checkpoint`: expected true or false, got {}", describe(c)),
                    ))
                }
            },
        };
        let mut prev = inputs[0].0.clone();
        self.stack.push(bname.to_owned());
        for k in 0..repeat.unwrap_or(1) {
            if k > 0 {
                self.steps += 1;
                if self.steps > MAX_EXPANSION_STEPS {
                    return Err(self.err(
                        l.loc,
                        &full,
                        bname,
                        format!(
                            "block expansion visits more than {MAX_EXPANSION_STEPS} layer entries and repetitions \
                             (layers removed by `if: false` count too)"
                        ),
                    ));
                }
            }
            let mut outer = scope.vars.clone();
            if repeat.is_some() {
                outer.insert("i".into(), Rc::new(Node::synthetic(l.loc, Value::Int(k as i128))));
            }
            let args_all = args(self, "args", &outer)?;
            let args_first = if k == 0 { args(self, "first", &outer)? } else { Vec::new() };
            let prefix = match (repeat, full.contains("${")) {
                (Some(_), true) => {
                    let n = self
                        .subst(&outer, &str_node(l.get("name").map_or(l.loc, |n| n.loc), &full))
                        .map_err(|e| e.in_layer(&lref))?;
                    format!("{}.", n.as_str().unwrap_or(&full))
                }
                (Some(_), false) => format!("{full}.{k}."),
                (None, _) => format!("{full}."),
            };
            let mut vars = Vars::new();
            for (p, d) in &defaults {
                if d.value != Value::Null {
                    vars.insert(p.clone(), Rc::clone(d));
                }
            }
            for (p, v) in args_all.iter().chain(args_first.iter()) {
                vars.insert(p.clone(), v.clone());
            }
            if let Some((p, _)) = defaults.iter().find(|(p, _)| !vars.contains_key(p)) {
                return Err(self.err(
                    l.loc,
                    &full,
                    bname,
                    format!("block `{bname}` needs a value for parameter `{p}` (it has no default); add it to `args`"),
                ));
            }
            let mut names = HashMap::new();
            for (j, bi) in block_inputs.iter().enumerate() {
                names.insert(bi.clone(), if j == 0 { prev.clone() } else { inputs[j].0.clone() });
            }
            let mut child = Scope {
                prefix,
                vars,
                names,
                local: HashSet::new(),
                last: prev.clone(),
                block: Some(block_name.to_owned()),
                instances: HashSet::new(),
                depth: scope.depth + 1,
            };
            let outer_origin = self.origin.clone();
            let copy = child.prefix.trim_end_matches('.').to_owned();
            if scope.depth == 0 {
                self.origin.block_copy = Some(copy.clone());
            }
            if checkpoint && self.origin.checkpoint.is_none() {
                self.origin.checkpoint = Some(copy);
            }
            self.layers(&mut child, block_layers)?;
            self.origin = outer_origin;
            prev = match block_output {
                None => child.last.clone(),
                Some(o) => self.resolve(&child, o, &full, bname, "output")?,
            };
        }
        self.stack.pop();
        scope.instances.insert(local.clone());
        scope.names.insert(local, prev.clone());
        scope.last = prev;
        Ok(())
    }
}

/// Most nodes block expansion may produce (every field of every expanded layer, and every item of
/// a list a `${param}` copies in): a 1.2 MB spec could otherwise ask for billions.
pub const MAX_EXPANDED_NODES: usize = 5_000_000;

/// Most bytes of string text block expansion may produce (names and `${…}` text).
pub const MAX_EXPANDED_BYTES: usize = 64 << 20;

/// Most layer entries and block repetitions expansion may visit, layers removed by `if: false`
/// included (nested `repeat`s of skipped layers would otherwise run for hours).
pub const MAX_EXPANSION_STEPS: usize = 4 * MAX_LAYERS;

/// What expansion has produced so far, against [`MAX_EXPANDED_NODES`] and [`MAX_EXPANDED_BYTES`].
#[derive(Debug, Default)]
struct Produced {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
}

impl Produced {
    fn charge(&self, nodes: usize, bytes: usize) -> Result<(), String> {
        let n = self.nodes.get().saturating_add(nodes);
        let b = self.bytes.get().saturating_add(bytes);
        self.nodes.set(n);
        self.bytes.set(b);
        if n > MAX_EXPANDED_NODES {
            return Err(format!(
                "block expansion makes more than {MAX_EXPANDED_NODES} YAML nodes (a large `${{param}}` list repeated?)"
            ));
        }
        if b > MAX_EXPANDED_BYTES {
            return Err(format!("block expansion makes more than {MAX_EXPANDED_BYTES} bytes of text"));
        }
        Ok(())
    }

    /// A copy of `n`, each node charged.
    fn copy(&self, loc: Loc, n: &Node) -> Result<Node, String> {
        let value = match &n.value {
            Value::Seq(items) => {
                self.charge(1, 0)?;
                Value::Seq(items.iter().map(|i| self.copy(i.loc, i)).collect::<Result<_, _>>()?)
            }
            Value::Map(entries) => {
                self.charge(1, 0)?;
                Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| Ok((self.copy(k.loc, k)?, self.copy(v.loc, v)?)))
                        .collect::<Result<_, String>>()?,
                )
            }
            Value::Str(s) => {
                self.charge(1, s.len())?;
                Value::Str(s.clone())
            }
            v => {
                self.charge(1, 0)?;
                v.clone()
            }
        };
        Ok(Node { loc, value })
    }
}

impl Ctx<'_> {
    /// `n` with every `${expr}` in its strings (recursively) replaced by its value in `vars`;
    /// every node produced is charged to the expansion budget.
    fn subst(&self, vars: &Vars, n: &Node) -> Result<Node, SpecError> {
        let err = |m: String| SpecError::new(self.file, n.loc, m);
        Ok(match &n.value {
            Value::Str(s) if s.contains("${") => {
                let show = crate::error::escape_control(&truncate(s, 60)).into_owned();
                if let Some(inner) = s
                    .strip_prefix("${")
                    .and_then(|r| r.strip_suffix('}'))
                    .filter(|i| !i.contains("${") && !i.contains('}'))
                {
                    match eval(inner, vars).map_err(|m| err(format!("`{show}`: {m}")))? {
                        Evaluated::Int(v) => {
                            self.produced.charge(1, 0).map_err(err)?;
                            Node { loc: n.loc, value: Value::Int(v) }
                        }
                        Evaluated::Param(p) => self.produced.copy(n.loc, &p).map_err(err)?,
                    }
                } else {
                    let mut out = String::new();
                    let mut rest = s.as_str();
                    while let Some(i) = rest.find("${") {
                        out.push_str(&rest[..i]);
                        let Some(j) = rest[i..].find('}') else {
                            return Err(err(format!("`{show}`: `${{` without a closing `}}`")));
                        };
                        let v = eval(&rest[i + 2..i + j], vars).map_err(|m| err(format!("`{show}`: {m}")))?;
                        match v.into_value() {
                            Value::Str(t) => out.push_str(&t),
                            Value::Int(t) => out.push_str(&t.to_string()),
                            Value::Bool(t) => out.push_str(&t.to_string()),
                            Value::Float(t) => out.push_str(&t.to_string()),
                            other => {
                                return Err(err(format!("`{show}`: cannot write {} into a string", other.type_name())))
                            }
                        }
                        self.produced.charge(0, out.len()).map_err(err)?;
                        rest = &rest[i + j + 1..];
                    }
                    out.push_str(rest);
                    self.produced.charge(1, out.len()).map_err(err)?;
                    Node { loc: n.loc, value: Value::Str(out) }
                }
            }
            Value::Seq(items) => {
                self.produced.charge(1, 0).map_err(err)?;
                Node {
                    loc: n.loc,
                    value: Value::Seq(items.iter().map(|i| self.subst(vars, i)).collect::<Result<_, _>>()?),
                }
            }
            Value::Map(entries) => {
                self.produced.charge(1, 0).map_err(err)?;
                Node {
                    loc: n.loc,
                    value: Value::Map(
                        entries
                            .iter()
                            .map(|(k, v)| Ok((k.clone(), self.subst(vars, v)?)))
                            .collect::<Result<_, SpecError>>()?,
                    ),
                }
            }
            _ => self.produced.copy(n.loc, n).map_err(err)?,
        })
    }
}

/// At most `n` characters of `s`, with "…" when cut.
fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::parse_bytes;

    fn names(text: &str) -> Vec<(String, Vec<String>)> {
        let s = parse_bytes("t.yaml", text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        s.layers.iter().map(|l| (l.id.name.clone(), l.inputs.iter().map(|i| i.name.clone()).collect())).collect()
    }

    const BASIC: &str = "name: t
input: [8, 16, 16]
blocks:
  basic:
    params: {width: ~, stride: 1, downsample: false}
    layers:
      - {name: conv1, kind: conv2d, c_out: \"${width}\", kernel: 3, padding: 1, stride: \"${stride}\", bias: false}
      - {name: relu, kind: relu}
      - {name: conv2, kind: conv2d, c_out: \"${width * 2 / 2}\", kernel: 3, padding: 1, bias: false}
      - {name: downsample.0, kind: conv2d, c_out: \"${width}\", kernel: 1, stride: \"${stride}\", inputs: [input], if: \"${downsample}\"}
      - {name: add, kind: add, inputs: [conv2, downsample.0]}
      - {name: relu_1, kind: relu}
layers:
  - {name: stem, kind: conv2d, c_out: 8, kernel: 1}
  - {name: layer1, block: basic, repeat: 2, args: {width: 16}, first: {stride: 2, downsample: true}}
  - {name: pool, kind: global_avg_pool}
";

    #[test]
    fn repeat_names_wiring_and_optional_branch() {
        let n = names(BASIC);
        let v = |a: &str, b: &[&str]| (a.to_owned(), b.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            n,
            vec![
                v("stem", &["input"]),
                v("layer1.0.conv1", &["stem"]),
                v("layer1.0.relu", &["layer1.0.conv1"]),
                v("layer1.0.conv2", &["layer1.0.relu"]),
                v("layer1.0.downsample.0", &["stem"]),
                v("layer1.0.add", &["layer1.0.conv2", "layer1.0.downsample.0"]),
                v("layer1.0.relu_1", &["layer1.0.add"]),
                v("layer1.1.conv1", &["layer1.0.relu_1"]),
                v("layer1.1.relu", &["layer1.1.conv1"]),
                v("layer1.1.conv2", &["layer1.1.relu"]),
                // downsample.0 left out: the add reads the block input (identity shortcut).
                v("layer1.1.add", &["layer1.1.conv2", "layer1.0.relu_1"]),
                v("layer1.1.relu_1", &["layer1.1.add"]),
                v("pool", &["layer1.1.relu_1"]),
            ]
        );
        // The stride reached conv1 of repetition 0 only: 16 → 8.
        let a = crate::analysis::analyze(parse_bytes("t.yaml", BASIC.as_bytes()).unwrap()).unwrap();
        assert_eq!(a.layers.last().unwrap().output.0, vec![1, 16]);
        assert_eq!(a.layers[1].output.0, vec![1, 16, 8, 8]);
    }

    #[test]
    fn nested_blocks_and_multi_input() {
        let text = "name: t
input: [4, 8, 8]
blocks:
  unit:
    params: {c: 4}
    layers:
      - {name: conv, kind: conv2d, c_out: \"${c}\", kernel: 3, padding: 1}
      - {name: act, kind: relu}
  merge:
    params: {c: 4}
    inputs: [x, skip]
    output: cat
    layers:
      - {name: body, block: unit, args: {c: \"${c}\"}, repeat: 2}
      - {name: cat, kind: concat, inputs: [body, skip]}
      - {name: unused, kind: relu, inputs: [x]}
layers:
  - {name: a, kind: relu}
  - {name: up, block: merge, inputs: [a, input], args: {c: 6}}
  - {name: out, kind: relu}
";
        let n = names(text);
        let got: Vec<&str> = n.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            got,
            ["a", "up.body.0.conv", "up.body.0.act", "up.body.1.conv", "up.body.1.act", "up.cat", "up.unused", "out"]
        );
        assert_eq!(n[5].1, ["up.body.1.act", "input"]);
        assert_eq!(n[7].1, ["up.cat"]);
        let a = crate::analysis::analyze(parse_bytes("t.yaml", text.as_bytes()).unwrap()).unwrap();
        // concat of 6 and 4 channels.
        assert_eq!(a.layers.iter().find(|l| a.layer_spec(l).id.name == "up.cat").unwrap().output.0, vec![1, 10, 8, 8]);
    }

    #[test]
    fn errors_point_into_the_block_definition() {
        let e = |t: &str| parse_bytes("t.yaml", t.as_bytes()).unwrap_err().to_string();
        let bad_kind = BASIC.replace("kind: relu}\n      - {name: conv2", "kind: reluu}\n      - {name: conv2");
        assert!(
            e(&bad_kind).starts_with("t.yaml:8:28: layer #2 \"layer1.0.relu\" (?): unknown kind \"reluu\""),
            "{}",
            e(&bad_kind)
        );
        let bad_param = BASIC.replace("args: {width: 16}", "args: {widht: 16}");
        assert!(
            e(&bad_param).contains("block `basic` has no parameter `widht` (did you mean `width`?)"),
            "{}",
            e(&bad_param)
        );
        let missing = BASIC.replace("args: {width: 16}", "args: {}");
        assert!(e(&missing).contains("needs a value for parameter `width`"), "{}", e(&missing));
        let bad_expr = BASIC.replace("${width * 2 / 2}", "${width * }");
        assert!(e(&bad_expr).starts_with("t.yaml:9:"), "{}", e(&bad_expr));
        assert!(e(&bad_expr).contains("expression ends too early"), "{}", e(&bad_expr));
        let bad_ref = BASIC.replace("inputs: [conv2, downsample.0]", "inputs: [conv3, downsample.0]");
        assert!(e(&bad_ref).contains("unknown input \"conv3\" (did you mean `conv"), "{}", e(&bad_ref));
        let bad_block = BASIC.replace("block: basic", "block: basik");
        assert!(e(&bad_block).contains("unknown block \"basik\" (did you mean `basic`?)"), "{}", e(&bad_block));
        let recursive = "name: t\ninput: [4]\nblocks:\n  r:\n    layers:\n      - {name: x, block: r}\nlayers:\n  - {name: top, block: r}\n";
        assert!(e(recursive).contains("nested more than 32 deep"), "{}", e(recursive));
        let dup = BASIC.replace("  - {name: pool, kind: global_avg_pool}", "  - {name: layer1, kind: global_avg_pool}");
        assert!(e(&dup).starts_with("t.yaml:16:12: layer #12 \"layer1\" (global_avg_pool): duplicate name \"layer1\": a block instance here already has it"), "{}", e(&dup));
        let huge = BASIC.replace("repeat: 2", "repeat: 100000000000");
        assert!(e(&huge).contains("`repeat`: expected a positive integer up to"), "{}", e(&huge));
    }

    #[test]
    fn checkpoint_units_are_block_copies() {
        // `checkpoint` may be a parameter; the outermost marked instance is the unit, and
        // every layer knows its top-level copy (the units of `--checkpoint blocks`).
        let text = "name: t\ninput: [8]\nblocks:\n  inner:\n    layers:\n      \
                    - {name: fc, kind: linear, out_features: 8}\n  outer:\n    params: {ck: false}\n    layers:\n      \
                    - {name: a, block: inner, checkpoint: true}\n      - {name: b, block: inner, checkpoint: \"${ck}\"}\n\
                    layers:\n  - {name: x, block: outer, repeat: 2}\n  - {name: y, block: outer, checkpoint: true}\n  \
                    - {name: z, kind: linear, out_features: 8}\n";
        let spec = crate::spec::parse_bytes("t.yaml", text.as_bytes()).unwrap();
        let got: Vec<(&str, Option<&str>, Option<&str>)> = spec
            .layers
            .iter()
            .map(|l| (l.id.name.as_str(), l.origin.block_copy.as_deref(), l.origin.checkpoint.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("x.0.a.fc", Some("x.0"), Some("x.0.a")),
                ("x.0.b.fc", Some("x.0"), None),
                ("x.1.a.fc", Some("x.1"), Some("x.1.a")),
                ("x.1.b.fc", Some("x.1"), None),
                ("y.a.fc", Some("y"), Some("y")),
                ("y.b.fc", Some("y"), Some("y")),
                ("z", None, None),
            ]
        );
    }

    #[test]
    fn tied_to_and_shares_inside_a_block_are_block_local() {
        let text = "name: t
input: {shape: [4], dtype: i64}
blocks:
  lm:
    layers:
      - {name: wte, kind: embedding, num_embeddings: 10, embedding_dim: 8}
      - {name: head, kind: linear, out_features: 10, bias: false, tied_to: wte}
layers:
  - {name: model, block: lm}
";
        let a = crate::analysis::analyze(parse_bytes("t.yaml", text.as_bytes()).unwrap()).unwrap();
        // 10·8 = 80 params, counted once.
        assert_eq!(a.totals.params, 80);
    }
}
