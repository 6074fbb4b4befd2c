//! ONNX nodes → spec layers (YAML text).
//!
//! One rule per op type in `layer_of`; constant and shape-only subgraphs are folded first
//! (a node whose inputs are all initializers or folded values, and every `Shape`, `Size` and
//! `Constant`, makes no layer), a `MatMul` by a weight followed by an `Add` of a bias is one
//! `linear` (PyTorch's exporter writes `nn.Linear` on 3-D inputs that way), `Sigmoid(x)` then
//! `Mul(x, ·)` is one `silu`, and the nodes of one `nn.MultiheadAttention`, `nn.LSTM`, `nn.GRU`
//! or `nn.RNN` call are one `multi_head_attention`, `lstm`, `gru` or `rnn` layer (`Modules` below).

use super::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorData, TensorInfo};
use super::{ImportOptions, Imported};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// One layer of the imported spec.
#[derive(Debug, Clone, PartialEq)]
struct Layer {
    name: String,
    kind: &'static str,
    /// `(field, YAML value)` in order.
    fields: Vec<(&'static str, String)>,
    /// Layer names (or `input`) of the activation inputs.
    inputs: Vec<String>,
    /// The ONNX node(s) the layer stands for, for the YAML comment.
    comment: String,
    /// Parameters the node's weight initializers hold (their dims' products), for the ops whose
    /// mapping takes only some dims from them (Conv, ConvTranspose, Gemm, MatMul, BatchNormalization):
    /// [`check_initializers`] compares it with the analysis.
    init_params: Option<u64>,
}

/// What a node maps to.
enum Mapped {
    /// A layer of this kind with these fields.
    Layer(&'static str, Vec<(&'static str, String)>),
    /// No layer: the output is the (single) activation input (`Identity`).
    Alias,
}

/// A layer's kind and its `(field, YAML value)` pairs.
type KindFields = (&'static str, Vec<(&'static str, String)>);

/// Why a node could not be mapped (the op type, or a variant of it netstat has no kind for).
type Unmapped = String;

