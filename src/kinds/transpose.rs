//! `transpose`: swap two dimensions (PyTorch `x.transpose(dim0, dim1)`); indices include the
//! batch dimension and may be negative. No params; 0 MACs (a view).

use super::{norm_dim, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A swap of two dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Transpose {
    /// First dimension (default −2).
    pub dim0: i64,
    /// Second dimension (default −1).
    pub dim1: i64,
}

impl KindSpec for Transpose {
    const NAME: &'static str = "transpose";
    const FIELDS: &'static [&'static str] = &["dim0", "dim1"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Transpose { dim0: f.int("dim0")?.unwrap_or(-2), dim1: f.int("dim1")?.unwrap_or(-1) })
    }
}

impl Op for Transpose {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (the gradient is transposed back).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    /// A view: the output is the input's storage.
    fn aliases_input(&self, _training: bool) -> bool {
        true
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let (a, b) = (norm_dim(self.dim0, x, "dim0")?, norm_dim(self.dim1, x, "dim1")?);
        let mut out = x.0.clone();
        out.swap(a, b);
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for Transpose {
    /// candle's `transpose` (a strided view).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let x = &cx.inputs[0];
        let e = |e: KindError| candle_core::Error::msg(e.message);
        let (a, b) = (norm_dim(self.dim0, x, "dim0").map_err(e)?, norm_dim(self.dim1, x, "dim1").map_err(e)?);
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| xs[0].transpose(a, b)))
    }

    /// Candle memory: a strided view of the input, no bytes of its own.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        crate::candle::model::CandleLayer { strided_output: true, ..at.view() }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn swaps() {
        assert_eq!(run::<Transpose>("{dim0: 1, dim1: 2}", &[1, 768, 196]).unwrap().output, Shape(vec![1, 196, 768]));
        assert_eq!(run::<Transpose>("{}", &[1, 2, 3, 4]).unwrap().output, Shape(vec![1, 2, 4, 3]));
        assert_eq!(run::<Transpose>("{dim0: 5}", &[1, 2]).unwrap_err().field, Some("dim0"));
    }
}
