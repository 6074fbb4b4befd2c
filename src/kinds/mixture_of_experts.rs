//! `mixture_of_experts`: a sparse mixture of gated-MLP experts with a top-k router (Shazeer et
//! al. 2017; Mixtral, Jiang et al. 2024; Hugging Face `MixtralSparseMoeBlock`).
//!
//! Each token's router logits `x·W_gᵀ` (a bias-free linear D → n) go through softmax; the
//! token runs through its `top_k` experts, whose outputs are summed weighted by their softmax
//! probabilities renormalized over the chosen k. Every expert is a [`super::gated_mlp`] of
//! `hidden` H (SwiGLU: gate, up, down).
//!
//! Input `…×D`, output `…×D`. With R rows (tokens):
//! - params (total): router `D·n` + `n` experts of `3·D·H` each;
//! - params active per token ([`MixtureOfExperts::active_params`]): router + `top_k` experts
//!   (Mixtral-8x7B: 12,879,925,248 of 46,702,792,704);
//! - MACs: `R·(D·n + top_k·3·D·H)`: the router and the top_k experts each token runs;
//! - memory: every expert's weights (all are resident), activations of the routed tokens.

use super::gated_mlp::GatedMlp;
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, SavedDType, Split, SplitAxis};
use crate::error::SpecError;
use crate::shape::{add, checked_product, mul, Shape};
use crate::spec::fields::Fields;

/// The most experts one layer takes (published models use 8 to 256; Switch Transformer 2,048):
/// 10⁹ experts took over 8 GB and did not finish in 20 s.
pub const MAX_EXPERTS: u64 = 65_536;

/// A top-k mixture of SwiGLU experts.
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureOfExperts {
    /// Number of experts n.
    pub experts: u64,
    /// Experts per token k (≤ n).
    pub top_k: u64,
    /// Hidden size H of every expert.
    pub hidden: u64,
}

impl KindSpec for MixtureOfExperts {
    const NAME: &'static str = "mixture_of_experts";
    const FIELDS: &'static [&'static str] = &["experts", "top_k", "hidden"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let experts = f
            .pos_at_most("experts", MAX_EXPERTS, "each expert has its own weights")?
            .ok_or_else(|| f.err(f.node.loc, "missing required field `experts`"))?;
        let top_k = f.req_pos("top_k")?;
        if top_k > experts {
            return Err(f.err(f.loc("top_k"), format!("`top_k`: expected at most experts ({experts}), got {top_k}")));
        }
        Ok(MixtureOfExperts { experts, top_k, hidden: f.req_pos("hidden")? })
    }
}

impl MixtureOfExperts {
    fn expert(&self) -> GatedMlp {
        GatedMlp { hidden: self.hidden, out_features: None, bias: false }
    }

    /// Parameters of one expert for width `d`: `3·D·H`.
    pub fn expert_params(&self, d: u64) -> Result<u64, KindError> {
        Ok(self.expert().tensors(d)?.into_iter().try_fold(0u64, |a, t| add(a, t, "params"))?)
    }

    /// Parameters one token uses for width `d`: the router and `top_k` experts.
    pub fn active_params(&self, d: u64) -> Result<u64, KindError> {
        Ok(add(mul(d, self.experts, "params")?, mul(self.top_k, self.expert_params(d)?, "params")?, "params")?)
    }
}

