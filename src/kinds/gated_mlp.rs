//! `gated_mlp`: the SwiGLU feed-forward block of Llama, Mistral and their kin
//! (Shazeer 2020, "GLU Variants Improve Transformer"; Hugging Face `LlamaMLP`):
//! `down(silu(gate(x)) ⊙ up(x))`, three linear layers in one kind.
//!
//! Why one kind rather than `linear`s, `silu` and `mul`: the gate and up projections read the
//! same input, which a layer list can express only with a branch (`inputs:`) per block; one kind
//! keeps a Llama spec one line per sub-module, names the three projections as Hugging Face
//! does (`gate_proj`, `up_proj`, `down_proj`), and is the unit `mixture_of_experts` repeats.
//!
//! Input `…×D`, output `…×D_out` (`out_features`, default D). With `hidden` = H and R rows
//! (the product of the leading dimensions):
//! - params `2·D·H + H·D_out` (+ `2·H + D_out` biases when `bias`, default false as Llama);
//! - MACs `R·(2·D·H + H·D_out)`: the three matmuls (the SiLU and the product are elementwise,
//!   not counted, as for every activation).

use super::{
    BackwardNode, BwdTensor, Cost, ForwardPass, ForwardStep, FwdTensor, KindError, KindSpec, Op, Peer, Saved, SavedDType,
    Split, SplitAxis,
};
use crate::error::SpecError;
use crate::shape::{add, checked_product, mul, Shape};
use crate::spec::fields::Fields;

/// A SwiGLU feed-forward block.
#[derive(Debug, Clone, PartialEq)]
pub struct GatedMlp {
    /// Hidden (intermediate) size H of the gate and up projections.
    pub hidden: u64,
    /// Output size; `None` means the input's last dimension.
    pub out_features: Option<u64>,
    /// Biases on the three projections (default false).
    pub bias: bool,
}

impl KindSpec for GatedMlp {
    const NAME: &'static str = "gated_mlp";
    const FIELDS: &'static [&'static str] = &["hidden", "out_features", "bias"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(GatedMlp {
            hidden: f.req_pos("hidden")?,
            out_features: f.pos("out_features")?,
            bias: f.bool("bias")?.unwrap_or(false),
        })
    }
}

impl GatedMlp {
    /// Parameter tensors for input width `d`: `gate_proj.weight` (H·D), `up_proj.weight`
    /// (H·D), `down_proj.weight` (D_out·H), then their biases (H, H, D_out) when `bias`.
    pub fn tensors(&self, d: u64) -> Result<Vec<u64>, KindError> {
        let (h, o) = (self.hidden, self.out_features.unwrap_or(d));
        let hd = mul(h, d, "weights")?;
        let mut t = vec![hd, hd, mul(o, h, "weights")?];
        if self.bias {
            t.extend([h, h, o]);
        }
        Ok(t)
    }

    /// Values of each hidden tensor (gate, silu(gate), up, their product) for input `x`:
    /// rows (the product of the leading dimensions) × H.
    fn hidden_elements(&self, x: &Shape) -> Result<u64, KindError> {
        let rows = x.elements()? / x.last().max(1);
        Ok(checked_product(&[rows, self.hidden])?)
    }

    /// MACs per row (token) for input width `d`: `2·D·H + H·D_out`.
    pub fn macs_per_row(&self, d: u64) -> Result<u64, KindError> {
        let (h, o) = (self.hidden, self.out_features.unwrap_or(d));
        Ok(add(mul(2, mul(d, h, "MACs")?, "MACs")?, mul(h, o, "MACs")?, "MACs")?)
    }
}

