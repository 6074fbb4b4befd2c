//! The schedule of one pass: execution order, the storage of every layer output, when each
//! storage is released, which outputs need a gradient and what each layer saves. Computed once
//! per mode ([`Mode`]) from an analysed spec; the inference and training walks
//! (`memory/inference.rs`, `memory/training.rs`) and the per-device model ([`super::devices`])
//! read it. It counts no bytes: sizes come from the model's element types and device split.

use crate::analysis::Analysis;
use crate::graph::Source;
use crate::kinds::{BackwardNode, BwdTensor, ForwardPass, Saved, SavedDType, SharedTensor};
use crate::spec::loss::LossKind;

/// Which pass a schedule describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An inference forward. `eager`: each block's input is held until the block's last layer
    /// has run (see [`Schedule::new`]).
    Inference {
        /// Hold block inputs as eager PyTorch does.
        eager: bool,
        /// A decode step with a KV cache: the context each attention layer's one-token queries
        /// read from its cache ([`crate::kinds::Op::forward_pass`]); `None` without a cache.
        cached_keys: Option<u64>,
    },
    /// One training step (forward, loss, backward).
    Training,
}

/// Whose bytes a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The network input (data, held for the whole step).
    Input,
    /// The output of layer `i` (spec index), which allocated it.
    Layer(usize),
}

/// When a layer's own storage is released. Layers whose output is another's storage (in-place
/// ops, views, identities) have [`Release::Alias`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The output lives in another storage (an input's): nothing to release.
    Alias,
    /// Freed after the forward of the layer at this execution position (its last reader).
    AfterForward(usize),
    /// Saved for backward: freed after the backward of the layer at this execution position
    /// (the earliest layer in execution order that saved it, whose backward runs last).
    AfterBackward(usize),
    /// The loss reads it: freed by the loss forward (`until_loss_backward` false) or kept by
    /// the loss for its backward (mse keeps its input).
    ByLoss {
        /// mse: freed after the loss backward.
        until_loss_backward: bool,
    },
    /// Held by the caller for the whole step (a network output without a loss).
    Caller,
}

/// One tensor a layer's forward allocates only for its backward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSaved {
    /// Elements (whole tensor, before any device split).
    pub elements: u64,
    /// Element type.
    pub dtype: SavedDType,
    /// Its index in the kind's [`crate::kinds::Op::saved`] list (what a
    /// [`BwdTensor::Saved`] names).
    pub index: usize,
}

/// A group of layers trained with activation checkpointing (one block-instance copy): its
/// forward saves only its inputs, and its backward starts by running its forward again
/// ([`Schedule::training_checkpointed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The block-instance copy (`model.layers.3`).
    pub name: String,
    /// Execution positions of its layers, ascending.
    pub positions: Vec<usize>,
    /// The replay: storages (owner layers) freed after the forward of the unit's k-th layer,
    /// by k (outputs no layer of the unit saves, after their last reader in the unit).
    pub replay_frees: Vec<Vec<usize>>,
    /// The replay's storages that layers of the unit save: (owner layer, execution position
    /// whose backward frees it).
    pub replay_held: Vec<(usize, usize)>,
}

/// A tensor the model computes once for the layers of a kind that read it
/// ([`crate::kinds::Op::forward_shared`]), in an inference schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedForward {
    /// What it is.
    pub tensor: SharedTensor,
    /// The first layer reading it (spec index; its device share sizes the tensor).
    pub layer: usize,
    /// Allocated before the layer at this execution position runs.
    pub first: usize,
    /// Freed after the layer at this execution position.
    pub free_after: usize,
}

