//! `conv2d`: 2-D convolution over NCHW input (PyTorch `nn.Conv2d`).
//!
//! Shape (PyTorch Conv2d docs): `H_out = ⌊(H + p_top + p_bottom − d_h·(k_h − 1) − 1)/s_h⌋ + 1`,
//! likewise `W_out`; see [`super::window`].
//!
//! Params: `c_out · (c_in / groups) · k_h · k_w` weights, plus `c_out` biases if `bias`.
//!
//! MACs: `N · c_out · H_out · W_out · (c_in / groups) · k_h · k_w` — each output element is a dot
//! product over its receptive field (the O(N_w·N_h·K_w·K_h·C_i·C_o) of the seed article;
//! torchvision `_ops` counts exactly this; bias adds are not counted).

use super::window::Axis;
use super::{expect_rank, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{add, checked_product, Shape};
use crate::spec::fields::{describe, Fields};
use crate::spec::node::Value;

/// Padding of a 2-D window: explicit per side, or `same` (resolved from kernel and dilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `[top, bottom, left, right]`; `p` and `[h, w]` expand to this.
    Explicit([u64; 4]),
    /// Output size equals input size at stride 1; the total `d·(k − 1)` is split with the
    /// extra row/column after (bottom/right), as PyTorch does (`_conv_forward` padding='same').
    Same,
}

impl Padding {
    /// Read `padding`: `p`, `[h, w]`, `[top, bottom, left, right]`, `same` or `valid` (= 0).
    pub fn parse(f: &Fields) -> Result<Padding, SpecError> {
        let Some(n) = f.get("padding") else { return Ok(Padding::Explicit([0; 4])) };
        let expected = "an integer, [h, w], [top, bottom, left, right], `same` or `valid`";
        match &n.value {
            Value::Str(s) if s == "same" => Ok(Padding::Same),
            Value::Str(s) if s == "valid" => Ok(Padding::Explicit([0; 4])),
            Value::Seq(items) if items.len() == 4 => {
                let v = f.nonneg_list(n, "padding")?;
                Ok(Padding::Explicit([v[0], v[1], v[2], v[3]]))
            }
            Value::Int(_) | Value::Float(_) => {
                let [h, w] = f.nonneg_pair("padding")?.expect("padding is present");
                Ok(Padding::Explicit([h, h, w, w]))
            }
            Value::Seq(items) if items.len() == 2 => {
                let [h, w] = f.nonneg_pair("padding")?.expect("padding is present");
                Ok(Padding::Explicit([h, h, w, w]))
            }
            // Lists of other lengths land here, so the message names all five forms (the pair
            // reader alone would say "expected an integer or a list [h, w]", hiding 4-sided padding).
            _ => Err(f.err(n.loc, format!("`padding`: expected {expected}, got {}", describe(n)))),
        }
    }

    /// `[top, bottom, left, right]` for a kernel `k` and dilation `d`.
    pub fn resolve(&self, k: [u64; 2], d: [u64; 2]) -> Result<[u64; 4], String> {
        match *self {
            Padding::Explicit(p) => Ok(p),
            Padding::Same => {
                let th = (k[0] - 1).checked_mul(d[0]).ok_or("padding overflows u64")?;
                let tw = (k[1] - 1).checked_mul(d[1]).ok_or("padding overflows u64")?;
                Ok([th / 2, th - th / 2, tw / 2, tw - tw / 2])
            }
        }
    }
}

/// A 2-D convolution layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    /// Output channels.
    pub c_out: u64,
    /// `[k_h, k_w]`.
    pub kernel: [u64; 2],
    /// `[s_h, s_w]`, default 1.
    pub stride: [u64; 2],
    /// Padding, default 0.
    pub padding: Padding,
    /// `[d_h, d_w]`, default 1.
    pub dilation: [u64; 2],
    /// Groups, default 1: c_in and c_out must both divide by it.
    pub groups: u64,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
}

