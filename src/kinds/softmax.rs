//! `softmax` along one dimension (PyTorch `nn.Softmax(dim)`), default the last.
//!
//! Shape unchanged; no params; 0 MACs (not counted in torchvision `_ops`).

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, Saved, Split, SplitAxis};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A softmax layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Softmax {
    /// The dimension normalized over (negative counts from the end; batch is dimension 0).
    pub dim: i64,
}

impl KindSpec for Softmax {
    const NAME: &'static str = "softmax";
    const FIELDS: &'static [&'static str] = &["dim"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Softmax { dim: f.int("dim")?.unwrap_or(-1) })
    }
}

impl Op for Softmax {
    /// Peers: not counted by any.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels; the normalisation reads the whole input.
    fn split(&self, _devices: u64) -> Split {
        Split { axis: SplitAxis::Channels, gathers: true }
    }

    /// Saved for backward: the output (PyTorch `_softmax_backward_data(grad, result, dim)`).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Output])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        if inputs[0].dim(self.dim).is_none() {
            return Err(KindError::field(
                "dim",
                format!("dim {} is out of range for input {} (rank {})", self.dim, inputs[0], inputs[0].rank()),
            ));
        }
        same_shape(inputs)
    }
}

impl crate::candle::build::Build for Softmax {
    /// `candle_nn::ops::softmax(x, dim)`, built from ops that backprop (`softmax_last_dim` is a
    /// fused op with no backward).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let r = cx.inputs[0].rank() as i64;
        let dim = if self.dim < 0 { r + self.dim } else { self.dim } as usize;
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| candle_nn::ops::softmax(&xs[0], dim)))
    }

    /// Candle memory (candle_nn::ops::softmax): max (small), x − max, exp, sum (small),
    /// exp / sum; its locals live until it returns, so x − max, exp and the quotient are live
    /// together.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let (out, o) = (at.out(), at.o());
        let d = super::norm_dim(self.dim, at.output, "dim").map_or(o.len() - 1, |d| d);
        let small = out / o.get(d).copied().unwrap_or(1).max(1);
        crate::candle::model::CandleLayer {
            output: out,
            peak: 3 * out + 2 * small,
            retained: 3 * out + 2 * small,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn dim_is_checked() {
        assert_eq!(run::<Softmax>("{}", &[1, 10]).unwrap().output, Shape(vec![1, 10]));
        assert_eq!(run::<Softmax>("{dim: 2}", &[1, 10]).unwrap_err().field, Some("dim"));
    }
}
