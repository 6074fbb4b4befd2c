//! The sliding-window size rule shared by convolutions and pools.
//!
//! For one spatial axis with input size `I`, padding `p_lo + p_hi`, kernel `k`, stride `s`,
//! dilation `d` (PyTorch Conv2d / MaxPool2d docs, "Shape" section):
//!
//! `O = ⌊(I + p_lo + p_hi − d·(k − 1) − 1) / s⌋ + 1`
//!
//! With `ceil_mode` the division rounds up, and PyTorch then drops the last window if it would
//! start at or past `I + p_lo` (aten/src/ATen/native/Pool.h, `pooling_output_shape_pad_lr`):
//! `if (O − 1)·s ≥ I + p_lo { O −= 1 }`.

/// One spatial axis of a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Input size along the axis.
    pub input: u64,
    /// Kernel size.
    pub kernel: u64,
    /// Stride (≥ 1).
    pub stride: u64,
    /// Padding before (top or left).
    pub pad_lo: u64,
    /// Padding after (bottom or right).
    pub pad_hi: u64,
    /// Dilation (≥ 1).
    pub dilation: u64,
    /// Round up instead of down (pools only).
    pub ceil: bool,
}

impl Axis {
    /// Output size along the axis, or a message when the (dilated) kernel does not fit in the
    /// padded input. All arithmetic is checked.
    pub fn output(&self) -> Result<u64, String> {
        let padded = self
            .input
            .checked_add(self.pad_lo)
            .and_then(|v| v.checked_add(self.pad_hi))
            .ok_or("padded input size overflows u64")?;
        let span = self
            .kernel
            .checked_sub(1)
            .and_then(|k| k.checked_mul(self.dilation))
            .and_then(|v| v.checked_add(1))
            .ok_or("dilated kernel size overflows u64")?;
        if span > padded {
            return Err(format!(
                "kernel larger than the padded input: dilated kernel {span} > padded input {padded} \
                 (input {} + padding {}+{})",
                self.input, self.pad_lo, self.pad_hi
            ));
        }
        let room = padded - span;
        let mut out = if self.ceil { room.div_ceil(self.stride) } else { room / self.stride } + 1;
        // (out − 1)·s may exceed u64 only when it is certainly ≥ input + p_lo (which fits).
        let last_start = (out - 1).saturating_mul(self.stride);
        if self.ceil && last_start >= self.input + self.pad_lo {
            out -= 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(input: u64, k: u64, s: u64, p: u64, ceil: bool) -> u64 {
        Axis { input, kernel: k, stride: s, pad_lo: p, pad_hi: p, dilation: 1, ceil }.output().unwrap()
    }

    #[test]
    fn pytorch_pool_sizes() {
        // k3 s2 p1 on 64: (64 + 2 − 3)/2 = 31.5 → floor 31 + 1 = 32; ceil 32 + 1 = 33,
        // and (33 − 1)·2 = 64 < 64 + 1, so the last window stays.
        assert_eq!(pool(64, 3, 2, 1, false), 32);
        assert_eq!(pool(64, 3, 2, 1, true), 33);
        // k2 s2 p1 ceil on 5: (5 + 2 − 2)/2 = 2.5 → 3 + 1 = 4, but (4 − 1)·2 = 6 ≥ 5 + 1:
        // the last window would start in the right padding, so it is dropped → 3.
        assert_eq!(pool(5, 2, 2, 1, true), 3);
        // AlexNet 2012 pools: 55 → ⌊(55 − 3)/2⌋ + 1 = 27.
        assert_eq!(pool(55, 3, 2, 0, false), 27);
    }

    #[test]
    fn ceil_mode_near_u64_max_does_not_overflow() {
        // I = 2^64 − 2, k 2, s 2^63 + 1: room = 2^64 − 4, ⌈room/s⌉ = 2 → 3 windows, but the 3rd
        // would start at 2·s = 2^64 + 2 (beyond u64, so certainly ≥ I) and is dropped → 2.
        let a = Axis {
            input: u64::MAX - 1,
            kernel: 2,
            stride: (1 << 63) + 1,
            pad_lo: 0,
            pad_hi: 0,
            dilation: 1,
            ceil: true,
        };
        assert_eq!(a.output(), Ok(2));
    }

    #[test]
    fn kernel_larger_than_padded_input_is_an_error() {
        let a = Axis { input: 2, kernel: 5, stride: 1, pad_lo: 1, pad_hi: 1, dilation: 1, ceil: false };
        assert!(a.output().unwrap_err().contains("kernel larger than the padded input"));
    }
}

/// The window of a 2-D pool: `kernel`, `stride` (default = kernel), `padding` (`p` or `[h, w]`,
/// at most half the dilated kernel, as PyTorch requires), `dilation`, `ceil_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWindow {
    /// `[k_h, k_w]`.
    pub kernel: [u64; 2],
    /// `[s_h, s_w]`.
    pub stride: [u64; 2],
    /// `[p_h, p_w]`, applied on both sides.
    pub padding: [u64; 2],
    /// `[d_h, d_w]` (max pool only; 1 for average pools).
    pub dilation: [u64; 2],
    /// PyTorch `ceil_mode`.
    pub ceil_mode: bool,
}

impl PoolWindow {
    /// Read the window fields; `dilation` only where `with_dilation`.
    pub fn parse(f: &crate::spec::fields::Fields, with_dilation: bool) -> Result<Self, crate::error::SpecError> {
        let kernel = f.pos_pair("kernel")?.ok_or_else(|| f.err(f.node.loc, "missing required field `kernel`"))?;
        let dilation = if with_dilation { f.pos_pair("dilation")?.unwrap_or([1, 1]) } else { [1, 1] };
        let w = PoolWindow {
            kernel,
            stride: f.pos_pair("stride")?.unwrap_or(kernel),
            padding: f.nonneg_pair("padding")?.unwrap_or([0, 0]),
            dilation,
            ceil_mode: f.bool("ceil_mode")?.unwrap_or(false),
        };
        for i in 0..2 {
            // PyTorch: "pad should be at most half of effective kernel size".
            let eff = (w.kernel[i] - 1).saturating_mul(w.dilation[i]).saturating_add(1);
            if w.padding[i] > eff / 2 {
                return Err(f.err(
                    f.loc("padding"),
                    format!(
                        "`padding`: expected at most half the kernel ({}), got {} (PyTorch rule)",
                        eff / 2,
                        w.padding[i]
                    ),
                ));
            }
        }
        Ok(w)
    }

