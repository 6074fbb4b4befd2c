//! Memory predictions beside the measurement: a framework-neutral one (each value its output
//! bytes, alive from its producer to its last reader) and a candle model that adds what this
//! runtime really allocates: the tiled-im2col buffers of `conv2d` (cpu_backend/conv2d.rs: an
//! NHWC copy of the input, the flattened kernel, per tile in flight a column buffer
//! `C_in·k_h·k_w·T` and a result `C_out·T`), pre-bias tensors, strided-slice copies and pairwise
//! maxima of the pools, zero-pad copies, dropout masks, and views that cost nothing.
//!
//! Units: bytes. Shapes: with batch, NCHW.

use crate::analysis::Analysis;
use crate::kinds::conv2d::Conv2d;
use crate::kinds::window::PoolWindow;
use crate::kinds::Kind;

/// What the candle model needs to know about a layer's inputs, from the layers before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// Some input depends on a trainable variable, so candle records the layer's ops for
    /// backward (each op keeps its inputs). Ops on untracked tensors (the network input before
    /// the first parameter) keep nothing: candle's `BackpropOp::none`.
    pub tracked: bool,
    /// Every input is laid out contiguously (not a transpose, permute or select view).
    pub contiguous: bool,
}

impl Default for Inputs {
    /// Tracked and contiguous: a layer deep in a network.
    fn default() -> Self {
        Inputs { tracked: true, contiguous: true }
    }
}

/// The candle model's view of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CandleLayer {
    /// Bytes the output owns (0 for a view of its input: flatten, inference dropout).
    pub output: u64,
    /// Most bytes live at once while the layer runs in inference, beyond what was live before
    /// it (output included).
    pub peak: u64,
    /// Bytes of every op output and constant the layer makes in a training forward: what the
    /// autograd graph keeps until backward.
    pub retained: u64,
}

fn elems(s: &[u64]) -> u64 {
    s.iter().product()
}

/// Candle's CPU conv2d workspace beyond its output (candle-core cpu_backend/conv2d.rs), for one
/// group: a 1×1 kernel at stride 1 without padding or dilation (`unit`) takes `conv2d_1x1`
/// (per image in flight, an input copy and a result); any other 1×1 kernel the full im2col
/// (`conv2d_im2col_gemm`: the N·H_o·W_o·C_in column matrix and the result before its
/// transposing copy); every other kernel the tiled im2col (an NHWC input copy, the flattened
/// kernel and, per tile in flight, a column buffer and a result). Each matmul adds its
/// transient ([`MATMUL_TRANSIENT_BYTES`]).
#[allow(clippy::too_many_arguments)]
fn conv_workspace(
    n: u64,
    c_in: u64,
    h: u64,
    w: u64,
    c_out: u64,
    k: [u64; 2],
    out_hw: u64,
    unit: bool,
    threads: u64,
    s: u64,
) -> u64 {
    let k_size = c_in * k[0] * k[1];
    if k == [1, 1] && unit {
        let inflight = threads.min(n).max(1);
        return inflight * ((c_in * h * w + c_out * out_hw) * s + MATMUL_TRANSIENT_BYTES);
    }
    if k == [1, 1] {
        return n * out_hw * (c_in + c_out) * s + MATMUL_TRANSIENT_BYTES;
    }
    // Tiles of ≤ 512 output pixels per image; one per thread in flight: the largest ones.
    const TILE: u64 = 512;
    let (full, rest) = (out_hw / TILE, out_hw % TILE);
    let mut tiles: Vec<u64> = Vec::new();
    for _ in 0..n.min(threads.max(1)) {
        tiles.extend(std::iter::repeat_n(TILE, full.min(threads.max(1)) as usize));
        if rest > 0 {
            tiles.push(rest);
        }
    }
    tiles.sort_unstable_by(|a, b| b.cmp(a));
    let inflight: u64 = tiles
        .iter()
        .take(threads.max(1) as usize)
        .map(|&t| (k_size + c_out) * t * s + 16 * t + MATMUL_TRANSIENT_BYTES)
        .sum();
    n * c_in * h * w * s + c_out * k_size * s + inflight
}

