//! The memory model: inference peak and one training step, from one liveness schedule.
//!
//! Every figure is exact bytes of tensors (element count × element size), never allocator
//! blocks: PyTorch's caching allocator rounds each block up to 512 B, which netstat does not
//! model. Kernel workspaces (cuDNN) and intra-op temporaries are not counted. docs/memory.md
//! defines every figure; the short form is [`FOOTNOTE`].
//!
//! **Storages.** The network input and every layer output is a tensor; a layer whose
//! [`crate::kinds::Op::aliases_input`] is true (in-place relu/dropout, flatten, dropout in
//! inference) puts its output in its input's storage, so it adds 0 bytes. A storage is freed
//! after its last use: the last layer that reads it in the forward pass or, in training, the
//! backward of the earliest layer that saved it ([`crate::kinds::Saved`]). The network input and
//! labels are held by the caller for the whole step, and so is the output when no loss is given.
//!
//! **Training step** (PyTorch semantics, `loss.backward()` then `optimizer.step()`):
//! 1. data: input (and labels) of the batch, or of `dataset.rows` samples when the spec says so;
//! 2. weights: parameters and buffers (plus fp32 master weights under `--amp`);
//! 3. forward, per layer: its output (unless aliased) and the new tensors it saves; storages
//!    past their last use are freed;
//! 4. loss (if the spec has `loss:`): cross-entropy allocates log-probabilities (saved), the
//!    loss scalar and `total_weight` (one element each); mse allocates the loss scalar;
//! 5. backward, per layer in reverse order: the gradient of each input that needs one (a second
//!    gradient into the same tensor is a transient added in place) and the parameter gradient
//!    (a second use of a shared parameter is a transient added in place); then the gradient of
//!    the layer's output and the tensors only it saved are freed;
//! 6. optimizer step: the optimizer state appears (PyTorch creates it lazily on the first step;
//!    the update is modelled as a fused kernel, without temporaries).
//!
//! Only layers whose output needs a gradient save anything: those with trainable parameters
//! and those downstream of one. Layers before the first trainable one save nothing.

use crate::analysis::Analysis;
use crate::graph::Source;
use crate::kinds::{Saved, SavedDType};
use crate::shape::{add, mul, DType};
use crate::spec::loss::LossKind;
use serde::Serialize;

/// The definitions under every memory report, one line each.
pub const FOOTNOTE: &str = "\
inference peak: input + weights + every live layer output at the worst layer (outputs freed after their last reader)
training peak: data + weights + gradients + optimizer state + activations saved for backward + the largest transient
saved activations: bytes the forward pass leaves for backward (incl. the output), data and weights excluded
exact tensor bytes: no allocator rounding, no cuDNN workspace; definitions in docs/memory.md";

/// The optimizer of the training step, by the copies of the trainable parameters it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Plain SGD: no state.
    Sgd,
    /// SGD with momentum: one buffer per parameter.
    Momentum,
    /// Adam: first and second moments, two buffers per parameter.
    Adam,
    /// AdamW: as Adam, two buffers per parameter.
    Adamw,
}

impl Optimizer {
    /// Copies of the trainable parameters the optimizer keeps: 0, 1, 2, 2.
    pub fn state_copies(self) -> u64 {
        match self {
            Optimizer::Sgd => 0,
            Optimizer::Momentum => 1,
            Optimizer::Adam | Optimizer::Adamw => 2,
        }
    }

    /// The spelling.
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum => "momentum",
            Optimizer::Adam => "adam",
            Optimizer::Adamw => "adamw",
        }
    }
}

/// Mixed precision (ZeRO paper §3.1, Rajbhandari et al. 2020): weights, activations and
/// gradients in 16 bits; fp32 master weights and optimizer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Amp {
    /// bfloat16.
    Bf16,
    /// IEEE half.
    Fp16,
}

impl Amp {
    /// The low-precision dtype.
    pub fn dtype(self) -> DType {
        match self {
            Amp::Bf16 => DType::Bf16,
            Amp::Fp16 => DType::F16,
        }
    }
}

/// How to model the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `--optimizer`.
    pub optimizer: Optimizer,
    /// `--amp`, if any.
    pub amp: Option<Amp>,
}

