//! netstat's memory model against PyTorch itself: one training step of six networks measured
//! with torch 2.15.0 (tests/data/pytorch_memory.csv, the PyTorch column of
//! shared/reference/pytorch_memory.md, measured with torch 2.15.0), and of the tiny Llama
//! (specs/examples/tiny-llama.yaml) and the LSTM language model (specs/lstm-lm.yaml), measured by
//! scripts/pytorch_memory.py with the same method (torch 2.15.0, transformers 5.25.0, CPU).
//! Every figure must be within 0.5%; the inference peak is compared with `--eager-references`
//! (eager PyTorch holds each block's input until the block returns).

use assert_cmd::Command;
use serde_json::Value;
use std::collections::HashMap;

/// `netstat memory SPEC --batch B --optimizer OPT --timeline --format json [extra]`, SPEC
/// specs/NET.yaml or else specs/examples/NET.yaml.
fn memory(net: &str, batch: &str, optimizer: &str, extra: &[&str]) -> Value {
    let mut spec = format!("specs/{net}.yaml");
    if !std::path::Path::new(&spec).exists() {
        spec = format!("specs/examples/{net}.yaml");
    }
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["memory", &spec, "--batch", batch, "--optimizer", optimizer])
        .args(["--timeline", "--format", "json"])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice::<Value>(&out).unwrap()["memory"].clone()
}

/// netstat's figure named as the table names it.
fn figure(m: &Value, name: &str) -> u64 {
    let u = |k: &str| m[k].as_u64().unwrap_or_else(|| panic!("no {k}"));
    match name {
        "saved_activations" => u("saved_activation_bytes"),
        // The table's "after forward" is before the loss (its stage markers: forward, loss).
        "after_forward" => m["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|s| s["phase"] == "forward")
            .and_then(|s| s["live_bytes"].as_u64())
            .unwrap(),
        "backward_peak" => u("backward_peak_bytes"),
        "after_backward" => u("after_backward_bytes"),
        "after_optimizer" => u("after_step_bytes"),
        "training_peak" => u("training_peak_bytes"),
        "inference_peak" => u("inference_peak_bytes"),
        _ => panic!("unknown figure {name}"),
    }
}

/// Rows netstat's model does not reach within 0.5%, each explained in docs/memory.md ("The tiny
/// Llama and the LSTM language model"). None since the inference walk steps through the
/// forward ops of multi-op kinds and `--eager-references` holds what Hugging Face's frames hold
/// (the tiny Llama's inference peaks were −14.0% and −41.8%).
const KNOWN_GAPS: &[(&str, &str, &str)] = &[];

#[test]
fn eight_networks_within_half_a_percent_of_pytorch() {
    let table = include_str!("data/pytorch_memory.csv");
    let mut runs: HashMap<(String, String, bool), Value> = HashMap::new();
    let mut rows = 0;
    let (mut bad, mut gaps) = (Vec::new(), Vec::new());
    for line in table.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (net, batch, name, pytorch) = (f[0], f[1], f[2], f[4].parse::<u64>().unwrap());
        // The table's optimizer: sgd for mlp-seed (the seed article's), fused Adam for the rest.
        let optimizer = if net == "mlp-seed" { "sgd" } else { "adam" };
        let eager = name == "inference_peak";
        let m = runs
            .entry((net.into(), batch.into(), eager))
            .or_insert_with(|| memory(net, batch, optimizer, if eager { &["--eager-references"] } else { &[] }));
        let ours = figure(m, name);
        let err = (ours as f64 - pytorch as f64) / pytorch as f64;
        if err.abs() > 0.005 {
            let row = format!("{net} batch {batch} {name}: netstat {ours}, PyTorch {pytorch} ({:+.3}%)", err * 100.0);
            if KNOWN_GAPS.contains(&(net, batch, name)) {
                gaps.push((net, batch, name));
            } else {
                bad.push(row);
            }
        }
        rows += 1;
    }
    // 11 runs of the six networks × 7 figures, and tiny-llama and lstm-lm at batch 1 and 8.
    assert_eq!(rows, 77 + 28, "rows of tests/data/pytorch_memory.csv");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // Every known gap is still a gap: a closed one must leave the list (and docs/memory.md).
    assert_eq!(gaps, KNOWN_GAPS, "known gaps");
}

