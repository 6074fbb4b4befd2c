//! `rms_norm`: root-mean-square normalization over the trailing dimensions (PyTorch
//! `nn.RMSNorm`; Llama's `LlamaRMSNorm`): `y = x / √(mean(x²) + ε) · γ`.
//!
//! `normalized_shape` (default: the input's last dimension) must equal the input's trailing
//! dimensions. Params: `Π normalized_shape` (γ only, no β) when `elementwise_affine` (default
//! true). 0 MACs (norms are not counted, torchvision `_ops`).

use super::{
    same_shape, BackwardNode, BwdTensor, Cost, ForwardPass, ForwardStep, FwdTensor, KindError, KindSpec, Op, Peer, Saved,
    SavedDType, Split,
};
use crate::error::SpecError;
use crate::shape::{checked_product, Shape};
use crate::spec::fields::Fields;

/// An RMS normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct RmsNorm {
    /// Trailing dimensions normalized over; `None` means the input's last dimension.
    pub normalized_shape: Option<Vec<u64>>,
    /// ε added to the mean square (default 1e-6; Llama 3 uses 1e-5).
    pub eps: f64,
    /// Learnable γ (default true).
    pub elementwise_affine: bool,
}

impl KindSpec for RmsNorm {
    const NAME: &'static str = "rms_norm";
    const FIELDS: &'static [&'static str] = &["normalized_shape", "eps", "elementwise_affine"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let normalized_shape = match f.get("normalized_shape") {
            None => None,
            Some(n) => match &n.value {
                crate::spec::node::Value::Seq(items) if !items.is_empty() => {
                    let v = f.nonneg_list(n, "normalized_shape")?;
                    if v.contains(&0) {
                        return Err(f.err(n.loc, "`normalized_shape`: expected positive dimensions, got a 0"));
                    }
                    Some(v)
                }
                _ => Some(vec![f.req_pos("normalized_shape")?]),
            },
        };
        Ok(RmsNorm {
            normalized_shape,
            eps: f.float("eps")?.unwrap_or(1e-6),
            elementwise_affine: f.bool("elementwise_affine")?.unwrap_or(true),
        })
    }
}

impl RmsNorm {
    fn norm(&self, x: &Shape) -> Vec<u64> {
        self.normalized_shape.clone().unwrap_or_else(|| vec![x.last()])
    }
}

