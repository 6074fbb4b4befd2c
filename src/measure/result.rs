//! What `netstat measure` found, as plain data: per-layer times and memory, per-stage memory
//! of a training step, the machine and the settings, each measurement beside its two
//! predictions (the memory model's and the candle model's).
//!
//! [`crate::measure::measure`] fills a [`Measured`]; [`crate::report::measured`] puts it beside
//! the analysis report and formats it. This module imports nothing else from netstat: report
//! depends on it, it depends on no report.

use serde::Serialize;

/// Median, minimum and maximum of timed repetitions, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Timing {
    /// Median over the timed iterations (ms).
    pub time_ms_median: f64,
    /// Fastest iteration (ms).
    pub time_ms_min: f64,
    /// Slowest iteration (ms).
    pub time_ms_max: f64,
}

impl Timing {
    /// Median, min and max of `ms` (empty: zeros).
    pub fn of(ms: &[f64]) -> Timing {
        if ms.is_empty() {
            return Timing::default();
        }
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Timing { time_ms_median: median, time_ms_min: v[0], time_ms_max: v[n - 1] }
    }

    /// (max − min) / median, in percent: how noisy the repetitions were.
    pub fn spread_percent(&self) -> f64 {
        if self.time_ms_median > 0.0 {
            100.0 * (self.time_ms_max - self.time_ms_min) / self.time_ms_median
        } else {
            0.0
        }
    }
}

/// What was measured for one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct MeasuredLayer {
    /// The layer's name (the analysis report's row carries it in every format: not serialized).
    #[serde(skip)]
    pub name: String,
    /// The layer's `kind:` (likewise not serialized).
    #[serde(skip)]
    pub kind: &'static str,
    /// Forward time of the layer.
    pub forward: Timing,
    /// Backward time of the layer alone (with `--train`): the layer re-run on a detached copy of
    /// its input and backpropagated from a random output gradient.
    pub backward: Option<Timing>,
    /// 2 · MACs / median forward time, in GFLOP/s (absent for layers without MACs).
    pub gflops_per_s: Option<f64>,
    /// Inference: most heap bytes live while the layer ran, above the bytes live before the
    /// forward pass (weights and the network input are below that line); the highest over
    /// the memory pass and the timed passes.
    pub peak_bytes: Option<u64>,
    /// Inference: heap bytes still live after the layer (and after freeing what it last read),
    /// above the same line.
    pub held_bytes: Option<u64>,
    /// Framework-neutral prediction of `peak_bytes`: live values before the layer + its output.
    pub predicted_peak_bytes: u64,
    /// Candle-model prediction of `peak_bytes` (adds im2col buffers, pre-bias tensors, slices).
    pub predicted_candle_peak_bytes: u64,
    /// Framework-neutral prediction of `held_bytes`: values still to be read.
    pub predicted_held_bytes: u64,
    /// Training: bytes the autograd graph keeps for this layer (live growth across the layer in
    /// a training forward).
    pub retained_bytes: Option<u64>,
    /// Framework-neutral prediction of `retained_bytes`: netstat's memory model ([`crate::memory::model`]:
    /// the saved tensors and outputs this layer leaves live, less what it was the last to read).
    pub predicted_retained_bytes: Option<u64>,
    /// Candle-model prediction of `retained_bytes`: every primitive op output the layer makes.
    pub predicted_candle_retained_bytes: Option<u64>,
}

/// Live bytes at one stage of a training step (or of inference).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// `input`, `weights`, `forward`, `loss`, `backward`, `optimizer step`.
    pub stage: String,
    /// Measured heap bytes live after the stage, above the bytes live before the run began.
    pub live_bytes: Option<u64>,
    /// Measured most bytes live during the stage, above the same line.
    pub peak_bytes: Option<u64>,
    /// Framework-neutral prediction of `live_bytes` (training stages: netstat's memory model, with the
    /// optimizer state allocated before the first step as candle does).
    pub predicted_bytes: u64,
    /// Candle-model prediction of `live_bytes`.
    pub predicted_candle_bytes: u64,
    /// Candle-model prediction of `peak_bytes`, where modelled.
    pub predicted_candle_peak_bytes: Option<u64>,
    /// On a GPU: NVML's figures after the stage. Absent on the CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvml: Option<NvmlBytes>,
}

/// NVML's figures after a stage on a GPU, bytes. NVML lags frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct NvmlBytes {
    /// This process on the device: CUDA context, modules, library workspaces and the memory
    /// pool's reservation.
    pub process_bytes: Option<u64>,
    /// The whole device, every process (`memory_info().used`).
    pub device_used_bytes: Option<u64>,
}

