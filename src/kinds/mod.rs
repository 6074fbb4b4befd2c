//! Layer kinds: one file per kind, one trait, one registry.
//!
//! Each kind's file holds its spec fields ([`KindSpec`]), its output-shape rule, its parameter
//! and MAC count (the formula and its source in the doc comment), what it saves for backward,
//! its peer-convention facts and device split ([`Op`]), its candle builder and candle memory
//! rule ([`crate::candle::build::Build`]), and its unit tests. Adding a kind touches its file
//! plus one line in the `kinds!` registry below (private, so not a doc link), which declares
//! the module and generates every dispatch (`Kind::parse`, `fields`, `name`, `op`, `candle`) as
//! an exhaustive match: a kind that lacks one of the traits, or a required hook of one (no
//! default bodies: `Op::analyze`, `Op::peer`, `Op::split`, `Build::build`, `Build::memory`),
//! does not compile.
//!
//! **Counting convention** (torchvision's published `_ops`, i.e. PyTorch FlopCounterMode / 2):
//! MACs count the multiply-accumulates of conv and linear layers (and, where a kind has them,
//! attention matmuls) only: no bias adds, norms, activations, pooling or softmax.
//! FLOPs = 2 · MACs.

use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

pub mod lora;
pub mod window;

/// What one layer costs, for given input shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// Output shape, with batch.
    pub output: Shape,
    /// Trainable parameters (weights + biases), in elements.
    pub params: u64,
    /// Non-trainable state such as BatchNorm running mean and variance, in elements.
    pub buffers: u64,
    /// Multiply-accumulates for one forward pass over the whole batch (FLOPs = 2 · MACs).
    pub macs: u64,
}

/// Why a layer cannot take its inputs; `field` names the spec field to point at, if one is to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindError {
    /// The field at fault (its line:column is reported), or `None` for the layer itself.
    pub field: Option<&'static str>,
    /// What is wrong, "expected … got …".
    pub message: String,
}

impl KindError {
    /// An error about the layer as a whole (e.g. its input rank).
    pub fn layer(message: impl Into<String>) -> Self {
        KindError { field: None, message: message.into() }
    }
    /// An error about one field (e.g. `groups`).
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        KindError { field: Some(field), message: message.into() }
    }
}

impl From<String> for KindError {
    /// Overflow messages from [`crate::shape`] are about the layer as a whole.
    fn from(message: String) -> Self {
        KindError::layer(message)
    }
}

/// Fields common to every layer, checked by the spec loader.
pub const COMMON_FIELDS: &[&str] = &["name", "kind", "inputs", "trainable", "shares"];

/// Element type of a tensor a layer keeps for its backward pass (see [`Saved::New`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedDType {
    /// The activation dtype (`--dtype`, or the low dtype under `--amp`).
    Activation,
    /// The accumulation type of statistics: f64 for f64 activations, else f32 (PyTorch keeps
    /// batch-norm `save_mean`/`save_invstd` in the accumulate type, f32 for f16/bf16 input).
    Accum,
    /// int64, 8 bytes (PyTorch's max-pool argmax indices).
    I64,
    /// bool, 1 byte (PyTorch's dropout mask, `native_dropout`).
    Bool,
}

/// One tensor a layer keeps from its forward pass for its backward pass (autograd's saved
/// tensors, as PyTorch's `derivatives.yaml` formulas save them).
///
/// A saved input or output is a reference: it adds no bytes but keeps that tensor alive until
/// the layer's backward has run. Only [`Saved::New`] allocates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// Input `i` (e.g. conv and linear keep their input for the weight gradient).
    Input(usize),
    /// The output (e.g. relu, sigmoid, tanh, softmax compute their gradient from it).
    Output,
    /// A tensor the forward pass makes only for backward: `elements` of `dtype`; `what` says what it is.
    New {
        /// Number of elements.
        elements: u64,
        /// Element type.
        dtype: SavedDType,
        /// A short name, e.g. "argmax indices".
        what: &'static str,
    },
    /// A tensor the forward pass makes once and every layer that names it (the same `what` and
    /// `elements`) keeps: allocated by the first such layer in execution order and freed after
    /// that layer's backward, the last of theirs to run (Hugging Face Llama's rotary `cos` and
    /// `sin`, computed once per forward by the model and read by every attention layer).
    Shared {
        /// Number of elements.
        elements: u64,
        /// Element type.
        dtype: SavedDType,
        /// A short name; with `elements`, what identifies the one tensor.
        what: &'static str,
    },
}

