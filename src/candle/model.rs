//! The candle memory model's primitives: what a kind's candle memory rule (the `memory` of
//! [`super::build::Build`], beside its builder in each file of src/kinds) returns, the context
//! it is applied at, and the pieces several rules share (candle's conv2d workspace, zero-pads,
//! dilated kernels, pool axes, the matmul transient).
//!
//! Units: bytes. Shapes: with batch, NCHW. The walk over a network (liveness, the inference
//! peak, what a training forward retains) is [`crate::measure::predict`]'s.

use crate::shape::Shape;

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
    /// Bytes of constants the layer builds once with its weights (a causal attention's
    /// additive mask): live from the weights stage on.
    pub constants: u64,
    /// On an untracked input, the layer's first ops take no weight (a norm's `x − mean`) and
    /// record nothing: that input is freed once read, even though the layer holds a variable.
    pub frees_untracked_input: bool,
    /// The output is a strided view of the input (transpose, permute, select): a later op that
    /// needs contiguous data copies it.
    pub strided_output: bool,
}

/// Where a kind's candle memory rule is applied: the layer's shapes, the runtime, the pass and
/// the state of its inputs.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// Input shapes, with batch.
    pub inputs: &'a [Shape],
    /// Output shape, with batch.
    pub output: &'a Shape,
    /// Threads candle's CPU kernels use (conv2d runs images and tiles on them).
    pub threads: u64,
    /// Bytes per activation element.
    pub s: u64,
    /// A training forward (dropout draws masks, batch norm uses batch statistics).
    pub train: bool,
    /// The state of the inputs.
    pub state: Inputs,
}

impl At<'_> {
    /// Input 0's dimensions.
    pub fn x(&self) -> &[u64] {
        &self.inputs[0].0
    }
    /// The output's dimensions.
    pub fn o(&self) -> &[u64] {
        &self.output.0
    }
    /// Output bytes (O in the rules' docs).
    pub fn out(&self) -> u64 {
        elems(self.o()) * self.s
    }
    /// One op that makes the output and nothing else: O live, O kept.
    pub fn plain(&self) -> CandleLayer {
        let out = self.out();
        CandleLayer { output: out, peak: out, retained: out, ..Default::default() }
    }
    /// A chain of `k` elementwise ops in one expression (Rust keeps every temporary until the
    /// end of the statement): k outputs live at its end; all k kept for backward when tracked.
    pub fn chain(&self, k: u64) -> CandleLayer {
        let out = self.out();
        CandleLayer {
            output: out,
            peak: k * out,
            retained: if self.state.tracked { k * out } else { out },
            ..Default::default()
        }
    }
    /// A view of the input: no bytes of its own.
    pub fn view(&self) -> CandleLayer {
        CandleLayer::default()
    }
    /// A non-contiguous input 0 copied inside a matmul: a transient, not an autograd node.
    pub fn copy_in(&self) -> u64 {
        if self.state.contiguous {
            0
        } else {
            elems(self.x()) * self.s
        }
    }
}

/// Elements of a shape.
pub fn elems(s: &[u64]) -> u64 {
    s.iter().product()
}

/// Bytes live during one layer's forward in inference, in allocation order: the running
/// total and its high-water mark (both beyond what was live before the layer).
#[derive(Debug, Default)]
pub struct Live {
    /// Bytes live now.
    pub now: u64,
    /// The most live so far.
    pub peak: u64,
}

impl Live {
    /// Allocate `bytes`.
    pub fn alloc(&mut self, bytes: u64) {
        self.now += bytes;
        self.peak = self.peak.max(self.now);
    }
    /// Free `bytes`.
    pub fn free(&mut self, bytes: u64) {
        self.now -= bytes;
    }
}

/// Candle's CPU conv2d workspace beyond its output (candle-core cpu_backend/conv2d.rs), for one
/// group: a 1×1 kernel at stride 1 without padding or dilation (`unit`) takes `conv2d_1x1`
/// (per image in flight, an input copy and a result); any other 1×1 kernel the full im2col
/// (`conv2d_im2col_gemm`: the N·H_o·W_o·C_in column matrix and the result before its
/// transposing copy); every other kernel the tiled im2col (an NHWC input copy, the flattened
/// kernel and, per tile in flight, a column buffer and a result). Each matmul adds its
/// transient ([`MATMUL_TRANSIENT_BYTES`]).
#[allow(clippy::too_many_arguments)]
pub fn conv_workspace(
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
pub fn pad_step(live: &mut Live, kept: &mut u64, dims: &mut [u64; 4], axis: usize, lo: u64, hi: u64, s: u64) -> u64 {
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

/// A kernel dilated per axis with zeros between its taps (`ops::dilate`: a `cat` of the taps
/// and a zeros tensor, so the zeros and the result each axis; the H result is a temporary of
/// the statement that dilates W). `plane` = C_out·C_in/g·s bytes per kernel element. Returns
/// the dilated kernel size.
pub fn dilate_kernel(live: &mut Live, kept: &mut u64, plane: u64, [kh, kw]: [u64; 2], [dh, dw]: [u64; 2]) -> [u64; 2] {
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

/// One separable pool axis: (bytes after it, peak during it beyond its input, retained bytes).
#[allow(clippy::too_many_arguments)]
pub fn pool_axis(
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

/// Bytes candle 0.11.1 allocates and frees inside every CPU matmul call beyond the output
/// (bookkeeping around its gemm call), measured with the counting allocator on the 2-core dev
/// machine: 9,143 B for every shape tried, 1×64·64×1,000 to 64×4,096·4,096×1,000. It is what
/// made the FC layers at batch 1 (tens of KiB) peak a few KiB above the model. With one thread
/// (`RAYON_NUM_THREADS=1`) it varies with the shapes: about 6 KB for AlexNet's fc3 and a
/// 1×1 conv, 11 KB for fc1.
pub const MATMUL_TRANSIENT_BYTES: u64 = 9_143;
