//! `rnn`, and the recurrent core `lstm` and `gru` share (PyTorch `nn.RNN`, `nn.LSTM`, `nn.GRU`).
//!
//! Fields: `hidden_size` H, `num_layers` (1), `bidirectional` (false), `batch_first` (false,
//! as PyTorch: input `T×N×I`; true: `N×T×I`), `bias` (true); `rnn` also `nonlinearity`
//! (`tanh` or `relu`). The layer's output is PyTorch's `output` (the last layer's hidden state
//! at every step, `…×dirs·H`, dirs = 2 when bidirectional); the final states `h_n` (and `c_n`)
//! are not a separate output.
//!
//! With G gates (rnn 1, gru 3, lstm 4) and layer input width `I_l` (`I` for layer 0,
//! `dirs·H` after), per layer and direction:
//! - params `G·H·I_l + G·H·H`, plus PyTorch's two bias vectors `b_ih` and `b_hh`, `2·G·H`,
//!   when `bias` (LSTM(64, 64): 4·64·64 + 4·64·64 + 8·64 = 33,280);
//! - MACs per step `G·H·(I_l + H)` (the input and the recurrent matmuls; the gate
//!   nonlinearities and products are elementwise and not counted, as for every kind), × T
//!   steps × N. Same convention as `linear`: multiply-accumulates of matmuls only.
//!
//! Saved for backward, as PyTorch's native path keeps them (aten/src/ATen/native/RNN.cpp:
//! `FullLayer` projects every step's input at once, `linear_ih(inputs)`, then runs the cell per
//! step on the recurrent projection; autograd saves what each op's derivatives.yaml formula
//! reads): the input (read by the input projection), each later layer's input (the previous
//! layer's output), and per layer and direction K values of N·H per step plus C: rnn K = 1, C = 1
//! (h_t, kept by tanh/relu and the next step's matmul, and h₀); LSTM K = 7, C = 0 (the four gate
//! activations, c_t, tanh(c_t), h_t; h₀ and c₀ are kept, the last step's c_t and h_t are not:
//! nothing reads them again); GRU K = 7, C = 0. Measured with `saved_tensors_hooks` (torch 2.15,
//! CPU, oneDNN off) at T = 3 and 5, 1 and 2 layers, one and two directions, with and without
//! bias: the bytes equal `4·N·H·(K·T + C)` per layer and direction exactly.
//! With `batch_first` and N > 1 PyTorch runs on the input transposed to `T×N×I`: the input
//! projection keeps a contiguous copy of it instead of the input (the same bytes; the input is
//! freed when nothing else keeps it), and the output is a transposed view of its `T×N×dirs·H`
//! result, which a following `linear` copies and keeps instead (the same bytes again). Counted
//! here as the input and the output themselves: equal after the forward pass
//! (scripts/pytorch_memory.py, specs/lstm-lm.yaml at batch 8); the copy and the original
//! coexist only while the copy is made. At N = 1 both are views.
//! x86 CPU builds run oneDNN's fused RNN by default (MkldnnRnnLayerBackward0), which keeps a
//! workspace of its own instead of the per-step values; cuDNN keeps its reserve space. Neither
//! is modelled (docs/memory.md quotes the oneDNN figure).

use super::{BackwardNode, BwdTensor, Cost, KindError, Saved, SavedDType};
use crate::error::SpecError;
use crate::shape::{add, checked_product, mul, Shape};
use crate::spec::fields::Fields;

/// Which recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Elman RNN with tanh.
    Tanh,
    /// Elman RNN with relu.
    Relu,
    /// Long short-term memory (gates i, f, g, o).
    Lstm,
    /// Gated recurrent unit (gates r, z, n).
    Gru,
}

impl Cell {
    /// Gates G: the multiple of H of each weight's rows.
    pub fn gates(self) -> u64 {
        match self {
            Cell::Tanh | Cell::Relu => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }
    /// Values of N·H saved per step K, and per layer and direction besides C (module doc: the
    /// initial states kept, the last step's states not).
    fn saved_per_step(self) -> (u64, u64) {
        match self {
            Cell::Tanh | Cell::Relu => (1, 1),
            Cell::Gru => (7, 0),
            Cell::Lstm => (7, 0),
        }
    }
}

/// A (stacked, optionally bidirectional) recurrent layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent {
    /// The cell.
    pub cell: Cell,
    /// Hidden size H.
    pub hidden_size: u64,
    /// Stacked layers (default 1).
    pub num_layers: u64,
    /// Both directions (default false).
    pub bidirectional: bool,
    /// Input `N×T×I` (true) or `T×N×I` (false, PyTorch's default).
    pub batch_first: bool,
    /// `b_ih` and `b_hh` (default true).
    pub bias: bool,
    /// Expected input width I (PyTorch's `input_size`), checked against the input when given.
    pub input_size: Option<u64>,
}