impl Default for Options {
    /// Adam, no mixed precision.
    fn default() -> Self {
        Options { optimizer: Optimizer::Adam, amp: None }
    }
}

/// Which part of the training step a timeline row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Input and labels on the device.
    Data,
    /// Parameters, buffers and master weights.
    Weights,
    /// One layer's forward.
    Forward,
    /// The loss (its gradient is the first backward row, named `loss`).
    Loss,
    /// One layer's backward.
    Backward,
    /// The optimizer step.
    Optimizer,
}

impl Phase {
    /// The spelling in tables.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Data => "data",
            Phase::Weights => "weights",
            Phase::Forward => "forward",
            Phase::Loss => "loss",
            Phase::Backward => "backward",
            Phase::Optimizer => "optimizer",
        }
    }
}

/// One row of the timeline: live bytes after a stage, and the most live during it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// The part of the step.
    pub phase: Phase,
    /// The layer (forward/backward), `loss`, or what the stage holds.
    pub name: String,
    /// Bytes live after the stage (its frees done).
    pub live_bytes: u64,
    /// Bytes live at the stage's worst moment (its allocations made, nothing yet freed).
    pub peak_bytes: u64,
}

/// Every memory figure of one spec at one batch size. All in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Batch size.
    pub batch: u64,
    /// The optimizer modelled.
    pub optimizer: Optimizer,
    /// Mixed precision, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amp: Option<Amp>,
    /// Element type of activations and gradients.
    pub activation_dtype: DType,
    /// Element type of the working weights.
    pub weight_dtype: DType,
    /// The network input on the device (the batch, or `dataset.rows` samples).
    pub input_bytes: u64,
    /// The labels on the device (0 without `loss:`).
    pub label_bytes: u64,
    /// Parameters, each once (shared ones once), in the weight dtype.
    pub param_bytes: u64,
    /// Buffers (BatchNorm running statistics), fp32 under `--amp`, else the weight dtype.
    pub buffer_bytes: u64,
    /// fp32 master copy of the trainable parameters under `--amp`, else 0.
    pub master_weight_bytes: u64,
    /// Σ bytes of the tensors an inference forward allocates (layer outputs that are not
    /// aliases), input excluded: each layer output once, in-place and view layers 0.
    pub activation_bytes: u64,
    /// Most bytes live during inference: input + weights + live outputs.
    pub inference_peak_bytes: u64,
    /// The layer at which the inference peak is reached (`weights` if before any layer).
    pub inference_peak_layer: String,
    /// One gradient per trainable parameter, in the activation dtype.
    pub gradient_bytes: u64,
    /// Optimizer state: copies × trainable parameters, fp32 under `--amp`.
    pub optimizer_state_bytes: u64,
    /// Bytes the training forward leaves for backward, output included (data and weights
    /// excluded): live after the forward (and loss) − data − weights.
    pub saved_activation_bytes: u64,
    /// Live bytes after the forward pass (after the loss, when there is one).
    pub after_forward_bytes: u64,
    /// Most bytes live during backward.
    pub backward_peak_bytes: u64,
    /// The layer (or `loss`) whose backward reaches it.
    pub backward_peak_layer: String,
    /// Most bytes live during the whole training step.
    pub training_peak_bytes: u64,
    /// `phase name` of the stage that reaches it.
    pub training_peak_stage: String,
    /// The training step, stage by stage (left out of JSON unless asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Stage>,
}

impl Memory {
    /// Weights as held in training: parameters + buffers + master weights.
    pub fn weight_bytes(&self) -> u64 {
        self.param_bytes.saturating_add(self.buffer_bytes).saturating_add(self.master_weight_bytes)
    }
}

/// Live-bytes bookkeeping with checked arithmetic.
struct Live {
    now: u64,
}

impl Live {
    fn alloc(&mut self, b: u64) -> Result<(), String> {
        self.now = add(self.now, b, "live bytes")?;
        Ok(())
    }
    fn free(&mut self, b: u64) {
        self.now = self.now.checked_sub(b).expect("freeing only what was allocated");
    }
}

fn bytes_of(elements: u64, d: DType) -> Result<u64, String> {
    mul(elements, d.size(), "bytes")
}

