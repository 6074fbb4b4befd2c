//! `permute`: reorder dimensions (PyTorch `x.permute(dims)`); `dims` includes the batch
//! dimension and may use negative indices. No params; 0 MACs (a view).

use super::{norm_dim, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::{describe, Fields};
use crate::spec::node::Value;

/// A permutation of dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Permute {
    /// The new order: output dimension `i` is input dimension `dims[i]`.
    pub dims: Vec<i64>,
}

impl KindSpec for Permute {
    const NAME: &'static str = "permute";
    const FIELDS: &'static [&'static str] = &["dims"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let n = f.get("dims").ok_or_else(|| f.err(f.node.loc, "missing required field `dims`"))?;
        let Value::Seq(items) = &n.value else {
            return Err(f.err(n.loc, format!("`dims`: expected a list of dimension indices, got {}", describe(n))));
        };
        // Checked conversion: `v.abs()` wrapped for i128::MIN and `as i64` truncated it to 0,
        // so a huge negative index read as dimension 0.
        let dims = items.iter().map(|i| f.int_node(i, "dims")).collect::<Result<_, _>>()?;
        Ok(Permute { dims })
    }
}

impl Op for Permute {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (the gradient is permuted back).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    /// A view: the output is the input's storage.
    fn aliases_input(&self, _training: bool) -> bool {
        true
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        if self.dims.len() != x.rank() {
            return Err(KindError::field(
                "dims",
                format!("expected {} dimension indices for input {x}, got {}", x.rank(), self.dims.len()),
            ));
        }
        let mut seen = vec![false; x.rank()];
        let mut out = Vec::with_capacity(x.rank());
        for &d in &self.dims {
            let j = norm_dim(d, x, "dims")?;
            if std::mem::replace(&mut seen[j], true) {
                return Err(KindError::field("dims", format!("dimension {j} appears twice in dims")));
            }
            out.push(x.0[j]);
        }
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for Permute {
    /// candle's `permute` (a strided view; later ops copy it when they need contiguity).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let x = &cx.inputs[0];
        let dims = self
            .dims
            .iter()
            .map(|&d| norm_dim(d, x, "dims"))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|e| candle_core::Error::msg(e.message))?;
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| xs[0].permute(dims.as_slice())))
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
    fn vit_tokens_and_errors() {
        // ViT: 1×768×196 permute(0, 2, 1) → 1×196×768.
        assert_eq!(run::<Permute>("{dims: [0, 2, 1]}", &[1, 768, 196]).unwrap().output, Shape(vec![1, 196, 768]));
        assert_eq!(run::<Permute>("{dims: [0, -1, 1]}", &[1, 768, 196]).unwrap().output, Shape(vec![1, 196, 768]));
        assert!(run::<Permute>("{dims: [0, 1, 1]}", &[1, 768, 196]).unwrap_err().message.contains("twice"));
        assert!(run::<Permute>("{dims: [0, 1]}", &[1, 768, 196]).is_err());
    }
}