#[test]
fn tiny_llama_and_lstm_lm_saved_activations_to_the_byte() {
    // lstm-lm, batch 8 (N·T = 280 rows): the embedding's output 280·256·4 = 286,720 (kept by the
    // input projection, as a T×N-major copy); per LSTM layer 7 values of 8·512·4 = 16,384 B per
    // step, 7·35·16,384 = 4,014,080, two layers 8,028,160; layer 1's output 280·512·4 = 573,440
    // (layer 2's input) and layer 2's output, 573,440 (kept by the decoder); the logits held by the
    // caller 280·10,000·4 = 11,200,000 → 20,661,760, PyTorch's figure exactly.
    assert_eq!(figure(&memory("lstm-lm", "8", "adam", &[]), "saved_activations"), 20_661_760);
    // tiny-llama, batch 8 (rows N·L = 256; U = 256·64·4 = 65,536 B; probabilities P = 8·4·32·32·4
    // = 131,072; MLP values M = 256·128·4 = 131,072), per decoder layer: two RMSNorms, each rstd
    // 1,024 + x·rstd U + its output U; attention Q and K, V repeated to 4 heads 3·U, P, context U;
    // the residual add U twice; SwiGLU gate, silu, up, product 4·M:
    // 2·(1,024 + 2·U) + 4·U + P + 2·U + 4·M = 2,048 + 10·U + 5·131,072 = 1,312,768, two layers
    // 2,625,536; embedding U; final norm 1,024 + 2·U; rotary cos and sin once, 2·32·16·4 = 4,096;
    // logits 256·128·4 = 131,072 → 2,958,336. PyTorch: 2,958,352 (16 B more, not explained).
    assert_eq!(figure(&memory("tiny-llama", "8", "adam", &[]), "saved_activations"), 2_958_336);
}

#[test]
fn tiny_llama_inference_peak_by_hand() {
    // Batch 1, --eager-references: the peak is layer 1's gated MLP at the end of its product
    // silu(gate)·up (scripts/pytorch_memory.py `trace tiny-llama 1 infer`: PyTorch's peak is the
    // same op, 468,800 B, 320 B more: position ids and the rotary inv_freq buffer, not counted).
    // Data 32 ids · 8 = 256; weights 90,432 · 4 = 361,728; rotary cos/sin 2·32·16·4 = 4,096 and
    // the causal mask 32·32·4 = 4,096 (made once, held by the model's frame); the embedding's
    // output (inputs_embeds) 32·64·4 = 8,192, layer 1's input (its block's), the residual `add`
    // and the MLP's input (post_attention_layernorm) 8,192 each; layer 1's attention
    // probabilities 4·32·32·4 = 16,384 (bound by the decoder layer until it returns); silu(gate),
    // up and the product 3·32·128·4 = 49,152:
    // 256 + 361,728 + 2·4,096 + 4·8,192 + 16,384 + 49,152 = 468,480.
    let m = memory("tiny-llama", "1", "adam", &["--eager-references"]);
    assert_eq!(figure(&m, "inference_peak"), 468_480);
    assert_eq!(m["inference_peak_layer"], "model.layers.1.mlp");
    // Without eager references nothing outlives its last reader: the peak moves to layer 0's
    // attention at its scaled scores (PyTorch's trace has 452,424 B there, the same tensors and
    // the uncounted 320 B, plus an 8 B scalar). Data and weights 361,984; the embedding's output
    // (the residual `add` reads it) and input_layernorm's 8,192 each; cos/sin and the mask
    // 4,096 each; Q rotated 8,192, K rotated and V 4,096 each (the unrotated q, k dropped);
    // K and V repeated to 4 heads 8,192 each; the scores and the scaled scores 16,384 each:
    // 361,984 + 2·8,192 + 2·4,096 + 8,192 + 2·4,096 + 2·8,192 + 2·16,384 = 452,096.
    let m = memory("tiny-llama", "1", "adam", &[]);
    assert_eq!(figure(&m, "inference_peak"), 452_096);
    assert_eq!(m["inference_peak_layer"], "model.layers.0.self_attn");
}