impl Op for RmsNorm {
    /// Parameter tensors: `weight` (γ) of the normalized shape's size, when `elementwise_affine`.
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let p = self.analyze(inputs)?.params;
        Ok(if p == 0 { Vec::new() } else { vec![p] })
    }

    /// Peers: a leaf of no class they single out (fvcore 0.1.5 and ptflops 0.7.5 have no
    /// `aten::rms_norm` handle, so they count it as 0, as netstat does).
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along dim 1, no exchange (as `layer_norm`).
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward, as Hugging Face's `LlamaRMSNorm` and PyTorch 2.15's `nn.RMSNorm` on
    /// the CPU run it (`x · rsqrt(mean(x²) + ε)`, then `· γ`, each op recording its own
    /// derivatives.yaml inputs): the input (`pow`), the reciprocal RMS of every normalized row
    /// (`rsqrt` keeps its result, `elements / Π normalized_shape` values in the accumulate type)
    /// and, with `elementwise_affine`, the normalized `x·rstd` that the `· γ` keeps (the input's
    /// elements, activation dtype). Measured with `saved_tensors_hooks` (torch 2.15, CPU;
    /// scripts/pytorch_memory.py on specs/examples/tiny-llama.yaml). PyTorch's fused CUDA kernel
    /// (`_fused_rms_norm`) would keep only the input and rstd: not modelled.
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        let x = &inputs[0];
        let rows = x.elements()? / checked_product(&self.norm(x))?.max(1);
        let mut s = vec![Saved::Input(0), Saved::New { elements: rows, dtype: SavedDType::Accum, what: "row rstd" }];
        if self.elementwise_affine {
            s.push(Saved::New { elements: x.elements()?, dtype: SavedDType::Activation, what: "normalized x·rstd" });
        }
        Ok(s)
    }

    /// Hugging Face's `x · rsqrt(mean(x²) + ε) · γ` differentiated as PyTorch's autograd runs
    /// it (nodes in reverse creation order; U = the input's values, R = its rows; formulas from
    /// aten/derivatives.yaml, each node's ATen results counted while it runs):
    /// - `MulBackward0` of `γ · x̂` (with `elementwise_affine`): `grad·γ` (U, x̂'s gradient) and
    ///   `grad·x̂` (U, summed to γ's gradient); frees x̂ and the output's gradient;
    /// - `MulBackward0` of `x · rstd`: `grad·rstd` (U, the input's gradient) and `grad·x` (U)
    ///   summed per row to rstd's gradient (R);
    /// - `RsqrtBackward0`: `−½·grad·rstd³`, three R-sized results (`pow`, two `mul`); frees rstd;
    /// - `MeanBackward1`: `grad.expand(x) / D` (U);
    /// - `PowBackward0`: `grad·2·x¹`, three U-sized results (`pow`, two `mul`), the last added
    ///   into the input's gradient.
    ///
    /// Measured: scripts/pytorch_memory.py's allocator trace (torch 2.15, CPU): the tiny Llama's
    /// batch-8 backward peak, 3,681,872 B, is `model.norm`'s `PowBackward0`.
    fn backward_nodes(&self, inputs: &[Shape], _output: &Shape) -> Result<Option<Vec<BackwardNode>>, KindError> {
        let x = &inputs[0];
        let u = x.elements()?;
        let rows = u / checked_product(&self.norm(x))?.max(1);
        let t = |id, elements, dtype| BwdTensor::Temp { id, elements, dtype };
        let (a, s) = (SavedDType::Activation, SavedDType::Accum);
        let node = |node, allocs: Vec<BwdTensor>, frees: Vec<BwdTensor>| BackwardNode { node, allocs, frees };
        let mut nodes = Vec::new();
        // The gradient reaching x·rstd: γ's node makes it, else it is the output's.
        let grad_xr = if self.elementwise_affine {
            nodes.push(node(
                "MulBackward0 (weight·x̂)",
                vec![t(0, u, a), t(1, u, a), BwdTensor::ParamGrad(0)],
                vec![t(1, u, a), BwdTensor::Saved(2), BwdTensor::OutputGrad],
            ));
            t(0, u, a)
        } else {
            BwdTensor::OutputGrad
        };
        nodes.extend([
            node("MulBackward0 (x·rstd)", vec![BwdTensor::InputGrad(0), t(2, u, a), t(3, rows, s)], vec![t(2, u, a), grad_xr]),
            node(
                "RsqrtBackward0",
                vec![t(4, rows, s), t(5, rows, s), t(6, rows, s)],
                vec![t(4, rows, s), t(5, rows, s), t(3, rows, s), BwdTensor::Saved(1)],
            ),
            node("MeanBackward1", vec![t(7, u, a)], vec![t(6, rows, s)]),
            node("PowBackward0", vec![t(8, u, a), t(9, u, a), BwdTensor::InputGrad(0)], vec![t(8, u, a), t(9, u, a), t(7, u, a)]),
        ]);
        Ok(Some(nodes))
    }

    /// Hugging Face's `LlamaRMSNorm` as eager PyTorch runs it without autograd (U = the
    /// input's values, R = its rows; the casts to f32 and back are no-ops in f32 and not
    /// modelled in other dtypes): `pow` (U); `mean` (R, the variance, bound until the layer
    /// returns), after which x² is dropped; `variance + ε` (R); `rsqrt` (R), after which the
    /// sum is dropped; `x · rstd` (U), after which rstd is dropped; then `γ ·` makes the output
    /// (without `elementwise_affine`, `x · rstd` is the output). Measured: scripts/pytorch_memory.py
    /// `trace tiny-llama 1 infer` (torch 2.15, CPU).
    fn forward_pass(
        &self,
        inputs: &[Shape],
        _output: &Shape,
        _cached_keys: Option<u64>,
    ) -> Result<Option<ForwardPass>, KindError> {
        let x = &inputs[0];
        let u = x.elements()?;
        let rows = u / checked_product(&self.norm(x))?.max(1);
        let t = |id, elements, dtype| FwdTensor { id, elements, dtype };
        let (a, s) = (SavedDType::Activation, SavedDType::Accum);
        let step = ForwardStep::new;
        let mut steps = vec![
            step("pow (x²)", t(0, u, a), vec![]),
            step("mean (variance)", t(1, rows, s), vec![t(0, u, a)]),
            step("add (variance + ε)", t(2, rows, s), vec![]),
            step("rsqrt", t(3, rows, s), vec![t(2, rows, s)]),
        ];
        if self.elementwise_affine {
            steps.push(step("mul (x·rstd)", t(4, u, a), vec![t(3, rows, s)]));
        }
        Ok(Some(ForwardPass { steps, returned: None }))
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let norm = self.norm(x);
        if x.rank() < norm.len() || x.0[x.rank() - norm.len()..] != norm[..] {
            return Err(KindError::field(
                "normalized_shape",
                format!("expected the input's trailing dimensions to be {}, got input {x}", Shape(norm.clone())),
            ));
        }
        let params = if self.elementwise_affine { checked_product(&norm)? } else { 0 };
        Ok(Cost { params, ..same_shape(inputs)? })
    }
}