/// Zero-padding of a `[n, c, h, w]` value along H (`axis` 2) or W (3) by `lo` and `hi`, as
/// `pad_with_zeros` does it: the zeros (freed when it returns) and the result. Returns the
/// result's bytes (0 when nothing is padded: the input is returned as is).
fn pad_step(live: &mut Live, kept: &mut u64, dims: &mut [u64; 4], axis: usize, lo: u64, hi: u64, s: u64) -> u64 {
    if lo + hi == 0 {
        return 0;
    }
    let plane: u64 = dims.iter().enumerate().filter(|&(i, _)| i != axis).map(|(_, &d)| d).product();
    let (zeros, result) = (plane * (lo + hi) * s, plane * (dims[axis] + lo + hi) * s);
    live.alloc(zeros);
    live.alloc(result);
    live.free(zeros);
    *kept += zeros + result;
    dims[axis] += lo + hi;
    result
}

/// `conv2d` as src/kinds/conv2d.rs builds it, op by op (O = output bytes):
/// - **depthwise** (groups = C_in = C_out): the input zero-padded along H then W (the first
///   result is a temporary of the statement that makes the second); per tap a slice of it
///   (a view at stride 1, else `index_select` copies), its product with the tap (O), and the
///   running sum (O); then the bias sum. Each tap's weight slice is a C_out-element copy.
/// - **per-axis stride or dilation**: the kernel dilated per axis (zeros and result each),
///   the padded input, candle's conv2d at stride 1 (its full output), every s-th row, then
///   every s-th column (`index_select` copies), the bias sum.
/// - **otherwise**: candle's own padding when [`Conv2d::candle_pads`] holds, else the padded
///   input narrowed to the extent the windows read; candle's conv2d ([`conv_workspace`];
///   with groups, one output per group and their `cat`, freed before the bias sum).
///
/// Training keeps every op output (the zeros too: `cat` keeps its arguments); ops on an
/// untracked input keep nothing but the tensor the conv reads.
fn conv(c: &Conv2d, x: &[u64], o: &[u64], threads: u64, s: u64, inp: Inputs) -> CandleLayer {
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
    if g > 1 && g == c_in && g == c.c_out {
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
        let (made, [_, _, hp, wp]) = padded_input(&mut live, &mut kept_x, hi(h, pt, pb, ho, 0), hi(w, pl, pr, wo, 1));
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
        return CandleLayer { output: out, peak: live.peak, retained: kept };
    }
    let (cig, cog) = (c_in / g, c.c_out / g);
    let groups_cat = |o: u64| if g > 1 { o } else { 0 };
    if sh != sw || dh != dw {
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
        return CandleLayer { output: out, peak: live.peak, retained: kept };
    }
    let native = c.candle_pads([h, w], [ho, wo]);
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
    CandleLayer { output: out, peak: live.peak.max(peak), retained: kept + out + groups_cat(out) + bias }
}

/// `conv1d` as src/kinds/conv1d.rs builds it (O = output bytes): the input zero-padded
/// (`pad_with_zeros`, enough on the right for every window), narrowed to the extent the
/// windows read (a view), reshaped to N×C×1×L (a copy when the narrow cut the padded length
/// short: the view is not contiguous), candle's conv2d with a 1×k kernel ([`conv_workspace`];
/// with groups, one output per group and their `cat`), then the bias sum.
///
/// Training keeps every op output; ops on an untracked input keep nothing but the tensor the
/// conv reads.
fn conv1d(c: &crate::kinds::conv1d::Conv1d, x: &[u64], o: &[u64], threads: u64, s: u64, inp: Inputs) -> CandleLayer {
    let out = elems(o) * s;
    let (n, c_in, l, lo) = (x[0], x[1], x[2], o[2]);
    let (k, st, p, d, g) = (c.kernel, c.stride, c.padding, c.dilation, c.groups);
    let extent = (lo - 1) * st + (k - 1) * d + 1;
    let hi = p + extent.saturating_sub(l + 2 * p);
    let bias = if c.bias { out } else { 0 };
    let mut live = Live::default();
    let mut kept_x = 0;
    let mut dims = [n, c_in, 1, l];
    let mut made = pad_step(&mut live, &mut kept_x, &mut dims, 3, p, hi, s);
    if extent < dims[3] {
        let copy = n * c_in * extent * s;
        live.alloc(copy);
        kept_x += copy;
        made = copy;
    }
    let kept = if inp.tracked { kept_x } else { made };
    let groups_cat = if g > 1 { out } else { 0 };
    let ws = conv_workspace(n, c_in / g, 1, extent, c.c_out / g, [1, k], lo, st == 1 && d == 1, threads, s);
    let peak = live.now + out + ws.max(groups_cat).max(bias);
    CandleLayer { output: out, peak: live.peak.max(peak), retained: kept + out + groups_cat + bias }
}