#[test]
fn the_explained_gaps_are_closed_to_the_byte() {
    // Figures shared/reference/pytorch_memory.md explains to the byte, now equal.
    // mobilenet_v2, batch 1: saved activations 77,744,032 B (in-place ReLU6 saves a copy of its
    // input; the 1×1 adaptive pool saves nothing).
    assert_eq!(figure(&memory("mobilenet_v2", "1", "adam", &[]), "saved_activations"), 77_744_032);
    // vit_b_16, batch 8: saved activations 940,500,544 B (fused attention, dropout p = 0).
    assert_eq!(figure(&memory("vit_b_16", "8", "adam", &[]), "saved_activations"), 940_500_544);
    // resnet50, batch 8, eager references: inference peak 190,750,792 B.
    let m = memory("resnet50", "8", "adam", &["--eager-references"]);
    assert_eq!(figure(&m, "inference_peak"), 190_750_792);
    // alexnet, batch 1: backward peak 410,581,632 B (the 1,000-float seed held through
    // backward) and after the step 814,110,304 B (16 fused-Adam step counters, 64 B).
    let m = memory("alexnet", "1", "adam", &[]);
    assert_eq!((figure(&m, "backward_peak"), figure(&m, "after_optimizer")), (410_581_632, 814_110_304));
}

#[test]
fn per_tensor_adam_reproduces_the_measured_gap() {
    // shared/reference/pytorch_memory.md: against the CPU per-tensor Adam loop, the fused
    // model's alexnet training peak (814,110,304 B) is 20.5% low. netstat's per-tensor step
    // holds two temporaries of the largest tensor, fc1's weight 6,400·4,096·4 = 104,857,600 B,
    // over the state (counters on the CPU: −64 B): 814,110,304 − 64 + 209,715,200 = 1,023,825,440 B,
    // and 814,110,304 / 1,023,825,440 − 1 = −20.48% → −20.5%.
    let m = memory("alexnet", "1", "adam", &["--adam-impl", "per-tensor"]);
    assert_eq!(figure(&m, "training_peak"), 1_023_825_440);
    let gap = (814_110_304.0 / 1_023_825_440.0 - 1.0) * 100.0;
    assert_eq!(format!("{gap:.1}"), "-20.5");
    // foreach: one full copy of the 50,844,008 parameters, 203,376,032 B.
    let f = memory("alexnet", "1", "adam", &["--adam-impl", "foreach"]);
    assert_eq!(figure(&f, "training_peak"), 814_110_304 - 64 + 203_376_032);
}

#[test]
fn tiny_llama_backward_peaks_node_by_node() {
    // Batch 8 (U = 256·64·4 = 65,536 B per token-sized tensor; rstd 256·4 = 1,024 B), in
    // model.norm's backward, from 3,485,952 B live after lm_head's: γ's MulBackward0 makes
    // grad·γ and grad·x̂ (2U) and γ's gradient (256), frees grad·x̂, x̂ and the output's
    // gradient → 3,420,672; x·rstd's MulBackward0 makes the input's gradient, grad·x (U each)
    // and rstd's gradient (1,024), frees grad·x and grad·γ → 3,421,696; RsqrtBackward0 makes
    // three rstd-sized results and frees two, rstd's gradient and rstd → 3,420,672;
    // MeanBackward1 makes U and frees one → 3,485,184; PowBackward0 makes pow, mul and the
    // second input-gradient contribution (3U = 196,608): 3,681,792 B. PyTorch's trace:
    // 3,681,872 at the same PowBackward0 (80 B more: inv_freq 64 B and 16 B not explained).
    let m = memory("tiny-llama", "8", "adam", &[]);
    assert_eq!(figure(&m, "backward_peak"), 3_681_792);
    assert_eq!(m["backward_peak_layer"], "model.norm");
    // Batch 1: 833,792 B at layer 1's gated MLP (PyTorch 833,872, its MulBackward0).
    let m = memory("tiny-llama", "1", "adam", &[]);
    assert_eq!((figure(&m, "backward_peak"), m["backward_peak_layer"].as_str()), (833_792, Some("model.layers.1.mlp")));
}