impl Op for GatedMlp {
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        self.tensors(inputs[0].last())
    }

    /// Peers: a container of three `nn.Linear`s (not a torchinfo leaf); the peers' per-class
    /// linear rules read one weight's shape from the layer's, so it is not given their class
    /// and they count it as netstat does.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { torchinfo_leaf: false, ..Peer::OTHER }
    }

    /// Split along the last dimension; every device needs the whole input (dense).
    fn split(&self, _devices: u64) -> Split {
        Split { axis: SplitAxis::Last, gathers: true }
    }

    /// Saved for backward, as PyTorch's autograd keeps them for `LlamaMLP`: the input (read by
    /// `gate_proj` and `up_proj` for their weight gradients), the gate projection (SiLU saves its
    /// input), SiLU's output and the up projection (the product saves both factors), and the
    /// product (read by `down_proj`): four tensors of `R·H` values, listed apart (indices 1–4)
    /// because each is freed by its own node ([`Op::backward_nodes`]).
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        let m = self.hidden_elements(&inputs[0])?;
        let new = |what| Saved::New { elements: m, dtype: SavedDType::Activation, what };
        Ok(vec![Saved::Input(0), new("gate projection"), new("silu(gate)"), new("up projection"), new("silu(gate)·up")])
    }

    /// `down(silu(gate(x)) ⊙ up(x))`'s backward as PyTorch's autograd runs it (nodes in reverse
    /// creation order; M = R·H values; formulas from aten/derivatives.yaml): `down_proj`'s
    /// `MmBackward0` (weight gradient `gradᵀ·p`, then the product's gradient `grad·W` (M); frees
    /// the saved product and the output's gradient); `MulBackward0` (`grad·up` and
    /// `grad·silu(gate)`, M each; frees silu(gate) and up); `up_proj`'s `MmBackward0` (its weight
    /// gradient and the input's gradient); `SiluBackward0` (`silu_backward`, M; frees the gate
    /// projection); `gate_proj`'s `MmBackward0` (its weight gradient and a second input gradient,
    /// added into the first). A bias gradient (`grad.sum(0)`) comes with its weight's.
    /// Measured: scripts/pytorch_memory.py's allocator trace of `LlamaMLP` (torch 2.15, CPU):
    /// the batch-1 backward peak, 833,872 B, is `MulBackward0`'s.
    fn backward_nodes(&self, inputs: &[Shape], _output: &Shape) -> Result<Option<Vec<BackwardNode>>, KindError> {
        let m = self.hidden_elements(&inputs[0])?;
        let t = |id| BwdTensor::Temp { id, elements: m, dtype: SavedDType::Activation };
        // Parameter tensors: gate, up, down weights (0, 1, 2), then their biases (3, 4, 5).
        let grads = |w: usize| {
            let mut v = vec![BwdTensor::ParamGrad(w)];
            if self.bias {
                v.push(BwdTensor::ParamGrad(w + 3));
            }
            v
        };
        let node = |node, allocs: Vec<BwdTensor>, frees: Vec<BwdTensor>| BackwardNode { node, allocs, frees };
        let (x, out) = (BwdTensor::InputGrad(0), BwdTensor::OutputGrad);
        Ok(Some(vec![
            node("MmBackward0 (down_proj)", [grads(2), vec![t(0)]].concat(), vec![BwdTensor::Saved(4), out]),
            node("MulBackward0 (silu(gate)·up)", vec![t(1), t(2)], vec![BwdTensor::Saved(2), BwdTensor::Saved(3), t(0)]),
            node("MmBackward0 (up_proj)", [grads(1), vec![x]].concat(), vec![t(2)]),
            node("SiluBackward0", vec![t(3)], vec![BwdTensor::Saved(1), t(1)]),
            node("MmBackward0 (gate_proj)", [grads(0), vec![x]].concat(), vec![t(3)]),
        ]))
    }

    /// Hugging Face's `down_proj(act_fn(gate_proj(x)) * up_proj(x))` as eager PyTorch runs it
    /// without autograd (M = rows·H values each): `gate_proj` (M); `silu` (M), after which the
    /// gate is dropped; `up_proj` (M); the product (M), after which `silu(gate)` and `up` are
    /// dropped; then `down_proj` makes the output beside the product. The layer's peak is the
    /// product's end, three M live. Measured: scripts/pytorch_memory.py `trace tiny-llama 1
    /// infer` (torch 2.15, CPU): the tiny Llama's inference peak, 468,800 B, is layer 1's product.
    fn forward_pass(
        &self,
        inputs: &[Shape],
        _output: &Shape,
        _cached_keys: Option<u64>,
    ) -> Result<Option<ForwardPass>, KindError> {
        let m = self.hidden_elements(&inputs[0])?;
        let t = |id| FwdTensor { id, elements: m, dtype: SavedDType::Activation };
        let step = ForwardStep::new;
        Ok(Some(ForwardPass {
            steps: vec![
                step("linear (gate_proj)", t(0), vec![]),
                step("silu (gate)", t(1), vec![t(0)]),
                step("linear (up_proj)", t(2), vec![]),
                step("mul (silu(gate)·up)", t(3), vec![t(1), t(2)]),
            ],
            returned: None,
        }))
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        if x.rank() < 2 {
            return Err(KindError::layer(format!("expected an input N×…×D of rank ≥ 2, got {x}")));
        }
        let d = x.last();
        let rows = x.elements()? / d.max(1);
        let params = self.tensors(d)?.into_iter().try_fold(0u64, |a, t| add(a, t, "params"))?;
        let macs = mul(rows, self.macs_per_row(d)?, "MACs")?;
        let mut out = x.0.clone();
        *out.last_mut().expect("rank ≥ 2") = self.out_features.unwrap_or(d);
        Ok(Cost { output: Shape(out), params, buffers: 0, macs })
    }
}

