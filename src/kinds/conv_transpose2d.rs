//! `conv_transpose2d`: 2-D transposed convolution over NCHW input (PyTorch `nn.ConvTranspose2d`).
//!
//! Shape (PyTorch ConvTranspose2d docs): `H_out = (H_in − 1)·s − 2·p + d·(k − 1) + output_padding + 1`,
//! likewise `W_out`. `output_padding` must be smaller than the stride or the dilation (PyTorch rule).
//!
//! Params: `c_in · (c_out / groups) · k_h · k_w` weights, plus `c_out` biases if `bias`.
//!
//! MACs are counted on the input grid: every input element is multiplied into a `k_h·k_w` patch
//! of `c_out/groups` output channels: `N · c_in · H_in · W_in · (c_out / groups) · k_h · k_w`
//! (PyTorch FlopCounterMode `conv_flop_count` with `transposed=True`; bias adds not counted).

use super::{expect_rank, Cost, KindError, KindSpec, Op, Peer, Saved, Split};
use crate::error::SpecError;
use crate::shape::{add, checked_product, Shape};
use crate::spec::fields::Fields;

/// A 2-D transposed convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvTranspose2d {
    /// Output channels.
    pub c_out: u64,
    /// `[k_h, k_w]`.
    pub kernel: [u64; 2],
    /// `[s_h, s_w]`, default 1.
    pub stride: [u64; 2],
    /// `[p_h, p_w]`, default 0 (removed from both sides of the output).
    pub padding: [u64; 2],
    /// `[op_h, op_w]`, default 0 (added on one side of the output).
    pub output_padding: [u64; 2],
    /// `[d_h, d_w]`, default 1.
    pub dilation: [u64; 2],
    /// Groups, default 1.
    pub groups: u64,
    /// Whether the layer has a bias (default true).
    pub bias: bool,
}

impl KindSpec for ConvTranspose2d {
    const NAME: &'static str = "conv_transpose2d";
    const FIELDS: &'static [&'static str] =
        &["c_out", "kernel", "stride", "padding", "output_padding", "dilation", "groups", "bias"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        let kernel = f.pos_pair("kernel")?.ok_or_else(|| f.err(f.node.loc, "missing required field `kernel`"))?;
        Ok(ConvTranspose2d {
            c_out: f.req_pos("c_out")?,
            kernel,
            stride: f.pos_pair("stride")?.unwrap_or([1, 1]),
            padding: f.nonneg_pair("padding")?.unwrap_or([0, 0]),
            output_padding: f.nonneg_pair("output_padding")?.unwrap_or([0, 0]),
            dilation: f.pos_pair("dilation")?.unwrap_or([1, 1]),
            groups: f.pos("groups")?.unwrap_or(1),
            bias: f.bool("bias")?.unwrap_or(true),
        })
    }
}

/// `(i − 1)·s − 2p + d·(k − 1) + op + 1`, checked; an error when it is not positive.
fn out_size(i: u64, k: u64, s: u64, p: u64, d: u64, op: u64) -> Result<u64, String> {
    let grow = (i - 1)
        .checked_mul(s)
        .and_then(|v| v.checked_add((k - 1).checked_mul(d)?))
        .and_then(|v| v.checked_add(op + 1))
        .ok_or("output size overflows u64")?;
    let cut = p.checked_mul(2).ok_or("padding overflows u64")?;
    if cut >= grow {
        return Err(format!(
            "padding too large: (I−1)·s + d·(k−1) + output_padding + 1 = {grow} but 2·padding = {cut}; expected a positive output size"
        ));
    }
    Ok(grow - cut)
}

impl Op for ConvTranspose2d {
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