/// One tensor a backward node of a multi-op layer allocates or frees ([`Op::backward_nodes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BwdTensor {
    /// An intermediate of the layer's backward (a gradient between its ops, or a temporary of
    /// one derivative formula): `elements` of `dtype`, named `id` within the layer. Each is
    /// allocated once and freed by a later (or the same) node, with the same fields.
    Temp {
        /// The layer-local name.
        id: u64,
        /// Number of elements (whole tensor, before any device split).
        elements: u64,
        /// Element type.
        dtype: SavedDType,
    },
    /// The tensor at index `i` of [`Op::saved`]'s list, which must be a [`Saved::New`]: freed
    /// when the autograd node that keeps it has run (PyTorch releases a node's saved variables
    /// right after it, `retain_graph=False`).
    Saved(usize),
    /// The gradient of parameter tensor `i` of [`Op::param_tensors`] (becomes its `.grad`).
    ParamGrad(usize),
    /// A contribution to the gradient of the layer's input `i`: the gradient itself if none
    /// exists yet, else a transient added into it (autograd's `InputBuffer` accumulation).
    InputGrad(usize),
    /// The gradient of the layer's output, freed by the node that consumes it.
    OutputGrad,
}

/// One autograd node of a multi-op layer's backward (PyTorch runs a layer such as Hugging
/// Face's `LlamaMLP` as several ATen ops, each with its own node): the tensors its ATen ops
/// allocate, live together when it ends (the memory model samples the peak there), then those
/// it frees. Views (`reshape`, `transpose` of a gradient) allocate nothing and are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackwardNode {
    /// The autograd node and what it differentiates, e.g. `"MulBackward0 (silu(gate)·up)"`.
    pub node: &'static str,
    /// Allocated by the node, in order.
    pub allocs: Vec<BwdTensor>,
    /// Freed when it ends: its consumed gradients, its temporaries, its saved tensors.
    pub frees: Vec<BwdTensor>,
}

/// An intermediate of a multi-op layer's inference forward ([`ForwardPass`]): `elements` of
/// `dtype`, named `id` within the layer (each allocated by one step, freed at most once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FwdTensor {
    /// The layer-local name.
    pub id: u64,
    /// Number of elements (whole tensor, before any device split).
    pub elements: u64,
    /// Element type.
    pub dtype: SavedDType,
}

/// One top-level op of a multi-op layer's inference forward: the tensor it makes (`None` for
/// a view), live with every earlier intermediate not yet freed when it ends (the memory model
/// samples the peak there), then the intermediates dropped after it (Python's temporaries and
/// rebound names go when the statement that last used them ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardStep {
    /// The ATen op and what it computes, e.g. `"silu (gate)"`.
    pub op: &'static str,
    /// Allocated by the op.
    pub alloc: Option<FwdTensor>,
    /// Freed when it ends.
    pub frees: Vec<FwdTensor>,
}

impl ForwardStep {
    /// An op that allocates `alloc` and, when it ends, frees `frees`.
    pub fn new(op: &'static str, alloc: FwdTensor, frees: Vec<FwdTensor>) -> ForwardStep {
        ForwardStep { op, alloc: Some(alloc), frees }
    }
}

/// A multi-op layer's inference forward as eager PyTorch runs it ([`Op::forward_pass`]): the
/// ops before the one that makes the layer's output; every intermediate still live when the
/// output is made is freed after it, except `returned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPass {
    /// The ops before the last, in order.
    pub steps: Vec<ForwardStep>,
    /// An intermediate the layer returns beside its output (Hugging Face's eager attention
    /// returns its probabilities): the caller drops it (at the layer's end), or under
    /// `--eager-references` holds it until its innermost enclosing block ends.
    pub returned: Option<FwdTensor>,
}

