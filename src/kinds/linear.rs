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
//!
//! LoRA (`lora: {rank, alpha}`, [`super::lora`]): the weight and bias are frozen and a trainable
//! `A` (r×in) and `B` (out×r) are added: params `+ r·in + out·r`, MACs `+ rows·in·r + rows·r·out`,
//! saved `+ rows·r` (`x·Aᵀ`); only A and B get gradients and optimizer state.

use super::{Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, SavedDType, Split, SplitAxis};
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
    /// LoRA adapters (`lora:`): the weight and bias frozen, A and B trained.
    pub lora: Option<super::lora::Lora>,
}

impl KindSpec for Linear {
    const NAME: &'static str = "linear";
    const FIELDS: &'static [&'static str] = &["out_features", "in_features", "bias", "tied_to", "lora"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let lora = super::lora::Lora::parse(f, false)?;
        if lora.is_some() && f.get("tied_to").is_some() {
            return Err(f.err(
                f.loc("lora"),
                "`lora`: adapters on a tied weight (`tied_to`) are not modelled; adapt the owner",
            ));
        }
        Ok(Linear {
            lora,
            out_features: f.req_pos("out_features")?,
            in_features: f.pos("in_features")?,
            bias: f.bool("bias")?.unwrap_or(true),
            tied_to: f.str("tied_to")?.map(str::to_owned),
        })
    }
}

impl Op for Linear {
    /// Parameter tensors: the weight, then the bias when `bias` (PyTorch's `weight`, `bias`),
    /// then LoRA's `lora_A.weight` and `lora_B.weight` when `lora`.
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let params = self.analyze(inputs)?.params;
        let adapters = self.adapter_tensors(inputs)?.unwrap_or_default();
        let base = params - adapters.iter().sum::<u64>();
        let mut t = super::weight_and_bias(base, if self.bias { Some(self.out_features) } else { None });
        t.extend(adapters);
        Ok(t)
    }

    /// With `lora`: A (r·in) and B (out·r) train; the weight and bias are frozen.
    fn adapter_tensors(&self, inputs: &[Shape]) -> Result<Option<Vec<u64>>, KindError> {
        match &self.lora {
            Some(l) => Ok(Some(l.tensors(inputs[0].last(), self.out_features)?.to_vec())),
            None => Ok(None),
        }
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
    /// formulas save it). Weights are held anyway; the bias gradient needs nothing. With
    /// `lora`, also `x·Aᵀ` (rows·r, for B's gradient; `x` serves A's).
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        let mut s = vec![Saved::Input(0)];
        if let Some(l) = &self.lora {
            let x = &inputs[0];
            let rows = checked_product(&x.0[..x.rank().saturating_sub(1)])?;
            s.push(Saved::New { elements: l.saved(rows)?, dtype: SavedDType::Activation, what: "LoRA x·Aᵀ" });
        }
        Ok(s)
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
        let mut params = add(weights, if self.bias { self.out_features } else { 0 }, "param count")?;
        let mut macs = mul(rows, weights, "MACs")?;
        if let Some(l) = &self.lora {
            params = add(params, l.params(inf, self.out_features)?, "param count")?;
            macs = add(macs, l.macs(rows, inf, self.out_features)?, "MACs")?;
        }
        Ok(Cost { output, params, buffers: 0, macs })
    }
}

