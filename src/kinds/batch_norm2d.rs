//! `batch_norm2d` over NCHW input (PyTorch `nn.BatchNorm2d`).
//!
//! Params: `2·C` (γ and β) when `affine` (default true). Buffers: `2·C` running mean and
//! variance (PyTorch also keeps one int64 `num_batches_tracked`, not counted here).
//! 0 MACs (norms are not counted, torchvision `_ops`).

use super::{expect_rank, same_shape, Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, SavedDType, Split};
use crate::error::SpecError;
use crate::shape::{mul, Shape};
use crate::spec::fields::Fields;

/// A batch normalization layer.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm2d {
    /// Expected channel count C, checked against the input when given (PyTorch's `num_features`).
    pub num_features: Option<u64>,
    /// ε added to the variance (default 1e-5).
    pub eps: f64,
    /// Running-statistics momentum (default 0.1).
    pub momentum: f64,
    /// Learnable γ and β (default true).
    pub affine: bool,
    /// Keep running mean and variance (default true).
    pub track_running_stats: bool,
}

impl KindSpec for BatchNorm2d {
    const NAME: &'static str = "batch_norm2d";
    const FIELDS: &'static [&'static str] = &["num_features", "eps", "momentum", "affine", "track_running_stats"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(BatchNorm2d {
            num_features: f.pos("num_features")?,
            eps: f.float("eps")?.unwrap_or(1e-5),
            momentum: f.float("momentum")?.unwrap_or(0.1),
            affine: f.bool("affine")?.unwrap_or(true),
            track_running_stats: f.bool("track_running_stats")?.unwrap_or(true),
        })
    }
}

impl Op for BatchNorm2d {
    /// Parameter tensors: γ (`weight`) and β (`bias`), C each, when `affine`.
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let c = inputs[0].0.get(1).copied().unwrap_or(0);
        Ok(if self.affine { vec![c, c] } else { Vec::new() })
    }

    /// `num_batches_tracked`, one int64, when `track_running_stats` (PyTorch `_NormBase`).
    fn counter_buffers(&self) -> u64 {
        u64::from(self.track_running_stats)
    }

    /// Peers: `aten::batch_norm`; its γ, β count as a leaf's parameters in torchinfo.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { class: PeerClass::BatchNorm, bias: 0, torchinfo_leaf: true }
    }

    /// Per channel: split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward (training mode): the input, plus the batch mean and inverse standard
    /// deviation per channel, `2·C` values in the accumulate type (PyTorch `native_batch_norm`
    /// returns `save_mean`, `save_invstd`; `native_batch_norm_backward` reads them with the
    /// input and weight). Running statistics are buffers, held anyway.
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![
            Saved::Input(0),
            Saved::New {
                elements: crate::shape::mul(2, inputs[0].0[1], "saved statistics")?,
                dtype: SavedDType::Accum,
                what: "batch mean and inverse std",
            },
        ])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 4, "N×C×H×W")?;
        let c = x.0[1];
        if let Some(want) = self.num_features {
            if want != c {
                return Err(KindError::field("num_features", format!("expected {want} channels, got {c} (input {x})")));
            }
        }
        let mut cost = same_shape(inputs)?;
        cost.params = if self.affine { mul(2, c, "param count")? } else { 0 };
        cost.buffers = if self.track_running_stats { mul(2, c, "buffer count")? } else { 0 };
        Ok(cost)
    }
}

