//! `add`: elementwise sum of 2 or more inputs (a residual connection; PyTorch `a + b`).
//!
//! Shapes broadcast as in PyTorch (docs "Broadcasting semantics"): dimensions are aligned from
//! the right; each pair must be equal or one of them 1; missing leading dimensions count as 1.
//! No params; 0 MACs (torchvision `_ops` does not count residual adds).

use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A residual / elementwise add.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Add {
    /// Add into input 0 instead of allocating an output (`inplace: true`; torchvision ResNet's
    /// `out += identity`). The output shape must then be input 0's (PyTorch refuses an in-place
    /// add that would broadcast its left side).
    pub inplace: bool,
}

impl KindSpec for Add {
    const NAME: &'static str = "add";
    const FIELDS: &'static [&'static str] = &["inplace"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Add { inplace: f.bool("inplace")?.unwrap_or(false) })
    }
}

impl Op for Add {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (the gradient of a sum is passed to every input).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let output = broadcast_all(inputs)?;
        if self.inplace && output != inputs[0] {
            return Err(KindError::field(
                "inplace",
                format!("an in-place add writes into input 0 ({}), but the inputs broadcast to {output}", inputs[0]),
            ));
        }
        Ok(Cost { output, params: 0, buffers: 0, macs: 0 })
    }

    /// `inplace: true` writes into input 0: no new output.
    fn aliases_input(&self, _training: bool) -> bool {
        self.inplace
    }
    fn arity(&self) -> (usize, usize) {
        (2, usize::MAX)
    }
}

/// The PyTorch broadcast of two shapes, or a message naming the inputs (by position) and the
/// first dimension (counted from the left of the longer shape) where they disagree.
pub fn broadcast(a: &Shape, b: &Shape, ia: usize, ib: usize) -> Result<Shape, KindError> {
    let r = a.rank().max(b.rank());
    let mut out = vec![0; r];
    #[allow(clippy::needless_range_loop)]
    for k in 0..r {
        let da = if k + a.rank() >= r { a.0[k + a.rank() - r] } else { 1 };
        let db = if k + b.rank() >= r { b.0[k + b.rank() - r] } else { 1 };
        out[k] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            (x, y) => {
                return Err(KindError::layer(format!(
                    "input {ia} ({a}) and input {ib} ({b}) do not broadcast: dimension {k} is {x} vs {y} \
                     (expected equal sizes or 1)"
                )))
            }
        };
    }
    Ok(Shape(out))
}

/// Broadcast every input together (left to right).
pub fn broadcast_all(inputs: &[Shape]) -> Result<Shape, KindError> {
    let mut acc = inputs[0].clone();
    for (i, s) in inputs.iter().enumerate().skip(1) {
        acc = broadcast(&acc, s, if i == 1 { 0 } else { i - 1 }, i).map_err(|e| {
            if i == 1 {
                e
            } else {
                KindError::layer(format!(
                    "inputs 0..{} broadcast to {acc}, which input {i} ({s}) does not match: {}",
                    i - 1,
                    e.message
                ))
            }
        })?;
    }
    acc.elements()?;
    Ok(acc)
}

/// Candle memory of an n-ary broadcast op (`add`, `mul`): one op per extra input, each kept as
/// the next one's input; with three or more inputs two results are live at once.
pub fn broadcast_ops(at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
    let out = at.out();
    let k = at.inputs.len().max(2) as u64 - 1;
    crate::candle::model::CandleLayer {
        output: out,
        peak: if k > 1 { 2 * out } else { out },
        retained: k * out,
        ..Default::default()
    }
}

impl crate::candle::build::Build for Add {
    /// `broadcast_add`, left to right (PyTorch broadcasting; its backward sums over broadcast dims).
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        Ok(Box::new(|xs: &[candle_core::Tensor], _| {
            let mut acc = xs[0].clone();
            for x in &xs[1..] {
                acc = acc.broadcast_add(x)?;
            }
            Ok(acc)
        }))
    }

    /// Candle memory: one broadcast op per extra input, each kept as the next one's input.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        super::add::broadcast_ops(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[u64]) -> Shape {
        Shape(v.to_vec())
    }

    #[test]
    fn residual_and_broadcast() {
        // Same shapes: ResNet residual, 1×256×56×56 + 1×256×56×56.
        let c = Add::default().analyze(&[s(&[1, 256, 56, 56]), s(&[1, 256, 56, 56])]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (s(&[1, 256, 56, 56]), 0, 0));
        // PyTorch: [1,197,768] + [197,768] → [1,197,768]; [8,1,6,1] + [7,1,5] → [8,7,6,5].
        assert_eq!(Add::default().analyze(&[s(&[1, 197, 768]), s(&[197, 768])]).unwrap().output, s(&[1, 197, 768]));
        assert_eq!(Add::default().analyze(&[s(&[8, 1, 6, 1]), s(&[7, 1, 5])]).unwrap().output, s(&[8, 7, 6, 5]));
        // Three inputs.
        assert_eq!(Add::default().analyze(&[s(&[2, 3]), s(&[2, 3]), s(&[1, 3])]).unwrap().output, s(&[2, 3]));
    }

    #[test]
    fn mismatch_names_both_shapes() {
        let e = Add::default().analyze(&[s(&[1, 64, 56, 56]), s(&[1, 256, 56, 56])]).unwrap_err();
        assert_eq!(
            e.message,
            "input 0 (1x64x56x56) and input 1 (1x256x56x56) do not broadcast: dimension 1 is 64 vs 256 \
             (expected equal sizes or 1)"
        );
        assert_eq!(Add::default().arity(), (2, usize::MAX));
    }

    #[test]
    fn in_place_add_keeps_input_0s_shape() {
        let a = Add { inplace: true };
        assert_eq!(a.analyze(&[s(&[1, 256, 56, 56]), s(&[1, 256, 56, 56])]).unwrap().output, s(&[1, 256, 56, 56]));
        assert!(a.aliases_input(true) && a.aliases_input(false));
        // [197,768] += [1,197,768] would have to grow its left side.
        let e = a.analyze(&[s(&[197, 768]), s(&[1, 197, 768])]).unwrap_err();
        assert_eq!(e.field, Some("inplace"));
    }
}
