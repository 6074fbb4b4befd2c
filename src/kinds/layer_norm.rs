//! `layer_norm`: normalization over the trailing dimensions (PyTorch `nn.LayerNorm`).
//!
//! `normalized_shape` (default: the input's last dimension) must equal the input's trailing
//! dimensions. Params: `2 · Π normalized_shape` (γ and β) when `elementwise_affine` (default
//! true); only γ when `bias: false`. 0 MACs (norms are not counted, torchvision `_ops`).

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, SavedDType, Split};
use crate::error::SpecError;
use crate::shape::{checked_product, mul, Shape};
use crate::spec::fields::Fields;
use crate::spec::node::Value;

/// A layer normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    /// Trailing dimensions normalized over; `None` means the input's last dimension.
    pub normalized_shape: Option<Vec<u64>>,
    /// ε added to the variance (default 1e-5).
    pub eps: f64,
    /// Learnable γ (and β) (default true).
    pub elementwise_affine: bool,
    /// Learnable β (default true).
    pub bias: bool,
}

impl KindSpec for LayerNorm {
    const NAME: &'static str = "layer_norm";
    const FIELDS: &'static [&'static str] = &["normalized_shape", "eps", "elementwise_affine", "bias"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let normalized_shape = match f.get("normalized_shape") {
            None => None,
            Some(n) => match &n.value {
                Value::Seq(items) if !items.is_empty() => {
                    let v = f.nonneg_list(n, "normalized_shape")?;
                    if v.contains(&0) {
                        return Err(f.err(n.loc, "`normalized_shape`: expected positive dimensions, got a 0"));
                    }
                    let _ = items;
                    Some(v)
                }
                _ => Some(vec![f.req_pos("normalized_shape")?]),
            },
        };
        Ok(LayerNorm {
            normalized_shape,
            eps: f.float("eps")?.unwrap_or(1e-5),
            elementwise_affine: f.bool("elementwise_affine")?.unwrap_or(true),
            bias: f.bool("bias")?.unwrap_or(true),
        })
    }
}

impl Op for LayerNorm {
    /// Parameter tensors: `weight` when `elementwise_affine`, then `bias` when also `bias`, each
    /// of the normalized shape's size.
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let params = self.analyze(inputs)?.params;
        Ok(match (self.elementwise_affine, self.bias) {
            (false, _) => Vec::new(),
            (true, true) => vec![params / 2, params / 2],
            (true, false) => vec![params],
        })
    }

    /// Peers: `aten::layer_norm`; its γ, β count as a leaf's parameters in torchinfo.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { class: PeerClass::LayerNorm, bias: 0, torchinfo_leaf: true }
    }

    /// Split along dim 1, no exchange (as before: normalised dims are not modelled apart).
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: the input, plus the mean and reciprocal standard deviation of every
    /// normalized row (`2 · elements / Π normalized_shape` values in the accumulate type; PyTorch
    /// `native_layer_norm` returns `mean`, `rstd` for `native_layer_norm_backward`).
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        let x = &inputs[0];
        let per = match &self.normalized_shape {
            Some(v) => checked_product(v)?,
            None => x.last(),
        };
        let rows = x.elements()? / per.max(1);
        let elements = mul(rows, 2, "saved statistics")?;
        Ok(vec![Saved::Input(0), Saved::New { elements, dtype: SavedDType::Accum, what: "row mean and rstd" }])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let norm = match &self.normalized_shape {
            Some(v) => v.clone(),
            None => vec![x.last()],
        };
        if x.rank() < norm.len() || x.0[x.rank() - norm.len()..] != norm[..] {
            return Err(KindError::field(
                "normalized_shape",
                format!("expected the input's trailing dimensions to be {}, got input {x}", Shape(norm.clone())),
            ));
        }
        let per = checked_product(&norm)?;
        let params = match (self.elementwise_affine, self.bias) {
            (false, _) => 0,
            (true, true) => mul(per, 2, "params")?,
            (true, false) => per,
        };
        Ok(Cost { params, ..same_shape(inputs)? })
    }
}