impl ForwardPass {
    /// Check the steps: each freed (or returned) intermediate was allocated by an earlier (or
    /// the same) step, with the same fields, and is freed once. A failure is a bug in the
    /// kind; the message says which rule.
    pub fn check(&self) -> Result<(), String> {
        let mut live: Vec<FwdTensor> = Vec::new();
        for s in &self.steps {
            if let Some(t) = s.alloc {
                if live.iter().any(|l| l.id == t.id) {
                    return Err(format!("forward step \"{}\" allocates intermediate {} twice", s.op, t.id));
                }
                live.push(t);
            }
            for f in &s.frees {
                let Some(k) = live.iter().position(|l| l == f) else {
                    return Err(format!("forward step \"{}\" frees intermediate {} that is not live", s.op, f.id));
                };
                live.remove(k);
            }
        }
        match self.returned {
            Some(r) if !live.contains(&r) => Err(format!("the returned intermediate {} is not live", r.id)),
            _ => Ok(()),
        }
    }
}

/// A tensor a model computes once per forward for every layer of one kind that reads it
/// ([`Op::forward_shared`]): Hugging Face Llama's rotary `cos`/`sin` and its causal mask,
/// made by `LlamaModel.forward` before the first decoder layer. The same `what` and
/// `elements` name the same tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedTensor {
    /// Number of elements.
    pub elements: u64,
    /// Element type.
    pub dtype: SavedDType,
    /// A short name; with `elements`, what identifies the one tensor.
    pub what: &'static str,
}

/// What a peer counter (torchinfo, fvcore, ptflops) sees of a layer: the facts
/// [`crate::conventions`] applies each peer's rules to (the rules stay there, one function per
/// peer; the facts are the kind's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Which PyTorch op class the layer runs as.
    pub class: PeerClass,
    /// Bias elements: a conv's `c_out`, a linear's `out_features`, an attention's 3·D
    /// in-projection plus D out-projection biases; 0 without a bias.
    pub bias: u64,
    /// Whether torchinfo sees the layer as a leaf module (its own parameters count in
    /// "Forward/backward pass size"). Not: `nn.MultiheadAttention` (it owns `out_proj`), and
    /// parameters of a container rather than a module of their own (ViT's class token and
    /// position embedding).
    pub torchinfo_leaf: bool,
}

impl Peer {
    /// A leaf op of no class the peers single out, without bias (activations, pools, views).
    pub const OTHER: Peer = Peer { class: PeerClass::Other, bias: 0, torchinfo_leaf: true };
}

/// The PyTorch op class of a layer, as the peers' rules tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerClass {
    /// `nn.Conv1d`, `nn.Conv2d`, `nn.ConvTranspose2d` (`aten.convolution`).
    Conv,
    /// `nn.Linear` (`aten.addmm` / `aten.mm`).
    Linear,
    /// `nn.MultiheadAttention` (fused `scaled_dot_product_attention`).
    Attention,
    /// `nn.BatchNorm2d` (`aten::batch_norm`).
    BatchNorm,
    /// `nn.LayerNorm` (`aten::layer_norm`).
    LayerNorm,
    /// `nn.Embedding`.
    Embedding,
    /// `nn.AdaptiveAvgPool2d` (`aten::adaptive_avg_pool2d`).
    AdaptiveAvgPool,
    /// A global average pool written as `AdaptiveAvgPool2d(1)` (as torchvision's MobileNetV2).
    GlobalAvgPool,
    /// Anything else.
    Other,
}

/// How a layer splits over devices in the per-device memory estimate ([`crate::memory::devices`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The output dimension each device holds a share of.
    pub axis: SplitAxis,
    /// Whether each device needs the layer's whole input (every other device's share is
    /// received): a dense layer reads every input channel.
    pub gathers: bool,
}

impl Split {
    /// Split along channels (dim 1), no exchange: elementwise, pooling, per-channel ops.
    pub const CHANNELS: Split = Split { axis: SplitAxis::Channels, gathers: false };
}

/// Which output dimension a layer's share is taken along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitAxis {
    /// Dimension 1 (channels of N×C×…).
    Channels,
    /// The last dimension (a linear's features).
    Last,
}