    /// Output shape of pooling an `N×C×H×W` input with this window.
    pub fn output(&self, x: &crate::shape::Shape) -> Result<crate::shape::Shape, super::KindError> {
        super::expect_rank(x, 4, "N×C×H×W")?;
        let axis = |i: usize| Axis {
            input: x.0[2 + i],
            kernel: self.kernel[i],
            stride: self.stride[i],
            pad_lo: self.padding[i],
            pad_hi: self.padding[i],
            dilation: self.dilation[i],
            ceil: self.ceil_mode,
        };
        let h = axis(0).output().map_err(|m| super::KindError::field("kernel", format!("height: {m}")))?;
        let w = axis(1).output().map_err(|m| super::KindError::field("kernel", format!("width: {m}")))?;
        Ok(crate::shape::Shape(vec![x.0[0], x.0[1], h, w]))
    }

    /// The candle memory of a max or average pool with this window (the sum or max part;
    /// `avg_pool2d` adds its division): each axis pooled separately, W then H, as
    /// [`crate::candle::ops::pool1d`] does ([`pool_axis`](crate::candle::model::pool_axis)).
    pub fn candle_memory(&self, x: &[u64], o: &[u64], s: u64) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{elems, pool_axis, CandleLayer};
        let win = self;
        let (n, c, h, w) = (x[0], x[1], x[2], x[3]);
        let pad_hi = |i: usize, input: u64, output: u64| {
            let need = (output - 1) * win.stride[i] + (win.kernel[i] - 1) * win.dilation[i] + 1;
            let have = input + 2 * win.padding[i];
            win.padding[i] + need.saturating_sub(have)
        };
        let (rw, pw, tw) =
            pool_axis(n * c * h, w, o[3], win.kernel[1], win.stride[1], win.padding[1], pad_hi(1, w, o[3]), s);
        let (_, ph, th) =
            pool_axis(n * c * o[3], h, o[2], win.kernel[0], win.stride[0], win.padding[0], pad_hi(0, h, o[2]), s);
        let out = elems(o) * s;
        CandleLayer { output: out, peak: pw.max(rw + ph).max(out), retained: tw + th, ..Default::default() }
    }
}