/// The most stacked layers (`num_layers`) one recurrent layer takes (the deepest published
/// stacks are a few dozen): 10⁷ took gigabytes and a minute.
pub const MAX_LAYERS: u64 = 1024;

/// The fields every recurrent kind accepts.
pub const FIELDS: &[&str] = &["hidden_size", "num_layers", "bidirectional", "batch_first", "bias", "input_size"];

impl Recurrent {
    /// Read the common fields for `cell`.
    pub fn parse(f: &Fields, cell: Cell) -> Result<Self, SpecError> {
        Ok(Recurrent {
            input_size: f.pos("input_size")?,
            cell,
            hidden_size: f.req_pos("hidden_size")?,
            num_layers: f
                .pos_at_most("num_layers", MAX_LAYERS, "each stacked layer has its own weights and saved tensors")?
                .unwrap_or(1),
            bidirectional: f.bool("bidirectional")?.unwrap_or(false),
            batch_first: f.bool("batch_first")?.unwrap_or(false),
            bias: f.bool("bias")?.unwrap_or(true),
        })
    }

    /// Directions: 1 or 2.
    pub fn dirs(&self) -> u64 {
        1 + u64::from(self.bidirectional)
    }

    /// (N, T, I) of an input in this layer's layout.
    fn ntc(&self, x: &Shape) -> (u64, u64, u64) {
        if self.batch_first {
            (x.0[0], x.0[1], x.0[2])
        } else {
            (x.0[1], x.0[0], x.0[2])
        }
    }

    /// Input width of layer `l`.
    fn width(&self, l: u64, i: u64) -> u64 {
        if l == 0 {
            i
        } else {
            self.dirs() * self.hidden_size
        }
    }

    /// Parameter tensors in PyTorch's order: per layer, per direction, `weight_ih`, `weight_hh`,
    /// then `bias_ih`, `bias_hh` when `bias`.
    pub fn tensors(&self, i: u64) -> Result<Vec<u64>, KindError> {
        let (g, h) = (self.cell.gates(), self.hidden_size);
        let gh = mul(g, h, "weights")?;
        let mut t = Vec::new();
        for l in 0..self.num_layers {
            for _ in 0..self.dirs() {
                t.push(mul(gh, self.width(l, i), "weights")?);
                t.push(mul(gh, h, "weights")?);
                if self.bias {
                    t.extend([gh, gh]);
                }
            }
        }
        Ok(t)
    }

