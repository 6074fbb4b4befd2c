//! `gru`: gated recurrent unit (PyTorch `nn.GRU`; Cho et al. 2014): `r, z = σ(x·W_i{r,z}ᵀ +
//! b_i{r,z} + h·W_h{r,z}ᵀ + b_h{r,z})`, `n = tanh(x·W_inᵀ + b_in + r·(h·W_hnᵀ + b_hn))`,
//! `h' = (1 − z)·n + z·h`. Shape, params (3 gates, two bias vectors: `b_hn` sits inside the
//! reset product, which is why PyTorch keeps both), MACs and saved tensors: the recurrent core
//! in [`super::rnn`].

use super::rnn::{recurrent_kind, Cell, Recurrent, FIELDS};
use crate::spec::fields::Fields;

/// A (stacked, optionally bidirectional) GRU.
#[derive(Debug, Clone, PartialEq)]
pub struct Gru(pub Recurrent);

recurrent_kind!(Gru, "gru", FIELDS, |f: &Fields| Recurrent::parse(f, Cell::Gru));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::test_util::run;

    #[test]
    fn held_case_gru_128_128_batch_10_at_32_steps() {
        // Issue 14: GRU(128, 128), batch 10, T = 32: MACs 10·32 · 3·128·(128 + 128) =
        // 320 · 98,304 = 31,457,280; params 3·128·128·2 + 2·3·128 = 99,072.
        let c = run::<Gru>("{hidden_size: 128}", &[32, 10, 128]).unwrap();
        assert_eq!((c.params, c.macs), (99_072, 31_457_280));
    }
}
