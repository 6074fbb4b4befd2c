//! Data parallelism with ZeRO: what one of `N` data-parallel devices holds of the weights,
//! gradients and optimizer state (Rajbhandari, Rasley, Ruwase, He 2020, "ZeRO: Memory
//! Optimizations Toward Training Trillion Parameter Models", §5, Figure 1).
//!
//! Every device runs the whole model on its own micro-batch (the spec's batch), so its
//! activations are those of one device at that batch. What ZeRO shards over the `N` devices:
//!
//! | stage | sharded (each device keeps `⌈x / N⌉` of the flat count) | paper's name |
//! |---|---|---|
//! | 0 | nothing (plain data parallelism: every device holds everything) | — |
//! | 1 | optimizer state and, under `--amp`, the fp32 master weights | P_os |
//! | 2 | + gradients | P_os+g |
//! | 3 | + parameters | P_os+g+p |
//!
//! The paper counts the fp32 master weights as optimizer state (§3.1, K = 12 bytes per
//! parameter for mixed-precision Adam), so stage 1 shards them too. Buffers (BatchNorm's running
//! statistics) are not sharded (DeepSpeed partitions parameters only). Shares are
//! `⌈x / N⌉` of the flat element count of all (trainable) parameters, the paper's `Ψ / N_d`
//! rounded up; DeepSpeed's padding of each partition for alignment is not modelled.
//!
//! **Transients** (they count in a stage's peak, not in the live bytes after it), one layer
//! at a time — the paper's rule (§5.3: "the parameters … are broadcast … and discarded after the
//! forward"), without DeepSpeed's prefetch (`stage3_prefetch_bucket_size`) or its reduce
//! buckets (`reduce_bucket_size`), which are tuning knobs, not part of the method:
//! - stage 3: a layer's forward and its backward each all-gather the layer's whole parameters
//!   (in the weight dtype; a `shares:` layer gathers its owner's) into a buffer freed when the
//!   layer is done;
//! - stages 2 and 3: a layer's backward produces its whole parameter gradient, reduce-scatters
//!   it into this device's gradient partition and frees it. The partition (`⌈G / N⌉`) is
//!   allocated whole when backward starts (DeepSpeed stage 3 preallocates it as one flat buffer,
//!   `grad_partitions_flat_buffer`).
//! - Under ZeRO the optimizer steps one flat partition per device: a fused Adam keeps one `step`
//!   counter (4 B), `--adam-impl foreach` one temporary copy of the partition, `per-tensor` two.
//!
//! With `N` = 1 nothing is sharded and nothing is gathered: every stage is plain training.

use serde::Serialize;

/// Data parallelism over `devices` devices with a ZeRO stage (`--data-parallel N --zero S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataParallel {
    /// Data-parallel devices `N` (1: none). The spec's batch is each device's micro-batch; the
    /// global batch is `N` × batch.
    pub devices: u64,
    /// ZeRO stage, 0 to 3 (0: plain data parallelism, nothing sharded).
    pub zero_stage: u8,
}

impl DataParallel {
    /// One device, nothing sharded.
    pub const NONE: DataParallel = DataParallel { devices: 1, zero_stage: 0 };

    /// `N` devices at ZeRO stage `zero_stage`.
    ///
    /// Errors: `devices` = 0; a stage above 3; a ZeRO stage without at least 2 devices.
    pub fn new(devices: u64, zero_stage: u8) -> Result<DataParallel, String> {
        if devices == 0 {
            return Err("--data-parallel: expected at least 1 device, got 0".into());
        }
        if zero_stage > 3 {
            return Err(format!("--zero: expected a stage from 0 to 3, got {zero_stage}"));
        }
        if zero_stage > 0 && devices < 2 {
            return Err(format!(
                "--zero {zero_stage} shards over data-parallel devices: give --data-parallel N with N ≥ 2"
            ));
        }
        Ok(DataParallel { devices, zero_stage })
    }

    /// Whether this is plain single-device training.
    pub fn is_none(&self) -> bool {
        self.devices == 1
    }

    /// Optimizer state and master weights sharded (stage ≥ 1 on ≥ 2 devices).
    pub fn shards_optimizer(&self) -> bool {
        self.devices > 1 && self.zero_stage >= 1
    }

    /// Gradients sharded (stage ≥ 2 on ≥ 2 devices).
    pub fn shards_gradients(&self) -> bool {
        self.devices > 1 && self.zero_stage >= 2
    }

    /// Parameters sharded and gathered layer by layer (stage 3 on ≥ 2 devices).
    pub fn shards_params(&self) -> bool {
        self.devices > 1 && self.zero_stage >= 3
    }