/// The schedule of one pass over an analysed spec. Vectors indexed "by layer" use spec indices
/// (`Spec::layers`), "by position" execution positions (`Graph::order`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The mode it was computed for.
    pub mode: Mode,
    /// Layer indices in execution order.
    pub order: Vec<usize>,
    /// Execution position of each layer, by layer.
    pub position: Vec<usize>,
    /// Storage of each layer's output, by layer.
    pub storage: Vec<Storage>,
    /// When each layer's own storage is released, by layer.
    pub release: Vec<Release>,
    /// Layers that have no operation in this mode (the output is the input tensor; no node in
    /// autograd, so a gradient passes through), by layer.
    pub identity: Vec<bool>,
    /// Training: whether the layer's output needs a gradient (it or a layer before it has
    /// trainable parameters), by layer. All false in inference.
    pub needs_grad: Vec<bool>,
    /// Training: the tensors each layer's forward makes for its backward, by layer (empty for
    /// layers whose output needs no gradient, and in inference).
    pub saved_new: Vec<Vec<NewSaved>>,
    /// Training: each layer's backward as autograd nodes ([`crate::kinds::Op::backward_nodes`];
    /// checked against its saved and parameter tensors), by layer; `None`: one node.
    pub backward_nodes: Vec<Option<Vec<BackwardNode>>>,
    /// The network outputs (layers nobody reads), in execution order.
    pub sinks: Vec<usize>,
    /// The layer whose output the loss reads, when the spec has a loss.
    pub loss_input: Option<usize>,
    /// Training with activation checkpointing: the checkpointed units, in execution order of
    /// their first layers (empty without checkpointing).
    pub units: Vec<Unit>,
    /// The unit of each layer, by layer (`None` outside every unit).
    pub unit_of: Vec<Option<usize>>,
    /// Inference: each multi-op layer's forward ops ([`crate::kinds::Op::forward_pass`],
    /// checked), by layer; `None`: one op (and always in training).
    pub forward: Vec<Option<ForwardPass>>,
    /// Inference: the execution position after which the intermediate a layer returns
    /// ([`ForwardPass::returned`]) is freed, by layer: its own, or with eager references the
    /// end of its innermost enclosing block.
    pub returned_free_after: Vec<usize>,
    /// Inference: the tensors computed once for several layers, in order of first use.
    pub shared_forward: Vec<SharedForward>,
}

impl Schedule {
    /// Schedule `a` in `mode`. `loss_input` is the network output the loss reads (training
    /// only; see [`super::model`] for its checks).
    ///
    /// Rules (docs/memory.md): a layer whose kind aliases its input in this mode
    /// ([`crate::kinds::Op::aliases_input`]) shares its input's storage; a storage is freed
    /// after its last forward reader, unless backward holds it (training: a layer that needs a
    /// gradient saved it as an input or output reference, [`Saved`]), the loss reads it or the
    /// caller holds it (a network output, when there is no loss). With
    /// `Mode::Inference { eager: true }`, a *block* — the layers whose names start with `P.`
    /// for a dotted prefix `P` (`layer1.0.conv1` is in blocks `layer1` and `layer1.0`, as
    /// torchvision module paths nest) — holds every tensor it reads from outside until its last
    /// layer has run: the caller's frame keeps the argument of `module(x)` referenced until the
    /// call returns (torchvision's `identity = x`, nn.Sequential's loop variable).
    ///
    /// Errors: a kind's `saved` rule fails (the message names the layer).
    pub fn new(a: &Analysis, mode: Mode, loss_input: Option<usize>) -> Result<Schedule, String> {
        Self::build(a, mode, loss_input, &[])
    }

    /// The training schedule with activation checkpointing: `units[i]` names the unit layer
    /// `i` is checkpointed in (`None`: not checkpointed; an empty slice: none is). The rule
    /// (docs/memory.md; PyTorch `torch.utils.checkpoint`, Chen et al. 2016 "Training Deep Nets
    /// with Sublinear Memory Cost" §3):
    /// - forward: a unit's layers save nothing for backward; every tensor a unit reads from
    ///   outside it is held until the unit's backward ends (the checkpoint keeps its inputs);
    ///   outputs inside the unit are freed after their last forward reader, unless a layer
    ///   outside the unit saves them;
    /// - backward: before the backward of the unit's last layer, the unit's forward runs again
    ///   ([`Unit`]): each layer's output and the tensors it saves are allocated as in a plain
    ///   forward; outputs no layer of the unit saves are freed after their last reader in the
    ///   unit; the saved ones are freed by the backward of the earliest layer of the unit
    ///   that saved them, as without checkpointing.
    ///
    /// Errors: as [`Schedule::new`].
    pub fn training_checkpointed(
        a: &Analysis,
        loss_input: Option<usize>,
        units: &[Option<String>],
    ) -> Result<Schedule, String> {
        Self::build(a, Mode::Training, loss_input, units)
    }