#[test]
fn lstm_lm_backward_peak_at_the_second_step_of_layer_0() {
    // lstm-lm, batch 8: before the LSTM's backward 97,856,832 B live (netstat's timeline, the
    // decoder's row). Layer 1 (run first): the last step's gates' gradient comes and goes, W_hh's
    // and b_hh's gradients stay (4,194,304 + 8,192); the second step's two W_hh-sized
    // transients come and go; the input projection's W_ih and b_ih gradients stay (4,194,304 +
    // 8,192) and layer 0's output gradient (280·512·4 = 573,440) is made, while layer 1's saved
    // gates and states (7·35·8·512·4 = 4,014,080), its input (layer 0's output, 573,440) and the
    // LSTM output's gradient (573,440) go: 97,856,832 + 8,404,992 + 573,440 − 5,160,960 =
    // 101,674,304. Layer 0's last step adds W_hh and b_hh (4,202,496) → 105,876,800, and its
    // second step's transients 2·4,194,304 give the peak 114,265,408 B. PyTorch: 114,232,640
    // at the same TBackward0 add (+0.03%: netstat frees a layer's gates when the layer ends,
    // PyTorch one step's, 7·8·512·4 = 114,688 B, sooner, while it holds a few 16,384 B cell
    // gradients).
    let m = memory("lstm-lm", "8", "adam", &[]);
    assert_eq!((figure(&m, "backward_peak"), m["backward_peak_layer"].as_str()), (114_265_408, Some("lstm")));
}

#[test]
fn tiny_llama_every_multi_op_layer_peaks_with_pytorch() {
    // PyTorch's highest live total during each layer's backward, from
    // `python3 scripts/pytorch_memory.py trace tiny-llama B` (torch 2.15.0, transformers 5.25.0,
    // CPU; the ops between one RMSNorm's `PowBackward0` and the next, split at γ's gradient).
    // netstat's stage peaks are 64–80 B lower everywhere: the 64 B of transformers' rotary
    // `inv_freq` buffers, which netstat does not count, and the 16 B of saved activations not
    // explained (tiny_llama_and_lstm_lm_saved_activations_to_the_byte).
    let pytorch: [(&str, [u64; 2]); 9] = [
        ("model.norm", [809_296, 3_681_872]),
        ("model.layers.1.mlp", [833_872, 3_649_104]),
        ("model.layers.1.post_attention_layernorm", [817_744, 3_059_536]),
        ("model.layers.1.self_attn", [817_616, 2_943_824]),
        ("model.layers.1.input_layernorm", [793_288, 2_518_088]),
        ("model.layers.0.mlp", [817_736, 2_484_296]),
        ("model.layers.0.post_attention_layernorm", [801_608, 1_894_728]),
        ("model.layers.0.self_attn", [801_480, 1_779_016]),
        ("model.layers.0.input_layernorm", [773_056, 1_349_184]),
    ];
    for (b, batch) in ["1", "8"].into_iter().enumerate() {
        let m = memory("tiny-llama", batch, "adam", &[]);
        let stages = m["timeline"].as_array().unwrap();
        for (layer, want) in &pytorch {
            let st = stages.iter().find(|s| s["phase"] == "backward" && s["name"] == *layer).unwrap();
            let ours = st["peak_bytes"].as_u64().unwrap();
            let short = want[b] - ours;
            assert!((64..=80).contains(&short), "batch {batch} {layer}: netstat {ours}, PyTorch {}", want[b]);
        }
    }
}
