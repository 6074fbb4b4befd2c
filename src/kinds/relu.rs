//! `relu`: elementwise ReLU: max(0, x) (PyTorch `nn.ReLU`).
//!
//! Shape unchanged; no params; 0 MACs (activations are not counted, torchvision `_ops`).

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A relu activation layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Relu {
    /// Overwrite the input instead of allocating an output (PyTorch `inplace=True`).
    pub inplace: bool,
}

impl KindSpec for Relu {
    const NAME: &'static str = "relu";
    const FIELDS: &'static [&'static str] = &["inplace"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Relu { inplace: f.bool("inplace")?.unwrap_or(false) })
    }
}

impl Op for Relu {
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

    /// Saved for backward: the output (PyTorch `threshold_backward(grad, result, 0)`). With
    /// `inplace: true` the output is the input's storage, so this keeps that storage alive.
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Output])
    }

    /// `inplace: true` overwrites the input: no new bytes, in training or inference.
    fn aliases_input(&self, _training: bool) -> bool {
        self.inplace
    }
}

impl crate::candle::build::Build for Relu {
    /// candle's elementwise op (its backward is implemented).
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        Ok(Box::new(|xs: &[candle_core::Tensor], _| xs[0].relu()))
    }

    /// Candle memory: one op, its output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.plain()
    }
}