/// Build the three projections of a gated MLP named `prefix` (`""` for the layer itself) from
/// `d` to `hidden` to `out`, weights uniform in ±1/√fan_in (PyTorch's `nn.Linear`).
pub(crate) fn build_projections(
    cx: &mut crate::candle::build::Ctx,
    prefix: &str,
    d: usize,
    hidden: usize,
    out: usize,
    bias: bool,
) -> candle_core::Result<[candle_nn::Linear; 3]> {
    let mut lin = |name: &str, inf: usize, outf: usize| -> candle_core::Result<candle_nn::Linear> {
        let bound = 1.0 / (inf as f64).sqrt();
        let w = cx.param(&format!("{prefix}{name}.weight"), &[outf, inf], bound)?;
        let b = if bias { Some(cx.param(&format!("{prefix}{name}.bias"), &[outf], bound)?) } else { None };
        Ok(candle_nn::Linear::new(w, b))
    };
    Ok([lin("gate_proj", d, hidden)?, lin("up_proj", d, hidden)?, lin("down_proj", hidden, out)?])
}

/// The forward of a gated MLP: `down(silu(gate(x)) ⊙ up(x))` on a rank-2 or rank-3 `x`.
pub(crate) fn forward(p: &[candle_nn::Linear; 3], x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
    use candle_nn::Module;
    let g = p[0].forward(x)?.silu()?;
    let u = p[1].forward(x)?;
    p[2].forward(&(g * u)?)
}