impl SplitAxis {
    /// The dimension index for an output of rank `rank`.
    pub fn dim(self, rank: usize) -> usize {
        match self {
            SplitAxis::Channels => 1,
            SplitAxis::Last => rank.saturating_sub(1),
        }
    }
}

/// How one kind reads its fields from a spec.
pub trait KindSpec: Sized {
    /// The `kind:` spelling, e.g. `conv2d`.
    const NAME: &'static str;
    /// Fields this kind accepts besides [`COMMON_FIELDS`].
    const FIELDS: &'static [&'static str];
    /// Read and validate the fields (sizes positive, enums known); shapes are checked later.
    fn parse(f: &Fields) -> Result<Self, SpecError>;
}

/// The analytic rules of one kind.
pub trait Op {
    /// Output shape, params, buffers and MACs for these input shapes (with batch).
    ///
    /// Errors: wrong rank, wrong channel count, kernel larger than the padded input, overflow.
    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError>;

    /// How many inputs the kind takes: (min, max).
    fn arity(&self) -> (usize, usize) {
        (1, 1)
    }

    /// Whether the kind takes integer token ids rather than floating-point tensors: only
    /// `embedding` does, and it takes nothing else. Every layer's output is floating point
    /// (the spec's `dtype`), so ids can only come from the network input.
    fn takes_int_ids(&self) -> bool {
        false
    }

    /// What the layer keeps for its backward pass, given its input and output shapes (with
    /// batch). Parameters are not listed: weights are held anyway. The memory model
    /// ([`crate::memory`]) turns references into lifetimes and [`Saved::New`] into bytes.
    ///
    /// The default keeps every input: conservative (most ops' gradients read their inputs);
    /// every kind states its own choice beside its formula.
    fn saved(&self, inputs: &[Shape], output: &Shape) -> Result<Vec<Saved>, KindError> {
        let _ = output;
        Ok((0..inputs.len()).map(Saved::Input).collect())
    }

    /// The layer's backward as the autograd nodes PyTorch runs for it, in the order it runs them
    /// ([`BackwardNode`]); `None` (the default) means one node: the whole layer's gradients are
    /// produced at once and its saved tensors freed when it ends. The memory model's training
    /// walk ([`crate::memory`]) steps through the nodes, so a layer's saved tensors go op by op
    /// and the gradients between its ops are counted. Every tensor a node lists must be one the
    /// kind declares: [`BwdTensor::Saved`] a [`Saved::New`] of [`Op::saved`] (same `inputs`,
    /// `output`), [`BwdTensor::ParamGrad`] a tensor of [`Op::param_tensors`] (each once).
    fn backward_nodes(&self, inputs: &[Shape], output: &Shape) -> Result<Option<Vec<BackwardNode>>, KindError> {
        let _ = (inputs, output);
        Ok(None)
    }

    /// The layer's inference forward as the top-level ops eager PyTorch runs for it
    /// ([`ForwardPass`]), for a kind made of several ops (Hugging Face's `LlamaMLP` is four
    /// ops before `down_proj`); `None` (the default) means one op: only its output is
    /// allocated. The memory model's inference walk ([`crate::memory`]) steps through them, so
    /// a layer's peak counts the intermediates live together inside it. Sizes are whole
    /// tensors of the given `inputs` and `output` (with batch). `cached_keys`: at a decode
    /// step with a KV cache ([`crate::memory::decode`]), the context `c` an attention layer's
    /// queries read from its cache (its own tokens included); `None` without a cache.
    fn forward_pass(
        &self,
        inputs: &[Shape],
        output: &Shape,
        cached_keys: Option<u64>,
    ) -> Result<Option<ForwardPass>, KindError> {
        let _ = (inputs, output, cached_keys);
        Ok(None)
    }

    /// Tensors the model computes once per forward for every layer of this kind
    /// ([`SharedTensor`]). The inference walk allocates each before the first layer that
    /// reads it and frees it after the last (under `--eager-references`, when the outermost
    /// block holding every reader ends, as the model's frame holds it). `cached_keys` as for
    /// [`Op::forward_pass`]. Default: none.
    fn forward_shared(
        &self,
        inputs: &[Shape],
        output: &Shape,
        cached_keys: Option<u64>,
    ) -> Result<Vec<SharedTensor>, KindError> {
        let _ = (inputs, output, cached_keys);
        Ok(Vec::new())
    }

