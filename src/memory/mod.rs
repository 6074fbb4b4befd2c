//! The memory model: inference peak and one training step, from one liveness schedule.
//!
//! Every figure is exact bytes of tensors (element count × element size), never allocator
//! blocks: PyTorch's caching allocator rounds each block up to 512 B, which netstat does not
//! model. Kernel workspaces (cuDNN) and intra-op temporaries are not counted. docs/memory.md
//! defines every figure; the short form is [`FOOTNOTE`].
//!
//! **Parts.** [`schedule`] computes, once per pass, the execution order, the storage of each
//! output (a layer whose [`crate::kinds::Op::aliases_input`] is true — in-place ops, views,
//! identities — writes into its input's storage and adds 0 bytes), when each storage is released
//! (after its last forward reader; in training after the backward of the earliest layer that
//! saved it, [`crate::kinds::Saved`]; by the loss; or held by the caller: the network input and
//! labels for the whole step, and the output when no loss is given), which outputs need a
//! gradient and what each layer saves. `inference` and `training` walk it and count bytes;
//! [`devices`] gives each layer's share when the model is split over devices. [`model`] puts
//! them together.
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
//!    the layer's output and the tensors only it saved are freed. The seed (the loss gradient, or `ones_like(output)`) is held until backward returns;
//! 6. optimizer step: the optimizer state appears (PyTorch creates it lazily on the first step);
//!    a non-fused Adam's temporaries ([`AdamImpl`]) count in the step's peak.
//!
//! Only layers whose output needs a gradient save anything: those with trainable parameters
//! and those downstream of one. Layers before the first trainable one save nothing.

pub mod checkpoint;
pub mod decode;
pub mod devices;
mod inference;
pub mod parallel;
pub mod schedule;
pub mod tensor_parallel;
mod training;

use crate::analysis::Analysis;
use crate::kinds::SavedDType;
use crate::shape::{add, mul, DType};
use crate::spec::loss::LossKind;
use schedule::{Mode, Schedule};
use serde::Serialize;

/// The definitions under every memory report, one line each.
pub const FOOTNOTE: &str = "\
inference peak: input + weights + every live layer output and multi-op intermediate at the worst op (freed after their last reader)
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

/// How a non-fused Adam/AdamW step runs (`--adam-impl`); the state is the same, the step's
/// temporaries and where the `step` counters live differ (torch.optim.Adam, torch 2.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AdamImpl {
    /// `fused=True`: one kernel, no temporaries; the `step` counters (one f32 per parameter
    /// tensor) are on the device.
    Fused,
    /// `foreach=True` (PyTorch's default on CUDA): the multi-tensor step allocates one extra
    /// full copy of the trainable parameters; counters on the CPU.
    Foreach,
    /// The per-tensor loop (`foreach=False`, the CPU default): two temporaries the size of the
    /// largest parameter tensor; counters on the CPU.
    PerTensor,
}

/// How to model the step: optimizer, precision, inference references, device split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `--optimizer`.
    pub optimizer: Optimizer,
    /// `--amp`, if any.
    pub amp: Option<Amp>,
    /// `--adam-impl` (only read for adam and adamw).
    pub adam_impl: AdamImpl,
    /// `--eager-references`: the inference peak holds each block's input until the block ends,
    /// as eager PyTorch does ([`schedule::Schedule::new`]).
    pub eager_references: bool,
    /// `--devices`: the model split over this many devices by channels, figures per device
    /// ([`devices`]); 1 = no split.
    pub devices: u64,
    /// `--data-parallel N --zero S`: data parallelism with ZeRO sharding ([`parallel`]).
    pub data_parallel: parallel::DataParallel,
    /// `--checkpoint`: which blocks are trained with activation checkpointing ([`checkpoint`]).
    pub checkpoint: checkpoint::Checkpoint,
    /// `--tensor-parallel T`: Megatron's split of attention and MLP over T devices
    /// ([`tensor_parallel`]); 1 = none.
    pub tensor_parallel: u64,
}

