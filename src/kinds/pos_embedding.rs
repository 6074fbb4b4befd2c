//! `pos_embedding`: add a learned position table to a sequence `N×L×D` (ViT's
//! `encoder.pos_embedding` `[1, L, D]`; GPT-2's `wpe`, an `n_positions × D` table of which the
//! first `L` rows are added).
//!
//! `length` (default L) is the number of positions in the table; it must be ≥ L.
//! Params: `length · D`. 0 MACs (an elementwise add is not counted, torchvision `_ops`).

use super::{expect_rank, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{mul, Shape};
use crate::spec::fields::Fields;

/// A learned position embedding added to the input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PosEmbedding {
    /// Positions in the table (default: the input's sequence length).
    pub length: Option<u64>,
}

impl KindSpec for PosEmbedding {
    const NAME: &'static str = "pos_embedding";
    const FIELDS: &'static [&'static str] = &["length"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(PosEmbedding { length: f.pos("length")? })
    }
}

impl Op for PosEmbedding {
    /// Parameter tensors: one (PyTorch's `pos_embedding`).
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

    /// Saved for backward: nothing (an addition).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 3, "N×L×D")?;
        let length = self.length.unwrap_or(x.0[1]);
        if length < x.0[1] {
            return Err(KindError::field(
                "length",
                format!("the table has {length} positions but the input {x} has {} tokens", x.0[1]),
            ));
        }
        Ok(Cost { output: x.clone(), params: mul(length, x.0[2], "params")?, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for PosEmbedding {
    /// A learned `[1, length, D]` table; its first L rows are added to the `N×L×D` input
    /// (GPT-2's wpe of positions 0..L, ViT's pos_embedding). Uniform in ±0.02.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let x = cx.input(0);
        let (l, d) = (x[1], x[2]);
        let len = self.length.map_or(l, |v| v as usize);
        let t = cx.param("weight", &[1, len, d], 0.02)?;
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| xs[0].broadcast_add(&t.narrow(1, 0, l)?)))
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
    fn vit_and_gpt2() {
        // ViT-B/16 pos_embedding [1, 197, 768]: 151,296 params.
        let c = run::<PosEmbedding>("{}", &[1, 197, 768]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 197, 768]), 151_296, 0));
        // GPT-2 wpe: 1024·768 = 786,432 params, also for a shorter sequence.
        assert_eq!(run::<PosEmbedding>("{length: 1024}", &[1, 10, 768]).unwrap().params, 786_432);
        assert_eq!(run::<PosEmbedding>("{length: 8}", &[1, 10, 768]).unwrap_err().field, Some("length"));
    }
}
