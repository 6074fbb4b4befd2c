//! `flatten` (PyTorch `nn.Flatten(start_dim=1, end_dim=-1)`): merges dimensions
//! `start_dim..=end_dim` into one. No params; 0 MACs; a view, no copy.

use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{checked_product, Shape};
use crate::spec::fields::Fields;

/// A flatten layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Flatten {
    /// First dimension merged (default 1: keep the batch).
    pub start_dim: i64,
    /// Last dimension merged (default −1).
    pub end_dim: i64,
}

impl KindSpec for Flatten {
    const NAME: &'static str = "flatten";
    const FIELDS: &'static [&'static str] = &["start_dim", "end_dim"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Flatten { start_dim: f.int("start_dim")?.unwrap_or(1), end_dim: f.int("end_dim")?.unwrap_or(-1) })
    }
}

impl Op for Flatten {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: nothing (the gradient is a reshape of grad_output).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(Vec::new())
    }

    /// A view: the output is the input's storage.
    fn aliases_input(&self, _training: bool) -> bool {
        true
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let r = x.rank() as i64;
        let norm = |d: i64, field: &'static str| {
            let j = if d < 0 { r + d } else { d };
            if (0..r).contains(&j) {
                Ok(j as usize)
            } else {
                Err(KindError::field(field, format!("{field} {d} is out of range for input {x} (rank {r})")))
            }
        };
        let (s, e) = (norm(self.start_dim, "start_dim")?, norm(self.end_dim, "end_dim")?);
        if s > e {
            return Err(KindError::field("start_dim", format!("start_dim {s} is after end_dim {e}")));
        }
        let mut out = x.0[..s].to_vec();
        out.push(checked_product(&x.0[s..=e])?);
        out.extend_from_slice(&x.0[e + 1..]);
        Ok(Cost { output: Shape(out), params: 0, buffers: 0, macs: 0 })
    }
}

impl crate::candle::build::Build for Flatten {
    /// A reshape to the analysed shape (a view when the input is contiguous).
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
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn alexnet_flatten() {
        // 256·5·5 = 6,400 features (seed article).
        assert_eq!(run::<Flatten>("{}", &[1, 256, 5, 5]).unwrap().output, Shape(vec![1, 6400]));
        assert_eq!(run::<Flatten>("{start_dim: 2}", &[1, 768, 14, 14]).unwrap().output, Shape(vec![1, 768, 196]));
    }
}
