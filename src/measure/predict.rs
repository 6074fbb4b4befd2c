//! The candle memory model beside the measurement (the framework-neutral prediction is
//! netstat's memory model, [`crate::memory`]): what this runtime really allocates — the
//! tiled-im2col buffers of `conv2d` (cpu_backend/conv2d.rs: an NHWC copy of the input, the
//! flattened kernel, per tile in flight a column buffer `C_in·k_h·k_w·T` and a result
//! `C_out·T`), pre-bias tensors, strided-slice copies and pairwise maxima of the pools,
//! zero-pad copies, dropout masks, and views that cost nothing.
//!
//! Each kind's rule is its own (the `memory` of [`crate::candle::build::Build`], in its file
//! beside its builder); this module walks the network with them.
//!
//! Units: bytes. Shapes: with batch, NCHW.

use crate::analysis::{Analysis, LayerAnalysis};
use crate::candle::model::{At, CandleLayer, Inputs};
use crate::kinds::Kind;

pub use crate::candle::model::MATMUL_TRANSIENT_BYTES;

/// The candle model of layer `l` (its kind's memory rule, beside its builder in src/kinds) for
/// a training or inference forward, its inputs in state `state`.
pub fn candle_layer(a: &Analysis, l: &LayerAnalysis, threads: u64, train: bool, state: Inputs) -> CandleLayer {
    let at = At { inputs: &l.input_shapes, output: &l.output, threads, s: a.spec.dtype.size(), train, state };
    a.layer_spec(l).kind.candle().memory(&at)
}

/// Bytes of the constants a network builds with its weights (each kind's memory rule says
/// which: the L_q×L_k additive mask of a causal `multi_head_attention`).
pub fn constants(a: &Analysis) -> u64 {
    let states = input_states(a);
    a.layers.iter().zip(states).map(|(l, st)| candle_layer(a, l, 1, false, st).constants).sum()
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
    l.trainable_params > 0
        || l.shares.is_some_and(|o| a.spec.layers[o].trainable)
        || matches!(&spec.kind, Kind::Linear(x) if x.tied_to.as_deref().is_some_and(owner_trainable))
}

/// The state of every layer's inputs (execution order): tracked when an input comes from a
/// tracked layer (a layer is tracked when an input is or it reads a trainable parameter,
/// [`uses_variable`]);
/// contiguous unless an input is a strided view (its kind's memory rule says so: transpose,
/// permute, select; reshape and flatten of such a view copy it, so their outputs are
/// contiguous again).
pub fn input_states(a: &Analysis) -> Vec<Inputs> {
    let (pos_of, _) = last_readers(a);
    let mut tracked = vec![false; a.layers.len()];
    let mut contiguous = vec![true; a.layers.len()];
    let mut states = Vec::with_capacity(a.layers.len());
    for (pos, l) in a.layers.iter().enumerate() {
        let mut st = Inputs { tracked: false, contiguous: true };
        for src in &a.graph.inputs[l.index] {
            if let crate::graph::Source::Layer(j) = src {
                let p = pos_of[*j];
                st.tracked |= tracked[p];
                st.contiguous &= contiguous[p];
            }
        }
        tracked[pos] = st.tracked || uses_variable(a, l);
        contiguous[pos] = !candle_layer(a, l, 1, false, st).strided_output;
        states.push(st);
    }
    states
}

/// The candle model's per-layer predictions of an inference forward, in execution order
/// (bytes above the input and weights). The framework-neutral ones are netstat's memory model's
/// ([`crate::memory::inference_timeline`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inference {
    /// Live owned bytes before the layer + the layer's own peak.
    pub peak: Vec<u64>,
    /// Live owned bytes after the layer and its frees.
    pub held: Vec<u64>,
}

/// Execution positions: of each spec layer (by spec index), and of each layer's last reader
/// (`None` when nothing reads its output) — the schedule the runner frees by.
fn last_readers(a: &Analysis) -> (Vec<usize>, Vec<Option<usize>>) {
    let mut pos_of = vec![usize::MAX; a.spec.layers.len()];
    for (p, l) in a.layers.iter().enumerate() {
        pos_of[l.index] = p;
    }
    let mut last = vec![None::<usize>; a.layers.len()];
    for (pos, l) in a.layers.iter().enumerate() {
        for src in &a.graph.inputs[l.index] {
            if let crate::graph::Source::Layer(j) = src {
                last[pos_of[*j]] = Some(pos);
            }
        }
    }
    (pos_of, last)
}

/// Walk the liveness schedule of `a` (the one the runner frees by) with each kind's candle
/// memory rule and predict every layer's inference peak and held bytes. The network input is
/// outside (the caller keeps it). A running total keeps the walk linear in layers.
pub fn inference(a: &Analysis, threads: u64) -> Inference {
    let (pos_of, last) = last_readers(a);
    let n = a.layers.len();
    let mut live = vec![0u64; n];
    let mut total = 0u64;
    let mut r = Inference { peak: Vec::with_capacity(n), held: Vec::with_capacity(n) };
    let states = input_states(a);
    for (pos, l) in a.layers.iter().enumerate() {
        let c = candle_layer(a, l, threads, false, states[pos]);
        r.peak.push(total.saturating_add(c.peak));
        live[pos] = c.output;
        total = total.saturating_add(c.output);
        // A view takes over its input's storage when that input dies here.
        let mut frees = Vec::new();
        for src in &a.graph.inputs[l.index] {
            if let crate::graph::Source::Layer(j) = src {
                let p = pos_of[*j];
                if last[p] == Some(pos) {
                    frees.push(p);
                }
            }
        }
        if c.output == 0 {
            for &p in &frees {
                live[pos] += std::mem::take(&mut live[p]);
            }
        }
        for p in frees {
            total -= std::mem::take(&mut live[p]);
        }
        if last[pos].is_none() && pos + 1 != n {
            total -= std::mem::take(&mut live[pos]);
        }
        r.held.push(total);
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
    let (pos_of, last) = last_readers(a);
    let states = input_states(a);
    let mut own = vec![0u64; a.layers.len()];
    let mut out = Vec::with_capacity(a.layers.len());
    let mut net: i128 = 0;
    let live = on_path(a);
    for (pos, l) in a.layers.iter().enumerate() {
        let c = candle_layer(a, l, threads, true, states[pos]);
        own[pos] = c.output;
        // Values this layer was the last to read, freed after it: untracked ones when no op it
        // records keeps them (`untracked`), and the graphs of dead layers (off every path to
        // the output) that nothing reads any more.
        let freed = |untracked: bool| {
            let mut freed = 0u64;
            let mut seen = Vec::new();
            for src in &a.graph.inputs[l.index] {
                if let crate::graph::Source::Layer(j) = src {
                    let p = pos_of[*j];
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
            (c.retained, freed(c.frees_untracked_input))
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
        o.iter().product::<u64>() * s + 2 * s
    }
}