    /// Whether, under `--eager-references`, the layer's output stays referenced until its
    /// innermost enclosing block ends, beyond its last reader: Hugging Face's models bind the
    /// embedding's output (`inputs_embeds`) for the whole forward of the module that calls it
    /// (`LlamaModel.forward`, `GPT2Model.forward`, `BertEmbeddings.forward`). Default: false.
    fn caller_keeps_output(&self) -> bool {
        false
    }

    /// Element counts of the layer's parameter tensors, one entry per tensor as PyTorch
    /// registers them (conv: weight, bias; `multi_head_attention`: `in_proj_weight`,
    /// `in_proj_bias`, `out_proj.weight`, `out_proj.bias`). They sum to [`Cost::params`] (the
    /// memory model checks it); a `linear` with `tied_to` lists its weight too, and the model
    /// leaves it to the owner. The memory model counts Adam's per-tensor `step` counters and
    /// the largest tensor (the per-tensor Adam step's temporaries) from them.
    ///
    /// The default is no tensors: right for every kind without parameters.
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let _ = inputs;
        Ok(Vec::new())
    }

    /// The parameter tensors that train when the kind itself freezes the rest: LoRA adapters
    /// (`lora:`, [`lora`]), whose base weights and biases are frozen. `None` (the default):
    /// every tensor of [`Op::param_tensors`] trains, unless the layer is `trainable: false`.
    /// [`crate::analysis::LayerAnalysis::trainable_params`] sums them; gradients and optimizer
    /// state ([`crate::memory`]) count these tensors only.
    fn adapter_tensors(&self, inputs: &[Shape]) -> Result<Option<Vec<u64>>, KindError> {
        let _ = inputs;
        Ok(None)
    }

    /// int64 scalar buffers the layer keeps besides [`Cost::buffers`] (which counts elements of
    /// the dtype): BatchNorm's `num_batches_tracked` (8 bytes each, PyTorch
    /// `_NormBase.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))`).
    fn counter_buffers(&self) -> u64 {
        0
    }

    /// Whether the layer is no operation at all in this mode: the output *is* the input tensor,
    /// nothing is saved and autograd records no node, so the gradient passes through without a
    /// copy (`dropout` in inference or with `p = 0`: ATen `dropout` returns `input` when
    /// `p == 0 || !train`). Implies [`Op::aliases_input`].
    fn is_identity(&self, training: bool) -> bool {
        let _ = training;
        false
    }

    /// Whether the output shares storage with input 0 instead of allocating: in-place ops
    /// (`inplace: true`), views (`flatten`) and ops that are the identity in inference
    /// (`dropout`, when `training` is false). Such a layer adds 0 activation bytes.
    fn aliases_input(&self, training: bool) -> bool {
        let _ = training;
        false
    }

    /// The facts the peer conventions ([`crate::conventions`]) count this layer by, for its
    /// output shape `output` (with batch). Required: a kind states its class and bias.
    fn peer(&self, output: &Shape) -> Peer;

    /// How the layer splits over `devices` devices ([`crate::memory::devices`]). Required: a kind
    /// states which dimension it splits and whether it gathers its input.
    fn split(&self, devices: u64) -> Split;
}

