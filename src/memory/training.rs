//! The training walk: live bytes through one step — data, weights, forward, loss, backward,
//! optimizer — over a [`Schedule`] in [`Mode::Training`](super::schedule::Mode::Training).
//! The stages are listed in the module doc of [`super`] and in docs/memory.md.

use super::schedule::{Release, Schedule, Storage};
use super::{grads_of, Data, Live, Phase, Sizes, Stage, Weights};
use crate::analysis::Analysis;
use crate::error::SpecError;
use crate::graph::Source;
use crate::kinds::{BackwardNode, BwdTensor};
use crate::shape::add;
use crate::spec::loss::LossKind;

/// What the training walk finds, bytes.
pub(crate) struct Training {
    pub saved_activation_bytes: u64,
    pub after_forward_bytes: u64,
    pub after_backward_bytes: u64,
    pub after_step_bytes: u64,
    pub backward_peak_bytes: u64,
    pub backward_peak_layer: String,
    pub peak_bytes: u64,
    pub peak_stage: String,
    pub received_bytes: u64,
    pub timeline: Vec<Stage>,
    /// MACs of the layers whose backward runs (the convention: 2 × their forward MACs).
    pub backward_macs: u64,
    /// MACs of the checkpointed units' forwards, run again in backward.
    pub recompute_macs: u64,
}

/// The timeline being written, with the backward peak.
struct Timeline {
    stages: Vec<Stage>,
    backward_peak: (u64, String),
}

impl Timeline {
    fn push(&mut self, phase: Phase, name: &str, live: u64, peak: u64) {
        if matches!(phase, Phase::Backward | Phase::Recompute) && peak > self.backward_peak.0 {
            self.backward_peak = (peak, name.to_owned());
        }
        self.stages.push(Stage { phase, name: name.to_owned(), live_bytes: live, peak_bytes: peak });
    }
}

