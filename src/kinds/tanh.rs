//! `tanh`: elementwise tanh (PyTorch `nn.Tanh`).
//!
//! Shape unchanged; no params; 0 MACs (activations are not counted, torchvision `_ops`).

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A tanh activation layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tanh {}

impl KindSpec for Tanh {
    const NAME: &'static str = "tanh";
    const FIELDS: &'static [&'static str] = &[];
    fn parse(_f: &Fields) -> Result<Self, SpecError> {
        Ok(Tanh {})
    }
}

impl Op for Tanh {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        same_shape(inputs)
    }

    /// Saved for backward: the output (PyTorch `tanh_backward(grad, result)`).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Output])
    }
}

impl crate::candle::build::Build for Tanh {
    /// candle's elementwise op (its backward is implemented).
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        Ok(Box::new(|xs: &[candle_core::Tensor], _| xs[0].tanh()))
    }

    /// Candle memory: one op, its output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.plain()
    }
}