/// Bytes live during one layer's forward in inference, in allocation order: the running
/// total and its high-water mark (both beyond what was live before the layer).
#[derive(Debug, Default)]
struct Live {
    now: u64,
    peak: u64,
}

impl Live {
    fn alloc(&mut self, bytes: u64) {
        self.now += bytes;
        self.peak = self.peak.max(self.now);
    }
    fn free(&mut self, bytes: u64) {
        self.now -= bytes;
    }
}

/// A kernel dilated per axis with zeros between its taps (`ops::dilate`: a `cat` of the taps
/// and a zeros tensor, so the zeros and the result each axis; the H result is a temporary of
/// the statement that dilates W). `plane` = C_out·C_in/g·s bytes per kernel element. Returns
/// the dilated kernel size.
fn dilate_kernel(live: &mut Live, kept: &mut u64, plane: u64, [kh, kw]: [u64; 2], [dh, dw]: [u64; 2]) -> [u64; 2] {
    let (keh, kew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
    let mut inner = 0;
    if dh > 1 && kh > 1 {
        let zeros = plane * (dh - 1) * kw;
        inner = plane * keh * kw;
        live.alloc(zeros);
        live.alloc(inner);
        live.free(zeros);
        *kept += zeros + inner;
    }
    if dw > 1 && kw > 1 {
        let (zeros, dilated) = (plane * keh * (dw - 1), plane * keh * kew);
        live.alloc(zeros);
        live.alloc(dilated);
        live.free(zeros);
        live.free(inner);
        *kept += zeros + dilated;
    }
    [keh, kew]
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
/// - candle's conv2d at stride 1 ([`conv_workspace`] on the padded input with the dilated
///   kernel; with groups, one output per group and their `cat`), then the bias sum.
///
/// Inference: every `let` lives to the end of the closure; the zeros of each pad die when
/// `pad_with_zeros` returns; the first flip, the inner dilation and the first stride pad at
/// the end of their statement. Training keeps every op output (the zeros too: `cat` keeps its arguments); the
/// input side only when the input is tracked, else just the tensor the conv reads.
fn conv_transpose(
    c: &crate::kinds::conv_transpose2d::ConvTranspose2d,
    x: &[u64],
    o: &[u64],
    threads: u64,
    s: u64,
    inp: Inputs,
) -> CandleLayer {
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
    CandleLayer { output: out, peak: live.peak.max(peak), retained: kept + out + groups_cat + bias }
}

/// One separable pool axis: (bytes after it, peak during it beyond its input, retained bytes).
#[allow(clippy::too_many_arguments)]
fn pool_axis(
    n_c_other: u64,
    input: u64,
    output: u64,
    k: u64,
    stride: u64,
    pad_lo: u64,
    pad_hi_total: u64,
    s: u64,
) -> (u64, u64, u64) {
    let out = n_c_other * output * s;
    if k == 1 && pad_lo == 0 && stride == 1 && output == input {
        return (0, 0, 0);
    }
    let padded = if pad_lo + pad_hi_total > 0 { n_c_other * (input + pad_lo + pad_hi_total) * s } else { 0 };
    let copies = stride > 1;
    let idx = if copies { k * output * 4 } else { 0 };
    // Chain acc ← max(acc, slice_j): acc, one slice and the new acc are live at once.
    let live = if copies { 3 * out } else { 2 * out };
    let retained = padded + idx + if copies { k * out } else { 0 } + (k - 1) * out;
    (out, padded + live, retained)
}

fn pool(win: &PoolWindow, x: &[u64], o: &[u64], s: u64) -> CandleLayer {
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
    CandleLayer { output: out, peak: pw.max(rw + ph).max(out), retained: tw + th }
}

/// Bytes candle 0.11.1 allocates and frees inside every CPU matmul call beyond the output
/// (bookkeeping around its gemm call), measured with the counting allocator on the 2-core dev
/// machine: 9,143 B for every shape tried, 1×64·64×1,000 to 64×4,096·4,096×1,000. It is what
/// made the FC layers at batch 1 (tens of KiB) peak a few KiB above the model. With one thread
/// (`RAYON_NUM_THREADS=1`) it varies with the shapes: about 6 KB for AlexNet's fc3 and a
/// 1×1 conv, 11 KB for fc1.
pub const MATMUL_TRANSIENT_BYTES: u64 = 9_143;

/// Bytes of the constants a network builds with its weights: the L_q×L_k additive mask of
/// each causal `multi_head_attention` (src/kinds/multi_head_attention.rs builds it once).
pub fn constants(a: &Analysis) -> u64 {
    let s = a.spec.dtype.size();
    a.layers
        .iter()
        .filter_map(|l| match &a.layer_spec(l).kind {
            Kind::MultiHeadAttention(m) if m.causal => {
                let q = &l.input_shapes[0].0;
                let k = l.input_shapes.get(1).map_or(q, |k| &k.0);
                Some(q[1] * k[1] * s)
            }
            _ => None,
        })
        .sum()
}

/// Multi-head attention as built in src/kinds/multi_head_attention.rs (O_q = N·L_q·D·s,
/// O_k = N·L_k·D·s, S = N·H·L_q·L_k·s):
/// - training keeps, per projection, the matmul result, the bias sum and the head-split
///   contiguous copy (`Q`: O_q each; `K`, `V`: O_k each); scores, the scaled scores, the masked
///   scores (causal), and softmax's `x − max`, `exp` and quotient (S each) plus its two
///   per-row reductions; `P·V` and its merged-heads copy (O_q each); the output projection's
///   matmul and bias sum.
/// - inference peaks either while `V` is projected (Q and K heads live, matmul + bias + copy)
///   or inside the softmax (Q, K, V heads, scores and softmax's three S-sized values) or in
///   the output projection (Q, K, V heads, scores, probabilities, context, matmul, bias sum).
fn attention(
    m: &crate::kinds::multi_head_attention::MultiHeadAttention,
    xs: &[Vec<u64>],
    o: &[u64],
    s: u64,
) -> CandleLayer {
    let q = &xs[0];
    let k = xs.get(1).unwrap_or(q);
    let (n, lq, d, lk) = (q[0], q[1], o[2], k[1]);
    let (oq, ok) = (n * lq * d * s, n * lk * d * s);
    let sc = n * m.heads * lq * lk * s;
    let small = n * m.heads * lq * s;
    // With one head the split `N×L×1×D → N×1×L×D` is already contiguous (candle ignores
    // size-1 dims), so there is no head-split copy and no merged-heads copy.
    let copy = u64::from(m.heads > 1);
    let per = 1 + u64::from(m.bias) + copy;
    let retained = per * oq
        + 2 * per * ok
        + (5 + u64::from(m.causal)) * sc
        + 2 * small
        + (1 + copy) * oq
        + if m.bias { 2 * oq } else { oq };
    let heads = oq + 2 * ok;
    let proj_v = oq + ok + per * ok + MATMUL_TRANSIENT_BYTES;
    let softmax = heads + 4 * sc + 2 * small;
    let out_proj = heads + 2 * sc + (1 + copy) * oq + if m.bias { 2 * oq } else { oq };
    CandleLayer { output: oq, peak: proj_v.max(softmax).max(out_proj), retained }
}

/// The candle model of layer `kind` with input shapes `xs` and output `o`, in dtype size `s`,
/// its inputs' state `inp`.
pub fn candle_layer(
    kind: &Kind,
    xs: &[Vec<u64>],
    o: &[u64],
    threads: u64,
    s: u64,
    train: bool,
    inp: Inputs,
) -> CandleLayer {
    let out = elems(o) * s;
    let x = &xs[0];
    let plain = CandleLayer { output: out, peak: out, retained: out };
    // A chain of `k` elementwise ops in one expression (Rust keeps every temporary until the
    // end of the statement): k outputs live at its end; all k kept for backward when tracked.
    let chain = |k: u64| CandleLayer { output: out, peak: k * out, retained: if inp.tracked { k * out } else { out } };
    // A non-contiguous input copied inside a matmul: a transient, not an autograd node.
    let copy_in = if inp.contiguous { 0 } else { elems(x) * s };
    #[allow(unreachable_patterns)]
    match kind {
        Kind::Conv2d(c) => conv(c, x, o, threads, s, inp),
        Kind::ConvTranspose2d(c) => conv_transpose(c, x, o, threads, s, inp),
        Kind::Conv1d(c) => conv1d(c, x, o, threads, s, inp),
        Kind::MaxPool2d(p) => pool(&p.window, x, o, s),
        Kind::AvgPool2d(p) => {
            let mut c = pool(&p.window, x, o, s);
            c.retained += out; // the division
            c.peak = c.peak.max(2 * out);
            c
        }
        Kind::Relu(_) | Kind::Tanh(_) | Kind::Sigmoid(_) => plain,
        // A view of a contiguous input, else a contiguous copy.
        Kind::Flatten(_) if !inp.contiguous => plain,
        Kind::Flatten(_) => CandleLayer::default(),
        Kind::Dropout(d) => {
            if train && d.p > 0.0 {
                CandleLayer { output: out, peak: 2 * out, retained: 2 * out }
            } else {
                CandleLayer::default()
            }
        }
        Kind::Linear(l) => {
            let bias = if l.bias { out } else { 0 };
            // The matmul (its output, a transient, a copy of a strided input), then the bias sum.
            CandleLayer { output: out, peak: out + (copy_in + MATMUL_TRANSIENT_BYTES).max(bias), retained: out + bias }
        }
        Kind::Matmul(_) => CandleLayer { output: out, peak: out + copy_in + MATMUL_TRANSIENT_BYTES, retained: out },
        Kind::MultiHeadAttention(m) => attention(m, xs, o, s),
        Kind::LayerNorm(l) => {
            // x − mean, (x − mean)², the quotient, then γ· and +β: each O; the two means and
            // `var + eps`, its square root: 6 per-row values.
            let norm: u64 = match &l.normalized_shape {
                Some(v) => v.iter().product(),
                None => x.last().copied().unwrap_or(1),
            };
            let small = out / norm.max(1);
            let (g, b) = (u64::from(l.elementwise_affine), u64::from(l.elementwise_affine && l.bias));
            let retained = if inp.tracked {
                (3 + g + b) * out + 6 * small
            } else if g == 1 {
                (2 + b) * out
            } else {
                out
            };
            CandleLayer { output: out, peak: (2 + g) * out + 2 * small, retained }
        }
        // relu, then minimum(6).
        Kind::Relu6(_) => chain(2),
        // x + 3, relu, minimum(6), /6, then x · that.
        Kind::Hardswish(_) => chain(5),
        Kind::Gelu(_) | Kind::Silu(_) | Kind::Embedding(_) | Kind::Concat(_) | Kind::ClassToken(_) => plain,
        Kind::PosEmbedding(_) => plain,
        // One broadcast op per extra input, each kept as the next one's input.
        Kind::Add(_) | Kind::Mul(_) => {
            let k = xs.len().max(2) as u64 - 1;
            CandleLayer { output: out, peak: if k > 1 { 2 * out } else { out }, retained: k * out }
        }
        // Views: no bytes of their own.
        Kind::Transpose(_) | Kind::Permute(_) | Kind::Select(_) => CandleLayer::default(),
        // A view of a contiguous input, else a contiguous copy.
        Kind::Reshape(_) if !inp.contiguous => plain,
        Kind::Reshape(_) => CandleLayer::default(),
        // The sum over H·W, then its scaling; the reshape is a view.
        Kind::GlobalAvgPool(_) => chain(2),
        Kind::Softmax(sm) => {
            // candle_nn::ops::softmax: max (small), x − max, exp, sum (small), exp / sum; its
            // locals live until it returns, so x − max, exp and the quotient are live together.
            let d = crate::kinds::norm_dim(sm.dim, &crate::shape::Shape(o.to_vec()), "dim").map_or(o.len() - 1, |d| d);
            let small = out / o.get(d).copied().unwrap_or(1).max(1);
            CandleLayer { output: out, peak: 3 * out + 2 * small, retained: 3 * out + 2 * small }
        }
        Kind::Lrn(l) => {
            let c = x[1];
            let plane = out / c.max(1);
            let pad_zeros = (l.size - 1) * plane;
            let padded = out + pad_zeros;
            // x², padded copy, n − 1 running sums, affine, powf, the division.
            CandleLayer {
                output: out,
                peak: out + pad_zeros + padded + 2 * out,
                retained: out + pad_zeros + padded + (l.size - 1) * out + 3 * out,
            }
        }
        Kind::BatchNorm2d(b) => {
            // src/kinds/batch_norm2d.rs. Batch statistics: x − mean, its square, the quotient
            // (3 values of O) and six per-channel values (the two sums, their scalings,
            // var + eps, its square root); running statistics: x − mean and the quotient, and
            // two per-channel values. Then γ· and +β. In inference the normalized value, γ·y
            // and the sum are live together at the end.
            let small = x[1] * s;
            let batch_stats = train || !b.track_running_stats;
            let norm = if batch_stats { 3 * out + 6 * small } else { 2 * out + 2 * small };
            let aff = if b.affine { 2 * out } else { 0 };
            let peak = if batch_stats { 3 * out + 6 * small } else { 2 * out + 2 * small };
            // On an untracked input (the network input) the normalisation records no op: only
            // the quotient (kept by γ·), γ·y (kept by +β) and the output stay.
            let retained = if inp.tracked {
                norm + aff
            } else if b.affine {
                3 * out
            } else {
                out
            };
            CandleLayer { output: out, peak: peak.max(out + aff), retained }
        }
        Kind::AdaptiveAvgPool2d(a) => {
            if [x[2], x[3]] == a.output_size {
                CandleLayer::default()
            } else if a.output_size == [1, 1] {
                plain
            } else {
                let mid = x[0] * x[1] * x[2] * a.output_size[1] * s;
                CandleLayer { output: out, peak: mid + out, retained: mid + out }
            }
        }
        _ => plain,
    }
}

/// For each layer (spec order), whether its output reaches the network output (the last
/// layer in execution order): the others' outputs die unread, their graph with them.
pub fn on_path(a: &Analysis) -> Vec<bool> {
    let mut on_path = vec![false; a.spec.layers.len()];
    let mut stack: Vec<usize> = a.layers.last().map(|l| l.index).into_iter().collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut on_path[i], true) {
            continue;
        }
        stack.extend(a.graph.inputs[i].iter().filter_map(|s| match *s {
            crate::graph::Source::Layer(j) => Some(j),
            crate::graph::Source::Input => None,
        }));
    }
    on_path
}

