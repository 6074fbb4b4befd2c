//! The measurement procedure: preflight, build, warm up, time and count bytes, per layer and
//! per stage; fills a [`MeasureReport`].

use super::build::Pass;
use super::device::{self, Meter, Target};
use super::net::{loss, Net, Probe};
use super::optim::{Optimizer, OptimizerKind};
use super::predict;
use crate::analysis::Analysis;
use crate::report::measured::{MeasureInfo, MeasureReport, MeasuredLayer, Stage, Timing};
use crate::report::Report;
use anyhow::Context as _;
use candle_core::{DType, Device, Tensor};
use std::time::Instant;

/// What `netstat measure` was asked to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Measure a training step (forward, loss, backward, optimizer) instead of inference.
    pub train: bool,
    /// Optimizer of the training step.
    pub optimizer: OptimizerKind,
    /// Untimed passes before timing.
    pub warmup: u32,
    /// Timed passes (≥ 1).
    pub iters: u32,
    /// Seed of weights, input, labels and dropout masks.
    pub seed: u64,
    /// Replace clock readings with fixed values derived from MACs (deterministic output for
    /// snapshot tests).
    pub fake_timings: bool,
    /// Run even when the predicted peak exceeds the memory available.
    pub force: bool,
    /// Show a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Learning rate of the optimizer.
    pub lr: f64,
    /// With `train`: also time each layer's backward alone (one more pass per layer).
    pub layer_backward: bool,
    /// Where to run: the CPU, or a CUDA device (builds with the `cuda` feature).
    pub device: Target,
}

/// Untimed warm-up passes by default (also enough for gemm's one-time buffers).
pub const DEFAULT_WARMUP: u32 = 3;
/// Timed passes by default.
pub const DEFAULT_ITERS: u32 = 10;

impl Default for Settings {
    /// The command line's defaults: inference on the CPU, SGD if training, 3 warm-up and 10
    /// timed passes, seed 0, lr 1e-3, per-layer backward timing on, no progress bar.
    fn default() -> Self {
        Settings {
            train: false,
            optimizer: OptimizerKind::Sgd,
            warmup: DEFAULT_WARMUP,
            iters: DEFAULT_ITERS,
            seed: 0,
            fake_timings: false,
            force: false,
            progress: false,
            lr: 1e-3,
            layer_backward: true,
            device: Target::Cpu,
        }
    }
}

/// A run that the preflight refuses: it would not fit in memory (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DoesNotFit(pub String);

/// A run measure cannot do as asked, refused before anything is built (exit code 2): an
/// element type candle's kernels here do not run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// MemAvailable from /proc/meminfo, in bytes (None where unreadable).
pub fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The CPU model from /proc/cpuinfo (`model name`), or the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Predicted bytes of a run, by stage, from the candle model (and the neutral one).
#[derive(Debug, Clone, Default)]
struct Plan {
    input: u64,
    weights: u64,
    /// Bytes of the trainable parameters (`trainable: false` layers excluded): the size of
    /// each optimizer state copy (candle's optimizers hold state for every variable).
    trainable: u64,
    /// Bytes of the gradients a backward leaves: the trainable parameters that reach the
    /// output ([`predict::feeds_output`]).
    grads: u64,
    /// Constants built with the weights (causal masks): candle model only.
    constants: u64,
    opt_state: u64,
    retained: Vec<u64>,
    /// Net bytes the training forward leaves live (frees on an untracked prefix counted).
    retained_total: u64,
    loss: u64,
    infer: predict::Inference,
}

