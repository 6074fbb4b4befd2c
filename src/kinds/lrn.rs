//! `lrn`: local response normalization across channels (PyTorch `nn.LocalResponseNorm`;
//! Krizhevsky et al. 2012, §3.3):
//! `b_c = a_c / (k + α/n · Σ_{c' in window of n around c} a_{c'}²)^β`.
//!
//! Shape unchanged; no params; 0 MACs (a normalization, not counted in torchvision `_ops`).
//! Defaults are PyTorch's (α 1e-4, β 0.75, k 1); AlexNet-2012 uses size 5, α 1e-4, β 0.75, k 2.

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, Saved, SavedDType, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A local response normalization layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrn {
    /// Number of neighbouring channels `n` in the window.
    pub size: u64,
    /// α.
    pub alpha: f64,
    /// β.
    pub beta: f64,
    /// k.
    pub k: f64,
}

impl KindSpec for Lrn {
    const NAME: &'static str = "lrn";
    const FIELDS: &'static [&'static str] = &["size", "alpha", "beta", "k"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Lrn {
            size: f.req_pos("size")?,
            alpha: f.float("alpha")?.unwrap_or(1e-4),
            beta: f.float("beta")?.unwrap_or(0.75),
            k: f.float("k")?.unwrap_or(1.0),
        })
    }
}

impl Op for Lrn {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward, as PyTorch's composite `F.local_response_norm` leaves them
    /// (`div = x·x` → pad channels by `size − 1` → `avg_pool3d` → `·α + k` → `^β`; `x / div`):
    /// the input (kept by `x·x` and by the final division), the padded squares
    /// `N·(C + size − 1)·H·W` (kept by `avg_pool3d`), the base `α·avg + k` (kept by `pow`) and
    /// the divisor `base^β` (kept by the division): two tensors of the output's size.
    fn saved(&self, inputs: &[Shape], output: &Shape) -> Result<Vec<Saved>, KindError> {
        let x = &inputs[0];
        let c = x.0[1];
        let padded_c = crate::shape::add(c, self.size - 1, "padded channels")?;
        let per_channel = crate::shape::checked_product(&x.0[2..])?;
        let padded = crate::shape::checked_product(&[x.0[0], padded_c, per_channel])?;
        let out = output.elements()?;
        Ok(vec![
            Saved::Input(0),
            Saved::New { elements: padded, dtype: SavedDType::Activation, what: "padded squares" },
            Saved::New {
                elements: crate::shape::mul(2, out, "saved elements")?,
                dtype: SavedDType::Activation,
                what: "base and divisor",
            },
        ])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        if inputs[0].rank() < 3 {
            return Err(KindError::layer(format!(
                "expected an input of rank 3 or more (N×C×…), got {} (rank {})",
                inputs[0],
                inputs[0].rank()
            )));
        }
        same_shape(inputs)
    }
}

impl crate::candle::build::Build for Lrn {
    /// PyTorch's formula from basic ops: the squares are zero-padded by ⌊n/2⌋ before and
    /// ⌊(n−1)/2⌋ after along channels, summed over n shifted views, then
    /// `x / (k + α/n · Σ)^β`.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let n = self.size as usize;
        let c = cx.input(0)[1];
        let (alpha, beta, k) = (self.alpha, self.beta, self.k);
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            let sq = xs[0].sqr()?.pad_with_zeros(1, n / 2, (n - 1) / 2)?;
            let mut sum = sq.narrow(1, 0, c)?;
            for j in 1..n {
                sum = (sum + sq.narrow(1, j, c)?)?;
            }
            let div = sum.affine(alpha / n as f64, k)?.powf(beta)?;
            xs[0].div(&div)
        }))
    }

    /// Candle memory: x², its zero-padded copy, n − 1 running sums, the affine, powf and the
    /// division.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let out = at.out();
        let plane = out / at.x()[1].max(1);
        let pad_zeros = (self.size - 1) * plane;
        let padded = out + pad_zeros;
        crate::candle::model::CandleLayer {
            output: out,
            peak: out + pad_zeros + padded + 2 * out,
            retained: out + pad_zeros + padded + (self.size - 1) * out + 3 * out,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn keeps_shape() {
        let c = run::<Lrn>("{size: 5, alpha: 1.0e-4, beta: 0.75, k: 2}", &[1, 96, 55, 55]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 96, 55, 55]));
        assert_eq!((c.params, c.macs), (0, 0));
    }

    #[test]
    fn saved_tensors_follow_pytorchs_composite() {
        // AlexNet-2012 LRN(size 5) on 1×96×55×55: padded squares 1·(96 + 4)·55·55 = 302,500;
        // base and divisor 2 · 96·55·55 = 2 · 290,400 = 580,800.
        let k = super::super::test_util::parse::<Lrn>("{size: 5}").unwrap();
        let x = Shape(vec![1, 96, 55, 55]);
        let s = k.saved(std::slice::from_ref(&x), &x).unwrap();
        assert_eq!(s[0], Saved::Input(0));
        assert!(matches!(s[1], Saved::New { elements: 302_500, .. }));
        assert!(matches!(s[2], Saved::New { elements: 580_800, .. }));
    }
}