    fn build(
        a: &Analysis,
        mode: Mode,
        loss_input: Option<usize>,
        unit_names: &[Option<String>],
    ) -> Result<Schedule, String> {
        let spec = &a.spec;
        let n_layers = spec.layers.len();
        let order = a.graph.order.clone();
        let training = mode == Mode::Training;
        let mut position = vec![0; n_layers];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }
        // Storage of every output.
        let mut storage = vec![Storage::Input; n_layers];
        let mut identity = vec![false; n_layers];
        let source_storage = |storage: &[Storage], s: Source| match s {
            Source::Input => Storage::Input,
            Source::Layer(j) => storage[j],
        };
        for &i in &order {
            let op = spec.layers[i].kind.op();
            identity[i] = op.is_identity(training);
            storage[i] = if op.aliases_input(training) {
                source_storage(&storage, a.graph.inputs[i][0])
            } else {
                Storage::Layer(i)
            };
        }
        // Last forward use (read, or write in place) of each storage, by owner.
        let mut last_use = vec![0usize; n_layers];
        for (p, &i) in order.iter().enumerate() {
            let uses = a.graph.inputs[i].iter().map(|&s| source_storage(&storage, s)).chain([storage[i]]);
            for st in uses {
                if let Storage::Layer(k) = st {
                    last_use[k] = last_use[k].max(p);
                }
            }
        }
        // Inference: multi-op layers' forward ops, tensors shared by layers, and what eager
        // PyTorch's frames hold beyond the last reader.
        let mut forward = vec![None; n_layers];
        let mut returned_free_after = vec![0; n_layers];
        let mut shared_forward: Vec<SharedForward> = Vec::new();
        if let Mode::Inference { eager, cached_keys } = mode {
            let ends = if eager { block_ends(a, &position) } else { Default::default() };
            let names = |i: usize| spec.layers[i].id.name.as_str();
            // The innermost block around layer i ends at this position (none: the layer's own).
            let innermost = |i: usize, p: usize| names(i).rfind('.').map_or(p, |dot| ends[&names(i)[..dot]].max(p));
            if eager {
                hold_block_inputs(a, &storage, &mut last_use, &ends);
            }
            let mut shared_index: std::collections::HashMap<(&'static str, u64), usize> = Default::default();
            let mut readers: Vec<Vec<usize>> = Vec::new();
            for (p, &i) in order.iter().enumerate() {
                let l = &a.layers[p];
                let op = spec.layers[i].kind.op();
                let err = |m: String| format!("layer \"{}\": {m}", names(i));
                if let Some(fp) =
                    op.forward_pass(&l.input_shapes, &l.output, cached_keys).map_err(|e| err(e.message))?
                {
                    fp.check().map_err(err)?;
                    forward[i] = Some(fp);
                }
                returned_free_after[i] = if eager { innermost(i, p) } else { p };
                for t in op.forward_shared(&l.input_shapes, &l.output, cached_keys).map_err(|e| err(e.message))? {
                    let k = *shared_index.entry((t.what, t.elements)).or_insert_with(|| {
                        shared_forward.push(SharedForward { tensor: t, layer: i, first: p, free_after: p });
                        readers.push(Vec::new());
                        shared_forward.len() - 1
                    });
                    shared_forward[k].free_after = p;
                    readers[k].push(i);
                }
                if eager && op.caller_keeps_output() && storage[i] == Storage::Layer(i) {
                    last_use[i] = last_use[i].max(innermost(i, p));
                }
            }
            // With eager references, the model's frame holds a shared tensor until the
            // outermost block around every reader ends (LlamaModel.forward returns).
            if eager {
                for (sh, r) in shared_forward.iter_mut().zip(&readers) {
                    let first = names(r[0]);
                    if let Some(dot) = first.find('.') {
                        let outer = &first[..=dot];
                        if r.iter().all(|&i| names(i).starts_with(outer)) {
                            sh.free_after = sh.free_after.max(ends[&first[..dot]]);
                        }
                    }
                }
            }
        }
        let sinks: Vec<usize> = order.iter().copied().filter(|&i| a.graph.consumers[i].is_empty()).collect();

        // Checkpointed units, numbered by their first layer in execution order.
        let mut unit_of: Vec<Option<usize>> = vec![None; n_layers];
        let mut units: Vec<Unit> = Vec::new();
        if training && !unit_names.is_empty() {
            let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            for (p, &i) in order.iter().enumerate() {
                let Some(name) = unit_names.get(i).and_then(|n| n.as_deref()) else { continue };
                let u = *index.entry(name).or_insert_with(|| {
                    units.push(Unit {
                        name: name.to_owned(),
                        positions: Vec::new(),
                        replay_frees: Vec::new(),
                        replay_held: Vec::new(),
                    });
                    units.len() - 1
                });
                unit_of[i] = Some(u);
                units[u].positions.push(p);
            }
        }
        let in_unit = |k: usize, u: usize| unit_of[k] == Some(u);

        // Training: gradients and saved tensors.
        let mut needs_grad = vec![false; n_layers];
        let mut saved_new = vec![Vec::new(); n_layers];
        let mut backward_nodes = vec![None; n_layers];
        let mut saved_until: Vec<Option<usize>> = vec![None; n_layers];
        let mut shared_seen: std::collections::HashSet<(&'static str, u64)> = Default::default();
        // The replay of a unit: the earliest layer of the unit that saves each storage.
        let mut replay_until: Vec<Option<usize>> = vec![None; n_layers];
        let hold = |until: &mut [Option<usize>], k: usize, p: usize| until[k] = Some(until[k].map_or(p, |q| q.min(p)));
        if training {
            for &i in &order {
                let trains = super::grads_of(a, &position, i).next().is_some();
                needs_grad[i] =
                    trains || a.graph.inputs[i].iter().any(|s| matches!(s, Source::Layer(j) if needs_grad[*j]));
            }
            for &i in &order {
                if !needs_grad[i] {
                    continue;
                }
                let l = &a.layers[position[i]];
                let name = &spec.layers[i].id.name;
                let op = spec.layers[i].kind.op();
                let err = |e: crate::kinds::KindError| format!("layer \"{name}\": {}", e.message);
                let saved = op.saved(&l.input_shapes, &l.output).map_err(err)?;
                if let Some(nodes) = op.backward_nodes(&l.input_shapes, &l.output).map_err(err)? {
                    let tensors = op.param_tensors(&l.input_shapes).map_err(err)?.len();
                    check_nodes(&nodes, &saved, tensors, a.graph.inputs[i].len())
                        .map_err(|m| format!("layer \"{name}\": {m}"))?;
                    backward_nodes[i] = Some(nodes);
                }
                for (index, s) in saved.into_iter().enumerate() {
                    let st = match s {
                        Saved::Input(j) => source_storage(&storage, a.graph.inputs[i][j]),
                        Saved::Output => storage[i],
                        Saved::New { elements, dtype, .. } => {
                            saved_new[i].push(NewSaved { elements, dtype, index });
                            continue;
                        }
                        // The first layer (execution order) that keeps it makes it; its
                        // backward runs last of theirs.
                        Saved::Shared { elements, dtype, what } => {
                            if shared_seen.insert((what, elements)) {
                                saved_new[i].push(NewSaved { elements, dtype, index });
                            }
                            continue;
                        }
                    };
                    // The network input is data, held anyway.
                    if let Storage::Layer(k) = st {
                        match unit_of[i] {
                            // Saved by its own unit: only the replay keeps it.
                            Some(u) if in_unit(k, u) => hold(&mut replay_until, k, position[i]),
                            // The unit's input: the checkpoint holds it until the unit's backward ends.
                            Some(u) => hold(&mut saved_until, k, units[u].positions[0]),
                            None => hold(&mut saved_until, k, position[i]),
                        }
                    }
                }
            }
            // A checkpoint keeps every input of its unit, saved by its layers or not.
            for &i in &order {
                let Some(u) = unit_of[i] else { continue };
                if !units[u].positions.iter().any(|&p| needs_grad[order[p]]) {
                    continue;
                }
                for &src in &a.graph.inputs[i] {
                    if let Storage::Layer(k) = source_storage(&storage, src) {
                        if !in_unit(k, u) {
                            hold(&mut saved_until, k, units[u].positions[0]);
                        }
                    }
                }
            }
            // Each unit's replay: what it frees as it goes, and what it keeps for backward.
            for unit in &mut units {
                let u = unit_of[order[unit.positions[0]]].expect("a unit's layers are in it");
                let mut last = vec![None; n_layers]; // last replay step reading each storage of the unit
                for (step, &p) in unit.positions.iter().enumerate() {
                    let i = order[p];
                    let uses = a.graph.inputs[i].iter().map(|&s| source_storage(&storage, s)).chain([storage[i]]);
                    for st in uses {
                        if let Storage::Layer(k) = st {
                            if in_unit(k, u) {
                                last[k] = Some(step);
                            }
                        }
                    }
                }
                unit.replay_frees = vec![Vec::new(); unit.positions.len()];
                for &p in &unit.positions {
                    let k = order[p];
                    if storage[k] != Storage::Layer(k) {
                        continue;
                    }
                    match (replay_until[k], last[k]) {
                        (Some(q), _) => unit.replay_held.push((k, q)),
                        (None, Some(step)) => unit.replay_frees[step].push(k),
                        (None, None) => unreachable!("a layer's own output is used by it"),
                    }
                }
            }
        }
        let loss_storage = loss_input.map(|o| storage[o]);
        let mse = training && spec.loss.as_ref().is_some_and(|l| l.kind == LossKind::Mse);
        let release = (0..n_layers)
            .map(|k| {
                if storage[k] != Storage::Layer(k) {
                    Release::Alias
                } else if let Some(p) = saved_until[k] {
                    Release::AfterBackward(p)
                } else if training && loss_storage == Some(Storage::Layer(k)) {
                    Release::ByLoss { until_loss_backward: mse }
                } else if (!training || loss_input.is_none()) && sinks.iter().any(|&s| storage[s] == Storage::Layer(k))
                {
                    Release::Caller
                } else {
                    Release::AfterForward(last_use[k])
                }
            })
            .collect();
        Ok(Schedule {
            mode,
            order,
            position,
            storage,
            release,
            identity,
            needs_grad,
            saved_new,
            backward_nodes,
            sinks,
            loss_input: if training { loss_input } else { None },
            units,
            unit_of,
            forward,
            returned_free_after,
            shared_forward,
        })
    }

    /// Storages (owner layers) freed after the forward of each position.
    pub fn frees_after_forward(&self) -> Vec<Vec<usize>> {
        self.frees(|r| match r {
            Release::AfterForward(p) => Some(p),
            _ => None,
        })
    }

    /// Storages (owner layers) freed after the backward of each position.
    pub fn frees_after_backward(&self) -> Vec<Vec<usize>> {
        self.frees(|r| match r {
            Release::AfterBackward(p) => Some(p),
            _ => None,
        })
    }

    fn frees(&self, at: impl Fn(Release) -> Option<usize>) -> Vec<Vec<usize>> {
        let mut v = vec![Vec::new(); self.order.len()];
        for (k, &r) in self.release.iter().enumerate() {
            if let Some(p) = at(r) {
                v[p].push(k);
            }
        }
        v
    }
}

/// Check a kind's backward nodes against what it declares: each [`BwdTensor::Saved`] names a
/// [`Saved::New`] and is freed once, each parameter gradient is produced once, each temporary
/// is allocated once before it is freed once, and every input index exists. A failure is a
/// bug in the kind; the message says which rule.
fn check_nodes(nodes: &[BackwardNode], saved: &[Saved], tensors: usize, inputs: usize) -> Result<(), String> {
    let mut temps: Vec<(u64, u64, SavedDType)> = Vec::new();
    let (mut freed, mut grads) = (vec![false; saved.len()], vec![false; tensors]);
    for n in nodes {
        for t in &n.allocs {
            match *t {
                BwdTensor::Temp { id, elements, dtype } => {
                    if temps.iter().any(|&(i, ..)| i == id) {
                        return Err(format!("backward node {}: temporary {id} allocated twice", n.node));
                    }
                    temps.push((id, elements, dtype));
                }
                BwdTensor::ParamGrad(k) if k < tensors && !grads[k] => grads[k] = true,
                BwdTensor::InputGrad(j) if j < inputs => {}
                _ => return Err(format!("backward node {}: cannot allocate {t:?}", n.node)),
            }
        }
        for t in &n.frees {
            match *t {
                BwdTensor::Temp { id, elements, dtype } => match temps.iter().position(|&x| x == (id, elements, dtype))
                {
                    Some(p) => {
                        temps.remove(p);
                    }
                    None => return Err(format!("backward node {}: frees temporary {id}, not allocated", n.node)),
                },
                BwdTensor::Saved(k) if matches!(saved.get(k), Some(Saved::New { .. })) && !freed[k] => freed[k] = true,
                BwdTensor::OutputGrad => {}
                _ => return Err(format!("backward node {}: cannot free {t:?}", n.node)),
            }
        }
    }
    if let Some(k) = grads.iter().position(|&g| !g) {
        return Err(format!("no backward node produces the gradient of parameter tensor {k}"));
    }
    match temps.first() {
        Some((id, ..)) => Err(format!("backward temporary {id} is never freed")),
        None => Ok(()),
    }
}

/// Extend `last_use` so that each block's outside inputs live until the block's last layer.
/// Each block (a dotted prefix `P` of layer names: the layers named `P.…`) → the execution
/// position of its last layer.
fn block_ends<'a>(a: &'a Analysis, position: &[usize]) -> std::collections::HashMap<&'a str, usize> {
    let mut end: std::collections::HashMap<&str, usize> = Default::default();
    for (i, l) in a.spec.layers.iter().enumerate() {
        let name = l.id.name.as_str();
        for (dot, _) in name.match_indices('.') {
            let e = end.entry(&name[..dot]).or_insert(0);
            *e = (*e).max(position[i]);
        }
    }
    end
}