impl Plan {
    fn new(a: &Analysis, s: &Settings, threads: u64) -> Plan {
        let ds = a.spec.dtype.size();
        let weights = a.totals.params * ds;
        let trainable = a.layers.iter().filter(|l| a.layer_spec(l).trainable).map(|l| l.params).sum::<u64>() * ds;
        let live = predict::feeds_output(a);
        let grads =
            a.layers.iter().filter(|l| live[l.index] && a.layer_spec(l).trainable).map(|l| l.params).sum::<u64>() * ds;
        let out = &a.layers.last().map(|l| l.output.0.clone()).unwrap_or_default();
        let (retained, retained_total) = predict::retained(a, threads);
        Plan {
            input: a.totals.input_bytes,
            weights,
            trainable,
            grads,
            constants: predict::constants(a),
            opt_state: if s.train { s.optimizer.state_copies() * trainable } else { 0 },
            retained,
            retained_total,
            loss: predict::loss_bytes(out, ds),
            infer: predict::inference(a, threads),
        }
    }
    fn retained_total(&self) -> u64 {
        self.retained_total
    }
    /// Candle-model peak of the whole run above the process baseline.
    fn peak(&self, train: bool) -> u64 {
        let base = self.input + self.weights + self.constants + self.opt_state;
        if train {
            // Backward: the graph, the gradients being accumulated (≈ 2 × their bytes: the
            // store and one zeros_like + add in flight) and the largest activation
            // gradient pair.
            base + self.retained_total()
                + self.loss
                + 2 * self.grads
                + 2 * self.infer.peak.iter().max().copied().unwrap_or(0)
        } else {
            base + self.infer.candle_peak.iter().max().copied().unwrap_or(0)
        }
    }
}

/// The memory model's options for the optimizer measure runs (no mixed precision).
fn memory_options(s: &Settings) -> crate::memory::Options {
    use crate::memory::Optimizer as O;
    let optimizer = match s.optimizer {
        OptimizerKind::Sgd => O::Sgd,
        OptimizerKind::Momentum => O::Momentum,
        OptimizerKind::Adam => O::Adam,
    };
    crate::memory::Options { optimizer, amp: None, ..Default::default() }
}

/// The framework-neutral prediction of a training step: netstat's memory model
/// ([`crate::memory::model`]: saved tensors, liveness, gradients, optimizer state), read at the
/// points where measure reads live bytes.
struct Neutral {
    /// After input, weights and optimizer state.
    weights: u64,
    /// After the forward pass.
    forward: u64,
    /// After the loss.
    loss: u64,
    /// After the backward pass.
    backward: u64,
    /// After the optimizer step.
    step: u64,
    /// Per layer (execution order): bytes its forward leaves live (saved tensors and an output
    /// still to be read, less what it was the last to read).
    retained: Vec<u64>,
}

impl Neutral {
    fn new(a: &Analysis, s: &Settings) -> anyhow::Result<Neutral> {
        use crate::memory::Phase;
        let m = crate::memory::model(a, &memory_options(s))?;
        // The model allocates optimizer state lazily at the first step (as PyTorch does);
        // candle's optimizers allocate it when built, before the first forward.
        let state = m.optimizer_state_bytes;
        let last = |p: Phase| m.timeline.iter().rev().find(|st| st.phase == p).map(|st| st.live_bytes);
        let weights = last(Phase::Weights).unwrap_or(0);
        let forward = last(Phase::Forward).unwrap_or(weights);
        let loss = last(Phase::Loss).unwrap_or(forward);
        let backward = last(Phase::Backward).unwrap_or(loss);
        let step = last(Phase::Optimizer).unwrap_or(backward + state);
        let mut prev = weights;
        let mut by_name = std::collections::HashMap::new();
        for st in m.timeline.iter().filter(|st| st.phase == Phase::Forward) {
            by_name.insert(st.name.as_str(), st.live_bytes.saturating_sub(prev));
            prev = st.live_bytes;
        }
        let retained = a
            .layers
            .iter()
            .map(|l| by_name.get(a.spec.layers[l.index].id.name.as_str()).copied().unwrap_or(0))
            .collect();
        Ok(Neutral {
            weights: weights + state,
            forward: forward + state,
            loss: loss + state,
            backward: backward + state,
            step,
            retained,
        })
    }
}

/// Times per layer and memory per layer, recorded by a probe.
struct Recorder<'m> {
    meter: &'m Meter,
    fake: bool,
    t0: Option<Instant>,
    times: Vec<Vec<f64>>,
    base: u64,
    before: Vec<u64>,
    peak: Vec<u64>,
    held: Vec<u64>,
    growth: Vec<u64>,
    record_time: bool,
}