/// Compute every memory figure of an analysed spec.
///
/// Errors (at the spec's `input` or `loss`): a byte count overflows u64; a loss on a network
/// with more than one output; cross-entropy labels whose count does not match the logits;
/// `dataset.rows` smaller than the batch.
pub fn model(a: &Analysis, o: &Options) -> Result<Memory, crate::error::SpecError> {
    let spec = &a.spec;
    let at_input = |m: String| crate::error::SpecError::new(&spec.file, spec.input.loc, m);
    let at_loss = |m: String| {
        let loc = spec.loss.as_ref().map(|l| l.loc).unwrap_or(spec.input.loc);
        crate::error::SpecError::new(&spec.file, loc, m)
    };
    let n_layers = spec.layers.len();
    let order = &a.graph.order;
    let n = order.len();
    let act = o.amp.map(Amp::dtype).unwrap_or(spec.dtype);
    let wdt = act;
    let sdt = if o.amp.is_some() { DType::F32 } else { spec.dtype };
    let accum = if act == DType::F64 { DType::F64 } else { DType::F32 };
    let mut pos = vec![usize::MAX; n_layers];
    let mut la = vec![usize::MAX; n_layers];
    for (p, l) in a.layers.iter().enumerate() {
        pos[l.index] = p;
        la[l.index] = p;
    }
    let ana = |i: usize| &a.layers[la[i]];
    // The parameters each layer's backward produces a gradient for: (owner layer, elements).
    // `shares:` uses all of the owner's; `tied_to:` (linear) the owner's out × in weight.
    let by_name: std::collections::HashMap<&str, usize> =
        spec.layers.iter().enumerate().map(|(i, l)| (l.id.name.as_str(), i)).collect();
    let grads_of = |i: usize| -> Vec<(usize, u64)> {
        let l = ana(i);
        let mut v = Vec::new();
        match l.shares {
            Some(o) => v.push((o, ana(o).params)),
            None => v.push((i, l.params)),
        }
        if let crate::kinds::Kind::Linear(lin) = &spec.layers[i].kind {
            if let Some(&j) = lin.tied_to.as_deref().and_then(|t| by_name.get(t)) {
                let inf = l.input_shapes[0].last();
                v.push((j, lin.out_features.saturating_mul(inf)));
            }
        }
        v.retain(|&(o, e)| e > 0 && spec.layers[o].trainable);
        v
    };
    let trains = |i: usize| !grads_of(i).is_empty();

    // Data.
    let rows = match spec.dataset_rows {
        Some(r) if r < spec.batch => {
            return Err(at_input(format!("`dataset.rows` {r} is smaller than the batch {}", spec.batch)))
        }
        Some(r) => r,
        None => spec.batch,
    };
    let in_dtype = match o.amp {
        Some(amp) if !spec.input.dtype.is_int() => amp.dtype(),
        _ => spec.input.dtype,
    };
    let sample = crate::shape::checked_product(&spec.input.shape).map_err(at_input)?;
    let input_bytes = mul(rows, sample, "input elements").and_then(|e| bytes_of(e, in_dtype)).map_err(at_input)?;

    // The network output(s): layers nobody reads.
    let sinks: Vec<usize> = order.iter().copied().filter(|&i| a.graph.consumers[i].is_empty()).collect();
    let loss = spec.loss.as_ref();
    let loss_out = match loss {
        Some(_) if sinks.len() != 1 => {
            let names: Vec<&str> = sinks.iter().map(|&i| spec.layers[i].id.name.as_str()).collect();
            return Err(at_loss(format!(
                "a loss needs exactly one network output, got {} ({})",
                sinks.len(),
                names.join(", ")
            )));
        }
        Some(_) => Some(sinks[0]),
        None => None,
    };
    let label_bytes = match (loss, loss_out) {
        (Some(l), Some(out)) => {
            let oshape = &ana(out).output;
            let per_sample = match (&l.labels, l.kind) {
                (Some(lab), _) => crate::shape::checked_product(&lab.shape).map_err(at_loss)?,
                (None, LossKind::CrossEntropy) => 1,
                (None, LossKind::Mse) => crate::shape::checked_product(&oshape.0[1..]).map_err(at_loss)?,
            };
            let dt = match (&l.labels, l.kind) {
                (Some(lab), _) => lab.dtype,
                (None, LossKind::CrossEntropy) => DType::I64,
                (None, LossKind::Mse) => act,
            };
            let out_elems = oshape.elements().map_err(at_loss)?;
            let want = match l.kind {
                LossKind::CrossEntropy => out_elems / oshape.last().max(1),
                LossKind::Mse => out_elems,
            };
            let got = mul(spec.batch, per_sample, "label elements").map_err(at_loss)?;
            if got != want {
                return Err(at_loss(format!(
                    "{} on output {oshape} expects {want} labels per batch, got {got} (labels per sample {per_sample} × batch {})",
                    l.kind.name(),
                    spec.batch
                )));
            }
            mul(rows, per_sample, "label elements").and_then(|e| bytes_of(e, dt)).map_err(at_loss)?
        }
        _ => 0,
    };

    // Weights.
    let mut params = 0u64;
    let mut trainable = 0u64;
    let mut buffers = 0u64;
    for l in &a.layers {
        params = add(params, l.params, "params").map_err(at_input)?;
        buffers = add(buffers, l.buffers, "buffers").map_err(at_input)?;
        if spec.layers[l.index].trainable {
            trainable = add(trainable, l.params, "params").map_err(at_input)?;
        }
    }
    let param_bytes = bytes_of(params, wdt).map_err(at_input)?;
    let buffer_bytes = bytes_of(buffers, sdt).map_err(at_input)?;
    let master_weight_bytes = if o.amp.is_some() { bytes_of(trainable, DType::F32).map_err(at_input)? } else { 0 };
    let gradient_bytes = bytes_of(trainable, act).map_err(at_input)?;
    let optimizer_state_bytes = mul(trainable, o.optimizer.state_copies(), "optimizer state")
        .and_then(|e| bytes_of(e, sdt))
        .map_err(at_input)?;

    let out_bytes = |i: usize| -> Result<u64, String> { bytes_of(ana(i).output.elements()?, act) };

    // ---------- Inference ----------
    // Storage of each layer output: its own, or its input's when aliased.
    const INPUT: usize = usize::MAX;
    let storage_of = |training: bool| -> Vec<usize> {
        let mut st = vec![INPUT; n_layers];
        for &i in order {
            let aliased = spec.layers[i].kind.op().aliases_input(training);
            st[i] = if aliased {
                match a.graph.inputs[i][0] {
                    Source::Input => INPUT,
                    Source::Layer(j) => st[j],
                }
            } else {
                i
            };
        }
        st
    };
    let src_storage = |st: &[usize], s: Source| match s {
        Source::Input => INPUT,
        Source::Layer(j) => st[j],
    };
    let st_inf = storage_of(false);
    let mut activation_bytes = 0u64;
    // Last forward reader (position) of each storage; sinks are held (usize::MAX).
    let fwd_last = |st: &[usize]| {
        let mut last = vec![0usize; n_layers];
        for (p, &i) in order.iter().enumerate() {
            for &s in &a.graph.inputs[i] {
                let k = src_storage(st, s);
                if k != INPUT {
                    last[k] = last[k].max(p);
                }
            }
            if st[i] != INPUT {
                last[st[i]] = last[st[i]].max(p);
            }
        }
        last
    };
    let last_inf = fwd_last(&st_inf);
    let inf_weights = add(param_bytes, bytes_of(buffers, wdt).map_err(at_input)?, "weights").map_err(at_input)?;
    let mut live = Live { now: add(input_bytes, inf_weights, "live bytes").map_err(at_input)? };
    let mut inference_peak_bytes = live.now;
    let mut inference_peak_layer = "weights".to_owned();
    // Storages the caller holds (the network outputs), as a flag per layer index.
    let sink_storages = |st: &[usize]| {
        let mut held = vec![false; n_layers];
        for &i in &sinks {
            if st[i] != INPUT {
                held[st[i]] = true;
            }
        }
        held
    };
    let held_inf = sink_storages(&st_inf);
    let mut free_inf = vec![Vec::new(); n];
    for (k, &lp) in last_inf.iter().enumerate() {
        if st_inf[k] == k && !held_inf[k] {
            free_inf[lp].push(k);
        }
    }
    for (p, &i) in order.iter().enumerate() {
        let at = |m: String| at_input(format!("layer \"{}\": {m}", spec.layers[i].id.name));
        if st_inf[i] == i {
            let b = out_bytes(i).map_err(at)?;
            activation_bytes = add(activation_bytes, b, "activation bytes").map_err(at)?;
            live.alloc(b).map_err(at)?;
        }
        if live.now > inference_peak_bytes {
            inference_peak_bytes = live.now;
            inference_peak_layer = spec.layers[i].id.name.clone();
        }
        for &k in &free_inf[p] {
            live.free(out_bytes(k).map_err(at)?);
        }
    }

    // ---------- Training ----------
    let st = storage_of(true);
    // Which layers' outputs need a gradient.
    let mut req = vec![false; n_layers];
    for &i in order {
        req[i] = trains(i) || a.graph.inputs[i].iter().any(|s| matches!(s, Source::Layer(j) if req[*j]));
    }
    // Saved tensors: references extend lifetimes; New ones are allocated.
    let mut bwd_hold = vec![usize::MAX; n_layers]; // earliest position whose backward frees the storage
    let mut input_held = false;
    let mut extras = vec![0u64; n_layers];
    for &i in order {
        if !req[i] {
            continue;
        }
        let l = ana(i);
        let at = |e: crate::kinds::KindError| at_input(format!("layer \"{}\": {}", spec.layers[i].id.name, e.message));
        for s in spec.layers[i].kind.op().saved(&l.input_shapes, &l.output).map_err(at)? {
            let k = match s {
                Saved::Input(j) => src_storage(&st, a.graph.inputs[i][j]),
                Saved::Output => st[i],
                Saved::New { elements, dtype, .. } => {
                    let d = match dtype {
                        SavedDType::Activation => act,
                        SavedDType::Accum => accum,
                        SavedDType::I64 => DType::I64,
                        SavedDType::Bool => DType::U8,
                    };
                    let b = bytes_of(elements, d).map_err(at_input)?;
                    extras[i] = add(extras[i], b, "saved bytes").map_err(at_input)?;
                    continue;
                }
            };
            if k == INPUT {
                input_held = true;
            } else {
                bwd_hold[k] = bwd_hold[k].min(pos[i]);
            }
        }
    }
    let _ = input_held; // the input is data: held for the whole step anyway
    let last_tr = fwd_last(&st);
    let held_tr = if loss.is_some() { vec![false; n_layers] } else { sink_storages(&st) };
    // mse keeps its input (the logits) until the loss backward, at position n.
    let mut loss_hold = usize::MAX;
    if let (Some(l), Some(out)) = (loss, loss_out) {
        if l.kind == LossKind::Mse && st[out] != INPUT {
            loss_hold = st[out];
        }
    }
    let data = add(input_bytes, label_bytes, "data bytes").map_err(at_input)?;
    let weights = add(add(param_bytes, buffer_bytes, "weights").map_err(at_input)?, master_weight_bytes, "weights")
        .map_err(at_input)?;
    let mut tl = Vec::new();
    let mut live = Live { now: 0 };
    let push = |tl: &mut Vec<Stage>, phase, name: String, live: u64, peak: u64| {
        tl.push(Stage { phase, name, live_bytes: live, peak_bytes: peak })
    };
    live.alloc(data).map_err(at_input)?;
    push(
        &mut tl,
        Phase::Data,
        if loss.is_some() { "input + labels".into() } else { "input".into() },
        live.now,
        live.now,
    );
    live.alloc(weights).map_err(at_input)?;
    push(&mut tl, Phase::Weights, "weights".into(), live.now, live.now);
    // A storage is freed in forward at its last reader unless backward or the caller holds it.
    let loss_storage = loss_out.map(|o| st[o]);
    let mut free_fwd = vec![Vec::new(); n];
    let mut free_bwd = vec![Vec::new(); n];
    for (k, &lp) in last_tr.iter().enumerate() {
        if st[k] != k {
            continue;
        }
        if held_tr[k] {
            continue;
        }
        if bwd_hold[k] != usize::MAX {
            free_bwd[bwd_hold[k]].push(k);
        } else if Some(k) != loss_storage {
            free_fwd[lp].push(k);
        }
    }
    for (p, &i) in order.iter().enumerate() {
        let at = |m: String| at_input(format!("layer \"{}\": {m}", spec.layers[i].id.name));
        if st[i] == i {
            live.alloc(out_bytes(i).map_err(at)?).map_err(at)?;
        }
        live.alloc(extras[i]).map_err(at)?;
        let peak = live.now;
        for &k in &free_fwd[p] {
            live.free(out_bytes(k).map_err(at)?);
        }
        push(&mut tl, Phase::Forward, spec.layers[i].id.name.clone(), live.now, peak);
    }
    // Loss forward.
    let mut loss_temp = 0u64; // freed by the loss backward
    if let (Some(l), Some(out)) = (loss, loss_out) {
        let elems = ana(out).output.elements().map_err(at_loss)?;
        let scalar = act.size();
        let (allocs, temp) = match l.kind {
            // log_softmax output (saved) + loss + total_weight (saved by nll_loss).
            LossKind::CrossEntropy => {
                let logp = bytes_of(elems, act).map_err(at_loss)?;
                (add(logp, 2 * scalar, "loss bytes").map_err(at_loss)?, logp + scalar)
            }
            LossKind::Mse => (scalar, 0),
        };
        live.alloc(allocs).map_err(at_loss)?;
        loss_temp = temp;
        let peak = live.now;
        let k = st[out];
        if k != INPUT && bwd_hold[k] == usize::MAX && k != loss_hold {
            live.free(out_bytes(k).map_err(at_loss)?);
        }
        push(&mut tl, Phase::Loss, "loss".into(), live.now, peak);
    }
    let after_forward_bytes = live.now;
    let saved_activation_bytes = after_forward_bytes - data - weights;

    // Backward.
    let mut grad_live = vec![false; n_layers]; // gradient of layer i's output exists
    let mut param_grad = vec![false; n_layers]; // gradient of owner i's parameters exists
    let mut backward_peak_bytes = 0u64;
    let mut backward_peak_layer = String::new();
    let free_storage = |live: &mut Live, k: usize| -> Result<(), String> {
        live.free(out_bytes(k)?);
        Ok(())
    };
    if let Some(out) = sinks.last().copied().filter(|&o| req[o]) {
        // Seed: dL/d(output).
        let g = out_bytes(out).map_err(at_loss)?;
        match (loss, loss_out) {
            (Some(l), Some(_)) => {
                let scalar = act.size();
                let elems = ana(out).output.elements().map_err(at_loss)?;
                // grad of the loss (1 element), of log-probabilities (cross-entropy), of the logits.
                let mid = if l.kind == LossKind::CrossEntropy { bytes_of(elems, act).map_err(at_loss)? } else { 0 };
                live.alloc(scalar + mid + g).map_err(at_loss)?;
                let peak = live.now;
                live.free(scalar + mid + loss_temp);
                if loss_hold != usize::MAX && bwd_hold[loss_hold] == usize::MAX {
                    free_storage(&mut live, loss_hold).map_err(at_loss)?;
                }
                push(&mut tl, Phase::Backward, "loss".into(), live.now, peak);
                if peak > backward_peak_bytes {
                    backward_peak_bytes = peak;
                    backward_peak_layer = "loss".into();
                }
            }
            _ => live.alloc(g).map_err(at_input)?,
        }
        grad_live[out] = true;
        for &s in &sinks {
            if s != out && req[s] {
                live.alloc(out_bytes(s).map_err(at_input)?).map_err(at_input)?;
                grad_live[s] = true;
            }
        }
    }
    for p in (0..n).rev() {
        let i = order[p];
        if !req[i] {
            continue;
        }
        let at = |m: String| at_input(format!("layer \"{}\": {m}", spec.layers[i].id.name));
        let mut transient = 0u64;
        let mut seen = Vec::new();
        for &s in &a.graph.inputs[i] {
            let Source::Layer(j) = s else { continue };
            if !req[j] || seen.contains(&j) {
                continue;
            }
            seen.push(j);
            let b = out_bytes(j).map_err(at)?;
            if grad_live[j] {
                transient = add(transient, b, "gradient bytes").map_err(at)?;
            } else {
                live.alloc(b).map_err(at)?;
                grad_live[j] = true;
            }
        }
        for (w, elems) in grads_of(i) {
            if param_grad[w] {
                // A second gradient for the same parameters: computed, then added in place.
                let b = bytes_of(elems, act).map_err(at)?;
                transient = add(transient, b, "gradient bytes").map_err(at)?;
            } else {
                // The first one becomes the owner's `.grad` (all of its parameters).
                live.alloc(bytes_of(ana(w).params, act).map_err(at)?).map_err(at)?;
                param_grad[w] = true;
            }
        }
        let peak = add(live.now, transient, "live bytes").map_err(at)?;
        if peak > backward_peak_bytes {
            backward_peak_bytes = peak;
            backward_peak_layer = spec.layers[i].id.name.clone();
        }
        // Free: this output's gradient, this layer's extras, storages it was the last to hold.
        if grad_live[i] {
            live.free(out_bytes(i).map_err(at)?);
            grad_live[i] = false;
        }
        live.free(extras[i]);
        for &k in &free_bwd[p] {
            free_storage(&mut live, k).map_err(at)?;
        }
        push(&mut tl, Phase::Backward, spec.layers[i].id.name.clone(), live.now, peak);
    }
    // Optimizer step.
    live.alloc(optimizer_state_bytes).map_err(at_input)?;
    push(&mut tl, Phase::Optimizer, "step".into(), live.now, live.now);
    let (mut training_peak_bytes, mut training_peak_stage) = (0u64, String::new());
    for s in &tl {
        if s.peak_bytes > training_peak_bytes {
            training_peak_bytes = s.peak_bytes;
            training_peak_stage = format!("{} {}", s.phase.name(), s.name);
        }
    }
    Ok(Memory {
        batch: spec.batch,
        optimizer: o.optimizer,
        amp: o.amp,
        activation_dtype: act,
        weight_dtype: wdt,
        input_bytes,
        label_bytes,
        param_bytes,
        buffer_bytes,
        master_weight_bytes,
        activation_bytes,
        inference_peak_bytes,
        inference_peak_layer,
        gradient_bytes,
        optimizer_state_bytes,
        saved_activation_bytes,
        after_forward_bytes,
        backward_peak_bytes,
        backward_peak_layer,
        training_peak_bytes,
        training_peak_stage,
        timeline: tl,
    })
}

