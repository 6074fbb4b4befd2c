//! The measurement procedure: preflight, build, warm up, time and count bytes, per layer and
//! per stage; fills a [`Measured`].

use super::device::{self, Meter, Target};
use super::net::{loss, Net, Probe};
use super::optim::Optimizer;
use super::predict;
use super::result::{GpuMeasured, MeasureInfo, Measured, MeasuredLayer, NvmlBytes, Stage, Timing};
use crate::analysis::Analysis;
use crate::candle::build::Pass;
use crate::memory::Phase;
use anyhow::Context as _;
use candle_core::{DType, Tensor};
use std::time::Instant;

/// What `netstat measure` was asked to do.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Measure a training step (forward, loss, backward, optimizer) instead of inference.
    pub train: bool,
    /// Optimizer of the training step (the one enum of every subcommand; default Adam).
    pub optimizer: crate::memory::Optimizer,
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
/// The most timed passes (`--iters`) and the most warm-up passes (`--warmup`) one run takes.
pub const MAX_PASSES: u32 = 100_000;
/// The most per-layer times one run keeps: one f64 per layer per timed pass, allocated before
/// the first pass (10⁸ times = 800 MB). `--iters 4000000000` on AlexNet asked for 32 GB and
/// aborted the process.
pub const MAX_TIMINGS: u64 = 100_000_000;

