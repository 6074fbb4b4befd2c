//! Analysis: shapes, params, buffers, MACs and output bytes of every layer, and totals.
//!
//! Walks the [`Graph`] in execution order, applying each kind's [`crate::kinds::Op`] rules.
//! Never imports candle; knows nothing of output formats.

use crate::error::{did_you_mean, SpecError};
use crate::graph::{Graph, Source};
use crate::kinds::linear::Linear;
use crate::kinds::Kind;
use crate::shape::{add, mul, DType, Shape};
use crate::spec::Spec;

/// One analysed layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerAnalysis {
    /// Index into [`Spec::layers`].
    pub index: usize,
    /// Output shape, with batch.
    pub output: Shape,
    /// Shapes of the inputs, with batch.
    pub input_shapes: Vec<Shape>,
    /// Parameters (elements), frozen ones included.
    pub params: u64,
    /// Of `params`, those that train: 0 for a `trainable: false` layer (and a `shares:` one,
    /// whose params are its owner's), a LoRA layer's adapters ([`crate::kinds::Op::adapter_tensors`]),
    /// else all. The one place gradients, optimizer state and the `trainable` column read.
    pub trainable_params: u64,
    /// Buffers such as BatchNorm running statistics (elements).
    pub buffers: u64,
    /// Multiply-accumulates over the batch (FLOPs = 2 · MACs).
    pub macs: u64,
    /// Output elements × dtype size, in bytes.
    pub output_bytes: u64,
    /// `shares:` the index (into [`Spec::layers`]) of the layer whose parameters this one uses;
    /// its `params` are then 0 here (counted once, at the owner).
    pub shares: Option<usize>,
}

impl LayerAnalysis {
    /// FLOPs = 2 · MACs (one multiply and one add per MAC).
    pub fn flops(&self) -> u64 {
        self.macs.saturating_mul(2)
    }
}

/// Totals over all layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Σ params.
    pub params: u64,
    /// Σ buffers.
    pub buffers: u64,
    /// Σ MACs.
    pub macs: u64,
    /// Σ output bytes (every layer output once, views and in-place outputs included: what the outputs occupy, not what is allocated; the input is not included).
    pub output_bytes: u64,
    /// Bytes of the network input (batch included).
    pub input_bytes: u64,
}

impl Totals {
    /// FLOPs = 2 · MACs.
    pub fn flops(&self) -> u64 {
        self.macs.saturating_mul(2)
    }
}

/// A spec, its graph and every layer's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The spec, after command-line overrides.
    pub spec: Spec,
    /// Its graph.
    pub graph: Graph,
    /// One entry per layer, in execution order.
    pub layers: Vec<LayerAnalysis>,
    /// Totals.
    pub totals: Totals,
}

impl Analysis {
    /// Shape of the network input, with batch.
    pub fn input_shape(&self) -> Shape {
        let mut v = vec![self.spec.batch];
        v.extend_from_slice(&self.spec.input.shape);
        Shape(v)
    }

    /// The layer spec of analysed layer `l`.
    pub fn layer_spec(&self, l: &LayerAnalysis) -> &crate::spec::LayerSpec {
        &self.spec.layers[l.index]
    }
}