impl Op for MixtureOfExperts {
    /// Parameter tensors: `gate.weight` (n·D), then per expert `w1` (gate, H·D), `w3` (up, H·D),
    /// `w2` (down, D·H) as [`GatedMlp::tensors`].
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        let d = inputs[0].last();
        let mut t = vec![mul(self.experts, d, "weights")?];
        for _ in 0..self.experts {
            t.extend(self.expert().tensors(d)?);
        }
        Ok(t)
    }

    /// Peers: a container of no class they single out.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { torchinfo_leaf: false, ..Peer::OTHER }
    }

    /// Split along the features; dense in its input (expert parallelism is not modelled).
    fn split(&self, _devices: u64) -> Split {
        Split { axis: SplitAxis::Last, gathers: true }
    }

    /// Saved for backward (Hugging Face `MixtralSparseMoeBlock`): the input (router weight
    /// gradient), the router probabilities (`R·n`, softmax keeps its output), the chosen experts
    /// (`R·k` int64, `topk` indices), and per routed token (R·k of them): its gathered input
    /// (D, read by the expert's gate and up projections), the expert's four H-sized tensors
    /// ([`GatedMlp`]'s saved rule) and its output (D, kept by the product with the routing
    /// weight): `R·k·(2·D + 4·H)`.
    fn saved(&self, inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        let x = &inputs[0];
        let d = x.last();
        let rows = x.elements()? / d.max(1);
        let routed = mul(rows, self.top_k, "saved elements")?;
        let per = add(mul(2, d, "saved elements")?, mul(4, self.hidden, "saved elements")?, "saved elements")?;
        Ok(vec![
            Saved::Input(0),
            Saved::New {
                elements: checked_product(&[rows, self.experts])?,
                dtype: SavedDType::Activation,
                what: "router probabilities",
            },
            Saved::New { elements: routed, dtype: SavedDType::I64, what: "top-k expert indices" },
            Saved::New { elements: mul(routed, per, "saved elements")?, dtype: SavedDType::Activation, what: "routed tokens" },
        ])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        if x.rank() < 2 {
            return Err(KindError::layer(format!("expected an input N×…×D of rank ≥ 2, got {x}")));
        }
        let d = x.last();
        let rows = x.elements()? / d.max(1);
        let params = add(mul(d, self.experts, "params")?, mul(self.experts, self.expert_params(d)?, "params")?, "params")?;
        let per_token = add(mul(d, self.experts, "MACs")?, mul(self.top_k, self.expert().macs_per_row(d)?, "MACs")?, "MACs")?;
        Ok(Cost { output: x.clone(), params, buffers: 0, macs: mul(rows, per_token, "MACs")? })
    }
}