impl crate::candle::build::Build for RmsNorm {
    /// From basic ops (candle_nn's fused rms_norm has no backward): `x²`, its mean over the
    /// normalized dimensions, `+ ε`, the square root, `x / rms`, then `· γ` (γ starts at 1).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::Tensor;
        let x = cx.input(0);
        let norm: Vec<usize> = match &self.normalized_shape {
            Some(v) => v.iter().map(|&d| d as usize).collect(),
            None => vec![*x.last().expect("rank ≥ 1")],
        };
        let r = x.len();
        let dims: Vec<usize> = (r - norm.len()..r).collect();
        let g = if self.elementwise_affine { Some(cx.param_const("weight", &norm, 1.0)?) } else { None };
        let eps = self.eps;
        Ok(Box::new(move |xs: &[Tensor], _| {
            let x = &xs[0];
            let ms = x.sqr()?.mean_keepdim(dims.as_slice())?;
            let y = x.broadcast_div(&ms.affine(1.0, eps)?.sqrt()?)?;
            match &g {
                Some(g) => y.broadcast_mul(g),
                None => Ok(y),
            }
        }))
    }

    /// Candle memory: `x²` and the quotient (O each), then `γ·` (O); the mean, `+ ε` and the
    /// square root: 3 per-row values. On an untracked input the ops before `γ·` record nothing.
    /// Inference frees as it goes (Rust drops a statement's temporaries at its end): `x²` with
    /// the mean (O + 1 row value), then the quotient beside the mean, `+ ε` and the root
    /// (O + 3), then `γ·` beside the quotient and the mean (2·O + 1): the peak is the largest.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let (out, x) = (at.out(), at.x());
        let norm: u64 = match &self.normalized_shape {
            Some(v) => v.iter().product(),
            None => x.last().copied().unwrap_or(1),
        };
        let small = out / norm.max(1);
        let g = u64::from(self.elementwise_affine);
        let retained = if at.state.tracked {
            (2 + g) * out + 3 * small
        } else {
            (1 + g) * out
        };
        crate::candle::model::CandleLayer {
            output: out,
            peak: (out + 3 * small).max((1 + g) * out + small),
            retained,
            frees_untracked_input: true,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
    use super::*;

    #[test]
    fn llama_norm() {
        // Llama-3-8B input_layernorm: γ of 4,096; no β; 0 MACs.
        let c = run::<RmsNorm>("{eps: 1e-5}", &[1, 16, 4096]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 16, 4096]), 4_096, 0));
        assert_eq!(run::<RmsNorm>("{normalized_shape: [4, 5]}", &[2, 3, 4, 5]).unwrap().params, 20);
        assert_eq!(run::<RmsNorm>("{elementwise_affine: false}", &[2, 8]).unwrap().params, 0);
        let e = run::<RmsNorm>("{normalized_shape: 6}", &[1, 8]).unwrap_err();
        assert_eq!(e.message, "expected the input's trailing dimensions to be 6, got input 1x8");
    }

    #[test]
    fn saves_input_row_rstd_and_the_normalized_input() {
        // 2×16×4096: 32 rows → 32 rstd values; x·rstd 2·16·4096 = 131,072 elements.
        let k = parse::<RmsNorm>("{}").unwrap();
        let x = Shape(vec![2, 16, 4096]);
        let s = k.saved(std::slice::from_ref(&x), &x).unwrap();
        let rstd = Saved::New { elements: 32, dtype: SavedDType::Accum, what: "row rstd" };
        let normalized = Saved::New { elements: 131_072, dtype: SavedDType::Activation, what: "normalized x·rstd" };
        assert_eq!(s, vec![Saved::Input(0), rstd.clone(), normalized]);
        // Without γ the normalized value is the output itself: nothing more.
        let k = parse::<RmsNorm>("{elementwise_affine: false}").unwrap();
        assert_eq!(k.saved(std::slice::from_ref(&x), &x).unwrap(), vec![Saved::Input(0), rstd]);
    }
}