/// Map the model's graph; `file` is only for the spec's `name` fallback.
///
/// Errors: no graph, sparse initializers, graph inputs netstat cannot take (none, several,
/// symbolic non-batch dims, a non-tensor type), a node reading a value nothing makes, and —
/// all at once — every node whose op netstat cannot map, with its position, name and op type.
pub fn map(file: &str, model: &ModelProto, opts: &ImportOptions) -> Result<Imported, String> {
    let g = model.graph.as_ref().ok_or("the model has no graph")?;
    if !g.sparse_initializer.is_empty() {
        return Err(format!(
            "{} sparse initializers: netstat reads dense initializers only",
            g.sparse_initializer.len()
        ));
    }
    let inits: HashMap<&str, &TensorInfo> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let shapes = value_shapes(g);
    let (input_name, input_dims, batch, in_dtype) = graph_input(g, &inits, opts)?;
    let dtype = g
        .initializer
        .iter()
        .find_map(|t| dtype_name(t.data_type).filter(|d| d.starts_with(['f', 'b'])))
        .unwrap_or("f32");

    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in &g.output {
        *uses.entry(o.name.as_str()).or_default() += 1;
    }

    // Values known without running the model: initializers and folded nodes' outputs.
    let mut statics: HashSet<String> = inits.keys().map(|k| k.to_string()).collect();
    // Values of small constants (Clip bounds, Dropout ratio, ReduceMean axes), where known.
    let mut consts: HashMap<String, Vec<f64>> = HashMap::new();
    // Dims of initializers and of what is folded from one alone (a transposed weight, an
    // expanded class token): the parameters a layer reads.
    let mut weights: HashMap<String, Vec<i64>> =
        g.initializer.iter().map(|t| (t.name.clone(), t.dims.clone())).collect();
    // Value name → layer name (or `input`) that makes it.
    let mut producer: HashMap<String, String> = HashMap::new();
    producer.insert(input_name.clone(), "input".into());
    let mut layers: Vec<Layer> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    // Layer index of a `linear` made from a bias-less MatMul, by its output value (for MatMul + Add).
    let mut bare_linear: HashMap<String, usize> = HashMap::new();
    let mut unmapped: Vec<(usize, &NodeProto, Unmapped)> = Vec::new();
    let modules = Modules::find(g);
    // Layer index and input value of a `sigmoid`, by its output value (for x · sigmoid(x) = silu).
    let mut sigmoids: HashMap<String, (usize, String)> = HashMap::new();
    // Outputs Y of ONNX LSTM/GRU/RNN nodes, 4-D in ONNX but netstat's `[T, N, dirs·H]` already.
    let mut ys: HashMap<String, YState> = HashMap::new();
    let mut warnings = Vec::new();
    // Weights folded from one initializer → that initializer; initializer → the layer that
    // first read it as a parameter (a later reader shares it: `shares` or `tied_to`).
    let mut origin: HashMap<String, String> = HashMap::new();
    let mut owner: HashMap<String, (String, &'static str, Vec<String>)> = HashMap::new();
    // Layer name → kind, for a BatchNormalization whose input rank the graph does not declare.
    let mut kind_of: HashMap<String, &'static str> = HashMap::new();

    for (pos, n) in g.node.iter().enumerate() {
        let ins: Vec<&str> = n.input.iter().map(String::as_str).filter(|i| !i.is_empty()).collect();
        let op = n.op_type.as_str();
        if foldable(n, &statics) {
            fold(n, &mut consts, &mut weights, &shapes);
            // A weight folded from one initializer (a transposed embedding table) is that initializer.
            if let (Some(i0), Some(out)) = (n.input.first(), n.output.first()) {
                if weights.contains_key(i0) && weights.contains_key(out) && !inits.contains_key(out.as_str()) {
                    let root = origin.get(i0).cloned().unwrap_or_else(|| i0.clone());
                    origin.insert(out.clone(), root);
                }
            }
            statics.extend(n.output.iter().cloned());
            continue;
        }
        if let Some(group) = modules.group_of(pos) {
            // Inside an nn.MultiheadAttention, nn.LSTM, …: one layer, made at the node that makes its output.
            if n.output.contains(&group.output) {
                let acts = group.inputs.iter().filter(|i| !statics.contains(i.as_str()));
                let mut from: Vec<String> = Vec::new();
                for a in acts {
                    match producer.get(a.as_str()) {
                        Some(l) if !from.contains(l) => from.push(l.clone()),
                        Some(_) => {}
                        None if !unmapped.is_empty() => from.push(String::new()),
                        None => {
                            return Err(format!(
                                "{} {} reads \"{a}\", which nothing makes",
                                group.module.what(),
                                group.path
                            ))
                        }
                    }
                }
                if group.module != Fused::Attention {
                    let made = match group.module {
                        Fused::GroupNorm => group.group_norm(g, &inits, &consts),
                        _ => group.recurrent(g, &inits, &statics, &shapes),
                    };
                    let (kind, fields) = match made {
                        Ok(kf) => kf,
                        Err(why) => {
                            // Named by its first ONNX LSTM/GRU/RNN node, where it has one.
                            let at = group
                                .nodes
                                .iter()
                                .copied()
                                .find(|&i| matches!(g.node[i].op_type.as_str(), "LSTM" | "GRU" | "RNN"));
                            unmapped.push(at.map_or((pos, n, why.clone()), |i| (i, &g.node[i], why)));
                            continue;
                        }
                    };
                    let name = unique(&mut names, group.path.clone());
                    producer.insert(group.output.clone(), name.clone());
                    let comment = format!(
                        "#{}–#{} ({} nodes of {} {})",
                        group.first,
                        group.last,
                        group.len,
                        group.module.what(),
                        group.path
                    );
                    kind_of.insert(name.clone(), kind);
                    layers.push(Layer { name, kind, fields, inputs: from, comment, init_params: None });
                    continue;
                }
                let d =
                    group.inputs.iter().find_map(|i| shapes.get(i.as_str()).and_then(|s| s.last().copied().flatten()));
                let heads = d.and_then(|d| group.heads(g, &shapes, d));
                let bias = group.inputs.iter().any(|i| weights.get(i).is_some_and(|w| w.len() == 1));
                let Some(heads) = heads else {
                    unmapped.push((pos, n, format!("attention {} whose head count netstat cannot read", group.path)));
                    continue;
                };
                let mut fields = vec![("heads", heads.to_string())];
                if !bias {
                    fields.push(("bias", "false".into()));
                }
                if !group.need_weights {
                    fields.push(("need_weights", "false".into()));
                }
                let name = unique(&mut names, group.path.clone());
                producer.insert(group.output.clone(), name.clone());
                let comment =
                    format!("#{}–#{} ({} nodes of attention {})", group.first, group.last, group.len, group.path);
                layers.push(Layer {
                    name,
                    kind: "multi_head_attention",
                    fields,
                    inputs: from,
                    comment,
                    init_params: None,
                });
            }
            continue;
        }
        let acts: Vec<&str> = ins.iter().copied().filter(|i| !statics.contains(*i)).collect();
        let mut from = Vec::with_capacity(acts.len());
        for a in &acts {
            match producer.get(*a) {
                Some(l) => from.push(l.clone()),
                // After an unmapped node, keep going: the error lists every unmapped op.
                None if !unmapped.is_empty() => from.push(String::new()),
                None => {
                    return Err(format!(
                    "node #{pos} \"{}\" ({op}) reads \"{a}\", which no earlier node, initializer or graph input makes",
                    n.name
                ))
                }
            }
        }
        let out = n.output.first().map(String::as_str).unwrap_or("");
        // MatMul by a weight, then Add of a bias vector: one linear with a bias.
        if op == "Add" && acts.len() == 1 && ins.len() == 2 {
            // (Not onto a layer that shares another's weight: the bias would be its own.)
            if let Some(&li) = bare_linear.get(acts[0]).filter(|&&li| layers[li].fields.iter().all(|f| f.0 != "shares"))
            {
                let other = ins.iter().find(|i| **i != acts[0]).copied().unwrap_or("");
                let width = layers[li].fields.iter().find(|f| f.0 == "out_features").map(|f| f.1.clone());
                if let (Some(t), Some(w)) = (inits.get(other), width) {
                    if t.dims.len() == 1 && t.dims[0].to_string() == w && uses.get(acts[0]) == Some(&1) {
                        let b = u64::try_from(t.dims[0]).ok();
                        layers[li].init_params = layers[li].init_params.zip(b).and_then(|(p, b)| p.checked_add(b));
                        layers[li].fields.retain(|f| f.0 != "bias");
                        layers[li].comment += &format!(" + #{pos} \"{}\" (Add)", n.name);
                        producer.insert(out.to_owned(), layers[li].name.clone());
                        continue;
                    }
                }
            }
        }
        // The exporters' reshaping of an ONNX recurrent Y into [T, N, dirs·H]: netstat's layer made it.
        if let Some(y) = acts.iter().find_map(|a| ys.get(*a)).copied() {
            let step = if acts.len() == 1 && ins.first() == acts.first() {
                y.step(n, &ins, &consts, &shapes)
            } else {
                Err(format!("{op} of an ONNX recurrent node's 4-D output Y and other values"))
            };
            match step {
                Ok(next) => {
                    if let Some(next) = next {
                        ys.insert(out.to_owned(), next);
                    }
                    producer.insert(out.to_owned(), from[0].clone());
                }
                Err(why) => unmapped.push((pos, n, why)),
            }
            continue;
        }
        // x · sigmoid(x): the sigmoid layer becomes one silu (PyTorch's exporter writes nn.SiLU so).
        if op == "Mul" && acts.len() == 2 && ins.len() == 2 {
            let fused = ins.iter().enumerate().find_map(|(k, s)| {
                let (li, x) = sigmoids.get(*s)?;
                (ins[1 - k] == x.as_str() && uses.get(*s) == Some(&1)).then_some(*li)
            });
            if let Some(li) = fused {
                layers[li].kind = "silu";
                layers[li].comment += &format!(" + #{pos} \"{}\" (Mul)", n.name);
                producer.insert(out.to_owned(), layers[li].name.clone());
                continue;
            }
        }
        let mapped = layer_of(n, &ins, &acts, &weights, &consts, &shapes);
        let (kind, fields) = match mapped {
            Ok(Mapped::Alias) if from.len() == 1 => {
                producer.insert(out.to_owned(), from[0].clone());
                continue;
            }
            Ok(Mapped::Layer(k, f)) if n.output.iter().filter(|o| !o.is_empty()).count() == 1 => (k, f),
            // An ONNX LSTM/GRU/RNN: Y only (its final states Y_h, Y_c unread).
            Ok(Mapped::Layer(k, f))
                if matches!(op, "LSTM" | "GRU" | "RNN")
                    && n.output.iter().skip(1).all(|o| o.is_empty() || !uses.contains_key(o.as_str())) =>
            {
                let dirs = if f.iter().any(|x| x.0 == "bidirectional") { 2 } else { 1 };
                let layout = attr_i(n, "layout", 0);
                ys.insert(out.to_owned(), YState { dirs, layout, transposed: false });
                (k, f)
            }
            Ok(_) => {
                unmapped.push((pos, n, format!("{op} with {} outputs", n.output.len())));
                continue;
            }
            Err(why) if opts.allow_unknown => match stand_in(n, &acts, &shapes) {
                Some(kf) => {
                    warnings
                        .push(format!("node #{pos} \"{}\": unknown op {why}, counted as 0 params and 0 MACs", n.name));
                    kf
                }
                None => {
                    unmapped.push((pos, n, format!("{why} (whose output shape differs from its input's)")));
                    continue;
                }
            },
            Err(why) => {
                unmapped.push((pos, n, why));
                continue;
            }
        };
        let mut name = layer_name(n, pos);
        if kind == "dropout" && fields.iter().any(|f| f.0 == "unknown") {
            name = format!("{name} [unknown op {}]", crate::error::escape_control(op));
        }
        let name = unique(&mut names, name);
        let mut fields = readable(kind, fields);
        // A BatchNormalization on an undeclared rank after a 1-D layer is nn.BatchNorm1d.
        let one_d = ["conv1d", "max_pool1d", "avg_pool1d", "batch_norm1d"];
        let kind = if kind == "batch_norm2d"
            && rank(&shapes, acts[0]).is_none()
            && from.first().and_then(|l| kind_of.get(l)).is_some_and(|k| one_d.contains(k))
        {
            "batch_norm1d"
        } else {
            kind
        };
        kind_of.insert(name.clone(), kind);
        // The parameter inputs of the ops whose kinds take only c_out (or nothing) from them,
        // and the embedding's table.
        let param_inputs: &[usize] = match op {
            "Conv" | "ConvTranspose" | "Gemm" | "BatchNormalization" => &[1, 2],
            "MatMul" if kind == "linear" => &[1],
            "Gather" if kind == "embedding" => &[0],
            _ => &[],
        };
        // The initializers behind them; one another layer read first is shared, not counted again.
        let roots: Vec<String> = param_inputs
            .iter()
            .filter_map(|&i| ins.get(i).filter(|v| weights.contains_key(**v)))
            .map(|v| origin.get(*v).cloned().unwrap_or_else(|| v.to_string()))
            .collect();
        let mut shared = false;
        if let Some((first, first_kind, first_roots)) = roots.first().and_then(|r| owner.get(r)) {
            if *first_kind == kind && *first_roots == roots {
                fields.push(("shares", q(first)));
                shared = true;
            } else if kind == "linear" && matches!(*first_kind, "embedding" | "linear") && first_roots.len() == 1 {
                // An output layer on the embedding's table (GPT-2's lm_head): its weight is tied.
                fields.push(("tied_to", q(first)));
                shared = true;
            }
        }
        if !shared && roots.iter().any(|r| owner.contains_key(r)) {
            warnings.push(format!(
                "node #{pos} \"{}\": reads a parameter of another layer in a way netstat's `shares`/`tied_to` cannot say; counted again",
                n.name
            ));
        }
        for r in &roots {
            owner.entry(r.clone()).or_insert_with(|| (name.clone(), kind, roots.clone()));
        }
        if op == "MatMul" && kind == "linear" {
            bare_linear.insert(out.to_owned(), layers.len());
        }
        if kind == "sigmoid" {
            sigmoids.insert(out.to_owned(), (layers.len(), acts[0].to_owned()));
        }
        producer.insert(out.to_owned(), name.clone());
        // Checked only when every parameter input the op requires is an initializer (a scale or
        // bias computed by other nodes is no parameter netstat counts either way), and the layer
        // owns its parameters (an embedding's table is taken whole from it: not checked).
        let required =
            if op == "BatchNormalization" { param_inputs } else { &param_inputs[..param_inputs.len().min(1)] };
        let init_params = (!param_inputs.is_empty()
            && !shared
            && kind != "embedding"
            && required.iter().all(|&i| ins.get(i).is_some_and(|v| weights.contains_key(*v))))
        .then(|| {
            param_inputs.iter().filter_map(|&i| ins.get(i).and_then(|v| weights.get(*v))).try_fold(0u64, |t, d| {
                let e = d.iter().try_fold(1u64, |e, &x| e.checked_mul(u64::try_from(x).ok()?))?;
                t.checked_add(e)
            })
        })
        .flatten();
        let comment = format!("#{pos} \"{}\" ({op})", crate::error::escape_control(&n.name));
        layers.push(Layer { name, kind, fields, inputs: from, comment, init_params });
    }
    if !unmapped.is_empty() {
        let mut types: Vec<&str> = unmapped.iter().map(|u| u.1.op_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        let first = &unmapped[0];
        return Err(format!(
            "node #{} \"{}\" (op {}): netstat has no kind for {}; the model's unmapped op types ({} nodes): {}. \
             Pass --allow-unknown to count them as 0 params and 0 MACs",
            first.0,
            first.1.name,
            first.1.op_type,
            first.2,
            unmapped.len(),
            types.join(", ")
        ));
    }
    if layers.is_empty() {
        return Err("the graph has no layers netstat counts (every node is constant)".into());
    }
    let name = if g.name.is_empty() || g.name == "main_graph" {
        std::path::Path::new(file).file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned())
    } else {
        g.name.clone()
    };
    let yaml = yaml(file, &name, &input_dims, in_dtype, batch, dtype, &layers);
    check_initializers(file, &yaml, &layers)?;
    Ok(Imported { yaml, warnings })
}

/// Each layer's parameters, as the analysis counts them from its fields and its input, must be
/// what its node's initializers hold ([`Layer::init_params`]): the mapping takes a conv's
/// `c_out` (and a linear's `out_features`) from the weight, so a weight whose other dims
/// disagree with the input or the attributes (a [8, 5, 3, 3] Conv weight on 3 channels, a
/// `kernel_shape` of 5 on a 3×3 weight, a bias of 100 on 8 channels, a BatchNormalization scale
/// of 5 on 3 channels) is an error naming the node, never a count of parameters the file does
/// not hold. A spec that does not analyse is left to the analysis to report.
fn check_initializers(file: &str, yaml: &str, layers: &[Layer]) -> Result<(), String> {
    if layers.iter().all(|l| l.init_params.is_none()) {
        return Ok(());
    }
    let Ok(a) = crate::spec::parse_bytes(file, yaml.as_bytes())
        .map_err(drop)
        .and_then(|s| crate::analysis::analyze(s).map_err(drop))
    else {
        return Ok(());
    };
    let rows: HashMap<&str, &crate::analysis::LayerAnalysis> =
        a.layers.iter().map(|r| (a.layer_spec(r).id.name.as_str(), r)).collect();
    for l in layers {
        let Some(row) = rows.get(l.name.as_str()) else { continue };
        match l.init_params {
            Some(held) if held != row.params => {
                let input = row.input_shapes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
                return Err(format!(
                    "node {}: its initializers hold {held} parameters, but a {} of its attributes on input {input} has {}: \
                     the weights' dims disagree with the input or the attributes",
                    l.comment, l.kind, row.params
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a node is folded: `Constant`, `Shape`, `Size`, `ConstantOfShape`, or all the inputs
/// whose values it reads are `statics` (CastLike reads only the type of its second input).
fn foldable(n: &NodeProto, statics: &HashSet<String>) -> bool {
    let ins: Vec<&str> = n.input.iter().map(String::as_str).filter(|i| !i.is_empty()).collect();
    let valued = if n.op_type == "CastLike" { &ins[..ins.len().min(1)] } else { &ins[..] };
    matches!(n.op_type.as_str(), "Constant" | "Shape" | "Size" | "ConstantOfShape")
        || (!valued.is_empty() && valued.iter().all(|i| statics.contains(*i)))
}

/// The PyTorch modules whose nodes become one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fused {
    /// `nn.MultiheadAttention` → `multi_head_attention`.
    Attention,
    /// `nn.LSTM` → `lstm`.
    Lstm,
    /// `nn.GRU` → `gru`.
    Gru,
    /// `nn.RNN` → `rnn`.
    Rnn,
    /// `nn.GroupNorm` → `group_norm` (exported as Reshape → InstanceNormalization → Reshape →
    /// Mul → Add).
    GroupNorm,
}

impl Fused {
    /// The module of a `namespace` class name.
    fn of_class(class: &str) -> Option<Fused> {
        Some(match class {
            "torch.nn.modules.activation.MultiheadAttention" => Fused::Attention,
            "torch.nn.modules.rnn.LSTM" => Fused::Lstm,
            "torch.nn.modules.rnn.GRU" => Fused::Gru,
            "torch.nn.modules.rnn.RNN" => Fused::Rnn,
            "torch.nn.modules.normalization.GroupNorm" => Fused::GroupNorm,
            _ => return None,
        })
    }

    /// The module's name in messages.
    fn what(self) -> &'static str {
        match self {
            Fused::Attention => "attention",
            Fused::Lstm => "nn.LSTM",
            Fused::Gru => "nn.GRU",
            Fused::Rnn => "nn.RNN",
            Fused::GroupNorm => "nn.GroupNorm",
        }
    }
}

/// The nodes PyTorch's exporter writes for each call of a [`Fused`] module (their `namespace`
/// names the module): for `nn.MultiheadAttention` in-projection, head split, scaled dot-product
/// attention, head merge and out-projection; for `nn.LSTM` and `nn.GRU` the gate reordering of
/// the weights (Slice, Concat), one ONNX `LSTM`/`GRU` node per layer and the transposes around
/// them; for `nn.RNN` the loop unrolled into MatMul, Add and Tanh/Relu per step. Dozens of nodes
/// that become one layer.
struct Modules {
    /// Group index of each node, if it is in one.
    of: Vec<Option<usize>>,
    groups: Vec<ModuleGroup>,
}

/// One module call's nodes.
struct ModuleGroup {
    /// Which module.
    module: Fused,
    /// The module path, e.g. `encoder.layers.encoder_layer_0.self_attention`.
    path: String,
    first: usize,
    last: usize,
    len: usize,
    /// Values the group reads from outside (activations and weights), in order.
    inputs: Vec<String>,
    /// The one value it makes for the rest of the graph.
    output: String,
    /// Whether attention weights are returned (false when the exporter wrote the fused
    /// `scaled_dot_product_attention`, i.e. `need_weights=False`).
    need_weights: bool,
    nodes: Vec<usize>,
}

impl Modules {
    fn find(g: &GraphProto) -> Modules {
        let mut of = vec![None; g.node.len()];
        let mut groups: Vec<ModuleGroup> = Vec::new();
        let mut by_path: HashMap<String, usize> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            let Some(ns) = n.metadata_props.iter().find(|p| p.key == "namespace") else { continue };
            let segs: Vec<(&str, &str)> = ns.value.split('/').filter_map(|s| s.split_once(": ")).collect();
            let Some((path, module)) = segs.iter().rev().find_map(|(p, c)| Fused::of_class(c).map(|m| (*p, m))) else {
                continue;
            };
            let gi = *by_path.entry(path.to_owned()).or_insert_with(|| {
                groups.push(ModuleGroup {
                    module,
                    path: path.to_owned(),
                    first: i,
                    last: i,
                    len: 0,
                    inputs: vec![],
                    output: String::new(),
                    need_weights: true,
                    nodes: vec![],
                });
                groups.len() - 1
            });
            let gr = &mut groups[gi];
            gr.last = i;
            gr.len += 1;
            gr.nodes.push(i);
            if segs.last().is_some_and(|(fx, _)| fx.starts_with("scaled_dot_product_attention")) {
                gr.need_weights = false;
            }
            of[i] = Some(gi);
        }
        // Constants the exporter shares between modules are no output of an attention.
        let mut statics: HashSet<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
        for n in &g.node {
            if foldable(n, &statics) {
                statics.extend(n.output.iter().cloned());
            }
        }
        for (gi, gr) in groups.iter_mut().enumerate() {
            let made: HashSet<&str> =
                gr.nodes.iter().flat_map(|&i| g.node[i].output.iter().map(String::as_str)).collect();
            for &i in &gr.nodes {
                for v in g.node[i].input.iter().filter(|v| !v.is_empty() && !made.contains(v.as_str())) {
                    if !gr.inputs.contains(v) {
                        gr.inputs.push(v.clone());
                    }
                }
            }
            let used_outside = |v: &str| {
                g.output.iter().any(|o| o.name == v)
                    || g.node.iter().enumerate().any(|(j, m)| of[j] != Some(gi) && m.input.iter().any(|x| x == v))
            };
            let outs: Vec<&str> = made.iter().copied().filter(|v| !statics.contains(*v) && used_outside(v)).collect();
            if let [o] = outs[..] {
                gr.output = o.to_owned();
            } else {
                // Not one output: leave its nodes to the op-by-op mapping.
                for &i in &gr.nodes {
                    of[i] = None;
                }
            }
        }
        Modules { of, groups }
    }

    fn group_of(&self, pos: usize) -> Option<&ModuleGroup> {
        self.of.get(pos).copied().flatten().map(|g| &self.groups[g])
    }
}

impl ModuleGroup {
    /// The `group_norm` of an `nn.GroupNorm` call: the group count is the length of the
    /// InstanceNormalization's scale (over the `[N, G, C/G·H·W]` view; PyTorch's exporter expands
    /// a 1 to `[G]`, read from that constant shape, or an initializer of dims `[G]`), `affine`
    /// when the module reads weight and bias initializers, `eps` the InstanceNormalization's.
    fn group_norm(
        &self,
        g: &GraphProto,
        inits: &HashMap<&str, &TensorInfo>,
        consts: &HashMap<String, Vec<f64>>,
    ) -> Result<KindFields, Unmapped> {
        let what = format!("{} {}", self.module.what(), self.path);
        let nodes = || self.nodes.iter().map(|&i| &g.node[i]);
        let Some(norm) = nodes().find(|n| n.op_type == "InstanceNormalization") else {
            return Err(format!("{what} without an InstanceNormalization"));
        };
        let scale = norm.input.get(1).map(String::as_str).unwrap_or("");
        let groups = match inits.get(scale) {
            Some(t) => t.dims[..].first().copied().filter(|_| t.dims.len() == 1).and_then(|d| u64::try_from(d).ok()),
            None => nodes()
                .find(|n| n.op_type == "Expand" && n.output.iter().any(|o| o == scale))
                .and_then(|e| consts.get(e.input.get(1)?.as_str()))
                .and_then(|v| match v[..] {
                    [d] if d >= 1.0 && d.fract() == 0.0 => Some(d as u64),
                    _ => None,
                }),
        };
        let Some(groups) = groups.filter(|&d| d >= 1) else {
            return Err(format!("{what} whose group count netstat cannot read"));
        };
        let affine: Vec<&[i64]> =
            self.inputs.iter().filter_map(|i| inits.get(i.as_str())).map(|t| &t.dims[..]).collect();
        let mut f = vec![("num_groups", groups.to_string())];
        // ONNX stores epsilon as a float32; compared and written as one (as BatchNormalization).
        let eps = attr(norm, "epsilon").map_or(1e-5, |a| a.f);
        if eps != 1e-5 {
            f.push(("eps", format!("{eps:e}")));
        }
        match affine[..] {
            [] => f.push(("affine", "false".into())),
            [[a], [b]] if a == b => {}
            _ => return Err(format!("{what} whose parameters are not a weight and a bias of C")),
        }
        Ok(("group_norm", f))
    }

    /// The `lstm`, `gru` or `rnn` layer of an `nn.LSTM`, `nn.GRU` or `nn.RNN` call, read from
    /// the initializers it reads (PyTorch's `weight_ih_l{k}[_reverse]` [G·H, I_k],
    /// `weight_hh_l{k}[_reverse]` [G·H, H], `bias_ih`/`bias_hh` [G·H]; G = 4, 3, 1 gates), the
    /// ONNX `LSTM`/`GRU` nodes' `hidden_size` and `direction`, and the layout of its input (a
    /// leading Transpose [1, 0, 2] is `batch_first`). The kind's own parameter rule
    /// ([`crate::kinds::rnn::Recurrent::tensors`]) must give exactly the initializers' tensors,
    /// else the module is unmapped (e.g. an LSTM with `proj_size`).
    fn recurrent(
        &self,
        g: &GraphProto,
        inits: &HashMap<&str, &TensorInfo>,
        statics: &HashSet<String>,
        shapes: &HashMap<&str, Vec<Option<u64>>>,
    ) -> Result<KindFields, Unmapped> {
        use crate::kinds::rnn::{Cell, Recurrent};
        let what = format!("{} {}", self.module.what(), self.path);
        let nodes = || self.nodes.iter().map(|&i| &g.node[i]);
        let (kind, cell) = match self.module {
            Fused::Lstm => ("lstm", Cell::Lstm),
            Fused::Gru => ("gru", Cell::Gru),
            _ if nodes().any(|n| n.op_type == "Relu") => ("rnn", Cell::Relu),
            _ => ("rnn", Cell::Tanh),
        };
        let acts: Vec<&str> = self.inputs.iter().map(String::as_str).filter(|i| !statics.contains(*i)).collect();
        let [x] = acts[..] else {
            return Err(format!("{what} with {} activation inputs (netstat maps one: no initial state)", acts.len()));
        };
        let ws: Vec<(&str, &[i64])> =
            self.inputs.iter().filter_map(|i| inits.get(i.as_str()).map(|t| (i.as_str(), &t.dims[..]))).collect();
        let mats: Vec<&[i64]> = ws.iter().map(|w| w.1).filter(|d| d.len() == 2).collect();
        let gates = cell.gates() as i64;
        let h = match mats.first() {
            Some(d) if d[0] > 0 && d[0] % gates == 0 => (d[0] / gates) as u64,
            _ => return Err(format!("{what} whose weights netstat cannot read")),
        };
        let bidirectional =
            ws.iter().any(|w| w.0.ends_with("_reverse")) || nodes().any(|n| attr_s(n, "direction") == "bidirectional");
        let dirs = 1 + usize::from(bidirectional);
        if mats.is_empty() || !mats.len().is_multiple_of(2 * dirs) {
            return Err(format!("{what} with {} weight matrices", mats.len()));
        }
        let x_shape = shapes.get(x).filter(|s| s.len() == 3);
        let Some(i) = x_shape.and_then(|s| s[2]) else {
            return Err(format!("{what} whose input is not a declared rank-3 tensor"));
        };
        // batch_first: the exporter swaps N and T before the recurrence, Transpose [1, 0, 2].
        let batch_first = nodes().any(|n| {
            n.op_type == "Transpose"
                && n.input.first().is_some_and(|v| v == x)
                && attr_ints(n, "perm").is_some_and(|p| p == [1, 0, 2])
        });
        let r = Recurrent {
            cell,
            hidden_size: h,
            num_layers: (mats.len() / (2 * dirs)) as u64,
            bidirectional,
            batch_first,
            bias: ws.iter().any(|w| w.1.len() == 1),
            input_size: Some(i),
        };
        let want = r.tensors(i).map_err(|e| format!("{what}: {}", e.message))?;
        // Elements per tensor (None where a dim is negative or the product overflows).
        let mut got: Vec<Option<u64>> = ws
            .iter()
            .map(|w| w.1.iter().try_fold(1u64, |a, &d| u64::try_from(d).ok().and_then(|d| a.checked_mul(d))))
            .collect();
        let mut want_sorted: Vec<Option<u64>> = want.iter().copied().map(Some).collect();
        got.sort_unstable();
        want_sorted.sort_unstable();
        if got != want_sorted {
            let total = |v: &[Option<u64>]| {
                v.iter().try_fold(0u64, |a, &e| a.checked_add(e?)).map_or("too many".into(), |n| n.to_string())
            };
            return Err(format!(
                "{what} whose parameters ({} tensors, {} elements) are not those of netstat's {kind} \
                 (hidden_size {h}, num_layers {}: {} elements): proj_size?",
                got.len(),
                total(&got),
                r.num_layers,
                total(&want_sorted)
            ));
        }
        // The value the rest of the model reads must be PyTorch's `output` (every step's h of the
        // last layer), as netstat's layer gives: not h_n or c_n (the final states), which it lacks.
        let width = (dirs as u64).checked_mul(h);
        let out_ok = match (shapes.get(self.output.as_str()).map(Vec::as_slice), x_shape.map(Vec::as_slice)) {
            (Some([a, b, w]), Some([xa, xb, _])) => a == xa && b == xb && *w == width,
            (Some(_), _) => false,
            (None, _) => true,
        };
        if !out_ok {
            return Err(format!(
                "{what} whose result the model reads is not its output of every step (h_n or c_n? \
                 netstat's {kind} gives the output only)"
            ));
        }
        let mut f = vec![("hidden_size", h.to_string())];
        if r.num_layers != 1 {
            f.push(("num_layers", r.num_layers.to_string()));
        }
        if bidirectional {
            f.push(("bidirectional", "true".into()));
        }
        if batch_first {
            f.push(("batch_first", "true".into()));
        }
        if !r.bias {
            f.push(("bias", "false".into()));
        }
        f.push(("input_size", i.to_string()));
        if cell == Cell::Relu {
            f.push(("nonlinearity", "relu".into()));
        }
        Ok((kind, f))
    }

    /// The head count: the first value reshaped to `[…, H, D/H]` (PyTorch's head split).
    fn heads(&self, g: &GraphProto, shapes: &HashMap<&str, Vec<Option<u64>>>, d: u64) -> Option<u64> {
        self.nodes.iter().filter(|&&i| g.node[i].op_type == "Reshape").find_map(|&i| {
            let s = shapes.get(g.node[i].output.first()?.as_str())?;
            match s[..] {
                [.., Some(h), Some(hd)] if h > 1 && hd > 1 && h.checked_mul(hd) == Some(d) => Some(h),
                _ => None,
            }
        })
    }
}

/// `s` as a double-quoted YAML scalar (JSON's escaping, which YAML reads).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".into())
}

/// Write the spec.
fn yaml(file: &str, name: &str, input: &[u64], in_dtype: &str, batch: u64, dtype: &str, layers: &[Layer]) -> String {
    let mut y = String::new();
    let base = std::path::Path::new(file).file_name().map_or(file.into(), |f| f.to_string_lossy().into_owned());
    let _ = writeln!(y, "# Imported from the ONNX model {} by `netstat import`: one layer per ONNX node", q(&base));
    let _ =
        writeln!(y, "# (constant and shape-only nodes folded); each comment names the node: #position \"name\" (op).");
    let _ = writeln!(y, "name: {}", q(name));
    let dims = input.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    if in_dtype == dtype {
        let _ = writeln!(y, "input: [{dims}]");
    } else {
        let _ = writeln!(y, "input: {{shape: [{dims}], dtype: {in_dtype}}}");
    }
    let _ = writeln!(y, "batch: {batch}");
    let _ = writeln!(y, "dtype: {dtype}");
    let _ = writeln!(y, "layers:");
    let mut prev = "input".to_owned();
    for l in layers {
        let _ = write!(y, "  - {{name: {}, kind: {}", q(&l.name), l.kind);
        for (k, v) in &l.fields {
            let _ = write!(y, ", {k}: {v}");
        }
        if !(l.inputs.len() == 1 && l.inputs[0] == prev) {
            let ins = l.inputs.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ");
            let _ = write!(y, ", inputs: [{ins}]");
        }
        // The comment is one line: a node name's control characters (a `\r` ended the comment and
        // started a layer) are escaped where the comment is made.
        let _ = writeln!(y, "}}  # {}", crate::error::escape_control(&l.comment));
        prev = l.name.clone();
    }
    y
}

/// The fields without the markers and the defaults a reader need not see (stride and dilation
/// 1, padding 0; a pool's stride equal to its kernel).
fn readable(kind: &str, fields: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    let pool = kind.ends_with("pool2d");
    let kernel = fields.iter().find(|f| f.0 == "kernel").map(|f| f.1.clone());
    fields
        .into_iter()
        .filter(|(k, v)| match *k {
            "unknown" => false,
            "dilation" | "stride" if !pool => v != "1",
            "dilation" => v != "1",
            "stride" => Some(v) != kernel.as_ref(),
            "padding" | "output_padding" => v != "0",
            _ => true,
        })
        .collect()
}

/// `name`, or `name_1`, `name_2`, … — the first not yet taken (torch.fx's naming of a module called twice).
fn unique(names: &mut HashSet<String>, name: String) -> String {
    let mut n = name.clone();
    let mut k = 1;
    while names.contains(&n) || n == "input" {
        n = format!("{name}_{k}");
        k += 1;
    }
    names.insert(n.clone());
    n
}

/// The layer's name: the PyTorch module path the exporter recorded in the node's `namespace`
/// metadata (`…/layer1.0.conv1: torch.nn.modules.conv.Conv2d/conv2d_1: aten.conv2d.default`
/// → `layer1.0.conv1`; an op called inside a container module gets the container's path and the
/// op: `layer1.0.add`), else the node name, else `OpType_position`.
fn layer_name(n: &NodeProto, pos: usize) -> String {
    if let Some(ns) = n.metadata_props.iter().find(|p| p.key == "namespace") {
        let segs: Vec<(&str, &str)> =
            ns.value.split('/').filter_map(|s| s.split_once(": ")).map(|(a, b)| (a.trim(), b.trim())).collect();
        if let Some(&(fx, _)) = segs.last() {
            let op = fx.trim_end_matches(|c: char| c.is_ascii_digit());
            let op = op.strip_suffix('_').filter(|o| !o.is_empty() && op.len() < fx.len()).unwrap_or(fx);
            let module = segs[..segs.len() - 1].iter().rev().find(|(_, class)| !class.starts_with("aten."));
            let name = match module {
                Some((path, class)) if !path.is_empty() => {
                    let leaf =
                        class.starts_with("torch.nn.modules.") && !class.starts_with("torch.nn.modules.container.");
                    if leaf {
                        path.to_string()
                    } else {
                        format!("{path}.{op}")
                    }
                }
                _ => op.to_string(),
            };
            if !name.is_empty() && crate::spec::bad_name(&name).is_none() {
                return name;
            }
        }
    }
    if !n.name.is_empty() && crate::spec::bad_name(&n.name).is_none() {
        return n.name.clone();
    }
    format!("{}_{pos}", n.op_type.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>())
}

/// Shapes of values the graph declares (inputs, outputs, value_info); `None` for a symbolic dim.
fn value_shapes(g: &GraphProto) -> HashMap<&str, Vec<Option<u64>>> {
    let mut m = HashMap::new();
    for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
        if let Some(s) = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).and_then(|t| t.shape.as_ref()) {
            let dims =
                s.dim.iter().map(|d| d.dim_value.and_then(|v| u64::try_from(v).ok()).filter(|&v| v > 0)).collect();
            m.insert(v.name.as_str(), dims);
        }
    }
    m
}

/// netstat's spelling of an ONNX `TensorProto.DataType`.
fn dtype_name(t: i32) -> Option<&'static str> {
    Some(match t {
        1 => "f32",
        2 => "u8",
        6 => "i32",
        7 => "i64",
        10 => "f16",
        11 => "f64",
        16 => "bf16",
        _ => return None,
    })
}