impl KindSpec for Conv2d {
    const NAME: &'static str = "conv2d";
    const FIELDS: &'static [&'static str] = &["c_out", "kernel", "stride", "padding", "dilation", "groups", "bias"];

    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let kernel = f.pos_pair("kernel")?.ok_or_else(|| f.err(f.node.loc, "missing required field `kernel`"))?;
        Ok(Conv2d {
            c_out: f.req_pos("c_out")?,
            kernel,
            stride: f.pos_pair("stride")?.unwrap_or([1, 1]),
            padding: Padding::parse(f)?,
            dilation: f.pos_pair("dilation")?.unwrap_or([1, 1]),
            groups: f.pos("groups")?.unwrap_or(1),
            bias: f.bool("bias")?.unwrap_or(true),
        })
    }
}

impl Op for Conv2d {
    /// Parameter tensors: [`super::conv_rules::param_tensors`].
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        Ok(super::conv_rules::param_tensors(self.analyze(inputs)?.params, self.c_out, self.bias))
    }

    /// Peers: [`super::conv_rules::peer`].
    fn peer(&self, _output: &Shape) -> Peer {
        super::conv_rules::peer(self.c_out, self.bias)
    }

    /// Split: [`super::conv_rules::split`].
    fn split(&self, devices: u64) -> Split {
        super::conv_rules::split(self.groups, devices)
    }

    /// Saved for backward: the input (the weight gradient is input ⋆ grad_output; PyTorch's
    /// `convolution_backward` formula saves input and weight). Weights are held anyway.
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0)])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 4, "N×C×H×W")?;
        let (n, c_in, h, w) = (x.0[0], x.0[1], x.0[2], x.0[3]);
        if c_in % self.groups != 0 {
            return Err(KindError::field("groups", format!("groups {} does not divide c_in {c_in}", self.groups)));
        }
        if !self.c_out.is_multiple_of(self.groups) {
            return Err(KindError::field(
                "groups",
                format!("groups {} does not divide c_out {}", self.groups, self.c_out),
            ));
        }
        if self.padding == Padding::Same && self.stride != [1, 1] {
            return Err(KindError::field(
                "padding",
                format!(
                    "padding `same` needs stride 1 (as in PyTorch), got stride [{}, {}]",
                    self.stride[0], self.stride[1]
                ),
            ));
        }
        let [pt, pb, pl, pr] = self.padding.resolve(self.kernel, self.dilation)?;
        let axis = |input, i: usize, lo, hi| Axis {
            input,
            kernel: self.kernel[i],
            stride: self.stride[i],
            pad_lo: lo,
            pad_hi: hi,
            dilation: self.dilation[i],
            ceil: false,
        };
        let h_out = axis(h, 0, pt, pb).output().map_err(|m| KindError::field("kernel", format!("height: {m}")))?;
        let w_out = axis(w, 1, pl, pr).output().map_err(|m| KindError::field("kernel", format!("width: {m}")))?;
        let c_in_g = c_in / self.groups;
        let weights = checked_product(&[self.c_out, c_in_g, self.kernel[0], self.kernel[1]])?;
        let params = add(weights, if self.bias { self.c_out } else { 0 }, "param count")?;
        let macs = checked_product(&[n, self.c_out, h_out, w_out, c_in_g, self.kernel[0], self.kernel[1]])?;
        let output = Shape(vec![n, self.c_out, h_out, w_out]);
        output.elements()?;
        Ok(Cost { output, params, buffers: 0, macs })
    }
}