/// Analyse a spec: build its graph, then apply each layer's rules in execution order.
///
/// Errors (with the layer and the line:column of the field at fault): rank or channel
/// mismatches, kernels larger than the padded input, groups not dividing channels, integer
/// inputs to layers that need floats, wrong input counts, overflow of any count.
pub fn analyze(spec: Spec) -> Result<Analysis, SpecError> {
    let graph = Graph::build(&spec)?;
    let n = spec.layers.len();
    let mut outputs: Vec<Option<(Shape, DType)>> = vec![None; n];
    let input_shape = {
        let mut v = vec![spec.batch];
        v.extend_from_slice(&spec.input.shape);
        Shape(v)
    };
    let file = spec.file.as_str();
    let input_bytes = input_shape
        .elements()
        .and_then(|e| mul(e, spec.input.dtype.size(), "input bytes"))
        .map_err(|m| SpecError::new(file, spec.input.loc, format!("`input`: {m}")))?;
    let mut layers = Vec::with_capacity(n);
    let mut totals = Totals { input_bytes, ..Totals::default() };
    let mut weights: Vec<Option<[u64; 2]>> = vec![None; n];
    for &i in &graph.order {
        let l = &spec.layers[i];
        let op = l.kind.op();
        let (lo, hi) = op.arity();
        let srcs = &graph.inputs[i];
        if srcs.len() < lo || srcs.len() > hi {
            let want = match (lo, hi) {
                _ if lo == hi => format!("{lo}"),
                (_, usize::MAX) => format!("at least {lo}"),
                _ => format!("{lo} to {hi}"),
            };
            return Err(SpecError::new(file, l.loc("inputs"), format!("expected {want} input(s), got {}", srcs.len()))
                .in_layer(&l.id));
        }
        let mut shapes = Vec::with_capacity(srcs.len());
        for s in srcs {
            let (shape, dtype) = match *s {
                Source::Input => (input_shape.clone(), spec.input.dtype),
                Source::Layer(j) => outputs[j].clone().expect("inputs come first in execution order"),
            };
            if dtype.is_int() != op.takes_int_ids() {
                let message = if op.takes_int_ids() {
                    // PyTorch's nn.Embedding refuses float indices ("Expected tensor for argument
                    // #1 'indices' to have one of the following scalar types: Long, Int").
                    format!("expected integer ids (an input with dtype i64, i32 or u8), got {dtype}")
                } else {
                    format!("expected a floating-point input, got {dtype} (integer ids go into an `embedding` first)")
                };
                return Err(SpecError::new(file, l.node.loc, message).in_layer(&l.id));
            }
            shapes.push(shape);
        }
        let mut cost = op.analyze(&shapes).map_err(|e| {
            let loc = match e.field {
                Some(f) => l.loc(f),
                None => l.node.loc,
            };
            let mut message = e.message;
            if srcs.len() > 1 {
                let named: Vec<String> = srcs
                    .iter()
                    .zip(&shapes)
                    .enumerate()
                    .map(|(k, (s, shape))| {
                        let name = match *s {
                            Source::Input => "input",
                            Source::Layer(j) => spec.layers[j].id.name.as_str(),
                        };
                        format!("{k} = \"{name}\" {shape}")
                    })
                    .collect();
                message = format!("{message}; inputs: {}", named.join(", "));
            }
            SpecError::new(file, loc, message).in_layer(&l.id)
        })?;
        let at = |m: String| SpecError::new(file, l.node.loc, m).in_layer(&l.id);
        weights[i] = weight_shape(&l.kind, &shapes);
        if let Kind::Linear(Linear { tied_to: Some(target), .. }) = &l.kind {
            cost.params = tied_params(&spec, &weights, i, target, cost.params)?;
        }
        let trainable_params = match op.adapter_tensors(&shapes).map_err(|e| at(e.message))? {
            _ if !l.trainable => 0,
            Some(t) => t.iter().try_fold(0u64, |s, &e| add(s, e, "trainable params")).map_err(at)?,
            None => cost.params,
        };
        let elems = cost.output.elements().map_err(at)?;
        let output_bytes = mul(elems, spec.dtype.size(), "output bytes").map_err(at)?;
        totals.params = add(totals.params, cost.params, "total params").map_err(at)?;
        mul(totals.params, spec.dtype.size(), "total param bytes").map_err(at)?;
        totals.buffers = add(totals.buffers, cost.buffers, "total buffers").map_err(at)?;
        totals.macs = add(totals.macs, cost.macs, "total MACs").map_err(at)?;
        mul(cost.macs, 2, "FLOPs").map_err(at)?;
        totals.output_bytes = add(totals.output_bytes, output_bytes, "total output bytes").map_err(at)?;
        outputs[i] = Some((cost.output.clone(), spec.dtype));
        layers.push(LayerAnalysis {
            index: i,
            output: cost.output,
            input_shapes: shapes,
            params: cost.params,
            trainable_params,
            buffers: cost.buffers,
            macs: cost.macs,
            output_bytes,
            shares: None,
        });
    }
    resolve_shares(&spec, &mut layers, &mut totals)?;
    mul(totals.macs, 2, "total FLOPs").map_err(|m| SpecError::new(file, spec.input.loc, m))?;
    Ok(Analysis { spec, graph, layers, totals })
}

