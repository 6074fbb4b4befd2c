//! `relu6`: elementwise min(max(0, x), 6) (PyTorch `nn.ReLU6`).
//!
//! Shape unchanged; no params; 0 MACs (activations are not counted, torchvision `_ops`).

use super::{same_shape, saved_input_or_copy, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A relu6 activation layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Relu6 {
    /// Overwrite the input instead of allocating an output (PyTorch `inplace=True`).
    pub inplace: bool,
}

impl KindSpec for Relu6 {
    const NAME: &'static str = "relu6";
    const FIELDS: &'static [&'static str] = &["inplace"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Relu6 { inplace: f.bool("inplace")?.unwrap_or(false) })
    }
}

impl Op for Relu6 {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: the input (PyTorch `relu6` = `hardtanh(x, 0, 6)`, whose backward reads
    /// `self`). In place (`hardtanh_`) the input is overwritten, so autograd saves a copy of it
    /// first: new bytes of the input's size (PyTorch since 1.10, issues #81548 and #95432;
    /// measured: shared/reference/pytorch_memory.md, mobilenet_v2).
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        saved_input_or_copy(self.inplace, inputs)
    }

    /// `inplace: true` overwrites the input: no new output.
    fn aliases_input(&self, _training: bool) -> bool {
        self.inplace
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        same_shape(inputs)
    }
}

impl crate::candle::build::Build for Relu6 {
    /// `min(relu(x), 6)`: candle's relu and minimum, both with backward.
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        Ok(Box::new(|xs: &[candle_core::Tensor], _| xs[0].relu()?.minimum(6.0)))
    }

    /// Candle memory: relu, then minimum(6), in one expression.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.chain(2)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn shape_unchanged_and_free() {
        // MobileNetV2 features.0.2 shape (torchvision_layers/mobilenet_v2.csv): 1×32×112×112, 0 params, 0 MACs.
        let c = run::<Relu6>("{inplace: true}", &[1, 32, 112, 112]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 32, 112, 112]), 0, 0));
        assert!(super::super::test_util::parse::<Relu6>("{inplace: 1}").is_err());
    }
}