impl crate::candle::build::Build for BatchNorm2d {
    /// From basic ops (candle-nn's BatchNorm is not used so that every step is visible to the
    /// memory model): training normalizes with the batch mean and biased variance over N, H, W
    /// and updates the running statistics with the unbiased variance (PyTorch); inference uses
    /// the running statistics. γ starts at 1 and β at 0 (PyTorch).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::Tensor;
        use std::cell::RefCell;
        let x = cx.input(0);
        let c = x[1];
        let count = (x[0] * x[2] * x[3]) as f64;
        let affine = if self.affine {
            let g = cx.param_const("weight", &[c], 1.0)?;
            let b = cx.param_const("bias", &[c], 0.0)?;
            Some((g.reshape((1, c, 1, 1))?, b.reshape((1, c, 1, 1))?))
        } else {
            None
        };
        let stats = if self.track_running_stats {
            Some(RefCell::new((cx.buffer(&[1, c, 1, 1], 0.0)?, cx.buffer(&[1, c, 1, 1], 1.0)?)))
        } else {
            None
        };
        let (eps, momentum) = (self.eps, self.momentum);
        Ok(Box::new(move |xs: &[Tensor], pass: crate::candle::build::Pass| {
            let x = &xs[0];
            let y = match (&stats, pass.train) {
                (Some(s), false) => {
                    let s = s.borrow();
                    x.broadcast_sub(&s.0)?.broadcast_div(&(s.1.affine(1.0, eps)?.sqrt()?))?
                }
                _ => {
                    let mean = x.mean_keepdim((0, 2, 3))?;
                    let xc = x.broadcast_sub(&mean)?;
                    let var = xc.sqr()?.mean_keepdim((0, 2, 3))?;
                    if let Some(s) = &stats {
                        let mut s = s.borrow_mut();
                        let unbiased = var.detach().affine(count / (count - 1.0).max(1.0), 0.0)?;
                        s.0 = (s.0.affine(1.0 - momentum, 0.0)? + mean.detach().affine(momentum, 0.0)?)?;
                        s.1 = (s.1.affine(1.0 - momentum, 0.0)? + unbiased.affine(momentum, 0.0)?)?;
                    }
                    xc.broadcast_div(&var.affine(1.0, eps)?.sqrt()?)?
                }
            };
            match &affine {
                Some((g, b)) => y.broadcast_mul(g)?.broadcast_add(b),
                None => Ok(y),
            }
        }))
    }

    /// Candle memory. Batch statistics: x − mean, its square, the quotient (3 values of O) and
    /// six per-channel values (the two sums, their scalings, var + eps, its square root);
    /// running statistics: x − mean and the quotient, and two per-channel values. Then γ· and
    /// +β. In inference the normalized value, γ·y and the sum are live together at the end.
    /// On an untracked input (the network input) the normalisation records no op: only the
    /// quotient (kept by γ·), γ·y (kept by +β) and the output stay.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let out = at.out();
        let small = at.x()[1] * at.s;
        let batch_stats = at.train || !self.track_running_stats;
        let norm = if batch_stats { 3 * out + 6 * small } else { 2 * out + 2 * small };
        let aff = if self.affine { 2 * out } else { 0 };
        let peak = if batch_stats { 3 * out + 6 * small } else { 2 * out + 2 * small };
        let retained = if at.state.tracked {
            norm + aff
        } else if self.affine {
            3 * out
        } else {
            out
        };
        crate::candle::model::CandleLayer {
            output: out,
            peak: peak.max(out + aff),
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
    fn params_and_buffers() {
        // ResNet-18 bn1: BatchNorm2d(64) → 128 params (γ, β), 128 buffer values (mean, var).
        let c = run::<BatchNorm2d>("{}", &[1, 64, 112, 112]).unwrap();
        assert_eq!((c.params, c.buffers, c.macs), (128, 128, 0));
    }

    #[test]
    fn saves_input_and_per_channel_statistics() {
        // BatchNorm2d(64): batch mean and inverse std, 2 · 64 = 128 values in f32.
        let x = Shape(vec![8, 64, 56, 56]);
        let k = super::super::test_util::parse::<BatchNorm2d>("{}").unwrap();
        assert_eq!(
            k.saved(std::slice::from_ref(&x), &x).unwrap(),
            vec![
                Saved::Input(0),
                Saved::New { elements: 128, dtype: SavedDType::Accum, what: "batch mean and inverse std" }
            ]
        );
    }

    #[test]
    fn param_count_overflow_is_an_error() {
        // 2 · 2^63 = 2^64 does not fit in u64.
        let e = run::<BatchNorm2d>("{}", &[1, 1 << 63, 1, 1]).unwrap_err();
        assert_eq!(e.message, "param count overflows u64 (2·9223372036854775808)");
    }
}
