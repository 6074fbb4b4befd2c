//! LoRA adapters and KV-cache decoding (issue 14 items 2 and 3) on Llama-3-8B, against the
//! counts PyTorch, transformers and PEFT make themselves: scripts/lora_kv_reference.py (the
//! model built from meta-llama/Meta-Llama-3-8B's config.json on the meta device; PEFT 0.21
//! LoraConfig r = 16, α = 32 on q/k/v/o_proj; a DynamicCache after 8,191 tokens plus one decode
//! step), stored in tests/data/lora_kv_reference.json.

use assert_cmd::Command;
use netstat::analysis::{analyze, Analysis};
use netstat::memory::{self, Options};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string("tests/data/lora_kv_reference.json").unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["llama-3-8b"].clone()
}

/// specs/examples/llama-3-8b-lora.yaml: specs/llama-3-8b.yaml with LoRA r = 16, α = 32 on q, k,
/// v, o of every attention layer.
fn llama_lora() -> Analysis {
    analyze(netstat::spec::load("specs/examples/llama-3-8b-lora.yaml").unwrap()).unwrap()
}

#[test]
fn lora_llama_3_8b_matches_peft() {
    let r = reference();
    let a = llama_lora();
    let trainable: u64 = a.layers.iter().map(|l| l.trainable_params).sum();
    // PEFT print_trainable_parameters: trainable 13,631,488 of all 8,043,892,736
    // (= 8,030,261,248 base + 32 layers · 425,984 adapters).
    assert_eq!(trainable, r["lora"]["trainable_params"].as_u64().unwrap());
    assert_eq!(trainable, 13_631_488);
    assert_eq!(a.totals.params, r["lora"]["all_params"].as_u64().unwrap());
    // FlopCounterMode / 2 at 128 tokens: the base's 964,891,246,592 + 32 · 54,525,952.
    assert_eq!(a.totals.macs, r["lora"]["macs"].as_u64().unwrap());
    assert_eq!(a.totals.macs, 964_891_246_592 + 32 * 54_525_952);

    // Memory: gradients and Adam state for the adapters only. f32: 13,631,488 · 4 =
    // 54,525,952 B of gradients; Adam 2 · 54,525,952 = 109,051,904 B + fused step counters,
    // 4 B for each of the 32 · 8 = 256 adapter tensors (A and B of 4 targets): 109,052,928 B.
    let m = memory::model(&a, &Options::default()).unwrap();
    assert_eq!(m.gradient_bytes, 54_525_952);
    assert_eq!(m.optimizer_state_bytes, 109_052_928);
    assert_eq!(m.param_bytes, 8_043_892_736 * 4);
    // The report: every frozen base weight in frozen_params, the adapters trainable.
    let rep = netstat::report::Report::new(&a);
    assert_eq!(rep.totals.params - rep.totals.frozen_params, 13_631_488);
    assert_eq!(rep.totals.frozen_params, 8_030_261_248);
}

#[test]
fn kv_cache_of_llama_3_8b_at_8192_tokens_is_one_gib() {
    // Issue 14's held case: 2 · 32 layers · 8 kv heads · 128 · 8,192 tokens · batch 1 · 2 B (bf16)
    // = 1,073,741,824 B = 1 GiB; transformers' DynamicCache holds 536,870,912 elements.
    let r = reference();
    let mut s = netstat::spec::load("specs/llama-3-8b.yaml").unwrap();
    s.dtype = netstat::shape::DType::Bf16;
    let a = analyze(s).unwrap();
    let d = memory::decode::decode(&a, &Options::default(), None, Some(8192)).unwrap();
    assert_eq!(d.kv_cache_bytes, 1_073_741_824);
    assert_eq!(d.kv_cache_bytes, r["kv_cache"]["kv_cache_bytes_bf16"].as_u64().unwrap());
    assert_eq!(d.layers.len(), 32);
    // Per layer the step's q·Kᵀ and attn·V: 2 · 8,192 · 4,096 = 67,108,864 MACs.
    let per_layer = (8, 128, 8192, 33_554_432, 67_108_864);
    assert!(d.layers.iter().all(|l| {
        (l.kv_heads, l.head_dim, l.cached_tokens, l.kv_cache_bytes, l.decode_step_attention_macs) == per_layer
    }));
    // Prefill of the spec's 128 tokens: the analysis' MACs (FlopCounterMode's 964,891,246,592);
    // its cache 2 · 32 · 8 · 128 · 128 · 2 = 16,777,216 B.
    assert_eq!(d.prompt_tokens, 128);
    assert_eq!(d.prefill_macs, r["prefill_128_macs"].as_u64().unwrap());
    assert_eq!(d.prefill_kv_cache_bytes, 16_777_216);
    // Decode step at 8,192: per token, every weight but the embedding and the norms once:
    // 8,030,261,248 − 128,256 · 4,096 − 65 · 4,096 = 7,504,658,432 MACs, plus q·Kᵀ and attn·V
    // over 8,192 keys, 2 · 8,192 · 4,096 = 67,108,864 per layer, 2,147,483,648 in all:
    // 9,652,142,080, FlopCounterMode's count of transformers' step.
    assert_eq!(d.decode_step_attention_macs, 2_147_483_648);
    assert_eq!(d.decode_step_macs, 7_504_658_432 + 2_147_483_648);
    assert_eq!(d.decode_step_macs, r["kv_cache"]["decode_step_macs"].as_u64().unwrap());
    // Peaks: the bf16 weights (8,030,261,248 · 2 B) and the cache are the floor of each.
    let weights = 8_030_261_248u64 * 2;
    assert!(d.decode_step_peak_bytes > weights + d.kv_cache_bytes);
    assert!(d.prefill_peak_bytes > weights + d.prefill_kv_cache_bytes);
}