/// For each layer (spec order), whether its parameters reach the network output (the last
/// layer in execution order, the one measure's loss reads): the layers on a path to it, and
/// the owners of the weights they use through `shares:` or `tied_to`. The others' outputs die
/// unread, their graph with them, and their variables get no gradient.
pub fn feeds_output(a: &Analysis) -> Vec<bool> {
    let on_path = on_path(a);
    let mut live = on_path.clone();
    for l in a.layers.iter().filter(|l| on_path[l.index]) {
        if let Some(o) = l.shares {
            live[o] = true;
        }
        if let Kind::Linear(crate::kinds::linear::Linear { tied_to: Some(t), .. }) = &a.layer_spec(l).kind {
            // A tie may name a layer that is itself tied or shares: follow it to the owner.
            let mut name = t.as_str();
            for _ in 0..a.spec.layers.len() {
                let Some(j) = a.spec.layers.iter().position(|o| o.id.name == name) else { break };
                live[j] = true;
                let next = match &a.spec.layers[j].kind {
                    Kind::Linear(crate::kinds::linear::Linear { tied_to: Some(t2), .. }) => Some(t2.as_str()),
                    _ => a.spec.layers[j].shares.as_ref().map(|r| r.name.as_str()),
                };
                match next {
                    Some(n) => name = n,
                    None => break,
                }
            }
        }
    }
    live
}