/// The one graph input that is not an initializer: (name, dims without batch, batch, dtype).
fn graph_input(
    g: &GraphProto,
    inits: &HashMap<&str, &TensorInfo>,
    opts: &ImportOptions,
) -> Result<(String, Vec<u64>, u64, &'static str), String> {
    let real: Vec<_> = g.input.iter().filter(|i| !inits.contains_key(i.name.as_str())).collect();
    let [input] = real.as_slice() else {
        let names: Vec<&str> = real.iter().map(|i| i.name.as_str()).collect();
        return Err(format!(
            "the graph has {} inputs ({}); netstat analyses models with one input",
            real.len(),
            names.join(", ")
        ));
    };
    let t = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| format!("graph input \"{}\" is not a tensor", input.name))?;
    let dt = dtype_name(t.elem_type).ok_or_else(|| {
        format!("graph input \"{}\" has element type {}, which netstat does not model", input.name, t.elem_type)
    })?;
    let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    if dims.len() < 2 {
        return Err(format!(
            "graph input \"{}\" has rank {}; netstat needs a batch dimension and at least one more",
            input.name,
            dims.len()
        ));
    }
    let batch = match (opts.batch, dims[0].dim_value) {
        (Some(b), _) => b,
        (None, Some(v)) if v >= 1 => v as u64,
        _ => 1,
    };
    crate::shape::check_rank(dims.len()).map_err(|m| format!("graph input \"{}\": {m}", input.name))?;
    if let Some(want) = &opts.input {
        if want.len() + 1 != dims.len() {
            return Err(format!(
                "--input has {} dimensions, but graph input \"{}\" has {} besides the batch",
                want.len(),
                input.name,
                dims.len() - 1
            ));
        }
        return Ok((input.name.clone(), want.clone(), batch, dt));
    }
    let mut shape = Vec::with_capacity(dims.len() - 1);
    for (i, d) in dims.iter().enumerate().skip(1) {
        match d.dim_value {
            Some(v) if v >= 1 => shape.push(v as u64),
            _ => {
                return Err(format!(
                    "graph input \"{}\" has a symbolic dimension {i} ({}); give the input shape with --input \
                     (without the batch, which is 1 or --batch), or export the model with fixed sizes",
                    input.name,
                    d.dim_param.as_deref().unwrap_or("unknown")
                ))
            }
        }
    }
    Ok((input.name.clone(), shape, batch, dt))
}

