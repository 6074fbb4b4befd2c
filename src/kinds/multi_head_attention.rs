//! `multi_head_attention`: scaled dot-product attention with input and output projections
//! (PyTorch `nn.MultiheadAttention`, `batch_first=True`; inputs N×L×D).
//!
//! One input: self-attention (query = key = value). Two: query and key = value (cross-attention).
//! Three: query, key, value. Query `N×L_q×D`, key `N×L_k×k_dim`, value `N×L_k×v_dim`.
//! Output `N×L_q×D`. `heads` must divide `D`.
//!
//! Params: `D·D + D·k_dim + D·v_dim + D·D` projection weights, plus `4·D` biases if `bias`
//! (PyTorch `in_proj_bias` 3·D and `out_proj.bias` D).
//!
//! MACs, per batch element: projections `L_q·D·D + L_k·k_dim·D + L_k·v_dim·D + L_q·D·D`,
//! plus `Q·Kᵀ = L_q·L_k·D` and `A·V = L_q·L_k·D`. Splitting into heads does not change the count
//! (h heads of D/h each). A causal mask is applied to the full `L×L` scores, which are counted
//! in full, as PyTorch FlopCounterMode (torchvision `_ops`) counts them.
//!
//! Today's decoders (Llama, Mistral; Ainslie et al. 2023 "GQA", Shazeer 2019 "MQA"):
//! - `kv_heads` (default `heads`, must divide it): grouped-query attention, multi-query at 1.
//!   K and V are projected to `W_kv = kv_heads · D/heads` (Hugging Face `k_proj`, `v_proj`):
//!   params `D·D + k_dim·W_kv + v_dim·W_kv + D·D` (+ `2·D + 2·W_kv` biases); projection MACs
//!   `L_q·D·D + L_k·k_dim·W_kv + L_k·v_dim·W_kv + L_q·D·D`. Each K/V head serves
//!   `heads/kv_heads` query heads, so the score and context matmuls stay `2·L_q·L_k·D`.
//! - `rotary` (RoPE, Su et al. 2021; `rope_theta`, default 10,000): rotates Q and K by their
//!   position. No params; its elementwise work (two products and a sum per element) is not in
//!   MACs, like every elementwise op.
//! - `window` (sliding-window attention, Mistral; needs `causal`): each query sees the `window`
//!   keys ending at itself. MACs of the window only: the score and context matmuls count
//!   `2·L_q·min(window, L_k)·D` (the band a sliding-window kernel computes; as with the causal
//!   mask, the partial rows at the start count in full).
//! - `lora: {rank, alpha, targets}` ([`super::lora`]; targets among `q`, `k`, `v`, `o`, default
//!   `[q, v]`, PEFT's for LLaMA-family models): every projection's weights and biases are
//!   frozen; each targeted projection `in → out` adds A (r·in) and B (out·r), trainable, and
//!   `rows·in·r + rows·r·out` MACs (rows `N·L_q` for q and o, `N·L_k` for k and v), and saves
//!   `x·Aᵀ` (rows·r). candle builds them as PEFT does: the projections frozen, A and B trainable
//!   (`q_proj.lora_A.weight`, …).

use super::lora::Target;
use super::{
    expect_rank, BackwardNode, BwdTensor, Cost, ForwardPass, ForwardStep, FwdTensor, KindError, KindSpec, Op, Peer,
    PeerClass, Saved, SavedDType, SharedTensor, Split,
};
use crate::error::SpecError;
use crate::shape::{add, checked_product, mul, Shape};
use crate::spec::fields::Fields;

/// A multi-head attention layer.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiHeadAttention {
    /// Number of heads (default 1); must divide the embedding size.
    pub heads: u64,
    /// Expected embedding size D; checked against the query when given.
    pub embed_dim: Option<u64>,
    /// Causal (decoder) mask; does not change the counts.
    pub causal: bool,
    /// Projection biases (default true).
    pub bias: bool,
    /// PyTorch's `need_weights` (default true, as `nn.MultiheadAttention.forward`): true runs
    /// the math path, which keeps the attention probabilities for backward; false runs
    /// `scaled_dot_product_attention` (the fused path torchvision's ViT takes), which keeps a
    /// log-sum-exp per query row instead. Changes only what is saved for backward.
    pub need_weights: bool,
    /// Key/value heads (grouped-query attention); `None` means `heads`.
    pub kv_heads: Option<u64>,
    /// Rotary position embedding on Q and K (default false).
    pub rotary: bool,
    /// RoPE base θ (default 10,000; Llama 3: 500,000).
    pub rope_theta: f64,
    /// Sliding-window length in keys (needs `causal`); `None` means unlimited.
    pub window: Option<u64>,
    /// LoRA adapters on some projections (`lora:`); the base projections are then frozen.
    pub lora: Option<super::lora::Lora>,
}

impl KindSpec for MultiHeadAttention {
    const NAME: &'static str = "multi_head_attention";
    const FIELDS: &'static [&'static str] = &[
        "heads",
        "embed_dim",
        "causal",
        "bias",
        "dropout",
        "need_weights",
        "kv_heads",
        "rotary",
        "rope_theta",
        "window",
        "lora",
    ];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        if let Some(p) = f.float("dropout")? {
            if !(0.0..1.0).contains(&p) {
                return Err(f.err(f.loc("dropout"), format!("`dropout`: expected a probability in [0, 1), got {p}")));
            }
        }
        let rope_theta = f.float("rope_theta")?.unwrap_or(10_000.0);
        if !(rope_theta > 0.0 && rope_theta.is_finite()) {
            return Err(f.err(
                f.loc("rope_theta"),
                format!("`rope_theta`: expected a positive base (angles are p·theta^(-2i/d)), got {rope_theta}"),
            ));
        }
        let heads = f.pos("heads")?.unwrap_or(1);
        let kv_heads = f.pos("kv_heads")?;
        if let Some(kv) = kv_heads {
            if !heads.is_multiple_of(kv) {
                return Err(f.err(
                    f.loc("kv_heads"),
                    format!("`kv_heads`: expected a divisor of heads {heads}, got {kv}"),
                ));
            }
        }
        let causal = f.bool("causal")?.unwrap_or(false);
        let window = f.pos("window")?;
        if window.is_some() && !causal {
            return Err(f.err(
                f.loc("window"),
                "`window`: sliding-window attention looks back from each query: it needs `causal: true`",
            ));
        }
        Ok(MultiHeadAttention {
            lora: super::lora::Lora::parse(f, true)?,
            kv_heads,
            rotary: f.bool("rotary")?.unwrap_or(false),
            rope_theta,
            window,
            heads,
            embed_dim: f.pos("embed_dim")?,
            causal,
            bias: f.bool("bias")?.unwrap_or(true),
            need_weights: f.bool("need_weights")?.unwrap_or(true),
        })
    }
}

impl MultiHeadAttention {
    /// Width of the K and V projections for embedding size `d`: `kv_heads · d/heads`.
    pub fn kv_width(&self, d: u64) -> u64 {
        match self.kv_heads {
            Some(kv) => kv * (d / self.heads.max(1)),
            None => d,
        }
    }

    /// Whether K and V have fewer heads than Q (grouped- or multi-query attention).
    pub fn grouped(&self) -> bool {
        self.kv_heads.is_some_and(|kv| kv != self.heads)
    }