macro_rules! kinds {
    ($($name:literal => $variant:ident($module:ident::$ty:ident),)*) => {
        $(
            pub mod $module;
        )*

        /// Every layer kind, as parsed from a spec: one variant per file in `src/kinds/`.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Kind {
            $(
                #[doc = concat!("`kind: ", $name, "`")]
                $variant($module::$ty),
            )*
        }

        impl Kind {
            /// All `kind:` spellings.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The fields kind `name` accepts besides the common ones, or `None` if unknown.
            pub fn fields(name: &str) -> Option<&'static [&'static str]> {
                match name {
                    $($name => Some(<$module::$ty as KindSpec>::FIELDS),)*
                    _ => None,
                }
            }

            /// Parse a layer of kind `name` (which must be one of [`Kind::NAMES`]).
            pub fn parse(name: &str, f: &Fields) -> Result<Kind, SpecError> {
                match name {
                    $($name => Ok(Kind::$variant(<$module::$ty as KindSpec>::parse(f)?)),)*
                    _ => unreachable!("kind checked against Kind::NAMES before parsing"),
                }
            }

            /// The `kind:` spelling of this layer.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Kind::$variant(_) => $name,)*
                }
            }

            /// The analytic rules of this layer.
            pub fn op(&self) -> &dyn Op {
                match self {
                    $(Kind::$variant(k) => k,)*
                }
            }

            /// How this layer builds its candle module: every kind implements
            /// [`crate::candle::build::Build`] (a kind without it does not compile).
            pub fn candle(&self) -> &dyn crate::candle::build::Build {
                match self {
                    $(Kind::$variant(k) => k,)*
                }
            }
        }
    };
}

kinds! {
    "conv2d" => Conv2d(conv2d::Conv2d),
    "max_pool2d" => MaxPool2d(max_pool2d::MaxPool2d),
    "avg_pool2d" => AvgPool2d(avg_pool2d::AvgPool2d),
    "adaptive_avg_pool2d" => AdaptiveAvgPool2d(adaptive_avg_pool2d::AdaptiveAvgPool2d),
    "lrn" => Lrn(lrn::Lrn),
    "relu" => Relu(relu::Relu),
    "sigmoid" => Sigmoid(sigmoid::Sigmoid),
    "tanh" => Tanh(tanh::Tanh),
    "softmax" => Softmax(softmax::Softmax),
    "dropout" => Dropout(dropout::Dropout),
    "flatten" => Flatten(flatten::Flatten),
    "linear" => Linear(linear::Linear),
    "batch_norm2d" => BatchNorm2d(batch_norm2d::BatchNorm2d),
    "add" => Add(add::Add),
    "concat" => Concat(concat::Concat),
    "mul" => Mul(mul::Mul),
    "conv_transpose2d" => ConvTranspose2d(conv_transpose2d::ConvTranspose2d),
    "conv1d" => Conv1d(conv1d::Conv1d),
    "relu6" => Relu6(relu6::Relu6),
    "silu" => Silu(silu::Silu),
    "gelu" => Gelu(gelu::Gelu),
    "hardswish" => Hardswish(hardswish::Hardswish),
    "layer_norm" => LayerNorm(layer_norm::LayerNorm),
    "embedding" => Embedding(embedding::Embedding),
    "multi_head_attention" => MultiHeadAttention(multi_head_attention::MultiHeadAttention),
    "matmul" => Matmul(matmul::Matmul),
    "reshape" => Reshape(reshape::Reshape),
    "permute" => Permute(permute::Permute),
    "transpose" => Transpose(transpose::Transpose),
    "select" => Select(select::Select),
    "slice" => Slice(slice::Slice),
    "class_token" => ClassToken(class_token::ClassToken),
    "pos_embedding" => PosEmbedding(pos_embedding::PosEmbedding),
    "global_avg_pool" => GlobalAvgPool(global_avg_pool::GlobalAvgPool),
    "rms_norm" => RmsNorm(rms_norm::RmsNorm),
    "gated_mlp" => GatedMlp(gated_mlp::GatedMlp),
    "rnn" => Rnn(rnn::Rnn),
    "lstm" => Lstm(lstm::Lstm),
    "gru" => Gru(gru::Gru),
    "mixture_of_experts" => MixtureOfExperts(mixture_of_experts::MixtureOfExperts),
    "max_pool1d" => MaxPool1d(max_pool1d::MaxPool1d),
    "avg_pool1d" => AvgPool1d(avg_pool1d::AvgPool1d),
    "batch_norm1d" => BatchNorm1d(batch_norm1d::BatchNorm1d),
    "group_norm" => GroupNorm(group_norm::GroupNorm),
    "upsample" => Upsample(upsample::Upsample),
}

