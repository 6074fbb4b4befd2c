//! `matmul`: batched matrix product of two inputs (PyTorch `torch.matmul` on rank ≥ 2).
//!
//! `A: …×n×k` and `B: …×k×m` → `…×n×m`, the leading (batch) dimensions broadcast as in PyTorch.
//! Set `transpose_b: true` to multiply by `Bᵀ` (`B: …×m×k`, as in `Q·Kᵀ`).
//! No params. MACs: `Π batch · n · k · m` (FlopCounterMode `bmm`).

use super::add::broadcast;
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{checked_product, Shape};
use crate::spec::fields::Fields;

/// A matrix product.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matmul {
    /// Multiply by the transpose of the second input (default false).
    pub transpose_b: bool,
}

impl KindSpec for Matmul {
    const NAME: &'static str = "matmul";
    const FIELDS: &'static [&'static str] = &["transpose_b"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Matmul { transpose_b: f.bool("transpose_b")?.unwrap_or(false) })
    }
}

impl Op for Matmul {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: both inputs (∂(A·B)/∂A = grad·Bᵀ, ∂/∂B = Aᵀ·grad).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0), Saved::Input(1)])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let (a, b) = (&inputs[0], &inputs[1]);
        if a.rank() < 2 || b.rank() < 2 {
            return Err(KindError::layer(format!(
                "expected inputs of rank 2 or more, got input 0 ({a}) and input 1 ({b})"
            )));
        }
        let (ra, rb) = (a.rank(), b.rank());
        let (n, k) = (a.0[ra - 2], a.0[ra - 1]);
        let (kb, m) = if self.transpose_b { (b.0[rb - 1], b.0[rb - 2]) } else { (b.0[rb - 2], b.0[rb - 1]) };
        if k != kb {
            return Err(KindError::layer(format!(
                "input 0 ({a}) and input 1 ({b}) do not multiply: inner dimensions {k} vs {kb}"
            )));
        }
        let batch = broadcast(&Shape(a.0[..ra - 2].to_vec()), &Shape(b.0[..rb - 2].to_vec()), 0, 1).map_err(|e| {
            KindError::layer(format!("batch dimensions of input 0 ({a}) and input 1 ({b}): {}", e.message))
        })?;
        let mut out = batch.0.clone();
        out.extend([n, m]);
        let output = Shape(out);
        output.elements()?;
        let mut dims = batch.0;
        dims.extend([n, k, m]);
        Ok(Cost { output, params: 0, buffers: 0, macs: checked_product(&dims)? })
    }
    fn arity(&self) -> (usize, usize) {
        (2, 2)
    }
}

impl crate::candle::build::Build for Matmul {
    /// `broadcast_matmul` (batch dimensions broadcast as in PyTorch), of the second input's
    /// last-two-dims transpose when `transpose_b`.
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let tb = self.transpose_b;
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            let b = if tb { xs[1].t()? } else { xs[1].clone() };
            xs[0].broadcast_matmul(&b)
        }))
    }

    /// Candle memory: the matmul's output, its transient and a copy of a strided input.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{CandleLayer, MATMUL_TRANSIENT_BYTES};
        let out = at.out();
        CandleLayer {
            output: out,
            peak: out + at.copy_in() + MATMUL_TRANSIENT_BYTES,
            retained: out,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::parse;
    use super::*;

    #[test]
    fn attention_scores() {
        // Q·Kᵀ, 12 heads of 64 over 197 tokens: 12·197·64·197 = 29,805,312 MACs (half of ViT's
        // 59,610,624 per layer).
        let m = parse::<Matmul>("{transpose_b: true}").unwrap();
        let c = m.analyze(&[Shape(vec![1, 12, 197, 64]), Shape(vec![1, 12, 197, 64])]).unwrap();
        assert_eq!((c.output, c.macs), (Shape(vec![1, 12, 197, 197]), 29_805_312));
        // Broadcast batch: [2,1,3,4] @ [5,4,6] → [2,5,3,6], MACs 2·5·3·4·6 = 720.
        let c = Matmul::default().analyze(&[Shape(vec![2, 1, 3, 4]), Shape(vec![5, 4, 6])]).unwrap();
        assert_eq!((c.output, c.macs), (Shape(vec![2, 5, 3, 6]), 720));
        let e = Matmul::default().analyze(&[Shape(vec![1, 3, 4]), Shape(vec![1, 5, 6])]).unwrap_err();
        assert_eq!(e.message, "input 0 (1x3x4) and input 1 (1x5x6) do not multiply: inner dimensions 4 vs 5");
    }
}