impl Default for Settings {
    /// The command line's defaults: inference on the CPU, Adam if training, 3 warm-up and 10
    /// timed passes, seed 0, lr 1e-3, per-layer backward timing on, no progress bar.
    fn default() -> Self {
        Settings {
            train: false,
            optimizer: crate::memory::Optimizer::Adam,
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

/// Why `netstat measure` produced no result.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The preflight refused the run: the predicted peak exceeds the memory available (a usage
    /// error, exit code 2; `--force` runs anyway).
    #[error("{0}")]
    DoesNotFit(String),
    /// The predicted peak exceeds the machine's whole memory (MemTotal, or the GPU's total):
    /// refused even with `--force`, since the allocation would abort the process (exit code 2).
    #[error("{0}")]
    ExceedsMachine(String),
    /// A run measure cannot do as asked, refused before anything is built (exit code 2): an
    /// element type candle's kernels here do not run, or pass counts over the limits
    /// ([`MAX_PASSES`], [`MAX_TIMINGS`]).
    #[error("{0}")]
    Unsupported(String),
    /// The device cannot be opened (exit code 2).
    #[error(transparent)]
    BadDevice(#[from] device::BadDevice),
    /// The memory model refused the spec (a spec error, exit code 2).
    #[error(transparent)]
    Spec(#[from] crate::error::SpecError),
    /// The run failed: candle could not build or run a layer, or a parameter count, output
    /// shape or gradient disagrees with the analysis (naming the layer; exit code 1).
    #[error("{0:#}")]
    Run(#[from] anyhow::Error),
}

impl From<candle_core::Error> for MeasureError {
    fn from(e: candle_core::Error) -> Self {
        MeasureError::Run(e.into())
    }
}

/// MemAvailable from /proc/meminfo, in bytes (None where unreadable).
pub fn mem_available() -> Option<u64> {
    meminfo("MemAvailable:")
}

/// MemTotal from /proc/meminfo (the machine's physical memory), in bytes (None where
/// unreadable).
pub fn mem_total() -> Option<u64> {
    meminfo("MemTotal:")
}

/// A `/proc/meminfo` field (`NAME:`, in kB there), in bytes.
fn meminfo(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
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

/// Predicted bytes of a run, by stage: the candle model's, and the framework-neutral
/// inference figures of netstat's memory model ([`crate::memory::inference_timeline`]).
#[derive(Debug, Clone, Default)]
struct Plan {
    input: u64,
    weights: u64,
    /// Bytes of the gradients a backward leaves: the trainable parameters that reach the
    /// output ([`predict::feeds_output`]).
    grads: u64,
    /// Constants built with the weights (causal masks): candle model only.
    constants: u64,
    /// Optimizer state: copies × the trainable parameters' bytes (`trainable: false` layers
    /// excluded; candle's optimizers hold state for every variable, reached or not).
    opt_state: u64,
    retained: Vec<u64>,
    /// Net bytes the training forward leaves live (frees on an untracked prefix counted).
    retained_total: u64,
    loss: u64,
    /// Candle model, per layer of an inference forward.
    infer: predict::Inference,
    /// Memory model, inference: the network input (its `input` row).
    neutral_input: u64,
    /// Memory model, inference: input + weights (its `weights` row), the line per-layer
    /// figures are measured from.
    neutral_weights: u64,
    /// Memory model, inference: live bytes after the last layer.
    neutral_forward: u64,
    /// Memory model, inference, per layer (execution order): bytes at the layer's worst
    /// moment, above `neutral_weights`.
    neutral_peak: Vec<u64>,
    /// Memory model, inference, per layer: bytes live after the layer and its frees, above
    /// `neutral_weights`.
    neutral_held: Vec<u64>,
}

impl Plan {
    /// `timeline`: the memory model's inference rows ([`crate::memory::inference_timeline`]:
    /// input, weights, then one per layer in execution order).
    fn new(a: &Analysis, s: &Settings, threads: u64, timeline: &[crate::memory::Stage]) -> Plan {
        let ds = a.spec.dtype.size();
        let weights = a.totals.params * ds;
        let trainable = a.layers.iter().map(|l| l.trainable_params).sum::<u64>() * ds;
        let live = predict::feeds_output(a);
        let grads = a.layers.iter().filter(|l| live[l.index]).map(|l| l.trainable_params).sum::<u64>() * ds;
        let out = &a.layers.last().map(|l| l.output.0.clone()).unwrap_or_default();
        let (retained, retained_total) = predict::retained(a, threads);
        let row = |phase| timeline.iter().find(|r| r.phase == phase).map_or(0, |r| r.live_bytes);
        let (neutral_input, neutral_weights) = (row(Phase::Data), row(Phase::Weights));
        let layers: Vec<&crate::memory::Stage> = timeline.iter().filter(|r| r.phase == Phase::Forward).collect();
        Plan {
            input: a.totals.input_bytes,
            weights,
            grads,
            constants: predict::constants(a),
            opt_state: if s.train { s.optimizer.state_copies() * trainable } else { 0 },
            retained,
            retained_total,
            loss: predict::loss_bytes(out, ds),
            infer: predict::inference(a, threads),
            neutral_input,
            neutral_weights,
            neutral_forward: layers.last().map_or(neutral_weights, |r| r.live_bytes),
            neutral_peak: layers.iter().map(|r| r.peak_bytes.saturating_sub(neutral_weights)).collect(),
            neutral_held: layers.iter().map(|r| r.live_bytes.saturating_sub(neutral_weights)).collect(),
        }
    }
    fn retained_total(&self) -> u64 {
        self.retained_total
    }
    /// Candle-model peak of the whole run above the process baseline (saturating: a hostile
    /// size reads as u64::MAX, which no budget holds).
    fn peak(&self, train: bool) -> u64 {
        let sum = |v: &[u64]| v.iter().fold(0u64, |s, &x| s.saturating_add(x));
        let base = sum(&[self.input, self.weights, self.constants, self.opt_state]);
        if train {
            // Backward: the graph, the gradients being accumulated (≈ 2 × their bytes: the
            // store and one zeros_like + add in flight) and the largest activation gradient
            // pair (twice the memory model's largest inference activations).
            sum(&[
                base,
                self.retained_total(),
                self.loss,
                self.grads.saturating_mul(2),
                self.neutral_peak.iter().max().copied().unwrap_or(0).saturating_mul(2),
            ])
        } else {
            base.saturating_add(self.infer.peak.iter().max().copied().unwrap_or(0))
        }
    }
}

/// The memory model's options for the optimizer measure runs (no mixed precision).
pub fn memory_options(s: &Settings) -> crate::memory::Options {
    // candle runs no activation checkpointing: predict the step it runs.
    crate::memory::Options {
        optimizer: s.optimizer,
        checkpoint: crate::memory::checkpoint::Checkpoint::None,
        ..Default::default()
    }
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
    fn new(a: &Analysis, m: &crate::memory::Memory) -> Neutral {
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
        Neutral {
            weights: weights + state,
            forward: forward + state,
            loss: loss + state,
            backward: backward + state,
            step,
            retained,
        }
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

/// The element type candle runs for `a`: f32 or f64.
///
/// Errors: [`MeasureError::Unsupported`] for any other.
fn element_type(a: &Analysis, s: &Settings) -> Result<DType, MeasureError> {
    match a.spec.dtype {
        crate::shape::DType::F32 => Ok(DType::F32),
        crate::shape::DType::F64 => Ok(DType::F64),
        d => Err(MeasureError::Unsupported(format!(
            "{}: measure runs f32 or f64 on {}, the spec asks for {d}: try --dtype f32",
            a.spec.file,
            if s.device == Target::Cpu { "the CPU" } else { "a GPU" }
        ))),
    }
}

/// The memory a run may use and what it is called: device memory free on a GPU, MemAvailable
/// on the CPU; and the machine's whole memory, the GPU's total or MemTotal (`None` where
/// unknown).
struct Budget {
    avail: Option<u64>,
    what: String,
    total: Option<u64>,
    total_what: String,
}

impl Budget {
    fn of(gpu: Option<&super::result::GpuRun>) -> Budget {
        match gpu {
            Some(g) => Budget {
                avail: Some(g.memory_free_bytes),
                what: format!("free on {}", g.device),
                total: Some(g.memory_total_bytes),
                total_what: format!("the total of {}", g.device),
            },
            None => Budget {
                avail: mem_available(),
                what: "MemAvailable".to_string(),
                total: mem_total(),
                total_what: "MemTotal, the machine's physical memory".to_string(),
            },
        }
    }
}

/// The preflight: refuse a run whose predicted peak exceeds the budget before anything is
/// allocated. The predicted peak is netstat's memory model's ([`crate::memory::model`], the
/// figure `netstat memory` prints: the training peak for the optimizer measured, else the
/// inference peak), or the candle model's where that is higher (this runtime keeps every op
/// output for backward and allocates conv workspaces the model of PyTorch does not). The
/// hint's batch splits the peak into the model's fixed part (weights, and in training
/// gradients and optimizer state) and a per-sample part that scales with the batch.
///
/// Errors: [`MeasureError::ExceedsMachine`] when the peak exceeds the machine's whole memory
/// (even with `--force`: the allocation would abort the process); else
/// [`MeasureError::DoesNotFit`] unless `--force`.
fn preflight(
    a: &Analysis,
    s: &Settings,
    plan: &Plan,
    m: &crate::memory::Memory,
    budget: &Budget,
) -> Result<(), MeasureError> {
    let model_peak = if s.train { m.training_peak_bytes } else { m.inference_peak_bytes };
    let predicted_peak = model_peak.max(plan.peak(s.train));
    let over_machine = budget.total.filter(|&t| predicted_peak > t).map(|total| {
        format!(
            "{} exceeds the machine's memory {} ({})",
            crate::report::units::bytes(predicted_peak),
            crate::report::units::bytes(total),
            budget.total_what
        )
    });
    let over_avail = budget.avail.filter(|&avail| predicted_peak > avail);
    match (over_avail, &over_machine) {
        (Some(avail), _) if !s.force => {
            let fixed = m.weight_bytes().saturating_add(if s.train {
                m.gradient_bytes.saturating_add(m.optimizer_state_bytes)
            } else {
                0
            });
            let per_sample = predicted_peak.saturating_sub(fixed) / a.spec.batch.max(1);
            let fits = avail.saturating_sub(fixed).checked_div(per_sample).unwrap_or(0);
            let hint = if fits >= 1 { format!("--batch {fits} should fit") } else { "no batch fits".to_string() };
            let force = match &over_machine {
                Some(_) => " (--force cannot run it: it exceeds the machine's memory too)",
                None => ", or pass --force",
            };
            Err(MeasureError::DoesNotFit(format!(
                "{}: predicted peak {} exceeds memory available {} ({}); {hint}{force}",
                a.spec.file,
                crate::report::units::bytes(predicted_peak),
                crate::report::units::bytes(avail),
                budget.what
            )))
        }
        (_, Some(over)) => Err(MeasureError::ExceedsMachine(format!(
            "{}: predicted peak {over}: it cannot run here, even with --force",
            a.spec.file
        ))),
        _ => Ok(()),
    }
}

/// What every run shares once the network is built: the device, its meter, the input and the
/// network, the line bytes are measured from, and the first two stages.
struct Setup {
    meter: Meter,
    gpu: Option<super::result::GpuRun>,
    input: Tensor,
    net: Net,
    /// Bytes live before the input was made: the line every stage is measured from.
    base0: u64,
    /// Whether the counting allocator (or the CUDA pool) counts bytes.
    counted: bool,
    /// Stage `input`: the network input.
    input_stage: Stage,
    /// Stage `weights`: the input and the weights (and constants).
    weights_stage: Stage,
}

impl Setup {
    /// NVML's figure for this process on the GPU (None on the CPU: NVML is not asked).
    fn nvml(&self) -> Option<NvmlBytes> {
        self.gpu.as_ref().map(|g| g.nvml_bytes())
    }
    /// A measured byte count, when bytes are counted.
    fn counted(&self, v: u64) -> Option<u64> {
        self.counted.then_some(v)
    }
}

/// One stage with no candle peak: measured `live`, the two predictions, NVML's figure.
fn stage(name: &str, live: Option<u64>, neutral: u64, candle: u64, nvml: Option<NvmlBytes>) -> Stage {
    Stage {
        stage: name.into(),
        live_bytes: live,
        peak_bytes: None,
        predicted_bytes: neutral,
        predicted_candle_bytes: candle,
        predicted_candle_peak_bytes: None,
        nvml,
    }
}

/// Open the device, make the input and build the network (stages `input` and `weights`).
fn setup(a: &Analysis, s: &Settings, dtype: DType, opened: device::Opened, plan: &Plan) -> anyhow::Result<Setup> {
    let vocab = super::net::token_vocab(a)?;
    let (device, meter, gpu) = (opened.device, opened.meter, opened.gpu);
    let counted = meter.counted();
    let base0 = meter.live();
    let input = {
        let shape = a.input_shape().0.iter().map(|&d| d as usize).collect::<Vec<_>>();
        match vocab {
            Some(v) => super::net::random_ids(s.seed, &shape, v, &device)?,
            None => crate::candle::build::seeded_uniform(s.seed, "input", &shape, 1.0, dtype, &device)?,
        }
    };
    let live_input = meter.live().saturating_sub(base0);
    let nv_input = gpu.as_ref().map(|g| g.nvml_bytes());
    let net = Net::build(a, dtype, &device, s.seed, s.train)?;
    let live_weights = meter.live().saturating_sub(base0);
    let nv_weights = gpu.as_ref().map(|g| g.nvml_bytes());
    let m = |v: u64| counted.then_some(v);
    Ok(Setup {
        input_stage: stage("input", m(live_input), plan.neutral_input, plan.input, nv_input),
        weights_stage: stage(
            "weights",
            m(live_weights),
            plan.neutral_weights,
            plan.input + plan.weights + plan.constants,
            nv_weights,
        ),
        meter,
        gpu,
        input,
        net,
        base0,
        counted,
    })
}

/// What the stages of a run read: the analysis, the settings, the predictions, the built
/// network and the progress bar.
struct RunCtx<'r> {
    a: &'r Analysis,
    s: &'r Settings,
    plan: &'r Plan,
    su: &'r Setup,
    bar: &'r indicatif::ProgressBar,
}

/// The stages of an inference run after `weights`.
struct InferenceStages {
    /// What the warm-up left behind (gemm's per-thread packing buffers and the like).
    caches: Stage,
    /// After one forward pass (with its peak).
    forward: Stage,
}

/// Inference: warm up, one pass for memory (repeated while it leaves a one-time cache
/// behind), then the timed passes; each layer's peak and held bytes are filled in `layers`.
fn inference(
    cx: &RunCtx,
    rec: &mut Recorder,
    layers: &mut [MeasuredLayer],
    pass_ms: &mut Vec<f64>,
) -> anyhow::Result<InferenceStages> {
    let RunCtx { s, plan, su, bar, .. } = *cx;
    let (meter, net, input) = (&su.meter, &su.net, &su.input);
    let pass = Pass { train: false, step: 0 };
    let before_warmup = meter.live();
    for _ in 0..s.warmup {
        drop(net.forward(input.clone(), pass, &mut super::net::NoProbe)?);
        bar.inc(1);
    }
    // One pass for memory (no clocks read), then the timed passes. A memory pass that leaves
    // bytes behind grew a one-time cache inside some layer (with two threads, whether the
    // second one ran a gemm during the warm-up, and so holds its packing buffer, varies from
    // run to run): it is run again, at most twice, so that no layer's figures carry a
    // one-time buffer.
    let mut tries = 0;
    let (caches, fwd_live, fwd_peak, nv_fwd, nv_caches) = loop {
        tries += 1;
        // What the warm-up (and a discarded pass) left behind, gemm's thread-local packing
        // buffers and the like: measured, not modelled, and taken out of the later stages.
        let caches = meter.live().saturating_sub(before_warmup);
        let nv_caches = su.nvml();
        rec.base = meter.live();
        rec.peak.fill(0);
        meter.reset_peak();
        let y = net.forward(input.clone(), pass, rec)?;
        // The probe resets the meter's peak before each layer: the pass's peak is the highest
        // of the layers' (relative to rec.base) and of what followed the last reset.
        let layers_peak = rec.peak.iter().max().map_or(0, |p| rec.base + p);
        let fwd_peak = meter.peak().max(layers_peak).saturating_sub(su.base0 + caches);
        let fwd_live = meter.live().saturating_sub(su.base0 + caches);
        let nv_fwd = su.nvml();
        drop(y);
        if meter.live() <= rec.base + (64 << 10) || tries == 3 {
            break (caches, fwd_live, fwd_peak, nv_fwd, nv_caches);
        }
    };
    let held = rec.held.clone();
    rec.record_time = true;
    for _ in 0..s.iters {
        let t = Instant::now();
        drop(net.forward(input.clone(), pass, rec)?);
        meter.sync();
        pass_ms.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    for (pos, l) in layers.iter_mut().enumerate() {
        l.peak_bytes = su.counted(rec.peak[pos]);
        l.held_bytes = su.counted(held[pos]);
    }
    Ok(InferenceStages {
        caches: stage("warm-up caches", su.counted(caches), 0, 0, nv_caches),
        forward: Stage {
            stage: "forward".into(),
            live_bytes: su.counted(fwd_live),
            peak_bytes: su.counted(fwd_peak),
            predicted_bytes: plan.neutral_forward,
            predicted_candle_bytes: plan.input
                + plan.weights
                + plan.constants
                + plan.infer.held.last().copied().unwrap_or(0),
            predicted_candle_peak_bytes: Some(plan.peak(false)),
            nvml: nv_fwd,
        },
    })
}

/// Raw live and peak bytes around the stages of one training step.
struct Raw {
    fwd: u64,
    loss: u64,
    bwd_peak: u64,
    bwd: u64,
    opt_peak: u64,
    opt: u64,
    /// NVML after forward, loss, backward, optimizer step (first step only: NVML calls take
    /// milliseconds and would distort the timed steps).
    nvml: StepNvml,
}

/// NVML's figures after each stage of a step (all `None` on the CPU).
#[derive(Debug, Clone, Copy, Default)]
struct StepNvml {
    forward: Option<NvmlBytes>,
    loss: Option<NvmlBytes>,
    backward: Option<NvmlBytes>,
    step: Option<NvmlBytes>,
}

/// The stages of a training run after `weights`.
struct TrainingStages {
    optimizer_state: Stage,
    caches: Stage,
    forward: Stage,
    loss: Stage,
    backward: Stage,
    step: Stage,
}

impl TrainingStages {
    fn into_vec(self) -> Vec<Stage> {
        vec![self.optimizer_state, self.caches, self.forward, self.loss, self.backward, self.step]
    }
}

/// Training: build the optimizer, warm up, then the timed steps (forward, loss, backward,
/// optimizer step); each layer's retained bytes (measured, neutral, candle) are filled in
/// `layers`, and with `layer_backward` each layer's backward time.
fn training(
    cx: &RunCtx,
    neutral: &Neutral,
    rec: &mut Recorder,
    layers: &mut [MeasuredLayer],
    pass_ms: &mut Vec<f64>,
) -> anyhow::Result<TrainingStages> {
    let RunCtx { a, s, plan, su, bar } = *cx;
    let (meter, net, input) = (&su.meter, &su.net, &su.input);
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
    let live_opt = meter.live().saturating_sub(su.base0);
    let nv_opt = su.nvml();
    let mut step_no = 0u64;
    let mut step = |rec: &mut Recorder| -> anyhow::Result<Raw> {
        let pass = Pass { train: true, step: step_no };
        let first = pass.step == 0;
        let nv = || if first { su.nvml() } else { None };
        let mut nvml = StepNvml::default();
        step_no += 1;
        let y = net.forward(input.clone(), pass, rec)?;
        let fwd = meter.live();
        nvml.forward = nv();
        let l = loss(&y, s.seed).context("loss")?;
        let after_loss = meter.live();
        nvml.loss = nv();
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
        nvml.backward = nv();
        meter.reset_peak();
        opt.step(&grads)?;
        drop(grads);
        let (opt_peak, opt_live) = (meter.peak(), meter.live());
        nvml.step = nv();
        Ok(Raw { fwd, loss: after_loss, bwd_peak, bwd, opt_peak, opt: opt_live, nvml })
    };
    let before_warmup = meter.live();
    let mut nv_first = None;
    for _ in 0..s.warmup {
        nv_first.get_or_insert(step(rec)?.nvml);
        bar.inc(1);
    }
    // What the warm-up left behind (gemm's thread-local packing buffers and the like):
    // measured, not modelled, and taken out of the later stages.
    let caches = meter.live().saturating_sub(before_warmup);
    let nv_caches = su.nvml();
    rec.record_time = true;
    let mut first = None;
    for _ in 0..s.iters {
        let t = Instant::now();
        let raw = step(rec)?;
        meter.sync();
        pass_ms.push(t.elapsed().as_secs_f64() * 1e3);
        nv_first.get_or_insert(raw.nvml);
        first.get_or_insert(raw);
        bar.inc(1);
    }
    let raw = first.expect("iters ≥ 1");
    let nv = nv_first.unwrap_or_default();
    let w = plan.input + plan.weights + plan.constants + plan.opt_state;
    let r = plan.retained_total();
    let rel = |v: u64| su.counted(v.saturating_sub(su.base0 + caches));
    for (pos, l) in layers.iter_mut().enumerate() {
        l.retained_bytes = su.counted(rec.growth[pos]);
        l.predicted_retained_bytes = Some(neutral.retained[pos]);
        l.predicted_candle_retained_bytes = Some(plan.retained[pos]);
    }
    // Backward of each layer alone, on detached copies of its inputs.
    if s.layer_backward {
        let bwd = layer_backward_times(net, input, s, bar, meter)?;
        for (l, t) in layers.iter_mut().zip(bwd) {
            l.backward = Some(t);
        }
    }
    Ok(TrainingStages {
        optimizer_state: stage("optimizer state", su.counted(live_opt), neutral.weights, w, nv_opt),
        caches: stage("warm-up caches", su.counted(caches), 0, 0, nv_caches),
        forward: stage("forward", rel(raw.fwd), neutral.forward, w + r, nv.forward),
        loss: stage("loss", rel(raw.loss), neutral.loss, w + r + plan.loss, nv.loss),
        backward: Stage {
            peak_bytes: rel(raw.bwd_peak),
            predicted_candle_peak_bytes: Some(plan.peak(true)),
            ..stage("backward", rel(raw.bwd), neutral.backward, w + plan.grads, nv.backward)
        },
        step: Stage {
            peak_bytes: rel(raw.opt_peak),
            ..stage("optimizer step", rel(raw.opt), neutral.step, w, nv.step)
        },
    })
}

/// A run ready for its first pass: the predictions made, the preflight passed, the device
/// opened and the network built (stages `input` and `weights` measured).
pub struct Prepared {
    plan: Plan,
    budget: Budget,
    threads: usize,
    neutral: Option<Neutral>,
    su: Setup,
}

/// Everything [`measure`] does before the first pass: the element type and the device, the
/// predictions (netstat's memory model and the candle model), the preflight and the build.
/// Linear in layers (benches/analysis.rs, group `scaling`, `measure_plan`).
///
/// Errors: as [`measure`], but a run that fails only while running.
pub fn prepare(a: &Analysis, s: &Settings) -> Result<Prepared, MeasureError> {
    check_passes(a.layers.len(), s)?;
    let dtype = element_type(a, s)?;
    let opened = device::open(s.device)?;
    let threads = candle_core::utils::get_num_threads();
    let options = memory_options(s);
    let memory = crate::memory::model(a, &options)?;
    let plan = Plan::new(a, s, threads as u64, &crate::memory::inference_timeline(a, &options)?);
    let budget = Budget::of(opened.gpu.as_ref());
    preflight(a, s, &plan, &memory, &budget)?;
    let neutral = s.train.then(|| Neutral::new(a, &memory));
    let su = setup(a, s, dtype, opened, &plan)?;
    Ok(Prepared { plan, budget, threads, neutral, su })
}

/// Refuse pass counts the run cannot keep: `iters` outside 1 to [`MAX_PASSES`], `warmup` over
/// it, or `layers × iters` per-layer times over [`MAX_TIMINGS`].
fn check_passes(layers: usize, s: &Settings) -> Result<(), MeasureError> {
    if !(1..=MAX_PASSES).contains(&s.iters) {
        return Err(MeasureError::Unsupported(format!(
            "--iters: expected 1 to {MAX_PASSES} timed passes, got {}",
            s.iters
        )));
    }
    if s.warmup > MAX_PASSES {
        return Err(MeasureError::Unsupported(format!(
            "--warmup: expected 0 to {MAX_PASSES} warm-up passes, got {}",
            s.warmup
        )));
    }
    let timings = layers as u64 * u64::from(s.iters);
    if timings > MAX_TIMINGS {
        return Err(MeasureError::Unsupported(format!(
            "--iters {}: {layers} layers × {} passes is {timings} per-layer times, over the limit of {MAX_TIMINGS}; \
             at most --iters {} for this spec",
            s.iters,
            s.iters,
            MAX_TIMINGS / layers as u64
        )));
    }
    Ok(())
}

/// Run the measurement of `a` (already analysed) as `s` asks: [`prepare`] (the element type
/// and the device, the preflight, the build: stages `input`, `weights`), then the inference or
/// training stages, and the per-layer times and predictions assembled into a [`Measured`].
///
/// Errors: [`MeasureError`]: an element type other than f32 or f64, a device that cannot be
/// opened, a run that does not fit (before anything is allocated), a spec the memory model
/// refuses, or a run that fails (candle cannot build or run a layer; a parameter count,
/// output shape or missing gradient that disagrees with the analysis, naming the layer).
pub fn measure(a: &Analysis, s: &Settings) -> Result<Measured, MeasureError> {
    let Prepared { plan, budget, threads, neutral, su } = prepare(a, s)?;
    let n = a.layers.len();
    let bar = progress(s, n);
    let mut rec = Recorder::new(n, s.iters as usize, s.fake_timings, &su.meter);
    let mut pass_ms = Vec::with_capacity(s.iters as usize);
    let mut layers: Vec<MeasuredLayer> = a
        .layers
        .iter()
        .map(|l| {
            let spec = a.layer_spec(l);
            MeasuredLayer { name: spec.id.name.clone(), kind: spec.kind.name(), ..Default::default() }
        })
        .collect();
    let mut stages = vec![su.input_stage.clone(), su.weights_stage.clone()];
    let cx = RunCtx { a, s, plan: &plan, su: &su, bar: &bar };
    match &neutral {
        None => {
            let st = inference(&cx, &mut rec, &mut layers, &mut pass_ms)?;
            stages.extend([st.caches, st.forward]);
        }
        Some(neutral) => {
            let st = training(&cx, neutral, &mut rec, &mut layers, &mut pass_ms)?;
            stages.extend(st.into_vec());
        }
    }
    bar.finish_and_clear();
    su.meter.check()?;
    let times = std::mem::take(&mut rec.times);
    drop(rec);
    Ok(assemble(&cx, &budget, threads, times, &pass_ms, layers, stages))
}

/// The per-layer times and predictions and the run's header, from what the stages recorded.
fn assemble(
    cx: &RunCtx,
    budget: &Budget,
    threads: usize,
    times: Vec<Vec<f64>>,
    pass_ms: &[f64],
    mut layers: Vec<MeasuredLayer>,
    stages: Vec<Stage>,
) -> Measured {
    let RunCtx { a, s, plan, su, .. } = *cx;
    for (pos, (l, la)) in layers.iter_mut().zip(&a.layers).enumerate() {
        l.forward = if s.fake_timings { fake_timing(fake_ms(la.macs)) } else { Timing::of(&times[pos]) };
        if s.fake_timings {
            if let Some(b) = &mut l.backward {
                *b = fake_timing(2.0 * fake_ms(la.macs));
            }
        }
        l.gflops_per_s = (la.macs > 0 && l.forward.time_ms_median > 0.0)
            .then(|| 2.0 * la.macs as f64 / (l.forward.time_ms_median * 1e6));
        l.predicted_peak_bytes = plan.neutral_peak[pos];
        l.predicted_candle_peak_bytes = plan.infer.peak[pos];
        l.predicted_held_bytes = plan.neutral_held[pos];
    }
    let pass = if s.fake_timings {
        let f: f64 = a.layers.iter().map(|l| fake_ms(l.macs)).sum();
        fake_timing(if s.train { 3.0 * f } else { f })
    } else {
        Timing::of(pass_ms)
    };
    let gflops = if pass.time_ms_median > 0.0 { 2.0 * a.totals.macs as f64 / (pass.time_ms_median * 1e6) } else { 0.0 };
    Measured {
        info: MeasureInfo {
            device: s.device.to_string(),
            cpu_model: if s.fake_timings { "(fake)".into() } else { cpu_model() },
            threads,
            mode: if s.train { "train".into() } else { "inference".into() },
            optimizer: s.train.then(|| s.optimizer.name().to_owned()),
            warmup: s.warmup,
            iters: s.iters,
            seed: s.seed,
            pass,
            gflops_per_s: gflops,
            params_built: su.net.params.elements(),
            fake_timings: s.fake_timings,
            memory_counted: su.counted,
            mem_available_bytes: if s.fake_timings { None } else { budget.avail },
            predicted_run_peak_bytes: plan.peak(s.train),
            gpu: su.gpu.clone().map(|g| {
                let process = g.nvml_process_bytes();
                GpuMeasured::new(g, process, su.meter.reserved())
            }),
        },
        layers,
        stages,
    }
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
        let g = crate::candle::build::seeded_uniform(
            s.seed,
            &format!("grad{pos}"),
            yv.dims(),
            1.0,
            yv.dtype(),
            yv.device(),
        )?;
        let obj = (yv * g)?.sum_all()?;
        let mut ms = Vec::new();
        for i in 0..s.warmup.saturating_add(s.iters) {
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
    let total = u64::from(s.warmup) + u64::from(s.iters) + if s.train && s.layer_backward { n as u64 } else { 0 };
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