/// Which path a conv2d takes through candle, chosen once ([`Conv2d::lowering`]) for both the
/// builder and the memory rule of this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lowering {
    /// groups = C_in = C_out: k_h·k_w shifted slices of the zero-padded input times a
    /// per-channel weight, summed (6-30× faster than candle's per-group convs, CANDLE_NOTES).
    Depthwise,
    /// Stride or dilation differ between the axes (candle's conv2d takes one of each): the
    /// kernel dilated with zeros, a stride-1 conv of the padded input, every s-th row and column.
    PerAxis,
    /// candle's conv2d with its own padding ([`Conv2d::candle_pads`]).
    Native,
    /// The input zero-padded explicitly and cropped to the extent the windows read, then
    /// candle's conv2d with padding 0.
    Padded,
}

impl Conv2d {
    /// The candle path for `c_in` input channels, input `[h, w]` and output `[h_o, w_o]`.
    /// Inside candle's conv2d, [`crate::candle::model::conv_workspace`] follows candle's own
    /// choice (1×1 unit, full im2col, tiled im2col).
    pub fn lowering(&self, c_in: u64, hw: [u64; 2], out: [u64; 2]) -> Lowering {
        let g = self.groups;
        if g > 1 && g == c_in && g == self.c_out {
            Lowering::Depthwise
        } else if self.stride[0] != self.stride[1] || self.dilation[0] != self.dilation[1] {
            Lowering::PerAxis
        } else if self.candle_pads(hw, out) {
            Lowering::Native
        } else {
            Lowering::Padded
        }
    }

    /// Whether candle's own conv2d padding is used for input `[h, w]` and output `[h_o, w_o]`
    /// (same stride and dilation on both axes): one padding for all four sides, and the rows
    /// and columns left over by the stride agree (candle's backward derives the output padding
    /// from the height alone). Otherwise the runtime pads the input with zeros itself.
    pub fn candle_pads(&self, [h, w]: [u64; 2], [ho, wo]: [u64; 2]) -> bool {
        let Ok([pt, pb, pl, pr]) = self.padding.resolve(self.kernel, self.dilation) else {
            return false;
        };
        // Rows (columns) of the padded input after the last window.
        let left = |i: u64, p: u64, o: u64, a: usize| {
            (i + 2 * p).checked_sub((o - 1) * self.stride[a] + (self.kernel[a] - 1) * self.dilation[a] + 1)
        };
        self.stride[0] == self.stride[1]
            && self.dilation[0] == self.dilation[1]
            && pt == pb
            && pl == pr
            && pt == pl
            && left(h, pt, ho, 0) == left(w, pl, wo, 1)
    }
}