/// The 2-D form of a 1-D (or 0-D) channel layer's input: `N×C → N×C×1×1`, `N×C×L → N×C×1×L`,
/// so that `max_pool1d`, `avg_pool1d` and `batch_norm1d` apply their 2-D kind's rules (PyTorch's
/// own 1-D pools and batch norm run as the 2-D kernels on such a view). Other ranks are
/// returned unchanged (the 2-D rule then reports the rank error).
pub fn as_2d(x: &crate::shape::Shape) -> crate::shape::Shape {
    match x.0.as_slice() {
        [n, c] => crate::shape::Shape(vec![*n, *c, 1, 1]),
        [n, c, l] => crate::shape::Shape(vec![*n, *c, 1, *l]),
        _ => x.clone(),
    }
}

/// The 1-D form of a 2-D output for an input of rank `rank` (the inverse of [`as_2d`]).
pub fn from_2d(y: &crate::shape::Shape, rank: usize) -> crate::shape::Shape {
    match (rank, y.0.as_slice()) {
        (2, [n, c, _, _]) => crate::shape::Shape(vec![*n, *c]),
        (3, [n, c, _, l]) => crate::shape::Shape(vec![*n, *c, *l]),
        _ => y.clone(),
    }
}

/// Build a 1-D layer as its 2-D kind `inner` on the [`as_2d`] view: the input is reshaped to
/// 2-D (a view of contiguous data), `inner` runs, and its output is reshaped back.
pub fn build_as_2d(
    cx: &mut crate::candle::build::Ctx,
    inner: &dyn crate::candle::build::Build,
) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
    let x4 = as_2d(&cx.inputs[0]);
    let o4 = as_2d(cx.output);
    let out: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
    let x4d: Vec<usize> = x4.0.iter().map(|&d| d as usize).collect();
    let inputs = [x4];
    let mut cx4 = crate::candle::build::Ctx {
        name: cx.name,
        inputs: &inputs,
        output: &o4,
        dtype: cx.dtype,
        device: cx.device,
        trainable: cx.trainable,
        params: &mut *cx.params,
        shares: cx.shares,
    };
    let layer = inner.build(&mut cx4)?;
    Ok(Box::new(move |xs: &[candle_core::Tensor], pass| {
        let x = xs[0].reshape(x4d.as_slice())?;
        layer.forward(&[x], pass)?.reshape(out.as_slice())
    }))
}

/// The candle memory of a 1-D layer built by [`build_as_2d`]: its 2-D kind's rule on the 2-D
/// view (the reshapes of contiguous data are views: no bytes).
pub fn memory_as_2d(
    at: &crate::candle::model::At,
    inner: &dyn crate::candle::build::Build,
) -> crate::candle::model::CandleLayer {
    let inputs = [as_2d(&at.inputs[0])];
    let o4 = as_2d(at.output);
    let state = crate::candle::model::Inputs { contiguous: true, ..at.state };
    let mut m = inner.memory(&crate::candle::model::At { inputs: &inputs, output: &o4, state, ..*at });
    if !at.state.contiguous {
        // The reshape to N×C×1×L copies a strided input (a permute before it); the 2-D rule's
        // ops read the copy, so it lives while the layer runs and is kept with them.
        let copy = at.x().iter().product::<u64>() * at.s;
        m.peak += copy;
        m.retained += copy;
    }
    m
}

/// Read a 1-D pool window (`kernel`, `stride` (= kernel), `padding` (0, ≤ kernel/2),
/// `dilation` (1, max pool only), `ceil_mode`) as the 2-D window `[1, k]` over the `as_2d` view.
pub fn parse_1d(f: &crate::spec::fields::Fields, with_dilation: bool) -> Result<PoolWindow, crate::error::SpecError> {
    let kernel = f.req_pos("kernel")?;
    let stride = f.pos("stride")?.unwrap_or(kernel);
    let padding = f.nonneg("padding")?.unwrap_or(0);
    let dilation = if with_dilation { f.pos("dilation")?.unwrap_or(1) } else { 1 };
    if padding > kernel / 2 {
        return Err(f.err(
            f.loc("padding"),
            format!("`padding`: expected at most half the kernel ({}), got {padding} (PyTorch's rule)", kernel / 2),
        ));
    }
    Ok(PoolWindow {
        kernel: [1, kernel],
        stride: [1, stride],
        padding: [0, padding],
        dilation: [1, dilation],
        ceil_mode: f.bool("ceil_mode")?.unwrap_or(false),
    })
}
