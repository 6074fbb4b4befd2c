//! Gradient-correct building blocks for the candle runtime, made only of ops whose backward
//! candle implements correctly (CANDLE_NOTES): narrow, index_select, cat, maximum, add, mul.
//!
//! candle 0.11's own `max_pool2d`/`avg_pool2d` refuse backward when kernel ≠ stride, scale the
//! max-pool gradient by 1/k² when kernel = stride, and have no padding or ceil mode; its
//! conv2d backward derives the output padding from the height only. These helpers replace them.

use candle_core::{DType, Result, Tensor};

/// `count` elements of `x` along `dim` starting at `start`, `step` apart (a view when `step` is
/// 1, an `index_select` copy otherwise).
pub fn strided(x: &Tensor, dim: usize, start: usize, count: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return x.narrow(dim, start, count);
    }
    let idx: Vec<u32> = (0..count).map(|i| (start + i * step) as u32).collect();
    let idx = Tensor::from_vec(idx, count, x.device())?;
    // candle's index_select takes contiguous tensors only (a narrowed view is not).
    if x.is_contiguous() {
        x.index_select(&idx, dim)
    } else {
        x.contiguous()?.index_select(&idx, dim)
    }
}

/// Pad `x` along `dim` with `lo` and `hi` elements of `value` (zeros: `pad_with_zeros`).
pub fn pad(x: &Tensor, dim: usize, lo: usize, hi: usize, value: f64) -> Result<Tensor> {
    if lo == 0 && hi == 0 {
        return Ok(x.clone());
    }
    if value == 0.0 {
        return x.pad_with_zeros(dim, lo, hi);
    }
    let mut parts = Vec::with_capacity(3);
    let mut dims = x.dims().to_vec();
    if lo > 0 {
        dims[dim] = lo;
        parts.push(Tensor::full(value, dims.as_slice(), x.device())?.to_dtype(x.dtype())?);
    }
    parts.push(x.clone());
    if hi > 0 {
        dims[dim] = hi;
        parts.push(Tensor::full(value, dims.as_slice(), x.device())?.to_dtype(x.dtype())?);
    }
    Tensor::cat(&parts, dim)
}

/// Insert `d − 1` zeros between the taps of kernel `w` along `dim`: a kernel of size
/// `d·(k − 1) + 1` whose convolution with dilation 1 equals the original's with dilation `d`
/// (the definition of dilation, PyTorch Conv2d docs). Made of `narrow` and `cat`, so it
/// backpropagates; `d = 1` returns `w`.
pub fn dilate(w: &Tensor, dim: usize, d: usize) -> Result<Tensor> {
    let k = w.dim(dim)?;
    if d == 1 || k == 1 {
        return Ok(w.clone());
    }
    let mut zdims = w.dims().to_vec();
    zdims[dim] = d - 1;
    let zeros = Tensor::zeros(zdims.as_slice(), w.dtype(), w.device())?;
    let mut parts = Vec::with_capacity(2 * k - 1);
    for i in 0..k {
        if i > 0 {
            parts.push(zeros.clone());
        }
        parts.push(w.narrow(dim, i, 1)?);
    }
    Tensor::cat(&parts, dim)
}

/// One spatial axis of a window op, sized from the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Win {
    /// Input length.
    pub input: usize,
    /// Output length (from the analysis: floor or ceil mode already applied).
    pub output: usize,
    /// Kernel.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding before.
    pub pad_lo: usize,
    /// Dilation.
    pub dilation: usize,
}

impl Win {
    /// Padding after the input needed so that every one of the `output` windows fits (covers
    /// PyTorch's `ceil_mode`, whose last window may run past the right padding).
    pub fn pad_hi(&self, pad_hi: usize) -> usize {
        let need = (self.output - 1) * self.stride + (self.kernel - 1) * self.dilation + 1;
        let have = self.input + self.pad_lo + pad_hi;
        if need > have {
            pad_hi + (need - have)
        } else {
            pad_hi
        }
    }

    /// Used extent of the padded input: windows never read past it.
    pub fn extent(&self) -> usize {
        (self.output - 1) * self.stride + (self.kernel - 1) * self.dilation + 1
    }
}

/// How a 1-D pool combines its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Maximum (padding is −∞). Ties share the gradient (candle's `maximum` backward), a valid
    /// subgradient whose sum is the incoming gradient.
    Max,
    /// Sum (padding is 0); the caller divides.
    Sum,
}

/// Pool `x` along `dim` (the window `w`, padding `pad_hi` after): each output is the max or
/// sum of its `kernel` taps. Built as `kernel` strided slices combined pairwise.
pub fn pool1d(x: &Tensor, dim: usize, w: Win, pad_hi: usize, op: Reduce) -> Result<Tensor> {
    let fill = match op {
        Reduce::Max => f64::NEG_INFINITY,
        Reduce::Sum => 0.0,
    };
    if w.kernel == 1 && w.pad_lo == 0 && w.stride == 1 && w.output == w.input {
        return Ok(x.clone());
    }
    let xp = pad(x, dim, w.pad_lo, w.pad_hi(pad_hi), fill)?;
    let mut acc = strided(&xp, dim, 0, w.output, w.stride)?;
    for j in 1..w.kernel {
        let s = strided(&xp, dim, j * w.dilation, w.output, w.stride)?;
        acc = match op {
            Reduce::Max => acc.maximum(&s)?,
            Reduce::Sum => (acc + s)?,
        };
    }
    Ok(acc)
}

/// PyTorch's average-pool divisor per output position along one axis: the window length
/// clipped to the padded input (`count_include_pad`), or to the input itself (aten
/// AvgPool2d.cpp: `pool_size = (hend − hstart)·(wend − wstart)`).
pub fn avg_divisor(w: Win, pad_hi: usize, include_pad: bool) -> Vec<f64> {
    (0..w.output)
        .map(|o| {
            let start = (o * w.stride) as i64 - w.pad_lo as i64;
            let end = (start + w.kernel as i64).min((w.input + pad_hi) as i64);
            let (s, e) = if include_pad { (start, end) } else { (start.max(0), end.min(w.input as i64)) };
            (e - s).max(1) as f64
        })
        .collect()
}

/// A `[1, 1, H, W]` constant of `values` (row-major) in `dtype`.
pub fn plane(values: Vec<f64>, h: usize, w: usize, like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(values, (1, 1, h, w), like.device())?.to_dtype(like.dtype())
}

/// Whether `dtype` is a float type the runtime supports.
pub fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64)
}
