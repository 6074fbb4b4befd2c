//! `select`: take index `index` along dimension `dim`, removing that dimension (PyTorch
//! `x.select(dim, index)`, e.g. ViT's class token `x[:, 0]`). No params; 0 MACs (a view).

use super::{norm_dim, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// An index along one dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// The dimension (default 1; negative counts from the end).
    pub dim: i64,
    /// The index (default 0; negative counts from the end).
    pub index: i64,
}

impl KindSpec for Select {
    const NAME: &'static str = "select";
    const FIELDS: &'static [&'static str] = &["dim", "index"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Select { dim: f.int("dim")?.unwrap_or(1), index: f.int("index")?.unwrap_or(0) })
    }
}

impl Op for Select {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (the gradient is scattered into zeros of the input shape).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    /// A view: the output is the input's storage.
    fn aliases_input(&self, _training: bool) -> bool {
        true
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let d = norm_dim(self.dim, x, "dim")?;
        let size = x.0[d] as i128;
        let i = self.index as i128;
        if !(-size..size).contains(&i) {
            return Err(KindError::field(
                "index",
                format!("index {i} is out of range for dimension {d} of size {size} (input {x})"),
            ));
        }
        let mut out = x.0.clone();
        out.remove(d);
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for Select {
    /// `narrow(dim, index, 1)` then `squeeze(dim)` (a view; backward pads the gradient with zeros).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let x = &cx.inputs[0];
        let d = norm_dim(self.dim, x, "dim").map_err(|e| candle_core::Error::msg(e.message))?;
        let size = x.0[d] as i64;
        let i = if self.index < 0 { size + self.index } else { self.index } as usize;
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| xs[0].narrow(d, i, 1)?.squeeze(d)))
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
    fn class_token_out() {
        // ViT: x[:, 0] on 1×197×768 → 1×768.
        assert_eq!(run::<Select>("{}", &[1, 197, 768]).unwrap().output, Shape(vec![1, 768]));
        assert_eq!(run::<Select>("{index: 197}", &[1, 197, 768]).unwrap_err().field, Some("index"));
    }
}