/// A peer tool whose memory figure netstat can show beside its own (`--memory-convention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// torchinfo 1.8 "Forward/backward pass size": 2 × Σ output bytes of layers with parameters.
    Torchinfo,
    /// torchsummary "Forward/backward pass size": 2 × Σ output bytes of every module.
    Torchsummary,
    /// convnet-burden "feature memory": the input and each layer output once, in-place ReLUs 0.
    ConvnetBurden,
}

/// The peers' memory figures for an analysed spec (bytes), by their own definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Conventions {
    /// torchinfo: 2 × Σ output bytes of layers that own (or share) parameters. torchinfo prints
    /// it in MB of 10⁶ B (VGG-16: 108.45 MB).
    pub torchinfo_forward_backward_bytes: u64,
    /// torchsummary: 2 × Σ output bytes of every layer but `flatten` (torchvision models call
    /// `torch.flatten`, which torchsummary's module hooks do not see). Printed in MiB labelled
    /// "MB" (VGG-16 without avgpool: 218.59).
    pub torchsummary_forward_backward_bytes: u64,
    /// convnet-burden: the input + each layer output that is new storage in inference, once
    /// (netstat's `input_bytes + activation_bytes`; VGG-16: 58 MiB).
    pub convnet_burden_feature_bytes: u64,
}