impl<'m> Recorder<'m> {
    /// `passes`: how many timed passes will record times. Their vectors are allocated here,
    /// below the line the layers' bytes are measured from, so that they do not grow inside a
    /// layer's window.
    fn new(n: usize, passes: usize, fake: bool, meter: &'m Meter) -> Recorder<'m> {
        Recorder {
            meter,
            fake,
            t0: None,
            times: (0..n).map(|_| Vec::with_capacity(passes)).collect(),
            base: 0,
            before: vec![0; n],
            peak: vec![0; n],
            held: vec![0; n],
            growth: vec![0; n],
            record_time: false,
        }
    }
}

impl Probe for Recorder<'_> {
    fn before(&mut self, pos: usize) {
        // On CUDA, reading the pool synchronises: the clock starts on an idle device.
        self.before[pos] = self.meter.live();
        self.meter.reset_peak();
        if self.record_time && !self.fake {
            self.t0 = Some(Instant::now());
        }
    }
    fn after(&mut self, pos: usize) {
        let t = (self.record_time && !self.fake).then(|| {
            self.meter.sync();
            self.t0.take().expect("before() ran").elapsed().as_secs_f64() * 1e3
        });
        // Read the meter before recording the time: growing `times` allocates.
        let (peak, live) = (self.meter.peak(), self.meter.live());
        if let Some(t) = t {
            self.times[pos].push(t);
        }
        // The highest over the passes: with batch > 1 candle's conv2d runs images (or tiles)
        // on rayon's threads, and how many are in flight at once varies from pass to pass.
        self.peak[pos] = self.peak[pos].max(peak.saturating_sub(self.base));
        self.held[pos] = live.saturating_sub(self.base);
        self.growth[pos] = live.saturating_sub(self.before[pos]);
    }
}

/// Names of the layers whose parameters reach the network output ([`predict::feeds_output`]).
fn feeds_output(a: &Analysis) -> std::collections::HashSet<&str> {
    let live = predict::feeds_output(a);
    a.spec.layers.iter().zip(live).filter(|(_, on)| *on).map(|(l, _)| l.id.name.as_str()).collect()
}

/// The layer that made variable `LAYER.suffix`: the longest layer name in `names` followed by
/// a dot (names and suffixes may both hold dots: `fc.dead.weight` beside a layer `fc`,
/// `attn.q_proj.weight`).
fn layer_of<'n>(var: &str, names: &std::collections::HashSet<&'n str>) -> Option<&'n str> {
    var.match_indices('.').rev().find_map(|(i, _)| names.get(&var[..i]).copied())
}

/// Fixed fake time of a layer: 0.01 ms + 1 ms per GMAC (forward), for test snapshots.
fn fake_ms(macs: u64) -> f64 {
    0.01 + macs as f64 / 1e9
}

fn fake_timing(ms: f64) -> Timing {
    Timing { time_ms_median: ms, time_ms_min: ms * 0.9, time_ms_max: ms * 1.2 }
}

