//! `reshape`: a new shape for the same elements (PyTorch `x.reshape(N, *shape)`).
//!
//! `shape` is written without the batch dimension, like the spec's `input`; one entry may be
//! `-1` (inferred). The element count must not change. No params; 0 MACs (a view).

use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{checked_product, Shape};
use crate::spec::fields::{describe, Fields};
use crate::spec::node::Value;

/// A reshape.
#[derive(Debug, Clone, PartialEq)]
pub struct Reshape {
    /// Target shape without batch; `None` entry is the one `-1`.
    pub shape: Vec<Option<u64>>,
}

impl KindSpec for Reshape {
    const NAME: &'static str = "reshape";
    const FIELDS: &'static [&'static str] = &["shape"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let n = f.get("shape").ok_or_else(|| f.err(f.node.loc, "missing required field `shape`"))?;
        let bad = |n: &crate::spec::node::Node| {
            f.err(n.loc, format!("`shape`: expected a list of positive integers (one may be -1), got {}", describe(n)))
        };
        let Value::Seq(items) = &n.value else { return Err(bad(n)) };
        crate::shape::check_rank(items.len() + 1)
            .map_err(|m| f.err(n.loc, format!("`shape`: {m} (batch included)")))?;
        let mut shape = Vec::with_capacity(items.len());
        for i in items {
            match i.value {
                Value::Int(-1) if !shape.contains(&None) => shape.push(None),
                Value::Int(v) if v >= 1 && v <= u64::MAX as i128 => shape.push(Some(v as u64)),
                _ => return Err(bad(i)),
            }
        }
        Ok(Reshape { shape })
    }
}

impl Op for Reshape {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing. Counted as a view (PyTorch copies when the input is not
    /// contiguous, e.g. after `permute`; netstat does not model that copy).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    /// A view: the output is the input's storage.
    fn aliases_input(&self, _training: bool) -> bool {
        true
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let per = checked_product(&x.0[1..])?;
        let known = checked_product(&self.shape.iter().flatten().copied().collect::<Vec<_>>())?;
        let show =
            || self.shape.iter().map(|d| d.map_or("-1".into(), |v| v.to_string())).collect::<Vec<_>>().join(", ");
        let fill = if self.shape.contains(&None) {
            if per % known != 0 {
                return Err(KindError::field(
                    "shape",
                    format!("cannot reshape input {x} ({per} elements per item) to [{}]", show()),
                ));
            }
            per / known
        } else {
            if known != per {
                return Err(KindError::field(
                    "shape",
                    format!("cannot reshape input {x} ({per} elements per item) to [{}] ({known} elements)", show()),
                ));
            }
            1
        };
        let mut out = vec![x.0[0]];
        out.extend(self.shape.iter().map(|d| d.unwrap_or(fill)));
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for Reshape {
    /// A reshape to the analysed shape (candle copies a non-contiguous input first).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let shape: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| xs[0].reshape(shape.as_slice())))
    }

    /// Candle memory: a view of a contiguous input, else a contiguous copy.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        if at.state.contiguous {
            at.view()
        } else {
            at.plain()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
    use super::*;

    #[test]
    fn vit_patches_and_errors() {
        // ViT: 1×768×14×14 → reshape(768, 196) → 1×768×196 (768·14·14 = 150,528 = 768·196).
        assert_eq!(run::<Reshape>("{shape: [768, -1]}", &[1, 768, 14, 14]).unwrap().output, Shape(vec![1, 768, 196]));
        assert_eq!(run::<Reshape>("{shape: [12, 64]}", &[1, 768]).unwrap().output, Shape(vec![1, 12, 64]));
        let e = run::<Reshape>("{shape: [100]}", &[1, 768]).unwrap_err();
        assert_eq!(e.message, "cannot reshape input 1x768 (768 elements per item) to [100] (100 elements)");
        assert!(parse::<Reshape>("{shape: [-1, -1]}").is_err());
        assert!(parse::<Reshape>("{shape: [0]}").is_err());
    }
}
