//! `upsample`: 2-D resizing of `N×C×H×W` (PyTorch `nn.Upsample` / `F.interpolate`), `mode`
//! `nearest` (default) or `bilinear`, by `scale_factor` (a number or `[s_h, s_w]`) or to `size`
//! (`[H_out, W_out]` or one number for both); exactly one of the two.
//!
//! Shape: `H_out = ⌊H·s_h⌋`, `W_out = ⌊W·s_w⌋` (PyTorch `upsample_*2d` output size), or `size`.
//! No params; 0 MACs (an interpolation is elementwise work, not counted, as pooling).
//! Source indices as ATen's kernels (UpSample.h): the ratio is `1/scale` when a scale is given
//! (`recompute_scale_factor` unset) and `in/out` otherwise; nearest takes `⌊dst·ratio⌋`;
//! bilinear samples `(dst + 0.5)·ratio − 0.5` (clamped at 0) between its two neighbours, or
//! `dst·(in − 1)/(out − 1)` with `align_corners: true`.

use super::{expect_rank, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// An upsampling (resize) layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsample {
    /// Bilinear (true) or nearest (false).
    pub bilinear: bool,
    /// `[s_h, s_w]`, when given.
    pub scale_factor: Option<[f64; 2]>,
    /// `[H_out, W_out]`, when given.
    pub size: Option<[u64; 2]>,
    /// Bilinear corner alignment (default false).
    pub align_corners: bool,
}

impl KindSpec for Upsample {
    const NAME: &'static str = "upsample";
    const FIELDS: &'static [&'static str] = &["mode", "scale_factor", "size", "align_corners"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let bilinear = match f.str("mode")? {
            None | Some("nearest") => false,
            Some("bilinear") => true,
            Some(other) => {
                return Err(f.err(f.loc("mode"), format!("`mode`: expected nearest or bilinear, got {other:?}")))
            }
        };
        let scale_factor = match f.get("scale_factor") {
            None => None,
            Some(n) => {
                let v: Vec<f64> = match &n.value {
                    crate::spec::node::Value::Seq(items) => items
                        .iter()
                        .map(|i| match &i.value {
                            crate::spec::node::Value::Int(v) => Some(*v as f64),
                            crate::spec::node::Value::Float(v) => Some(*v),
                            _ => None,
                        })
                        .collect::<Option<Vec<f64>>>()
                        .unwrap_or_default(),
                    _ => f.float("scale_factor")?.into_iter().collect(),
                };
                match v.as_slice() {
                    [s] if *s > 0.0 && s.is_finite() => Some([*s, *s]),
                    [h, w] if *h > 0.0 && *w > 0.0 && h.is_finite() && w.is_finite() => Some([*h, *w]),
                    _ => {
                        return Err(f.err(
                            n.loc,
                            format!("`scale_factor`: expected a positive number or [h, w], got {}", crate::spec::fields::describe(n)),
                        ))
                    }
                }
            }
        };
        let size = f.pos_pair("size")?;
        if scale_factor.is_some() == size.is_some() {
            return Err(f.err(f.node.loc, "expected exactly one of `scale_factor` and `size`"));
        }
        let align_corners = f.bool("align_corners")?.unwrap_or(false);
        if align_corners && !bilinear {
            return Err(f.err(f.loc("align_corners"), "`align_corners`: only bilinear mode aligns corners"));
        }
        Ok(Upsample { bilinear, scale_factor, size, align_corners })
    }
}

impl Upsample {
    /// Output `[H_out, W_out]` for an input `h × w`.
    fn out_hw(&self, h: u64, w: u64) -> Result<[u64; 2], KindError> {
        let hw = match (self.size, self.scale_factor) {
            (Some(s), _) => s,
            (None, Some([sh, sw])) => [(h as f64 * sh).floor() as u64, (w as f64 * sw).floor() as u64],
            (None, None) => unreachable!("parse requires one of size and scale_factor"),
        };
        if hw.contains(&0) {
            return Err(KindError::field("scale_factor", format!("the output would be empty ({}x{})", hw[0], hw[1])));
        }
        Ok(hw)
    }

    /// The interpolation matrix `out × inp` along one axis (`axis` 0 = H, 1 = W): row `o` holds
    /// the weights of the input positions that output `o` reads.
    fn matrix(&self, inp: usize, out: usize, axis: usize) -> Vec<f64> {
        let ratio = match self.scale_factor {
            Some(s) => 1.0 / s[axis],
            None => inp as f64 / out as f64,
        };
        let mut m = vec![0.0; out * inp];
        for o in 0..out {
            if !self.bilinear {
                let i = ((o as f64 * ratio).floor() as usize).min(inp - 1);
                m[o * inp + i] = 1.0;
                continue;
            }
            let src = if self.align_corners {
                if out > 1 {
                    o as f64 * (inp as f64 - 1.0) / (out as f64 - 1.0)
                } else {
                    0.0
                }
            } else {
                ((o as f64 + 0.5) * ratio - 0.5).max(0.0)
            };
            let i0 = (src.floor() as usize).min(inp - 1);
            let i1 = (i0 + 1).min(inp - 1);
            let l = src - i0 as f64;
            m[o * inp + i0] += 1.0 - l;
            m[o * inp + i1] += l;
        }
        m
    }
}

