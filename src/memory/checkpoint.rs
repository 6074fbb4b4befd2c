//! Activation checkpointing (gradient checkpointing) per block: which layers form a
//! checkpointed unit, and the compute it costs.
//!
//! A unit is one copy of a block instance: the instances marked `checkpoint: true` in the spec
//! ([`crate::spec::blocks::Origin::checkpoint`]), or with `--checkpoint blocks` every copy of a
//! top-level block instance (`model.layers.0` … `model.layers.31`; Hugging Face's
//! `gradient_checkpointing_enable()` checkpoints each decoder layer the same way). The memory
//! rule is [`super::schedule::Schedule::training_checkpointed`]: the forward of a unit keeps
//! only its inputs, and its backward first runs its forward again (PyTorch
//! `torch.utils.checkpoint`; Chen, Xu, Zhang, Guestrin 2016, "Training Deep Nets with Sublinear
//! Memory Cost", §3; Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
//! Transformer Models", §4: "full activation recomputation" stores only the input of each
//! transformer layer).
//!
//! **Compute.** Training MACs = forward + backward + recompute. Backward MACs are counted by
//! the usual convention, twice the forward MACs of every layer whose backward runs (the
//! gradients of its inputs and of its weights; Kaplan et al. 2020, "Scaling Laws for Neural
//! Language Models", §2.1: C ≈ 6N per token, 2N forward and 4N backward). The recompute adds
//! the forward MACs of every checkpointed unit once more. FLOPs = 2 · MACs.

use serde::Serialize;

/// Which layers are checkpointed (`--checkpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Checkpoint {
    /// The block instances the spec marks `checkpoint: true`.
    #[default]
    Spec,
    /// Every copy of every top-level block instance (`model.layers.0`, …).
    Blocks,
    /// None, whatever the spec says.
    None,
}

impl Checkpoint {
    /// The unit each layer of `spec` is checkpointed in, by layer (`None`: not checkpointed);
    /// empty when no layer is.
    pub fn units(self, spec: &crate::spec::Spec) -> Vec<Option<String>> {
        let units: Vec<Option<String>> = match self {
            Checkpoint::Spec => spec.layers.iter().map(|l| l.origin.checkpoint.clone()).collect(),
            Checkpoint::Blocks => spec.layers.iter().map(|l| l.origin.block_copy.clone()).collect(),
            Checkpoint::None => Vec::new(),
        };
        if units.iter().any(Option::is_some) {
            units
        } else {
            Vec::new()
        }
    }
}