    /// Shape, params and MACs (module doc).
    pub fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let x = &inputs[0];
        let layout = if self.batch_first { "N×T×I (batch_first)" } else { "T×N×I" };
        super::expect_rank(x, 3, layout)?;
        let (n, t, i) = self.ntc(x);
        if let Some(want) = self.input_size {
            if want != i {
                return Err(KindError::field("input_size", format!("expected input_size {want}, got input {x}")));
            }
        }
        let (g, h) = (self.cell.gates(), self.hidden_size);
        let params = self.tensors(i)?.into_iter().try_fold(0u64, |a, p| add(a, p, "params"))?;
        let mut macs = 0u64;
        for l in 0..self.num_layers {
            let per_step = checked_product(&[g, h, add(self.width(l, i), h, "MACs")?])?;
            macs = add(macs, checked_product(&[self.dirs(), n, t, per_step])?, "MACs")?;
        }
        let mut out = x.0.clone();
        out[2] = mul(self.dirs(), h, "output width")?;
        Ok(Cost { output: Shape(out), params, buffers: 0, macs })
    }

    /// Saved tensors (module doc).
    pub fn saved(&self, inputs: &[Shape]) -> Result<Vec<Saved>, KindError> {
        let (n, t, _) = self.ntc(&inputs[0]);
        let h = self.hidden_size;
        let (k, k0) = self.cell.saved_per_step();
        let nh = mul(n, h, "saved elements")?;
        let per_dir = mul(nh, add(mul(k, t, "saved elements")?, k0, "saved elements")?, "saved elements")?;
        let states = mul(self.dirs(), per_dir, "saved elements")?;
        let between = checked_product(&[n, t, self.dirs(), h])?;
        // One entry per layer (both directions), then each inner layer's output: the backward
        // nodes free them layer by layer.
        let mut s = vec![Saved::Input(0)];
        for _ in 0..self.num_layers {
            s.push(Saved::New { elements: states, dtype: SavedDType::Activation, what: "gates and states of every step" });
        }
        for _ in 1..self.num_layers {
            s.push(Saved::New { elements: between, dtype: SavedDType::Activation, what: "inner layer's output" });
        }
        Ok(s)
    }

    /// An LSTM's backward (one direction; others are one node) as ATen's native path runs it
    /// (aten/src/ATen/native/RNN.cpp: `FullLayer` projects every step's input at once, then one
    /// cell per step with `addmm(b_hh, h, W_hhᵀ)`), layer by layer from the last, in three nodes
    /// each (G = N·4H, the gates' gradient of one step):
    /// - the last step's cell and `AddmmBackward0`: its gates' gradient (G) and the first
    ///   contributions to `W_hh`'s and `b_hh`'s gradients (they become `.grad`);
    /// - the second step's `W_hh` contribution, added out of place (`TBackward0`'s buffer can
    ///   not be stolen yet): the new gradient and the sum, two `W_hh`-sized transients (later
    ///   steps add in place; the per-step cell gradients, a few N·H each, are not counted);
    /// - `UnbindBackward0` (every step's gates' gradient stacked, T·G) and the input
    ///   projection's `AddmmBackward0`: `W_ih`'s and `b_ih`'s gradients and the layer input's
    ///   gradient (N·T·I_l); then the layer's saved gates and states, its input kept by the
    ///   projection (an inner layer's output) and its output's gradient are freed.
    ///
    /// So the layer's saved values are freed when it ends, not step by step. Measured:
    /// scripts/pytorch_memory.py's allocator trace of specs/lstm-lm.yaml (torch 2.15, CPU,
    /// oneDNN off): the batch-8 backward peak, 114,232,640 B, is the second step of the second
    /// layer run backward (layer 0): `W_hh` (4·512·512·4 = 4,194,304 B) three times.
    pub fn backward_nodes(&self, inputs: &[Shape]) -> Result<Option<Vec<BackwardNode>>, KindError> {
        if self.cell != Cell::Lstm || self.bidirectional {
            return Ok(None);
        }
        let (n, t, i) = self.ntc(&inputs[0]);
        let (h, layers) = (self.hidden_size, self.num_layers as usize);
        let gates = checked_product(&[n, 4, h])?;
        let w_hh = checked_product(&[4, h, h])?;
        let per_layer = if self.bias { 4 } else { 2 };
        let temp = |id, elements| BwdTensor::Temp { id, elements, dtype: SavedDType::Activation };
        let mut nodes = Vec::new();
        // The gradient of the current layer's output: the LSTM's output's, then each inner
        // layer's, made by the layer above's input projection.
        let mut out_grad = BwdTensor::OutputGrad;
        for l in (0..layers).rev() {
            let base = l * per_layer;
            let (w_ih, w_hh_t, b_ih, b_hh) = (base, base + 1, base + 2, base + 3);
            let id = (l as u64) * 8;
            let mut allocs = vec![temp(id, gates), BwdTensor::ParamGrad(w_hh_t)];
            if self.bias {
                allocs.push(BwdTensor::ParamGrad(b_hh));
            }
            nodes.push(BackwardNode { node: "AddmmBackward0 (last step, h·W_hhᵀ)", allocs, frees: vec![temp(id, gates)] });
            if t >= 2 {
                let (a, b) = (temp(id + 1, w_hh), temp(id + 2, w_hh));
                nodes.push(BackwardNode {
                    node: "TBackward0 (second step: W_hh's gradient added out of place)",
                    allocs: vec![a, b],
                    frees: vec![a, b],
                });
            }
            let stacked = temp(id + 3, checked_product(&[t, gates])?);
            let in_grad = if l == 0 {
                BwdTensor::InputGrad(0)
            } else {
                temp(id + 4, checked_product(&[n, t, self.width(l as u64, i)])?)
            };
            let mut allocs = vec![stacked, in_grad, BwdTensor::ParamGrad(w_ih)];
            if self.bias {
                allocs.push(BwdTensor::ParamGrad(b_ih));
            }
            let mut frees = vec![stacked, BwdTensor::Saved(1 + l), out_grad];
            if l > 0 {
                frees.push(BwdTensor::Saved(1 + layers + l - 1));
            }
            nodes.push(BackwardNode { node: "UnbindBackward0, AddmmBackward0 (input projection)", allocs, frees });
            out_grad = in_grad;
        }
        Ok(Some(nodes))
    }

    /// Candle builder (see `Build for Rnn`).
    pub fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        use candle_core::{Tensor, D};
        use candle_nn::Module;
        let x = cx.input(0);
        let i = x[2];
        let (h, g) = (self.hidden_size as usize, self.cell.gates() as usize);
        let bound = 1.0 / (h as f64).sqrt();
        let mut layers = Vec::new();
        for l in 0..self.num_layers {
            let mut dirs = Vec::new();
            for d in 0..self.dirs() {
                let sfx = if d == 1 { format!("l{l}_reverse") } else { format!("l{l}") };
                let w_in = self.width(l, i as u64) as usize;
                let wih = cx.param(&format!("weight_ih_{sfx}"), &[g * h, w_in], bound)?;
                let whh = cx.param(&format!("weight_hh_{sfx}"), &[g * h, h], bound)?;
                let (bih, bhh) = if self.bias {
                    (
                        Some(cx.param(&format!("bias_ih_{sfx}"), &[g * h], bound)?),
                        Some(cx.param(&format!("bias_hh_{sfx}"), &[g * h], bound)?),
                    )
                } else {
                    (None, None)
                };
                dirs.push((candle_nn::Linear::new(wih, bih), candle_nn::Linear::new(whh, bhh)));
            }
            layers.push(dirs);
        }
        let (cell, batch_first) = (self.cell, self.batch_first);
        Ok(Box::new(move |xs: &[Tensor], _| {
            let mut x = if batch_first { xs[0].clone() } else { xs[0].transpose(0, 1)?.contiguous()? };
            let (n, t) = (x.dim(0)?, x.dim(1)?);
            for dirs in &layers {
                let mut outs = Vec::new();
                for (d, (ih, hh)) in dirs.iter().enumerate() {
                    let xw = ih.forward(&x)?;
                    let mut hs: Vec<Tensor> = Vec::with_capacity(t);
                    let mut hcur = Tensor::zeros((n, h), x.dtype(), x.device())?;
                    let mut c = Tensor::zeros((n, h), x.dtype(), x.device())?;
                    let steps: Vec<usize> = if d == 0 { (0..t).collect() } else { (0..t).rev().collect() };
                    for s in steps {
                        let xt = xw.narrow(1, s, 1)?.squeeze(1)?;
                        let hg = hh.forward(&hcur)?;
                        let gate = |v: &Tensor, k: usize| v.narrow(1, k * h, h);
                        hcur = match cell {
                            Cell::Tanh => (xt + hg)?.tanh()?,
                            Cell::Relu => (xt + hg)?.relu()?,
                            Cell::Lstm => {
                                let z = (xt + hg)?;
                                let ig = candle_nn::ops::sigmoid(&gate(&z, 0)?)?;
                                let fg = candle_nn::ops::sigmoid(&gate(&z, 1)?)?;
                                let gg = gate(&z, 2)?.tanh()?;
                                let og = candle_nn::ops::sigmoid(&gate(&z, 3)?)?;
                                c = ((fg * &c)? + (ig * gg)?)?;
                                (og * c.tanh()?)?
                            }
                            Cell::Gru => {
                                let r = candle_nn::ops::sigmoid(&(gate(&xt, 0)? + gate(&hg, 0)?)?)?;
                                let z = candle_nn::ops::sigmoid(&(gate(&xt, 1)? + gate(&hg, 1)?)?)?;
                                let nn = (gate(&xt, 2)? + (r * gate(&hg, 2)?)?)?.tanh()?;
                                // h' = (1 − z)·n + z·h = n + z·(h − n) (PyTorch's GRU cell).
                                (&nn + (z * (&hcur - &nn)?)?)?
                            }
                        };
                        hs.push(hcur.clone());
                    }
                    if d == 1 {
                        hs.reverse();
                    }
                    outs.push(Tensor::stack(&hs, 1)?);
                }
                x = if outs.len() == 1 { outs.pop().expect("one direction") } else { Tensor::cat(&outs, D::Minus1)? };
            }
            if batch_first {
                Ok(x)
            } else {
                x.transpose(0, 1)?.contiguous()
            }
        }))
    }

    /// Candle memory of the builder above (B = N·H·s bytes, G gates): per layer and direction
    /// the input projection (matmul and bias, N·T·G·H each), two zero states, per step the
    /// recurrent projection (matmul and bias, G·B each) and the cell's ops (rnn: the sum and
    /// the activation, 2·B; LSTM: the sum 4·B, four activations, f·c, i·g, c, tanh c, h: 13·B;
    /// GRU: r, z sums and sigmoids, r·h_n, the sum, tanh, h − n, z·(h − n), h: 10·B), then the
    /// stacked output N·T·H; the directions' concatenation; the layout copies when not
    /// `batch_first`. Everything a training forward makes is kept.
    pub fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        let x = at.x();
        let (n, t, _) = self.ntc(&Shape(x.to_vec()));
        let (h, g, s) = (self.hidden_size, self.cell.gates(), at.s);
        let b = n * h * s;
        let bias = u64::from(self.bias);
        let cell = match self.cell {
            Cell::Tanh | Cell::Relu => 2,
            Cell::Lstm => 13,
            Cell::Gru => 10,
        };
        let per_step = (1 + bias) * g * b + cell * b;
        let per_dir = 2 * b + t * per_step + t * b;
        // Each direction projects the whole input itself.
        let layer = self.dirs() * ((1 + bias) * t * g * b + per_dir) + if self.bidirectional { 2 * t * b } else { 0 };
        let layout = if self.batch_first { 0 } else { (x.iter().product::<u64>() + at.out() / s) * s };
        let total = self.num_layers * layer + layout;
        // Inference frees as it goes. Per layer, beside its input (the time-major copy of the
        // network input for layer 0, or the previous layer's output) and the directions already
        // run: the input projection (matmul and bias sum while it is made, then T·G·B), every
        // step's h kept for the stack (T·B), and one step's values: the state(s), the
        // recurrent projection (G·B, + its bias sum while made) and the cell's values (at most
        // rnn 2·B, LSTM 4·B + 7·B, GRU 8·B at once); then the stack (T·B) beside the kept h;
        // with two directions their concatenation (2·T·B) beside both stacks.
        let (dirs, tb) = (self.dirs(), t * b);
        let step = match self.cell {
            Cell::Tanh | Cell::Relu => 1 + (1 + bias) * g + 2,
            Cell::Lstm => 2 + (1 + bias) * g + g + 7,
            Cell::Gru => 1 + (1 + bias) * g + 8,
        } * b;
        let mut peak = 0u64;
        let mut input = if self.batch_first { 0 } else { x.iter().product::<u64>() * s };
        for _ in 0..self.num_layers {
            for d in 0..dirs {
                let done = d * tb;
                let xw = g * tb;
                let running = (input + done + (1 + bias) * xw)
                    .max(input + done + xw + tb + step)
                    .max(input + done + xw + 2 * tb);
                peak = peak.max(running);
            }
            if self.bidirectional {
                peak = peak.max(input + 4 * tb);
            }
            input = dirs * tb;
        }
        if !self.batch_first {
            // The output back to T×N×(dirs·H) beside the last layer's result.
            peak = peak.max(2 * at.out());
        }
        crate::candle::model::CandleLayer { output: at.out(), peak, retained: total, ..Default::default() }
    }
}