impl crate::candle::build::Build for GatedMlp {
    /// Three `candle_nn::Linear`s, `silu` and a product (higher ranks flattened to rank 3).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let x = cx.input(0);
        let d = *x.last().expect("rank ≥ 2");
        let out = self.out_features.map_or(d, |o| o as usize);
        let p = build_projections(cx, "", d, self.hidden as usize, out, self.bias)?;
        let oshape: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            let x = &xs[0];
            if x.rank() <= 3 {
                forward(&p, x)
            } else {
                forward(&p, &x.flatten_to(x.rank() - 2)?)?.reshape(oshape.as_slice())
            }
        }))
    }

    /// Candle memory (H = R·hidden·s bytes): gate matmul (+ bias), silu, up matmul (+ bias),
    /// the product (H each), then the down matmul (+ bias, O each). All kept for backward when
    /// training; in inference the gate's matmul is freed after silu, and `g * u` takes silu's
    /// and up's results by value (freed once multiplied), so the peak is the product beside
    /// them (3·H; with bias, up's matmul and bias sum beside silu's result are 3·H too) or the
    /// product beside the down projection's output (H + O, + bias sum).
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{CandleLayer, MATMUL_TRANSIENT_BYTES};
        let out = at.out();
        let x = at.x();
        let rows: u64 = x[..x.len() - 1].iter().product();
        let h = rows * self.hidden * at.s;
        let b = u64::from(self.bias);
        let retained = (2 + b) * h + (1 + b) * h + h + (1 + b) * out;
        let peak = (3 * h).max(h + (1 + b) * out + MATMUL_TRANSIENT_BYTES);
        CandleLayer { output: out, peak, retained, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
    use super::*;

    #[test]
    fn llama_3_8b_mlp() {
        // Llama-3-8B mlp, D = 4096, H = 14336: params 3·4096·14336 = 176,160,768;
        // MACs on 1×16×4096: 16 · 176,160,768 = 2,818,572,288.
        let c = run::<GatedMlp>("{hidden: 14336}", &[1, 16, 4096]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 16, 4096]), 176_160_768, 2_818_572_288));
    }

    #[test]
    fn bias_and_out_features() {
        // D 4, H 6, out 3: weights 24 + 24 + 18 = 66, biases 6 + 6 + 3 = 15 → 81; MACs 2·(24+24+18) = 132.
        let c = run::<GatedMlp>("{hidden: 6, out_features: 3, bias: true}", &[2, 4]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![2, 3]), 81, 132));
        let k = parse::<GatedMlp>("{hidden: 6, out_features: 3, bias: true}").unwrap();
        assert_eq!(k.param_tensors(&[Shape(vec![2, 4])]).unwrap(), vec![24, 24, 18, 6, 6, 3]);
    }

    #[test]
    fn saves_four_hidden_tensors() {
        // 2×5×4, H 6: rows 10 → four tensors of 10 · 6 = 60 values, 240 in all.
        let k = parse::<GatedMlp>("{hidden: 6}").unwrap();
        let x = Shape(vec![2, 5, 4]);
        let s = k.saved(std::slice::from_ref(&x), &x).unwrap();
        assert_eq!(s[0], Saved::Input(0));
        assert!(s[1..].iter().all(|s| matches!(s, Saved::New { elements: 60, .. })) && s.len() == 5);
    }

    #[test]
    fn forward_ops_peak_at_the_product() {
        // 2×5×4, H 6: M = 10·6 = 60 per intermediate. gate 60; silu 120, then the gate goes;
        // up 120; the product 180 (the peak), then silu(gate) and up go: the product, 60, is
        // left beside the output.
        let k = parse::<GatedMlp>("{hidden: 6}").unwrap();
        let x = Shape(vec![2, 5, 4]);
        let pass = k.forward_pass(std::slice::from_ref(&x), &x, None).unwrap().unwrap();
        let (mut live, mut peak) = (0u64, 0u64);
        let mut at = Vec::new();
        for step in &pass.steps {
            live += step.alloc.map_or(0, |t| t.elements);
            peak = peak.max(live);
            at.push(live);
            live -= step.frees.iter().map(|t| t.elements).sum::<u64>();
        }
        assert_eq!((at, peak, live), (vec![60, 120, 120, 180], 180, 60));
    }

    #[test]
    fn backward_nodes_free_each_saved_tensor_once() {
        // 2×5×4, H 6: M = 60. Five nodes; every saved tensor (1–4) freed once, the temporaries
        // 0–3 (M each) freed by the node that consumes them, every parameter gradient once.
        let k = parse::<GatedMlp>("{hidden: 6, bias: true}").unwrap();
        let x = Shape(vec![2, 5, 4]);
        let nodes = k.backward_nodes(std::slice::from_ref(&x), &x).unwrap().unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n.node).collect();
        assert_eq!(
            names,
            ["MmBackward0 (down_proj)", "MulBackward0 (silu(gate)·up)", "MmBackward0 (up_proj)", "SiluBackward0", "MmBackward0 (gate_proj)"]
        );
        let mut freed: Vec<usize> = nodes.iter().flat_map(|n| &n.frees).filter_map(|t| match t {
            BwdTensor::Saved(k) => Some(*k),
            _ => None,
        }).collect();
        freed.sort();
        assert_eq!(freed, [1, 2, 3, 4]);
        let mut grads: Vec<usize> = nodes.iter().flat_map(|n| &n.allocs).filter_map(|t| match t {
            BwdTensor::ParamGrad(k) => Some(*k),
            _ => None,
        }).collect();
        grads.sort();
        assert_eq!(grads, [0, 1, 2, 3, 4, 5]);
        // The product's node holds two M-sized gradients at once.
        let m = |id| BwdTensor::Temp { id, elements: 60, dtype: SavedDType::Activation };
        assert_eq!(nodes[1].allocs, [m(1), m(2)]);
    }
}