impl Options {
    /// Adam (fused), no mixed precision, references freed after their last reader, one device.
    pub const DEFAULT: Options = Options {
        optimizer: Optimizer::Adam,
        amp: None,
        adam_impl: AdamImpl::Fused,
        eager_references: false,
        devices: 1,
        data_parallel: parallel::DataParallel::NONE,
        checkpoint: checkpoint::Checkpoint::Spec,
        tensor_parallel: 1,
    };

    /// These options with another optimizer.
    pub const fn with_optimizer(self, optimizer: Optimizer) -> Options {
        Options { optimizer, ..self }
    }
}

impl Default for Options {
    /// [`Options::DEFAULT`].
    fn default() -> Self {
        Options::DEFAULT
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
    /// A checkpointed unit's forward, run again before its backward ([`checkpoint`]).
    Recompute,
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
            Phase::Recompute => "recompute",
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
    /// The Adam implementation modelled, when the optimizer is adam or adamw and it is not the
    /// fused default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adam_impl: Option<AdamImpl>,
    /// Whether the inference peak holds block inputs (`--eager-references`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub eager_references: bool,
    /// Devices the model is split over; the figures are one device's (the largest share).
    /// Left out of JSON for 1.
    #[serde(skip_serializing_if = "is_one")]
    pub devices: u64,
    /// Data parallelism with ZeRO ([`parallel`]): the figures are one data-parallel device's.
    /// Left out of JSON for one device.
    #[serde(skip_serializing_if = "parallel::DataParallel::is_none")]
    pub data_parallel: parallel::DataParallel,
    /// Tensor-parallel devices ([`tensor_parallel`]): the figures are one device's. Left out of
    /// JSON for 1.
    #[serde(skip_serializing_if = "is_one")]
    pub tensor_parallel: u64,
    /// With activation checkpointing: the units and the step's MACs, recompute included
    /// ([`checkpoint`]). Left out of JSON without checkpointing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<checkpoint::Recompute>,
    /// Element type of activations and gradients.
    pub activation_dtype: DType,
    /// Element type of the working weights.
    pub weight_dtype: DType,
    /// The network input on the device (the batch, or `dataset.rows` samples).
    pub input_bytes: u64,
    /// The labels on the device (0 without `loss:`).
    pub label_bytes: u64,
    /// Parameters, each once (shared ones once), in the weight dtype: this device's share
    /// under ZeRO-3 ([`parallel`]) or tensor parallelism ([`tensor_parallel`]).
    pub param_bytes: u64,
    /// Buffers: BatchNorm running statistics (fp32 under `--amp`, else the weight dtype) and
    /// its int64 `num_batches_tracked` counters (8 B each).
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
    /// Optimizer state: copies × trainable parameters (fp32 under `--amp`), plus fused Adam's
    /// `step` counters (4 B per trainable parameter tensor).
    pub optimizer_state_bytes: u64,
    /// The optimizer step's temporaries (non-fused Adam, [`AdamImpl`]), freed when it ends.
    /// Left out of JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub optimizer_step_temp_bytes: u64,
    /// Bytes the training forward leaves for backward, output included (data and weights
    /// excluded): live after the forward (and loss) − data − weights.
    pub saved_activation_bytes: u64,
    /// Live bytes after the forward pass (after the loss, when there is one).
    pub after_forward_bytes: u64,
    /// Live bytes after the backward pass (the seed gradient freed).
    pub after_backward_bytes: u64,
    /// Live bytes after the optimizer step.
    pub after_step_bytes: u64,
    /// Most bytes live during backward.
    pub backward_peak_bytes: u64,
    /// The layer (or `loss`) whose backward reaches it.
    pub backward_peak_layer: String,
    /// Most bytes live during the whole training step.
    pub training_peak_bytes: u64,
    /// `phase name` of the stage that reaches it.
    pub training_peak_stage: String,
    /// Per device (`devices` > 1): bytes of other devices' activation shares that exchanging
    /// layers receive and keep for backward (included in the figures above). Left out of JSON
    /// when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub received_bytes: u64,
    /// Per device: the layers that gather their input from all devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchanging_layers: Vec<String>,
    /// The training step, stage by stage (left out of JSON unless asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Stage>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_one(v: &u64) -> bool {
    *v == 1
}

impl Memory {
    /// Weights as held in training: parameters + buffers + master weights.
    pub fn weight_bytes(&self) -> u64 {
        self.param_bytes.saturating_add(self.buffer_bytes).saturating_add(self.master_weight_bytes)
    }
}
/// Live-bytes bookkeeping with checked arithmetic.
pub(crate) struct Live {
    /// Bytes live now.
    pub now: u64,
}

impl Live {
    pub(crate) fn alloc(&mut self, b: u64) -> Result<(), String> {
        self.now = add(self.now, b, "live bytes")?;
        Ok(())
    }
    pub(crate) fn free(&mut self, b: u64) {
        self.now = self.now.checked_sub(b).expect("freeing only what was allocated");
    }
}

pub(crate) fn bytes_of(elements: u64, d: DType) -> Result<u64, String> {
    mul(elements, d.size(), "bytes")
}

/// The parameters layer `i`'s backward produces a gradient for: (owner layer, elements).
/// `shares:` uses all of the owner's; `tied_to:` (linear) the owner's out × in weight. Only
/// trainable owners with parameters.
/// `pos`: each layer's execution position ([`schedule::Schedule::position`]).
pub(crate) fn grads_of<'a>(a: &'a Analysis, pos: &[usize], i: usize) -> impl Iterator<Item = (usize, u64)> + 'a {
    params_used(a, pos, i).filter(move |&(o, _)| a.spec.layers[o].trainable)
}

