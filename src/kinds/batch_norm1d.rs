//! `batch_norm1d` over `N×C` or `N×C×L` (PyTorch `nn.BatchNorm1d`, which runs the same
//! `native_batch_norm` as the 2-D layer on the channels): statistics per channel over N (and
//! L). Fields, params (2·C), buffers (2·C running statistics, one int64 counter), 0 MACs and
//! saved tensors as `batch_norm2d`, on an `N×C×1×L` view.

use super::batch_norm2d::BatchNorm2d;
use super::window::as_2d;
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A 1-D batch normalization: the 2-D one on the `as_2d` view.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm1d(pub BatchNorm2d);

impl KindSpec for BatchNorm1d {
    const NAME: &'static str = "batch_norm1d";
    const FIELDS: &'static [&'static str] = BatchNorm2d::FIELDS;
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(BatchNorm1d(BatchNorm2d::parse(f)?))
    }
}

impl Op for BatchNorm1d {
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        self.0.param_tensors(&[as_2d(&inputs[0])])
    }
    fn counter_buffers(&self) -> u64 {
        self.0.counter_buffers()
    }
    fn peer(&self, output: &Shape) -> Peer {
        self.0.peer(output)
    }
    fn split(&self, devices: u64) -> Split {
        self.0.split(devices)
    }
    /// As `batch_norm2d`: the input and the batch mean and inverse std per channel.
    fn saved(&self, inputs: &[Shape], output: &Shape) -> Result<Vec<Saved>, KindError> {
        self.0.saved(&[as_2d(&inputs[0])], &as_2d(output))
    }
    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        if !(2..=3).contains(&x.rank()) {
            return Err(KindError::layer(format!("expected a rank-2 or rank-3 input (N×C or N×C×L), got {x} (rank {})", x.rank())));
        }
        let c = self.0.analyze(&[as_2d(x)])?;
        Ok(Cost { output: x.clone(), ..c })
    }
}

impl crate::candle::build::Build for BatchNorm1d {
    /// `batch_norm2d`'s builder on the `N×C×1×L` view.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        super::window::build_as_2d(cx, &self.0)
    }
    /// `batch_norm2d`'s rule on the view.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        super::window::memory_as_2d(at, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn params_buffers_and_ranks() {
        // BatchNorm1d(16): 2·16 = 32 params, 32 buffer values, on N×C and N×C×L.
        for x in [&[4, 16][..], &[4, 16, 10]] {
            let c = run::<BatchNorm1d>("{num_features: 16}", x).unwrap();
            assert_eq!((c.output.0.as_slice(), c.params, c.buffers, c.macs), (x, 32, 32, 0));
        }
        assert!(run::<BatchNorm1d>("{}", &[4, 16, 2, 2]).unwrap_err().message.contains("rank-2 or rank-3"));
        assert_eq!(run::<BatchNorm1d>("{num_features: 8}", &[4, 16]).unwrap_err().field, Some("num_features"));
    }
}
