//! `dropout` (PyTorch `nn.Dropout(p)`): zeroes each element with probability `p` in training,
//! identity in inference.
//!
//! Shape unchanged; no params; 0 MACs.

use super::{same_shape, Cost, KindError, KindSpec, Op};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A dropout layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    /// Drop probability in [0, 1), default 0.5 (PyTorch's).
    pub p: f64,
}

impl KindSpec for Dropout {
    const NAME: &'static str = "dropout";
    const FIELDS: &'static [&'static str] = &["p", "inplace"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let p = f.float("p")?.unwrap_or(0.5);
        if !(0.0..1.0).contains(&p) {
            return Err(f.err(f.loc("p"), format!("`p`: expected a probability in [0, 1), got {p}")));
        }
        f.bool("inplace")?;
        Ok(Dropout { p })
    }
}

impl Op for Dropout {
    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        same_shape(inputs)
    }
}
