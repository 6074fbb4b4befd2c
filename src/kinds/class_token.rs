//! `class_token`: prepend a learned `[1, 1, D]` token to a sequence `N×L×D` → `N×(L+1)×D`
//! (ViT's `class_token`: `torch.cat([class_token.expand(N, -1, -1), x], dim=1)`, torchvision
//! vision_transformer.py). Params: `D`. 0 MACs (a copy).

use super::{expect_rank, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{add, Shape};
use crate::spec::fields::Fields;

/// A learned token concatenated in front of the sequence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassToken;

impl KindSpec for ClassToken {
    const NAME: &'static str = "class_token";
    const FIELDS: &'static [&'static str] = &[];
    fn parse(_: &Fields) -> Result<Self, SpecError> {
        Ok(ClassToken)
    }
}

impl Op for ClassToken {
    /// Parameter tensors: one (PyTorch's `class_token`).
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        Ok(vec![self.analyze(inputs)?.params])
    }

    /// Peers: a parameter of the container, not a module of its own: no torchinfo leaf.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { torchinfo_leaf: false, ..Peer::OTHER }
    }

    /// Split along dim 1, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (a concatenation: the gradient is split).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 3, "N×L×D")?;
        let output = Shape(vec![x.0[0], add(x.0[1], 1, "sequence length")?, x.0[2]]);
        output.elements()?;
        Ok(Cost { output, params: x.0[2], buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for ClassToken {
    /// A learned `[1, 1, D]` token broadcast over the batch and concatenated in front of the
    /// sequence (torchvision ViT `class_token`); uniform in ±0.02 (PyTorch starts it at zero,
    /// which would hide a missing gradient path in the check).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let x = cx.input(0);
        let (n, d) = (x[0], x[2]);
        let t = cx.param("weight", &[1, 1, d], 0.02)?;
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            candle_core::Tensor::cat(&[&t.broadcast_as((n, 1, d))?, &xs[0]], 1)
        }))
    }

    /// Candle memory: one op, its output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.plain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vit_b_16() {
        // ViT-B/16: 1×196×768 → 1×197×768, 768 params (class_token [1, 1, 768]).
        let c = ClassToken.analyze(&[Shape(vec![1, 196, 768])]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 197, 768]), 768, 0));
        assert!(ClassToken.analyze(&[Shape(vec![1, 768])]).is_err());
    }
}