    /// Saved for backward: the input (weight gradient; PyTorch `convolution_backward` saves
    /// input and weight).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0)])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        expect_rank(x, 4, "N×C×H×W")?;
        let (n, c_in, h, w) = (x.0[0], x.0[1], x.0[2], x.0[3]);
        for (c, what) in [(c_in, "c_in"), (self.c_out, "c_out")] {
            if c % self.groups != 0 {
                return Err(KindError::field("groups", format!("groups {} does not divide {what} {c}", self.groups)));
            }
        }
        for i in 0..2 {
            let op = self.output_padding[i];
            if op >= self.stride[i] && op >= self.dilation[i] {
                return Err(KindError::field(
                    "output_padding",
                    format!(
                        "output_padding {op} must be smaller than stride {} or dilation {} (PyTorch rule)",
                        self.stride[i], self.dilation[i]
                    ),
                ));
            }
        }
        let size = |i: usize, input| {
            out_size(input, self.kernel[i], self.stride[i], self.padding[i], self.dilation[i], self.output_padding[i])
                .map_err(|m| KindError::field("padding", format!("{}: {m}", ["height", "width"][i])))
        };
        let (h_out, w_out) = (size(0, h)?, size(1, w)?);
        let c_out_g = self.c_out / self.groups;
        let weights = checked_product(&[c_in, c_out_g, self.kernel[0], self.kernel[1]])?;
        let params = add(weights, if self.bias { self.c_out } else { 0 }, "param count")?;
        let macs = checked_product(&[n, c_in, h, w, c_out_g, self.kernel[0], self.kernel[1]])?;
        let output = Shape(vec![n, self.c_out, h_out, w_out]);
        output.elements()?;
        Ok(Cost { output, params, buffers: 0, macs })
    }
}

