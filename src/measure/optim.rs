//! Optimizers for one training step, one for each [`crate::memory::Optimizer`] (the one
//! `--optimizer` enum of every subcommand): plain SGD and AdamW from candle-nn (Adam is AdamW
//! with weight decay 0; AdamW keeps candle-nn's and PyTorch's default decoupled weight decay
//! 0.01, Loshchilov & Hutter 2019), and SGD with momentum (PyTorch's form:
//! `v ← μ·v + g; w ← w − lr·v`). State is created with the optimizer, so a step allocates none.
//!
//! State held, in parameter-sized tensors: SGD 0, momentum 1 (velocity), Adam and AdamW 2
//! (first and second moments, created with the optimizer) — [`crate::memory::Optimizer::state_copies`].

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer as _;

/// A live optimizer over a set of variables.
pub enum Optimizer {
    /// candle-nn SGD.
    Sgd(candle_nn::SGD),
    /// Momentum SGD.
    Momentum {
        /// The variables.
        vars: Vec<Var>,
        /// Velocities (zeros at first, as PyTorch's first step `v = g` is `0.9·0 + g`).
        velocity: Vec<Option<Tensor>>,
        /// Learning rate.
        lr: f64,
        /// Momentum.
        mu: f64,
    },
    /// candle-nn AdamW (Adam: weight decay 0).
    Adam(candle_nn::AdamW),
}

impl Optimizer {
    /// An optimizer of `kind` over `vars` with learning rate `lr`.
    pub fn new(kind: crate::memory::Optimizer, vars: Vec<Var>, lr: f64) -> Result<Optimizer> {
        use crate::memory::Optimizer as O;
        let adamw = |weight_decay| candle_nn::ParamsAdamW { lr, weight_decay, ..Default::default() };
        Ok(match kind {
            O::Sgd => Optimizer::Sgd(candle_nn::SGD::new(vars, lr)?),
            O::Momentum => {
                let velocity = vars.iter().map(|v| v.zeros_like().map(Some)).collect::<Result<_>>()?;
                Optimizer::Momentum { vars, velocity, lr, mu: 0.9 }
            }
            O::Adam => Optimizer::Adam(candle_nn::AdamW::new(vars, adamw(0.0))?),
            // PyTorch's AdamW default weight_decay = 0.01 (torch.optim.AdamW docs); candle-nn's too.
            O::Adamw => Optimizer::Adam(candle_nn::AdamW::new(vars, adamw(0.01))?),
        })
    }

    /// Apply one update from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Optimizer::Sgd(o) => o.step(grads),
            Optimizer::Adam(o) => o.step(grads),
            Optimizer::Momentum { vars, velocity, lr, mu } => {
                for (v, vel) in vars.iter().zip(velocity.iter_mut()) {
                    let Some(g) = grads.get(v) else { continue };
                    let nv = match vel.take() {
                        Some(old) => (old.affine(*mu, 0.0)? + g)?,
                        None => g.copy()?,
                    };
                    let nv = nv.detach();
                    v.set(&(v.as_tensor() - nv.affine(*lr, 0.0)?)?)?;
                    *vel = Some(nv);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Optimizer as O;
    use candle_core::Device;

    /// One step on w = 1 with a zero gradient (lr 1e-3): Adam's update m̂/(√v̂ + ε) is 0, so
    /// w stays 1; AdamW first decays it, w ← w·(1 − lr·λ) = 1 − 1e-3·0.01 = 0.99999
    /// (torch.optim.AdamW docs, default λ = 0.01).
    #[test]
    fn adamw_decays_the_weights_and_adam_does_not() {
        let step = |kind| {
            let w = Var::from_tensor(&Tensor::new(&[1f64], &Device::Cpu).unwrap()).unwrap();
            let mut opt = Optimizer::new(kind, vec![w.clone()], 1e-3).unwrap();
            let mut grads = GradStore::default();
            grads.insert(&w, w.zeros_like().unwrap());
            opt.step(&grads).unwrap();
            w.as_tensor().to_vec1::<f64>().unwrap()[0]
        };
        assert_eq!(step(O::Adam), 1.0);
        assert!((step(O::Adamw) - 0.99999).abs() < 1e-12, "{}", step(O::Adamw));
    }
}