/// Run the measurement of `a` (already analysed) as `s` asks.
///
/// Errors: [`Unsupported`] for an element type other than f32 or f64; [`device::BadDevice`]
/// for a device that cannot be opened; [`DoesNotFit`] before anything is allocated; a kind
/// with no builder; a parameter count, output shape or missing gradient that disagrees with
/// the analysis (naming the layer).
pub fn measure(a: &Analysis, s: &Settings) -> anyhow::Result<MeasureReport> {
    let dtype = match a.spec.dtype {
        crate::shape::DType::F32 => DType::F32,
        crate::shape::DType::F64 => DType::F64,
        d => {
            return Err(Unsupported(format!(
                "{}: measure runs f32 or f64 on {}, the spec asks for {d}: try --dtype f32",
                a.spec.file,
                if s.device == Target::Cpu { "the CPU" } else { "a GPU" }
            ))
            .into())
        }
    };
    let vocab = super::net::token_vocab(a)?;
    let opened = device::open(s.device)?;
    let (device, meter, gpu): (Device, Meter, _) = (opened.device, opened.meter, opened.gpu);
    let threads = candle_core::utils::get_num_threads();
    let counted = meter.counted();
    let plan = Plan::new(a, s, threads as u64);
    let predicted_peak = plan.peak(s.train);
    // The budget: device memory free on a GPU, MemAvailable on the CPU.
    let (avail, avail_what) = match &gpu {
        Some(g) => (Some(g.memory_free_bytes), format!("free on {}", g.device)),
        None => (mem_available(), "MemAvailable".to_string()),
    };
    if let Some(avail) = avail {
        if predicted_peak > avail && !s.force {
            // Fixed part (weights, optimizer state) and a per-sample part that scales with batch.
            let fixed = plan.weights + if s.train { (2 + s.optimizer.state_copies()) * plan.trainable } else { 0 };
            let per_sample = predicted_peak.saturating_sub(fixed) / a.spec.batch.max(1);
            let fits = avail.saturating_sub(fixed).checked_div(per_sample).unwrap_or(0);
            let hint = if fits >= 1 { format!("--batch {fits} should fit") } else { "no batch fits".to_string() };
            return Err(DoesNotFit(format!(
                "{}: predicted peak {} exceeds memory available {} ({avail_what}); {hint}, or pass --force",
                a.spec.file,
                crate::report::units::bytes(predicted_peak),
                crate::report::units::bytes(avail)
            ))
            .into());
        }
    }
    let n = a.layers.len();
    let bar = progress(s, n);
    // NVML's figure for this process on the GPU (None on the CPU: NVML is not asked).
    let nv = || gpu.as_ref().map(|g| g.nvml_bytes());

    // Stage: input, weights.
    let base0 = meter.live();
    let net_input_seed = s.seed;
    let mut stages = Vec::new();
    let input = {
        let shape = a.input_shape().0.iter().map(|&d| d as usize).collect::<Vec<_>>();
        match vocab {
            Some(v) => super::net::random_ids(net_input_seed, &shape, v, &device)?,
            None => super::build::seeded_uniform(net_input_seed, "input", &shape, 1.0, dtype, &device)?,
        }
    };
    let live_input = meter.live().saturating_sub(base0);
    let nv_input = nv();
    let net = Net::build(a, dtype, &device, s.seed, s.train)?;
    let live_weights = meter.live().saturating_sub(base0);
    let nv_weights = nv();
    let m = |v: u64| counted.then_some(v);
    stages.push(Stage {
        stage: "input".into(),
        live_bytes: m(live_input),
        peak_bytes: None,
        predicted_bytes: plan.input,
        predicted_candle_bytes: plan.input,
        predicted_candle_peak_bytes: None,
        nvml: nv_input,
    });
    stages.push(Stage {
        stage: "weights".into(),
        live_bytes: m(live_weights),
        peak_bytes: None,
        predicted_bytes: plan.input + plan.weights,
        predicted_candle_bytes: plan.input + plan.weights + plan.constants,
        predicted_candle_peak_bytes: None,
        nvml: nv_weights,
    });

    let mut rec = Recorder::new(n, s.iters as usize, s.fake_timings, &meter);
    let mut pass_ms = Vec::with_capacity(s.iters as usize);
    let mut layers: Vec<MeasuredLayer> = vec![MeasuredLayer::default(); n];
    if !s.train {
        let pass = Pass { train: false, step: 0 };
        let before_warmup = meter.live();
        for _ in 0..s.warmup {
            drop(net.forward(input.clone(), pass, &mut super::net::NoProbe)?);
            bar.inc(1);
        }
        // One pass for memory (no clocks read), then the timed passes. A memory pass that
        // leaves bytes behind grew a one-time cache inside some layer (with two threads,
        // whether the second one ran a gemm during the warm-up, and so holds its packing
        // buffer, varies from run to run): it is run again, at most twice, so that no layer's
        // figures carry a one-time buffer.
        let mut tries = 0;
        let (caches, fwd_live, fwd_peak, nv_fwd, nv_caches) = loop {
            tries += 1;
            // What the warm-up (and a discarded pass) left behind, gemm's thread-local packing
            // buffers and the like: measured, not modelled, and taken out of the later stages.
            let caches = meter.live().saturating_sub(before_warmup);
            let nv_caches = nv();
            rec.base = meter.live();
            rec.peak.fill(0);
            meter.reset_peak();
            let y = net.forward(input.clone(), pass, &mut rec)?;
            // The probe resets the meter's peak before each layer: the pass's peak is the
            // highest of the layers' (relative to rec.base) and of what followed the last reset.
            let layers_peak = rec.peak.iter().max().map_or(0, |p| rec.base + p);
            let fwd_peak = meter.peak().max(layers_peak).saturating_sub(base0 + caches);
            let fwd_live = meter.live().saturating_sub(base0 + caches);
            let nv_fwd = nv();
            drop(y);
            if meter.live() <= rec.base + (64 << 10) || tries == 3 {
                break (caches, fwd_live, fwd_peak, nv_fwd, nv_caches);
            }
        };
        stages.push(Stage {
            stage: "warm-up caches".into(),
            live_bytes: m(caches),
            peak_bytes: None,
            predicted_bytes: 0,
            predicted_candle_bytes: 0,
            predicted_candle_peak_bytes: None,
            nvml: nv_caches,
        });
        stages.push(Stage {
            stage: "forward".into(),
            live_bytes: m(fwd_live),
            peak_bytes: m(fwd_peak),
            predicted_bytes: plan.input + plan.weights + a.layers.last().map(|l| l.activation_bytes).unwrap_or(0),
            predicted_candle_bytes: plan.input
                + plan.weights
                + plan.constants
                + plan.infer.candle_held.last().copied().unwrap_or(0),
            predicted_candle_peak_bytes: Some(plan.peak(false)),
            nvml: nv_fwd,
        });
        let held = rec.held.clone();
        rec.record_time = true;
        for _ in 0..s.iters {
            let t = Instant::now();
            drop(net.forward(input.clone(), pass, &mut rec)?);
            meter.sync();
            pass_ms.push(t.elapsed().as_secs_f64() * 1e3);
            bar.inc(1);
        }
        for (pos, l) in layers.iter_mut().enumerate() {
            l.peak_bytes = m(rec.peak[pos]);
            l.held_bytes = m(held[pos]);
        }
    } else {
        // Named, in name order: the order of candle's VarMap (a HashMap) varies from run to run.
        let vars: Vec<(String, candle_core::Var)> = {
            let d = net.params.vars.data().lock().map_err(|_| anyhow::anyhow!("var map lock poisoned"))?;
            let mut v: Vec<_> = d.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|x, y| x.0.cmp(&y.0));
            v
        };
        let live = feeds_output(a);
        let names: std::collections::HashSet<&str> = a.spec.layers.iter().map(|l| l.id.name.as_str()).collect();
        let mut opt = Optimizer::new(s.optimizer, vars.iter().map(|(_, v)| v.clone()).collect(), s.lr)?;
        let live_opt = meter.live().saturating_sub(base0);
        let nv_opt = nv();
        let mut step_no = 0u64;
        /// Raw live and peak bytes around the stages of one step.
        struct Raw {
            fwd: u64,
            loss: u64,
            bwd_peak: u64,
            bwd: u64,
            opt_peak: u64,
            opt: u64,
            /// NVML after forward, loss, backward, optimizer step (first step only: NVML
            /// calls take milliseconds and would distort the timed steps).
            nvml: [Option<crate::report::measured::NvmlBytes>; 4],
        }
        let mut step = |rec: &mut Recorder| -> anyhow::Result<Raw> {
            let pass = Pass { train: true, step: step_no };
            let nv_step = |v: &mut Option<crate::report::measured::NvmlBytes>| {
                if pass.step == 0 {
                    *v = nv();
                }
            };
            let mut nvml = [None; 4];
            step_no += 1;
            let y = net.forward(input.clone(), pass, rec)?;
            let fwd = meter.live();
            nv_step(&mut nvml[0]);
            let l = loss(&y, s.seed).context("loss")?;
            let after_loss = meter.live();
            nv_step(&mut nvml[1]);
            meter.reset_peak();
            let mut all = l.backward().context("backward")?;
            drop(l);
            drop(y);
            // Keep the variables' gradients only (detached): candle's store also holds the
            // gradients of non-trainable leaves (the input, masks, constants).
            let mut grads = candle_core::backprop::GradStore::default();
            for (name, v) in &vars {
                match all.remove(v) {
                    Some(g) => {
                        grads.insert(v, g.detach());
                    }
                    // A layer off every path to the output gets no gradient (PyTorch leaves its
                    // .grad None and the optimizer skips it); one on a path must get one.
                    None if !layer_of(name, &names).is_some_and(|l| live.contains(l)) => {}
                    None => anyhow::bail!(
                        "backward gave no gradient for trainable variable {name}: a layer's candle op does not backpropagate"
                    ),
                }
            }
            drop(all);
            let bwd_peak = meter.peak();
            let bwd = meter.live();
            nv_step(&mut nvml[2]);
            meter.reset_peak();
            opt.step(&grads)?;
            drop(grads);
            let (opt_peak, opt_live) = (meter.peak(), meter.live());
            nv_step(&mut nvml[3]);
            Ok(Raw { fwd, loss: after_loss, bwd_peak, bwd, opt_peak, opt: opt_live, nvml })
        };
        let before_warmup = meter.live();
        let mut nv_first = None;
        for _ in 0..s.warmup {
            nv_first.get_or_insert(step(&mut rec)?.nvml);
            bar.inc(1);
        }
        // What the warm-up left behind (gemm's thread-local packing buffers and the like):
        // measured, not modelled, and taken out of the later stages.
        let caches = meter.live().saturating_sub(before_warmup);
        let nv_caches = nv();
        rec.record_time = true;
        let mut first = None;
        for _ in 0..s.iters {
            let t = Instant::now();
            let raw = step(&mut rec)?;
            meter.sync();
            pass_ms.push(t.elapsed().as_secs_f64() * 1e3);
            nv_first.get_or_insert(raw.nvml);
            first.get_or_insert(raw);
            bar.inc(1);
        }
        let raw = first.expect("iters ≥ 1");
        let neutral = Neutral::new(a, s)?;
        let w = plan.input + plan.weights + plan.constants + plan.opt_state;
        let r = plan.retained_total();
        let rel = |v: u64| counted.then_some(v.saturating_sub(base0 + caches));
        let st =
            |stage: &str, live: Option<u64>, peak: Option<u64>, neutral: u64, candle: u64, candle_peak: Option<u64>| {
                Stage {
                    stage: stage.into(),
                    live_bytes: live,
                    peak_bytes: peak,
                    predicted_bytes: neutral,
                    predicted_candle_bytes: candle,
                    predicted_candle_peak_bytes: candle_peak,
                    nvml: None,
                }
            };
        let first_nv = stages.len() + 2;
        stages.push(st("optimizer state", m(live_opt), None, neutral.weights, w, None));
        stages.push(st("warm-up caches", m(caches), None, 0, 0, None));
        stages.push(st("forward", rel(raw.fwd), None, neutral.forward, w + r, None));
        stages.push(st("loss", rel(raw.loss), None, neutral.loss, w + r + plan.loss, None));
        stages.push(st(
            "backward",
            rel(raw.bwd),
            rel(raw.bwd_peak),
            neutral.backward,
            w + plan.grads,
            Some(plan.peak(true)),
        ));
        stages.push(st("optimizer step", rel(raw.opt), rel(raw.opt_peak), neutral.step, w, None));
        stages[first_nv - 2].nvml = nv_opt;
        stages[first_nv - 1].nvml = nv_caches;
        for (st, v) in stages[first_nv..].iter_mut().zip(nv_first.unwrap_or_default()) {
            st.nvml = v;
        }
        for (pos, l) in layers.iter_mut().enumerate() {
            l.retained_bytes = m(rec.growth[pos]);
            l.predicted_retained_bytes = Some(neutral.retained[pos]);
            l.predicted_candle_retained_bytes = Some(plan.retained[pos]);
        }
        // Backward of each layer alone, on detached copies of its inputs.
        if s.layer_backward {
            let bwd = layer_backward_times(&net, &input, s, &bar, &meter)?;
            for (l, t) in layers.iter_mut().zip(bwd) {
                l.backward = Some(t);
            }
        }
    }
    bar.finish_and_clear();
    meter.check()?;

    for (pos, (l, la)) in layers.iter_mut().zip(&a.layers).enumerate() {
        l.forward = if s.fake_timings { fake_timing(fake_ms(la.macs)) } else { Timing::of(&rec.times[pos]) };
        if s.fake_timings {
            if let Some(b) = &mut l.backward {
                *b = fake_timing(2.0 * fake_ms(la.macs));
            }
        }
        l.gflops_per_s = (la.macs > 0 && l.forward.time_ms_median > 0.0)
            .then(|| 2.0 * la.macs as f64 / (l.forward.time_ms_median * 1e6));
        l.predicted_peak_bytes = plan.infer.peak[pos];
        l.predicted_candle_peak_bytes = plan.infer.candle_peak[pos];
        l.predicted_held_bytes = plan.infer.held[pos];
    }
    let pass = if s.fake_timings {
        let f: f64 = a.layers.iter().map(|l| fake_ms(l.macs)).sum();
        fake_timing(if s.train { 3.0 * f } else { f })
    } else {
        Timing::of(&pass_ms)
    };
    let gflops = if pass.time_ms_median > 0.0 { 2.0 * a.totals.macs as f64 / (pass.time_ms_median * 1e6) } else { 0.0 };
    // The analysis report as `netstat SPEC` makes it, its memory summary included (for the
    // optimizer measured).
    let mut report = Report::new(a);
    report.memory = Some(crate::report::memory::MemoryReport::summary(crate::memory::model(a, &memory_options(s))?));
    Ok(MeasureReport {
        report,
        info: MeasureInfo {
            device: s.device.to_string(),
            cpu_model: if s.fake_timings { "(fake)".into() } else { cpu_model() },
            threads,
            mode: if s.train { "train".into() } else { "inference".into() },
            optimizer: s.train.then(|| format!("{:?}", s.optimizer).to_lowercase()),
            warmup: s.warmup,
            iters: s.iters,
            seed: s.seed,
            pass,
            gflops_per_s: gflops,
            params_built: net.params.elements(),
            fake_timings: s.fake_timings,
            memory_counted: counted,
            mem_available_bytes: if s.fake_timings { None } else { avail },
            predicted_run_peak_bytes: predicted_peak,
            gpu: gpu.clone().map(|g| {
                let process = g.nvml_process_bytes();
                crate::report::measured::GpuMeasured::new(g, process, meter.reserved())
            }),
        },
        layers,
        stages,
    })
}