/// Implement [`KindSpec`], [`Op`] and `Build` for a newtype over [`Recurrent`].
macro_rules! recurrent_kind {
    ($ty:ident, $name:literal, $fields:expr, $parse:expr) => {
        impl $crate::kinds::KindSpec for $ty {
            const NAME: &'static str = $name;
            const FIELDS: &'static [&'static str] = $fields;
            fn parse(f: &$crate::spec::fields::Fields) -> Result<Self, $crate::error::SpecError> {
                #[allow(clippy::redundant_closure_call)]
                ($parse)(f).map($ty)
            }
        }

        impl $crate::kinds::Op for $ty {
            fn analyze(&self, inputs: &[$crate::shape::Shape]) -> Result<$crate::kinds::Cost, $crate::kinds::KindError> {
                self.0.analyze(inputs)
            }
            fn saved(
                &self,
                inputs: &[$crate::shape::Shape],
                _output: &$crate::shape::Shape,
            ) -> Result<Vec<$crate::kinds::Saved>, $crate::kinds::KindError> {
                self.0.saved(inputs)
            }
            fn param_tensors(&self, inputs: &[$crate::shape::Shape]) -> Result<Vec<u64>, $crate::kinds::KindError> {
                self.0.tensors(inputs[0].last())
            }
            fn backward_nodes(
                &self,
                inputs: &[$crate::shape::Shape],
                _output: &$crate::shape::Shape,
            ) -> Result<Option<Vec<$crate::kinds::BackwardNode>>, $crate::kinds::KindError> {
                self.0.backward_nodes(inputs)
            }
            /// Peers: a module of no class they single out (torchinfo counts its weights once
            /// per output row; the others skip it).
            fn peer(&self, _output: &$crate::shape::Shape) -> $crate::kinds::Peer {
                $crate::kinds::Peer::OTHER
            }
            /// Split along the hidden features; every device needs the whole input (dense).
            fn split(&self, _devices: u64) -> $crate::kinds::Split {
                $crate::kinds::Split { axis: $crate::kinds::SplitAxis::Last, gathers: true }
            }
        }

        impl $crate::candle::build::Build for $ty {
            /// The cell unrolled over time from ops that backprop ([`super::rnn::Recurrent::build`]).
            fn build(
                &self,
                cx: &mut $crate::candle::build::Ctx,
            ) -> candle_core::Result<Box<dyn $crate::candle::build::Layer>> {
                self.0.build(cx)
            }
            fn memory(&self, at: &$crate::candle::model::At) -> $crate::candle::model::CandleLayer {
                self.0.memory(at)
            }
        }
    };
}
pub(crate) use recurrent_kind;

