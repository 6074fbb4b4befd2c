//! Tensor parallelism over `T` devices, as Megatron-LM splits a transformer (Shoeybi et al.
//! 2019, "Megatron-LM: Training Multi-Billion Parameter Language Models Using Model
//! Parallelism", §3, Figure 3; activations as Korthikanti et al. 2022, Table 2, "tensor
//! parallel", without sequence parallelism).
//!
//! | layer | split | this device holds |
//! |---|---|---|
//! | `multi_head_attention` | Q, K, V column-parallel by heads, `out_proj` row-parallel | `1/T` of the heads: its weights and every tensor it saves (Q, K, V, probabilities, context, …); the out-projection bias whole; the output whole (after the all-reduce) |
//! | `gated_mlp` | gate and up column-parallel, down row-parallel | `1/T` of the hidden units: weights and saved tensors; the down bias whole; the output whole |
//! | `embedding` | vocabulary-parallel | `⌈V/T⌉` rows of the table; the output whole (after the all-reduce) |
//! | the network's output `linear` | vocabulary-parallel (column), cross-entropy on the split logits | `1/T` of the weights and of the logits |
//! | every other layer (norms, residual adds, activations between blocks, convolutions, …) | replicated | everything |
//!
//! Each layer's input is whole on every device (the layer norm's output is replicated), so a
//! layer that saves its input for backward keeps it whole. Shares of the split parts are
//! `⌈x / T⌉`; attention needs `heads` and `kv_heads` to be multiples of `T`, a gated MLP its
//! `hidden` (Megatron's own requirement). `mixture_of_experts` is refused (experts are spread by
//! expert parallelism, which netstat does not model). Not counted: the all-reduce buffers
//! (NCCL reduces in place) and the `T`-way copies of the input gradient before their all-reduce.

use crate::analysis::Analysis;
use crate::kinds::Kind;

/// How one layer is split over the `T` devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Its parameters and the tensors it saves are split (`⌈·/T⌉`), except `replicated`
    /// parameter elements.
    pub split: bool,
    /// Parameter elements every device holds whole (a row-parallel bias).
    pub replicated: u64,
    /// Its output is split (`⌈·/T⌉`): the vocabulary-parallel logits.
    pub output: bool,
}

impl Rule {
    const REPLICATED: Rule = Rule { split: false, replicated: 0, output: false };
}

/// The tensor-parallel split of every layer of an analysed spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TensorParallel {
    /// Devices `T` (1: none).
    pub devices: u64,
    /// Each layer's rule, by layer (spec index).
    pub rules: Vec<Rule>,
}

impl TensorParallel {
    /// The split of `a` over `devices` devices.
    ///
    /// Errors (at the layer's line and column, naming it): `devices` = 0 (at the input); heads, kv_heads or hidden not a multiple of
    /// `devices`; a `mixture_of_experts` layer with `devices` > 1.
    pub fn new(a: &Analysis, devices: u64) -> Result<TensorParallel, crate::error::SpecError> {
        if devices == 0 {
            let m = "--tensor-parallel: expected at least 1 device, got 0";
            return Err(crate::error::SpecError::new(&a.spec.file, a.spec.input.loc, m));
        }
        let n = a.spec.layers.len();
        if devices == 1 {
            return Ok(TensorParallel { devices, rules: vec![Rule::REPLICATED; n] });
        }
        let mut rules = vec![Rule::REPLICATED; n];
        for l in &a.layers {
            let ls = &a.spec.layers[l.index];
            // At the layer's line and column, naming it.
            let at = |m: String| {
                crate::error::SpecError::new(&a.spec.file, ls.node.loc, format!("--tensor-parallel {devices}: {m}"))
                    .in_layer(&ls.id)
            };
            let multiple = |what: &str, v: u64| {
                if v.is_multiple_of(devices) {
                    Ok(())
                } else {
                    Err(at(format!("{what} {v} is not a multiple of {devices}")))
                }
            };
            let d = l.output.last();
            rules[l.index] = match &ls.kind {
                Kind::MultiHeadAttention(m) => {
                    multiple("heads", m.heads)?;
                    multiple("kv_heads", m.kv_heads.unwrap_or(m.heads))?;
                    Rule { split: true, replicated: if m.bias { d } else { 0 }, output: false }
                }
                Kind::GatedMlp(g) => {
                    multiple("hidden", g.hidden)?;
                    Rule { split: true, replicated: if g.bias { d } else { 0 }, output: false }
                }
                Kind::Embedding(_) => Rule { split: true, replicated: 0, output: false },
                Kind::Linear(_) if a.graph.consumers[l.index].is_empty() => {
                    Rule { split: true, replicated: 0, output: true }
                }
                Kind::MixtureOfExperts(_) => {
                    return Err(at("mixture_of_experts is spread by expert parallelism, which is not modelled".into()))
                }
                _ => Rule::REPLICATED,
            };
        }
        Ok(TensorParallel { devices, rules })
    }