/// The parameters layer `i` computes with, trainable or not: (owner layer, elements), as
/// [`grads_of`] lists them.
pub(crate) fn params_used<'a>(a: &'a Analysis, pos: &[usize], i: usize) -> impl Iterator<Item = (usize, u64)> + 'a {
    let spec = &a.spec;
    let l = &a.layers[pos[i]];
    let mut v = Vec::new();
    match l.shares {
        Some(o) => v.push((o, a.layers[pos[o]].trainable_params)),
        None => v.push((i, l.trainable_params)),
    }
    if let crate::kinds::Kind::Linear(lin) = &spec.layers[i].kind {
        if let Some(j) = lin.tied_to.as_deref().and_then(|t| spec.layers.iter().position(|x| x.id.name == t)) {
            v.push((j, lin.out_features.saturating_mul(l.input_shapes[0].last())));
        }
    }
    v.into_iter().filter(|&(_, e)| e > 0)
}

/// The analysis of layer `i` (spec index), found by search: for one-off lookups.
fn layer(a: &Analysis, i: usize) -> &crate::analysis::LayerAnalysis {
    let p = a.graph.order.iter().position(|&x| x == i).expect("every layer is in the order");
    &a.layers[p]
}

/// Element types and the device split: how many bytes each tensor of the model takes.
pub(crate) struct Sizes {
    /// Activations and gradients.
    pub act: DType,
    /// Statistics saved in the accumulate type (f64 for f64 activations, else f32).
    pub accum: DType,
    /// Working weights.
    pub weight: DType,
    /// Optimizer state, master weights and buffers in training.
    pub state: DType,
    /// Each layer's share of its output and parameters (one device: everything).
    pub split: devices::Split,
    /// Data parallelism with ZeRO: what is sharded and gathered ([`parallel`]).
    pub dp: parallel::DataParallel,
    /// Tensor parallelism: each layer's split ([`tensor_parallel`]).
    pub tp: tensor_parallel::TensorParallel,
}

impl Sizes {
    fn new(a: &Analysis, o: &Options) -> Result<Sizes, crate::error::SpecError> {
        let at_input = |m: String| crate::error::SpecError::new(&a.spec.file, a.spec.input.loc, m);
        let act = o.amp.map(Amp::dtype).unwrap_or(a.spec.dtype);
        Ok(Sizes {
            act,
            accum: if act == DType::F64 { DType::F64 } else { DType::F32 },
            weight: act,
            state: if o.amp.is_some() { DType::F32 } else { a.spec.dtype },
            split: devices::Split::new(a, o.devices).map_err(at_input)?,
            dp: o.data_parallel,
            tp: {
                if o.devices > 1 && o.tensor_parallel > 1 {
                    return Err(at_input("--devices and --tensor-parallel split the model two ways: give one".into()));
                }
                tensor_parallel::TensorParallel::new(a, o.tensor_parallel)?
            },
        })
    }

