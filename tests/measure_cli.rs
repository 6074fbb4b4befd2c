//! `netstat measure` through the built binary: the deterministic (fake-timings) mode, every
//! format, the refusal of a run that cannot fit, and errors.

use assert_cmd::Command;
use std::io::Write;

/// A tiny spec: conv 2→3 k3 on 2×6×6 (3·2·3·3 + 3 = 57 params), relu, flatten, linear 48→4
/// (48·4 + 4 = 196 params): 253 params.
const TINY: &str = "name: tiny\ninput: [2, 6, 6]\nbatch: 2\nlayers:\n  - {name: c, kind: conv2d, c_out: 3, kernel: 3}\n  - {name: r, kind: relu}\n  - {name: f, kind: flatten}\n  - {name: o, kind: linear, out_features: 4}\n";

fn spec(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn netstat() -> Command {
    let mut c = Command::cargo_bin("netstat").unwrap();
    c.env("NETSTAT_FAKE_TIMINGS", "1").env("RAYON_NUM_THREADS", "1");
    c
}

fn json(args: &[&str], path: &str) -> serde_json::Value {
    let out = netstat()
        .arg("measure")
        .arg(path)
        .args(args)
        .args(["-f", "json", "--warmup", "1", "--iters", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_keeps_the_analysis_and_adds_measured_objects() {
    let f = spec(TINY);
    let v = json(&[], f.path().to_str().unwrap());
    assert_eq!(v["totals"]["params"], 253);
    assert_eq!(v["measured"]["params_built"], 253);
    assert_eq!(v["measured"]["mode"], "inference");
    assert_eq!(v["measured"]["fake_timings"], true);
    // Every field of `netstat SPEC -f json` is kept, the memory summary included (both default
    // to the same optimizer, adam); layers only gain `measured`.
    let analysis: serde_json::Value =
        serde_json::from_slice(&netstat().arg(f.path()).args(["-f", "json"]).output().unwrap().stdout).unwrap();
    let mut kept = v.clone();
    for l in kept["layers"].as_array_mut().unwrap() {
        l.as_object_mut().unwrap().remove("measured");
    }
    for (k, field) in analysis.as_object().unwrap() {
        assert_eq!(&kept[k], field, "{k}");
    }
    let l = &v["layers"][0];
    // conv MACs: 2·3·4·4·2·3·3 = 1,728; fake time 0.01 ms + 1 ms per GMAC.
    assert_eq!(l["macs"], 1728);
    assert_eq!(l["measured"]["forward"]["time_ms_median"], 0.01 + 1728.0 / 1e9);
    // The conv's output (2·3·4·4·4 = 384 bytes) is live after it; memory is counted.
    assert!(l["measured"]["held_bytes"].as_u64().unwrap() >= 384);
    assert_eq!(l["measured"]["predicted_held_bytes"], 384);
    let stages: Vec<&str> = v["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["input", "weights", "warm-up caches", "forward"]);
    // Weights: 253 · 4 = 1,012 bytes (plus a little allocator bookkeeping of the var map).
    let w = v["stages"][1]["measured"]["live_bytes"].as_u64().unwrap()
        - v["stages"][0]["measured"]["live_bytes"].as_u64().unwrap();
    assert!((1012..1012 + 4096).contains(&w), "{w}");
}

#[test]
fn train_reports_stages_and_backward_times() {
    let f = spec(TINY);
    for opt in ["sgd", "momentum", "adam", "adamw"] {
        let v = json(&["--train", "--optimizer", opt], f.path().to_str().unwrap());
        let stages: Vec<&str> = v["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
        assert_eq!(
            stages,
            ["input", "weights", "optimizer state", "warm-up caches", "forward", "loss", "backward", "optimizer step"]
        );
        assert_eq!(v["measured"]["optimizer"], opt);
        // Fake backward = 2 × fake forward.
        let l = &v["layers"][3]["measured"];
        assert_eq!(l["backward"]["time_ms_median"], 2.0 * l["forward"]["time_ms_median"].as_f64().unwrap());
        assert!(l["retained_bytes"].as_u64().is_some());
    }
}

#[test]
fn every_format_has_the_measured_columns() {
    let f = spec(TINY);
    let p = f.path().to_str().unwrap();
    let run = |fmt: &str| {
        let out = netstat().args(["measure", p, "--iters", "1", "--warmup", "0", "-f", fmt]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let t = run("table");
    assert!(t.contains("FAKE TIMINGS") && t.contains("fwd ms") && t.contains("GFLOP/s") && t.contains("peak"), "{t}");
    let m = run("markdown");
    assert!(m.contains("| layer | kind | output | fwd ms |"), "{m}");
    let c = run("csv");
    let head = c.lines().next().unwrap();
    assert!(head.starts_with("name,kind,output_shape,params,macs,flops,output_bytes"), "{head}");
    assert!(
        head.contains("time_ms_median") && head.contains("peak_bytes") && head.contains("predicted_candle_peak_bytes")
    );
    assert_eq!(c.lines().count(), 1 + 4 + 4, "{c}"); // header, 4 layers, 4 stages
}

#[test]
fn a_run_that_cannot_fit_is_refused_before_allocating() {
    // AlexNet at batch 10,000,000: the output of conv1 alone is 10⁷·96·54·54·4 bytes ≈ 11 TB.
    let out = netstat().args(["measure", "specs/alexnet.yaml", "--batch", "10000000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.starts_with("error: specs/alexnet.yaml: predicted peak "), "{e}");
    assert!(e.contains("exceeds memory available") && e.contains("--batch ") && e.contains("--force"), "{e}");
}

#[test]
fn unsupported_dtype_is_an_error() {
    let f = spec(TINY);
    let out = netstat().args(["measure", f.path().to_str().unwrap(), "--dtype", "f16"]).output().unwrap();
    // A request measure cannot run is a usage error, refused before anything is built.
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.contains("measure runs f32 or f64 on the CPU, the spec asks for f16"), "{e}");
}

#[test]
fn the_forward_peak_covers_every_layer_not_only_the_last() {
    // conv 3→16, k3, pad 1 on 1×3×32×32: its output alone is 16·32·32·4 = 65,536 bytes. The
    // last layer (a relu on the pooled 1×16) holds well under that: the forward pass's peak
    // must still be the conv's.
    let f = spec("name: drop\ninput: [3, 32, 32]\nlayers:\n  - {name: c, kind: conv2d, c_out: 16, kernel: 3, padding: 1}\n  - {name: g, kind: global_avg_pool}\n  - {name: r, kind: relu}\n");
    let v = json(&[], f.path().to_str().unwrap());
    let fwd = v["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "forward").unwrap();
    let peak = fwd["measured"]["peak_bytes"].as_u64().unwrap();
    assert!(peak >= 65_536, "{fwd}");
    let conv = v["layers"][0]["measured"]["peak_bytes"].as_u64().unwrap();
    assert!(peak >= conv, "stage peak {peak} < conv's own peak {conv}");
}

#[test]
fn a_branch_that_does_not_reach_the_output_trains_without_a_gradient() {
    // `d` reads the input but nothing reads `d`: as in PyTorch its weights get no gradient and
    // the optimizer skips them. Params: d 4·2 + 2 = 10, o 4·3 + 3 = 15 → 25, all built.
    let f = spec("name: dead\ninput: [4]\nbatch: 2\nlayers:\n  - {name: d, kind: linear, out_features: 2, inputs: [input]}\n  - {name: o, kind: linear, out_features: 3, inputs: [input]}\n");
    for opt in ["sgd", "adam"] {
        let v = json(&["--train", "--optimizer", opt], f.path().to_str().unwrap());
        assert_eq!(v["measured"]["params_built"], 25);
    }
    // A dead layer whose name extends a live one's (`fc.dead` beside `fc`): its variables are
    // told apart by the layer that made them, not by a name prefix.
    let f = spec(
        "name: dotted
input: [16]
batch: 2
layers:
  - {name: fc, kind: linear, out_features: 8}
  - {name: fc.dead, kind: linear, out_features: 4, inputs: [fc]}
  - {name: out, kind: linear, out_features: 3, inputs: [fc]}
",
    );
    json(&["--train"], f.path().to_str().unwrap());
}

#[test]
fn a_dead_branch_keeps_its_graph_only_while_its_output_is_read() {
    // fc1 256→512 on 8 rows, then a dead linear 512→1024 (nothing on the path to the output
    // reads it) whose output is read by a dead relu, and the head fc2 512→10 from fc1. The dead
    // linear holds x·Wᵀ and the bias sum (2 · 8·1024·4 = 65,536 B) until the relu has run; the
    // relu's output, unread, dies at once and takes the linear's graph with it. Gradients: fc1
    // and fc2 only, (256·512 + 512 + 512·10 + 10) · 4 = 136,714 · 4 = 546,856 B.
    let f = spec(
        "name: dead-big
input: [256]
batch: 8
layers:
  - {name: fc1, kind: linear, out_features: 512}
  - {name: dead, kind: linear, out_features: 1024}
  - {name: dead2, kind: relu}
  - {name: fc2, kind: linear, out_features: 10, inputs: [fc1]}
",
    );
    let v = json(&["--train"], f.path().to_str().unwrap());
    let layer = |i: usize| v["layers"][i]["measured"].clone();
    assert_eq!(layer(1)["predicted_candle_retained_bytes"], 65_536);
    assert_eq!(layer(2)["predicted_candle_retained_bytes"], 0);
    let got = layer(1)["retained_bytes"].as_u64().unwrap() as f64;
    assert!((got / 65_536.0 - 1.0).abs() < 0.03, "{}", layer(1));
    let stage =
        |name: &str| v["stages"].as_array().unwrap().iter().find(|s| s["stage"] == name).unwrap()["measured"].clone();
    let (loss, bwd) = (stage("loss"), stage("backward"));
    let candle = |s: &serde_json::Value| s["predicted_candle_bytes"].as_u64().unwrap();
    // After backward: the graph and the loss are gone, the gradients are live.
    let opt = stage("optimizer state");
    assert_eq!(candle(&bwd) - candle(&opt), 546_856);
    let e = (bwd["live_bytes"].as_u64().unwrap() as f64) / (candle(&bwd) as f64) - 1.0;
    assert!(e.abs() < 0.02, "{bwd} {loss}");
}

#[test]
fn a_tie_to_a_layer_that_shares_reaches_the_owner() {
    // `sh` shares `fr`'s 10×4 table and `head` is tied to `sh`: one 40-element weight in all.
    let f = spec("name: chain\ninput: {shape: [5], dtype: i64}\nlayers:\n  - {name: fr, kind: embedding, num_embeddings: 10, embedding_dim: 4, inputs: [input]}\n  - {name: sh, kind: embedding, num_embeddings: 10, embedding_dim: 4, shares: fr, inputs: [input]}\n  - {name: m, kind: add, inputs: [fr, sh]}\n  - {name: head, kind: linear, out_features: 10, bias: false, tied_to: sh}\n");
    for args in [&[][..], &["--train"][..]] {
        let v = json(args, f.path().to_str().unwrap());
        assert_eq!(v["totals"]["params"], 40);
        assert_eq!(v["measured"]["params_built"], 40);
    }
    // A tie to a tied layer: L3 → L2 → L1, one 16×16 weight (256 params).
    let f = spec(
        "name: tie3
input: [16]
layers:
  - {name: L1, kind: linear, out_features: 16, bias: false}
  - {name: L2, kind: linear, out_features: 16, bias: false, tied_to: L1}
  - {name: L3, kind: linear, out_features: 16, bias: false, tied_to: L2}
",
    );
    for args in [&[][..], &["--train"][..]] {
        let v = json(args, f.path().to_str().unwrap());
        assert_eq!(v["measured"]["params_built"], 256);
    }
}

#[test]
fn batch_norm_on_the_network_input_keeps_only_what_its_affine_ops_record() {
    // BatchNorm2d(8) on the 4×8×16×16 input (32,768 bytes per value): x − mean, its square and
    // the statistics record no op (nothing tracked yet), so a training forward keeps the
    // quotient (read by γ·), γ·y (read by +β) and the output: 3 · 32,768 = 98,304 bytes.
    let f = spec("name: bn-first\ninput: [8, 16, 16]\nbatch: 4\nlayers:\n  - {name: bn, kind: batch_norm2d}\n  - {name: c, kind: conv2d, c_out: 4, kernel: 3}\n  - {name: f, kind: flatten}\n  - {name: o, kind: linear, out_features: 10}\n");
    let v = json(&["--train"], f.path().to_str().unwrap());
    let bn = &v["layers"][0]["measured"];
    assert_eq!(bn["predicted_candle_retained_bytes"], 98_304);
    let got = bn["retained_bytes"].as_u64().unwrap() as f64;
    assert!((got / 98_304.0 - 1.0).abs() < 0.03, "{bn}");
}

#[test]
fn frozen_layers_get_no_gradient_or_optimizer_state_and_keep_no_graph() {
    // A frozen backbone (trainable: false) on 8×3×32×32: c1 3→16 k3 p1 (448 params), c2
    // 16→32 k3 s2 p1 (4,640), then a trainable fc 32→10 (330). Adam keeps two copies of the
    // trainable bytes only: 2 · 330 · 4 = 2,640.
    let f = spec("name: frozen\ninput: [3, 32, 32]\nbatch: 8\nlayers:\n  - {name: c1, kind: conv2d, c_out: 16, kernel: 3, padding: 1, trainable: false}\n  - {name: r1, kind: relu}\n  - {name: c2, kind: conv2d, c_out: 32, kernel: 3, stride: 2, padding: 1, trainable: false}\n  - {name: r2, kind: relu}\n  - {name: g, kind: global_avg_pool}\n  - {name: fc, kind: linear, out_features: 10}\n");
    let v = json(&["--train", "--optimizer", "adam"], f.path().to_str().unwrap());
    let stage =
        |name: &str| v["stages"].as_array().unwrap().iter().find(|s| s["stage"] == name).unwrap()["measured"].clone();
    let (w, opt, fwd) = (stage("weights"), stage("optimizer state"), stage("forward"));
    let candle = |s: &serde_json::Value| s["predicted_candle_bytes"].as_u64().unwrap();
    let live = |s: &serde_json::Value| s["live_bytes"].as_u64().unwrap();
    assert_eq!(candle(&opt) - candle(&w), 2_640);
    assert!(live(&opt) - live(&w) < 2_640 + (8 << 10), "{opt} {w}");
    // The frozen layers read the untracked input: no op is recorded, each frees what it was
    // the last to read. c1 +524,288 (8·16·32·32·4); r1 ±0; c2 +262,144 − 524,288; r2 ±0;
    // g +1,024 − 262,144; fc keeps x·Wᵀ and the bias sum, 2 · 8·10·4 = 640: net 1,664.
    assert_eq!(candle(&fwd) - candle(&opt), 1_664);
    let grown = live(&fwd) as i64 - live(&opt) as i64;
    assert!((grown - 1_664).abs() < 4 << 10, "forward grew {grown} B");
}

/// A residual block with a norm (buffers), an in-place relu (no bytes) and a view (flatten).
const RES: &str = "name: res\ninput: [2, 6, 6]\nbatch: 2\nlayers:\n  - {name: c1, kind: conv2d, c_out: 4, kernel: 3, padding: 1}\n  - {name: bn, kind: batch_norm2d}\n  - {name: r, kind: relu, inplace: true}\n  - {name: c2, kind: conv2d, c_out: 4, kernel: 3, padding: 1}\n  - {name: add, kind: add, inputs: [c2, r]}\n  - {name: f, kind: flatten}\n  - {name: o, kind: linear, out_features: 3}\n";

#[test]
fn the_pred_column_is_netstat_memorys_inference_walk() {
    let f = spec(RES);
    let p = f.path().to_str().unwrap();
    let v = json(&[], p);
    let mem: serde_json::Value =
        serde_json::from_slice(&netstat().args(["memory", p, "-f", "json"]).output().unwrap().stdout).unwrap();
    let mem = &mem["memory"];
    // By hand: every 2×4×6×6 output is 288·4 = 1,152 B; the input 2·2·6·6·4 = 576 B. Params
    // c1 4·2·9+4 = 76, bn 8, c2 4·4·9+4 = 148, o 144·3+3 = 435: 667·4 = 2,668 B; buffers: bn's
    // running mean and var (8·4 = 32 B) and its int64 num_batches_tracked (8 B). The `weights`
    // line is 576 + 2,668 + 40 = 3,284 B; per-layer figures are above it.
    let stage = |name: &str| {
        v["stages"].as_array().unwrap().iter().find(|s| s["stage"] == name).unwrap()["measured"]["predicted_bytes"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(stage("input"), 576);
    assert_eq!(stage("input"), mem["input_bytes"].as_u64().unwrap());
    assert_eq!(stage("weights"), 3284);
    let weights = mem["input_bytes"].as_u64().unwrap()
        + mem["param_bytes"].as_u64().unwrap()
        + mem["buffer_bytes"].as_u64().unwrap();
    assert_eq!(stage("weights"), weights);
    // Walk: c1 +1,152; bn +1,152 then c1 freed; r in place; c2 +1,152; add +1,152 then c2 and
    // bn's storage freed; f a view; o +24 (2·3·4) then add's storage freed, o held.
    let peak = [1152, 2304, 1152, 2304, 3456, 1152, 1176];
    let held = [1152, 1152, 1152, 2304, 1152, 1152, 24];
    let layers = v["layers"].as_array().unwrap();
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(l["measured"]["predicted_peak_bytes"], peak[i], "{}", l["name"]);
        assert_eq!(l["measured"]["predicted_held_bytes"], held[i], "{}", l["name"]);
    }
    // The same numbers as `netstat memory`: its inference peak (at `add`, 3,284 + 3,456 =
    // 6,740 B) is the weights line + the largest per-layer pred peak.
    let max = layers.iter().map(|l| l["measured"]["predicted_peak_bytes"].as_u64().unwrap()).max().unwrap();
    assert_eq!(stage("weights") + max, mem["inference_peak_bytes"].as_u64().unwrap());
    assert_eq!(mem["inference_peak_bytes"], 6740);
    assert_eq!(mem["inference_peak_layer"], "add");
    // After the pass the output (24 B) is held: 3,284 + 24.
    assert_eq!(stage("forward"), 3308);
}

#[test]
fn a_run_larger_than_the_machine_is_refused_even_with_force() {
    // 2⁴⁰ f32 elements: a 4 TiB input, more than any machine these tests run on holds.
    let f = spec("name: huge\ninput: [1, 1099511627776]\nlayers:\n  - {name: r, kind: relu}\n");
    let out = netstat().args(["measure", f.path().to_str().unwrap(), "--force"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.contains("exceeds the machine's memory") && e.contains("even with --force"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn negative_counts_reach_the_value_check() {
    let f = spec(TINY);
    for (flag, want) in [("--warmup", "0..="), ("--iters", "1..="), ("--seed", "invalid digit")] {
        let out = netstat().args(["measure", f.path().to_str().unwrap(), flag, "-1"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(e.contains(&format!("invalid value '-1' for '{flag} <N>'")) && e.contains(want), "{e}");
    }
}

#[test]
fn pass_counts_over_the_limits_are_refused_before_anything_runs() {
    let f = spec(TINY);
    // The flags' ranges: 1 to 100,000 timed passes, 0 to 100,000 warm-up passes (clap, exit 2).
    for (flag, n, want) in [("--iters", "100001", "1..=100000"), ("--warmup", "100001", "0..=100000")] {
        let out = netstat().args(["measure", f.path().to_str().unwrap(), flag, n]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let e = String::from_utf8(out.stderr).unwrap();
        assert!(e.contains(want), "{e}");
    }
    // `--iters 4000000000` on AlexNet asked for 32 GB of per-layer times and aborted.
    let out = netstat().args(["measure", "specs/alexnet.yaml", "--iters", "4000000000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Layers × passes: 1,001 relus × 100,000 passes = 100,100,000 times > 10⁸; the most
    // passes that fit is 10⁸ / 1,001 = 99,900 (1,001 × 99,900 = 99,999,900).
    let mut text = String::from("name: relus\ninput: [4]\nlayers:\n");
    for i in 0..1001 {
        text += &format!("  - {{name: r{i}, kind: relu}}\n");
    }
    let f = spec(&text);
    let out = netstat().args(["measure", f.path().to_str().unwrap(), "--iters", "100000"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.contains("100100000 per-layer times") && e.contains("at most --iters 99900"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn the_library_refuses_pass_counts_the_command_line_cannot_give() {
    use netstat::measure::run::{measure, MeasureError, Settings};
    let a = netstat::analysis::analyze(netstat::spec::parse_bytes("tiny.yaml", TINY.as_bytes()).unwrap()).unwrap();
    for s in [
        Settings { iters: 0, ..Settings::default() },
        Settings { iters: 100_001, ..Settings::default() },
        // warm-up + timed passes overflowed u32 in the per-layer backward loop.
        Settings { warmup: u32::MAX, iters: 1, ..Settings::default() },
    ] {
        let Err(e) = measure(&a, &s) else { panic!("pass counts {} + {} were accepted", s.warmup, s.iters) };
        assert!(matches!(e, MeasureError::Unsupported(_)), "{e}");
    }
}