/// Resolve `shares:` fields: the owner must exist, not share itself, and have as many
/// parameters as the sharer; the sharer's params then count 0 (the owner holds them).
fn resolve_shares(spec: &Spec, layers: &mut [LayerAnalysis], totals: &mut Totals) -> Result<(), SpecError> {
    let pos: std::collections::HashMap<usize, usize> = layers.iter().enumerate().map(|(p, l)| (l.index, p)).collect();
    for p in 0..layers.len() {
        let l = &spec.layers[layers[p].index];
        let Some(r) = &l.shares else { continue };
        let err = |m: String| SpecError::new(&spec.file, r.loc, m).in_layer(&l.id);
        let Some(owner) = spec.layers.iter().position(|o| o.id.name == r.name) else {
            let names = spec.layers.iter().map(|o| o.id.name.as_str());
            return Err(err(format!(
                "`shares`: unknown layer \"{}\"{}",
                r.name,
                crate::error::did_you_mean(&r.name, names)
            )));
        };
        let o = &spec.layers[owner];
        if owner == layers[p].index {
            return Err(err("`shares`: a layer cannot share its own parameters".into()));
        }
        if let Some(r2) = &o.shares {
            return Err(err(format!(
                "`shares`: layer \"{}\" itself shares \"{}\"; name the owner \"{}\" instead",
                o.id.name, r2.name, r2.name
            )));
        }
        if let Kind::Linear(Linear { tied_to: Some(t), .. }) = &o.kind {
            return Err(err(format!(
                "`shares`: layer \"{}\" takes its weight from \"{t}\" (`tied_to`); share a layer that owns all its parameters",
                o.id.name
            )));
        }
        if pos[&owner] > p {
            return Err(err(format!(
                "`shares`: layer \"{}\" must run before this one (it comes later in execution order)",
                o.id.name
            )));
        }
        let (mine, theirs) = (layers[p].params, layers[pos[&owner]].params);
        if mine != theirs || mine == 0 {
            return Err(err(format!(
                "`shares`: expected the same parameter count as \"{}\" ({theirs}), got {mine}",
                o.id.name
            )));
        }
        totals.params -= mine;
        layers[p].params = 0;
        layers[p].trainable_params = 0;
        layers[p].shares = Some(owner);
    }
    Ok(())
}

/// The `out × in` weight matrix of a layer that can share one (`embedding`, `linear`).
fn weight_shape(kind: &Kind, inputs: &[Shape]) -> Option<[u64; 2]> {
    match kind {
        Kind::Embedding(e) => Some([e.num_embeddings, e.embedding_dim]),
        Kind::Linear(l) => Some([l.out_features, inputs[0].last()]),
        _ => None,
    }
}

/// Params of linear layer `i` whose weight is tied to layer `target`: its own params minus the
/// shared `out · in` weight. The target must be an earlier `embedding` or `linear` with the same
/// `out × in` weight.
fn tied_params(
    spec: &Spec,
    weights: &[Option<[u64; 2]>],
    i: usize,
    target: &str,
    params: u64,
) -> Result<u64, SpecError> {
    let l = &spec.layers[i];
    let err = |m: String| SpecError::new(&spec.file, l.loc("tied_to"), m).in_layer(&l.id);
    let Some(j) = spec.layers.iter().position(|t| t.id.name == target) else {
        let names = spec.layers.iter().map(|t| t.id.name.as_str());
        return Err(err(format!("`tied_to`: no layer is named \"{target}\"{}", did_you_mean(target, names))));
    };
    let t = &spec.layers[j];
    let [out, inf] = weights[i].expect("a linear layer has a weight");
    let Some(w) = weights[j] else {
        return Err(err(match t.kind {
            Kind::Embedding(_) | Kind::Linear(_) => {
                format!("`tied_to`: layer \"{target}\" must run before this one (it comes later in execution order)")
            }
            _ => format!(
                "`tied_to`: layer \"{target}\" ({}) has no weight to share; expected an embedding or linear layer",
                t.kind.name()
            ),
        }));
    };
    if j == i {
        return Err(err("`tied_to`: a layer cannot be tied to itself".into()));
    }
    if w != [out, inf] {
        return Err(err(format!(
            "`tied_to`: layer \"{target}\" has a {}×{} weight, expected {out}×{inf} (out_features × in_features)",
            w[0], w[1]
        )));
    }
    Ok(params - out * inf)
}

/// Command-line overrides of a spec's `batch`, `input` shape and `dtype`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--batch N`.
    pub batch: Option<u64>,
    /// `--input 3x227x227` (without batch).
    pub input: Option<Vec<u64>>,
    /// `--dtype`.
    pub dtype: Option<DType>,
    /// `--allow-unknown`: how an ONNX model is imported (unmapped ops as 0-MAC rows).
    pub onnx: crate::onnx::ImportOptions,
}

