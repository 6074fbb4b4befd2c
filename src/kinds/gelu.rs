//! `gelu`: elementwise GELU, x·Φ(x) (PyTorch `nn.GELU`; `approximate: tanh` for the tanh form
//! GPT-2 uses).
//!
//! Shape unchanged; no params; 0 MACs (activations are not counted, torchvision `_ops`).

use super::{same_shape, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A GELU activation layer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gelu {
    /// Use the tanh approximation (`approximate: tanh`) instead of the exact erf form (`none`).
    pub tanh: bool,
}

impl KindSpec for Gelu {
    const NAME: &'static str = "gelu";
    const FIELDS: &'static [&'static str] = &["approximate"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let tanh = match f.str("approximate")? {
            None | Some("none") => false,
            Some("tanh") => true,
            Some(s) => {
                return Err(
                    f.err(f.loc("approximate"), format!("`approximate`: expected `none` or `tanh`, got \"{s}\""))
                )
            }
        };
        Ok(Gelu { tanh })
    }
}

impl Op for Gelu {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: the input (PyTorch `gelu_backward(grad, self, approximate)`).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0)])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        same_shape(inputs)
    }
}

impl crate::candle::build::Build for Gelu {
    /// candle's `gelu_erf` (PyTorch's default exact form, x·Φ(x)) or, for `approximate: tanh`,
    /// candle's `gelu` (the tanh form); both have a backward in candle (backprop.rs
    /// UnaryOp::GeluErf / UnaryOp::Gelu).
    fn build(&self, _cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        if self.tanh {
            Ok(Box::new(|xs: &[candle_core::Tensor], _| xs[0].gelu()))
        } else {
            Ok(Box::new(|xs: &[candle_core::Tensor], _| xs[0].gelu_erf()))
        }
    }

    /// Candle memory: one op, its output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.plain()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
    use super::*;

    #[test]
    fn shape_unchanged_and_free() {
        // ViT-B/16 mlp.1 (torchvision_layers/vit_b_16.csv): 1×197×3072 → 1×197×3072, 0 params, 0 MACs.
        let c = run::<Gelu>("{}", &[1, 197, 3072]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 197, 3072]), 0, 0));
        assert!(parse::<Gelu>("{approximate: tanh}").unwrap().tanh);
        assert!(parse::<Gelu>("{approximate: erf}").unwrap_err().message.contains("expected `none` or `tanh`"));
    }
}