/// Compute the peers' figures from the per-layer output bytes (the spec's dtype).
///
/// Errors: overflow (at the spec's input).
pub fn conventions(a: &Analysis) -> Result<Conventions, crate::error::SpecError> {
    let err = |m: String| crate::error::SpecError::new(&a.spec.file, a.spec.input.loc, m);
    let (mut ti, mut ts, mut cb) = (0u64, 0u64, a.totals.input_bytes);
    for l in &a.layers {
        let k = &a.spec.layers[l.index].kind;
        if l.params > 0 || l.shares.is_some() {
            ti = add(ti, l.activation_bytes, "bytes").map_err(err)?;
        }
        if k.name() != "flatten" {
            ts = add(ts, l.activation_bytes, "bytes").map_err(err)?;
        }
        if !k.op().aliases_input(false) {
            cb = add(cb, l.activation_bytes, "bytes").map_err(err)?;
        }
    }
    Ok(Conventions {
        torchinfo_forward_backward_bytes: mul(ti, 2, "bytes").map_err(err)?,
        torchsummary_forward_backward_bytes: mul(ts, 2, "bytes").map_err(err)?,
        convnet_burden_feature_bytes: cb,
    })
}

/// The memory figures of `spec` at another batch size (the spec is re-analysed).
pub fn at_batch(spec: &crate::spec::Spec, batch: u64, o: &Options) -> Result<Memory, crate::error::SpecError> {
    let mut s = spec.clone();
    s.batch = batch;
    model(&crate::analysis::analyze(s)?, o)
}