    /// This device's elements of `elems` parameter elements of layer `i` (device split, then
    /// tensor parallelism).
    pub(crate) fn param_share(&self, i: usize, elems: u64) -> Result<u64, String> {
        Ok(self.tp.params(i, self.split.share(i, elems)?))
    }

    /// Bytes of layer `i`'s output (this device's share).
    pub(crate) fn output(&self, a: &Analysis, i: usize) -> Result<u64, String> {
        let e = a.layers[self.split.position[i]].output.elements()?;
        bytes_of(self.tp.output(i, self.split.share(i, e)?), self.act)
    }

    /// Bytes of a tensor layer `i` saves for backward (this device's share).
    pub(crate) fn saved(&self, i: usize, s: &schedule::NewSaved) -> Result<u64, String> {
        let d = match s.dtype {
            SavedDType::Activation => self.act,
            SavedDType::Accum => self.accum,
            SavedDType::I64 => DType::I64,
            SavedDType::Bool => DType::U8,
        };
        bytes_of(self.tp.saved(i, self.split.share(i, s.elements)?), d)
    }
}

/// Parameters, buffers, gradients and optimizer state (one device's share), bytes.
pub(crate) struct Weights {
    pub param_bytes: u64,
    /// Every parameter, unsharded (inference is not sharded by ZeRO).
    pub full_param_bytes: u64,
    /// Buffers in training (fp32 under `--amp`) with the int64 counters.
    pub buffer_bytes: u64,
    /// Buffers in inference (the weight dtype) with the int64 counters.
    pub inference_buffer_bytes: u64,
    pub master_weight_bytes: u64,
    pub gradient_bytes: u64,
    pub optimizer_state_bytes: u64,
    pub step_temp_bytes: u64,
}