    /// This device's elements of `elems` parameter elements of layer `i`:
    /// `⌈(elems − r) / T⌉ + r` with `r` = the replicated elements (at most `elems`).
    pub fn params(&self, i: usize, elems: u64) -> u64 {
        let r = self.rules[i];
        if !r.split {
            return elems;
        }
        let rep = r.replicated.min(elems);
        (elems - rep).div_ceil(self.devices) + rep
    }

    /// This device's elements of a tensor of `elems` elements layer `i` saves for backward.
    pub fn saved(&self, i: usize, elems: u64) -> u64 {
        if self.rules[i].split {
            elems.div_ceil(self.devices)
        } else {
            elems
        }
    }

    /// This device's elements of layer `i`'s output of `elems` elements.
    pub fn output(&self, i: usize, elems: u64) -> u64 {
        if self.rules[i].output {
            elems.div_ceil(self.devices)
        } else {
            elems
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::memory::{model, Memory, Optimizer, Options};

    fn tiny(tensor_parallel: u64, extra: &str) -> Result<Memory, String> {
        let yaml = format!(
            "name: tp\ninput: [16, 64]\nlayers:\n  \
             - {{name: attn, kind: multi_head_attention, heads: 4, kv_heads: 2, {extra}}}\n  \
             - {{name: mlp, kind: gated_mlp, hidden: 256}}\n  - {{name: head, kind: linear, out_features: 1000, bias: false}}\n"
        );
        let spec = crate::spec::parse_bytes("tp.yaml", yaml.as_bytes()).unwrap();
        let o = Options { optimizer: Optimizer::Sgd, tensor_parallel, ..Options::DEFAULT };
        model(&crate::analysis::analyze(spec).unwrap(), &o).map_err(|e| e.to_string())
    }

    // 16 tokens × 64 (batch 1, f32), SGD; no loss: the caller holds the logits.
    // Params: attention 4 heads of 16, 2 kv heads (W_kv 32): q 64·64 = 4,096, k and v
    // 32·64 = 2,048 each, out 4,096 = 12,288; gated MLP 3·64·256 = 49,152; head 64·1000 =
    // 64,000; Σ 125,440. Over 2 devices: 6,144 + 24,576 + 32,000 = 62,720 → 250,880 B.
    // Saved for backward, elements (docs/memory.md; grouped attention's math path keeps K and
    // V only as repeated to every head): attention's Q 16·64 = 1,024, K and V repeated
    // 2·16·64 = 2,048, probabilities 4·16·16 = 1,024, context 16·64 = 1,024: 5,120; its output
    // 1,024 (the MLP's input); the MLP's 4·16·256 = 16,384 and its output 1,024 (the head's
    // input); the logits 16,000. One device: 39,552 · 4 = 158,208 B. Two: the attention's and
    // MLP's new tensors and the logits halve, the block outputs stay whole: 2,560 + 1,024 +
    // 8,192 + 1,024 + 8,000 = 20,800 · 4 = 83,200 B.
    #[test]
    fn attention_mlp_and_head_over_two_devices() {
        let one = tiny(1, "bias: false").unwrap();
        assert_eq!((one.param_bytes, one.saved_activation_bytes), (125_440 * 4, 158_208));
        let two = tiny(2, "bias: false").unwrap();
        assert_eq!((two.param_bytes, two.gradient_bytes), (250_880, 250_880));
        assert_eq!(two.saved_activation_bytes, 83_200);
        assert_eq!(two.tensor_parallel, 2);
        // 4 heads do not split over 8 devices, 2 kv heads not over 4.
        let e = tiny(8, "bias: false").unwrap_err();
        // At the layer's line (it was the input's), naming it.
        assert!(
            e.starts_with("tp.yaml:4:")
                && e.contains(
                    "layer #0 \"attn\" (multi_head_attention): --tensor-parallel 8: heads 4 is not a multiple of 8"
                ),
            "{e}"
        );
        assert!(tiny(4, "bias: false").unwrap_err().contains("kv_heads 2 is not a multiple of 4"));
        // With biases the out-projection bias (64) stays whole: the attention's Q, K, V biases
        // 64 + 32 + 32 and the other weights halve: (12,288 + 128) / 2 + 64 = 6,272.
        let biased = tiny(2, "bias: true").unwrap();
        assert_eq!(biased.param_bytes, (6_272 + 24_576 + 32_000) * 4);
    }
}