impl crate::candle::build::Build for Linear {
    /// `candle_nn::Linear`: `x · Wᵀ` (W is out×in, PyTorch's layout; a transposed view, no copy)
    /// then a broadcast bias add; ranks above 4 are reshaped to 2-D first. With `tied_to`, the
    /// weight is the named layer's (`LAYER.weight`, the same tensor: GPT-2's lm_head and wte).
    /// With `lora`, the weight and bias are frozen (plain tensors) and the output is
    /// `base(x) + ((x·Aᵀ)·Bᵀ)·α/r` with trainable `lora_A.weight` (r×in, uniform ±1/√in: PEFT's
    /// `kaiming_uniform_(a=√5)`) and `lora_B.weight` (out×r, uniform ±1/√r where PEFT starts it
    /// at zero, so that a gradient check sees A's gradient too).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_nn::Module;
        let x = cx.input(0);
        let inf = *x.last().expect("rank ≥ 2");
        let out = self.out_features as usize;
        let bound = 1.0 / (inf as f64).sqrt();
        let trainable = cx.trainable;
        cx.trainable = trainable && self.lora.is_none();
        let w = match &self.tied_to {
            Some(t) => cx.alias(t, "weight", &[out, inf])?,
            None => cx.param("weight", &[out, inf], bound)?,
        };
        let b = if self.bias { Some(cx.param("bias", &[out], bound)?) } else { None };
        cx.trainable = trainable;
        let lin = candle_nn::Linear::new(w, b);
        let lora = match &self.lora {
            Some(l) => {
                let r = l.rank as usize;
                let a = cx.param("lora_A.weight", &[r, inf], bound)?;
                let b = cx.param("lora_B.weight", &[out, r], 1.0 / (r as f64).sqrt())?;
                Some((candle_nn::Linear::new(a, None), candle_nn::Linear::new(b, None), l.scaling()))
            }
            None => None,
        };
        let oshape: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            let x = if xs[0].rank() <= 4 { xs[0].clone() } else { xs[0].flatten_to(xs[0].rank() - 2)? };
            let mut y = lin.forward(&x)?;
            if let Some((a, b, scaling)) = &lora {
                let z = (b.forward(&a.forward(&x)?)? * *scaling)?;
                y = (y + z)?;
            }
            if xs[0].rank() <= 4 {
                Ok(y)
            } else {
                y.reshape(oshape.as_slice())
            }
        }))
    }

    /// Candle memory: the matmul (its output, a transient, a copy of a strided input), then the
    /// bias sum. With `lora`, then `x·Aᵀ` (rows·r), `·Bᵀ` and its scaled copy (O each, one
    /// statement: all live at its end) beside the base output, then the sum (O): peak
    /// `max(base, O + rows·r + 2·O, 3·O)`; all of them kept for backward.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{elems, CandleLayer, MATMUL_TRANSIENT_BYTES};
        let out = at.out();
        let bias = if self.bias { out } else { 0 };
        let base = out + (at.copy_in() + MATMUL_TRANSIENT_BYTES).max(bias);
        let Some(l) = &self.lora else {
            return CandleLayer { output: out, peak: base, retained: out + bias, ..Default::default() };
        };
        let x = at.x();
        let ar = elems(&x[..x.len() - 1]) * l.rank * at.s;
        CandleLayer {
            output: out,
            peak: base.max(out + ar + 2 * out + MATMUL_TRANSIENT_BYTES).max(3 * out),
            retained: out + bias + ar + 3 * out,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
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
    fn lora_adapters() {
        // Linear(4096→4096, no bias) on 1×128×4096 with LoRA r = 8 (Hu et al. 2021 §4.1):
        // base 4096·4096 = 16,777,216 frozen; A 8·4096 = 32,768 and B 4096·8 = 32,768 train;
        // params 16,842,752. MACs 128·4096·4096 = 2,147,483,648 + 128·4096·8 + 128·8·4096 =
        // 8,388,608 → 2,155,872,256. Saved: the input and x·Aᵀ, 128·8 = 1,024 elements.
        let k = parse::<Linear>("{out_features: 4096, bias: false, lora: {rank: 8, alpha: 16}}").unwrap();
        let x = [Shape(vec![1, 128, 4096])];
        let c = k.analyze(&x).unwrap();
        assert_eq!((c.params, c.macs), (16_842_752, 2_155_872_256));
        assert_eq!(k.param_tensors(&x).unwrap(), vec![16_777_216, 32_768, 32_768]);
        assert_eq!(k.adapter_tensors(&x).unwrap(), Some(vec![32_768, 32_768]));
        let saved = k.saved(&x, &c.output).unwrap();
        assert_eq!(saved[0], Saved::Input(0));
        assert!(matches!(saved[1], Saved::New { elements: 1024, .. }));
        assert_eq!(k.lora.as_ref().unwrap().scaling(), 2.0);
    }

    #[test]
    fn lora_fields_are_checked() {
        let e = parse::<Linear>("{out_features: 8, lora: {rank: 4, targets: [q]}}").unwrap_err();
        assert!(e.to_string().contains("`lora.targets`: a linear layer is one projection"), "{e}");
        let e = parse::<Linear>("{out_features: 8, lora: {rnak: 4}}").unwrap_err();
        assert!(e.to_string().contains("`lora`: unknown field `rnak` (did you mean `rank`?)"), "{e}");
        let e = parse::<Linear>("{out_features: 8, lora: {alpha: 4}}").unwrap_err();
        assert!(e.to_string().contains("`lora`: missing required field `rank`"), "{e}");
        let e = parse::<Linear>("{out_features: 8, lora: 4}").unwrap_err();
        assert!(e.to_string().contains("`lora`: expected a mapping"), "{e}");
        let e = parse::<Linear>("{out_features: 8, tied_to: wte, lora: {rank: 4}}").unwrap_err();
        assert!(e.to_string().contains("adapters on a tied weight"), "{e}");
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