impl Op for Upsample {
    /// Peers: no class they single out (fvcore's upsample handles are not modelled).
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Per channel: split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (derivatives.yaml: `upsample_nearest2d_backward` and
    /// `upsample_bilinear2d_backward` read only the sizes and scales).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 4, "N×C×H×W")?;
        let [ho, wo] = self.out_hw(x.0[2], x.0[3])?;
        Ok(Cost { output: Shape(vec![x.0[0], x.0[1], ho, wo]), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for Upsample {
    /// As two matmuls with constant interpolation matrices (exact for both modes, and
    /// differentiable): `y = A_h · x · A_wᵀ`, A built once from the source-index rule above.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::Tensor;
        let x = cx.input(0);
        let (h, w) = (x[2], x[3]);
        let (ho, wo) = (cx.output.0[2] as usize, cx.output.0[3] as usize);
        let ah = Tensor::from_vec(self.matrix(h, ho, 0), (ho, h), cx.device)?.to_dtype(cx.dtype)?;
        let awt = Tensor::from_vec(self.matrix(w, wo, 1), (wo, w), cx.device)?.to_dtype(cx.dtype)?.t()?.contiguous()?;
        Ok(Box::new(move |xs: &[Tensor], _| {
            let t = xs[0].broadcast_matmul(&awt)?;
            ah.broadcast_left(t.dims()[..2].to_vec())?.contiguous()?.matmul(&t)
        }))
    }

    /// Candle memory: `x·A_wᵀ` (N·C·H·W_out), the broadcast copy of A_h (N·C·H_out·H), the
    /// result (O), each matmul's transient; all kept when training; the two constant matrices.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::MATMUL_TRANSIENT_BYTES;
        let (x, o, s) = (at.x(), at.o(), at.s);
        let t = x[0] * x[1] * x[2] * o[3] * s;
        let a = x[0] * x[1] * o[2] * x[2] * s;
        let out = at.out();
        crate::candle::model::CandleLayer {
            output: out,
            peak: t + a + out + MATMUL_TRANSIENT_BYTES,
            retained: t + a + out,
            constants: (o[2] * x[2] + o[3] * x[3]) * s,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
    use super::*;

    #[test]
    fn shapes() {
        // ×2 nearest: 8×8 → 16×16; scale [1.5, 2] on 5×3: ⌊7.5⌋ = 7, 6; size wins over the input.
        assert_eq!(run::<Upsample>("{scale_factor: 2}", &[1, 4, 8, 8]).unwrap().output, Shape(vec![1, 4, 16, 16]));
        let c = run::<Upsample>("{mode: bilinear, scale_factor: [1.5, 2]}", &[2, 3, 5, 3]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![2, 3, 7, 6]), 0, 0));
        assert_eq!(run::<Upsample>("{size: [4, 6]}", &[1, 1, 2, 2]).unwrap().output, Shape(vec![1, 1, 4, 6]));
        assert!(parse::<Upsample>("{}").is_err());
        assert!(parse::<Upsample>("{size: 4, scale_factor: 2}").is_err());
        assert!(parse::<Upsample>("{mode: bicubic, size: 4}").is_err());
        assert!(parse::<Upsample>("{size: 4, align_corners: true}").is_err());
    }

    #[test]
    fn interpolation_weights_as_pytorch() {
        // F.interpolate([0, 1, 2, 3], size=8, mode="linear") (align_corners=False) samples
        // src = (o + 0.5)/2 − 0.5 = −0.25 → 0, 0.25, 0.75, 1.25, …; output 1 is 0.75·x0 + 0.25·x1.
        let u = parse::<Upsample>("{mode: bilinear, size: 8}").unwrap();
        let m = u.matrix(4, 8, 1);
        assert_eq!(&m[0..4], &[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(&m[4..8], &[0.75, 0.25, 0.0, 0.0]);
        assert_eq!(&m[28..32], &[0.0, 0.0, 0.0, 1.0]);
        // Nearest ×2: output o reads ⌊o/2⌋.
        let n = parse::<Upsample>("{scale_factor: 2}").unwrap().matrix(2, 4, 0);
        assert_eq!(n, vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
    }
}