impl crate::candle::build::Build for MixtureOfExperts {
    /// Dense in candle: every expert runs on every token and the outputs are summed with the
    /// routing weights, which are zero off each token's top k (`p·m / Σ p·m`, m the 0/1 mask of
    /// the k largest probabilities, taken from the values: the same function and gradients as
    /// sparse routing, at n/k times the expert work). Rank > 3 inputs are flattened to rank 3.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::{Tensor, D};
        use candle_nn::Module;
        let x = cx.input(0);
        let d = *x.last().expect("rank ≥ 2");
        let (n, k, h) = (self.experts as usize, self.top_k as usize, self.hidden as usize);
        let router = candle_nn::Linear::new(cx.param("gate.weight", &[n, d], 1.0 / (d as f64).sqrt())?, None);
        let experts = (0..n)
            .map(|e| super::gated_mlp::build_projections(cx, &format!("experts.{e}."), d, h, d, false))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let oshape: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
        Ok(Box::new(move |xs: &[Tensor], _| {
            let x = if xs[0].rank() <= 3 { xs[0].clone() } else { xs[0].flatten_to(xs[0].rank() - 2)? };
            let p = candle_nn::ops::softmax(&router.forward(&x)?, D::Minus1)?;
            // The top-k mask, from the values (a constant: selection has no gradient).
            let flat: Vec<f64> = p.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1()?;
            let mut mask = vec![0f64; flat.len()];
            for (row, m) in flat.chunks(n).zip(mask.chunks_mut(n)) {
                let mut idx: Vec<usize> = (0..n).collect();
                idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                for &i in &idx[..k] {
                    m[i] = 1.0;
                }
            }
            let mask = Tensor::from_vec(mask, p.shape(), p.device())?.to_dtype(p.dtype())?;
            let pm = (p * mask)?;
            let w = pm.broadcast_div(&pm.sum_keepdim(D::Minus1)?)?;
            let mut y: Option<Tensor> = None;
            for (e, proj) in experts.iter().enumerate() {
                let o = super::gated_mlp::forward(proj, &x)?.broadcast_mul(&w.narrow(D::Minus1, e, 1)?)?;
                y = Some(match y {
                    None => o,
                    Some(acc) => (acc + o)?,
                });
            }
            y.expect("at least one expert").reshape(oshape.as_slice())
        }))
    }

    /// Candle memory of the dense builder (R rows, B = R·D·s, Hb = R·H·s, n experts): router
    /// logits and softmax (its three values, `R·n·s` each, plus two per-row values), the mask,
    /// `p·m`, its sum and the weights; per expert the gated MLP (gate, silu, up, product: 4·Hb;
    /// down: B), the weighted output (B) and the running sum (B, from the second expert on).
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let out = at.out();
        let x = at.x();
        let rows: u64 = x[..x.len() - 1].iter().product();
        let s = at.s;
        let rn = rows * self.experts * s;
        let router = 6 * rn + 3 * rows * s;
        let hb = rows * self.hidden * s;
        let per_expert = 4 * hb + 3 * out;
        // The first expert's weighted output starts the sum: no addition.
        let retained = router + self.experts * per_expert - out;
        // Inference frees as it goes: the router leaves p, the mask, p·m and the weights
        // (R·n·s each) and the top-k selection's f64 copy of p (R·n·8 B, a Vec held to the
        // end); then, beside the running sum (B), one expert at a time: its gated MLP (peak 3·Hb,
        // or Hb beside its down projection B), its output and the weighted output (2·B), or the
        // weighted output and the new sum (2·B).
        let router_live = 4 * rn + rows * self.experts * 8;
        let expert = (3 * hb).max(hb + out + crate::candle::model::MATMUL_TRANSIENT_BYTES).max(2 * out);
        let peak = router_live + out + expert;
        crate::candle::model::CandleLayer { output: out, peak, retained, ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{parse, run};
    use super::*;

    #[test]
    fn mixtral_layer() {
        // Mixtral-8x7B block_sparse_moe (config.json: hidden 4096, intermediate 14336, 8 experts,
        // top 2): expert 3·4096·14336 = 176,160,768; total 4096·8 + 8·176,160,768 =
        // 1,409,318,912; active 32,768 + 2·176,160,768 = 352,354,304.
        // MACs on 1×128×4096: 128 · 352,354,304 = 45,101,350,912.
        let m = parse::<MixtureOfExperts>("{experts: 8, top_k: 2, hidden: 14336}").unwrap();
        let c = m.analyze(&[Shape(vec![1, 128, 4096])]).unwrap();
        assert_eq!((c.params, c.macs), (1_409_318_912, 45_101_350_912));
        assert_eq!(m.active_params(4096).unwrap(), 352_354_304);
        assert!(run::<MixtureOfExperts>("{experts: 2, top_k: 2, hidden: 3}", &[4]).is_err());
        assert!(parse::<MixtureOfExperts>("{experts: 2, top_k: 3, hidden: 3}").unwrap_err().to_string().contains("at most"));
    }

    #[test]
    fn saved() {
        // R 6, D 4, H 5, n 3, k 2: probabilities 18; indices 12; routed 12·(8 + 20) = 336.
        let m = parse::<MixtureOfExperts>("{experts: 3, top_k: 2, hidden: 5}").unwrap();
        let x = Shape(vec![2, 3, 4]);
        let s = m.saved(std::slice::from_ref(&x), &x).unwrap();
        let e: Vec<u64> = s
            .iter()
            .filter_map(|s| match s {
                Saved::New { elements, .. } => Some(*elements),
                _ => None,
            })
            .collect();
        assert_eq!(e, vec![18, 12, 336]);
    }
}
