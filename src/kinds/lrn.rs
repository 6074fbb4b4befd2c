//! `lrn`: local response normalization across channels (PyTorch `nn.LocalResponseNorm`;
//! Krizhevsky et al. 2012, §3.3):
//! `b_c = a_c / (k + α/n · Σ_{c' in window of n around c} a_{c'}²)^β`.
//!
//! Shape unchanged; no params; 0 MACs (a normalization, not counted in torchvision `_ops`).
//! Defaults are PyTorch's (α 1e-4, β 0.75, k 1); AlexNet-2012 uses size 5, α 1e-4, β 0.75, k 2.

use super::{same_shape, Cost, KindError, KindSpec, Op};
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

impl crate::measure::build::Build for Lrn {
    /// PyTorch's formula from basic ops: the squares are zero-padded by ⌊n/2⌋ before and
    /// ⌊(n−1)/2⌋ after along channels, summed over n shifted views, then
    /// `x / (k + α/n · Σ)^β`.
    fn build(&self, cx: &mut crate::measure::build::Ctx) -> candle_core::Result<Box<dyn crate::measure::build::Layer>> {
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
}
