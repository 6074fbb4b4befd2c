//! `avg_pool1d`: 1-D average pooling over `N×C×L` (PyTorch `nn.AvgPool1d`, which runs as the
//! 2-D kernel on an `N×C×1×L` view). Fields and rules as `avg_pool2d` on one axis; no params;
//! 0 MACs; saves nothing but the shapes (as `avg_pool2d`).

use super::avg_pool2d::AvgPool2d;
use super::window::{as_2d, from_2d, parse_1d};
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A 1-D average pool: the 2-D one over `[1, kernel]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AvgPool1d(pub AvgPool2d);

impl KindSpec for AvgPool1d {
    const NAME: &'static str = "avg_pool1d";
    const FIELDS: &'static [&'static str] = &["kernel", "stride", "padding", "ceil_mode", "count_include_pad"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(AvgPool1d(AvgPool2d {
            window: parse_1d(f, false)?,
            count_include_pad: f.bool("count_include_pad")?.unwrap_or(true),
        }))
    }
}

impl Op for AvgPool1d {
    fn peer(&self, output: &Shape) -> Peer {
        self.0.peer(output)
    }
    fn split(&self, devices: u64) -> Split {
        self.0.split(devices)
    }
    /// As `avg_pool2d`.
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

impl crate::candle::build::Build for AvgPool1d {
    /// `avg_pool2d`'s builder on the `N×C×1×L` view.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        super::window::build_as_2d(cx, &self.0)
    }
    /// `avg_pool2d`'s rule on the view.
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
        // L 7, k 2 (stride 2): ⌊(7 − 2)/2⌋ + 1 = 3; ceil: ⌈5/2⌉ + 1 = 4.
        assert_eq!(run::<AvgPool1d>("{kernel: 2}", &[1, 3, 7]).unwrap().output, Shape(vec![1, 3, 3]));
        assert_eq!(run::<AvgPool1d>("{kernel: 2, ceil_mode: true}", &[1, 3, 7]).unwrap().output, Shape(vec![1, 3, 4]));
    }
}
