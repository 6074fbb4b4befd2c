//! `dropout` (PyTorch `nn.Dropout(p)`): zeroes each element with probability `p` in training,
//! identity in inference.
//!
//! Shape unchanged; no params; 0 MACs.

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, Saved, SavedDType, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A dropout layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    /// Drop probability in [0, 1), default 0.5 (PyTorch's).
    pub p: f64,
    /// Overwrite the input instead of allocating an output (PyTorch `inplace=True`).
    pub inplace: bool,
}

impl KindSpec for Dropout {
    const NAME: &'static str = "dropout";
    const FIELDS: &'static [&'static str] = &["p", "inplace"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let p = f.float("p")?.unwrap_or(0.5);
        if !(0.0..1.0).contains(&p) {
            return Err(f.err(f.loc("p"), format!("`p`: expected a probability in [0, 1), got {p}")));
        }
        let inplace = f.bool("inplace")?.unwrap_or(false);
        Ok(Dropout { p, inplace })
    }
}

impl Op for Dropout {
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

    /// Saved for backward (training, `p > 0`): the mask, one bool byte per element (PyTorch
    /// `native_dropout` returns it; `native_dropout_backward(grad, mask, scale)` reads it).
    /// With `p = 0` nothing: the layer is the identity.
    fn saved(&self, _inputs: &[Shape], output: &Shape) -> Result<Vec<Saved>, KindError> {
        if self.p == 0.0 {
            return Ok(Vec::new());
        }
        Ok(vec![Saved::New { elements: output.elements()?, dtype: SavedDType::Bool, what: "dropout mask" }])
    }

    /// Identity in inference and with `p = 0` (ATen `dropout` returns `input` itself when
    /// `p == 0 || !train`, on CPU and CUDA); in training a new output unless `inplace: true`.
    fn aliases_input(&self, training: bool) -> bool {
        self.is_identity(training) || self.inplace
    }

    /// No operation in inference or with `p = 0` (see [`Op::aliases_input`]).
    fn is_identity(&self, training: bool) -> bool {
        !training || self.p == 0.0
    }
}

impl crate::candle::build::Build for Dropout {
    /// Training: `x · mask` with mask ∈ {0, 1/(1−p)} drawn from the seed, the layer and the step
    /// (repeatable, for the gradient check); inference: identity (no copy).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let p = self.p;
        let stream = cx.stream();
        Ok(Box::new(move |xs: &[candle_core::Tensor], pass: crate::candle::build::Pass| {
            let x = &xs[0];
            if !pass.train || p == 0.0 {
                return Ok(x.clone());
            }
            let mut r = crate::candle::build::SplitMix(stream ^ pass.step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let keep = 1.0 / (1.0 - p);
            let n = x.elem_count();
            let mask = match x.dtype() {
                candle_core::DType::F64 => candle_core::Tensor::from_vec(
                    (0..n).map(|_| if r.next_f64() < p { 0.0 } else { keep }).collect::<Vec<f64>>(),
                    x.shape(),
                    x.device(),
                )?,
                _ => candle_core::Tensor::from_vec(
                    (0..n).map(|_| if r.next_f64() < p { 0.0f32 } else { keep as f32 }).collect::<Vec<f32>>(),
                    x.shape(),
                    x.device(),
                )?,
            };
            x.mul(&mask)
        }))
    }

    /// Candle memory: in training with p > 0, the mask and the product (2·O); otherwise the
    /// identity, a view.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        if at.train && self.p > 0.0 {
            let out = at.out();
            crate::candle::model::CandleLayer { output: out, peak: 2 * out, retained: 2 * out, ..Default::default() }
        } else {
            at.view()
        }
    }
}