impl Weights {
    fn new(a: &Analysis, o: &Options, z: &Sizes) -> Result<Weights, String> {
        let (mut params, mut trainable, mut buffers, mut counters) = (0u64, 0u64, 0u64, 0u64);
        let (mut tensors, mut largest) = (0u64, 0u64);
        for l in &a.layers {
            let i = l.index;
            let ls = &a.spec.layers[i];
            let ctx = |m: String| format!("layer \"{}\": {m}", ls.id.name);
            let op = ls.kind.op();
            params = add(params, z.param_share(i, l.params)?, "params").map_err(ctx)?;
            buffers = add(buffers, z.split.share(i, l.buffers)?, "buffers").map_err(ctx)?;
            counters = add(counters, op.counter_buffers(), "buffers").map_err(ctx)?;
            if !ls.trainable || l.shares.is_some() {
                continue;
            }
            trainable = add(trainable, z.param_share(i, l.trainable_params)?, "params").map_err(ctx)?;
            let mut t = op.param_tensors(&l.input_shapes).map_err(|e| ctx(e.message))?;
            if let crate::kinds::Kind::Linear(lin) = &ls.kind {
                if lin.tied_to.is_some() && !t.is_empty() {
                    t.remove(0); // the weight is the owner's (analysis::tied_params)
                }
            }
            let sum = t.iter().try_fold(0u64, |s, &e| add(s, e, "params")).map_err(ctx)?;
            if sum != l.params {
                return Err(ctx(format!(
                    "internal: the kind lists parameter tensors of {sum} elements, its params are {}",
                    l.params
                )));
            }
            if let Some(adapters) = op.adapter_tensors(&l.input_shapes).map_err(|e| ctx(e.message))? {
                t = adapters; // LoRA: the base is frozen, only A and B train
            }
            tensors += t.len() as u64;
            for e in t {
                largest = largest.max(z.tp.saved(i, z.split.share(i, e)?));
            }
        }
        let counter_bytes = mul(counters, DType::I64.size(), "buffer bytes")?;
        let adam = matches!(o.optimizer, Optimizer::Adam | Optimizer::Adamw);
        // ZeRO (parallel.rs): this device's partitions; the optimizer steps one flat partition.
        let dp = o.data_parallel;
        let (opt_elems, grad_elems) = (
            if dp.shards_optimizer() { dp.part(trainable) } else { trainable },
            if dp.shards_gradients() { dp.part(trainable) } else { trainable },
        );
        if dp.shards_optimizer() {
            (tensors, largest) = (1, opt_elems);
        }
        let full_param_bytes = bytes_of(params, z.weight)?;
        if dp.shards_params() {
            params = dp.part(params);
        }
        let copies = mul(opt_elems, o.optimizer.state_copies(), "optimizer state")?;
        let mut optimizer_state_bytes = bytes_of(copies, z.state)?;
        let mut step_temp_bytes = 0;
        if adam {
            match o.adam_impl {
                AdamImpl::Fused => {
                    optimizer_state_bytes = add(optimizer_state_bytes, mul(tensors, 4, "step counters")?, "state")?
                }
                AdamImpl::Foreach => step_temp_bytes = bytes_of(opt_elems, z.state)?,
                AdamImpl::PerTensor => step_temp_bytes = bytes_of(mul(largest, 2, "temporaries")?, z.state)?,
            }
        }
        Ok(Weights {
            param_bytes: bytes_of(params, z.weight)?,
            full_param_bytes,
            buffer_bytes: add(bytes_of(buffers, z.state)?, counter_bytes, "buffer bytes")?,
            inference_buffer_bytes: add(bytes_of(buffers, z.weight)?, counter_bytes, "buffer bytes")?,
            master_weight_bytes: if o.amp.is_some() { bytes_of(opt_elems, DType::F32)? } else { 0 },
            gradient_bytes: bytes_of(grad_elems, z.act)?,
            optimizer_state_bytes,
            step_temp_bytes,
        })
    }
}

/// The data on the device: input and labels, bytes, and the layer the loss reads.
struct Data {
    input_bytes: u64,
    label_bytes: u64,
    loss_input: Option<usize>,
}

impl Data {
    /// Errors (at the spec's `input` or `loss`): see [`model`].
    fn new(a: &Analysis, o: &Options, act: DType) -> Result<Data, crate::error::SpecError> {
        let spec = &a.spec;
        let at_input = |m: String| crate::error::SpecError::new(&spec.file, spec.input.loc, m);
        let at_loss = |m: String| {
            let loc = spec.loss.as_ref().map(|l| l.loc).unwrap_or(spec.input.loc);
            crate::error::SpecError::new(&spec.file, loc, m)
        };
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
        let Some(l) = spec.loss.as_ref() else {
            return Ok(Data { input_bytes, label_bytes: 0, loss_input: None });
        };
        let sinks: Vec<usize> = a.graph.order.iter().copied().filter(|&i| a.graph.consumers[i].is_empty()).collect();
        if sinks.len() != 1 {
            let names: Vec<&str> = sinks.iter().map(|&i| spec.layers[i].id.name.as_str()).collect();
            return Err(at_loss(format!(
                "a loss needs exactly one network output, got {} ({})",
                sinks.len(),
                names.join(", ")
            )));
        }
        let out = sinks[0];
        let oshape = &layer(a, out).output;
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
        let label_bytes = mul(rows, per_sample, "label elements").and_then(|e| bytes_of(e, dt)).map_err(at_loss)?;
        Ok(Data { input_bytes, label_bytes, loss_input: Some(out) })
    }
}