impl GpuMeasured {
    /// The figures at the end of a run: NVML's bytes for this process and the pool's reserved
    /// bytes; the overhead is their difference (None unless both are known, or if the pool
    /// exceeds the process figure, which NVML's lag can make happen).
    pub fn new(run: GpuRun, process_bytes: Option<u64>, pool_reserved_bytes: Option<u64>) -> Self {
        let overhead_bytes = process_bytes.zip(pool_reserved_bytes).and_then(|(p, r)| p.checked_sub(r));
        GpuMeasured { run, process_bytes, pool_reserved_bytes, overhead_bytes }
    }
}

/// What a run on a GPU adds to the header: the device, and NVML's figures at the end of the
/// run with the CUDA context and library overhead apart from the tensors' pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuMeasured {
    /// The device, the driver, clocks and the context's bytes before any tensor.
    #[serde(flatten)]
    pub run: GpuRun,
    /// NVML's bytes for this process at the end of the run.
    pub process_bytes: Option<u64>,
    /// Bytes the default memory pool holds from the driver at the end (tensors and free blocks).
    pub pool_reserved_bytes: Option<u64>,
    /// `process_bytes − pool_reserved_bytes`: the CUDA context, loaded modules (PTX) and library
    /// workspaces (cuBLAS), i.e. what is not the tensors' pool.
    pub overhead_bytes: Option<u64>,
}

/// Machine, settings and whole-pass results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureInfo {
    /// `cpu`.
    pub device: String,
    /// CPU model (/proc/cpuinfo `model name`).
    pub cpu_model: String,
    /// Threads candle's CPU kernels use.
    pub threads: usize,
    /// `inference` or `train`.
    pub mode: String,
    /// Optimizer with `--train`.
    pub optimizer: Option<String>,
    /// Untimed warm-up passes.
    pub warmup: u32,
    /// Timed passes.
    pub iters: u32,
    /// Weight seed.
    pub seed: u64,
    /// Whole forward pass (inference) or whole training step.
    pub pass: Timing,
    /// 2 · total MACs / median pass time, in GFLOP/s (forward MACs only).
    pub gflops_per_s: f64,
    /// Parameters found in candle's VarMap (equal to the analysis, or measure stopped).
    pub params_built: u64,
    /// Whether timings are fixed fake values (the hidden deterministic mode for tests).
    pub fake_timings: bool,
    /// Whether the counting allocator was installed (memory columns are absent otherwise).
    pub memory_counted: bool,
    /// Memory available before the run (/proc/meminfo MemAvailable), bytes.
    pub mem_available_bytes: Option<u64>,
    /// Predicted peak heap bytes of the run (candle model), checked against it.
    pub predicted_run_peak_bytes: u64,
    /// On a GPU (`--device cuda:N`): device, driver, clocks, NVML figures. Absent on the CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuMeasured>,
}

/// What is known about the GPU of a run before it starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GpuRun {
    /// `cuda:N`.
    pub device: String,
    /// Name from the CUDA driver (`NVIDIA H200`).
    pub name: String,
    /// Compute capability `major.minor`.
    pub compute_capability: String,
    /// Device memory, bytes.
    pub memory_total_bytes: u64,
    /// Device memory free before the run (`cuMemGetInfo`), bytes: the preflight's budget.
    pub memory_free_bytes: u64,
    /// What NVML said: `driver D (CUDA C)`, or `NVML unavailable: REASON`.
    pub nvml: String,
    /// NVML index of this device (matched by UUID), where NVML is available.
    #[serde(skip)]
    pub nvml_index: Option<u32>,
    /// SM clock now and its maximum, MHz (NVML).
    pub sm_clock_mhz: Option<u32>,
    /// Maximum SM clock, MHz (NVML).
    pub sm_clock_max_mhz: Option<u32>,
    /// Memory clock now, MHz (NVML).
    pub memory_clock_mhz: Option<u32>,
    /// NVML's figure for this process once the context exists, before any tensor: the CUDA
    /// context itself (and the modules loaded so far), bytes.
    pub context_bytes: Option<u64>,
}

/// Everything one `netstat measure` run found: machine and settings, one entry per layer (in
/// execution order, the order of the analysis' layers) and the stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Machine, settings, whole pass.
    pub info: MeasureInfo,
    /// One entry per layer, in execution order.
    pub layers: Vec<MeasuredLayer>,
    /// Live bytes after each stage (input, weights, …, optimizer step).
    pub stages: Vec<Stage>,
}
