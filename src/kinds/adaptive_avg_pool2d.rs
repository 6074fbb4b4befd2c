//! `adaptive_avg_pool2d`: average pooling to a fixed output size (PyTorch
//! `nn.AdaptiveAvgPool2d`). Output `N×C×output_size`; no params; 0 MACs (pooling is not
//! counted, torchvision `_ops`). Output sizes larger than the input are allowed, as in PyTorch
//! (windows overlap and repeat).

use super::{expect_rank, Cost, KindError, KindSpec, Op, Saved};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// An adaptive average pool layer.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveAvgPool2d {
    /// `[H_out, W_out]` (`output_size: 6` means `[6, 6]`).
    pub output_size: [u64; 2],
}

impl KindSpec for AdaptiveAvgPool2d {
    const NAME: &'static str = "adaptive_avg_pool2d";
    const FIELDS: &'static [&'static str] = &["output_size"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let output_size =
            f.pos_pair("output_size")?.ok_or_else(|| f.err(f.node.loc, "missing required field `output_size`"))?;
        Ok(AdaptiveAvgPool2d { output_size })
    }
}

impl Op for AdaptiveAvgPool2d {
    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 4, "N×C×H×W")?;
        let output = Shape(vec![x.0[0], x.0[1], self.output_size[0], self.output_size[1]]);
        output.elements()?;
        Ok(Cost { output, params: 0, buffers: 0, macs: 0 })
    }

    /// Saved for backward: the input (PyTorch `_adaptive_avg_pool2d_backward(grad, self)`).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0)])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn torchvision_alexnet_avgpool() {
        // torchvision AlexNet: AdaptiveAvgPool2d((6, 6)) on 1×256×6×6 → 1×256×6×6.
        let c = run::<AdaptiveAvgPool2d>("{output_size: 6}", &[1, 256, 6, 6]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 256, 6, 6]));
        let c = run::<AdaptiveAvgPool2d>("{output_size: [1, 1]}", &[2, 512, 7, 7]).unwrap();
        assert_eq!(c.output, Shape(vec![2, 512, 1, 1]));
    }
}