/// Record what is known of a folded node's value: `Constant` tensors and what passes them on,
/// and the dims of a weight passed through `Transpose` (permuted), `Expand` (the declared output
/// shape) or a cast.
fn fold(
    n: &NodeProto,
    consts: &mut HashMap<String, Vec<f64>>,
    weights: &mut HashMap<String, Vec<i64>>,
    shapes: &HashMap<&str, Vec<Option<u64>>>,
) {
    let Some(out) = n.output.first() else { return };
    if let Some(w) = n.input.first().and_then(|i| weights.get(i)) {
        let dims = match n.op_type.as_str() {
            "Identity" | "Cast" | "CastLike" => Some(w.clone()),
            "Transpose" => {
                let perm = attr_ints(n, "perm").unwrap_or_else(|| (0..w.len() as i64).rev().collect());
                perm.iter().map(|&p| usize::try_from(p).ok().and_then(|p| w.get(p).copied())).collect()
            }
            "Expand" => {
                shapes.get(out.as_str()).and_then(|s| s.iter().map(|d| d.and_then(|d| i64::try_from(d).ok())).collect())
            }
            _ => None,
        };
        if let Some(d) = dims {
            weights.insert(out.clone(), d);
        }
    }
    let v = match n.op_type.as_str() {
        "Constant" => n.attribute.iter().find_map(|a| match a.name.as_str() {
            "value" => a.t.as_ref().and_then(tensor_values),
            "value_float" => Some(vec![f64::from(a.f)]),
            "value_int" => Some(vec![a.i as f64]),
            "value_floats" => Some(a.floats.iter().map(|&f| f64::from(f)).collect()),
            "value_ints" => Some(a.ints.iter().map(|&i| i as f64).collect()),
            _ => None,
        }),
        "Identity" | "Cast" | "CastLike" | "Reshape" | "Squeeze" | "Unsqueeze" => {
            n.input.first().and_then(|i| consts.get(i)).cloned()
        }
        _ => None,
    };
    if let Some(v) = v {
        consts.insert(out.clone(), v);
    }
}

/// A small constant tensor's values (at most 64 of them).
fn tensor_values(t: &TensorData) -> Option<Vec<f64>> {
    let v: Vec<f64> = if !t.raw_data.is_empty() {
        let r = &t.raw_data;
        match t.data_type {
            1 => r.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
            7 => r.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64).collect(),
            6 => r.chunks_exact(4).map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
            11 => r.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
            _ => return None,
        }
    } else if !t.float_data.is_empty() {
        t.float_data.iter().map(|&f| f64::from(f)).collect()
    } else if !t.int64_data.is_empty() {
        t.int64_data.iter().map(|&i| i as f64).collect()
    } else if !t.int32_data.is_empty() {
        t.int32_data.iter().map(|&i| f64::from(i)).collect()
    } else {
        t.double_data.clone()
    };
    (v.len() <= 64).then_some(v)
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &NodeProto, name: &str) -> String {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned()).unwrap_or_default()
}