impl crate::candle::build::Build for LayerNorm {
    /// From basic ops (candle_nn::LayerNorm is a fused op with no backward, CANDLE_NOTES):
    /// mean and biased variance over the normalized trailing dimensions,
    /// `(x − mean) / √(var + ε) · γ + β`; γ starts at 1 and β at 0 (PyTorch).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::Tensor;
        let x = cx.input(0);
        let norm: Vec<usize> = match &self.normalized_shape {
            Some(v) => v.iter().map(|&d| d as usize).collect(),
            None => vec![*x.last().expect("rank ≥ 1")],
        };
        let r = x.len();
        let dims: Vec<usize> = (r - norm.len()..r).collect();
        let (g, b) = if self.elementwise_affine {
            let g = cx.param_const("weight", &norm, 1.0)?;
            let b = if self.bias { Some(cx.param_const("bias", &norm, 0.0)?) } else { None };
            (Some(g), b)
        } else {
            (None, None)
        };
        let eps = self.eps;
        Ok(Box::new(move |xs: &[Tensor], _| {
            let x = &xs[0];
            let mean = x.mean_keepdim(dims.as_slice())?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(dims.as_slice())?;
            let mut y = xc.broadcast_div(&var.affine(1.0, eps)?.sqrt()?)?;
            if let Some(g) = &g {
                y = y.broadcast_mul(g)?;
            }
            if let Some(b) = &b {
                y = y.broadcast_add(b)?;
            }
            Ok(y)
        }))
    }

    /// Candle memory: x − mean, (x − mean)², the quotient, then γ· and +β: each O; the two
    /// means and `var + eps`, its square root: 6 per-row values. Its first ops take no weight:
    /// on an untracked input they record nothing.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let (out, x) = (at.out(), at.x());
        let norm: u64 = match &self.normalized_shape {
            Some(v) => v.iter().product(),
            None => x.last().copied().unwrap_or(1),
        };
        let small = out / norm.max(1);
        let (g, b) = (u64::from(self.elementwise_affine), u64::from(self.elementwise_affine && self.bias));
        let retained = if at.state.tracked {
            (3 + g + b) * out + 6 * small
        } else if g == 1 {
            (2 + b) * out
        } else {
            out
        };
        crate::candle::model::CandleLayer {
            output: out,
            peak: (2 + g) * out + 2 * small,
            retained,
            frees_untracked_input: true,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn vit_ln() {
        // ViT-B/16 ln_1 (torchvision_layers/vit_b_16.csv): 1×197×768, 2·768 = 1,536 params, 0 MACs.
        let c = run::<LayerNorm>("{eps: 1e-6}", &[1, 197, 768]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 197, 768]), 1_536, 0));
        // Over [14, 14]: 2·196 = 392.
        assert_eq!(run::<LayerNorm>("{normalized_shape: [14, 14]}", &[1, 8, 14, 14]).unwrap().params, 392);
        assert_eq!(run::<LayerNorm>("{bias: false}", &[1, 4, 10]).unwrap().params, 10);
        let e = run::<LayerNorm>("{normalized_shape: 512}", &[1, 197, 768]).unwrap_err();
        assert_eq!(e.message, "expected the input's trailing dimensions to be 512, got input 1x197x768");
    }

    #[test]
    fn saves_input_and_row_statistics() {
        // ViT-B/16 LayerNorm on 1×197×768: 197 rows → mean and rstd, 2 · 197 = 394 values.
        let k = super::super::test_util::parse::<LayerNorm>("{}").unwrap();
        let x = Shape(vec![1, 197, 768]);
        let s = k.saved(std::slice::from_ref(&x), &x).unwrap();
        assert_eq!(s[0], Saved::Input(0));
        assert!(matches!(s[1], Saved::New { elements: 394, dtype: SavedDType::Accum, .. }));
    }
}