/// Walk one training step.
///
/// Errors (at the spec's input, or its loss for the loss stages): a byte count overflows u64.
pub(crate) fn walk(a: &Analysis, s: &Schedule, z: &Sizes, d: &Data, w: &Weights) -> Result<Training, SpecError> {
    let spec = &a.spec;
    let at_input = |m: String| SpecError::new(&spec.file, spec.input.loc, m);
    let at_loss = |m: String| {
        let loc = spec.loss.as_ref().map(|l| l.loc).unwrap_or(spec.input.loc);
        SpecError::new(&spec.file, loc, m)
    };
    let n_layers = spec.layers.len();
    let mut tl = Timeline { stages: Vec::new(), backward_peak: (0, String::new()) };
    let mut live = Live { now: 0 };

    // 1–2. Data and weights.
    let data = add(d.input_bytes, d.label_bytes, "data bytes").map_err(at_input)?;
    live.alloc(data).map_err(at_input)?;
    tl.push(Phase::Data, if d.loss_input.is_some() { "input + labels" } else { "input" }, live.now, live.now);
    let weights = [w.param_bytes, w.buffer_bytes, w.master_weight_bytes]
        .into_iter()
        .try_fold(0u64, |x, b| add(x, b, "weights"))
        .map_err(at_input)?;
    live.alloc(weights).map_err(at_input)?;
    tl.push(Phase::Weights, "weights", live.now, live.now);

    // 3. Forward: output, saved tensors and received shares; then storages past their last use.
    let frees_fwd = s.frees_after_forward();
    let mut saved_new = vec![0u64; n_layers]; // bytes each layer frees after its backward
    let mut received_bytes = 0u64;
    for (p, &i) in s.order.iter().enumerate() {
        let name = &spec.layers[i].id.name;
        let at = |m: String| at_input(format!("layer \"{name}\": {m}"));
        if s.storage[i] == Storage::Layer(i) {
            live.alloc(z.output(a, i).map_err(at)?).map_err(at)?;
        }
        if s.needs_grad[i] {
            for t in &s.saved_new[i] {
                saved_new[i] = add(saved_new[i], z.saved(i, t).map_err(at)?, "saved bytes").map_err(at)?;
            }
            let r = z.split.received_bytes(a, i, z.act).map_err(at)?;
            received_bytes = add(received_bytes, r, "received bytes").map_err(at)?;
            saved_new[i] = add(saved_new[i], r, "saved bytes").map_err(at)?;
        }
        // A checkpointed unit saves nothing now: its replay in backward makes them again.
        if s.unit_of[i].is_none() {
            live.alloc(saved_new[i]).map_err(at)?;
        }
        // ZeRO-3: the layer's whole parameters, gathered for its forward and freed after it.
        let peak = add(live.now, gathered(a, s, z, i).map_err(at)?, "live bytes").map_err(at)?;
        for &k in &frees_fwd[p] {
            live.free(z.output(a, k).map_err(at)?);
        }
        tl.push(Phase::Forward, name, live.now, peak);
    }

    // 4. Loss forward.
    let scalar = z.act.size();
    let out = d.loss_input;
    let mut loss_temp = 0u64; // freed by the loss backward
    let mut mse_holds = None; // the logits storage mse keeps until its backward
    if let (Some(l), Some(out)) = (spec.loss.as_ref(), out) {
        let logits = z.output(a, out).map_err(at_loss)?;
        let (allocs, temp) = match l.kind {
            // log_softmax output (saved) + loss + total_weight (saved by nll_loss).
            LossKind::CrossEntropy => (
                add(logits, 2 * scalar, "loss bytes").map_err(at_loss)?,
                add(logits, scalar, "loss bytes").map_err(at_loss)?,
            ),
            LossKind::Mse => (scalar, 0),
        };
        live.alloc(allocs).map_err(at_loss)?;
        loss_temp = temp;
        let peak = live.now;
        if let Storage::Layer(k) = s.storage[out] {
            match s.release[k] {
                Release::ByLoss { until_loss_backward: false } => live.free(z.output(a, k).map_err(at_loss)?),
                Release::ByLoss { until_loss_backward: true } => mse_holds = Some(k),
                _ => {}
            }
        }
        tl.push(Phase::Loss, "loss", live.now, peak);
    }
    let after_forward_bytes = live.now;
    let saved_activation_bytes = after_forward_bytes - data - weights;

    // 5. Backward seed: held by the caller (or autograd, for the loss) until backward returns.
    let mut grad_live = vec![false; n_layers]; // gradient of layer i's output exists
    let mut param_grad = vec![false; n_layers]; // gradient of owner i's parameters exists
    let mut seed_held = 0u64; // the seed, freed when backward ends
    let mut seed_layer = None; // the output whose gradient is the caller's seed (no loss)
    if let Some(o) = s.sinks.last().copied().filter(|&o| s.needs_grad[o]) {
        let g = z.output(a, o).map_err(at_loss)?;
        match (spec.loss.as_ref(), out) {
            (Some(l), Some(_)) => {
                // grad of the loss (1 element, kept), of log-probabilities (cross-entropy), of the logits.
                let mid = if l.kind == LossKind::CrossEntropy { g } else { 0 };
                let seed = add(scalar, mid, "loss gradient bytes").and_then(|b| add(b, g, "loss gradient bytes"));
                live.alloc(seed.map_err(at_loss)?).map_err(at_loss)?;
                let peak = live.now;
                live.free(mid + loss_temp); // ≤ what was allocated, so no overflow
                seed_held = scalar;
                if let Some(k) = mse_holds {
                    live.free(z.output(a, k).map_err(at_loss)?);
                }
                tl.push(Phase::Backward, "loss", live.now, peak);
            }
            _ => {
                // `out.backward(torch.ones_like(out))`: the ones are the output's gradient.
                live.alloc(g).map_err(at_input)?;
                seed_layer = Some(o);
            }
        }
        grad_live[o] = true;
        for &k in &s.sinks {
            if k != o && s.needs_grad[k] {
                live.alloc(z.output(a, k).map_err(at_input)?).map_err(at_input)?;
                grad_live[k] = true;
            }
        }
    }

    // ZeRO-2/3: this device's gradient partition, allocated whole as backward starts.
    let sharded_grads = z.dp.shards_gradients();
    if sharded_grads {
        live.alloc(w.gradient_bytes).map_err(at_input)?;
    }

    // 6. Backward, layer by layer in reverse order; a checkpointed unit's forward runs again
    // before the backward of its last layer.
    let frees_bwd = s.frees_after_backward();
    let mut replay_frees_bwd = vec![Vec::new(); s.order.len()];
    for unit in &s.units {
        for &(k, q) in &unit.replay_held {
            replay_frees_bwd[q].push(k);
        }
    }
    let mut replayed = vec![false; s.units.len()];
    let (mut backward_macs, mut recompute_macs) = (0u64, 0u64);
    for (p, &i) in s.order.iter().enumerate().rev() {
        if !s.needs_grad[i] {
            continue;
        }
        let name = &spec.layers[i].id.name;
        let at = |m: String| at_input(format!("layer \"{name}\": {m}"));
        let macs = a.layers[p].macs;
        backward_macs = add(backward_macs, crate::shape::mul(macs, 2, "MACs").map_err(at)?, "MACs").map_err(at)?;
        if let Some(u) = s.unit_of[i].filter(|&u| !replayed[u]) {
            replayed[u] = true;
            let unit = &s.units[u];
            let mut peak = live.now;
            for (step, &q) in unit.positions.iter().enumerate() {
                let j = s.order[q];
                let at = |m: String| at_input(format!("layer \"{}\": {m}", spec.layers[j].id.name));
                recompute_macs = add(recompute_macs, a.layers[q].macs, "MACs").map_err(at)?;
                if s.storage[j] == Storage::Layer(j) {
                    live.alloc(z.output(a, j).map_err(at)?).map_err(at)?;
                }
                live.alloc(saved_new[j]).map_err(at)?;
                peak = peak.max(add(live.now, gathered(a, s, z, j).map_err(at)?, "live bytes").map_err(at)?);
                for &k in &unit.replay_frees[step] {
                    live.free(z.output(a, k).map_err(at)?);
                }
            }
            tl.push(Phase::Recompute, &unit.name, live.now, peak);
        }
        let plain = nodes_apply(a, s, z, i);
        let peak = if let Some(nodes) = s.backward_nodes[i].as_ref().filter(|_| plain) {
            // The kind's autograd nodes, one at a time.
            let mut g = Grads { live: &mut grad_live, param: &mut param_grad, seed_layer, seed_held: &mut seed_held };
            walk_nodes(a, s, z, i, nodes, &mut live, &mut g, &mut saved_new[i]).map_err(at)?
        } else {
            let mut transient = 0u64;
            let mut seen = Vec::new();
            // An identity passes its output's gradient on as its input's (no node, no copy).
            let pass_through = s.identity[i] && grad_live[i] && seed_layer != Some(i);
            for &src in &a.graph.inputs[i] {
                let Source::Layer(j) = src else { continue };
                if !s.needs_grad[j] || seen.contains(&j) {
                    continue;
                }
                seen.push(j);
                let b = z.output(a, j).map_err(at)?;
                if grad_live[j] {
                    transient = add(transient, b, "gradient bytes").map_err(at)?;
                } else if pass_through {
                    grad_live[i] = false;
                    grad_live[j] = true;
                } else {
                    live.alloc(b).map_err(at)?;
                    grad_live[j] = true;
                }
            }
            // ZeRO-3: the layer's parameters, gathered again for its backward.
            transient = add(transient, gathered(a, s, z, i).map_err(at)?, "live bytes").map_err(at)?;
            for (o, elems) in grads_of(a, &s.position, i) {
                let share = z.param_share(o, elems).map_err(at)?;
                if sharded_grads {
                    // ZeRO-2/3: the whole gradient, reduce-scattered into the partition and freed.
                    let b = super::bytes_of(share, z.act).map_err(at)?;
                    transient = add(transient, b, "gradient bytes").map_err(at)?;
                } else if param_grad[o] {
                    // A second gradient for the same parameters: computed, then added in place.
                    let b = super::bytes_of(share, z.act).map_err(at)?;
                    transient = add(transient, b, "gradient bytes").map_err(at)?;
                } else {
                    // The first one becomes the owner's `.grad` (all of its trainable parameters: a LoRA layer's adapters).
                    let all = z.param_share(o, a.layers[s.position[o]].trainable_params).map_err(at)?;
                    live.alloc(super::bytes_of(all, z.act).map_err(at)?).map_err(at)?;
                    param_grad[o] = true;
                }
            }
            add(live.now, transient, "live bytes").map_err(at)?
        };
        // Free: this output's gradient (unless it is the caller's seed), this layer's saved
        // tensors, the storages it was the last to hold.
        if grad_live[i] {
            grad_live[i] = false;
            if seed_layer == Some(i) {
                seed_held = z.output(a, i).map_err(at)?;
            } else {
                live.free(z.output(a, i).map_err(at)?);
            }
        }
        live.free(saved_new[i]);
        for &k in frees_bwd[p].iter().chain(&replay_frees_bwd[p]) {
            live.free(z.output(a, k).map_err(at)?);
        }
        tl.push(Phase::Backward, name, live.now, peak);
    }
    // The seed goes when backward returns: after the last backward stage.
    live.free(seed_held);
    if let Some(last) = tl.stages.last_mut().filter(|st| st.phase == Phase::Backward) {
        last.live_bytes = live.now;
    }
    let after_backward_bytes = live.now;

    // 7. Optimizer step: the state appears; a non-fused Adam's temporaries come and go.
    live.alloc(w.optimizer_state_bytes).map_err(at_input)?;
    let peak = add(live.now, w.step_temp_bytes, "live bytes").map_err(at_input)?;
    tl.push(Phase::Optimizer, "step", live.now, peak);
    let (mut peak_bytes, mut peak_stage) = (0u64, String::new());
    for st in &tl.stages {
        if st.peak_bytes > peak_bytes {
            peak_bytes = st.peak_bytes;
            peak_stage = format!("{} {}", st.phase.name(), st.name);
        }
    }
    Ok(Training {
        saved_activation_bytes,
        after_forward_bytes,
        after_backward_bytes,
        after_step_bytes: live.now,
        backward_peak_bytes: tl.backward_peak.0,
        backward_peak_layer: tl.backward_peak.1,
        peak_bytes,
        peak_stage,
        received_bytes,
        timeline: tl.stages,
        backward_macs,
        recompute_macs,
    })
}