impl crate::candle::build::Build for Conv2d {
    /// candle: `conv2d` (tiled im2col on CPU) then a broadcast bias add. Padding is candle's own
    /// when it is one number and the rows and columns left over by the stride agree (candle's
    /// backward derives the output padding from the height alone); otherwise the input is
    /// zero-padded and cropped to the extent the windows read, and the conv gets padding 0.
    /// Depthwise convs (groups = c_in = c_out) are k_h·k_w shifted slices times a per-channel
    /// weight, summed (6-30× faster than candle's per-group convs, CANDLE_NOTES). A stride or
    /// dilation that differs between the axes: the kernel dilated with zeros, a stride-1 conv,
    /// then every s-th row and column.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use crate::candle::ops::{pad, strided, Win};
        let x = cx.input(0);
        let (c_in, h, w) = (x[1], x[2], x[3]);
        let (c_out, g) = (self.c_out as usize, self.groups as usize);
        let [kh, kw] = self.kernel.map(|v| v as usize);
        let [sh, sw] = self.stride.map(|v| v as usize);
        let [dh, dw] = self.dilation.map(|v| v as usize);
        let out = cx.output.0.iter().map(|&d| d as usize).collect::<Vec<_>>();
        let (ho, wo) = (out[2], out[3]);
        let p = self.padding.resolve(self.kernel, self.dilation).map_err(candle_core::Error::msg)?;
        let [pt, pb, pl, pr] = p.map(|v| v as usize);
        let bound = 1.0 / ((c_in / g * kh * kw) as f64).sqrt();
        let weight = cx.param("weight", &[c_out, c_in / g, kh, kw], bound)?;
        let bias = if self.bias { Some(cx.param("bias", &[c_out], bound)?.reshape((1, c_out, 1, 1))?) } else { None };
        let wh = Win { input: h, output: ho, kernel: kh, stride: sh, pad_lo: pt, dilation: dh };
        let ww = Win { input: w, output: wo, kernel: kw, stride: sw, pad_lo: pl, dilation: dw };
        let add_bias = move |y: Tensor| match &bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
        use candle_core::Tensor;
        let lowering = self.lowering(c_in as u64, [h, w].map(|v| v as u64), [ho, wo].map(|v| v as u64));
        if lowering == Lowering::Depthwise {
            // Depthwise: y[n,c] = Σ_{i,j} x_pad[n,c, i·d_h + s_h·o_h, j·d_w + s_w·o_w] · w[c,0,i,j].
            return Ok(Box::new(move |xs: &[Tensor], _| {
                // Taps are sliced from the weight on every pass (a copy made at build time
                // would not see optimizer updates).
                let taps: Vec<Tensor> = (0..kh * kw)
                    .map(|t| weight.narrow(2, t / kw, 1)?.narrow(3, t % kw, 1)?.reshape((1, c_out, 1, 1)))
                    .collect::<candle_core::Result<_>>()?;
                let xp = pad(&pad(&xs[0], 2, pt, wh.pad_hi(pb), 0.0)?, 3, pl, ww.pad_hi(pr), 0.0)?;
                let mut acc: Option<Tensor> = None;
                for (t, tap) in taps.iter().enumerate() {
                    let s = strided(&xp, 2, (t / kw) * dh, ho, sh)?;
                    let s = strided(&s, 3, (t % kw) * dw, wo, sw)?;
                    let term = s.broadcast_mul(tap)?;
                    acc = Some(match acc {
                        None => term,
                        Some(a) => (a + term)?,
                    });
                }
                add_bias(acc.expect("kernel has at least one tap"))
            }));
        }
        if lowering == Lowering::PerAxis {
            // candle's conv2d takes one stride and one dilation for both axes: dilate the kernel
            // explicitly (zeros between taps), convolve the padded input at stride 1 and keep
            // every s_h-th row and s_w-th column.
            use crate::candle::ops::dilate;
            return Ok(Box::new(move |xs: &[Tensor], _| {
                let wd = dilate(&dilate(&weight, 2, dh)?, 3, dw)?;
                let xp = pad(&pad(&xs[0], 2, pt, pb, 0.0)?, 3, pl, pr, 0.0)?;
                let y = xp.conv2d(&wd, 0, 1, 1, g)?;
                add_bias(strided(&strided(&y, 2, 0, ho, sh)?, 3, 0, wo, sw)?)
            }));
        }
        let native = lowering == Lowering::Native;
        Ok(Box::new(move |xs: &[Tensor], _| {
            let y = if native {
                xs[0].conv2d(&weight, pt, sh, dh, g)?
            } else {
                let xp = pad(&pad(&xs[0], 2, pt, pb, 0.0)?, 3, pl, pr, 0.0)?;
                let xp = xp.narrow(2, 0, wh.extent())?.narrow(3, 0, ww.extent())?;
                xp.conv2d(&weight, 0, sh, dh, g)?
            };
            add_bias(y)
        }))
    }

    /// `conv2d` as src/kinds/conv2d.rs builds it, op by op (O = output bytes):
    /// - **depthwise** (groups = C_in = C_out): the input zero-padded along H then W (the first
    ///   result is a temporary of the statement that makes the second); per tap a slice of it
    ///   (a view at stride 1, else `index_select` copies), its product with the tap (O), and the
    ///   running sum (O); then the bias sum. Each tap's weight slice is a C_out-element copy.
    /// - **per-axis stride or dilation**: the kernel dilated per axis (zeros and result each),
    ///   the padded input, candle's conv2d at stride 1 (its full output), every s-th row, then
    ///   every s-th column (`index_select` copies), the bias sum.
    /// - **native / padded**: candle's own padding when [`Conv2d::candle_pads`] holds, else the padded
    ///   input narrowed to the extent the windows read; candle's conv2d ([`conv_workspace`](crate::candle::model::conv_workspace);
    ///   with groups, one output per group and their `cat`, freed before the bias sum).
    ///
    /// Training keeps every op output (the zeros too: `cat` keeps its arguments); ops on an
    /// untracked input keep nothing but the tensor the conv reads.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{conv_workspace, dilate_kernel, elems, pad_step, CandleLayer, Live};
        let (c, x, o, threads, s, inp) = (self, at.x(), at.o(), at.threads, at.s, at.state);
        let out = elems(o) * s;
        let (n, c_in, h, w) = (x[0], x[1], x[2], x[3]);
        let (ho, wo) = (o[2], o[3]);
        let [pt, pb, pl, pr] = c.padding.resolve(c.kernel, c.dilation).unwrap_or([0; 4]);
        let [kh, kw] = c.kernel;
        let [sh, sw] = c.stride;
        let [dh, dw] = c.dilation;
        let g = c.groups;
        let bias = if c.bias { out } else { 0 };
        let mut live = Live::default();
        let (mut kept, mut kept_x) = (0, 0);
        // The input padded along H, then W; `made` is the last tensor made from the input.
        let padded_input = |live: &mut Live, kept_x: &mut u64, hi_h: u64, hi_w: u64| -> (u64, [u64; 4]) {
            let mut dims = [n, c_in, h, w];
            let first = pad_step(live, kept_x, &mut dims, 2, pt, hi_h, s);
            let second = pad_step(live, kept_x, &mut dims, 3, pl, hi_w, s);
            if second > 0 {
                live.free(first);
            }
            (if second > 0 { second } else { first }, dims)
        };
        let lowering = c.lowering(c_in, [h, w], [ho, wo]);
        if lowering == Lowering::Depthwise {
            let taps = kh * kw;
            // The taps' weight slices: [C_out, 1, 1, 1] views reshaped to [1, C_out, 1, 1], a
            // copy (the view's channel stride is k_h·k_w) unless C_out = 1 or k = 1×1.
            let tap = if c_in > 1 && taps > 1 { c_in * s } else { 0 };
            live.alloc(taps * tap);
            kept += taps * tap;
            // Padding after: enough for every window (the builder's `Win::pad_hi`).
            let hi = |i: u64, p_lo: u64, p_hi: u64, o: u64, a: usize| {
                let need = (o - 1) * c.stride[a] + (c.kernel[a] - 1) * c.dilation[a] + 1;
                p_hi + need.saturating_sub(i + p_lo + p_hi)
            };
            let (made, [_, _, hp, wp]) =
                padded_input(&mut live, &mut kept_x, hi(h, pt, pb, ho, 0), hi(w, pl, pr, wo, 1));
            // Per tap: rows (index_select when strided: n·c·h_o·W_p), then columns (when strided:
            // from a contiguous value, else after a contiguous copy of the row view).
            let rows = if sh > 1 { n * c_in * ho * wp * s } else { 0 };
            let cols_copy = if sw > 1 && sh == 1 && ho < hp { n * c_in * ho * wp * s } else { 0 };
            let cols = if sw > 1 { out } else { 0 };
            let slices = rows + cols_copy + cols;
            // From the second tap on: the sum so far, the tap's slices, its product and the new
            // sum; then the sum and the bias sum.
            let before = live.now;
            live.alloc(slices + if taps > 1 { 3 * out } else { out });
            live.now = before + out;
            live.alloc(bias);
            // Untracked input: each product keeps only the slice it read (the padded input itself
            // when the slices are views).
            let read = if cols > 0 {
                taps * cols
            } else if rows > 0 {
                taps * rows
            } else {
                made
            };
            kept_x += taps * slices;
            kept += if inp.tracked { kept_x } else { read } + taps * out + (taps - 1) * out + bias;
            return CandleLayer { output: out, peak: live.peak, retained: kept, ..Default::default() };
        }
        let (cig, cog) = (c_in / g, c.c_out / g);
        let groups_cat = |o: u64| if g > 1 { o } else { 0 };
        if lowering == Lowering::PerAxis {
            let [keh, kew] = dilate_kernel(&mut live, &mut kept, c.c_out * cig * s, c.kernel, c.dilation);
            let (made, [_, _, hp, wp]) = padded_input(&mut live, &mut kept_x, pb, pr);
            kept += if inp.tracked { kept_x } else { made };
            let (hf, wf) = (hp - keh + 1, wp - kew + 1);
            let full = n * c.c_out * hf * wf * s;
            let ws = conv_workspace(n, cig, hp, wp, cog, [keh, kew], hf * wf, true, threads, s);
            live.alloc(full + ws.max(groups_cat(full)));
            live.free(ws.max(groups_cat(full)));
            let rows = if sh > 1 { n * c.c_out * ho * wf * s } else { 0 };
            let cols_copy = if sw > 1 && sh == 1 && ho < hf { n * c.c_out * ho * wf * s } else { 0 };
            let cols = if sw > 1 { out } else { 0 };
            live.alloc(rows + cols_copy + cols + bias);
            kept += full + groups_cat(full) + rows + cols_copy + cols + bias;
            return CandleLayer { output: out, peak: live.peak, retained: kept, ..Default::default() };
        }
        let native = lowering == Lowering::Native;
        let unit = sh == 1 && dh == 1 && (!native || pt == 0);
        let (hi, wi) = if native {
            (h, w)
        } else {
            let (made, _) = padded_input(&mut live, &mut kept_x, pb, pr);
            kept += if inp.tracked { kept_x } else { made };
            // The conv reads the extent its windows cover.
            ((ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1)
        };
        let ws = conv_workspace(n, cig, hi, wi, cog, c.kernel, ho * wo, unit, threads, s);
        // candle's grouped conv2d frees its per-group outputs when it returns the `cat`.
        let peak = live.now + out + ws.max(groups_cat(out)).max(bias);
        CandleLayer {
            output: out,
            peak: live.peak.max(peak),
            retained: kept + out + groups_cat(out) + bias,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn grouped_dilated_conv() {
        // Conv2d(32→64, k3, groups 32, dilation 2) on 1×32×56×56:
        // H_out = 56 − 2·(3 − 1) − 1 + 1 = 52; params 64·(32/32)·3·3 + 64 = 640;
        // MACs 1·64·52·52·1·3·3 = 1,557,504.
        let c = run::<Conv2d>("{c_out: 64, kernel: 3, groups: 32, dilation: 2}", &[1, 32, 56, 56]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 64, 52, 52]));
        assert_eq!(c.macs, 1_557_504);
        assert_eq!(c.params, 640);
    }

    #[test]
    fn rectangular_kernel_stride_padding() {
        // Conv2d(3→8, kernel (3,5), stride (2,1), padding (1,2)) on 1×3×15×20:
        // H = ⌊(15 + 2 − 3)/2⌋ + 1 = 8; W = (20 + 4 − 5)/1 + 1 = 20;
        // params 8·3·3·5 + 8 = 368; MACs 8·8·20·3·3·5 = 57,600.
        let c = run::<Conv2d>("{c_out: 8, kernel: [3, 5], stride: [2, 1], padding: [1, 2]}", &[1, 3, 15, 20]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 8, 8, 20]));
        assert_eq!(c.macs, 57_600);
        assert_eq!(c.params, 368);
    }

    #[test]
    fn resnet18_conv1() {
        // torchvision resnet18 conv1 (reference/torchvision_layers/resnet18.csv):
        // [1,3,224,224] → [1,64,112,112], 9,408 params (64·3·7·7, no bias), 118,013,952 MACs.
        let c = run::<Conv2d>("{c_out: 64, kernel: 7, stride: 2, padding: 3, bias: false}", &[1, 3, 224, 224]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 64, 112, 112]));
        assert_eq!(c.params, 9_408);
        assert_eq!(c.macs, 118_013_952);
    }

    #[test]
    fn same_padding_puts_the_extra_after() {
        // k4, d1: total padding 3 → top 1, bottom 2 (PyTorch padding='same'); 10 stays 10.
        assert_eq!(Padding::Same.resolve([4, 4], [1, 1]).unwrap(), [1, 2, 1, 2]);
        let c = run::<Conv2d>("{c_out: 2, kernel: 4, padding: same}", &[1, 1, 10, 10]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 2, 10, 10]));
        let e = run::<Conv2d>("{c_out: 2, kernel: 4, stride: 2, padding: same}", &[1, 1, 10, 10]).unwrap_err();
        assert_eq!(e.field, Some("padding"));
    }

    #[test]
    fn four_sided_padding_and_valid() {
        // [top 0, bottom 1, left 2, right 3], k3: H = 5 + 1 − 3 + 1 = 4, W = 5 + 5 − 3 + 1 = 8.
        let c = run::<Conv2d>("{c_out: 1, kernel: 3, padding: [0, 1, 2, 3]}", &[1, 1, 5, 5]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 1, 4, 8]));
        let c = run::<Conv2d>("{c_out: 1, kernel: 3, padding: valid}", &[1, 1, 5, 5]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 1, 3, 3]));
    }

    #[test]
    fn padding_list_of_wrong_length_names_every_form() {
        // [1, 2, 3] is neither [h, w] nor [top, bottom, left, right]: the message lists all forms
        // and says how long the list was.
        let e = super::super::test_util::parse::<Conv2d>("{c_out: 1, kernel: 3, padding: [1, 2, 3]}").unwrap_err();
        assert!(
            e.message.ends_with(
                "expected an integer, [h, w], [top, bottom, left, right], `same` or `valid`, got a list of 3 items"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn errors() {
        let e = run::<Conv2d>("{c_out: 64, kernel: 3, groups: 5}", &[1, 32, 8, 8]).unwrap_err();
        assert_eq!((e.field, e.message.as_str()), (Some("groups"), "groups 5 does not divide c_in 32"));
        let e = run::<Conv2d>("{c_out: 4, kernel: 7}", &[1, 3, 5, 5]).unwrap_err();
        assert!(e.message.contains("kernel larger than the padded input"), "{}", e.message);
        let e = run::<Conv2d>("{c_out: 4, kernel: 3}", &[1, 3, 5]).unwrap_err();
        assert!(e.message.contains("expected a rank-4 input"), "{}", e.message);
        let e = super::super::test_util::parse::<Conv2d>("{c_out: 0, kernel: 3}").unwrap_err();
        assert!(e.message.contains("`c_out`: expected a positive integer, got 0"), "{}", e.message);
        let e = super::super::test_util::parse::<Conv2d>("{c_out: 4, kernel: 2.5}").unwrap_err();
        assert!(e.message.contains("got 2.5"), "{}", e.message);
    }

    #[test]
    fn weights_plus_bias_overflow_is_an_error() {
        // (2^32 − 1)·(2^32 + 1)·1·1 = 2^64 − 1 weights fit; adding 2^32 − 1 biases does not.
        let e = run::<Conv2d>("{c_out: 4294967295, kernel: 1}", &[1, 4294967297, 1, 1]).unwrap_err();
        assert_eq!(e.message, "param count overflows u64 (18446744073709551615+4294967295)");
    }
}