/// A YAML list of integers.
fn list(v: &[i64]) -> String {
    format!("[{}]", v.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
}

/// `[h, w]` from two positive sizes.
fn pair(v: &[i64], what: &str, op: &str) -> Result<String, Unmapped> {
    match v {
        [a, b] if *a >= 1 && *b >= 1 => Ok(if a == b { a.to_string() } else { list(v) }),
        _ => Err(format!("{op} with {what} {v:?} (netstat's 2-D kinds take two positive sizes)")),
    }
}

/// 2-D padding from ONNX `pads` [top, left, bottom, right] as netstat's `p`, `[h, w]` or
/// `[top, bottom, left, right]`.
fn pads2(n: &NodeProto, op: &str) -> Result<String, Unmapped> {
    match attr_s(n, "auto_pad").as_str() {
        "" | "NOTSET" => {}
        "VALID" => return Ok("0".into()),
        "SAME_UPPER" if op == "Conv" => return Ok("same".into()),
        other => return Err(format!("{op} with auto_pad {other}")),
    }
    let p = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
    match p[..] {
        [t, l, b, r] if t >= 0 && l >= 0 && b >= 0 && r >= 0 => Ok(if t == b && l == r {
            if t == l {
                t.to_string()
            } else {
                list(&[t, l])
            }
        } else if op == "Conv" {
            list(&[t, b, l, r])
        } else {
            return Err(format!("{op} with asymmetric pads {p:?}"));
        }),
        _ => Err(format!("{op} with pads {p:?} (netstat's 2-D kinds take 4)")),
    }
}

/// The rank of a value's declared shape.
fn rank(shapes: &HashMap<&str, Vec<Option<u64>>>, v: &str) -> Option<usize> {
    shapes.get(v).map(Vec::len)
}

/// The kind and fields of one node, or why it has none.
fn layer_of(
    n: &NodeProto,
    ins: &[&str],
    acts: &[&str],
    weights: &HashMap<String, Vec<i64>>,
    consts: &HashMap<String, Vec<f64>>,
    shapes: &HashMap<&str, Vec<Option<u64>>>,
) -> Result<Mapped, Unmapped> {
    let op = n.op_type.as_str();
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return Err(format!("{op} of domain {} (netstat maps the default ONNX operator set)", n.domain));
    }
    let one = |kind: &'static str| -> Result<Mapped, Unmapped> {
        if acts.len() == 1 && ins.first() == acts.first() {
            Ok(Mapped::Layer(kind, vec![]))
        } else {
            Err(format!("{op} of {} non-constant inputs", acts.len()))
        }
    };
    let weight = |i: usize| ins.get(i).and_then(|w| weights.get(*w));
    let is_weight = |v: &&str| weights.contains_key(*v);
    let pos_dims = |t: &Vec<i64>| t.iter().all(|&d| d >= 1);
    Ok(match op {
        "LSTM" | "GRU" | "RNN" => return recurrent_node(n, acts, weights),
        "Relu" => return one("relu"),
        "Sigmoid" => return one("sigmoid"),
        "Tanh" => return one("tanh"),
        "HardSwish" => return one("hardswish"),
        "Identity" => Mapped::Alias,
        "Gelu" => {
            one("gelu")?;
            let approx = attr_s(n, "approximate");
            Mapped::Layer("gelu", if approx == "tanh" { vec![("approximate", "tanh".into())] } else { vec![] })
        }
        "Softmax" => {
            one("softmax")?;
            Mapped::Layer("softmax", vec![("dim", attr_i(n, "axis", -1).to_string())])
        }
        "Dropout" => {
            one("dropout")?;
            let p = ins.get(1).and_then(|r| consts.get(*r)).and_then(|v| v.first().copied());
            let p = p.or_else(|| attr(n, "ratio").map(|a| f64::from(a.f))).unwrap_or(0.5);
            Mapped::Layer("dropout", vec![("p", format!("{p}"))])
        }
        "Clip" => {
            if acts.len() != 1 || ins.first() != acts.first() {
                return Err(format!("{op} of {} non-constant inputs", acts.len()));
            }
            let bound = |i: usize, a: &str| -> Result<Option<f64>, Unmapped> {
                match n.input.get(i).filter(|s| !s.is_empty()) {
                    Some(v) => consts
                        .get(v)
                        .and_then(|c| c.first().copied())
                        .map(Some)
                        .ok_or_else(|| format!("{op} with a bound netstat cannot read")),
                    None => Ok(attr(n, a).map(|x| f64::from(x.f))),
                }
            };
            match (bound(1, "min")?, bound(2, "max")?) {
                (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => Mapped::Layer("relu6", vec![]),
                (Some(0.0), None) => Mapped::Layer("relu", vec![]),
                (lo, hi) => return Err(format!("{op} to [{lo:?}, {hi:?}] (netstat maps [0, 6] and [0, ∞))")),
            }
        }
        // ViT's `x + pos_embedding`: a learned [1, L, D] table added to the sequence.
        "Add"
            if acts.len() == 1
                && ins.len() == 2
                && weight(1).or(weight(0)).is_some_and(|w| w.len() == 3 && w[0] == 1) =>
        {
            Mapped::Layer("pos_embedding", vec![])
        }
        "Add" | "Mul" => {
            if acts.len() != 2 || ins.len() != 2 {
                return Err(format!("{op} with a constant operand"));
            }
            Mapped::Layer(if op == "Add" { "add" } else { "mul" }, vec![])
        }
        // ViT's `cat([class_token.expand(N, -1, -1), x], dim=1)`: a learned [1, 1, D] token in front.
        "Concat"
            if ins.len() == 2
                && acts.len() == 1
                && ins[1] == acts[0]
                && weight(0).is_some_and(|w| w.len() == 3 && w[1] == 1)
                && matches!(attr_i(n, "axis", 0), 1 | -2) =>
        {
            Mapped::Layer("class_token", vec![])
        }
        "Concat" => {
            if acts.len() != ins.len() || acts.len() < 2 {
                return Err(format!("{op} with a constant input"));
            }
            Mapped::Layer("concat", vec![("axis", attr_i(n, "axis", 1).to_string())])
        }
        "Flatten" => {
            one("flatten")?;
            match attr_i(n, "axis", 1) {
                1 => Mapped::Layer("flatten", vec![]),
                a => return Err(format!("{op} at axis {a} (netstat's flatten keeps the batch: axis 1)")),
            }
        }
        "Reshape" => {
            if acts.len() != 1 || ins.first() != acts.first() {
                return Err(format!("{op} of a computed shape"));
            }
            let out = n.output.first().and_then(|o| shapes.get(o.as_str()));
            let inr = rank(shapes, acts[0]);
            match out {
                Some(o) if o.len() == 2 && o[1].is_some() && inr.is_some_and(|r| r >= 2) => {
                    Mapped::Layer("flatten", vec![])
                }
                Some(o) if o.len() >= 2 && o[1..].iter().all(Option::is_some) => {
                    let dims: Vec<i64> = o[1..].iter().map(|d| d.unwrap_or(1) as i64).collect();
                    Mapped::Layer("reshape", vec![("shape", list(&dims))])
                }
                _ => return Err(format!("{op} whose output shape the model does not declare")),
            }
        }
        "Transpose" => {
            one("permute")?;
            match attr_ints(n, "perm") {
                Some(p) => Mapped::Layer("permute", vec![("dims", list(&p))]),
                None => return Err(format!("{op} without perm")),
            }
        }
        "LayerNormalization" => {
            let w = weight(1).ok_or_else(|| format!("{op} with a computed scale"))?;
            if acts.len() != 1 || ins.first() != acts.first() {
                return Err(format!("{op} of {} non-constant inputs", acts.len()));
            }
            let axis = attr_i(n, "axis", -1);
            let r = rank(shapes, acts[0]);
            if !(axis == -(w.len() as i64) || r.is_some_and(|r| axis >= 0 && axis as usize + w.len() == r)) {
                return Err(format!("{op} over axis {axis} with a {}-D scale", w.len()));
            }
            let mut f = vec![("normalized_shape", if w.len() == 1 { w[0].to_string() } else { list(w) })];
            let eps = attr(n, "epsilon").map_or(1e-5, |a| a.f);
            if eps != 1e-5 {
                f.push(("eps", format!("{eps:e}")));
            }
            if !ins.get(2).is_some_and(is_weight) {
                f.push(("bias", "false".into()));
            }
            Mapped::Layer("layer_norm", f)
        }
        // nn.Embedding: rows of a [num_embeddings, embedding_dim] table picked by integer ids.
        "Gather"
            if ins.len() == 2
                && acts.len() == 1
                && ins[1] == acts[0]
                && attr_i(n, "axis", 0) == 0
                && weight(0).is_some_and(|w| w.len() == 2 && pos_dims(w)) =>
        {
            let w = weight(0).map_or(&[][..], Vec::as_slice);
            Mapped::Layer("embedding", vec![("num_embeddings", w[0].to_string()), ("embedding_dim", w[1].to_string())])
        }
        "Gather" => {
            one("select")?;
            let idx = ins.get(1).and_then(|i| consts.get(*i)).filter(|v| v.len() == 1 && ins.len() == 2);
            match idx {
                Some(v) if n.input.get(1).and_then(|i| shapes.get(i.as_str())).is_none_or(|s| s.is_empty()) => {
                    Mapped::Layer(
                        "select",
                        vec![("dim", attr_i(n, "axis", 0).to_string()), ("index", (v[0] as i64).to_string())],
                    )
                }
                _ => return Err(format!("{op} of other than one constant scalar index")),
            }
        }
        "Slice" => {
            one("slice")?;
            Mapped::Layer("slice", slice_fields(n, acts[0], consts, shapes)?)
        }
        "BatchNormalization" => {
            if acts.len() != 1 || ins.first() != acts.first() || ins.len() != 5 {
                return Err(format!("{op} with computed statistics"));
            }
            // nn.BatchNorm1d over N×C or N×C×L, nn.BatchNorm2d over N×C×H×W; a rank the graph
            // does not declare is taken from the layer that makes the input (in `map`).
            let kind = match rank(shapes, acts[0]) {
                None | Some(4) => "batch_norm2d",
                Some(2 | 3) => "batch_norm1d",
                Some(r) => {
                    return Err(format!(
                        "{op} of a rank-{r} input (netstat's batch_norm1d takes N×C or N×C×L, batch_norm2d N×C×H×W)"
                    ))
                }
            };
            // ONNX stores epsilon as a float32; compared and written as one (1e-5, not 9.99999974738e-6).
            let eps = attr(n, "epsilon").map_or(1e-5, |a| a.f);
            let mut f = vec![];
            if eps != 1e-5 {
                f.push(("eps", format!("{eps:e}")));
            }
            Mapped::Layer(kind, f)
        }
        "Conv" => {
            let w = weight(1).ok_or_else(|| format!("{op} with a computed weight"))?;
            if acts.len() != 1 || ins.first() != acts.first() || !pos_dims(w) {
                return Err(format!("{op} with a computed weight or input"));
            }
            // [c_out, c_in/groups, k…]: a weight of rank under 3 is no convolution (a fuzz input
            // with a scalar weight indexed w[0] out of bounds).
            if w.len() < 3 {
                return Err(format!("{op} with a rank-{} weight (netstat has conv1d and conv2d)", w.len()));
            }
            let bias = match ins.get(2) {
                None => false,
                Some(b) if is_weight(b) => true,
                // A computed constant bias (the exporter's zeros for bias=None) is no parameter.
                Some(_) => false,
            };
            let k: Vec<i64> = attr_ints(n, "kernel_shape").unwrap_or_else(|| w[2..].to_vec());
            let ones = vec![1; k.len()];
            let s = attr_ints(n, "strides").unwrap_or_else(|| ones.clone());
            let d = attr_ints(n, "dilations").unwrap_or(ones);
            let g = attr_i(n, "group", 1);
            let mut f = vec![("c_out", w[0].to_string())];
            let kind = match w.len() {
                4 => {
                    f.push(("kernel", pair(&k, "kernel", op)?));
                    f.push(("stride", pair(&s, "strides", op)?));
                    f.push(("padding", pads2(n, op)?));
                    f.push(("dilation", pair(&d, "dilations", op)?));
                    "conv2d"
                }
                3 => {
                    let p = attr_ints(n, "pads").unwrap_or_else(|| vec![0, 0]);
                    match (&k[..], &s[..], &d[..], &p[..]) {
                        ([k], [s], [d], [a, b])
                            if a == b && matches!(attr_s(n, "auto_pad").as_str(), "" | "NOTSET") =>
                        {
                            f.push(("kernel", k.to_string()));
                            f.push(("stride", s.to_string()));
                            f.push(("padding", a.to_string()));
                            f.push(("dilation", d.to_string()));
                        }
                        _ => return Err(format!("1-D {op} with asymmetric pads or auto_pad")),
                    }
                    "conv1d"
                }
                r => return Err(format!("{op} with a rank-{r} weight (netstat has conv1d and conv2d)")),
            };
            if g != 1 {
                f.push(("groups", g.to_string()));
            }
            f.push(("bias", bias.to_string()));
            Mapped::Layer(kind, f)
        }
        "ConvTranspose" => {
            let w = weight(1).ok_or_else(|| format!("{op} with a computed weight"))?;
            if acts.len() != 1 || ins.first() != acts.first() || !pos_dims(w) {
                return Err(format!("{op} with a computed weight or input"));
            }
            if w.len() != 4 {
                return Err(format!("{op} with a rank-{} weight (netstat has conv_transpose2d)", w.len()));
            }
            if attr(n, "output_shape").is_some() || !matches!(attr_s(n, "auto_pad").as_str(), "" | "NOTSET") {
                return Err(format!("{op} sized by output_shape or auto_pad (netstat takes pads)"));
            }
            // Weight [c_in, c_out / groups, k_h, k_w] (ONNX ConvTranspose, as PyTorch's).
            let g = attr_i(n, "group", 1);
            let c_out = w[1].checked_mul(g).filter(|_| g >= 1).ok_or_else(|| format!("{op} with group {g}"))?;
            let k: Vec<i64> = attr_ints(n, "kernel_shape").unwrap_or_else(|| w[2..].to_vec());
            let s = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
            let d = attr_ints(n, "dilations").unwrap_or_else(|| vec![1, 1]);
            let op_ = attr_ints(n, "output_padding").unwrap_or_else(|| vec![0, 0]);
            let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
            let padding = match pads[..] {
                [t, l, b, r] if t == b && l == r && t >= 0 && l >= 0 => {
                    if t == l {
                        t.to_string()
                    } else {
                        list(&[t, l])
                    }
                }
                _ => return Err(format!("{op} with pads {pads:?} (netstat's conv_transpose2d pads both sides alike)")),
            };
            let output_padding = match op_[..] {
                [a, b] if a >= 0 && b >= 0 => {
                    if a == b {
                        a.to_string()
                    } else {
                        list(&op_)
                    }
                }
                _ => return Err(format!("{op} with output_padding {op_:?}")),
            };
            let mut f = vec![
                ("c_out", c_out.to_string()),
                ("kernel", pair(&k, "kernel", op)?),
                ("stride", pair(&s, "strides", op)?),
                ("padding", padding),
                ("output_padding", output_padding),
                ("dilation", pair(&d, "dilations", op)?),
            ];
            if g != 1 {
                f.push(("groups", g.to_string()));
            }
            f.push(("bias", ins.get(2).is_some_and(is_weight).to_string()));
            Mapped::Layer("conv_transpose2d", f)
        }
        // F.interpolate / nn.Upsample: scales [1, 1, s_h, s_w] from a constant, else the output
        // size the model declares (PyTorch's exporter computes `sizes` from Shape → Concat).
        "Resize" => {
            if acts.len() != 1 || ins.first() != acts.first() {
                return Err(format!("{op} of {} non-constant inputs", acts.len()));
            }
            if rank(shapes, acts[0]).is_some_and(|r| r != 4) {
                return Err(format!("{op} of a non-4-D input (netstat's upsample takes N×C×H×W)"));
            }
            let mut f = vec![];
            match attr_s(n, "mode").as_str() {
                "" | "nearest" => f.push(("mode", "nearest".to_string())),
                "linear" => {
                    f.push(("mode", "bilinear".to_string()));
                    if attr_s(n, "coordinate_transformation_mode") == "align_corners" {
                        f.push(("align_corners", "true".into()));
                    }
                }
                m => return Err(format!("{op} in mode {m} (netstat's upsample is nearest or bilinear)")),
            }
            // Inputs: X, roi, scales, sizes (opset 11+); X, scales (opset 10).
            let scales_at = if n.input.len() == 2 { 1 } else { 2 };
            let scales = n.input.get(scales_at).filter(|v| !v.is_empty()).and_then(|v| consts.get(v.as_str()));
            let sizes = n.input.get(3).filter(|v| !v.is_empty()).and_then(|v| consts.get(v.as_str()));
            let out = n.output.first().and_then(|o| shapes.get(o.as_str()));
            match (scales.map(Vec::as_slice), sizes.map(Vec::as_slice), out.map(Vec::as_slice)) {
                (Some(&[a, b, h, w]), _, _) if a == 1.0 && b == 1.0 && h > 0.0 && w > 0.0 => {
                    let fmt = |v: f64| if v.fract() == 0.0 { format!("{}", v as i64) } else { format!("{v}") };
                    f.push(("scale_factor", if h == w { fmt(h) } else { format!("[{}, {}]", fmt(h), fmt(w)) }));
                }
                (_, Some(&[_, _, h, w]), _) if h >= 1.0 && w >= 1.0 && h.fract() == 0.0 && w.fract() == 0.0 => {
                    f.push(("size", format!("[{}, {}]", h as u64, w as u64)))
                }
                (_, _, Some(&[_, _, Some(h), Some(w)])) => f.push(("size", format!("[{h}, {w}]"))),
                _ => {
                    return Err(format!(
                        "{op} whose scales netstat cannot read and output size the model does not declare"
                    ))
                }
            }
            Mapped::Layer("upsample", f)
        }
        "Gemm" => {
            let w = weight(1).ok_or_else(|| format!("{op} with a computed weight"))?;
            if acts.len() != 1
                || ins.first() != acts.first()
                || attr_i(n, "transA", 0) != 0
                || w.len() != 2
                || !pos_dims(w)
            {
                return Err(format!("{op} with a computed or transposed input"));
            }
            let out = if attr_i(n, "transB", 0) != 0 { w[0] } else { w[1] };
            let bias = ins.get(2).is_some_and(is_weight);
            // C broadcasts in ONNX; netstat's linear has one bias per output ([N] or [1, N]).
            if let Some(c) = weight(2) {
                let values = c.iter().try_fold(1i64, |p, &d| p.checked_mul(d)).unwrap_or(-1);
                if values != out {
                    return Err(format!(
                        "{op} with a bias of shape {c:?} for {out} outputs (netstat's linear has one bias per output: [N] or [1, N])"
                    ));
                }
            }
            Mapped::Layer("linear", vec![("out_features", out.to_string()), ("bias", bias.to_string())])
        }
        "MatMul" => match (weight(1), acts.len()) {
            (Some(w), 1) if ins.first() == acts.first() && w.len() == 2 && pos_dims(w) => {
                Mapped::Layer("linear", vec![("out_features", w[1].to_string()), ("bias", "false".into())])
            }
            (_, 2) => Mapped::Layer("matmul", vec![]),
            _ => return Err(format!("{op} by a constant that is not a 2-D weight")),
        },
        "MaxPool" | "AveragePool" => {
            one("pool")?;
            if n.output.len() > 1 {
                return Err(format!("{op} with indices"));
            }
            let k = attr_ints(n, "kernel_shape").unwrap_or_default();
            let ones = vec![1; k.len()];
            let s = attr_ints(n, "strides").unwrap_or_else(|| ones.clone());
            let mut f = vec![
                ("kernel", pair(&k, "kernel", op)?),
                ("stride", pair(&s, "strides", op)?),
                ("padding", pads2(n, op)?),
            ];
            if attr_i(n, "ceil_mode", 0) != 0 {
                f.push(("ceil_mode", "true".into()));
            }
            if op == "MaxPool" {
                let d = attr_ints(n, "dilations").unwrap_or(ones);
                f.push(("dilation", pair(&d, "dilations", op)?));
                Mapped::Layer("max_pool2d", f)
            } else {
                f.push(("count_include_pad", (attr_i(n, "count_include_pad", 0) != 0).to_string()));
                Mapped::Layer("avg_pool2d", f)
            }
        }
        "GlobalAveragePool" => {
            one("pool")?;
            if rank(shapes, acts[0]).is_some_and(|r| r != 4) {
                return Err(format!("{op} of a non-4-D input"));
            }
            Mapped::Layer("adaptive_avg_pool2d", vec![("output_size", "1".into())])
        }
        "ReduceMean" => {
            if acts.len() != 1 || ins.first() != acts.first() {
                return Err(format!("{op} of {} non-constant inputs", acts.len()));
            }
            let axes: Option<Vec<i64>> = match n.input.get(1).filter(|s| !s.is_empty()) {
                Some(a) => consts.get(a).map(|v| v.iter().map(|&x| x as i64).collect()),
                None => attr_ints(n, "axes"),
            };
            let r = rank(shapes, acts[0]);
            let keep = attr_i(n, "keepdims", 1) != 0;
            let spatial = match (axes, r) {
                (Some(a), Some(4)) => {
                    let mut a: Vec<i64> = a.iter().map(|&x| if x < 0 { x + 4 } else { x }).collect();
                    a.sort_unstable();
                    a == [2, 3]
                }
                // Axes in an initializer (whose values netstat does not read): from the shapes,
                // N×C×H×W (H, W > 1) → N×C×1×1 or N×C.
                (None, Some(4)) => {
                    let i = &shapes[acts[0]];
                    let o = n.output.first().and_then(|o| shapes.get(o.as_str()));
                    let hw = i[2].is_some_and(|h| h > 1) && i[3].is_some_and(|w| w > 1);
                    let want: &[Option<u64>] = if keep { &[i[0], i[1], Some(1), Some(1)] } else { &i[..2] };
                    hw && o.is_some_and(|o| o[1..] == want[1..])
                }
                _ => false,
            };
            if !spatial {
                return Err(format!("{op} over other axes than H and W of an N×C×H×W input"));
            }
            if keep {
                Mapped::Layer("adaptive_avg_pool2d", vec![("output_size", "1".into())])
            } else {
                Mapped::Layer("global_avg_pool", vec![])
            }
        }
        _ => return Err(op.to_string()),
    })
}

