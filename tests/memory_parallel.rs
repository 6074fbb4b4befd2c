//! `netstat memory` with data parallelism (ZeRO) and activation checkpointing, run as a binary.
//! The figures are derived by hand in src/memory/parallel.rs and src/memory/checkpoint.rs.

use assert_cmd::Command;
use serde_json::Value;

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = netstat().args(args).arg("--format").arg("json").assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

const LLAMA: &str = "specs/llama-3-8b.yaml";

#[test]
fn llama_zero3_on_8_devices() {
    // 8,030,261,248 params / 8 = 1,003,782,656 per device: bf16 weights and gradients
    // 2,007,565,312 B each, fp32 master 4,015,130,624 B, Adam 2 · 4 · 1,003,782,656 + one
    // step counter 4 B = 8,030,261,252 B.
    let v = json(&["memory", LLAMA, "--amp", "bf16", "--data-parallel", "8", "--zero", "3"]);
    let m = &v["memory"];
    assert_eq!(m["data_parallel"]["devices"], 8);
    assert_eq!(m["data_parallel"]["zero_stage"], 3);
    assert_eq!(m["param_bytes"], 2_007_565_312u64);
    assert_eq!(m["master_weight_bytes"], 4_015_130_624u64);
    assert_eq!(m["gradient_bytes"], 2_007_565_312u64);
    assert_eq!(m["optimizer_state_bytes"], 8_030_261_252u64);
    let out = netstat()
        .args(["memory", LLAMA, "--amp", "bf16", "--data-parallel", "8", "--zero", "3"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("; data parallel ×8, ZeRO-3, per device"), "{text}");
    // One device without the flags: no `data_parallel` key.
    let plain = json(&["memory", "specs/mlp-seed.yaml"]);
    assert!(plain["memory"].get("data_parallel").is_none());
}

#[test]
fn zero_without_data_parallel_is_a_usage_error() {
    let out = netstat().args(["memory", LLAMA, "--zero", "3"]).assert().code(2).get_output().stderr.clone();
    let err = String::from_utf8(out).unwrap();
    assert!(err.contains("--data-parallel N with N ≥ 2"), "{err}");
    netstat().args(["memory", LLAMA, "--data-parallel", "8", "--zero", "4"]).assert().code(2);
    netstat().args(["memory", LLAMA, "--data-parallel", "0"]).assert().code(2);
}

#[test]
fn llama_checkpointing_every_decoder_layer() {
    let v = json(&["memory", LLAMA, "--amp", "bf16", "--checkpoint", "blocks"]);
    let c = &v["memory"]["checkpoint"];
    let units: Vec<&str> = c["units"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert_eq!(units.len(), 32);
    assert_eq!((units[0], units[31]), ("model.layers.0", "model.layers.31"));
    // Forward MACs at 128 tokens: 964,891,246,592 (tests/data/reference_counts.json); every
    // layer's backward runs (the embedding is trained): 2 × that.
    let fwd = 964_891_246_592u64;
    assert_eq!(c["forward_macs"], fwd);
    assert_eq!(c["backward_macs"], 2 * fwd);
    // The recompute is the decoder layers' forward again: the per-layer MACs of the report.
    let layers: u64 = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["name"].as_str().unwrap().starts_with("model.layers."))
        .map(|l| l["macs"].as_u64().unwrap())
        .sum();
    assert_eq!(c["recompute_macs"], layers);
    assert_eq!(c["training_macs"], 3 * fwd + layers);
    // What the forward leaves for backward shrinks to the decoder layers' inputs (and what
    // the layers outside them keep).
    let plain = json(&["memory", LLAMA, "--amp", "bf16"]);
    let (ck, no) = (
        v["memory"]["saved_activation_bytes"].as_u64().unwrap(),
        plain["memory"]["saved_activation_bytes"].as_u64().unwrap(),
    );
    assert!(ck < no / 4, "{ck} vs {no}");
    assert!(plain["memory"].get("checkpoint").is_none());
}

#[test]
fn fit_under_zero3_and_checkpointing() {
    // The largest per-device batch under 80 GB: it fits and the next does not (the sweep).
    let args = ["--amp", "bf16", "--data-parallel", "8", "--zero", "3", "--checkpoint", "blocks"];
    let budget = 80_000_000_000u64;
    let v = json(&[&["memory", LLAMA, "--fit", "80GB"][..], &args].concat());
    let b = v["memory"]["fit"]["batch"].as_u64().unwrap();
    assert!(b >= 1);
    let list = format!("{b},{}", b + 1);
    let s = json(&[&["memory", LLAMA, "--sweep-batch", &list][..], &args].concat());
    let peaks: Vec<u64> =
        s["memory"]["sweep"].as_array().unwrap().iter().map(|r| r["training_peak_bytes"].as_u64().unwrap()).collect();
    assert!(peaks[0] <= budget && peaks[1] > budget, "{peaks:?}");
}

#[test]
fn llama_tensor_parallel_8() {
    // Megatron over 8 devices: everything but the RMSNorm weights is split. Norm weights:
    // 4,096 · (2 · 32 + 1) = 266,240, whole on every device; the rest (8,030,261,248 −
    // 266,240) / 8 = 1,003,749,376; per device 1,004,015,616 params → bf16 2,008,031,232 B.
    // Adam: 2 · 4 · 1,004,015,616 + 4 B step counters for 291 parameter tensors (embedding,
    // 32 · (4 attention + 3 MLP + 2 norms), final norm, lm_head) = 8,032,126,092 B.
    let v = json(&["memory", LLAMA, "--amp", "bf16", "--tensor-parallel", "8"]);
    let m = &v["memory"];
    assert_eq!(m["tensor_parallel"], 8);
    assert_eq!(m["param_bytes"], 2_008_031_232u64);
    assert_eq!(m["gradient_bytes"], 2_008_031_232u64);
    assert_eq!(m["optimizer_state_bytes"], 8_032_126_092u64);
    // A split Megatron refuses is an error at the spec, naming the layer, exit 2.
    let out = netstat().args(["memory", LLAMA, "--tensor-parallel", "3"]).assert().code(2).get_output().stderr.clone();
    let err = String::from_utf8(out).unwrap();
    assert!(
        err.contains(
            "specs/llama-3-8b.yaml:14:9: layer #2 \"model.layers.0.self_attn\" (multi_head_attention): --tensor-parallel 3: heads 32 is not a multiple of 3"
        ),
        "{err}"
    );
    netstat().args(["memory", "specs/mixtral-8x7b.yaml", "--tensor-parallel", "2"]).assert().code(2);
}