/// Whether layer `l` reads a trainable parameter (a candle `Var`, so its ops are recorded):
/// its own with `trainable` set, or the owner's through `shares:` or `tied_to` when the owner
/// is trainable. A frozen layer (`trainable: false`) holds plain tensors.
pub fn uses_variable(a: &Analysis, l: &crate::analysis::LayerAnalysis) -> bool {
    let spec = a.layer_spec(l);
    let owner_trainable = |name: &str| a.spec.layers.iter().any(|o| o.id.name == name && o.trainable);
    (l.params > 0 && spec.trainable)
        || l.shares.is_some_and(|o| a.spec.layers[o].trainable)
        || matches!(&spec.kind, Kind::Linear(x) if x.tied_to.as_deref().is_some_and(owner_trainable))
}

/// The state of every layer's inputs (execution order): tracked when an input comes from a
/// tracked layer (a layer is tracked when an input is or it reads a trainable parameter,
/// [`uses_variable`]);
/// contiguous unless an input is a transpose, permute or select view (reshape and flatten of
/// such a view copy it, so their outputs are contiguous again).
pub fn input_states(a: &Analysis) -> Vec<Inputs> {
    let (pos_of, _) = last_readers(a);
    let mut tracked = vec![false; a.layers.len()];
    let mut contiguous = vec![true; a.layers.len()];
    let mut states = Vec::with_capacity(a.layers.len());
    for (pos, l) in a.layers.iter().enumerate() {
        let mut st = Inputs { tracked: false, contiguous: true };
        for src in &a.graph.inputs[l.index] {
            if let crate::graph::Source::Layer(j) = src {
                let p = pos_of[j];
                st.tracked |= tracked[p];
                st.contiguous &= contiguous[p];
            }
        }
        let kind = &a.layer_spec(l).kind;
        tracked[pos] = st.tracked || uses_variable(a, l);
        contiguous[pos] = !matches!(kind, Kind::Transpose(_) | Kind::Permute(_) | Kind::Select(_));
        states.push(st);
    }
    states
}