/// `kind: rnn`: Elman RNN, `h_t = act(x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rnn(pub Recurrent);

const RNN_FIELDS: &[&str] =
    &["hidden_size", "num_layers", "bidirectional", "batch_first", "bias", "input_size", "nonlinearity"];

recurrent_kind!(Rnn, "rnn", RNN_FIELDS, |f: &Fields| {
    let cell = match f.str("nonlinearity")? {
        None | Some("tanh") => Cell::Tanh,
        Some("relu") => Cell::Relu,
        Some(other) => {
            return Err(f.err(
                f.loc("nonlinearity"),
                format!("`nonlinearity`: expected tanh or relu, got {other:?}"),
            ))
        }
    };
    Recurrent::parse(f, cell)
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::test_util::{parse, run};

    #[test]
    fn elman_rnn() {
        // RNN(10, 20), T 5, N 3 (T×N×I): params 20·10 + 20·20 + 2·20 = 640;
        // MACs 3·5·20·(10 + 20) = 9,000.
        let c = run::<Rnn>("{hidden_size: 20}", &[5, 3, 10]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![5, 3, 20]), 640, 9_000));
        // Two layers, bidirectional: layer 0 2·(200 + 400 + 40) = 1,280, layer 1 input 40:
        // 2·(800 + 400 + 40) = 2,480 → 3,760.
        let c = run::<Rnn>("{hidden_size: 20, num_layers: 2, bidirectional: true}", &[5, 3, 10]).unwrap();
        assert_eq!((c.output, c.params), (Shape(vec![5, 3, 40]), 3_760));
        let e = run::<Rnn>("{hidden_size: 2, input_size: 9}", &[5, 3, 10]).unwrap_err();
        assert_eq!((e.field, e.message.as_str()), (Some("input_size"), "expected input_size 9, got input 5x3x10"));
        assert!(parse::<Rnn>("{hidden_size: 2, nonlinearity: sigmoid}").unwrap_err().to_string().contains("tanh or relu"));
    }

    #[test]
    fn saved_states() {
        // RNN(4, 3), batch_first, N 2, T 5: h_t per step and h₀, 2·3·(5 + 1) = 36.
        let k = parse::<Rnn>("{hidden_size: 3, batch_first: true}").unwrap();
        let x = Shape(vec![2, 5, 4]);
        assert_eq!(
            crate::kinds::Op::saved(&k, std::slice::from_ref(&x), &x).unwrap()[1],
            Saved::New { elements: 36, dtype: SavedDType::Activation, what: "gates and states of every step" }
        );
    }
}
