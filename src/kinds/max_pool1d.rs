//! `max_pool1d`: 1-D max pooling over `N×C×L` (PyTorch `nn.MaxPool1d`, which runs as the 2-D
//! kernel on an `N×C×1×L` view). Fields and rules as `max_pool2d` on one axis: output
//! `L_out` by [`super::window`]; no params; 0 MACs; saves the input and int64 argmax indices.

use super::max_pool2d::MaxPool2d;
use super::window::{as_2d, from_2d, parse_1d};
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A 1-D max pool: the 2-D one over `[1, kernel]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPool1d(pub MaxPool2d);

impl KindSpec for MaxPool1d {
    const NAME: &'static str = "max_pool1d";
    const FIELDS: &'static [&'static str] = &["kernel", "stride", "padding", "dilation", "ceil_mode"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(MaxPool1d(MaxPool2d { window: parse_1d(f, true)? }))
    }
}

impl Op for MaxPool1d {
    fn peer(&self, output: &Shape) -> Peer {
        self.0.peer(output)
    }
    fn split(&self, devices: u64) -> Split {
        self.0.split(devices)
    }
    /// As `max_pool2d`: the input and one int64 index per output element.
    fn saved(&self, inputs: &[Shape], output: &Shape) -> Result<Vec<Saved>, KindError> {
        self.0.saved(&[as_2d(&inputs[0])], &as_2d(output))
    }
    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        super::expect_rank(x, 3, "N×C×L")?;
        let c = self.0.analyze(&[as_2d(x)])?;
        Ok(Cost { output: from_2d(&c.output, 3), ..c })
    }
}

impl crate::candle::build::Build for MaxPool1d {
    /// `max_pool2d`'s builder on the `N×C×1×L` view.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        super::window::build_as_2d(cx, &self.0)
    }
    /// `max_pool2d`'s rule on the view.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        super::window::memory_as_2d(at, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn shape() {
        // L 10, k 3, s 2, p 1: ⌊(10 + 2 − 3)/2⌋ + 1 = 5.
        let c = run::<MaxPool1d>("{kernel: 3, stride: 2, padding: 1}", &[2, 4, 10]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![2, 4, 5]), 0, 0));
        // Ceil mode, dilation 2: span 5, ⌈(10 − 5)/2⌉ + 1 = 4.
        assert_eq!(run::<MaxPool1d>("{kernel: 3, stride: 2, dilation: 2, ceil_mode: true}", &[1, 1, 10]).unwrap().output, Shape(vec![1, 1, 4]));
        assert!(run::<MaxPool1d>("{kernel: 3}", &[1, 4, 4, 4]).is_err());
        assert!(super::super::test_util::parse::<MaxPool1d>("{kernel: 2, padding: 2}").is_err());
    }
}
