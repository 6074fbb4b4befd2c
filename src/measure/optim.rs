//! Optimizers for one training step: plain SGD and AdamW from candle-nn (weight decay 0, so
//! Adam), and SGD with momentum (PyTorch's form: `v ← μ·v + g; w ← w − lr·v`).
//! State is created with the optimizer, so a step allocates none.
//!
//! State held, in parameter-sized tensors: SGD 0, momentum 1 (velocity), Adam 2 (first and second moments, created with the optimizer).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer as _;

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain SGD: no state.
    Sgd,
    /// SGD with momentum 0.9: one velocity tensor per parameter.
    Momentum,
    /// Adam (candle-nn AdamW, weight decay 0): two moment tensors per parameter.
    Adam,
}

impl OptimizerKind {
    /// Parameter-sized state tensors this optimizer keeps.
    pub fn state_copies(self) -> u64 {
        match self {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Momentum => 1,
            OptimizerKind::Adam => 2,
        }
    }
}

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
    /// candle-nn AdamW.
    Adam(candle_nn::AdamW),
}

impl Optimizer {
    /// An optimizer of `kind` over `vars` with learning rate `lr`.
    pub fn new(kind: OptimizerKind, vars: Vec<Var>, lr: f64) -> Result<Optimizer> {
        Ok(match kind {
            OptimizerKind::Sgd => Optimizer::Sgd(candle_nn::SGD::new(vars, lr)?),
            OptimizerKind::Momentum => {
                let velocity = vars.iter().map(|v| v.zeros_like().map(Some)).collect::<Result<_>>()?;
                Optimizer::Momentum { vars, velocity, lr, mu: 0.9 }
            }
            OptimizerKind::Adam => Optimizer::Adam(candle_nn::AdamW::new(
                vars,
                candle_nn::ParamsAdamW { lr, weight_decay: 0.0, ..Default::default() },
            )?),
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