    /// Hugging Face Llama's rotary `cos` and `sin` for `l` positions of a width-`d` embedding:
    /// `(1, l, d / heads)` values each, computed once per forward by the model's `rotary_emb`
    /// (position ids `(1, l)`, so batch-independent) and read by every attention layer.
    fn cos_sin(&self, l: u64, d: u64) -> Result<SharedTensor, KindError> {
        let elements = checked_product(&[2, l, d / self.heads.max(1)])?;
        Ok(SharedTensor { elements, dtype: SavedDType::Activation, what: "rotary cos, sin" })
    }

    /// Whether the layer is Hugging Face's eager grouped-query attention (`LlamaAttention` with
    /// `kv_heads` < `heads` on the math path, one input, no `lora`): the configuration whose
    /// forward ops and backward nodes are modelled one by one (measured on the tiny Llama).
    fn hf_eager_grouped(&self, inputs: &[Shape]) -> bool {
        self.grouped() && self.need_weights && inputs.len() == 1 && self.lora.is_none()
    }

    /// The LoRA-adapted projections for query `q`, key `k` and value `v` shapes (with batch),
    /// in the order of `targets`: (rows, in, out) each. q: `N·L_q` rows, D → D; k: `N·L_k`,
    /// k_dim → W_kv; v: `N·L_k`, v_dim → W_kv; o: `N·L_q`, D → D. Empty without `lora`.
    pub fn lora_projections(&self, q: &Shape, k: &Shape, v: &Shape) -> Result<Vec<(u64, u64, u64)>, String> {
        let Some(l) = &self.lora else { return Ok(Vec::new()) };
        let (d, w) = (q.last(), self.kv_width(q.last()));
        let (rq, rk) = (mul(q.0[0], q.0[1], "rows")?, mul(k.0[0], k.0[1], "rows")?);
        Ok(l.targets
            .iter()
            .map(|t| match t {
                Target::Q => (rq, d, d),
                Target::K => (rk, k.last(), w),
                Target::V => (rk, v.last(), w),
                Target::O => (rq, d, d),
            })
            .collect())
    }

    /// MACs of the score and context matmuls (`Q·Kᵀ` and `A·V`) for `n` sequences of `lq`
    /// queries over `lk` keys, embedding `d`: `2·n·L_q·min(window, L_k)·D`. A decode step with a
    /// KV cache is `lq = 1` over the `lk` cached keys ([`crate::memory::decode`]).
    pub fn score_macs(&self, n: u64, lq: u64, lk: u64, d: u64) -> Result<u64, String> {
        checked_product(&[2, n, lq, self.keys_scored(lk), d])
    }

    /// Keys each query row scores: `min(window, L_k)`.
    pub fn keys_scored(&self, lk: u64) -> u64 {
        self.window.map_or(lk, |w| w.min(lk))
    }
}

impl MultiHeadAttention {
    /// The projections' tensors, without adapters ([`Op::param_tensors`]).
    fn base_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let q = &inputs[0];
        let k = inputs.get(1).unwrap_or(q);
        let v = inputs.get(2).unwrap_or(k);
        let (d, kd, vd) = (q.last(), k.last(), v.last());
        let dd = mul(d, d, "weights")?;
        if self.grouped() {
            let w = self.kv_width(d);
            let mut t = vec![dd, mul(w, kd, "weights")?, mul(w, vd, "weights")?, dd];
            if self.bias {
                t.extend([d, w, w, d]);
            }
            return Ok(t);
        }
        let mut t = if kd == d && vd == d {
            vec![mul(dd, 3, "weights")?]
        } else {
            vec![dd, mul(d, kd, "weights")?, mul(d, vd, "weights")?]
        };
        t.push(dd);
        if self.bias {
            t.push(mul(3, d, "biases")?);
            t.push(d);
        }
        Ok(t)
    }
}