impl crate::candle::build::Build for ConvTranspose2d {
    /// From ops that backprop: the input is dilated by the stride (zeros inserted between
    /// pixels), padded by d·(k−1)−p on each side (+ output_padding at the bottom/right), and
    /// convolved (stride 1, dilation d) with the kernel flipped in H and W and its in/out
    /// channels swapped per group (PyTorch's definition of the transposed conv as the gradient
    /// of conv2d). Weight `[c_in, c_out/groups, k_h, k_w]` (PyTorch layout); bias added after.
    /// candle's own conv_transpose2d has no groups and one stride/padding for both axes; the
    /// dilation is made explicit in the kernel (zeros between taps), so the axes may differ.
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use crate::candle::ops::{dilate, pad};
        use candle_core::Tensor;
        let x = cx.input(0);
        let (n, c_in, h, w) = (x[0], x[1], x[2], x[3]);
        let (c_out, g) = (self.c_out as usize, self.groups as usize);
        let [kh, kw] = self.kernel.map(|v| v as usize);
        let [sh, sw] = self.stride.map(|v| v as usize);
        let [ph, pw] = self.padding.map(|v| v as usize);
        let [oph, opw] = self.output_padding.map(|v| v as usize);
        let [dh, dw] = self.dilation.map(|v| v as usize);
        let (ho, wo) = (cx.output.0[2] as usize, cx.output.0[3] as usize);
        let bound = 1.0 / ((c_out / g * kh * kw) as f64).sqrt();
        let weight = cx.param("weight", &[c_in, c_out / g, kh, kw], bound)?;
        let bias = if self.bias { Some(cx.param("bias", &[c_out], bound)?.reshape((1, c_out, 1, 1))?) } else { None };
        // Flip index vectors (reversed 0..k) for index_select along H and W.
        let rev = |k: usize| Tensor::from_vec((0..k as u32).rev().collect::<Vec<u32>>(), k, cx.device);
        let (rh, rw) = (rev(kh)?, rev(kw)?);
        let (cig, cog) = (c_in / g, c_out / g);
        Ok(Box::new(move |xs: &[Tensor], _| {
            // Kernel for the equivalent conv: [c_out, c_in/g, kh, kw], flipped.
            let wf = weight.index_select(&rh, 2)?.index_select(&rw, 3)?;
            let wf = wf.reshape((g, cig, cog, kh, kw))?.transpose(1, 2)?.reshape((c_out, cig, kh, kw))?.contiguous()?;
            // Dilation made explicit (zeros between taps), so each axis can have its own.
            let wf = dilate(&dilate(&wf, 2, dh)?, 3, dw)?;
            // Zero insertion: [n,c,h,1,w,1] padded to [n,c,h,s_h,w,s_w], then cropped.
            let xd = xs[0].reshape((n, c_in, h, 1, w, 1))?;
            let xd = pad(&pad(&xd, 3, 0, sh - 1, 0.0)?, 5, 0, sw - 1, 0.0)?;
            let xd = xd.reshape((n, c_in, h * sh, w * sw))?;
            let xd = xd.narrow(2, 0, (h - 1) * sh + 1)?.narrow(3, 0, (w - 1) * sw + 1)?;
            // Pad d·(k−1) − p each side; a negative pad is a crop.
            let side =
                |k: usize, d: usize, p: usize, t: &Tensor, dim: usize, op: usize| -> candle_core::Result<Tensor> {
                    let full = d * (k - 1);
                    let len = t.dim(dim)?;
                    let t = pad(t, dim, full, full + op, 0.0)?;
                    t.narrow(dim, p, len + 2 * full + op - 2 * p)
                };
            let xp = side(kh, dh, ph, &xd, 2, oph)?;
            let xp = side(kw, dw, pw, &xp, 3, opw)?;
            let y = xp.conv2d(&wf, 0, 1, 1, g)?;
            debug_assert_eq!(y.dims(), &[n, c_out, ho, wo]);
            match &bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            }
        }))
    }

    /// `conv_transpose2d` as src/kinds/conv_transpose2d.rs builds it (X = N·C_in·H·W·s input
    /// bytes, Wt = C_in·C_out/g·k_h·k_w·s weight bytes), each step one candle op:
    /// - the kernel flipped in H and W (two `index_select`s: Wt each; the first is a temporary),
    ///   its in/out channels swapped (a reshape of a transposed view: a Wt copy unless
    ///   C_in/g = 1 or C_out/g = 1, where the transpose moves only a size-1 dim and candle
    ///   ignores size-1 dims), then dilated per axis when d > 1 (`pad_with_zeros`-style `cat`
    ///   with a zeros tensor, so each makes the zeros and the result);
    /// - the input dilated by the stride: zeros inserted by two `pad_with_zeros` (s_h > 1: zeros
    ///   X·(s_h − 1), result X·s_h; s_w > 1: zeros X·s_h·(s_w − 1), result X·s_h·s_w), then
    ///   padded by d·(k − 1) each side (+ output_padding after) per axis (zeros, result), and
    ///   narrowed by the padding (a view);
    /// - candle's conv2d at stride 1 ([`conv_workspace`](crate::candle::model::conv_workspace) on the padded input with the dilated
    ///   kernel; with groups, one output per group and their `cat`), then the bias sum.
    ///
    /// Inference: every `let` lives to the end of the closure; the zeros of each pad die when
    /// `pad_with_zeros` returns; the first flip, the inner dilation and the first stride pad at
    /// the end of their statement. Training keeps every op output (the zeros too: `cat` keeps its arguments); the
    /// input side only when the input is tracked, else just the tensor the conv reads.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        use crate::candle::model::{conv_workspace, dilate_kernel, elems, CandleLayer, Live};
        let (c, x, o, threads, s, inp) = (self, at.x(), at.o(), at.threads, at.s, at.state);
        let out = elems(o) * s;
        let (n, c_in, h, w) = (x[0], x[1], x[2], x[3]);
        let g = c.groups;
        let (cig, cog) = (c_in / g, c.c_out / g);
        let [kh, kw] = c.kernel;
        let [sh, sw] = c.stride;
        let [dh, dw] = c.dilation;
        let mut live = Live::default();
        let mut kept = 0;
        // Kernel side: always tracked (the weight is a variable).
        let wt = c_in * cog * kh * kw * s;
        live.alloc(wt);
        live.alloc(wt);
        live.free(wt);
        kept += 2 * wt;
        if cig > 1 && cog > 1 {
            live.alloc(wt);
            kept += wt;
        }
        let [keh, kew] = dilate_kernel(&mut live, &mut kept, c.c_out * cig * s, c.kernel, c.dilation);
        // Input side: `made` is the last tensor it allocated (what the conv reads).
        let (mut kept_x, mut made) = (0, 0);
        let mut step = |live: &mut Live, zeros: u64, result: u64| {
            live.alloc(zeros);
            live.alloc(result);
            live.free(zeros);
            kept_x += zeros + result;
            made = result;
        };
        let xb = n * c_in * h * w * s;
        if !inp.contiguous {
            step(&mut live, 0, xb);
        }
        if sh > 1 {
            step(&mut live, xb * (sh - 1), xb * sh);
        }
        if sw > 1 {
            step(&mut live, xb * sh * (sw - 1), xb * sh * sw);
            if sh > 1 {
                // The first pad was a temporary of the statement that made the second.
                live.free(xb * sh);
            }
        }
        // Zero insertion leaves (I − 1)·s + 1 per axis; then d·(k − 1) each side (+ output_padding
        // after), cut by the padding.
        let (hd, wd) = ((h - 1) * sh + 1, (w - 1) * sw + 1);
        let (lh, rh) = (dh * (kh - 1), dh * (kh - 1) + c.output_padding[0]);
        let (lw, rw) = (dw * (kw - 1), dw * (kw - 1) + c.output_padding[1]);
        let nc = n * c_in * s;
        if lh + rh > 0 {
            step(&mut live, nc * (lh + rh) * wd, nc * (hd + lh + rh) * wd);
        }
        let hp = hd + lh + rh - 2 * c.padding[0];
        if lw + rw > 0 {
            step(&mut live, nc * hp * (lw + rw), nc * hp * (wd + lw + rw));
        }
        let wp = wd + lw + rw - 2 * c.padding[1];
        kept += if inp.tracked { kept_x } else { made };
        // The conv and the bias sum.
        let ws = conv_workspace(n, cig, hp, wp, cog, [keh, kew], o[2] * o[3], true, threads, s);
        let groups_cat = if g > 1 { out } else { 0 };
        let bias = if c.bias { out } else { 0 };
        // candle's grouped conv2d frees its per-group outputs when it returns the `cat`.
        let peak = live.now + out + ws.max(groups_cat).max(bias);
        CandleLayer {
            output: out,
            peak: live.peak.max(peak),
            retained: kept + out + groups_cat + bias,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn acceptance_upsample_2x() {
        // ConvTranspose2d(3→1, kernel 2, stride 2) on 1×3×2×2: H_out = (2−1)·2 − 0 + 1·(2−1) + 0 + 1 = 4;
        // params 3·1·2·2 + 1 = 13; MACs on the input grid 1·3·2·2·1·2·2 = 48.
        let c = run::<ConvTranspose2d>("{c_out: 1, kernel: 2, stride: 2}", &[1, 3, 2, 2]).unwrap();
        assert_eq!(c.output, Shape(vec![1, 1, 4, 4]));
        assert_eq!((c.params, c.macs), (13, 48));
    }

    #[test]
    fn padding_output_padding_and_errors() {
        // k3 s2 p1 op1 on 7: (7−1)·2 − 2 + 2 + 1 + 1 = 14 (the usual exact 2× upsampling).
        let c =
            run::<ConvTranspose2d>("{c_out: 8, kernel: 3, stride: 2, padding: 1, output_padding: 1}", &[1, 4, 7, 7])
                .unwrap();
        assert_eq!(c.output, Shape(vec![1, 8, 14, 14]));
        let e = run::<ConvTranspose2d>("{c_out: 8, kernel: 3, output_padding: 1}", &[1, 4, 7, 7]).unwrap_err();
        assert_eq!(e.field, Some("output_padding"));
        let e = run::<ConvTranspose2d>("{c_out: 8, kernel: 1, padding: 1}", &[1, 4, 1, 1]).unwrap_err();
        assert!(e.message.contains("padding too large"), "{}", e.message);
    }

    #[test]
    fn weights_plus_bias_overflow_is_an_error() {
        // (2^32 + 1)·(2^32 − 1)·1 = 2^64 − 1 weights fit; adding 2^32 − 1 biases does not.
        let e = run::<ConvTranspose2d>("{c_out: 4294967295, kernel: 1}", &[1, 4294967297, 1, 1]).unwrap_err();
        assert_eq!(e.message, "param count overflows u64 (18446744073709551615+4294967295)");
    }
}
