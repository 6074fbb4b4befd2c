//! `group_norm`: group normalization over `N×C×…` (PyTorch `nn.GroupNorm`; Wu & He 2018):
//! the channels are split into `num_groups` groups and each (sample, group) is normalized over
//! its channels and positions, then a per-channel affine `γ·x̂ + β`.
//!
//! Params `2·C` when `affine` (default true); no buffers (no running statistics); 0 MACs
//! (norms are not counted, torchvision `_ops`). `num_groups` must divide C.

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, SavedDType, Split};
use crate::error::SpecError;
use crate::shape::{mul, Shape};
use crate::spec::fields::Fields;

/// A group normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupNorm {
    /// Groups G (divides C).
    pub num_groups: u64,
    /// Expected channel count C, checked against the input when given.
    pub num_channels: Option<u64>,
    /// ε added to the variance (default 1e-5).
    pub eps: f64,
    /// Learnable per-channel γ and β (default true).
    pub affine: bool,
}

impl KindSpec for GroupNorm {
    const NAME: &'static str = "group_norm";
    const FIELDS: &'static [&'static str] = &["num_groups", "num_channels", "eps", "affine"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(GroupNorm {
            num_groups: f.req_pos("num_groups")?,
            num_channels: f.pos("num_channels")?,
            eps: f.float("eps")?.unwrap_or(1e-5),
            affine: f.bool("affine")?.unwrap_or(true),
        })
    }
}

impl Op for GroupNorm {
    /// Parameter tensors: `weight` (γ) and `bias` (β), C each, when `affine`.
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let c = inputs[0].0.get(1).copied().unwrap_or(0);
        Ok(if self.affine { vec![c, c] } else { Vec::new() })
    }

    /// Peers: `aten::group_norm`, a norm leaf with γ, β (counted as `layer_norm`'s class).
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { class: PeerClass::LayerNorm, bias: 0, torchinfo_leaf: true }
    }

    /// Split along channels (whole groups per device), no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: the input and the mean and reciprocal standard deviation per (sample,
    /// group), `2·N·G` values in the accumulate type (PyTorch `native_group_norm` returns
    /// `mean`, `rstd`, which derivatives.yaml passes to `native_group_norm_backward`).
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        let n = inputs[0].0[0];
        let elements = mul(mul(2, n, "saved statistics")?, self.num_groups, "saved statistics")?;
        Ok(vec![Saved::Input(0), Saved::New { elements, dtype: SavedDType::Accum, what: "group mean and rstd" }])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        if x.rank() < 2 {
            return Err(KindError::layer(format!("expected an input N×C×… of rank ≥ 2, got {x}")));
        }
        let c = x.0[1];
        if let Some(want) = self.num_channels {
            if want != c {
                return Err(KindError::field("num_channels", format!("expected {want} channels, got {c} (input {x})")));
            }
        }
        if !c.is_multiple_of(self.num_groups) {
            return Err(KindError::field(
                "num_groups",
                format!("num_groups {} does not divide the {c} channels (input {x})", self.num_groups),
            ));
        }
        let params = if self.affine { mul(2, c, "params")? } else { 0 };
        Ok(Cost { params, ..same_shape(inputs)? })
    }
}

impl crate::candle::build::Build for GroupNorm {
    /// From basic ops: reshape to `N×G×(C/G·rest)`, mean and biased variance over the last
    /// dimension, `(x − mean)/√(var + ε)`, reshape back, then `γ·` and `+β` per channel
    /// (γ starts at 1, β at 0, PyTorch).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::{Tensor, D};
        let x = cx.input(0);
        let c = x[1];
        let mut per_channel = vec![1usize; x.len()];
        per_channel[1] = c;
        let affine = if self.affine {
            let g = cx.param_const("weight", &[c], 1.0)?.reshape(per_channel.as_slice())?;
            let b = cx.param_const("bias", &[c], 0.0)?.reshape(per_channel.as_slice())?;
            Some((g, b))
        } else {
            None
        };
        let (eps, groups) = (self.eps, self.num_groups as usize);
        Ok(Box::new(move |xs: &[Tensor], _| {
            let x = &xs[0];
            let dims = x.dims().to_vec();
            let xg = x.reshape((dims[0], groups, ()))?;
            let mean = xg.mean_keepdim(D::Minus1)?;
            let xc = xg.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            let y = xc.broadcast_div(&var.affine(1.0, eps)?.sqrt()?)?.reshape(dims.as_slice())?;
            match &affine {
                Some((g, b)) => y.broadcast_mul(g)?.broadcast_add(b),
                None => Ok(y),
            }
        }))
    }

    /// Candle memory: x − mean, its square, the quotient (O each), then γ· and +β (O each); the
    /// two means, `var + ε` and its root: 4 values per (sample, group). On an untracked input
    /// the ops before γ· record nothing.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let out = at.out();
        let small = 4 * at.x()[0] * self.num_groups * at.s;
        let aff = if self.affine { 2 * out } else { 0 };
        let retained = if at.state.tracked {
            3 * out + small + aff
        } else if self.affine {
            3 * out
        } else {
            out
        };
        crate::candle::model::CandleLayer {
            output: out,
            // Inference: x − mean beside its square, then beside the quotient (2·O); with γ and
            // β, x − mean, the quotient, γ· and +β at once (4·O).
            peak: (2 * out + small).max(if self.affine { 4 * out + small } else { 0 }),
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
    fn stable_diffusion_norm() {
        // GroupNorm(32, 320) (Stable Diffusion's U-Net): 2·320 = 640 params, no buffers.
        let c = run::<GroupNorm>("{num_groups: 32}", &[1, 320, 64, 64]).unwrap();
        assert_eq!((c.params, c.buffers, c.macs), (640, 0, 0));
        let e = run::<GroupNorm>("{num_groups: 3}", &[1, 320, 4, 4]).unwrap_err();
        assert_eq!(e.field, Some("num_groups"));
        // Saved: N 2, G 32 → 2·2·32 = 128 statistics.
        let k = parse::<GroupNorm>("{num_groups: 32}").unwrap();
        let x = Shape(vec![2, 320, 8, 8]);
        assert!(matches!(k.saved(std::slice::from_ref(&x), &x).unwrap()[1], Saved::New { elements: 128, .. }));
    }
}