/// Compute every memory figure of an analysed spec: data, weights, the inference walk
/// (`memory/inference.rs`) and the training walk (`memory/training.rs`) over their [`Schedule`]s, for one
/// device's share when `o.devices` > 1 ([`devices`]).
///
/// Errors (at the spec's `input` or `loss`): a byte count overflows u64; a loss on a network
/// with more than one output; cross-entropy labels whose count does not match the logits;
/// `dataset.rows` smaller than the batch; `devices` = 0.
pub fn model(a: &Analysis, o: &Options) -> Result<Memory, crate::error::SpecError> {
    let spec = &a.spec;
    let at_input = |m: String| crate::error::SpecError::new(&spec.file, spec.input.loc, m);
    let z = Sizes::new(a, o)?;
    let data = Data::new(a, o, z.act)?;
    let w = Weights::new(a, o, &z).map_err(at_input)?;
    let (inf, _) = inference_pass(a, o, &z, &data, &w, false, None)?;
    let units = o.checkpoint.units(spec);
    let tr_schedule = if units.is_empty() {
        Schedule::new(a, Mode::Training, data.loss_input)
    } else {
        Schedule::training_checkpointed(a, data.loss_input, &units)
    }
    .map_err(at_input)?;
    let tr = training::walk(a, &tr_schedule, &z, &data, &w)?;
    let recompute = (!tr_schedule.units.is_empty())
        .then(|| -> Result<checkpoint::Recompute, String> {
            let training_macs = add(a.totals.macs, tr.backward_macs, "MACs")?;
            Ok(checkpoint::Recompute {
                units: tr_schedule.units.iter().map(|u| u.name.clone()).collect(),
                forward_macs: a.totals.macs,
                backward_macs: tr.backward_macs,
                recompute_macs: tr.recompute_macs,
                training_macs: add(training_macs, tr.recompute_macs, "MACs")?,
            })
        })
        .transpose()
        .map_err(at_input)?;
    let is_adam = matches!(o.optimizer, Optimizer::Adam | Optimizer::Adamw);
    Ok(Memory {
        batch: spec.batch,
        optimizer: o.optimizer,
        amp: o.amp,
        adam_impl: Some(o.adam_impl).filter(|&i| is_adam && i != AdamImpl::Fused),
        eager_references: o.eager_references,
        devices: o.devices,
        data_parallel: o.data_parallel,
        tensor_parallel: o.tensor_parallel,
        checkpoint: recompute,
        activation_dtype: z.act,
        weight_dtype: z.weight,
        input_bytes: data.input_bytes,
        label_bytes: data.label_bytes,
        param_bytes: w.param_bytes,
        buffer_bytes: w.buffer_bytes,
        master_weight_bytes: w.master_weight_bytes,
        activation_bytes: inf.activation_bytes,
        inference_peak_bytes: inf.peak_bytes,
        inference_peak_layer: inf.peak_layer,
        gradient_bytes: w.gradient_bytes,
        optimizer_state_bytes: w.optimizer_state_bytes,
        optimizer_step_temp_bytes: w.step_temp_bytes,
        saved_activation_bytes: tr.saved_activation_bytes,
        after_forward_bytes: tr.after_forward_bytes,
        after_backward_bytes: tr.after_backward_bytes,
        after_step_bytes: tr.after_step_bytes,
        backward_peak_bytes: tr.backward_peak_bytes,
        backward_peak_layer: tr.backward_peak_layer,
        training_peak_bytes: tr.peak_bytes,
        training_peak_stage: tr.peak_stage,
        received_bytes: tr.received_bytes,
        exchanging_layers: z.split.exchanging_names(a),
        timeline: tr.timeline,
    })
}

/// The inference pass: its schedule walked from input + weights (the weight dtype's buffers).
/// With `record`, the walk keeps each layer's row. Returns the walk and the bytes it starts
/// from.
/// `cached_keys`: a decode step's context ([`Mode::Inference`]).
fn inference_pass(
    a: &Analysis,
    o: &Options,
    z: &Sizes,
    data: &Data,
    w: &Weights,
    record: bool,
    cached_keys: Option<u64>,
) -> Result<(inference::Inference, u64), crate::error::SpecError> {
    let spec = &a.spec;
    let at_input = |m: String| crate::error::SpecError::new(&spec.file, spec.input.loc, m);
    let mode = Mode::Inference { eager: o.eager_references, cached_keys };
    let schedule = Schedule::new(a, mode, None).map_err(at_input)?;
    let weights = add(w.full_param_bytes, w.inference_buffer_bytes, "weights").map_err(at_input)?;
    let start = add(data.input_bytes, weights, "live").map_err(at_input)?;
    Ok((inference::walk(a, &schedule, z, start, record).map_err(at_input)?, start))
}

