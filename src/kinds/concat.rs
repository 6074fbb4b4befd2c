//! `concat`: concatenation of 2 or more inputs along `axis` (PyTorch `torch.cat(xs, dim)`).
//!
//! `axis` defaults to 1 (channels in NCHW); negative values count from the end. Every input must
//! have the same rank and the same size in every other dimension; the output's `axis` is the sum.
//! No params; 0 MACs (a copy).

use super::{norm_dim, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{add, Shape};
use crate::spec::fields::Fields;

/// A concatenation.
#[derive(Debug, Clone, PartialEq)]
pub struct Concat {
    /// The dimension to concatenate along (default 1; negative counts from the end).
    pub axis: i64,
}

impl KindSpec for Concat {
    const NAME: &'static str = "concat";
    const FIELDS: &'static [&'static str] = &["axis"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Concat { axis: f.int("axis")?.unwrap_or(1) })
    }
}

impl Op for Concat {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (the gradient is split by the input sizes).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let first = &inputs[0];
        let ax = norm_dim(self.axis, first, "axis")?;
        let mut out = first.0.clone();
        for (i, s) in inputs.iter().enumerate().skip(1) {
            if s.rank() != first.rank() {
                return Err(KindError::layer(format!(
                    "input 0 ({first}) and input {i} ({s}) have different ranks: {} vs {}",
                    first.rank(),
                    s.rank()
                )));
            }
            for d in 0..first.rank() {
                if d != ax && s.0[d] != first.0[d] {
                    return Err(KindError::layer(format!(
                        "input 0 ({first}) and input {i} ({s}) differ in dimension {d}: {} vs {} \
                         (only axis {ax} may differ)",
                        first.0[d], s.0[d]
                    )));
                }
            }
            out[ax] = add(out[ax], s.0[ax], "concatenated size")?;
        }
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
    fn arity(&self) -> (usize, usize) {
        (2, usize::MAX)
    }
}

impl crate::candle::build::Build for Concat {
    /// `Tensor::cat` along the normalized axis (backward splits the gradient by input sizes).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let ax = norm_dim(self.axis, &cx.inputs[0], "axis").map_err(|e| candle_core::Error::msg(e.message))?;
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| candle_core::Tensor::cat(xs, ax)))
    }

    /// Candle memory: one op, its output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.plain()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parse;
    use super::*;

    fn s(v: &[u64]) -> Shape {
        Shape(v.to_vec())
    }

    #[test]
    fn channels_by_default_and_negative_axis() {
        // DenseNet: 1×64×56×56 ++ 1×32×56×56 → 1×96×56×56 (64 + 32).
        let c = parse::<Concat>("{}").unwrap();
        assert_eq!(c.analyze(&[s(&[1, 64, 56, 56]), s(&[1, 32, 56, 56])]).unwrap().output, s(&[1, 96, 56, 56]));
        // ViT class token: 1×1×768 ++ 1×196×768 along −2 → 1×197×768.
        let c = parse::<Concat>("{axis: -2}").unwrap();
        assert_eq!(c.analyze(&[s(&[1, 1, 768]), s(&[1, 196, 768])]).unwrap().output, s(&[1, 197, 768]));
    }

    #[test]
    fn mismatch_names_both_shapes() {
        let c = parse::<Concat>("{}").unwrap();
        let e = c.analyze(&[s(&[1, 64, 56, 56]), s(&[1, 32, 28, 28])]).unwrap_err();
        assert_eq!(
            e.message,
            "input 0 (1x64x56x56) and input 1 (1x32x28x28) differ in dimension 2: 56 vs 28 (only axis 1 may differ)"
        );
        let e = parse::<Concat>("{axis: 4}").unwrap().analyze(&[s(&[1, 2]), s(&[1, 2])]).unwrap_err();
        assert_eq!(e.field, Some("axis"));
    }
}