/// The compute of one training step with activation checkpointing, MACs (FLOPs = 2 · MACs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recompute {
    /// The checkpointed units, in execution order.
    pub units: Vec<String>,
    /// Forward MACs of the whole network (the analysis total).
    pub forward_macs: u64,
    /// Backward MACs: 2 × the forward MACs of every layer whose backward runs.
    pub backward_macs: u64,
    /// The checkpointed units' forward MACs, run again in backward.
    pub recompute_macs: u64,
    /// forward + backward + recompute.
    pub training_macs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{model, Memory, Optimizer, Options, Phase};

    /// Two copies of a 64 → 256 → relu → 64 block, batch 4, f32; `mark` is written on both.
    fn two_blocks(mark: &str, o: Options) -> Memory {
        let yaml = format!(
            "name: ck\ninput: [64]\nbatch: 4\nblocks:\n  mlp:\n    layers:\n      \
             - {{name: fc1, kind: linear, out_features: 256}}\n      - {{name: act, kind: relu}}\n      \
             - {{name: fc2, kind: linear, out_features: 64}}\nlayers:\n  \
             - {{name: b0, block: mlp{mark}}}\n  - {{name: b1, block: mlp{mark}}}\n"
        );
        let spec = crate::spec::parse_bytes("ck.yaml", yaml.as_bytes()).unwrap();
        model(&crate::analysis::analyze(spec).unwrap(), &o).unwrap()
    }

    const SGD: Options = Options { optimizer: Optimizer::Sgd, ..Options::DEFAULT };

    fn stage(m: &Memory, phase: Phase, name: &str) -> (u64, u64) {
        let s = m.timeline.iter().find(|s| s.phase == phase && s.name == name).unwrap();
        (s.live_bytes, s.peak_bytes)
    }

    // Per block: fc1 64·256 + 256 = 16,640 params, fc2 256·64 + 64 = 16,448; weights
    // 2 · 33,088 · 4 = 264,704 B. Outputs (batch 4, f32): fc1 and act 4·256·4 = 4,096 B, fc2
    // 4·64·4 = 1,024 B; the input 1,024 B. No loss: the caller holds b1.fc2's output.
    // Without checkpointing the forward leaves for backward each act output (saved by act and
    // fc2) and b0.fc2's (saved by b1.fc1) and the output: 2 · 4,096 + 2 · 1,024 = 10,240 B.
    // With both blocks checkpointed: b0 keeps nothing (its input is the data), b1 keeps its
    // input b0.fc2 (1,024), plus the output 1,024 = 2,048 B; live after forward
    // 1,024 + 264,704 + 2,048 = 267,776.
    // Backward: the seed 1,024 → 268,800; b1 runs again: fc1 + 4,096 → 272,896, act + 4,096
    // → 276,992 (the replay's peak), fc1's output freed (no layer saves it) → 272,896, fc2
    // + 1,024 → 273,920, freed at once (nobody in b1 saves it) → 272,896: b1.act's output is
    // kept for act's and fc2's backward. Then b1.fc2: act's gradient 4,096 + fc2's weight
    // gradient 16,448·4 = 65,792 → 342,784; b1.act: + 4,096 (peak 346,880), its output's
    // gradient and its replayed output go → 338,688; b1.fc1: + 1,024 + 16,640·4 = 66,560
    // (peak 406,272), its output's gradient 4,096 and the held b0.fc2 output 1,024 go →
    // 401,152. b0 runs again: + 4,096, + 4,096 (peak 409,344), − 4,096, + 1,024 − 1,024 →
    // 405,248.
    // MACs: fc1 and fc2 4·64·256 = 65,536 each, 262,144 forward; every layer's backward runs:
    // 2 · 262,144 = 524,288; both blocks again: 262,144; training 1,048,576.
    #[test]
    fn two_checkpointed_blocks_by_hand() {
        let plain = two_blocks("", SGD);
        assert_eq!(plain.saved_activation_bytes, 10_240);
        assert!(plain.checkpoint.is_none());
        let m = two_blocks(", checkpoint: true", SGD);
        assert_eq!(m.saved_activation_bytes, 2_048);
        assert_eq!(m.after_forward_bytes, 267_776);
        assert_eq!(stage(&m, Phase::Recompute, "b1"), (272_896, 276_992));
        assert_eq!(stage(&m, Phase::Backward, "b1.fc2"), (342_784, 342_784));
        assert_eq!(stage(&m, Phase::Backward, "b1.act"), (338_688, 346_880));
        assert_eq!(stage(&m, Phase::Backward, "b1.fc1"), (401_152, 406_272));
        assert_eq!(stage(&m, Phase::Recompute, "b0"), (405_248, 409_344));
        // Gradients dominate the end of backward: the step's peak (b0.fc1's backward: every
        // weight gradient, data, weights and the output) is the same with or without.
        assert_eq!(m.after_backward_bytes, 1_024 + 264_704 + 264_704 + 1_024);
        assert_eq!(m.training_peak_bytes, plain.training_peak_bytes);
        let c = m.checkpoint.as_ref().unwrap();
        assert_eq!(c.units, ["b0", "b1"]);
        assert_eq!(
            (c.forward_macs, c.backward_macs, c.recompute_macs, c.training_macs),
            (262_144, 524_288, 262_144, 1_048_576)
        );
        // `--checkpoint blocks` on the unmarked spec is the marked spec; `none` turns marks off.
        assert_eq!(two_blocks("", Options { checkpoint: Checkpoint::Blocks, ..SGD }), m);
        assert_eq!(two_blocks(", checkpoint: true", Options { checkpoint: Checkpoint::None, ..SGD }), plain);
    }
}