/// The fields of a `slice` layer from an ONNX `Slice` node on activation `x`: `starts`, `ends`,
/// `axes` and `steps` from constant inputs (opset ≥ 10: Constant nodes or initializers) or from
/// attributes (opset 1: `starts`, `ends`, `axes`; no steps). netstat's `slice` takes one axis:
/// axes the node leaves whole (start 0, step 1, end past the declared size or at ONNX's INT64_MAX)
/// are dropped, and a node that still slices several axes is unmapped, as is a negative step.
/// Out-of-range starts and ends are written as given (the kind clamps them as ONNX does); the
/// defaults (start 0, ONNX's INT64_MAX end, step 1) are left out.
fn slice_fields(
    n: &NodeProto,
    x: &str,
    consts: &HashMap<String, Vec<f64>>,
    shapes: &HashMap<&str, Vec<Option<u64>>>,
) -> Result<Vec<(&'static str, String)>, Unmapped> {
    let op = n.op_type.as_str();
    let by_input = n.input.len() > 1;
    let read = |i: usize, a: &str| -> Result<Option<Vec<i64>>, Unmapped> {
        if !by_input {
            return Ok(attr_ints(n, a));
        }
        match n.input.get(i).filter(|s| !s.is_empty()) {
            // f64 → i64 saturates: ONNX's ±INT64_MAX bounds stay beyond any size.
            Some(v) => consts
                .get(v)
                .map(|c| Some(c.iter().map(|&f| f as i64).collect()))
                .ok_or_else(|| format!("{op} whose {a} netstat cannot read (not constant)")),
            None => Ok(None),
        }
    };
    let starts = read(1, "starts")?.ok_or_else(|| format!("{op} without starts"))?;
    let ends = read(2, "ends")?.ok_or_else(|| format!("{op} without ends"))?;
    let axes = read(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = if by_input { read(4, "steps")? } else { None }.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(format!("{op} whose starts, ends, axes and steps differ in length"));
    }
    let dims = shapes.get(x);
    let size = |axis: i64| {
        let d = dims?;
        let a = if axis < 0 { axis + d.len() as i64 } else { axis };
        d.get(usize::try_from(a).ok()?).copied().flatten()
    };
    let cut: Vec<usize> = (0..axes.len())
        .filter(|&k| {
            let whole_end = ends[k] >= i64::MAX / 2 || size(axes[k]).is_some_and(|s| ends[k] >= s as i64);
            !(starts[k] == 0 && steps[k] == 1 && whole_end)
        })
        .collect();
    let k = match cut[..] {
        [k] => k,
        [] if axes.is_empty() => return Err(format!("{op} of no axes")),
        [] => 0,
        _ => {
            let a: Vec<i64> = cut.iter().map(|&k| axes[k]).collect();
            return Err(format!(
                "{op} of {} axes {a:?} at once (netstat's slice takes one axis; export one slice per axis)",
                a.len()
            ));
        }
    };
    if steps[k] < 1 {
        return Err(format!("{op} with step {} (netstat's slice takes steps ≥ 1)", steps[k]));
    }
    let mut f = vec![("dim", axes[k].to_string())];
    if starts[k] != 0 {
        f.push(("start", starts[k].to_string()));
    }
    if ends[k] < i64::MAX / 2 {
        f.push(("end", ends[k].to_string()));
    }
    if steps[k] != 1 {
        f.push(("step", steps[k].to_string()));
    }
    Ok(f)
}

