//! `lstm`: long short-term memory (PyTorch `nn.LSTM`; Hochreiter & Schmidhuber 1997): gates
//! `i, f, g, o = σ, σ, tanh, σ(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh)`, `c_t = f·c_{t−1} + i·g`,
//! `h_t = o·tanh(c_t)`. Shape, params (4 gates, two bias vectors), MACs and saved tensors: the
//! recurrent core in [`super::rnn`].

use super::rnn::{recurrent_kind, Cell, Recurrent, FIELDS};
use crate::spec::fields::Fields;

/// A (stacked, optionally bidirectional) LSTM.
#[derive(Debug, Clone, PartialEq)]
pub struct Lstm(pub Recurrent);

recurrent_kind!(Lstm, "lstm", FIELDS, |f: &Fields| Recurrent::parse(f, Cell::Lstm));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::test_util::run;
    use crate::shape::Shape;

    #[test]
    fn held_case_lstm_64_64_at_100_steps() {
        // Issue 14: LSTM(64, 64) at T = 100, batch 1: params 4·64·64 + 4·64·64 + 2·4·64 =
        // 33,280; MACs 100 · 4·64·(64 + 64) = 3,276,800.
        let c = run::<Lstm>("{hidden_size: 64, batch_first: true}", &[1, 100, 64]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 100, 64]), 33_280, 3_276_800));
        // Without biases: 32,768.
        assert_eq!(run::<Lstm>("{hidden_size: 64, bias: false}", &[100, 1, 64]).unwrap().params, 32_768);
    }

    #[test]
    fn two_layer_lm_and_saved() {
        // specs/lstm-lm.yaml's LSTM(256, 512, num_layers=2): layer 0 4·512·(256 + 512) + 8·512 =
        // 1,576,960; layer 1 4·512·1024 + 8·512 = 2,101,248 → 3,678,208.
        let c = run::<Lstm>("{hidden_size: 512, num_layers: 2, batch_first: true}", &[1, 35, 256]).unwrap();
        assert_eq!(c.params, 3_678_208);
        // Saved, N 2, T 3, H 4, 2 layers: per layer 7·3·2·4 = 168 (one entry each); layer 1's
        // input 2·3·4 = 24.
        let k = crate::kinds::test_util::parse::<Lstm>("{hidden_size: 4, num_layers: 2, batch_first: true}").unwrap();
        let x = Shape(vec![2, 3, 5]);
        let s = crate::kinds::Op::saved(&k, std::slice::from_ref(&x), &x).unwrap();
        let news: Vec<u64> = s
            .iter()
            .filter_map(|s| match s {
                crate::kinds::Saved::New { elements, .. } => Some(*elements),
                _ => None,
            })
            .collect();
        assert_eq!(news, vec![168, 168, 24]);
    }
}