/// Bytes of the parameters layer `i` all-gathers for its forward or backward under ZeRO-3
/// ([`super::parallel`]): every parameter it computes with, whole, in the weight dtype; 0
/// unless parameters are sharded.
fn gathered(a: &Analysis, s: &Schedule, z: &Sizes, i: usize) -> Result<u64, String> {
    if !z.dp.shards_params() {
        return Ok(0);
    }
    let mut e = 0u64;
    for (o, elems) in super::params_used(a, &s.position, i) {
        e = add(e, z.param_share(o, elems)?, "gathered elements")?;
    }
    super::bytes_of(e, z.weight)
}

/// The gradients the backward walk tracks, by layer: whether each output's gradient and each
/// owner's parameter gradient exist, and the caller's seed.
struct Grads<'a> {
    live: &'a mut [bool],
    param: &'a mut [bool],
    seed_layer: Option<usize>,
    seed_held: &'a mut u64,
}

/// Whether layer `i`'s backward is walked node by node: it has nodes, runs on one device
/// (no `--devices` split, no tensor parallelism, no ZeRO-2/3 gradient or ZeRO-3 parameter
/// sharding: their transients are per layer), and its parameters are its own and all train
/// or all are frozen (no `shares:`, `tied_to` or LoRA adapters). Otherwise the layer is one
/// node (docs/memory.md).
fn nodes_apply(a: &Analysis, s: &Schedule, z: &Sizes, i: usize) -> bool {
    let l = &a.layers[s.position[i]];
    s.backward_nodes[i].is_some()
        && z.split.devices == 1
        && z.tp.devices == 1
        && !z.dp.shards_gradients()
        && !z.dp.shards_params()
        && l.shares.is_none()
        && (l.trainable_params == 0 || l.trainable_params == l.params)
        && grads_of(a, &s.position, i).all(|(o, _)| o == i)
}

