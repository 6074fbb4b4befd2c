//! Memory-model tests: every number derived by hand in a comment or cited.

use super::*;
use crate::analysis::analyze;
use crate::spec::parse_bytes;

const MIB: u64 = 1 << 20;

fn mem(yaml: &str, o: Options) -> Memory {
    model(&analyze(parse_bytes("t.yaml", yaml.as_bytes()).unwrap()).unwrap(), &o).unwrap()
}

fn file(path: &str, o: Options) -> Memory {
    let spec = crate::spec::load(&format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    model(&analyze(spec).unwrap(), &o).unwrap()
}

const SGD: Options = Options { optimizer: Optimizer::Sgd, amp: None, ..Options::DEFAULT };

fn stage(m: &Memory, phase: Phase, name: &str) -> (u64, u64) {
    let s = m.timeline.iter().find(|s| s.phase == phase && s.name == name).unwrap();
    (s.live_bytes, s.peak_bytes)
}

#[test]
fn conv_then_inplace_relu_adds_nothing() {
    // Conv2d(3→64, k3, p1) on 1×3×224×224 f32: output 64·224·224·4 = 12,845,056 B.
    let conv =
        "name: t\ninput: [3, 224, 224]\nlayers:\n  - {name: c, kind: conv2d, c_out: 64, kernel: 3, padding: 1}\n";
    let both = format!("{conv}  - {{name: r, kind: relu, inplace: true}}\n");
    let m = mem(&both, SGD);
    assert_eq!(m.activation_bytes, 12_845_056);
    // The in-place ReLU adds 0: the conv alone allocates the same.
    assert_eq!(mem(conv, SGD).activation_bytes, 12_845_056);
    // Training: conv saves its input (the data), relu saves its output = the conv's storage.
    assert_eq!(m.saved_activation_bytes, 12_845_056);
    // A ReLU that is not in place allocates a second 12,845,056 B (and saves it).
    let copy = format!("{conv}  - {{name: r, kind: relu}}\n");
    assert_eq!(mem(&copy, SGD).activation_bytes, 2 * 12_845_056);
}

#[test]
fn shared_linear_applied_100_times() {
    // One Linear(1024, 1024) with bias applied 100 times (shared weights) to 10240×1024 f32.
    // After forward: the input (saved by the 1st use) and the 99 intermediate outputs (each
    // saved by the next use) = 100 × 40 MiB, + the 40 MiB output, + weight 1024·1024·4 = 4 MiB
    // + bias 1024·4 = 4 KiB = 4044.00390625 MiB (issue 4) = 4,240,445,440 B.
    let mut y = String::from("name: t\ninput: [1024]\nbatch: 10240\nlayers:\n");
    y += "  - {name: fc0, kind: linear, out_features: 1024}\n";
    for i in 1..100 {
        y += &format!("  - {{name: fc{i}, kind: linear, out_features: 1024, shares: fc0}}\n");
    }
    let a = analyze(parse_bytes("t.yaml", y.as_bytes()).unwrap()).unwrap();
    assert_eq!(a.totals.params, 1024 * 1024 + 1024);
    let m = model(&a, &SGD).unwrap();
    assert_eq!(m.after_forward_bytes, 4_240_445_440);
    assert_eq!(m.after_forward_bytes as f64 / MIB as f64, 4044.00390625);
    // One gradient for the shared parameters (4 MiB + 4 KiB), not 100.
    assert_eq!(m.gradient_bytes, 4 * MIB + 4096);
    let last = m.timeline.last().unwrap();
    // After backward: input 40 MiB + weights + gradients (+ the output the caller holds, 40 MiB).
    assert_eq!(last.live_bytes, 40 * MIB + 2 * (4 * MIB + 4096) + 40 * MIB);
}

#[test]
fn shares_is_checked() {
    let y = "name: t\ninput: [8]\nlayers:\n  - {name: a, kind: linear, out_features: 8}\n  - {name: b, kind: linear, out_features: 4, shares: a}\n";
    let e = analyze(parse_bytes("t.yaml", y.as_bytes()).unwrap()).unwrap_err().to_string();
    // a: 8·8 + 8 = 72 params; b: 8·4 + 4 = 36.
    assert_eq!(
        e,
        "t.yaml:5:54: layer #1 \"b\" (linear): `shares`: expected the same parameter count as \"a\" (72), got 36"
    );
    let y = "name: t\ninput: [8]\nlayers:\n  - {name: a, kind: linear, out_features: 8}\n  - {name: b, kind: linear, out_features: 8, shares: x}\n";
    let e = analyze(parse_bytes("t.yaml", y.as_bytes()).unwrap()).unwrap_err().to_string();
    assert!(e.contains("`shares`: unknown layer \"x\""), "{e}");
}

#[test]
fn vgg16_cs231n_activations() {
    // cs231n "VGGNet in detail": input 224·224·3 = 150,528; conv64 224·224·64 = 3,211,264 ×2;
    // pool 802,816; conv128 1,605,632 ×2; pool 401,408; conv256 802,816 ×3; pool 200,704;
    // conv512 401,408 ×3; pool 100,352; conv512 100,352 ×3; pool 25,088; FC 4096 + 4096 + 1000.
    // Σ = 150,528 + 6,422,528 + 802,816 + 3,211,264 + 401,408 + 2,408,448 + 200,704
    //   + 1,204,224 + 100,352 + 301,056 + 25,088 + 9,192 = 15,237,608 values (58.13 MiB f32).
    // In-place ReLUs, flatten (a view) and inference dropout add 0.
    let m = file("specs/vgg16-cs231n.yaml", SGD);
    assert_eq!(m.input_bytes + m.activation_bytes, 15_237_608 * 4);
    assert_eq!(format!("{:.2}", (m.input_bytes + m.activation_bytes) as f64 / MIB as f64), "58.13");
}

#[test]
fn alexnet_adam_four_copies() {
    // specs/alexnet.yaml: 50,844,008 params · 4 B = 203,376,032 B each for weights, gradients,
    // Adam's first moment and its second moment; fused Adam adds a 4 B `step` counter per
    // parameter tensor: 8 layers × (weight, bias) = 16 · 4 = 64 B.
    let m = file("specs/alexnet.yaml", Options { optimizer: Optimizer::Adam, amp: None, ..Options::DEFAULT });
    assert_eq!(m.param_bytes, 203_376_032);
    assert_eq!(m.gradient_bytes, 203_376_032);
    assert_eq!(m.optimizer_state_bytes, 2 * 203_376_032 + 64);
    assert_eq!(m.master_weight_bytes, 0);
    // foreach: counters on the CPU, one full fp32 copy of the parameters during the step;
    // per-tensor: two copies of the largest tensor, fc1's weight 6,400·4,096 · 4 = 104,857,600 B.
    let f = Options { adam_impl: AdamImpl::Foreach, ..Options::DEFAULT };
    let m = file("specs/alexnet.yaml", f);
    assert_eq!((m.optimizer_state_bytes, m.optimizer_step_temp_bytes), (2 * 203_376_032, 203_376_032));
    assert_eq!(m.training_peak_bytes, m.after_step_bytes + 203_376_032);
    let m = file("specs/alexnet.yaml", Options { adam_impl: AdamImpl::PerTensor, ..f });
    assert_eq!((m.optimizer_state_bytes, m.optimizer_step_temp_bytes), (2 * 203_376_032, 2 * 104_857_600));
    // Momentum keeps one copy, SGD none.
    let m = file("specs/alexnet.yaml", Options { optimizer: Optimizer::Momentum, amp: None, ..Options::DEFAULT });
    assert_eq!(m.optimizer_state_bytes, 203_376_032);
    // --amp bf16: weights and gradients 2 B each (101,688,016), master weights 4 B, moments 4 B
    // (+ 64 B of counters).
    let m =
        file("specs/alexnet.yaml", Options { optimizer: Optimizer::Adam, amp: Some(Amp::Bf16), ..Options::DEFAULT });
    assert_eq!((m.param_bytes, m.gradient_bytes), (101_688_016, 101_688_016));
    assert_eq!((m.master_weight_bytes, m.optimizer_state_bytes), (203_376_032, 2 * 203_376_032 + 64));
}

#[test]
fn mlp_seed_timeline() {
    // specs/mlp-seed.yaml, SGD, f32. B = bytes; 1 MiB = 1,048,576.
    let m = file("specs/mlp-seed.yaml", SGD);
    let t: Vec<(Phase, &str, u64, u64)> =
        m.timeline.iter().map(|s| (s.phase, s.name.as_str(), s.live_bytes, s.peak_bytes)).collect();
    assert_eq!(
        t,
        vec![
            // X 1024·1024·4 = 4,194,304 + y 1024·8 = 8,192.
            (Phase::Data, "input + labels", 4_202_496, 4_202_496),
            // + W1, W2: 2·1024·1024·4 = 8,388,608.
            (Phase::Weights, "weights", 12_591_104, 12_591_104),
            // + h = 256·1024·4 = 1,048,576 (saved by fc2); fc1 saves its input, a view of X: 0.
            (Phase::Forward, "fc1", 13_639_680, 13_639_680),
            // + logits 1,048,576.
            (Phase::Forward, "fc2", 14_688_256, 14_688_256),
            // + log-probabilities 1,048,576 (saved) + loss 4 + total_weight 4 = 15,736,840 at
            // the peak; then the logits (saved by nobody) are freed: −1,048,576.
            (Phase::Loss, "loss", 14_688_264, 15_736_840),
            // + dloss 4 + dlogp 1,048,576 + dlogits 1,048,576 → 16,785,420; then dlogp, logp and
            // total_weight go; dloss (the seed) stays until backward returns:
            // 14,688,264 + 4 + 1,048,576 − 1,048,576 − 4 = 14,688,264.
            (Phase::Backward, "loss", 14_688_264, 16_785_420),
            // + dh 1,048,576 + dW2 4,194,304 → 19,931,144; then dlogits and h go (−2,097,152).
            (Phase::Backward, "fc2", 17_833_992, 19_931_144),
            // + dW1 4,194,304 (no gradient for the input) → 22,028,296 (PyTorch measured the
            // same, shared/reference/pytorch_memory.md); then dh and, backward done, dloss go.
            (Phase::Backward, "fc1", 20_979_716, 22_028_296),
            // SGD keeps no state: data 4,202,496 + weights 8,388,608 + gradients 8,388,608 + loss 4.
            (Phase::Optimizer, "step", 20_979_716, 20_979_716),
        ]
    );
    assert_eq!((m.training_peak_bytes, m.training_peak_stage.as_str()), (22_028_296, "backward fc1"));
    // Backward adds the 8 MiB of gradients the article shows.
    assert_eq!(m.gradient_bytes, 8 * MIB);
    // Inference: X 4 MiB + weights 8 MiB + h 1 MiB + logits 1 MiB = 14,680,064 B, reached at fc2.
    assert_eq!((m.inference_peak_bytes, m.inference_peak_layer.as_str()), (14_680_064, "fc2"));
    // Adam adds two fp32 copies of the 2,097,152 weights at the step: + 16,777,216, and one
    // 4 B step counter per weight tensor: + 8.
    let a = file("specs/mlp-seed.yaml", Options { optimizer: Optimizer::Adam, amp: None, ..Options::DEFAULT });
    assert_eq!(stage(&a, Phase::Optimizer, "step").0, 20_979_716 + 16_777_216 + 8);
}

#[test]
fn residual_branch_holds_its_input_until_the_add_reader() {
    // Inference liveness over a DAG: a (1×1024 f32 = 4 KiB) is read by b and by c; it lives until c.
    // Input 4,096 + weights (a: 1024·1024 + 1024, b and c: same) · 4 = 3 · 4,198,400 = 12,595,200.
    // At c: input + a + b + c = 4 · 4,096 → peak 12,595,200 + 16,384 = 12,611,584 at c.
    let y = "name: t\ninput: [1024]\nlayers:\n  - {name: a, kind: linear, out_features: 1024}\n  - {name: b, kind: linear, out_features: 1024}\n  - {name: c, kind: linear, out_features: 1024, inputs: [a]}\n";
    let m = mem(y, SGD);
    assert_eq!((m.inference_peak_bytes, m.inference_peak_layer.as_str()), (12_611_584, "c"));
}

#[test]
fn frozen_layers_get_no_gradient_and_save_nothing_upstream() {
    // fc1 frozen: no gradient, no state; relu after it needs no gradient, so saves nothing.
    // fc2 (1024→10, 10,250 params) trains: gradient 41,000 B, Adam 82,000 B + 2 step counters
    // (weight, bias) · 4 B = 82,008 B.
    let y = "name: t\ninput: [1024]\nlayers:\n  - {name: fc1, kind: linear, out_features: 1024, trainable: false}\n  - {name: r, kind: relu}\n  - {name: fc2, kind: linear, out_features: 10}\n";
    let m = mem(y, Options::default());
    assert_eq!((m.gradient_bytes, m.optimizer_state_bytes), (41_000, 82_008));
    // After forward: relu output (saved by fc2, 4,096 B) + output (40 B); fc1's output is freed.
    assert_eq!(m.saved_activation_bytes, 4_096 + 40);
}

#[test]
fn lora_trains_only_its_adapters() {
    // fc1 (1024→1024) with LoRA r = 8: base 1024·1024 + 1024 = 1,049,600 frozen, A 8·1024 + B
    // 1024·8 = 16,384 trained; fc2 (1024→10) frozen. Gradients 16,384 · 4 = 65,536 B; Adam
    // 2 · 65,536 + 2 step counters (A, B) · 4 B = 131,080 B. Weights: all 1,076,234 params · 4.
    let y = "name: t\ninput: [1024]\nlayers:\n  - {name: fc1, kind: linear, out_features: 1024, lora: {rank: 8}}\n  - {name: r, kind: relu}\n  - {name: fc2, kind: linear, out_features: 10, trainable: false}\n";
    let m = mem(y, Options::default());
    assert_eq!((m.gradient_bytes, m.optimizer_state_bytes), (65_536, 131_080));
    assert_eq!(m.param_bytes, (1_049_600 + 16_384 + 10_250) * 4);
    // Saved: fc1's x·Aᵀ (8 elements, 32 B; its input x is the network input, data), relu's
    // output (4,096 B, also kept by fc2, frozen but on the gradient path) and the output (40 B).
    assert_eq!(m.saved_activation_bytes, 32 + 4_096 + 40);
    // --amp bf16: fp32 master weights of the adapters only, 16,384 · 4 = 65,536 B; bf16
    // gradients 32,768 B.
    let amp = mem(y, Options { amp: Some(Amp::Bf16), ..Options::default() });
    assert_eq!((amp.master_weight_bytes, amp.gradient_bytes), (65_536, 32_768));
}

#[test]
fn dropout_and_max_pool_save_masks_and_indices() {
    // Dropout on 1×1000 f32 in training: output 4,000 B + bool mask 1,000 B; in inference 0.
    let y = "name: t\ninput: [1000]\nlayers:\n  - {name: fc, kind: linear, out_features: 1000, in_features: 1000}\n  - {name: d, kind: dropout}\n";
    let m = mem(y, SGD);
    // fc output 4,000 (saved by nobody after dropout? no: dropout saves only its mask, so fc's
    // output is freed) + dropout output 4,000 (the network output) + mask 1,000.
    assert_eq!(m.saved_activation_bytes, 4_000 + 1_000);
    assert_eq!(m.activation_bytes, 4_000);
    // max_pool2d k2 on 1×1×4×4 after a 1×1 conv: pool saves the conv output (64 B) + 4 int64
    // indices (32 B); output 16 B.
    let y = "name: t\ninput: [1, 4, 4]\nlayers:\n  - {name: c, kind: conv2d, c_out: 1, kernel: 1}\n  - {name: p, kind: max_pool2d, kernel: 2}\n";
    assert_eq!(mem(y, SGD).saved_activation_bytes, 64 + 32 + 16);
}

#[test]
fn fit_agrees_with_the_sweep() {
    // AlexNet, Adam, f32, 3 GiB (the seed's GTX 580 has 3 GB): the reported batch fits and
    // batch + 1 does not.
    let spec = crate::spec::load(&format!("{}/specs/alexnet.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let o = Options::default();
    let budget = 3 << 30;
    let m = fit(&spec, budget, &o).unwrap().unwrap();
    assert!(m.training_peak_bytes <= budget);
    assert!(at_batch(&spec, m.batch + 1, &o).unwrap().training_peak_bytes > budget);
    assert_eq!(at_batch(&spec, m.batch, &o).unwrap(), m);
    // Nothing fits in 1 MiB (the weights alone are 194 MiB).
    assert_eq!(fit(&spec, 1 << 20, &o).unwrap(), None);
    // With a resident dataset the search stops at its rows: mlp-seed fits all 1024 in 1 GiB.
    let seed = crate::spec::load(&format!("{}/specs/mlp-seed.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(fit(&seed, 1 << 30, &o).unwrap().unwrap().batch, 1024);
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("3GiB"), Ok(3 << 30));
    assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
    assert_eq!(parse_size("3000000000"), Ok(3_000_000_000));
    assert_eq!(parse_size("1.5 GiB"), Ok(1_610_612_736));
    assert_eq!(parse_size("512mib"), Ok(512 << 20));
    assert!(parse_size("3 parsecs").unwrap_err().contains("unknown unit"));
    assert!(parse_size("GiB").is_err());
    assert!(parse_size("20000000000TiB").unwrap_err().contains("overflows"));
}

#[test]
fn peer_conventions_on_vgg16() {
    // reference README, "Memory figures published by peers" (VGG-16, 1×3×224×224, f32):
    // torchinfo 2 × (conv outputs 13,547,520 + FC 9,192 values) · 4 B = 108,453,696 B = 108.45 MB;
    // torchsummary 2 × (convs 13,547,520 + ReLUs 13,547,520 + pools 1,530,368 + FC 9,192
    //   + ReLU 8,192 + dropout 8,192 = 28,650,984 values) · 4 B = 229,207,872 B = 218.59 MiB;
    // convnet-burden 15,237,608 values · 4 B = 60,950,432 B ≈ 58 MiB.
    let spec = crate::spec::load(&format!("{}/specs/vgg16-cs231n.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let c = conventions(&analyze(spec).unwrap()).unwrap();
    assert_eq!(c.torchinfo_forward_backward_bytes, 108_453_696);
    assert_eq!(c.torchsummary_forward_backward_bytes, 229_207_872);
    assert_eq!(format!("{:.2}", c.torchsummary_forward_backward_bytes as f64 / MIB as f64), "218.59");
    assert_eq!(c.convnet_burden_feature_bytes, 60_950_432);
}

#[test]
fn residual_add_holds_its_input_until_the_add() {
    // a: Linear(1024→1024), b: Linear(1024→4096), c: Linear(4096→1024), s = a + c; batch 1, f32.
    // Weights: 1,049,600 + 4,198,400 + 4,195,328 = 9,443,328 params · 4 = 37,773,312 B.
    // At c: input 4,096 + a 4,096 (held for the add) + b 16,384 + c 4,096 = 28,672 B live → the
    // peak 37,801,984 B; at s: input + a + c + s = 16,384 B (b freed after c).
    let y = "name: t\ninput: [1024]\nlayers:\n  - {name: a, kind: linear, out_features: 1024}\n  - {name: b, kind: linear, out_features: 4096}\n  - {name: c, kind: linear, out_features: 1024}\n  - {name: s, kind: add, inputs: [a, c]}\n";
    let m = mem(y, SGD);
    assert_eq!((m.inference_peak_bytes, m.inference_peak_layer.as_str()), (37_801_984, "c"));
    // Without the residual a is freed after b: the peak at c is 4,096 B lower.
    let chain = y.replace("inputs: [a, c]", "inputs: [c, c]");
    assert_eq!(mem(&chain, SGD).inference_peak_bytes, 37_801_984 - 4_096);
    // Training: add saves nothing, so after forward only a (saved by b), b (saved by c) and the
    // output s (held by the caller) remain; c is freed after the add: 4,096 + 16,384 + 4,096.
    assert_eq!(m.saved_activation_bytes, 4_096 + 16_384 + 4_096);
}

#[test]
fn tied_embedding_head_has_one_gradient() {
    // Embedding(1000, 64) = 64,000 params, head Linear(64→1000, no bias) tied to it.
    // Gradients: one table, 64,000 · 4 = 256,000 B; Adam: 2 · 256,000 + one step counter (the
    // head has no tensor of its own) 4 = 512,004.
    let y = "name: t\ninput: {shape: [10], dtype: i64}\nlayers:\n  - {name: wte, kind: embedding, num_embeddings: 1000, embedding_dim: 64}\n  - {name: head, kind: linear, out_features: 1000, bias: false, tied_to: wte}\n";
    let m = mem(y, Options::default());
    assert_eq!((m.gradient_bytes, m.optimizer_state_bytes), (256_000, 512_004));
    // The head's backward allocates wte's gradient (256,000 B) and dx (10·64·4 = 2,560 B);
    // the embedding's own contribution is then a 256,000 B transient added in place.
    let (live_head, _) = stage(&m, Phase::Backward, "head");
    let (live_wte, peak_wte) = stage(&m, Phase::Backward, "wte");
    assert_eq!(peak_wte, live_head + 256_000);
    // After: dx (2,560) is freed, and, backward done, the seed: the 10×1000 output's gradient
    // (`ones_like(out)`, 40,000 B), held by the caller through backward.
    assert_eq!(live_wte, live_head - 2_560 - 40_000);
}

#[test]
fn zoo_invariants_and_published_gradients() {
    // Gradients = trainable params · 4 B (f32), tied and shared weights once: GPT-2 124,439,808
    // params (lm_head tied to wte) → 497,759,232 B; ViT-B/16 86,567,656 → 346,270,624 B;
    // ResNet-50 25,557,032 → 102,228,128 B, plus 53,120 BN buffer values → 212,480 B
    // (reference README table and BatchNorm note) and 53 BN layers' int64 `num_batches_tracked`
    // 53 · 8 = 424 B → 212,904 B.
    let g = file("specs/gpt2.yaml", Options::default());
    assert_eq!(g.gradient_bytes, 497_759_232);
    assert_eq!(file("specs/vit_b_16.yaml", Options::default()).gradient_bytes, 346_270_624);
    let r = file("specs/resnet50.yaml", Options::default());
    assert_eq!((r.gradient_bytes, r.buffer_bytes), (102_228_128, 212_904));
    // Invariants on every spec: the step ends with data + weights + gradients + state (+ the
    // loss scalar or the held output); peaks bound what they contain.
    let dir = format!("{}/specs", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let spec = crate::spec::load(p.to_str().unwrap()).unwrap();
        for o in [SGD, Options { optimizer: Optimizer::Adamw, amp: Some(Amp::Fp16), ..Options::DEFAULT }] {
            let m = model(&analyze(spec.clone()).unwrap(), &o).unwrap();
            let base = m.input_bytes + m.label_bytes + m.weight_bytes();
            let end = m.timeline.last().unwrap().live_bytes;
            assert!(end >= base + m.gradient_bytes + m.optimizer_state_bytes, "{p:?}");
            assert!(m.training_peak_bytes >= end && m.training_peak_bytes >= m.after_forward_bytes, "{p:?}");
            assert!(m.backward_peak_bytes >= base + m.gradient_bytes, "{p:?}");
            assert!(m.inference_peak_bytes >= m.input_bytes + m.param_bytes, "{p:?}");
            assert_eq!(m.after_forward_bytes, base + m.saved_activation_bytes, "{p:?}");
        }
        n += 1;
    }
    assert!(n >= 10, "only {n} specs");
}

#[test]
fn inplace_relu6_saves_a_copy_and_zero_dropout_is_nothing() {
    // batch 1, 1024 f32 features: every activation below is 1024 · 4 = 4,096 B.
    let base = "name: t\ninput: [1024]\nlayers:\n  - {name: fc1, kind: linear, out_features: 1024, bias: false}\n";
    let tail = "  - {name: fc2, kind: linear, out_features: 1024, bias: false}\n";
    let inplace = format!("{base}  - {{name: r, kind: relu6, inplace: true}}\n{tail}");
    let m = mem(&inplace, SGD);
    // Inference: fc1's output (relu6 writes into it) and fc2's: 8,192 B.
    assert_eq!(m.activation_bytes, 8_192);
    // Training: relu6 saves a copy of its input (4,096, PyTorch's hardtanh_), fc2 saves its input
    // (fc1's storage, 4,096), the output is held (4,096) = 12,288 B.
    assert_eq!(m.saved_activation_bytes, 12_288);
    // A dropout with p = 0 is the identity: no output, no mask, the same step byte for byte
    // (only its timeline rows are added).
    let zero =
        format!("{base}  - {{name: r, kind: relu6, inplace: true}}\n  - {{name: d, kind: dropout, p: 0.0}}\n{tail}");
    let z = mem(&zero, SGD);
    let figures =
        |m: &Memory| (m.activation_bytes, m.saved_activation_bytes, m.backward_peak_bytes, m.training_peak_bytes);
    assert_eq!(figures(&z), figures(&m));
    // p = 0.5: a new output (4,096, now what fc2 saves, so fc1's storage is freed after the
    // dropout reads it) and a 1-byte mask per element (1,024): copy 4,096 + dropout output
    // 4,096 + mask 1,024 + output 4,096 = 13,312 B.
    let half = zero.replace("p: 0.0", "p: 0.5");
    assert_eq!(mem(&half, SGD).saved_activation_bytes, 13_312);
}

#[test]
fn eager_references_hold_a_blocks_input_until_the_block_ends() {
    // stem 1024→1024, block b: b.fc1 1024→4096, b.fc2 4096→1024; batch 1, f32, no bias.
    // Outputs 4,096, 16,384 and 4,096 B. Freed after their last reader, the most live beside
    // input and weights is at b.fc1 (stem 4,096 + b.fc1 16,384) or b.fc2 (16,384 + 4,096):
    // 20,480 B. Held as eager PyTorch holds them, the stem's output (block b's input) lives
    // until b.fc2: 4,096 + 16,384 + 4,096 = 24,576 B at b.fc2.
    let y = "name: t\ninput: [1024]\nlayers:\n  - {name: stem, kind: linear, out_features: 1024, bias: false}\n  - {name: b.fc1, kind: linear, out_features: 4096, bias: false}\n  - {name: b.fc2, kind: linear, out_features: 1024, bias: false}\n";
    let base = 4_096 + (1024 * 1024 + 1024 * 4096 + 4096 * 1024) * 4; // input + weights
    let freed = mem(y, SGD);
    assert_eq!(freed.inference_peak_bytes, base + 20_480);
    let eager = mem(y, Options { eager_references: true, ..SGD });
    assert_eq!((eager.inference_peak_bytes, eager.inference_peak_layer.as_str()), (base + 24_576, "b.fc2"));
    // Training is unchanged by the option (the inference peak only).
    assert_eq!(eager.training_peak_bytes, freed.training_peak_bytes);
}

#[test]
fn inplace_add_writes_into_its_first_input() {
    // x → fc (1024→1024) → add(fc, input): a new 4,096 B output, or none in place.
    let y = "name: t\ninput: [1024]\nlayers:\n  - {name: fc, kind: linear, out_features: 1024, bias: false}\n  - {name: add, kind: add, inputs: [fc, input]}\n";
    assert_eq!(mem(y, SGD).activation_bytes, 8_192);
    let inplace = y.replace("inputs: [fc, input]", "inputs: [fc, input], inplace: true");
    assert_eq!(mem(&inplace, SGD).activation_bytes, 4_096);
}

#[test]
fn num_batches_tracked_is_a_buffer() {
    // BatchNorm2d(64) on 1×64×8×8: running mean and var 2·64·4 = 512 B + num_batches_tracked 8 B.
    let y = "name: t\ninput: [64, 8, 8]\nlayers:\n  - {name: bn, kind: batch_norm2d}\n";
    assert_eq!(mem(y, SGD).buffer_bytes, 520);
    let off = y.replace("batch_norm2d}", "batch_norm2d, track_running_stats: false}");
    assert_eq!(mem(&off, SGD).buffer_bytes, 0);
}

#[test]
fn the_inference_timeline_is_the_walk_of_the_inference_peak() {
    // Same walk, two readings: the largest row peak is `inference_peak_bytes`, reached at
    // `inference_peak_layer`; the weights row is input + params + buffers. Every spec of the
    // zoo, with and without eager references and split over devices.
    for path in ["specs/resnet18.yaml", "specs/mobilenet_v2.yaml", "specs/vit_b_16.yaml", "specs/mlp-seed.yaml"] {
        let spec = crate::spec::load(&format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let a = analyze(spec).unwrap();
        for o in [
            Options::DEFAULT,
            Options { eager_references: true, ..Options::DEFAULT },
            Options { devices: 2, ..Options::DEFAULT },
        ] {
            let m = model(&a, &o).unwrap();
            let t = inference_timeline(&a, &o).unwrap();
            assert_eq!(t.len(), a.layers.len() + 2, "{path}");
            assert_eq!((t[0].phase, t[0].live_bytes), (Phase::Data, m.input_bytes), "{path}");
            assert_eq!(t[1].live_bytes, m.input_bytes + m.param_bytes + m.buffer_bytes, "{path}");
            let most = t.iter().map(|r| r.peak_bytes).max().unwrap();
            assert_eq!(most, m.inference_peak_bytes, "{path} {o:?}");
            // The first row to reach it (repeated blocks tie).
            let top = t.iter().find(|r| r.peak_bytes == most).unwrap();
            assert_eq!(top.name, m.inference_peak_layer, "{path} {o:?}");
            for (r, l) in t[2..].iter().zip(&a.layers) {
                assert_eq!(r.name, a.spec.layers[l.index].id.name);
                assert!(r.live_bytes <= r.peak_bytes);
            }
        }
    }
}

mod fit_property {
    use super::*;
    use proptest::prelude::*;

    /// A small random MLP: `dims` hidden widths, each linear followed by a relu (in place or
    /// not) or a dropout, with a cross-entropy loss or none, `rows` dataset rows or none.
    fn spec(input: u64, dims: &[(u64, u8)], loss: bool, rows: Option<u64>) -> crate::spec::Spec {
        let mut y = format!("name: p\ninput: [{input}]\n");
        if let Some(r) = rows {
            y += &format!("dataset: {{rows: {r}}}\n");
        }
        if loss {
            y += "loss: {kind: cross_entropy}\n";
        }
        y += "layers:\n";
        for (i, &(d, act)) in dims.iter().enumerate() {
            y += &format!("  - {{name: fc{i}, kind: linear, out_features: {d}}}\n");
            y += &match act {
                0 => format!("  - {{name: a{i}, kind: relu}}\n"),
                1 => format!("  - {{name: a{i}, kind: relu, inplace: true}}\n"),
                _ => format!("  - {{name: a{i}, kind: dropout, p: 0.5}}\n"),
            };
        }
        parse_bytes("p.yaml", y.as_bytes()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        /// The affine fit returns exactly what the binary search returns (the search is kept
        /// as the fallback and as this test's reference), on every optimizer, with mixed
        /// precision, a device split (whose rounding is not affine: the fallback) and a
        /// dataset cap, for budgets from below batch 1's peak to far above it.
        #[test]
        fn the_affine_fit_equals_the_binary_search(
            input in 1u64..40,
            dims in proptest::collection::vec((1u64..40, 0u8..3), 1..5),
            loss: bool,
            rows in proptest::option::of(1u64..5000),
            opt in 0usize..4,
            amp: bool,
            devices in 1u64..4,
            scale in 0.5f64..5000.0,
        ) {
            let s = spec(input, &dims, loss, rows);
            let optimizer = [Optimizer::Sgd, Optimizer::Momentum, Optimizer::Adam, Optimizer::Adamw][opt];
            let o = Options { optimizer, amp: amp.then_some(Amp::Bf16), devices, ..Options::DEFAULT };
            let Ok(first) = at_batch(&s, 1, &o) else { return Ok(()) };
            let budget = (first.training_peak_bytes as f64 * scale) as u64;
            let got = fit(&s, budget, &o).unwrap();
            let cap = s.dataset_rows.unwrap_or(1 << 40);
            let want = (first.training_peak_bytes <= budget).then(|| search(&s, budget, &o, first, cap));
            prop_assert_eq!(got, want);
        }
    }
}
