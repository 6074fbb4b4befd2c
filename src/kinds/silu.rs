//! `silu`: elementwise x·σ(x) (swish) (PyTorch `nn.SiLU`).
//!
//! Shape unchanged; no params; 0 MACs (activations are not counted, torchvision `_ops`).

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A silu activation layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Silu {
    /// Overwrite the input instead of allocating an output (PyTorch `inplace=True`).
    pub inplace: bool,
}

impl KindSpec for Silu {
    const NAME: &'static str = "silu";
    const FIELDS: &'static [&'static str] = &["inplace"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Silu { inplace: f.bool("inplace")?.unwrap_or(false) })
    }
}

impl Op for Silu {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: the input (PyTorch `silu_backward(grad, self)`). In place, autograd
    /// keeps a copy of the original input (the gradient needs it): new bytes of the input's size.
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        super::saved_input_or_copy(self.inplace, inputs)
    }

    /// `inplace: true` overwrites the input: no new output.
    fn aliases_input(&self, _training: bool) -> bool {
        self.inplace
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        same_shape(inputs)
    }
}

impl crate::candle::build::Build for Silu {
    /// candle's `silu` (x·σ(x)); its backward is implemented (backprop.rs UnaryOp::Silu).
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        Ok(Box::new(|xs: &[candle_core::Tensor], _| xs[0].silu()))
    }

    /// Candle memory: one op, its output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.plain()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn shape_unchanged_and_free() {
        // MobileNetV2 features.0.2 shape (torchvision_layers/mobilenet_v2.csv): 1×32×112×112, 0 params, 0 MACs.
        let c = run::<Silu>("{inplace: true}", &[1, 32, 112, 112]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 32, 112, 112]), 0, 0));
        assert!(super::super::test_util::parse::<Silu>("{inplace: 1}").is_err());
    }
}
