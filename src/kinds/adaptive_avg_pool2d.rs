//! `adaptive_avg_pool2d`: average pooling to a fixed output size (PyTorch
//! `nn.AdaptiveAvgPool2d`). Output `N×C×output_size`; no params; 0 MACs (pooling is not
//! counted, torchvision `_ops`). Output sizes larger than the input are allowed, as in PyTorch
//! (windows overlap and repeat).

use super::{expect_rank, Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, Split};
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
    /// Peers: `aten::adaptive_avg_pool2d` (fvcore counts it).
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { class: PeerClass::AdaptiveAvgPool, bias: 0, torchinfo_leaf: true }
    }

    /// Per channel: split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 4, "N×C×H×W")?;
        let output = Shape(vec![x.0[0], x.0[1], self.output_size[0], self.output_size[1]]);
        output.elements()?;
        Ok(Cost { output, params: 0, buffers: 0, macs: 0 })
    }

    /// Saved for backward: the input (PyTorch `_adaptive_avg_pool2d_backward(grad, self)`);
    /// nothing for a 1×1 output, which ATen runs as `mean(dim=(-2, -1), keepdim=True)`
    /// (aten AdaptiveAveragePooling.cpp), whose backward needs only the input's shape
    /// (measured: shared/reference/pytorch_memory.md).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(if self.output_size == [1, 1] { Vec::new() } else { vec![Saved::Input(0)] })
    }
}

impl crate::candle::build::Build for AdaptiveAvgPool2d {
    /// A mean over H and W for a 1×1 output; otherwise `A_h · x · A_wᵀ` with PyTorch's windows
    /// `[⌊i·H/H_o⌋, ⌈(i+1)·H/H_o⌉)` (aten AdaptiveAveragePooling.cpp) as averaging matrices.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::Tensor;
        let x = cx.input(0);
        let (h, w) = (x[2], x[3]);
        let [ho, wo] = self.output_size.map(|v| v as usize);
        if (ho, wo) == (h, w) {
            return Ok(Box::new(|xs: &[Tensor], _| Ok(xs[0].clone())));
        }
        if (ho, wo) == (1, 1) {
            return Ok(Box::new(|xs: &[Tensor], _| xs[0].mean_keepdim((2, 3))));
        }
        let avg = |o: usize, i: usize| -> Vec<f64> {
            let mut m = vec![0.0; o * i];
            for r in 0..o {
                let (s, e) = (r * i / o, ((r + 1) * i).div_ceil(o));
                for c in s..e {
                    m[r * i + c] = 1.0 / (e - s) as f64;
                }
            }
            m
        };
        let ah = Tensor::from_vec(avg(ho, h), (ho, h), cx.device)?.to_dtype(cx.dtype)?;
        let awt = Tensor::from_vec(avg(wo, w), (wo, w), cx.device)?.to_dtype(cx.dtype)?.t()?.contiguous()?;
        Ok(Box::new(move |xs: &[Tensor], _| {
            let y = xs[0].broadcast_matmul(&awt)?; // N×C×H×W_o
            ah.broadcast_matmul(&y) // N×C×H_o×W_o
        }))
    }

    /// Candle memory: the identity when the output size is the input's (a view); a mean over
    /// H·W for 1×1 (one value); otherwise the H pass's intermediate and the output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let (x, out) = (at.x(), at.out());
        if [x[2], x[3]] == self.output_size {
            at.view()
        } else if self.output_size == [1, 1] {
            at.plain()
        } else {
            let mid = x[0] * x[1] * x[2] * self.output_size[1] * at.s;
            crate::candle::model::CandleLayer {
                output: out,
                peak: mid + out,
                retained: mid + out,
                ..Default::default()
            }
        }
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