/// An ONNX `LSTM`, `GRU` or `RNN` node reading its weights from initializers (ONNX operator
/// docs: W `[dirs, G·H, I]`, R `[dirs, G·H, H]`, optional B `[dirs, 2·G·H]` — the input and
/// recurrent biases, as PyTorch's `b_ih` and `b_hh`; G = 4, 3, 1 gates; the gate order, iofc
/// against PyTorch's ifgo, does not change a count), as one `lstm`, `gru` or `rnn` layer of one
/// layer (`layout` 1 is `batch_first`). Its output is netstat's `[T, N, dirs·H]`, not ONNX's
/// 4-D Y: the nodes that reshape Y so are folded ([`YState`]). Unmapped: weights computed by
/// other nodes, a non-constant initial state or sequence_lens, peepholes (LSTM's P), a
/// reverse-only direction, RNN activations other than Tanh and Relu.
fn recurrent_node(n: &NodeProto, acts: &[&str], weights: &HashMap<String, Vec<i64>>) -> Result<Mapped, Unmapped> {
    use crate::kinds::rnn::{Cell, Recurrent};
    let op = n.op_type.as_str();
    let input = |i: usize| n.input.get(i).map(String::as_str).filter(|v| !v.is_empty());
    if acts.len() != 1 || input(0) != acts.first().copied() {
        return Err(format!("{op} with a computed weight, initial state or sequence_lens"));
    }
    let (Some(w), Some(r)) = (input(1).and_then(|v| weights.get(v)), input(2).and_then(|v| weights.get(v))) else {
        return Err(format!("{op} with computed weights"));
    };
    let b = match input(3) {
        Some(v) => Some(weights.get(v).ok_or_else(|| format!("{op} with a computed bias"))?),
        None => None,
    };
    if op == "LSTM" && input(7).is_some() {
        return Err(format!("{op} with peepholes (netstat's lstm has none)"));
    }
    let (kind, cell) = match op {
        "LSTM" => ("lstm", Cell::Lstm),
        "GRU" => ("gru", Cell::Gru),
        _ => match attr(n, "activations").map(|a| a.strings.as_slice()) {
            None => ("rnn", Cell::Tanh),
            Some([a]) if a.as_slice() == b"Tanh" => ("rnn", Cell::Tanh),
            Some([a]) if a.as_slice() == b"Relu" => ("rnn", Cell::Relu),
            Some(_) => return Err(format!("{op} with activations other than Tanh or Relu")),
        },
    };
    let bidirectional = match attr_s(n, "direction").as_str() {
        "" | "forward" => false,
        "bidirectional" => true,
        d => return Err(format!("{op} in direction {d} (netstat runs forward, or both ways)")),
    };
    let (dirs, gates) = (1 + i64::from(bidirectional), cell.gates() as i64);
    let h = attr_i(n, "hidden_size", r.get(2).copied().unwrap_or(0));
    let (&[wd, wg, i], &[rd, rg, rh]) = (&w[..], &r[..]) else {
        return Err(format!("{op} whose W or R is not 3-D"));
    };
    let b_ok = b.is_none_or(|b| b[..] == [dirs, 2 * gates * h]);
    if h < 1 || i < 1 || [wd, rd] != [dirs, dirs] || [wg, rg] != [gates * h, gates * h] || rh != h || !b_ok {
        return Err(format!(
            "{op} whose weights W {w:?}, R {r:?}, B {b:?} are not [dirs, G·H, I], [dirs, G·H, H], [dirs, 2·G·H] \
             with {dirs} directions, {gates} gates, hidden_size {h}"
        ));
    }
    let batch_first = attr_i(n, "layout", 0) == 1;
    let rec = Recurrent {
        cell,
        hidden_size: h as u64,
        num_layers: 1,
        bidirectional,
        batch_first,
        bias: b.is_some(),
        input_size: Some(i as u64),
    };
    let mut f = vec![("hidden_size", h.to_string())];
    if rec.bidirectional {
        f.push(("bidirectional", "true".into()));
    }
    if batch_first {
        f.push(("batch_first", "true".into()));
    }
    if !rec.bias {
        f.push(("bias", "false".into()));
    }
    f.push(("input_size", i.to_string()));
    if cell == Cell::Relu {
        f.push(("nonlinearity", "relu".into()));
    }
    Ok(Mapped::Layer(kind, f))
}

/// Where an ONNX recurrent node's Y is on its way to `[T, N, dirs·H]` (layout 0: Y is
/// `[T, dirs, N, H]`; layout 1: `[N, T, dirs, H]`), which netstat's layer gives at once.
#[derive(Debug, Clone, Copy)]
struct YState {
    dirs: i64,
    layout: i64,
    /// Layout 0 after Transpose [0, 2, 1, 3]: `[T, N, dirs, H]`.
    transposed: bool,
}

impl YState {
    /// The next state after node `n` reads Y: `Ok(Some)` still 4-D, `Ok(None)` flat (the
    /// node's output is the layer's), or why the node is no flattening netstat can fold.
    fn step(
        self,
        n: &NodeProto,
        ins: &[&str],
        consts: &HashMap<String, Vec<f64>>,
        shapes: &HashMap<&str, Vec<Option<u64>>>,
    ) -> Result<Option<YState>, Unmapped> {
        let op = n.op_type.as_str();
        let axes: Option<Vec<i64>> = match ins.get(1) {
            Some(a) => consts.get(*a).map(|v| v.iter().map(|&x| x as i64).collect()),
            None => attr_ints(n, "axes"),
        };
        // The dirs axis sits right before H once Y is [T, N, dirs, H] or [N, T, dirs, H].
        let dirs_axis = if self.layout == 0 && !self.transposed { 1 } else { 2 };
        let rank3 = n.output.first().and_then(|o| shapes.get(o.as_str())).is_some_and(|s| s.len() == 3)
            || axes.as_ref().is_some_and(|a| a.len() == 3);
        match op {
            "Squeeze" if self.dirs == 1 && axes.is_some_and(|a| a == [dirs_axis] || a == [dirs_axis - 4]) => Ok(None),
            "Transpose"
                if self.layout == 0 && !self.transposed && attr_ints(n, "perm").is_some_and(|p| p == [0, 2, 1, 3]) =>
            {
                Ok(Some(YState { transposed: true, ..self }))
            }
            "Reshape" if (self.dirs == 1 || dirs_axis == 2) && rank3 => Ok(None),
            _ => Err(format!(
                "{op} of an ONNX recurrent node's 4-D output Y (netstat's layer gives [T, N, dirs·H]: it folds \
                 Squeeze of the dirs axis, Transpose [0, 2, 1, 3] and Reshape to 3-D)"
            )),
        }
    }
}