/// The largest batch whose training peak fits in `budget` bytes, with its figures; `None` if
/// batch 1 does not fit. Batches are searched up to `dataset.rows` when the spec has it, else
/// up to 2⁴⁰; a batch whose byte counts overflow does not fit. The training peak never
/// decreases with the batch (every tensor but the weights grows with it), so a binary search
/// between a fitting and a non-fitting batch finds the boundary.
///
/// Errors: the spec does not analyse at batch 1.
pub fn fit(spec: &crate::spec::Spec, budget: u64, o: &Options) -> Result<Option<Memory>, crate::error::SpecError> {
    let first = at_batch(spec, 1, o)?;
    if first.training_peak_bytes > budget {
        return Ok(None);
    }
    let cap = spec.dataset_rows.unwrap_or(1 << 40);
    let fits = |b: u64| at_batch(spec, b, o).ok().filter(|m| m.training_peak_bytes <= budget);
    let (mut lo, mut best) = (1u64, first);
    let mut hi = None;
    let mut b = 2u64;
    while b <= cap {
        match fits(b) {
            Some(m) => {
                lo = b;
                best = m;
                b = b.saturating_mul(2);
            }
            None => {
                hi = Some(b);
                break;
            }
        }
    }
    let mut hi = match hi {
        Some(h) => h,
        None if lo == cap => return Ok(Some(best)),
        None => cap + 1,
    };
    // Invariant: lo fits, hi does not (or is past the cap).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match fits(mid) {
            Some(m) => {
                lo = mid;
                best = m;
            }
            None => hi = mid,
        }
    }
    Ok(Some(best))
}

