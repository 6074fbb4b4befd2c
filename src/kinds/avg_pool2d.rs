//! `avg_pool2d`: 2-D average pooling over NCHW input (PyTorch `nn.AvgPool2d`).
//!
//! Shape: [`super::window`] per spatial axis (floor or ceil); no params; 0 MACs (pooling is
//! not counted, torchvision `_ops`). `count_include_pad` (default true, as in PyTorch) decides
//! whether padded zeros count in the divisor; it changes values, not shapes or counts.

use super::window::PoolWindow;
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// An average pool layer.
#[derive(Debug, Clone, PartialEq)]
pub struct AvgPool2d {
    /// Kernel, stride, padding and ceil mode (dilation is always 1).
    pub window: PoolWindow,
    /// Whether padded zeros count in the average's divisor (default true).
    pub count_include_pad: bool,
}

impl KindSpec for AvgPool2d {
    const NAME: &'static str = "avg_pool2d";
    const FIELDS: &'static [&'static str] = &["kernel", "stride", "padding", "ceil_mode", "count_include_pad"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(AvgPool2d {
            window: PoolWindow::parse(f, false)?,
            count_include_pad: f.bool("count_include_pad")?.unwrap_or(true),
        })
    }
}

impl Op for AvgPool2d {
    /// Peers: no class they single out, no bias.
    fn peer(&self, _output: &Shape) -> Peer {
        Peer::OTHER
    }

    /// Split along channels, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        Ok(Cost { output: self.window.output(&inputs[0])?, params: 0, buffers: 0, macs: 0 })
    }

    /// Saved for backward: the input (PyTorch `avg_pool2d_backward(grad, self, …)` keeps it,
    /// though only its shape is read).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0)])
    }
}

impl crate::candle::build::Build for AvgPool2d {
    /// Separable sums of strided slices (zero padding), times the reciprocal of PyTorch's
    /// divisor at each output position (a scalar when every window has k_h·k_w taps).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use crate::candle::ops::{avg_divisor, plane, pool1d, Reduce};
        let (wh, ww, ph, pw) = super::max_pool2d::pool_axes(&self.window, cx);
        let dh = avg_divisor(wh, ph, self.count_include_pad);
        let dw = avg_divisor(ww, pw, self.count_include_pad);
        let full = (wh.kernel * ww.kernel) as f64;
        let uniform =
            dh.iter().all(|&a| dh.iter().all(|&b| a * b == full)) && dw.iter().all(|&v| v == ww.kernel as f64);
        let like = candle_core::Tensor::zeros(1, cx.dtype, cx.device)?;
        let inv = if uniform {
            None
        } else {
            let v = dh.iter().flat_map(|a| dw.iter().map(move |b| 1.0 / (a * b))).collect();
            Some(plane(v, wh.output, ww.output, &like)?)
        };
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            let y = pool1d(&xs[0], 3, ww, pw, Reduce::Sum)?;
            let y = pool1d(&y, 2, wh, ph, Reduce::Sum)?;
            match &inv {
                Some(inv) => y.broadcast_mul(inv),
                None => y.affine(1.0 / full, 0.0),
            }
        }))
    }

    /// Candle memory: the pool's axes ([`super::window::PoolWindow::candle_memory`]), then the
    /// division (O).
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let out = at.out();
        let mut c = self.window.candle_memory(at.x(), at.o(), at.s);
        c.retained += out;
        c.peak = c.peak.max(2 * out);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn lenet_pool() {
        // d2l LeNet: AvgPool2d(2, 2) on 1×6×28×28 → ⌊(28 − 2)/2⌋ + 1 = 14.
        let c = run::<AvgPool2d>("{kernel: 2, stride: 2}", &[1, 6, 28, 28]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 6, 14, 14]));
        assert_eq!((c.params, c.macs), (0, 0));
    }
}