impl Op for MultiHeadAttention {
    /// Parameter tensors: `in_proj_weight` (3·D·D when key and value are D wide; PyTorch keeps
    /// `q/k/v_proj_weight` apart otherwise), `in_proj_bias` (3·D) and `out_proj.bias` (D) when
    /// `bias`, `out_proj.weight` (D·D). Grouped-query attention (`kv_heads` < `heads`) has
    /// Hugging Face's four projections: `q_proj` D·D, `k_proj` W_kv·k_dim, `v_proj` W_kv·v_dim,
    /// `o_proj` D·D, then the biases D, W_kv, W_kv, D when `bias`.
    /// With `lora`, then A and B of each target in order.
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let mut t = self.base_tensors(inputs)?;
        t.extend(self.adapter_tensors(inputs)?.unwrap_or_default());
        Ok(t)
    }

    /// With `lora`: A (r·in) and B (out·r) of each target train; every projection is frozen.
    fn adapter_tensors(&self, inputs: &[Shape]) -> Result<Option<Vec<u64>>, KindError> {
        let Some(l) = &self.lora else { return Ok(None) };
        let q = &inputs[0];
        let k = inputs.get(1).unwrap_or(q);
        let v = inputs.get(2).unwrap_or(k);
        let mut t = Vec::new();
        for (_, inf, outf) in self.lora_projections(q, k, v)? {
            t.extend(l.tensors(inf, outf)?);
        }
        Ok(Some(t))
    }

    /// Saved for backward: the inputs (for the in-projection weight gradients), the projected
    /// Q (`N·L_q·D`), K and V (`N·L_k·D` each), the context before the output projection
    /// (`N·L_q·D`, kept by `out_proj`), and
    /// - math path (`need_weights: true`): the attention probabilities `N·heads·L_q·L_k`
    ///   (kept by softmax and by `A·V`);
    /// - fused path (`need_weights: false`, `scaled_dot_product_attention`): a log-sum-exp per
    ///   query row and head, `N·heads·L_q` in f32 (the accumulate type), instead of the
    ///   probabilities (measured: shared/reference/pytorch_memory.md, vit_b_16, 1,853,376 B less
    ///   per layer at batch 1 = 12·197·197·4 − 12·197·4).
    ///
    /// Not counted: the scaled copy of Q and the head-averaged weights the math path returns
    /// (freed by the caller at once).
    /// Peers: fused attention, 4·D projection biases when `bias`; not a torchinfo leaf (it
    /// owns `out_proj`).
    fn peer(&self, output: &Shape) -> Peer {
        let d = output.0.last().copied().unwrap_or(0);
        let bias = if self.bias { 2 * d + 2 * self.kv_width(d) } else { 0 };
        Peer { class: PeerClass::Attention, bias, torchinfo_leaf: false }
    }

    /// Split along dim 1 (as other layers; heads are not modelled apart).
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward (PyTorch's math path, `need_weights=True`): the inputs (for the
    /// in-projection weight gradients), the projected Q (`N·L_q·D`), K and V (`N·L_k·D` each),
    /// the attention probabilities (`N·heads·L_q·L_k`, kept by softmax and by `A·V`) and the
    /// context before the output projection (`N·L_q·D`, kept by `out_proj`). Not counted: the
    /// scaled copy of Q and the head-averaged weights PyTorch also returns; fused kernels
    /// (flash attention) keep a log-sum-exp per row instead of the probabilities.
    ///
    /// Grouped-query attention (Hugging Face's Llama/Mistral attention, measured with
    /// `saved_tensors_hooks`, torch 2.15, transformers 5.25, CPU; scripts/pytorch_memory.py):
    /// on the math path (`eager`) `repeat_kv` copies K and V to every query head (`expand` +
    /// `reshape`) and the two matmuls keep those copies, `2·N·L_k·D`; K and V at their width
    /// W_kv are read only by that copy, which keeps nothing. On the fused path (`sdpa`,
    /// `need_weights: false`) `scaled_dot_product_attention(enable_gqa=True)` keeps K and V at
    /// W_kv (`2·N·L_k·W_kv`), no copies. `rotary` keeps nothing more: `q·cos +
    /// rotate_half(q)·sin` records `cos` and `sin` (they need no gradient, so q and
    /// `rotate_half(q)` are not kept), and the rotated Q and K are the Q and K counted above.
    /// `cos` and `sin` themselves, `L_q·head_dim` values each (position ids of one row,
    /// broadcast over the batch), are computed once per forward by the model and kept by every
    /// rotary layer: [`Saved::Shared`], counted once. A `window` masks the full scores (the
    /// math path), so the probabilities stay `L_q·L_k`.
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        let q = &inputs[0];
        let k = inputs.get(1).unwrap_or(q);
        let (n, lq, d, lk) = (q.0[0], q.0[1], q.0[2], k.0[1]);
        let nlq = checked_product(&[n, lq, d])?;
        // K and V as the matmuls (or the fused kernel) read them.
        let kv_width = if self.grouped() && self.need_weights { d } else { self.kv_width(d) };
        let nlk = checked_product(&[n, lk, kv_width])?;
        let mut s: Vec<Saved> = (0..inputs.len()).map(Saved::Input).collect();
        let repeated = self.grouped() && self.need_weights;
        s.push(Saved::New { elements: nlq, dtype: SavedDType::Activation, what: "projected Q" });
        for what in if repeated { ["K repeated to every head", "V repeated to every head"] } else { ["projected K", "projected V"] } {
            s.push(Saved::New { elements: nlk, dtype: SavedDType::Activation, what });
        }
        if self.rotary {
            let c = self.cos_sin(lq, d)?;
            s.push(Saved::Shared { elements: c.elements, dtype: c.dtype, what: c.what });
        }
        s.push(if self.need_weights {
            let probs = checked_product(&[n, self.heads, lq, lk])?;
            Saved::New { elements: probs, dtype: SavedDType::Activation, what: "attention probabilities" }
        } else {
            let lse = checked_product(&[n, self.heads, lq])?;
            Saved::New { elements: lse, dtype: SavedDType::Accum, what: "log-sum-exp per row" }
        });
        s.push(Saved::New { elements: nlq, dtype: SavedDType::Activation, what: "context before out_proj" });
        if let Some(l) = &self.lora {
            let v = inputs.get(2).unwrap_or(k);
            let mut e = 0u64;
            for (rows, _, _) in self.lora_projections(q, k, v)? {
                e = add(e, l.saved(rows)?, "saved elements")?;
            }
            s.push(Saved::New { elements: e, dtype: SavedDType::Activation, what: "LoRA x·Aᵀ" });
        }
        Ok(s)
    }

    /// Grouped-query self-attention on the math path (Hugging Face's eager `LlamaAttention`:
    /// `kv_heads` < `heads`, `need_weights: true`, one input, no `lora`) differentiated as
    /// PyTorch's autograd runs it, nodes in reverse creation order (Q = N·L·D values, K_r the K
    /// or V the matmuls read, N·L·D, K_w = N·L·W_kv, P = N·heads·L·L; formulas from
    /// aten/derivatives.yaml):
    /// `o_proj`'s `MmBackward0` (its weight gradient, the context's gradient Q; frees the
    /// context and the output's gradient); `BmmBackward0` of `P·V` (V's gradient K_r, P's
    /// gradient P; frees V); `SoftmaxBackward0` (P; frees the probabilities); the scaling's
    /// `MulBackward0` (P); `BmmBackward0` of `Q·Kᵀ` (Q and K_r; frees Q and K); `repeat_kv`'s
    /// `ExpandBackward0` for K, then V (a sum over each group, K_w each); with `rotary`, the
    /// rotation's backward for K, then Q (the gradient before the rotation plus one
    /// temporary of its size: `grad·sin` through `rotate_half`'s slices, then `grad·cos`
    /// added); then for V, K, Q the heads' gradient made contiguous (a copy, `ViewBackward0`)
    /// and the projection's `MmBackward0` (its weight gradient, a contribution to the input's
    /// gradient). A bias gradient comes with its weight's. Measured: scripts/pytorch_memory.py's
    /// allocator trace of the tiny Llama (torch 2.15, CPU). Other configurations (`nn`'s packed
    /// in-projection, the fused path, cross-attention, LoRA) are one node.
    fn backward_nodes(&self, inputs: &[Shape], _output: &Shape) -> Result<Option<Vec<BackwardNode>>, KindError> {
        if !self.hf_eager_grouped(inputs) {
            return Ok(None);
        }
        let x = &inputs[0];
        let (n, l, d) = (x.0[0], x.0[1], x.0[2]);
        let q = checked_product(&[n, l, d])?;
        let kw = checked_product(&[n, l, self.kv_width(d)])?;
        let p = checked_product(&[n, self.heads, l, l])?;
        let t = |id, elements| BwdTensor::Temp { id, elements, dtype: SavedDType::Activation };
        let node = |node, allocs: Vec<BwdTensor>, frees: Vec<BwdTensor>| BackwardNode { node, allocs, frees };
        // Saved: input 0, then Q 1, K 2, V 3, [cos/sin 4], probabilities, context.
        let (sq, sk, sv) = (BwdTensor::Saved(1), BwdTensor::Saved(2), BwdTensor::Saved(3));
        let sp = BwdTensor::Saved(if self.rotary { 5 } else { 4 });
        let sc = BwdTensor::Saved(if self.rotary { 6 } else { 5 });
        // Parameter tensors: q, k, v, o weights (0–3), then their biases (4–7).
        let grads = |w: usize| {
            let mut v = vec![BwdTensor::ParamGrad(w)];
            if self.bias {
                v.push(BwdTensor::ParamGrad(w + 4));
            }
            v
        };
        let mut nodes = vec![
            node("MmBackward0 (o_proj)", [grads(3), vec![t(0, q)]].concat(), vec![sc, BwdTensor::OutputGrad]),
            node("BmmBackward0 (probabilities·V)", vec![t(1, q), t(2, p)], vec![sv, t(0, q)]),
            node("SoftmaxBackward0", vec![t(3, p)], vec![sp, t(2, p)]),
            node("MulBackward0 (scores·scaling)", vec![t(4, p)], vec![t(3, p)]),
            node("BmmBackward0 (Q·Kᵀ)", vec![t(5, q), t(6, q)], vec![t(4, p), sq, sk]),
            node("ExpandBackward0 (repeat_kv K)", vec![t(7, kw)], vec![t(6, q)]),
            node("ExpandBackward0 (repeat_kv V)", vec![t(8, kw)], vec![t(1, q)]),
        ];
        // The gradients of the projections' outputs (heads layout): K, Q after the rotation.
        let (mut gk, mut gq) = (t(7, kw), t(5, q));
        if self.rotary {
            nodes.push(node("rotary backward (K)", vec![t(9, kw), t(10, kw)], vec![t(10, kw), gk]));
            nodes.push(node("rotary backward (Q)", vec![t(11, q), t(12, q)], vec![t(12, q), gq]));
            (gk, gq) = (t(9, kw), t(11, q));
        }
        for (grad, copy, w) in [(t(8, kw), t(13, kw), 2), (gk, t(14, kw), 1), (gq, t(15, q), 0)] {
            let proj = ["MmBackward0 (q_proj)", "MmBackward0 (k_proj)", "MmBackward0 (v_proj)"][w];
            let merge = ["ViewBackward0 (Q heads, contiguous)", "ViewBackward0 (K heads, contiguous)", "ViewBackward0 (V heads, contiguous)"][w];
            nodes.push(node(merge, vec![copy], vec![grad]));
            nodes.push(node(proj, [grads(w), vec![BwdTensor::InputGrad(0)]].concat(), vec![copy]));
        }
        Ok(Some(nodes))
    }

    /// Hugging Face's eager `LlamaAttention` ([`Self::hf_eager_grouped`]) as PyTorch runs it
    /// without autograd (Q = N·L·D values, K_w = N·L·W_kv, P = N·heads·L·L): the `q`, `k`, `v`
    /// projections (Q, K_w, K_w); with `rotary`, `q·cos + rotate_half(q)·sin` as five ops
    /// (`q·cos` Q, `neg` of one half Q/2, `cat` Q — the half dropped —, `·sin` Q — the `cat`
    /// dropped —, the sum Q — both products dropped), the same for K at K_w, after which the
    /// unrotated q and k are dropped; `repeat_kv` of K and V (Q each); `Q·Kᵀ` (P); `· scaling`
    /// (P, the scores dropped); with `causal`, `+ mask` (P, the scaled scores dropped);
    /// `softmax` (P, the masked scores dropped); `probabilities·V` (Q); the context made
    /// contiguous (Q), after which the repeated K, V and the strided context are dropped; then
    /// `o_proj` makes the output. The probabilities are returned (`attn_output, attn_weights`):
    /// the decoder layer binds them (`hidden_states, _ = self.self_attn(…)`) until it returns.
    /// Measured: scripts/pytorch_memory.py `trace tiny-llama 1 infer` (torch 2.15, CPU), op by
    /// op. Other configurations are one op.
    ///
    /// At a decode step (`cached_keys` = c, the L = 1 query reading c keys, `min(window, c)`
    /// with a window: [`Self::keys_scored`]): the cache update rebinds the key and value
    /// states to the cache's (written in place, as `StaticCache`), dropping the new token's K
    /// and V; `repeat_kv` then copies the cached K and V (N·c'·D each) and the scores and
    /// probabilities are N·heads·1·c'. The cache itself is counted by [`crate::memory::decode`].
    fn forward_pass(
        &self,
        inputs: &[Shape],
        _output: &Shape,
        cached_keys: Option<u64>,
    ) -> Result<Option<ForwardPass>, KindError> {
        if !self.hf_eager_grouped(inputs) {
            return Ok(None);
        }
        let x = &inputs[0];
        let (n, l, d) = (x.0[0], x.0[1], x.0[2]);
        // Keys the queries read: their own sequence, or the cache's.
        let lk = cached_keys.map_or(l, |c| self.keys_scored(c));
        let q = checked_product(&[n, l, d])?;
        let kw = checked_product(&[n, l, self.kv_width(d)])?;
        let kv = checked_product(&[n, lk, d])?;
        let p = checked_product(&[n, self.heads, l, lk])?;
        let t = |id, elements| FwdTensor { id, elements, dtype: SavedDType::Activation };
        let step = ForwardStep::new;
        let mut steps = vec![
            step("linear (q_proj)", t(0, q), vec![]),
            step("linear (k_proj)", t(1, kw), vec![]),
            step("linear (v_proj)", t(2, kw), vec![]),
        ];
        // The new token's key after the rotation (or the projection's without one).
        let mut key = t(1, kw);
        if self.rotary {
            for (base, e, ops) in [
                (10, q, ["mul (q·cos)", "neg (rotate_half q)", "cat (rotate_half q)", "mul (rotate_half(q)·sin)", "add (q rotated)"]),
                (20, kw, ["mul (k·cos)", "neg (rotate_half k)", "cat (rotate_half k)", "mul (rotate_half(k)·sin)", "add (k rotated)"]),
            ] {
                steps.push(step(ops[0], t(base, e), vec![]));
                steps.push(step(ops[1], t(base + 1, e / 2), vec![]));
                steps.push(step(ops[2], t(base + 2, e), vec![t(base + 1, e / 2)]));
                steps.push(step(ops[3], t(base + 3, e), vec![t(base + 2, e)]));
                steps.push(step(ops[4], t(base + 4, e), vec![t(base, e), t(base + 3, e)]));
            }
            // apply_rotary_pos_emb returns: the names rebind, the projections go.
            steps.last_mut().expect("rotary steps").frees.extend([t(0, q), t(1, kw)]);
            key = t(24, kw);
        }
        let cache_update = if cached_keys.is_some() { vec![key, t(2, kw)] } else { vec![] };
        steps.push(step("reshape (repeat_kv K)", t(30, kv), cache_update));
        steps.push(step("reshape (repeat_kv V)", t(31, kv), vec![]));
        steps.push(step("matmul (Q·Kᵀ)", t(32, p), vec![]));
        steps.push(step("mul (scores·scaling)", t(33, p), vec![t(32, p)]));
        let mut scores = t(33, p);
        if self.causal {
            steps.push(step("add (scores + mask)", t(34, p), vec![scores]));
            scores = t(34, p);
        }
        steps.push(step("softmax", t(35, p), vec![scores]));
        steps.push(step("matmul (probabilities·V)", t(36, q), vec![]));
        steps.push(step("contiguous (context)", t(37, q), vec![t(30, kv), t(31, kv), t(36, q)]));
        Ok(Some(ForwardPass { steps, returned: Some(t(35, p)) }))
    }

    /// Shared by every layer ([`SharedTensor`]): with `rotary`, the rotary `cos`/`sin`
    /// ([`Self::cos_sin`]); on Hugging Face's eager path with `causal`, the additive causal
    /// mask `LlamaModel.forward` builds once (`create_causal_mask`: N×1×L×L values of the
    /// activation dtype; N×1×1×c' at a decode step over c' cached keys). Measured: the tiny Llama's inference trace (4,096 B at batch 1,
    /// 32,768 at batch 8). Hugging Face's position ids (L int64) are not counted.
    fn forward_shared(
        &self,
        inputs: &[Shape],
        _output: &Shape,
        cached_keys: Option<u64>,
    ) -> Result<Vec<SharedTensor>, KindError> {
        let x = &inputs[0];
        let mut v = Vec::new();
        if self.rotary {
            v.push(self.cos_sin(x.0[1], x.0[2])?);
        }
        if self.causal && self.hf_eager_grouped(inputs) {
            // N×1×L×keys: at a decode step, one query row over the cached keys.
            let keys = cached_keys.map_or(x.0[1], |c| self.keys_scored(c));
            let elements = checked_product(&[x.0[0], x.0[1], keys])?;
            v.push(SharedTensor { elements, dtype: SavedDType::Activation, what: "causal mask" });
        }
        Ok(v)
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let q = &inputs[0];
        let k = inputs.get(1).unwrap_or(q);
        let v = inputs.get(2).unwrap_or(k);
        for (s, what) in [(q, "query"), (k, "key"), (v, "value")] {
            expect_rank(s, 3, &format!("{what}: N×L×D"))?;
        }
        let (n, lq, d) = (q.0[0], q.0[1], q.0[2]);
        if let Some(want) = self.embed_dim {
            if want != d {
                return Err(KindError::field("embed_dim", format!("expected embed_dim {want}, got query {q}")));
            }
        }
        if d % self.heads != 0 {
            return Err(KindError::field(
                "heads",
                format!("heads {} does not divide the embedding size {d}", self.heads),
            ));
        }
        if self.rotary && !(d / self.heads).is_multiple_of(2) {
            return Err(KindError::field(
                "rotary",
                format!("rotary needs an even head size, got {d}/{} = {}", self.heads, d / self.heads),
            ));
        }
        if k.0[0] != n || v.0[0] != n {
            return Err(KindError::layer(format!("query {q}, key {k} and value {v} differ in batch size")));
        }
        if k.0[1] != v.0[1] {
            return Err(KindError::layer(format!("key {k} and value {v} differ in sequence length")));
        }
        let (lk, kd, vd) = (k.0[1], k.0[2], v.0[2]);
        let w = self.kv_width(d);
        let dd = mul(d, d, "weights")?;
        let weights = [dd, mul(w, kd, "weights")?, mul(w, vd, "weights")?, dd]
            .into_iter()
            .try_fold(0u64, |a, w| add(a, w, "weights"))?;
        let biases = if self.bias { add(mul(2, d, "biases")?, mul(2, w, "biases")?, "biases")? } else { 0 };
        let mut params = add(weights, biases, "params")?;
        let mut adapter_macs = 0u64;
        if let Some(l) = &self.lora {
            for (rows, inf, outf) in self.lora_projections(q, k, v)? {
                params = add(params, l.params(inf, outf)?, "params")?;
                adapter_macs = add(adapter_macs, l.macs(rows, inf, outf)?, "MACs")?;
            }
        }
        let proj = [
            checked_product(&[lq, d, d])?,
            checked_product(&[lk, kd, w])?,
            checked_product(&[lk, vd, w])?,
            checked_product(&[lq, d, d])?,
        ]
        .into_iter()
        .try_fold(0u64, |a, m| add(a, m, "MACs"))?;
        let macs = [mul(n, proj, "MACs")?, self.score_macs(n, lq, lk, d)?, adapter_macs]
            .into_iter()
            .try_fold(0u64, |a, m| add(a, m, "MACs"))?;
        Ok(Cost { output: q.clone(), params, buffers: 0, macs })
    }
    fn arity(&self) -> (usize, usize) {
        (1, 3)
    }
}

