//! `max_pool2d`: 2-D max pooling over NCHW input (PyTorch `nn.MaxPool2d`).
//!
//! Shape: [`super::window`] per spatial axis (floor, or ceil with PyTorch's last-window rule);
//! channels and batch unchanged. No params; 0 MACs (pooling is not counted, torchvision `_ops`).

use super::window::PoolWindow;
use super::{Cost, KindError, KindSpec, Op, Peer, Saved, SavedDType, Split};
use crate::error::SpecError;
use crate::shape::Shape;
use crate::spec::fields::Fields;

/// A max pool layer.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPool2d {
    /// Kernel, stride, padding, dilation and ceil mode.
    pub window: PoolWindow,
}

impl KindSpec for MaxPool2d {
    const NAME: &'static str = "max_pool2d";
    const FIELDS: &'static [&'static str] = &["kernel", "stride", "padding", "dilation", "ceil_mode"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(MaxPool2d { window: PoolWindow::parse(f, true)? })
    }
}

impl Op for MaxPool2d {
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

    /// Saved for backward: the input and the argmax indices, one int64 per output element
    /// (PyTorch `max_pool2d_with_indices_backward(grad, self, …, indices)`). In inference
    /// netstat counts no indices (the CPU path makes none; CUDA frees them at once).
    fn saved(&self, _inputs: &[Shape], output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![
            Saved::Input(0),
            Saved::New { elements: output.elements()?, dtype: SavedDType::I64, what: "argmax indices" },
        ])
    }
}

impl crate::candle::build::Build for MaxPool2d {
    /// Separable: a 1-D max over the width taps, then over the height taps, each built from
    /// strided slices and `maximum` with −∞ padding (candle's `max_pool2d` has no padding or
    /// ceil mode, refuses backward when kernel ≠ stride and scales it by 1/k² otherwise).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use crate::candle::ops::{pool1d, Reduce};
        let (wh, ww, ph, pw) = pool_axes(&self.window, cx);
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            let y = pool1d(&xs[0], 3, ww, pw, Reduce::Max)?;
            pool1d(&y, 2, wh, ph, Reduce::Max)
        }))
    }

    /// Candle memory: the pool's axes ([`super::window::PoolWindow::candle_memory`]).
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        self.window.candle_memory(at.x(), at.o(), at.s)
    }
}

/// The two spatial axes of a pool window for the analysed shapes, and the padding after each.
pub fn pool_axes(
    win: &super::window::PoolWindow,
    cx: &crate::candle::build::Ctx,
) -> (crate::candle::ops::Win, crate::candle::ops::Win, usize, usize) {
    let x = cx.input(0);
    let o = &cx.output.0;
    let axis = |i: usize| crate::candle::ops::Win {
        input: x[2 + i],
        output: o[2 + i] as usize,
        kernel: win.kernel[i] as usize,
        stride: win.stride[i] as usize,
        pad_lo: win.padding[i] as usize,
        dilation: win.dilation[i] as usize,
    };
    (axis(0), axis(1), win.padding[0] as usize, win.padding[1] as usize)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn floor_and_ceil() {
        // k3 s2 p1 on 64×64: ⌊63/2⌋ + 1 = 32 (floor); ⌈63/2⌉ + 1 = 33 (ceil, last window kept).
        let c = run::<MaxPool2d>("{kernel: 3, stride: 2, padding: 1}", &[1, 8, 64, 64]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 8, 32, 32]));
        let c = run::<MaxPool2d>("{kernel: 3, stride: 2, padding: 1, ceil_mode: true}", &[1, 8, 64, 64]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 8, 33, 33]));
        // k2 s2 p1 ceil on width 5: ⌈5/2⌉ + 1 = 4, the 4th window would start at 6 ≥ 5 + 1 → 3.
        let c = run::<MaxPool2d>("{kernel: 2, stride: 2, padding: 1, ceil_mode: true}", &[1, 1, 5, 5]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 1, 3, 3]));
        assert_eq!((c.params, c.macs), (0, 0));
    }

    #[test]
    fn stride_defaults_to_kernel_and_padding_is_bounded() {
        // k2 on 8: stride 2 → ⌊(8 − 2)/2⌋ + 1 = 4.
        let c = run::<MaxPool2d>("{kernel: 2}", &[1, 1, 8, 8]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 1, 4, 4]));
        let e = super::super::test_util::parse::<MaxPool2d>("{kernel: 3, padding: 2}").unwrap_err();
        assert!(e.message.contains("at most half the kernel (1), got 2"), "{}", e.message);
    }
}