#[test]
fn kv_cache_cli_json_and_table() {
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["memory", "specs/llama-3-8b.yaml", "--context", "8192", "--dtype", "bf16", "-f", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let kv = &v["memory"]["kv_cache"];
    assert_eq!(kv["kv_cache_bytes"], 1_073_741_824u64);
    assert_eq!(kv["context_tokens"], 8192);
    assert_eq!(kv["layers"][31]["name"], "model.layers.31.self_attn");
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["memory", "specs/llama-3-8b.yaml", "--kv-cache", "--context", "8192", "--dtype", "bf16"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("total (32 layers)"), "{text}");
    assert!(text.contains("1,073,741,824  1.00 GiB   2,147,483,648"), "{text}");
    assert!(text.contains("decode step (context 8,192): 9,652,142,080 MACs"), "{text}");
}

#[test]
fn kv_cache_errors_are_usage_errors_at_the_layer() {
    // A context no longer than the prompt, and an encoder (no causal attention): exit 2.
    let a = Command::cargo_bin("netstat")
        .unwrap()
        .args(["memory", "specs/llama-3-8b.yaml", "--context", "128"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8(a).unwrap();
    assert!(e.contains("--context 128 must exceed the prompt (128 tokens)"), "{e}");
    let b = Command::cargo_bin("netstat")
        .unwrap()
        .args(["memory", "specs/bert-base.yaml", "--kv-cache"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8(b).unwrap();
    assert!(e.contains("a KV cache serves causal attention"), "{e}");
    // Split over devices the weights were one device's and the cache the whole model's (TinyLlama
    // at context 100,000, T = 4: "decode step peak 5.22 GiB" with 1.02 GiB of weights): refused.
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["memory", "specs/tinyllama-1.1b.yaml", "--kv-cache", "--context", "100000", "--tensor-parallel", "4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.contains("the KV cache split over devices (--tensor-parallel) is not modelled"), "{e}");
}

#[test]
fn kv_cache_csv_and_markdown() {
    // TinyLlama-1.1B (22 layers, 4 kv heads of 64), f32, default context = the 128-token prompt
    // + 1 = 129: 2 · 4 · 64 · 129 · 4 B = 264,192 B per layer, 22 · 264,192 = 5,812,224 B.
    let run = |args: &[&str]| {
        let out = Command::cargo_bin("netstat").unwrap().args(args).assert().success().get_output().stdout.clone();
        String::from_utf8(out).unwrap()
    };
    let csv = run(&["memory", "specs/tinyllama-1.1b.yaml", "--kv-cache", "-f", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "layer,kv_heads,head_dim,cached_tokens,kv_cache_bytes,decode_step_attention_macs");
    // Attention of the step: 2 · 129 keys · 2,048 (D) = 528,384 MACs per layer, 11,624,448 in all.
    assert_eq!(lines[1], "model.layers.0.self_attn,4,64,129,264192,528384");
    assert_eq!(lines.len(), 1 + 22 + 1);
    assert_eq!(lines[23], "total,,,,5812224,11624448");
    let md = run(&["memory", "specs/tinyllama-1.1b.yaml", "--prompt", "64", "--context", "2048", "-f", "markdown"]);
    // 2 · 4 · 64 · 2,048 · 4 B = 4,194,304 B = 4.00 MiB per layer.
    // Step attention 2 · 2,048 · 2,048 = 8,388,608 MACs per layer.
    assert!(md.contains("| model.layers.21.self_attn | 4 | 64 | 2,048 | 4,194,304 | 4.00 MiB | 8,388,608 |"), "{md}");
    assert!(md.contains("prefill of 64 tokens, decode step at context 2,048"), "{md}");
    // CSV holds one table.
    Command::cargo_bin("netstat")
        .unwrap()
        .args(["memory", "specs/tinyllama-1.1b.yaml", "--kv-cache", "--timeline", "-f", "csv"])
        .assert()
        .code(2);
}

#[test]
fn lora_saved_tensors_match_pytorch() {
    // PEFT LoRA r = 8 on fc1 of Linear(1024, 1024) → ReLU → Linear(1024, 10), batch 256, f32:
    // autograd saves x·Aᵀ (256 · 8 · 4 = 8,192 B) and the ReLU output (256 · 1024 · 4 =
    // 1,048,576 B) besides parameters and the input: 1,056,768 B (saved_tensors_hooks,
    // tests/data/lora_kv_reference.json). netstat's saved activations add the output (10,240 B),
    // which the caller holds. Trainable: 8 · 1024 + 1024 · 8 = 16,384.
    let text: Value =
        serde_json::from_str(&std::fs::read_to_string("tests/data/lora_kv_reference.json").unwrap()).unwrap();
    let r = &text["lora-mlp-saved"];
    let y = "name: t\ninput: [1024]\nbatch: 256\nlayers:\n  - {name: fc1, kind: linear, out_features: 1024, lora: {rank: 8, alpha: 8}}\n  - {name: relu, kind: relu}\n  - {name: fc2, kind: linear, out_features: 10, trainable: false}\n";
    let a = analyze(netstat::spec::parse_bytes("t.yaml", y.as_bytes()).unwrap()).unwrap();
    let m = memory::model(&a, &Options::default()).unwrap();
    let want = r["saved_bytes"].as_u64().unwrap() + r["output_bytes"].as_u64().unwrap();
    assert_eq!(m.saved_activation_bytes, want);
    assert_eq!(want, 8_192 + 1_048_576 + 10_240);
    let trainable: u64 = a.layers.iter().map(|l| l.trainable_params).sum();
    assert_eq!(trainable, r["trainable_params"].as_u64().unwrap());
}