impl crate::candle::build::Build for MultiHeadAttention {
    /// PyTorch `nn.MultiheadAttention` (batch_first) from ops that backprop: Q, K, V projections
    /// (`q_proj`, `k_proj`, `v_proj`: D×D, D×kdim, D×vdim, plus biases), heads split by reshape to
    /// `N×L×H×(D/H)` and transpose to `N×H×L×(D/H)` (contiguous copies), scores `Q·Kᵀ/√(D/H)`,
    /// an additive −∞ mask above the diagonal when `causal`, `candle_nn::ops::softmax(_, 3)`
    /// (softmax_last_dim has no backward), `P·V`, heads merged, then `out_proj` (D×D).
    /// Weights uniform in ±1/√fan_in. Grouped-query: K and V project to W_kv, split into
    /// `kv_heads` heads, each repeated `heads/kv_heads` times (broadcast, then a contiguous copy,
    /// as `repeat_kv`). Rotary: `x·cos + rotate_half(x)·sin` on the Q and K heads (Hugging
    /// Face's `apply_rotary_pos_emb`, angles `p·θ^(−2i/d_h)` repeated over both halves), tables
    /// built once. Window: the causal mask also hides keys `j ≤ i − window`.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::Tensor;
        use candle_nn::Module;
        let q = cx.input(0);
        let k = if cx.inputs.len() > 1 { cx.input(1) } else { q.clone() };
        let v = if cx.inputs.len() > 2 { cx.input(2) } else { k.clone() };
        let (lq, d, lk) = (q[1], q[2], k[1]);
        let (kd, vd) = (k[2], v[2]);
        let h = self.heads as usize;
        let dh = d / h;
        let kvh = self.kv_heads.map_or(h, |k| k as usize);
        let wkv = kvh * dh;
        // LoRA: the projections are frozen (plain tensors), each target gets trainable A and B.
        let trainable = cx.trainable;
        cx.trainable = trainable && self.lora.is_none();
        let mut proj = |name: &str, inf: usize, outf: usize| -> candle_core::Result<candle_nn::Linear> {
            let bound = 1.0 / (inf as f64).sqrt();
            let w = cx.param(&format!("{name}.weight"), &[outf, inf], bound)?;
            let b = if self.bias { Some(cx.param(&format!("{name}.bias"), &[outf], bound)?) } else { None };
            Ok(candle_nn::Linear::new(w, b))
        };
        let (pq, pk, pv, po) =
            (proj("q_proj", d, d)?, proj("k_proj", kd, wkv)?, proj("v_proj", vd, wkv)?, proj("out_proj", d, d)?);
        cx.trainable = trainable;
        type Adapter = Option<(candle_nn::Linear, candle_nn::Linear, f64)>;
        let mut adapters: [Adapter; 4] = [None, None, None, None];
        if let Some(l) = &self.lora {
            let r = l.rank as usize;
            for t in &l.targets {
                let (i, name, inf, outf) = match t {
                    Target::Q => (0, "q_proj", d, d),
                    Target::K => (1, "k_proj", kd, wkv),
                    Target::V => (2, "v_proj", vd, wkv),
                    Target::O => (3, "out_proj", d, d),
                };
                let a = cx.param(&format!("{name}.lora_A.weight"), &[r, inf], 1.0 / (inf as f64).sqrt())?;
                let b = cx.param(&format!("{name}.lora_B.weight"), &[outf, r], 1.0 / (r as f64).sqrt())?;
                adapters[i] = Some((candle_nn::Linear::new(a, None), candle_nn::Linear::new(b, None), l.scaling()));
            }
        }
        // `base(x) + ((x·Aᵀ)·Bᵀ)·α/r` where the projection has an adapter.
        let apply = move |base: &candle_nn::Linear, ad: &Adapter, x: &Tensor| -> candle_core::Result<Tensor> {
            let y = base.forward(x)?;
            match ad {
                Some((a, b, scaling)) => y + (b.forward(&a.forward(x)?)? * *scaling)?,
                None => Ok(y),
            }
        };
        let window = self.window.map(|w| w as usize);
        let mask = if self.causal {
            let hide = move |i: usize, j: usize| j > i || window.is_some_and(|w| j + w <= i);
            let m: Vec<f64> = (0..lq)
                .flat_map(|i| (0..lk).map(move |j| if hide(i, j) { f64::NEG_INFINITY } else { 0.0 }))
                .collect();
            Some(Tensor::from_vec(m, (1, 1, lq, lk), cx.device)?.to_dtype(cx.dtype)?)
        } else {
            None
        };
        let rope = if self.rotary {
            let table = |l: usize, f: fn(f64) -> f64| -> candle_core::Result<Tensor> {
                let half = dh / 2;
                let v: Vec<f64> = (0..l)
                    .flat_map(|p| {
                        (0..dh).map(move |c| {
                            let i = (c % half) as f64;
                            f(p as f64 * self.rope_theta.powf(-2.0 * i / dh as f64))
                        })
                    })
                    .collect();
                Tensor::from_vec(v, (1, 1, l, dh), cx.device)?.to_dtype(cx.dtype)
            };
            Some(((table(lq, f64::cos)?, table(lq, f64::sin)?), (table(lk, f64::cos)?, table(lk, f64::sin)?)))
        } else {
            None
        };
        let rotate = move |x: &Tensor, cs: &(Tensor, Tensor)| -> candle_core::Result<Tensor> {
            let half = dh / 2;
            let x1 = x.narrow(3, 0, half)?;
            let x2 = x.narrow(3, half, half)?;
            let rot = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
            x.broadcast_mul(&cs.0)? + rot.broadcast_mul(&cs.1)?
        };
        let rep = h / kvh;
        let scale = 1.0 / (dh as f64).sqrt();
        Ok(Box::new(move |xs: &[Tensor], _| {
            let xq = &xs[0];
            let xk = xs.get(1).unwrap_or(xq);
            let xv = xs.get(2).unwrap_or(xk);
            let n = xq.dim(0)?;
            let split = |t: Tensor, l: usize, heads: usize| t.reshape((n, l, heads, dh))?.transpose(1, 2)?.contiguous();
            let repeat = |t: Tensor, l: usize| -> candle_core::Result<Tensor> {
                if rep == 1 {
                    return Ok(t);
                }
                t.reshape((n, kvh, 1, l, dh))?.broadcast_as((n, kvh, rep, l, dh))?.contiguous()?.reshape((n, h, l, dh))
            };
            let mut qh = split(apply(&pq, &adapters[0], xq)?, lq, h)?;
            let mut kh = split(apply(&pk, &adapters[1], xk)?, lk, kvh)?;
            if let Some((cq, ck)) = &rope {
                qh = rotate(&qh, cq)?;
                kh = rotate(&kh, ck)?;
            }
            let kh = repeat(kh, lk)?;
            let vh = repeat(split(apply(&pv, &adapters[2], xv)?, lk, kvh)?, lk)?;
            let mut s = (qh.matmul(&kh.t()?)? * scale)?;
            if let Some(m) = &mask {
                s = s.broadcast_add(m)?;
            }
            let p = candle_nn::ops::softmax(&s, 3)?;
            let ctx = p.matmul(&vh)?.transpose(1, 2)?.contiguous()?.reshape((n, lq, d))?;
            apply(&po, &adapters[3], &ctx)
        }))
    }

    /// Multi-head attention as built above (O_q = N·L_q·D·s,
    /// O_k = N·L_k·D·s, S = N·H·L_q·L_k·s):
    /// - training keeps, per projection, the matmul result, the bias sum and the head-split
    ///   contiguous copy (`Q`: O_q each; `K`, `V`: O_k each); scores, the scaled scores, the masked
    ///   scores (causal), and softmax's `x − max`, `exp` and quotient (S each) plus its two
    ///   per-row reductions; `P·V` and its merged-heads copy (O_q each); the output projection's
    ///   matmul and bias sum.
    /// - inference peaks either while `V` is projected (Q and K heads live, matmul + bias + copy;
    ///   grouped: its copy to every head beside its split) or while Q or K is rotated, or inside
    ///   the softmax (Q, K, V heads, scores and softmax's three S-sized values) or in the output
    ///   projection (Q, K, V heads, scores, probabilities, context, matmul, bias sum).
    /// - grouped-query: K and V are projected at W_kv (O_kv = N·L_k·W_kv·s each, per
    ///   projection) and then copied to every head (O_k each);
    /// - rotary: per rotated tensor `x·cos` (X), `−x₂` (X/2), the `cat` (X), `·sin` (X) and the
    ///   sum (X), for Q (O_q) and K (O_kv); the cos and sin tables are constants
    ///   (`2·(L_q + L_k)·d_h·s`).
    /// - `lora`: per adapted projection (rows R, output width W) `x·Aᵀ` (R·r), `·Bᵀ`, its scaled
    ///   copy and the sum with the base output (R·W each) are kept; the peaks add the largest
    ///   adapter's `R·r + 3·R·W` (approximate: not yet checked against a measurement).
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{CandleLayer, MATMUL_TRANSIENT_BYTES};
        let (m, o, s) = (self, at.o(), at.s);
        let q = &at.inputs[0].0;
        let k = at.inputs.get(1).map_or(q, |k| &k.0);
        let (n, lq, d, lk) = (q[0], q[1], o[2], k[1]);
        let (oq, ok) = (n * lq * d * s, n * lk * d * s);
        let okv = n * lk * m.kv_width(d) * s;
        let repeated = if m.grouped() { 2 * ok } else { 0 };
        let rotated = if m.rotary { 9 * (oq + okv) / 2 } else { 0 };
        let sc = n * m.heads * lq * lk * s;
        let small = n * m.heads * lq * s;
        // With one head the split `N×L×1×D → N×1×L×D` is already contiguous (candle ignores
        // size-1 dims), so there is no head-split copy and no merged-heads copy.
        let copy = u64::from(m.heads > 1);
        let per = 1 + u64::from(m.bias) + copy;
        let retained = per * oq
            + 2 * per * okv
            + repeated
            + rotated
            + (5 + u64::from(m.causal)) * sc
            + 2 * small
            + (1 + copy) * oq
            + if m.bias { 2 * oq } else { oq };
        // Inference frees as it goes: the rotation replaces Q and K (its temporaries live while
        // it runs: `x`, the `cat`, `x·cos`, `rot·sin` and their sum, 5·X), and `repeat_kv`
        // replaces K and V at W_kv by their copies to every head, so after the projections the
        // heads are Q, K and V at full width.
        let heads = oq + 2 * ok;
        let proj_v = oq + ok + per * okv + MATMUL_TRANSIENT_BYTES;
        let repeat_v = if m.grouped() { oq + ok + okv + ok } else { 0 };
        let rotation = if m.rotary { (5 * oq).max(oq + 5 * okv) } else { 0 };
        let softmax = heads + 4 * sc + 2 * small;
        // The context: `P·V` and its merged-heads copy while it is made, then the copy beside
        // the output projection's matmul (and bias sum).
        let out_proj = heads + 2 * sc + ((1 + copy) * oq).max(oq + if m.bias { 2 * oq } else { oq });
        // The causal mask: an L_q×L_k additive constant built once with the weights.
        let constants = if m.causal { lq * lk * s } else { 0 }
            + if m.rotary { 2 * (lq + lk) * (d / m.heads.max(1)) * s } else { 0 };
        let (mut kept, mut most) = (0, 0);
        if let Some(l) = &m.lora {
            let (qs, ks) = (&at.inputs[0], at.inputs.get(1).unwrap_or(&at.inputs[0]));
            let vs = at.inputs.get(2).unwrap_or(ks);
            for (rows, _, outf) in m.lora_projections(qs, ks, vs).unwrap_or_default() {
                let t = rows * l.rank * s + 3 * rows * outf * s;
                kept += t;
                most = most.max(t);
            }
        }
        CandleLayer {
            output: oq,
            peak: proj_v.max(repeat_v).max(rotation).max(softmax).max(out_proj) + most,
            retained: retained + kept,
            constants,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parse;
    use super::*;

    fn s(v: &[u64]) -> Shape {
        Shape(v.to_vec())
    }

    #[test]
    fn lora_on_llama_3_8b_attention() {
        // Llama-3-8B self_attn (D 4096, 32 heads, 8 kv heads: W_kv 1024, no bias) on 1×128×4096
        // with LoRA r = 16 on q, k, v, o: A and B per target (r·in + out·r)
        //   q 16·4096 + 4096·16 = 131,072; k, v 16·4096 + 1024·16 = 81,920 each; o 131,072
        //   → 425,984 trainable per layer; ×32 layers = 13,631,488, PEFT's
        //   print_trainable_parameters for this config (tests/data/lora_kv_reference.json).
        // MACs: rows·in·r + rows·r·out, 128 rows each: q, o 8,388,608 + 8,388,608 = 16,777,216;
        //   k, v 8,388,608 + 2,097,152 = 10,485,760 → 54,525,952 over the base's.
        let y = "{heads: 32, kv_heads: 8, bias: false, causal: true, lora: {rank: 16, alpha: 32, targets: [q, k, v, o]}}";
        let m = parse::<MultiHeadAttention>(y).unwrap();
        let base = parse::<MultiHeadAttention>("{heads: 32, kv_heads: 8, bias: false, causal: true}").unwrap();
        let x = [s(&[1, 128, 4096])];
        let (c, c0) = (m.analyze(&x).unwrap(), base.analyze(&x).unwrap());
        assert_eq!(c.params - c0.params, 425_984);
        assert_eq!(c.macs - c0.macs, 54_525_952);
        let ad = m.adapter_tensors(&x).unwrap().unwrap();
        assert_eq!(ad, vec![65_536, 65_536, 65_536, 16_384, 65_536, 16_384, 65_536, 65_536]);
        let all = m.param_tensors(&x).unwrap();
        assert_eq!(all.iter().sum::<u64>(), c.params);
        assert_eq!(base.adapter_tensors(&x).unwrap(), None);
        // Saved: x·Aᵀ of each target, 4 · 128·16 = 8,192 elements more.
        let count = |v: Vec<Saved>| {
            v.iter().map(|t| if let Saved::New { elements, .. } = t { *elements } else { 0 }).sum::<u64>()
        };
        let (sv, sv0) = (m.saved(&x, &c.output).unwrap(), base.saved(&x, &c0.output).unwrap());
        assert_eq!(count(sv) - count(sv0), 8_192);
    }

    #[test]
    fn lora_targets_default_to_q_v_and_are_checked() {
        // PEFT's default target_modules for LLaMA-family models: q_proj, v_proj.
        let m = parse::<MultiHeadAttention>("{heads: 2, lora: {rank: 2}}").unwrap();
        assert_eq!(m.lora.unwrap().targets, vec![Target::Q, Target::V]);
        let e = parse::<MultiHeadAttention>("{heads: 2, lora: {rank: 2, targets: [q, x]}}").unwrap_err();
        assert!(e.to_string().contains("`lora.targets`: expected q, k, v or o, got"), "{e}");
        let e = parse::<MultiHeadAttention>("{heads: 2, lora: {rank: 2, targets: [q, q]}}").unwrap_err();
        assert!(e.to_string().contains("q is listed twice"), "{e}");
        let e = parse::<MultiHeadAttention>("{heads: 2, lora: {rank: 2, targets: []}}").unwrap_err();
        assert!(e.to_string().contains("expected a non-empty list"), "{e}");
    }

    #[test]
    fn decode_step_scores_every_cached_key() {
        // Llama-3-8B, one query over 8,192 keys: 2·1·1·8192·4096 = 67,108,864 MACs (q·Kᵀ and
        // attn·V); with a 4,096 window, half.
        let m = parse::<MultiHeadAttention>("{heads: 32, kv_heads: 8, causal: true}").unwrap();
        assert_eq!(m.score_macs(1, 1, 8192, 4096).unwrap(), 67_108_864);
        let w = parse::<MultiHeadAttention>("{heads: 32, causal: true, window: 4096}").unwrap();
        assert_eq!(w.score_macs(1, 1, 8192, 4096).unwrap(), 33_554_432);
    }

    #[test]
    fn acceptance_self_attention_heads_do_not_matter() {
        // embed 100, biases, on 1×1000×100: projections 4·1000·100·100 = 40,000,000,
        // QKᵀ + A·V 2·1000·1000·100 = 200,000,000 → 240,000,000 MACs;
        // params 4·100·100 + 4·100 = 40,400.
        for h in [1, 4] {
            let a = parse::<MultiHeadAttention>(&format!("{{heads: {h}}}")).unwrap();
            let c = a.analyze(&[s(&[1, 1000, 100])]).unwrap();
            assert_eq!((c.output.clone(), c.params, c.macs), (s(&[1, 1000, 100]), 40_400, 240_000_000), "heads {h}");
        }
    }

    #[test]
    fn vit_b_16_layer_and_causal() {
        // ViT-B/16 attention: 4·197·768·768 = 464,781,312 + 2·197²·768 = 59,610,624 → 524,391,936;
        // ×12 layers the matmuls are 715,327,488 (shared/reference/README.md). Params 4·768² + 4·768 = 2,362,368.
        let a = parse::<MultiHeadAttention>("{heads: 12, causal: true}").unwrap();
        let c = a.analyze(&[s(&[1, 197, 768])]).unwrap();
        assert_eq!((c.params, c.macs), (2_362_368, 524_391_936));
    }

    #[test]
    fn cross_attention_and_errors() {
        // q 1×10×16, kv 1×20×8: projections 10·16·16 + 20·8·16·2 + 10·16·16 = 10,240,
        // scores 2·10·20·16 = 6,400 → 16,640; params 256 + 128 + 128 + 256 + 64 = 832.
        let a = parse::<MultiHeadAttention>("{heads: 2}").unwrap();
        let c = a.analyze(&[s(&[1, 10, 16]), s(&[1, 20, 8])]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (s(&[1, 10, 16]), 832, 16_640));
        let e = parse::<MultiHeadAttention>("{heads: 3}").unwrap().analyze(&[s(&[1, 10, 16])]).unwrap_err();
        assert_eq!((e.field, e.message.as_str()), (Some("heads"), "heads 3 does not divide the embedding size 16"));
        let e = a.analyze(&[s(&[1, 10, 16]), s(&[1, 20, 8]), s(&[1, 21, 8])]).unwrap_err();
        assert!(e.message.contains("differ in sequence length"), "{}", e.message);
    }

    #[test]
    fn llama_3_8b_grouped_query_attention() {
        // Llama-3-8B self_attn (config.json: hidden 4096, 32 heads, 8 kv heads, no bias):
        // W_kv = 8·128 = 1,024; params 2·4096² + 2·4096·1024 = 33,554,432 + 8,388,608 = 41,943,040.
        // On 1×128×4096: projections 128·41,943,040 = 5,368,709,120; scores and context
        // 2·128·128·4096 = 134,217,728 → 5,502,926,848 MACs.
        let a = parse::<MultiHeadAttention>("{heads: 32, kv_heads: 8, bias: false, causal: true, rotary: true}").unwrap();
        let c = a.analyze(&[s(&[1, 128, 4096])]).unwrap();
        assert_eq!((c.params, c.macs), (41_943_040, 5_502_926_848));
        assert_eq!(a.param_tensors(&[s(&[1, 128, 4096])]).unwrap(), vec![16_777_216, 4_194_304, 4_194_304, 16_777_216]);
        // Multi-query with biases, D 8, 2 heads, 1 kv head: W_kv 4; params 64 + 32 + 32 + 64 +
        // (8 + 4 + 4 + 8) = 216.
        let c = parse::<MultiHeadAttention>("{heads: 2, kv_heads: 1}").unwrap().analyze(&[s(&[1, 3, 8])]).unwrap();
        assert_eq!(c.params, 216);
    }

    #[test]
    fn sliding_window_counts_the_window_only() {
        // Mistral-7B at 8,192 tokens, window 4,096: scores + context 2·8192·4096·4096 =
        // 274,877,906,944 instead of 2·8192²·4096 = 549,755,813,888; projections
        // 8192·(2·4096² + 2·4096·1024) = 343,597,383,680. A window ≥ L changes nothing.
        let a = parse::<MultiHeadAttention>("{heads: 32, kv_heads: 8, bias: false, causal: true, window: 4096}").unwrap();
        assert_eq!(a.analyze(&[s(&[1, 8192, 4096])]).unwrap().macs, 343_597_383_680 + 274_877_906_944);
        let full = parse::<MultiHeadAttention>("{heads: 32, kv_heads: 8, bias: false, causal: true}").unwrap();
        assert_eq!(a.analyze(&[s(&[1, 128, 4096])]).unwrap().macs, full.analyze(&[s(&[1, 128, 4096])]).unwrap().macs);
    }

    #[test]
    fn grouped_rotary_saved_and_errors() {
        // 1×4×8, 2 heads, 1 kv head (W_kv 4), math path: Q 32 and K, V repeated to both heads
        // 32 each (rotary adds nothing); probabilities 2·4·4 = 32; context 32.
        // Fused path: Q 32 and K, V at W_kv 16 each; log-sum-exp 2·4 = 8; context 32.
        let x = s(&[1, 4, 8]);
        let news = |yaml: &str| -> Vec<u64> {
            parse::<MultiHeadAttention>(yaml)
                .unwrap()
                .saved(std::slice::from_ref(&x), &x)
                .unwrap()
                .iter()
                .filter_map(|s| match s {
                    Saved::New { elements, .. } => Some(*elements),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(news("{heads: 2, kv_heads: 1, rotary: true}"), vec![32, 32, 32, 32, 32]);
        assert_eq!(news("{heads: 2, kv_heads: 1}"), vec![32, 32, 32, 32, 32]);
        assert_eq!(news("{heads: 2, kv_heads: 1, rotary: true, need_weights: false}"), vec![32, 16, 16, 8, 32]);
        // Rotary: cos and sin of 4 positions × head size 4, 2·4·4 = 32, shared by every layer.
        let rotary = parse::<MultiHeadAttention>("{heads: 2, kv_heads: 1, rotary: true}").unwrap();
        let shared = Saved::Shared { elements: 32, dtype: SavedDType::Activation, what: "rotary cos, sin" };
        assert!(rotary.saved(std::slice::from_ref(&x), &x).unwrap().contains(&shared));
        assert!(parse::<MultiHeadAttention>("{heads: 4, kv_heads: 3}").unwrap_err().to_string().contains("divisor"));
        assert!(parse::<MultiHeadAttention>("{window: 4}").unwrap_err().to_string().contains("causal"));
        let e = parse::<MultiHeadAttention>("{heads: 2, rotary: true}").unwrap().analyze(&[s(&[1, 3, 6])]).unwrap_err();
        assert_eq!(e.field, Some("rotary"));
    }

    #[test]
    fn saves_qkv_probabilities_and_context() {
        // ViT-B/16 self-attention, 1×197×768, 12 heads: Q, K, V 197·768 = 151,296 each;
        // probabilities 12 · 197 · 197 = 465,708; context 197·768 = 151,296.
        let k = super::super::test_util::parse::<MultiHeadAttention>("{heads: 12}").unwrap();
        let x = Shape(vec![1, 197, 768]);
        let s = k.saved(std::slice::from_ref(&x), &x).unwrap();
        assert_eq!(s[0], Saved::Input(0));
        let news: Vec<u64> = s
            .iter()
            .filter_map(|s| match s {
                Saved::New { elements, .. } => Some(*elements),
                _ => None,
            })
            .collect();
        assert_eq!(news, vec![151_296, 151_296, 151_296, 465_708, 151_296]);
    }

    #[test]
    fn grouped_math_path_forward_ops() {
        // 1×4×8, 2 heads, 1 kv head, rotary, causal: Q 32, K_w 16, P 2·4·4 = 32 elements.
        // Live intermediates op by op: q, k, v 64; q's rotation peaks at 160 (q·cos, the
        // rotate_half cat or the ·sin product, the sum) and leaves Q rotated; k's at 144; then
        // q, k and the products go: 64 (Q, K rotated, V); K, V repeated 128; scores 160; scaled,
        // masked, softmax 192 each (the previous one dropped after each); the context 192, made
        // contiguous 224 (the peak), after which the repeated K, V and the context go: 128.
        let x = s(&[1, 4, 8]);
        let k = parse::<MultiHeadAttention>("{heads: 2, kv_heads: 1, rotary: true, causal: true, bias: false}").unwrap();
        let out = k.analyze(std::slice::from_ref(&x)).unwrap().output;
        let pass = k.forward_pass(std::slice::from_ref(&x), &out, None).unwrap().unwrap();
        let (mut live, mut peak) = (0u64, 0u64);
        for step in &pass.steps {
            live += step.alloc.map_or(0, |t| t.elements);
            peak = peak.max(live);
            live -= step.frees.iter().map(|t| t.elements).sum::<u64>();
        }
        assert_eq!((peak, live), (224, 128));
        // Left when o_proj has run: Q rotated 32, K rotated 16, V 16, the context 32 and the
        // probabilities 32, returned.
        assert_eq!(pass.returned.map(|t| t.elements), Some(32));
        // Shared by every layer: cos/sin 2·4·4 = 32, the mask 1·4·4 = 16.
        let shared: Vec<u64> = k.forward_shared(std::slice::from_ref(&x), &out, None).unwrap().iter().map(|t| t.elements).collect();
        assert_eq!(shared, [32, 16]);
        // nn.MultiheadAttention (no kv_heads) and the fused path are one op.
        for yaml in ["{heads: 2}", "{heads: 2, kv_heads: 1, need_weights: false}"] {
            let k = parse::<MultiHeadAttention>(yaml).unwrap();
            assert_eq!(k.forward_pass(std::slice::from_ref(&x), &out, None).unwrap(), None, "{yaml}");
        }
    }

    #[test]
    fn grouped_math_path_backward_nodes() {
        // 1×4×8, 2 heads, 1 kv head, rotary, no bias: Q 32, K_w 16, P 2·4·4 = 32. o_proj, P·V,
        // softmax, scaling, Q·Kᵀ, the two repeat_kv sums, two rotations, then a copy and a
        // projection each for V, K, Q: 15 nodes; saved Q, K, V, probabilities, context (1, 2,
        // 3, 5, 6; 4 is cos/sin, shared) each freed once; the four weights' gradients.
        let x = s(&[1, 4, 8]);
        let k = parse::<MultiHeadAttention>("{heads: 2, kv_heads: 1, rotary: true, bias: false, causal: true}").unwrap();
        let nodes = k.backward_nodes(std::slice::from_ref(&x), &x).unwrap().unwrap();
        assert_eq!(nodes.len(), 15);
        let mut freed: Vec<usize> = nodes
            .iter()
            .flat_map(|n| &n.frees)
            .filter_map(|t| match t {
                BwdTensor::Saved(k) => Some(*k),
                _ => None,
            })
            .collect();
        freed.sort();
        assert_eq!(freed, [1, 2, 3, 5, 6]);
        // P·V's node: V's gradient as the matmul reads it (Q-sized, 32) and P's (32).
        let t = |id| BwdTensor::Temp { id, elements: 32, dtype: SavedDType::Activation };
        assert_eq!(nodes[1].allocs, [t(1), t(2)]);
        // Not measured, so one node: the fused path, full heads, two inputs, LoRA.
        for yaml in ["{heads: 2, kv_heads: 1, need_weights: false}", "{heads: 2}", "{heads: 2, kv_heads: 1, lora: {rank: 2}}"] {
            assert_eq!(parse::<MultiHeadAttention>(yaml).unwrap().backward_nodes(std::slice::from_ref(&x), &x).unwrap(), None, "{yaml}");
        }
        let two = [x.clone(), x.clone()];
        assert_eq!(parse::<MultiHeadAttention>("{heads: 2, kv_heads: 1}").unwrap().backward_nodes(&two, &x).unwrap(), None);
    }
}