/// Per-layer predictions of an inference forward, in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inference {
    /// Neutral: live values before the layer + its output.
    pub peak: Vec<u64>,
    /// Neutral: live values after the layer and its frees.
    pub held: Vec<u64>,
    /// Candle: live owned bytes before the layer + the layer's own peak.
    pub candle_peak: Vec<u64>,
    /// Candle: live owned bytes after.
    pub candle_held: Vec<u64>,
}

/// Execution positions: of each spec layer (by spec index), and of each layer's last reader
/// (`None` when nothing reads its output) — the schedule the runner frees by.
fn last_readers(a: &Analysis) -> (std::collections::HashMap<usize, usize>, Vec<Option<usize>>) {
    let pos_of: std::collections::HashMap<usize, usize> =
        a.layers.iter().enumerate().map(|(p, l)| (l.index, p)).collect();
    let mut last = vec![None::<usize>; a.layers.len()];
    for (pos, l) in a.layers.iter().enumerate() {
        for src in &a.graph.inputs[l.index] {
            if let crate::graph::Source::Layer(j) = src {
                last[pos_of[j]] = Some(pos);
            }
        }
    }
    (pos_of, last)
}

/// Walk the liveness schedule of `a` (the one the runner frees by) and predict every layer's
/// inference peak and held bytes. The network input is outside (the caller keeps it).
pub fn inference(a: &Analysis, threads: u64) -> Inference {
    let s = a.spec.dtype.size();
    let (pos_of, last) = last_readers(a);
    let n = a.layers.len();
    let mut live_neutral = vec![0u64; n];
    let mut live_candle = vec![0u64; n];
    let mut r = Inference::default();
    let states = input_states(a);
    for (pos, l) in a.layers.iter().enumerate() {
        let xs: Vec<Vec<u64>> = l.input_shapes.iter().map(|s| s.0.clone()).collect();
        let c = candle_layer(&a.layer_spec(l).kind, &xs, &l.output.0, threads, s, false, states[pos]);
        let before_n: u64 = live_neutral.iter().sum();
        let before_c: u64 = live_candle.iter().sum();
        r.peak.push(before_n + l.activation_bytes);
        r.candle_peak.push(before_c + c.peak);
        live_neutral[pos] = l.activation_bytes;
        live_candle[pos] = c.output;
        // A view takes over its input's storage when that input dies here.
        let mut frees = Vec::new();
        for src in &a.graph.inputs[l.index] {
            if let crate::graph::Source::Layer(j) = src {
                let p = pos_of[j];
                if last[p] == Some(pos) {
                    frees.push(p);
                }
            }
        }
        if c.output == 0 {
            for &p in &frees {
                live_candle[pos] += live_candle[p];
                live_candle[p] = 0;
            }
        }
        for p in frees {
            live_neutral[p] = 0;
            live_candle[p] = 0;
        }
        if last[pos].is_none() && pos + 1 != n {
            live_neutral[pos] = 0;
            live_candle[pos] = 0;
        }
        r.held.push(live_neutral.iter().sum());
        r.candle_held.push(live_candle.iter().sum());
    }
    r
}

