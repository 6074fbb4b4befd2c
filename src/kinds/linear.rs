//! `linear`: fully connected layer on the last dimension (PyTorch `nn.Linear`), any rank.
//!
//! Params: `in · out` weights + `out` biases if `bias`.
//!
//! MACs: `(elements of output / out) · in · out` — one dot product of length `in` per output
//! element, so a Linear on `N×L×in` tokens costs `N·L·in·out` (torchvision `_ops`; bias adds
//! not counted).
//!
//! Tied weights (`tied_to: NAME`, e.g. GPT-2's `lm_head` tied to `transformer.wte`): the weight
//! is the `out × in` table of layer NAME (an `embedding` with `num_embeddings = out` and
//! `embedding_dim = in`, or a `linear` with the same weight shape), so it is not counted again
//! in params (its bias, if any, is); its MACs are counted as usual. Checked in
//! [`crate::analysis`].

use super::{Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, Split, SplitAxis};
use crate::error::SpecError;
use crate::shape::{add, checked_product, mul, Shape};
use crate::spec::fields::Fields;

/// A fully connected layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    /// Output features.
    pub out_features: u64,
    /// Expected input features; checked against the input when given.
    pub in_features: Option<u64>,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
    /// The layer whose weight this one shares (`tied_to`), if any.
    pub tied_to: Option<String>,
}

impl KindSpec for Linear {
    const NAME: &'static str = "linear";
    const FIELDS: &'static [&'static str] = &["out_features", "in_features", "bias", "tied_to"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Linear {
            out_features: f.req_pos("out_features")?,
            in_features: f.pos("in_features")?,
            bias: f.bool("bias")?.unwrap_or(true),
            tied_to: f.str("tied_to")?.map(str::to_owned),
        })
    }
}

impl Op for Linear {
    /// Parameter tensors: the weight, then the bias when `bias` (PyTorch's `weight`, `bias`).
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let params = self.analyze(inputs)?.params;
        Ok(super::weight_and_bias(params, if self.bias { Some(self.out_features) } else { None }))
    }

    /// Peers: `aten.addmm`, `out_features` biases when `bias`.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { class: PeerClass::Linear, bias: if self.bias { self.out_features } else { 0 }, torchinfo_leaf: true }
    }

    /// Split along output features (the last dim); every feature reads the whole input.
    fn split(&self, _devices: u64) -> Split {
        Split { axis: SplitAxis::Last, gathers: true }
    }

    /// Saved for backward: the input (grad_weight = grad_outputᵀ · input; PyTorch's `addmm`/`mm`
    /// formulas save it). Weights are held anyway; the bias gradient needs nothing.
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0)])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        if x.rank() < 2 {
            return Err(KindError::layer(format!("expected an input of rank 2 or more (N×…×in), got {x}")));
        }
        let inf = x.last();
        if let Some(want) = self.in_features {
            if want != inf {
                return Err(KindError::field(
                    "in_features",
                    format!("expected {want} input features, got {inf} (input {x})"),
                ));
            }
        }
        let mut out = x.0.clone();
        *out.last_mut().expect("rank ≥ 2") = self.out_features;
        let output = Shape(out);
        let rows = checked_product(&x.0[..x.rank() - 1])?;
        output.elements()?;
        let weights = mul(inf, self.out_features, "weight count")?;
        let params = add(weights, if self.bias { self.out_features } else { 0 }, "param count")?;
        let macs = mul(rows, weights, "MACs")?;
        Ok(Cost { output, params, buffers: 0, macs })
    }
}

impl crate::candle::build::Build for Linear {
    /// `candle_nn::Linear`: `x · Wᵀ` (W is out×in, PyTorch's layout; a transposed view, no copy)
    /// then a broadcast bias add; ranks above 4 are reshaped to 2-D first. With `tied_to`, the
    /// weight is the named layer's (`LAYER.weight`, the same tensor: GPT-2's lm_head and wte).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_nn::Module;
        let x = cx.input(0);
        let inf = *x.last().expect("rank ≥ 2");
        let out = self.out_features as usize;
        let bound = 1.0 / (inf as f64).sqrt();
        let w = match &self.tied_to {
            Some(t) => cx.alias(t, "weight", &[out, inf])?,
            None => cx.param("weight", &[out, inf], bound)?,
        };
        let b = if self.bias { Some(cx.param("bias", &[out], bound)?) } else { None };
        let lin = candle_nn::Linear::new(w, b);
        let oshape: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            if xs[0].rank() <= 4 {
                lin.forward(&xs[0])
            } else {
                lin.forward(&xs[0].flatten_to(xs[0].rank() - 2)?)?.reshape(oshape.as_slice())
            }
        }))
    }

    /// Candle memory: the matmul (its output, a transient, a copy of a strided input), then the
    /// bias sum.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{CandleLayer, MATMUL_TRANSIENT_BYTES};
        let out = at.out();
        let bias = if self.bias { out } else { 0 };
        CandleLayer {
            output: out,
            peak: out + (at.copy_in() + MATMUL_TRANSIENT_BYTES).max(bias),
            retained: out + bias,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn alexnet_fc1() {
        // Seed article FC1: 6400·4096 + 4096 = 26,218,496 params; 6400·4096 = 26,214,400 MACs.
        let c = run::<Linear>("{out_features: 4096}", &[1, 6400]).unwrap();
        assert_eq!((c.params, c.macs), (26_218_496, 26_214_400));
    }

    #[test]
    fn tokens() {
        // Linear(768→3072) on 1×197×768: 197·768·3072 = 464,781,312 MACs.
        let c = run::<Linear>("{out_features: 3072}", &[1, 197, 768]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 197, 3072]));
        assert_eq!(c.macs, 464_781_312);
    }

    #[test]
    fn in_features_is_checked() {
        let e = run::<Linear>("{out_features: 10, in_features: 9216}", &[1, 6400]).unwrap_err();
        assert_eq!(e.message, "expected 9216 input features, got 6400 (input 1x6400)");
    }

    #[test]
    fn weights_plus_bias_overflow_is_an_error() {
        // (2^32 + 1)·(2^32 − 1) = 2^64 − 1 weights fit; adding 2^32 − 1 biases does not.
        let e = run::<Linear>("{out_features: 4294967295}", &[1, 4294967297]).unwrap_err();
        assert_eq!(e.message, "param count overflows u64 (18446744073709551615+4294967295)");
    }
}