/// The inference forward of `a` under `o`, stage by stage, from the same walk as
/// [`Memory::inference_peak_bytes`]: a [`Phase::Data`] row (`input`: the network input), a
/// [`Phase::Weights`] row (input + parameters + buffers in the weight dtype), then one
/// [`Phase::Forward`] row per layer in execution order with the live bytes after the layer (its
/// frees done) and at its worst moment (its output allocated). The largest `peak_bytes` (or the
/// weights row when no layer allocates) is `inference_peak_bytes`. Bytes; one device's share
/// when `o.devices` > 1.
///
/// Errors: as [`model`].
pub fn inference_timeline(a: &Analysis, o: &Options) -> Result<Vec<Stage>, crate::error::SpecError> {
    inference_timeline_cached(a, o, None)
}

/// [`inference_timeline`] of a decode step whose attention layers read `cached_keys` keys from
/// their KV cache ([`decode`]); `None`: no cache.
pub(crate) fn inference_timeline_cached(
    a: &Analysis,
    o: &Options,
    cached_keys: Option<u64>,
) -> Result<Vec<Stage>, crate::error::SpecError> {
    let spec = &a.spec;
    let at_input = |m: String| crate::error::SpecError::new(&spec.file, spec.input.loc, m);
    let z = Sizes::new(a, o)?;
    let data = Data::new(a, o, z.act)?;
    let w = Weights::new(a, o, &z).map_err(at_input)?;
    let (inf, start) = inference_pass(a, o, &z, &data, &w, true, cached_keys)?;
    let mut rows = Vec::with_capacity(inf.layers.len() + 2);
    let row = |phase, name: &str, b| Stage { phase, name: name.into(), live_bytes: b, peak_bytes: b };
    rows.push(row(Phase::Data, "input", data.input_bytes));
    rows.push(row(Phase::Weights, "weights", start));
    rows.extend(inf.layers);
    Ok(rows)
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
            ti = add(ti, l.output_bytes, "bytes").map_err(err)?;
        }
        if k.name() != "flatten" {
            ts = add(ts, l.output_bytes, "bytes").map_err(err)?;
        }
        if !k.op().aliases_input(false) {
            cb = add(cb, l.output_bytes, "bytes").map_err(err)?;
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
/// decreases with the batch (every tensor but the weights grows with it).
///
/// A constant number of re-analyses, whatever the batch found: every stage of the training
/// timeline is affine in the batch (weights fixed, activations, data and gradients of
/// activations ∝ batch), so the figures at batches 1 and 2 give each stage's
/// `peak(b) = c + k·b`, hence the largest `b` under the budget; that batch is then checked
/// (it fits, the next does not, both on the lines). A spec whose stages are not affine (a
/// device split's rounding) falls back to the binary search (`search`), which returns the
/// same batch with O(log b) re-analyses.
///
/// Errors: the spec does not analyse at batch 1.
pub fn fit(spec: &crate::spec::Spec, budget: u64, o: &Options) -> Result<Option<Memory>, crate::error::SpecError> {
    Ok(fit_with_limit(spec, budget, o)?.map(|(m, _)| m))
}

/// [`fit`], with why the next batch does not fit when that is not the budget: the error that
/// stops it from analysing (a count overflowing u64 is no memory limit). `None` for the reason
/// when the next batch is over the budget or past the cap.
pub fn fit_with_limit(
    spec: &crate::spec::Spec,
    budget: u64,
    o: &Options,
) -> Result<Option<(Memory, Option<crate::error::SpecError>)>, crate::error::SpecError> {
    let cap = spec.dataset_rows.unwrap_or(1 << 40);
    // Batches 1 and 2 on two threads: the two lines need both (wall time halves on 2 cores).
    let (first, second) = both(|| at_batch(spec, 1, o), || (cap >= 2).then(|| at_batch(spec, 2, o)));
    let first = first?;
    if first.training_peak_bytes > budget {
        return Ok(None);
    }
    if let Some(found) = affine_fit(spec, budget, o, &first, second.and_then(Result::ok), cap) {
        return Ok(Some(found));
    }
    let m = search(spec, budget, o, first, cap);
    let limit = m.batch.checked_add(1).filter(|&next| next <= cap).and_then(|next| at_batch(spec, next, o).err());
    Ok(Some((m, limit)))
}

/// `(a(), b())`, `b` on a second thread.
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let h = s.spawn(b);
        let x = a();
        (x, h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// The stage peaks of a training timeline, when they account for the training peak.
fn stage_peaks(m: &Memory) -> Option<Vec<u64>> {
    let peaks: Vec<u64> = m.timeline.iter().map(|s| s.peak_bytes).collect();
    (peaks.iter().max() == Some(&m.training_peak_bytes)).then_some(peaks)
}

/// [`fit`] by the lines through batches 1 and 2; `None` when the stages are not affine (or
/// the batch found does not check), for the search to decide. `first`, `second`: the figures
/// at batch 1, which fit, and at batch 2 (`None` when the cap is 1 or batch 2 does not analyse).
fn affine_fit(
    spec: &crate::spec::Spec,
    budget: u64,
    o: &Options,
    first: &Memory,
    second: Option<Memory>,
    cap: u64,
) -> Option<(Memory, Option<crate::error::SpecError>)> {
    if cap < 2 {
        return Some((first.clone(), None));
    }
    let second = second?;
    let (p1, p2) = (stage_peaks(first)?, stage_peaks(&second)?);
    let same_stages = first.timeline.len() == second.timeline.len()
        && first.timeline.iter().zip(&second.timeline).all(|(a, b)| a.phase == b.phase && a.name == b.name);
    if !same_stages {
        return None;
    }
    // Each stage's line: peak(b) = c + k·b, k ≥ 0 (in i128: no overflow at any u64 batch).
    let lines: Vec<(i128, i128)> =
        p1.iter().zip(&p2).map(|(&a, &b)| (2 * a as i128 - b as i128, b as i128 - a as i128)).collect();
    if lines.iter().any(|&(_, k)| k < 0) {
        return None;
    }
    let on_lines = |m: &Memory, b: u64| {
        stage_peaks(m).is_some_and(|p| {
            p.len() == lines.len() && p.iter().zip(&lines).all(|(&v, &(c, k))| v as i128 == c + k * b as i128)
        })
    };
    // The largest batch under every line (batch 1 fits, so each bound is ≥ 1).
    let budget = budget as i128;
    let best = lines
        .iter()
        .filter(|&&(_, k)| k > 0)
        .map(|&(c, k)| (budget - c).div_euclid(k))
        .min()
        .map_or(cap, |b| u64::try_from(b).unwrap_or(u64::MAX).min(cap));
    let fits = |m: &Memory| m.training_peak_bytes as i128 <= budget;
    // The batch found and the next, on two threads.
    let (at_best, next) = both(
        || if best == 1 { Ok(first.clone()) } else { at_batch(spec, best, o) },
        || (best < cap).then(|| at_batch(spec, best + 1, o)),
    );
    let at_best = at_best.ok()?;
    if !fits(&at_best) || !on_lines(&at_best, best) {
        return None;
    }
    // The next batch must not fit: over budget on its lines, or too large to count.
    match next {
        Some(Ok(next)) if fits(&next) || !on_lines(&next, best + 1) => None,
        Some(Err(e)) => Some((at_best, Some(e))),
        _ => Some((at_best, None)),
    }
}

/// [`fit`] by doubling, then bisecting between a fitting and a non-fitting batch: O(log b)
/// re-analyses. `first`: the figures at batch 1, which fit.
fn search(spec: &crate::spec::Spec, budget: u64, o: &Options, first: Memory, cap: u64) -> Memory {
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
        None if lo == cap => return best,
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
    best
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
