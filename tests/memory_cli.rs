//! `netstat memory` and the memory summary of the default report, run as a binary.

use assert_cmd::Command;
use serde_json::Value;

fn netstat() -> Command {
    Command::cargo_bin("netstat").unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = netstat().args(args).arg("--format").arg("json").assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn mlp_seed_timeline_in_json_keeps_the_report_fields() {
    let v = json(&["memory", "specs/mlp-seed.yaml", "--timeline", "--optimizer", "sgd"]);
    // The fields of the default report are all there.
    for k in ["netstat_version", "schema_version", "spec", "layers", "totals"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let m = &v["memory"];
    let live: Vec<u64> = m["timeline"].as_array().unwrap().iter().map(|s| s["live_bytes"].as_u64().unwrap()).collect();
    // Derived in src/memory/tests.rs (mlp_seed_timeline): data, weights, fc1, fc2, loss,
    // loss gradient, fc2 backward, fc1 backward, step.
    assert_eq!(
        live,
        vec![4_202_496, 12_591_104, 13_639_680, 14_688_256, 14_688_264, 14_688_264, 17_833_992, 20_979_716, 20_979_716]
    );
    assert_eq!(m["timeline"][0]["phase"], "data");
    // Backward adds 2 · 1024 · 1024 · 4 = 8,388,608 B of gradients.
    assert_eq!(m["gradient_bytes"], 8_388_608);
    assert_eq!(m["optimizer"], "sgd");
}

#[test]
fn default_report_carries_the_memory_summary() {
    // AlexNet f32 with Adam: weights = gradients = each moment = 50,844,008 · 4 = 203,376,032 B;
    // fused Adam's step counters: 16 parameter tensors · 4 B = 64 B.
    let v = json(&["specs/alexnet.yaml"]);
    let m = &v["memory"];
    assert_eq!(m["param_bytes"], 203_376_032);
    assert_eq!(m["gradient_bytes"], 203_376_032);
    assert_eq!(m["optimizer_state_bytes"], 2 * 203_376_032u64 + 64);
    assert!(m.get("timeline").is_none(), "the summary has no timeline");
    let out = netstat().arg("specs/alexnet.yaml").assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("memory: inference peak "), "{text}");
    assert!(text.contains("training step (adam, f32) peak"), "{text}");
}

#[test]
fn fit_agrees_with_the_sweep() {
    // The fitted batch's training peak is ≤ 3 GiB and batch + 1's is above it.
    let budget: u64 = 3 << 30;
    let v = json(&["memory", "specs/alexnet.yaml", "--fit", "3GiB"]);
    let b = v["memory"]["fit"]["batch"].as_u64().unwrap();
    assert_eq!(v["memory"]["fit"]["budget_bytes"], budget);
    let list = format!("{b},{}", b + 1);
    let s = json(&["memory", "specs/alexnet.yaml", "--sweep-batch", &list]);
    let rows = s["memory"]["sweep"].as_array().unwrap();
    assert!(rows[0]["training_peak_bytes"].as_u64().unwrap() <= budget);
    assert!(rows[1]["training_peak_bytes"].as_u64().unwrap() > budget);
    assert_eq!(rows[0]["training_peak_bytes"], v["memory"]["fit"]["training_peak_bytes"]);
}

#[test]
fn conventions_and_formats() {
    // VGG-16: torchinfo 108,453,696 B = 108.45 MB; torchsummary 229,207,872 B = 218.59 MiB
    // (derivations in src/memory/tests.rs, peer_conventions_on_vgg16).
    let out = netstat()
        .args(["memory", "specs/vgg16-cs231n.yaml", "--memory-convention", "torchinfo,torchsummary,convnet-burden"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("torchinfo F/B: 108.45 MB"), "{text}");
    assert!(text.contains("torchsummary F/B: 218.59 MiB"), "{text}");
    assert!(text.contains("convnet-burden features: 58.13 MiB"), "{text}");
    let csv = netstat()
        .args(["memory", "specs/mlp-seed.yaml", "--timeline", "--optimizer", "sgd", "--format", "csv"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("phase,name,live_bytes,peak_bytes\ndata,input + labels,4202496,4202496\n"), "{csv}");
    let md = netstat().args(["memory", "specs/mlp-seed.yaml", "--format", "markdown"]).assert().success();
    assert!(String::from_utf8_lossy(&md.get_output().stdout).contains("| `training_peak_bytes` |"));
}

#[test]
fn bad_input_exits_2_with_a_located_message() {
    netstat()
        .args(["memory", "specs/alexnet.yaml", "--fit", "3 parsecs"])
        .assert()
        .code(2)
        .stderr(predicates::str::starts_with("error: --fit: expected a size such as 3GiB"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("two.yaml");
    std::fs::write(
        &p,
        "name: t\ninput: [4]\nloss: {kind: cross_entropy}\nlayers:\n  - {name: a, kind: linear, out_features: 3}\n  - {name: b, kind: linear, out_features: 3, inputs: [input]}\n",
    )
    .unwrap();
    let path = p.to_str().unwrap();
    netstat()
        .args(["memory", path])
        .assert()
        .code(2)
        .stderr(format!("error: {path}:3:7: a loss needs exactly one network output, got 2 (a, b)\n"));
}

#[test]
fn output_file_is_written_whole_and_stdout_stays_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.json");
    netstat()
        .args(["memory", "specs/mlp-seed.yaml", "--format", "json", "-o", p.to_str().unwrap()])
        .assert()
        .success()
        .stdout("");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    // mlp-seed inference: X 4 MiB + weights 8 MiB + h 1 MiB + logits 1 MiB = 14,680,064 B.
    assert_eq!(v["memory"]["inference_peak_bytes"], 14_680_064);
    // A batch of 0 is refused by the argument parser (exit 2), nothing written.
    let q = dir.path().join("n.json");
    netstat().args(["memory", "specs/mlp-seed.yaml", "--sweep-batch", "0", "-o", q.to_str().unwrap()]).assert().code(2);
    assert!(!q.exists());
}

#[test]
fn fit_zero_is_a_usage_error() {
    // A 0-byte budget cannot hold any training step; it is refused like --batch 0.
    netstat()
        .args(["memory", "specs/alexnet.yaml", "--fit", "0"])
        .assert()
        .code(2)
        .stderr("error: --fit: expected a positive size, got \"0\"\n");
}

#[test]
fn fit_says_when_an_overflowing_count_not_the_budget_stopped_the_search() {
    // AlexNet has 1,009,945,728 MACs per sample (README), so total FLOPs = 2·MACs·batch overflow
    // u64 above batch floor((2^64 − 1) / 2,019,891,456) = 9,132,542,255, whose training peak is
    // about 37 PiB: far inside a 10^18-byte (888 PiB) budget. That batch is the answer, but the
    // output must say the search hit the analysis limit rather than the budget.
    let v = json(&["memory", "specs/alexnet.yaml", "--fit", "1000000TB"]);
    let f = &v["memory"]["fit"];
    assert_eq!(f["batch"], 9_132_542_255u64);
    assert!(f["training_peak_bytes"].as_u64().unwrap() < 1_000_000_000_000_000_000);
    assert!(f["limit"].as_str().unwrap().contains("FLOPs overflows u64"), "{f}");
    let out = netstat().args(["memory", "specs/alexnet.yaml", "--fit", "1000000TB"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("but batch 9132542256 cannot be analysed (total FLOPs overflows u64"), "{text}");
    // An ordinary budget stops at the budget: no limit field (3 GB is the README's example).
    let v = json(&["memory", "specs/alexnet.yaml", "--fit", "3GB"]);
    assert!(v["memory"]["fit"].get("limit").is_none(), "{}", v["memory"]["fit"]);
}

#[test]
fn hardware_fit_is_memory_fit() {
    // One meaning of --fit: the largest batch whose training peak fits. `--hardware gtx580 --fit`
    // (3 GiB = 3,221,225,472 B, hardware/gtx580.yaml) must give the batch `memory --fit 3GiB`
    // gives, for the same optimizer; and for one device the per-device peak is the training peak.
    for opt in ["momentum", "adam"] {
        let mem = json(&["memory", "specs/alexnet-2012.yaml", "--batch", "128", "--optimizer", opt, "--fit", "3GiB"]);
        let hw =
            json(&["specs/alexnet-2012.yaml", "--batch", "128", "--optimizer", opt, "--hardware", "gtx580", "--fit"]);
        let fit = &hw["training_memory"]["fit"];
        assert_eq!(fit["memory_bytes"], 3_221_225_472u64);
        assert_eq!(fit["max_batch"], mem["memory"]["fit"]["batch"], "{opt}");
        assert_eq!(hw["training_memory"]["training_peak_bytes"], mem["memory"]["training_peak_bytes"], "{opt}");
        // The same with the size given instead of a device.
        let sized = json(&["specs/alexnet-2012.yaml", "--batch", "128", "--optimizer", opt, "--fit", "3GiB"]);
        assert_eq!(sized["training_memory"]["fit"]["max_batch"], mem["memory"]["fit"]["batch"], "{opt}");
    }
}
