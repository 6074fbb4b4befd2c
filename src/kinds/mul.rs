//! `mul`: elementwise product of 2 or more inputs (gates such as squeeze-and-excitation;
//! PyTorch `a * b`).
//!
//! Shapes broadcast as in PyTorch (see [`super::add::broadcast`]). No params; 0 MACs: an
//! elementwise product is not a multiply-accumulate, and torchvision `_ops` (FlopCounterMode)
//! does not count it.

use super::add::broadcast_all;
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, SavedDType, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// An elementwise product.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mul;

impl KindSpec for Mul {
    const NAME: &'static str = "mul";
    const FIELDS: &'static [&'static str] = &[];
    fn parse(_: &Fields) -> Result<Self, SpecError> {
        Ok(Mul)
    }
}

impl Op for Mul {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: every input (∂(a·b)/∂a = b), and for 3 or more inputs the running
    /// products PyTorch's chain `((a·b)·c)…` keeps: `inputs − 2` tensors of the output's size.
    fn saved(&self, inputs: &[Shape], output: &Shape) -> Result<Vec<Saved>, KindError> {
        let mut s: Vec<Saved> = (0..inputs.len()).map(Saved::Input).collect();
        if inputs.len() > 2 {
            let elements = crate::shape::mul(output.elements()?, inputs.len() as u64 - 2, "saved elements")?;
            s.push(Saved::New { elements, dtype: SavedDType::Activation, what: "running products" });
        }
        Ok(s)
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        Ok(Cost { output: broadcast_all(inputs)?, params: 0, buffers: 0, macs: 0 })
    }
    fn arity(&self) -> (usize, usize) {
        (2, usize::MAX)
    }
}

impl crate::candle::build::Build for Mul {
    /// `broadcast_mul`, left to right (PyTorch broadcasting; its backward sums products over broadcast dims).
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        Ok(Box::new(|xs: &[candle_core::Tensor], _| {
            let mut acc = xs[0].clone();
            for x in &xs[1..] {
                acc = acc.broadcast_mul(x)?;
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

    #[test]
    fn squeeze_excitation_gate() {
        // SE gate: 1×64×56×56 · 1×64×1×1 → 1×64×56×56.
        let c = Mul.analyze(&[Shape(vec![1, 64, 56, 56]), Shape(vec![1, 64, 1, 1])]).unwrap();
        assert_eq!((c.output, c.macs), (Shape(vec![1, 64, 56, 56]), 0));
        let e = Mul.analyze(&[Shape(vec![1, 64, 56, 56]), Shape(vec![1, 32, 1, 1])]).unwrap_err();
        assert!(e.message.contains("input 0 (1x64x56x56) and input 1 (1x32x1x1)"), "{}", e.message);
    }
}