/// With `--allow-unknown`: an unknown op that keeps its input's shape stands in as a 0-param,
/// 0-MAC identity (`dropout` with p 0, marked in the layer name).
fn stand_in(
    n: &NodeProto,
    acts: &[&str],
    shapes: &HashMap<&str, Vec<Option<u64>>>,
) -> Option<(&'static str, Vec<(&'static str, String)>)> {
    let (inp, out) = (acts.first()?, n.output.first()?);
    let (a, b) = (shapes.get(inp)?, shapes.get(out.as_str())?);
    (a == b && acts.len() == 1).then(|| ("dropout", vec![("p", "0".into()), ("unknown", String::new())]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_module_path() {
        let node = |ns: &str| NodeProto {
            name: "node_x".into(),
            op_type: "Relu".into(),
            metadata_props: vec![super::super::proto::StringStringEntryProto {
                key: "namespace".into(),
                value: ns.into(),
            }],
            ..Default::default()
        };
        let n = node(": torchvision.models.resnet.ResNet/layer1: torch.nn.modules.container.Sequential/layer1.0: torchvision.models.resnet.BasicBlock/layer1.0.conv1: torch.nn.modules.conv.Conv2d/conv2d_1: aten.conv2d.default");
        assert_eq!(layer_name(&n, 3), "layer1.0.conv1");
        let n = node(": torchvision.models.resnet.ResNet/layer1: torch.nn.modules.container.Sequential/layer1.0: torchvision.models.resnet.BasicBlock/add_3: aten.add.Tensor");
        assert_eq!(layer_name(&n, 3), "layer1.0.add");
        let n = node(": torchvision.models.alexnet.AlexNet/view: aten.view.default");
        assert_eq!(layer_name(&n, 3), "view");
        assert_eq!(layer_name(&NodeProto { op_type: "Relu".into(), ..Default::default() }, 3), "Relu_3");
        let mut names = HashSet::new();
        assert_eq!(unique(&mut names, "relu".into()), "relu");
        assert_eq!(unique(&mut names, "relu".into()), "relu_1");
        assert_eq!(unique(&mut names, "input".into()), "input_1");
    }
}

#[cfg(test)]
mod recurrent_tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["y".into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    fn s(name: &str, v: &str) -> AttributeProto {
        AttributeProto { name: name.into(), s: v.as_bytes().to_vec(), ..Default::default() }
    }

    fn i(name: &str, v: i64) -> AttributeProto {
        AttributeProto { name: name.into(), i: v, ..Default::default() }
    }

    #[test]
    fn onnx_lstm_weights_give_the_layer() {
        // LSTM, H 32, I 16, both directions: W [2, 128, 16], R [2, 128, 32], B [2, 256].
        let w: HashMap<String, Vec<i64>> =
            [("W", vec![2, 128, 16]), ("R", vec![2, 128, 32]), ("B", vec![2, 256])].map(|(k, v)| (k.into(), v)).into();
        let attrs = || vec![i("hidden_size", 32), s("direction", "bidirectional")];
        let n = node("LSTM", &["x", "W", "R", "B"], attrs());
        let Ok(Mapped::Layer(kind, f)) = recurrent_node(&n, &["x"], &w) else { panic!("not mapped") };
        assert_eq!(kind, "lstm");
        let want = [("hidden_size", "32"), ("bidirectional", "true"), ("input_size", "16")];
        assert_eq!(f, want.map(|(k, v)| (k, v.to_string())));
        // Without B: no bias. layout 1: batch_first.
        let mut a = attrs();
        a.push(i("layout", 1));
        let Ok(Mapped::Layer(_, f)) = recurrent_node(&node("LSTM", &["x", "W", "R"], a), &["x"], &w) else {
            panic!("not mapped")
        };
        assert!(f.contains(&("bias", "false".into())) && f.contains(&("batch_first", "true".into())), "{f:?}");
        // Refused: one direction with W of two, reverse only, peepholes, a computed weight.
        let one_way = node("LSTM", &["x", "W", "R", "B"], vec![i("hidden_size", 32)]);
        assert!(recurrent_node(&one_way, &["x"], &w).err().unwrap().contains("are not [dirs, G·H, I]"));
        let rev = node("LSTM", &["x", "W", "R"], vec![i("hidden_size", 32), s("direction", "reverse")]);
        assert!(recurrent_node(&rev, &["x"], &w).err().unwrap().contains("direction reverse"));
        let peep = node("LSTM", &["x", "W", "R", "B", "", "", "", "W"], attrs());
        assert!(recurrent_node(&peep, &["x"], &w).err().unwrap().contains("peepholes"));
        let computed = node("LSTM", &["x", "W2", "R"], attrs());
        assert!(recurrent_node(&computed, &["x"], &w).err().unwrap().contains("computed weights"));
        // A GRU reading the LSTM's W (4 gates, not 3) is refused: 128 is not 3·32.
        assert!(recurrent_node(&node("GRU", &["x", "W", "R"], attrs()), &["x"], &w).is_err());
    }

    #[test]
    fn the_nodes_flattening_y_fold() {
        let consts: HashMap<String, Vec<f64>> = [("ax1".to_string(), vec![1.0])].into();
        let shapes = HashMap::new();
        let y1 = YState { dirs: 1, layout: 0, transposed: false };
        // Y [T, 1, N, H]: Squeeze of axis 1 is netstat's [T, N, H].
        assert!(matches!(y1.step(&node("Squeeze", &["y", "ax1"], vec![]), &["y", "ax1"], &consts, &shapes), Ok(None)));
        // Y [T, 2, N, H]: Transpose [0, 2, 1, 3], then a Reshape to 3-D.
        let y2 = YState { dirs: 2, ..y1 };
        let perm = AttributeProto { name: "perm".into(), ints: vec![0, 2, 1, 3], ..Default::default() };
        let t = y2.step(&node("Transpose", &["y"], vec![perm]), &["y"], &consts, &shapes).unwrap().unwrap();
        assert!(t.transposed);
        let three: HashMap<String, Vec<f64>> = [("s".to_string(), vec![0.0, 0.0, -1.0])].into();
        assert!(matches!(t.step(&node("Reshape", &["y", "s"], vec![]), &["y", "s"], &three, &shapes), Ok(None)));
        // Both directions reshaped without the transpose would mix them: refused, as any other reader.
        assert!(y2.step(&node("Reshape", &["y", "s"], vec![]), &["y", "s"], &three, &shapes).is_err());
        assert!(y2.step(&node("Relu", &["y"], vec![]), &["y"], &consts, &shapes).is_err());
    }
}

#[cfg(test)]
mod resize_tests {
    use super::*;

    fn resize(inputs: &[&str], mode: &str) -> NodeProto {
        NodeProto {
            op_type: "Resize".into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["y".into()],
            attribute: vec![AttributeProto { name: "mode".into(), s: mode.as_bytes().to_vec(), ..Default::default() }],
            ..Default::default()
        }
    }

    fn fields(n: &NodeProto, shapes: &HashMap<&str, Vec<Option<u64>>>) -> Result<Vec<(&'static str, String)>, String> {
        let consts: HashMap<String, Vec<f64>> =
            [("sc", vec![1.0, 1.0, 2.0, 3.0]), ("sz", vec![1.0, 8.0, 40.0, 30.0])].map(|(k, v)| (k.into(), v)).into();
        let ins: Vec<&str> = n.input.iter().map(String::as_str).filter(|i| !i.is_empty()).collect();
        match layer_of(n, &ins, &["x"], &HashMap::new(), &consts, shapes)? {
            Mapped::Layer("upsample", f) => Ok(f),
            _ => Err("not an upsample".into()),
        }
    }

    #[test]
    fn resize_by_scales_by_sizes_or_to_the_declared_size() {
        let none = HashMap::new();
        let f = |k: &'static str, v: &str| (k, v.to_string());
        // Constant scales [1, 1, 2, 3] (opset 11+: X, roi, scales).
        assert_eq!(
            fields(&resize(&["x", "", "sc"], "nearest"), &none).unwrap(),
            [f("mode", "nearest"), f("scale_factor", "[2, 3]")]
        );
        // Opset 10: X, scales.
        assert_eq!(
            fields(&resize(&["x", "sc"], "linear"), &none).unwrap(),
            [f("mode", "bilinear"), f("scale_factor", "[2, 3]")]
        );
        // Constant sizes [N, C, 40, 30].
        assert_eq!(fields(&resize(&["x", "", "", "sz"], "linear"), &none).unwrap()[1], f("size", "[40, 30]"));
        // Sizes computed (Shape → Concat): the declared output shape.
        let declared: HashMap<&str, Vec<Option<u64>>> = [("y", vec![Some(1), Some(8), Some(12), Some(14)])].into();
        assert_eq!(
            fields(&resize(&["x", "", "", "computed"], "nearest"), &declared).unwrap()[1],
            f("size", "[12, 14]")
        );
        // Neither: refused, as is cubic.
        assert!(fields(&resize(&["x", "", "", "computed"], "nearest"), &none).unwrap_err().contains("cannot read"));
        assert!(fields(&resize(&["x", "", "sc"], "cubic"), &none).unwrap_err().contains("mode cubic"));
    }
}

#[cfg(test)]
mod slice_tests {
    use super::*;

    fn slice(inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: "Slice".into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["y".into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), ints: v.to_vec(), ..Default::default() }
    }

    fn fields(n: &NodeProto) -> Result<Vec<(&'static str, String)>, String> {
        // x is 1×8×16×16; constants as Constant nodes or initializers would give them (ONNX's
        // "to the end" is INT64_MAX, read as the nearest f64, 2^63).
        let consts: HashMap<String, Vec<f64>> = [
            ("s2", vec![2.0]),
            ("e10", vec![10.0]),
            ("a2", vec![2.0]),
            ("st2", vec![2.0]),
            ("st_neg", vec![-1.0]),
            ("max", vec![i64::MAX as f64]),
            ("s0", vec![0.0]),
            ("s_two", vec![0.0, 2.0]),
            ("e_two", vec![i64::MAX as f64, 10.0]),
            ("e_cut", vec![4.0, 10.0]),
            ("a_two", vec![1.0, 2.0]),
        ]
        .map(|(k, v)| (k.into(), v))
        .into();
        let shapes: HashMap<&str, Vec<Option<u64>>> = [("x", vec![Some(1), Some(8), Some(16), Some(16)])].into();
        let ins: Vec<&str> = n.input.iter().map(String::as_str).filter(|i| !i.is_empty()).collect();
        match layer_of(n, &ins, &["x"], &HashMap::new(), &consts, &shapes)? {
            Mapped::Layer("slice", f) => Ok(f),
            _ => Err("not a slice".into()),
        }
    }

    #[test]
    fn onnx_slice_gives_one_slice_layer() {
        let f = |k: &'static str, v: &str| (k, v.to_string());
        // Opset ≥ 10, x[:, :, 2:10:2]: starts, ends, axes, steps as constant inputs.
        assert_eq!(
            fields(&slice(&["x", "s2", "e10", "a2", "st2"], vec![])).unwrap(),
            [f("dim", "2"), f("start", "2"), f("end", "10"), f("step", "2")]
        );
        // No axes: axis 0 onwards; ONNX's INT64_MAX end is "to the end" (no `end` field).
        assert_eq!(fields(&slice(&["x", "s2", "max"], vec![])).unwrap(), [f("dim", "0"), f("start", "2")]);
        // x[:, :, :10]: start 0 is the default, left out.
        assert_eq!(fields(&slice(&["x", "s0", "e10", "a2"], vec![])).unwrap(), [f("dim", "2"), f("end", "10")]);
        // Opset 1: attributes (no steps).
        let attrs = vec![ints("starts", &[2]), ints("ends", &[10]), ints("axes", &[-1])];
        assert_eq!(fields(&slice(&["x"], attrs)).unwrap(), [f("dim", "-1"), f("start", "2"), f("end", "10")]);
        // Two axes, one of them whole (0 to INT64_MAX): the other is the layer.
        assert_eq!(
            fields(&slice(&["x", "s_two", "e_two", "a_two"], vec![])).unwrap(),
            [f("dim", "2"), f("start", "2"), f("end", "10")]
        );
        // Refused: two axes cut, a negative step, a computed bound.
        let two = fields(&slice(&["x", "s_two", "e_cut", "a_two"], vec![])).unwrap_err();
        assert!(two.contains("of 2 axes [1, 2] at once"), "{two}");
        let neg = fields(&slice(&["x", "s0", "max", "a2", "st_neg"], vec![])).unwrap_err();
        assert!(neg.contains("step -1"), "{neg}");
        let computed = fields(&slice(&["x", "shape_gather", "e10"], vec![])).unwrap_err();
        assert!(computed.contains("starts netstat cannot read"), "{computed}");
    }
}