    /// This device's share of `elements`: `⌈elements / N⌉`.
    pub fn part(&self, elements: u64) -> u64 {
        elements.div_ceil(self.devices)
    }

    /// `ZeRO-3 × 8`-style words for headings: `data parallel ×8, ZeRO-3` (`None` for one
    /// device).
    pub fn describe(&self) -> Option<String> {
        (!self.is_none()).then(|| match self.zero_stage {
            0 => format!("data parallel ×{}", self.devices),
            s => format!("data parallel ×{}, ZeRO-{s}", self.devices),
        })
    }
}

impl Default for DataParallel {
    /// [`DataParallel::NONE`].
    fn default() -> Self {
        DataParallel::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_errors() {
        let z = |n, s| DataParallel::new(n, s).unwrap();
        assert!(!z(8, 0).shards_optimizer());
        assert!(z(8, 1).shards_optimizer() && !z(8, 1).shards_gradients());
        assert!(z(8, 2).shards_gradients() && !z(8, 2).shards_params());
        assert!(z(8, 3).shards_params());
        // 10 elements over 4 devices: ⌈10/4⌉ = 3 on the largest share.
        assert_eq!(z(4, 3).part(10), 3);
        assert_eq!(z(8, 3).describe().as_deref(), Some("data parallel ×8, ZeRO-3"));
        assert_eq!(DataParallel::NONE.describe(), None);
        assert!(DataParallel::new(1, 3).unwrap_err().contains("--data-parallel N"));
        assert!(DataParallel::new(0, 0).unwrap_err().contains("at least 1"));
        assert!(DataParallel::new(4, 4).unwrap_err().contains("0 to 3"));
    }

    use crate::memory::{model, Amp, Memory, Options, Phase};

    fn mlp(o: Options) -> Memory {
        let yaml =
            "name: mlp2\ninput: [1024]\nbatch: 8\nlayers:\n  - {name: fc1, kind: linear, out_features: 1024}\n  \
                    - {name: relu, kind: relu}\n  - {name: fc2, kind: linear, out_features: 10}\n";
        let spec = crate::spec::parse_bytes("mlp2.yaml", yaml.as_bytes()).unwrap();
        model(&crate::analysis::analyze(spec).unwrap(), &o).unwrap()
    }

    fn zero(devices: u64, stage: u8) -> Options {
        Options { data_parallel: DataParallel::new(devices, stage).unwrap(), ..Options::DEFAULT }
    }

    fn stage(m: &Memory, phase: Phase, name: &str) -> (u64, u64) {
        let s = m.timeline.iter().find(|s| s.phase == phase && s.name == name).unwrap();
        (s.live_bytes, s.peak_bytes)
    }

    // A 2-layer MLP, 1024 → 1024 → relu → 10, batch 8, f32, fused Adam, ZeRO-3 on 4 devices.
    // Params: fc1 1024·1024 + 1024 = 1,049,600; fc2 1024·10 + 10 = 10,250; Σ 1,059,850.
    // This device's partition: ⌈1,059,850 / 4⌉ = 264,963 params.
    //   weights   264,963 · 4 B = 1,059,852 B (inference holds all: 1,059,850 · 4 = 4,239,400 B)
    //   gradients 264,963 · 4 B = 1,059,852 B
    //   Adam      2 · 264,963 · 4 B + one step counter (one flat partition) 4 B = 2,119,708 B
    // The step (no loss: the caller holds the output and seeds backward with ones_like):
    //   data: input 8·1024·4 = 32,768; weights: + 1,059,852 = 1,092,620.
    //   fc1: out 32,768 → 1,125,388; peak + fc1 gathered 1,049,600·4 = 4,198,400 → 5,323,788.
    //   relu: out 32,768 (saved) → 1,158,156; fc1's output freed (read by relu only, saved by
    //     nobody: fc1 saves the data, relu its output) → 1,125,388.
    //   fc2: out 8·10·4 = 320 → 1,125,708; peak + gathered 10,250·4 = 41,000 → 1,166,708.
    //   saved activations: 1,125,708 − 32,768 − 1,059,852 = 33,088 (relu out + fc2 out).
    //   backward starts: seed 320 + gradient partition 1,059,852 → 2,185,880.
    //   fc2: gradient of relu's output 32,768 → 2,218,648; transient gathered 41,000 + whole
    //     fc2 gradient 41,000 → peak 2,300,648; the seed is held until backward returns.
    //   relu: gradient of fc1's output 32,768 → 2,251,416 (its peak); then relu's output
    //     gradient and its saved output go → 2,185,880.
    //   fc1: no gradient for the data; transient gathered 4,198,400 + whole gradient
    //     4,198,400 → peak 10,582,680 (the step's peak); fc1's output gradient freed and the
    //     seed released → 2,152,792 = data + weights + output 320 + gradient partition.
    //   step: + Adam 2,119,708 → 4,272,500.
    #[test]
    fn mlp_zero3_on_4_devices_by_hand() {
        let m = mlp(zero(4, 3));
        assert_eq!((m.param_bytes, m.gradient_bytes, m.optimizer_state_bytes), (1_059_852, 1_059_852, 2_119_708));
        assert_eq!(m.saved_activation_bytes, 33_088);
        assert_eq!(stage(&m, Phase::Forward, "fc1"), (1_125_388, 5_323_788));
        assert_eq!(stage(&m, Phase::Forward, "fc2"), (1_125_708, 1_166_708));
        assert_eq!(stage(&m, Phase::Backward, "fc2"), (2_218_648, 2_300_648));
        assert_eq!(stage(&m, Phase::Backward, "relu"), (2_185_880, 2_251_416));
        assert_eq!(stage(&m, Phase::Backward, "fc1"), (2_152_792, 10_582_680));
        assert_eq!((m.after_backward_bytes, m.after_step_bytes), (2_152_792, 4_272_500));
        assert_eq!((m.training_peak_bytes, m.training_peak_stage.as_str()), (10_582_680, "backward fc1"));
        // Inference is not sharded: input 32,768 + all weights 4,239,400 + fc1's and relu's
        // outputs 2 · 32,768 at relu = 4,337,704.
        assert_eq!(m.inference_peak_bytes, 4_337_704);

        // Stages 1 and 2 hold the whole parameters (4,239,400 B) and gather nothing.
        let one = mlp(zero(4, 1));
        assert_eq!((one.param_bytes, one.gradient_bytes, one.optimizer_state_bytes), (4_239_400, 4_239_400, 2_119_708));
        let two = mlp(zero(4, 2));
        assert_eq!((two.param_bytes, two.gradient_bytes, two.optimizer_state_bytes), (4_239_400, 1_059_852, 2_119_708));
        // Plain data parallelism is one device's plain training step.
        assert_eq!(mlp(zero(4, 0)).training_peak_bytes, mlp(Options::DEFAULT).training_peak_bytes);
    }

    // Llama-3-8B: 8,030,261,248 params (specs/llama-3-8b.yaml; transformers on the meta device,
    // tests/data/reference_counts.json), mixed precision bf16 with Adam, 8 data-parallel devices.
    // 8,030,261,248 / 8 = 1,003,782,656 params per partition (exact). Per device, in bytes:
    //   ZeRO-3: weights bf16 2 · 1,003,782,656 = 2,007,565,312; fp32 master 4 · … = 4,015,130,624;
    //     gradients bf16 2,007,565,312; Adam 2 · 4 · 1,003,782,656 + 4 = 8,030,261,252:
    //     16 B × 1,003,782,656 + 4 = 16,060,522,500, the paper's 16Ψ/N_d (§5, Figure 1).
    //   ZeRO-1: weights and gradients whole, 2 · 8,030,261,248 = 16,060,522,496 each.
    //   ZeRO-2: weights whole, gradients 2,007,565,312.
    #[test]
    fn llama_3_8b_zero_on_8_devices_by_hand() {
        let spec = crate::spec::load(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/llama-3-8b.yaml")).unwrap();
        let a = crate::analysis::analyze(spec).unwrap();
        assert_eq!(a.totals.params, 8_030_261_248);
        let o = |s| Options { amp: Some(Amp::Bf16), ..zero(8, s) };
        let z3 = model(&a, &o(3)).unwrap();
        assert_eq!(
            (z3.param_bytes, z3.master_weight_bytes, z3.gradient_bytes, z3.optimizer_state_bytes),
            (2_007_565_312, 4_015_130_624, 2_007_565_312, 8_030_261_252)
        );
        assert_eq!(z3.weight_bytes() + z3.gradient_bytes + z3.optimizer_state_bytes, 16_060_522_500);
        let z1 = model(&a, &o(1)).unwrap();
        assert_eq!(
            (z1.param_bytes, z1.master_weight_bytes, z1.gradient_bytes, z1.optimizer_state_bytes),
            (16_060_522_496, 4_015_130_624, 16_060_522_496, 8_030_261_252)
        );
        let z2 = model(&a, &o(2)).unwrap();
        assert_eq!((z2.param_bytes, z2.gradient_bytes), (16_060_522_496, 2_007_565_312));
        // Activations do not depend on the sharding.
        assert_eq!(z1.saved_activation_bytes, z3.saved_activation_bytes);
        assert!(z3.training_peak_bytes < z2.training_peak_bytes && z2.training_peak_bytes < z1.training_peak_bytes);
    }
}