fn hold_block_inputs(
    a: &Analysis,
    storage: &[Storage],
    last_use: &mut [usize],
    end: &std::collections::HashMap<&str, usize>,
) {
    let names: Vec<&str> = a.spec.layers.iter().map(|l| l.id.name.as_str()).collect();
    let inside = |prefix: &str, j: usize| {
        names[j].len() > prefix.len() && names[j].starts_with(prefix) && names[j].as_bytes()[prefix.len()] == b'.'
    };
    for (i, name) in names.iter().enumerate() {
        for (dot, _) in name.match_indices('.') {
            let prefix = &name[..dot];
            for &s in &a.graph.inputs[i] {
                if let Source::Layer(j) = s {
                    if !inside(prefix, j) {
                        if let Storage::Layer(k) = storage[j] {
                            last_use[k] = last_use[k].max(end[prefix]);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod node_tests {
    use super::check_nodes;
    use crate::kinds::{BackwardNode, BwdTensor, Saved, SavedDType};

    #[test]
    fn backward_nodes_must_match_what_the_kind_declares() {
        let saved = [Saved::Input(0), Saved::New { elements: 4, dtype: SavedDType::Activation, what: "t" }];
        let t = BwdTensor::Temp { id: 0, elements: 4, dtype: SavedDType::Activation };
        let node = |allocs: Vec<BwdTensor>, frees: Vec<BwdTensor>| BackwardNode { node: "n", allocs, frees };
        let ok = [
            node(vec![t, BwdTensor::ParamGrad(0)], vec![BwdTensor::Saved(1)]),
            node(vec![BwdTensor::InputGrad(0)], vec![t]),
        ];
        assert_eq!(check_nodes(&ok, &saved, 1, 1), Ok(()));
        // A reference (input 0) is not the kind's to free; a temporary must be freed; every
        // parameter gradient must be made; an input must exist.
        assert!(check_nodes(&[node(vec![], vec![BwdTensor::Saved(0)])], &saved, 0, 1).is_err());
        assert!(check_nodes(&[node(vec![t], vec![])], &saved, 0, 1).unwrap_err().contains("never freed"));
        assert!(check_nodes(&[node(vec![], vec![])], &saved, 1, 1).unwrap_err().contains("parameter tensor 0"));
        assert!(check_nodes(&[node(vec![BwdTensor::InputGrad(1)], vec![])], &saved, 0, 1).is_err());
    }

    #[test]
    fn every_kind_with_nodes_passes_the_check() {
        // The kinds' own node lists, at sizes beyond the measured ones: a 40-layer LSTM
        // (temporaries named per layer), a biased gated MLP, RMSNorm without γ, grouped
        // attention without rotary.
        use crate::kinds::test_util::parse;
        use crate::kinds::{
            gated_mlp::GatedMlp, lstm::Lstm, multi_head_attention::MultiHeadAttention, rms_norm::RmsNorm, Op,
        };
        use crate::shape::Shape;
        let x = Shape(vec![2, 5, 8]);
        let ops: Vec<Box<dyn Op>> = vec![
            Box::new(parse::<Lstm>("{hidden_size: 4, num_layers: 40, batch_first: true}").unwrap()),
            Box::new(parse::<GatedMlp>("{hidden: 6, bias: true}").unwrap()),
            Box::new(parse::<RmsNorm>("{elementwise_affine: false}").unwrap()),
            Box::new(parse::<MultiHeadAttention>("{heads: 4, kv_heads: 2, bias: true}").unwrap()),
        ];
        for op in ops {
            let out = op.analyze(std::slice::from_ref(&x)).unwrap().output;
            let inputs = std::slice::from_ref(&x);
            let nodes = op.backward_nodes(inputs, &out).unwrap().expect("nodes");
            let tensors = op.param_tensors(inputs).unwrap().len();
            assert_eq!(check_nodes(&nodes, &op.saved(inputs, &out).unwrap(), tensors, 1), Ok(()));
        }
    }

    #[test]
    fn forward_passes_must_free_only_what_they_made() {
        use crate::kinds::{ForwardPass, ForwardStep, FwdTensor};
        let t = |id| FwdTensor { id, elements: 4, dtype: SavedDType::Activation };
        let step = |alloc, frees| ForwardStep { op: "op", alloc, frees };
        let ok =
            ForwardPass { steps: vec![step(Some(t(0)), vec![]), step(Some(t(1)), vec![t(0)])], returned: Some(t(1)) };
        assert_eq!(ok.check(), Ok(()));
        // Freed before it is made, freed twice, made twice, returned after being freed.
        let bad = [
            ForwardPass { steps: vec![step(None, vec![t(0)])], returned: None },
            ForwardPass { steps: vec![step(Some(t(0)), vec![t(0)]), step(None, vec![t(0)])], returned: None },
            ForwardPass { steps: vec![step(Some(t(0)), vec![]), step(Some(t(0)), vec![])], returned: None },
            ForwardPass { steps: vec![step(Some(t(0)), vec![t(0)])], returned: Some(t(0)) },
        ];
        for b in bad {
            assert!(b.check().is_err(), "{b:?}");
        }
    }

    #[test]
    fn every_kind_with_forward_ops_passes_the_check() {
        // The measured configurations and their variants: a biased gated MLP, RMSNorm with and
        // without γ, grouped attention with and without rotary and the causal mask.
        use crate::kinds::test_util::parse;
        use crate::kinds::{gated_mlp::GatedMlp, multi_head_attention::MultiHeadAttention, rms_norm::RmsNorm, Op};
        use crate::shape::Shape;
        let x = Shape(vec![2, 5, 8]);
        let ops: Vec<Box<dyn Op>> = vec![
            Box::new(parse::<GatedMlp>("{hidden: 6, bias: true}").unwrap()),
            Box::new(parse::<RmsNorm>("{elementwise_affine: false}").unwrap()),
            Box::new(parse::<RmsNorm>("{}").unwrap()),
            Box::new(parse::<MultiHeadAttention>("{heads: 4, kv_heads: 2, bias: true}").unwrap()),
            Box::new(parse::<MultiHeadAttention>("{heads: 4, kv_heads: 1, rotary: true, causal: true}").unwrap()),
        ];
        for op in ops {
            let inputs = std::slice::from_ref(&x);
            let out = op.analyze(inputs).unwrap().output;
            let pass = op.forward_pass(inputs, &out, None).unwrap().expect("forward ops");
            assert_eq!(pass.check(), Ok(()));
        }
    }
}