impl Overrides {
    /// The overrides as command-line flags (`--batch 8 --input 3x32x32 --dtype f16`), or
    /// `None` when there are none.
    pub fn flags(&self) -> Option<String> {
        let mut f = Vec::new();
        if let Some(b) = self.batch {
            f.push(format!("--batch {b}"));
        }
        if let Some(i) = &self.input {
            f.push(format!("--input {}", i.iter().map(u64::to_string).collect::<Vec<_>>().join("x")));
        }
        if let Some(d) = self.dtype {
            f.push(format!("--dtype {d}"));
        }
        (!f.is_empty()).then(|| f.join(" "))
    }

    /// Apply to a spec (the input's dtype follows `--dtype` unless it is an integer type).
    pub fn apply(&self, spec: &mut Spec) {
        if let Some(b) = self.batch {
            spec.batch = b;
        }
        if let Some(i) = &self.input {
            spec.input.shape = i.clone();
        }
        if let Some(d) = self.dtype {
            spec.dtype = d;
            if !spec.input.dtype.is_int() {
                spec.input.dtype = d;
            }
        }
    }
}

/// Parse `3x227x227` (also `3,227,227` or `3×227×227`) into positive dimensions.
pub fn parse_dims(s: &str) -> Result<Vec<u64>, String> {
    let parts: Vec<&str> = s.split(['x', 'X', ',', '×']).map(str::trim).collect();
    crate::shape::check_rank(parts.len() + 1).map_err(|m| format!("{m} (batch included)"))?;
    parts
        .iter()
        .map(|p| match p.parse::<u64>() {
            Ok(v) if v >= 1 => Ok(v),
            _ => Err(format!("expected dimensions like 3x224x224 (positive integers), got \"{s}\"")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_bytes;

    fn run(text: &str) -> Result<Analysis, SpecError> {
        analyze(parse_bytes("t.yaml", text.as_bytes())?)
    }

    #[test]
    fn tied_embedding_head_counts_the_table_once() {
        // Embedding(1000, 64): 64,000 params; Linear(64→1000, no bias) tied to it: 0 more params;
        // its MACs still count: 10 tokens · 64 · 1000 = 640,000.
        let a = run("name: t\ninput: {shape: [10], dtype: i64}\nlayers:\n  - {name: wte, kind: embedding, num_embeddings: 1000, embedding_dim: 64}\n  - {name: head, kind: linear, out_features: 1000, bias: false, tied_to: wte}\n").unwrap();
        assert_eq!((a.totals.params, a.totals.macs), (64_000, 640_000));
        assert_eq!(a.layers[1].params, 0);
    }

    #[test]
    fn tied_errors() {
        let base = "name: t\ninput: {shape: [10], dtype: i64}\nlayers:\n  - {name: wte, kind: embedding, num_embeddings: 1000, embedding_dim: 64}\n";
        let e = run(&format!("{base}  - {{name: head, kind: linear, out_features: 999, bias: false, tied_to: wte}}\n"))
            .unwrap_err();
        assert_eq!(e.to_string(), "t.yaml:5:73: layer #1 \"head\" (linear): `tied_to`: layer \"wte\" has a 1000×64 weight, expected 999×64 (out_features × in_features)");
        let e =
            run(&format!("{base}  - {{name: head, kind: linear, out_features: 1000, tied_to: wte2}}\n")).unwrap_err();
        assert!(e.message.contains("no layer is named \"wte2\" (did you mean `wte`?)"), "{e}");
    }

    #[test]
    fn integer_input_needs_an_embedding() {
        let e =
            run("name: t\ninput: {shape: [10], dtype: i64}\nlayers:\n  - {name: fc, kind: linear, out_features: 4}\n")
                .unwrap_err();
        assert!(e.message.contains("expected a floating-point input, got i64"), "{e}");
    }

    #[test]
    fn merge_errors_name_both_inputs() {
        let e = run("name: t\ninput: [3, 8, 8]\nlayers:\n  - {name: a, kind: conv2d, c_out: 4, kernel: 1}\n  - {name: b, kind: conv2d, c_out: 5, kernel: 1, inputs: [input]}\n  - {name: sum, kind: add, inputs: [a, b]}\n").unwrap_err();
        assert_eq!(e.to_string(), "t.yaml:6:5: layer #2 \"sum\" (add): input 0 (1x4x8x8) and input 1 (1x5x8x8) do not broadcast: dimension 1 is 4 vs 5 (expected equal sizes or 1); inputs: 0 = \"a\" 1x4x8x8, 1 = \"b\" 1x5x8x8");
        let e = run("name: t\ninput: [3, 8, 8]\nlayers:\n  - {name: sum, kind: add}\n").unwrap_err();
        assert_eq!(e.message, "expected at least 2 input(s), got 1");
    }
}