/// Time each layer's backward alone: its inputs (from one inference forward, detached, made
/// variables) through the layer in training mode, then `Σ y·g` for a seeded random `g`
/// backpropagated `warmup + iters` times (backward does not consume the graph).
fn layer_backward_times(
    net: &Net,
    input: &Tensor,
    s: &Settings,
    bar: &indicatif::ProgressBar,
    meter: &Meter,
) -> anyhow::Result<Vec<Timing>> {
    use super::net::Slot;
    // Keep every output: run the layers by hand without frees.
    let mut vals: Vec<Tensor> = Vec::with_capacity(net.layers.len());
    let pass = Pass { train: true, step: 0 };
    let mut out = Vec::with_capacity(net.layers.len());
    for (pos, l) in net.layers.iter().enumerate() {
        let xs: Vec<Tensor> = l
            .inputs
            .iter()
            .map(|sl| match *sl {
                Slot::Input => input.detach(),
                Slot::At(p) => vals[p].clone(),
            })
            .collect();
        let y = l.module.forward(&xs, pass)?.detach();
        // Token ids (integers) take no gradient: they stay plain tensors.
        let xv: Vec<Tensor> = xs
            .iter()
            .map(|x| {
                if x.dtype().is_float() {
                    candle_core::Var::from_tensor(x).map(|v| v.as_tensor().clone())
                } else {
                    Ok(x.clone())
                }
            })
            .collect::<candle_core::Result<_>>()?;
        let yv = l.module.forward(&xv, pass)?;
        let g = super::build::seeded_uniform(s.seed, &format!("grad{pos}"), yv.dims(), 1.0, yv.dtype(), yv.device())?;
        let obj = (yv * g)?.sum_all()?;
        let mut ms = Vec::new();
        for i in 0..(s.warmup + s.iters) {
            meter.sync();
            let t = Instant::now();
            let grads = obj.backward()?;
            meter.sync();
            let e = t.elapsed().as_secs_f64() * 1e3;
            drop(grads);
            if i >= s.warmup {
                ms.push(e);
            }
        }
        out.push(Timing::of(&ms));
        vals.push(y);
        bar.inc(1);
    }
    Ok(out)
}

fn progress(s: &Settings, n: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let total = (s.warmup + s.iters) as u64 + if s.train && s.layer_backward { n as u64 } else { 0 };
    if !s.progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("measuring {bar:30} {pos}/{len} passes, {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}