/// Walk layer `i`'s backward node by node: each node allocates its tensors (a contribution to
/// an input gradient that exists already is a transient, added into it), the peak is taken,
/// then it frees what it lists (its saved tensors leave `saved_left`, the layer's remaining
/// saved bytes). Returns the layer's peak. The parameter gradients become `.grad` (the layer
/// owns its parameters: [`nodes_apply`]).
#[allow(clippy::too_many_arguments)]
fn walk_nodes(
    a: &Analysis,
    s: &Schedule,
    z: &Sizes,
    i: usize,
    nodes: &[BackwardNode],
    live: &mut Live,
    g: &mut Grads,
    saved_left: &mut u64,
) -> Result<u64, String> {
    let l = &a.layers[s.position[i]];
    let op = a.spec.layers[i].kind.op();
    let tensors = op.param_tensors(&l.input_shapes).map_err(|e| e.message)?;
    let trains = l.trainable_params > 0;
    let temp = |elements, dtype| z.saved(i, &super::schedule::NewSaved { elements, dtype, index: 0 });
    let mut peak = live.now;
    for n in nodes {
        let mut transient = 0u64;
        for t in &n.allocs {
            match *t {
                BwdTensor::Temp { elements, dtype, .. } => live.alloc(temp(elements, dtype)?)?,
                BwdTensor::ParamGrad(k) if trains => {
                    live.alloc(super::bytes_of(z.param_share(i, tensors[k])?, z.act)?)?;
                    g.param[i] = true;
                }
                BwdTensor::InputGrad(j) => {
                    let Source::Layer(src) = a.graph.inputs[i][j] else { continue };
                    if !s.needs_grad[src] {
                        continue;
                    }
                    let b = z.output(a, src)?;
                    if g.live[src] {
                        transient = add(transient, b, "gradient bytes")?;
                    } else {
                        live.alloc(b)?;
                        g.live[src] = true;
                    }
                }
                _ => {}
            }
        }
        peak = peak.max(add(live.now, transient, "live bytes")?);
        for t in &n.frees {
            match *t {
                BwdTensor::Temp { elements, dtype, .. } => live.free(temp(elements, dtype)?),
                BwdTensor::Saved(k) => {
                    if let Some(e) = s.saved_new[i].iter().find(|e| e.index == k) {
                        let b = z.saved(i, e)?;
                        live.free(b);
                        *saved_left -= b;
                    }
                }
                BwdTensor::OutputGrad if g.live[i] => {
                    g.live[i] = false;
                    if g.seed_layer == Some(i) {
                        *g.seed_held = z.output(a, i)?;
                    } else {
                        live.free(z.output(a, i)?);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(peak)
}