/// Parse a byte size: `3GiB`, `3 GiB`, `3GB`, `3000000000`, `512MiB`, `1.5GiB` (IEC units are
/// powers of 1024, SI units powers of 1000; `B` optional; case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim().to_ascii_lowercase());
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("expected a size such as 3GiB, 3GB or 3000000000, got \"{s}\" (unknown unit)")),
    };
    let bad = || format!("expected a size such as 3GiB, 3GB or 3000000000, got \"{s}\"");
    if num.is_empty() {
        return Err(bad());
    }
    if let Ok(v) = num.parse::<u64>() {
        return v.checked_mul(mult).ok_or_else(|| format!("size \"{s}\" overflows u64"));
    }
    // Decimal: exact when the result is a whole number of bytes.
    let (int, frac) = num.split_once('.').ok_or_else(bad)?;
    let digits = format!("{int}{frac}");
    let scale = 10u64.checked_pow(frac.len() as u32).ok_or_else(bad)?;
    let v: u64 = digits.parse().map_err(|_| bad())?;
    let total = (v as u128) * (mult as u128);
    if !total.is_multiple_of(scale as u128) {
        return Err(format!("size \"{s}\" is not a whole number of bytes"));
    }
    u64::try_from(total / scale as u128).map_err(|_| format!("size \"{s}\" overflows u64"))
}

#[cfg(test)]
mod tests;