/// Check that the single input has rank `rank` (e.g. 4 for NCHW); `what` names the layout.
pub fn expect_rank(input: &Shape, rank: usize, what: &str) -> Result<(), KindError> {
    if input.rank() == rank {
        Ok(())
    } else {
        Err(KindError::layer(format!("expected a rank-{rank} input ({what}), got {input} (rank {})", input.rank())))
    }
}

/// Dimension index `d` of `x` (negative counts from the end, as in PyTorch), or an error
/// about field `field` when it is out of range.
pub fn norm_dim(d: i64, x: &Shape, field: &'static str) -> Result<usize, KindError> {
    let r = x.rank() as i64;
    let j = if d < 0 { r + d } else { d };
    if (0..r).contains(&j) {
        Ok(j as usize)
    } else {
        Err(KindError::field(field, format!("{field} {d} is out of range for input {x} (rank {r})")))
    }
}

/// Parameter tensors of a layer with a weight and an optional bias of `bias` elements: `[weight,
/// bias]` or `[weight]` (the weight is the rest of `params`); none when `params` is 0.
pub fn weight_and_bias(params: u64, bias: Option<u64>) -> Vec<u64> {
    match bias {
        _ if params == 0 => Vec::new(),
        Some(b) => vec![params - b, b],
        None => vec![params],
    }
}

/// The rules every convolution kind (conv1d, conv2d, conv_transpose2d) shares, from its
/// `c_out`, `bias` and `groups`: one place, so the three cannot drift apart (a conv1d k=3 once
/// got +0 ptflops bias MACs while the same conv2d `k=[3,1]` got +112).
pub mod conv_rules {
    use super::{weight_and_bias, Peer, PeerClass, Split, SplitAxis};

    /// Parameter tensors: the weight, then the bias when `bias` (PyTorch's `weight`, `bias`).
    pub fn param_tensors(params: u64, c_out: u64, bias: bool) -> Vec<u64> {
        weight_and_bias(params, bias.then_some(c_out))
    }

    /// Peers: `aten.convolution` (transposed or not), `c_out` biases when `bias`.
    pub fn peer(c_out: u64, bias: bool) -> Peer {
        Peer { class: PeerClass::Conv, bias: if bias { c_out } else { 0 }, torchinfo_leaf: true }
    }

    /// Split along output channels; a conv whose groups do not divide by the devices reads input
    /// channels held elsewhere, so it gathers its input.
    pub fn split(groups: u64, devices: u64) -> Split {
        Split { axis: SplitAxis::Channels, gathers: !groups.is_multiple_of(devices) }
    }
}

/// Shape rule of an elementwise layer: the output is the input.
pub fn same_shape(inputs: &[Shape]) -> Result<Cost, KindError> {
    Ok(Cost { output: inputs[0].clone(), params: 0, buffers: 0, macs: 0 })
}

/// Saved tensors of an elementwise activation whose backward needs its input (silu,
/// hardswish): the input itself, or — in place, where the input is overwritten — a copy of it,
/// new bytes of the input's size (PyTorch saves `self` before the in-place op).
pub fn saved_input_or_copy(inplace: bool, inputs: &[Shape]) -> Result<Vec<Saved>, KindError> {
    if inplace {
        let elements = inputs[0].elements()?;
        Ok(vec![Saved::New { elements, dtype: SavedDType::Activation, what: "copy of the input" }])
    } else {
        Ok(vec![Saved::Input(0)])
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Build a kind from YAML text for unit tests.
    use super::*;
    use crate::error::LayerRef;
    use crate::spec::node::Node;

    /// Parse `yaml` (a mapping of fields) as kind `K`.
    pub fn parse<K: KindSpec>(yaml: &str) -> Result<K, SpecError> {
        let node: Node = serde_saphyr::from_str(yaml).unwrap();
        let layer = LayerRef { index: 0, name: "t".into(), kind: K::NAME.into() };
        K::parse(&Fields { file: "test.yaml", node: &node, layer: &layer })
    }

    /// Analyze kind `K` parsed from `yaml` on one input of shape `input`.
    pub fn run<K: KindSpec + Op>(yaml: &str, input: &[u64]) -> Result<Cost, KindError> {
        parse::<K>(yaml).unwrap().analyze(&[Shape(input.to_vec())])
    }
}