/// Candle-model bytes retained by a training forward, per layer (execution order): the live
/// growth across the layer. A parameter-free layer whose inputs are untracked (nothing before
/// it touched a weight) records no op, so it keeps only its output, and the untracked values
/// it was the last to read are freed.
///
/// Returns the per-layer growth (0 where a layer frees more than it makes, as the measured
/// growth reads) and the net total over the pass (where those frees count).
pub fn retained(a: &Analysis, threads: u64) -> (Vec<u64>, u64) {
    let s = a.spec.dtype.size();
    let (pos_of, last) = last_readers(a);
    let states = input_states(a);
    let mut own = vec![0u64; a.layers.len()];
    let mut out = Vec::with_capacity(a.layers.len());
    let mut net: i128 = 0;
    let live = on_path(a);
    for (pos, l) in a.layers.iter().enumerate() {
        let xs: Vec<Vec<u64>> = l.input_shapes.iter().map(|s| s.0.clone()).collect();
        let kind = &a.layer_spec(l).kind;
        let c = candle_layer(kind, &xs, &l.output.0, threads, s, true, states[pos]);
        own[pos] = c.output;
        // Values this layer was the last to read, freed after it: untracked ones when no op it
        // records keeps them (`untracked`), and the graphs of dead layers (off every path to
        // the output) that nothing reads any more.
        let freed = |untracked: bool| {
            let mut freed = 0u64;
            let mut seen = Vec::new();
            for src in &a.graph.inputs[l.index] {
                if let crate::graph::Source::Layer(j) = src {
                    let p = pos_of[j];
                    if last[p] == Some(pos) && !seen.contains(&p) && (untracked || !live[*j]) {
                        seen.push(p);
                        freed += own[p];
                    }
                }
            }
            freed
        };
        let (made, mut freed) = if states[pos].tracked {
            (c.retained, freed(false))
        } else if uses_variable(a, l) {
            // Its first ops on the untracked input record nothing when they take no weight
            // (a norm's x − mean): then that input is freed once read.
            let keeps_input = !matches!(kind, Kind::BatchNorm2d(_) | Kind::LayerNorm(_));
            (c.retained, freed(!keeps_input))
        } else {
            (c.output, freed(true))
        };
        if !live[l.index] {
            // A dead layer's output keeps its graph (what it made) until its last reader has
            // run; unread, it dies at once.
            own[pos] = made;
            if last[pos].is_none() && pos + 1 != a.layers.len() {
                freed += made;
            }
        }
        out.push(made.saturating_sub(freed));
        net += i128::from(made) - i128::from(freed);
    }
    (out, u64::try_from(net.max(0)).unwrap_or(u64::MAX))
}

/// Candle-model bytes of the loss on an output of shape `o` (cross-entropy for N×K: labels,
/// max, x − max, exp, sum, log, log-softmax, gather, sum, scale; else mean of squares).
pub fn loss_bytes(o: &[u64], s: u64) -> u64 {
    if o.len() == 2 {
        let (n, k) = (o[0], o[1]);
        n * 4 + 3 * n * k * s + 4 * n * s + 2 * s
    } else {
        elems(o) * s + 2 * s
    }
}
