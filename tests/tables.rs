//! Terminal tables that fit (issue 16 item 4): laid out for `COLUMNS` (80 when unset and not a
//! terminal), columns left out in a fixed order and named, `--columns` to choose, and a
//! `trainable` column when a layer is frozen.

use assert_cmd::Command;

/// stdout of netstat `args` with `COLUMNS` set to `columns` (or unset).
fn run(columns: Option<&str>, args: &[&str]) -> String {
    let mut c = Command::cargo_bin("netstat").unwrap();
    match columns {
        Some(w) => c.env("COLUMNS", w),
        None => c.env_remove("COLUMNS"),
    };
    String::from_utf8(c.args(args).assert().success().get_output().stdout.clone()).unwrap()
}

/// The table's lines: from the header to the totals row (the line before `params …`).
fn table(out: &str) -> Vec<&str> {
    let lines: Vec<&str> = out.lines().collect();
    let end = lines.iter().position(|l| l.starts_with("params ")).expect("the totals line");
    lines[1..end].to_vec()
}

#[test]
fn resnet50_fits_80_columns_by_default() {
    let out = run(None, &["specs/resnet50.yaml"]);
    for line in out.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    let t = table(&out);
    // Header: FLOPs, buffers and kind left out, the rest kept (none wrapped: one row per layer).
    assert_eq!(
        t[0].split_whitespace().collect::<Vec<_>>(),
        ["layer", "output", "params", "%par", "MACs", "%MAC", "out"]
    );
    // 1 header + 1 rule + 1 row per layer + the totals row: resnet50 expands to 175 layers
    // (stem 4, 16 bottlenecks of 10 with 4 downsamples of 2 more: 4 + 160 + 8, then avgpool,
    // flatten, fc).
    assert_eq!(t.len(), 2 + 175 + 1);
    assert!(t.iter().any(|l| l.starts_with("layer1.0.downsample.0 ")));
    assert!(out.contains("columns left out to fit 80 characters: FLOPs, buffers, kind\n"));
}

#[test]
fn wide_terminal_gets_every_column() {
    let out = run(Some("200"), &["specs/resnet50.yaml"]);
    let t = table(&out);
    assert_eq!(
        t[0].split_whitespace().collect::<Vec<_>>(),
        ["layer", "kind", "output", "params", "%par", "MACs", "%MAC", "FLOPs", "out", "buffers"]
    );
    assert!(!out.contains("left out"));
    // AlexNet fits 80 whole: nothing left out, as the README shows.
    assert!(!run(None, &["specs/alexnet.yaml"]).contains("left out"));
}

#[test]
fn narrow_terminal_wraps_text_never_numbers() {
    let out = run(Some("50"), &["specs/resnet50.yaml"]);
    let t = table(&out);
    for line in &t {
        assert!(line.chars().count() <= 50, "wider than 50: {line:?}");
    }
    // Every layer's params still appear whole: resnet50's fc has 2048·1000 + 1000 = 2,049,000.
    assert!(t.iter().any(|l| l.contains(" 2,049,000 ")), "{t:#?}");
}

#[test]
fn columns_are_chosen_and_ordered() {
    let out = run(None, &["specs/alexnet.yaml", "--columns", "MACs,layer,params"]);
    let t = table(&out);
    assert_eq!(t[0].split_whitespace().collect::<Vec<_>>(), ["MACs", "layer", "params"]);
    // conv1: 96·3·11·11 + 96 = 34,944 params; 96·54·54·3·11·11 = 101,616,768 MACs (102M).
    assert_eq!(t[2].split_whitespace().collect::<Vec<_>>(), ["102M", "conv1", "34,944"]);
    // CSV follows the choice, by CSV names too.
    let csv = run(None, &["specs/alexnet.yaml", "--columns", "name,output_bytes", "-f", "csv"]);
    assert_eq!(csv.lines().next(), Some("name,output_bytes"));
    // conv1's output 1x96x54x54 f32: 96·54·54·4 = 1,119,744 bytes.
    assert_eq!(csv.lines().nth(1), Some("conv1,1119744"));
    Command::cargo_bin("netstat")
        .unwrap()
        .args(["specs/alexnet.yaml", "--columns", "layer,flops,parms"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--columns: no column `parms` (did you mean `params`?)"));
    // Named twice (in any case): refused, not shown twice.
    Command::cargo_bin("netstat")
        .unwrap()
        .args(["specs/alexnet.yaml", "--columns", "layer,params,PARAMS"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--columns: column `params` named twice"));
}

#[test]
fn frozen_layers_get_a_trainable_column() {
    let out = run(None, &["tests/data/frozen.yaml"]);
    let t = table(&out);
    let cells = |i: usize| t[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(cells(0)[..5], ["layer", "kind", "output", "params", "trainable"]);
    // fc1 (frozen): 8·4 + 4 = 36 params; fc2: 4·2 + 2 = 10, trainable; total 46, of which 10 train.
    assert_eq!(cells(2)[..5], ["fc1", "linear", "1x4", "36", "frozen"]);
    assert_eq!(cells(4)[..5], ["fc2", "linear", "1x2", "10", "10"]);
    assert_eq!(cells(5)[..3], ["total", "46", "10"]);
    let csv = run(None, &["tests/data/frozen.yaml", "-f", "csv"]);
    assert!(csv.starts_with("name,kind,output_shape,params,trainable_params,"), "{csv}");
    let j: serde_json::Value = serde_json::from_str(&run(None, &["tests/data/frozen.yaml", "-f", "json"])).unwrap();
    assert_eq!(j["layers"][0]["frozen_params"], 36);
    assert!(j["layers"][2].get("frozen_params").is_none());
    assert_eq!(j["totals"]["frozen_params"], 36);
    // No frozen layer, no column.
    assert!(!run(None, &["specs/lenet.yaml"]).contains("trainable"));
}

#[test]
fn diff_reads_in_human_units_with_paths_and_changed_only() {
    let out = run(None, &["diff", "specs/alexnet.yaml", "specs/alexnet-d2l.yaml", "--changed-only"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "diff: A = alexnet (specs/alexnet.yaml, 1x3x224x224 f32) -> B = alexnet-d2l (specs/alexnet-d2l.yaml, 1x1x224x224 f32)"
    );
    // Only conv1 (1 → 3 input channels) and fc3 (1000 → 10 classes) differ.
    // conv1: A 96·3·121 + 96 = 34,944, B 96·1·121 + 96 = 11,712 params; MACs 96·54·54·363 =
    // 101,616,768 (102M) and 96·54·54·121 = 33,872,256 (33.9M), Δ -67,744,512 (-67.7M);
    // output 96·54·54·4 = 1,119,744 B (1.07 MiB) on both sides.
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        [
            "conv1", "conv2d", "34,944", "11,712", "-23,232", "102M", "33.9M", "-67.7M", "1.07", "MiB", "1.07", "MiB",
            "0"
        ]
    );
    // fc3: 4096·1000 + 1000 = 4,097,000 vs 4096·10 + 10 = 40,970; output 4,000 B (3.91 KiB) vs 40 B.
    assert_eq!(
        lines[4].split_whitespace().collect::<Vec<_>>(),
        [
            "fc3",
            "linear",
            "4,097,000",
            "40,970",
            "-4,056,030",
            "4.10M",
            "41.0K",
            "-4.06M",
            "3.91",
            "KiB",
            "40",
            "B",
            "-3.87",
            "KiB"
        ]
    );
    assert!(lines[5].starts_with("total "));
    assert_eq!(lines[6], "2 of 21 layers differ (the others not shown: --changed-only);");
    // Without --changed-only every layer is shown: 21 rows.
    let all = run(None, &["diff", "specs/alexnet.yaml", "specs/alexnet-d2l.yaml"]);
    assert!(all.lines().any(|l| l.starts_with("relu1 ")));
    assert!(all.contains("\n2 of 21 layers differ;\n"));
    // JSON with --changed-only carries the two layers, and the totals of all.
    let j: serde_json::Value = serde_json::from_str(&run(
        None,
        &["diff", "specs/alexnet.yaml", "specs/alexnet-d2l.yaml", "--changed-only", "-f", "json"],
    ))
    .unwrap();
    assert_eq!(j["layers"].as_array().unwrap().len(), 2);
    // 46,764,746 − 50,844,008 (README's table).
    assert_eq!(j["totals"]["params"]["delta"], -4_079_262);
}

/// `netstat measure` in its deterministic mode (fixed fake timings) on `spec` given on stdin.
fn measure(spec: &str, extra: &[&str]) -> String {
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .env_remove("COLUMNS")
        .args(["measure", "-", "--fake-timings", "--warmup", "3", "--iters", "2"])
        .args(extra)
        .write_stdin(spec)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// The cells of the row of layer `name`.
fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row {name}:\n{out}"))
        .split_whitespace()
        .collect()
}

#[test]
fn measure_names_views_and_in_place_layers_and_never_prints_minus_zero() {
    let spec = "name: t\ninput: [3, 8, 8]\nbatch: 2\nlayers:\n  - {name: conv, kind: conv2d, c_out: 4, kernel: 3}\n  - {name: relu, kind: relu, inplace: true}\n  - {name: flat, kind: flatten}\n  - {name: drop, kind: dropout, p: 0.5}\n  - {name: fc, kind: linear, out_features: 3}\n";
    let inference = measure(spec, &[]);
    // Inference: candle's flatten is a view and dropout the identity; the neutral model counts a
    // new output for both, so their err says what they are instead of a percentage.
    assert!(row(&inference, "flat").contains(&"view"), "{inference}");
    assert!(row(&inference, "drop").contains(&"no-op"), "{inference}");
    // candle has no in-place ReLU: in inference it allocates, as the neutral model counts.
    assert!(!row(&inference, "relu").contains(&"in-place"), "{inference}");
    // The spread is a percentage: fake timings are 1.0, 0.9 and 1.2 × the median, so
    // (1.2 − 0.9) / 1.0 = 30%.
    assert!(inference.lines().any(|l| l.starts_with("layer ") && l.contains(" spread ")));
    assert_eq!(row(&inference, "conv")[5], "30%", "{inference}");
    let training = measure(spec, &["--train"]);
    // Training: netstat's memory model keeps the in-place ReLU's output in its input's storage;
    // candle allocates one.
    assert!(row(&training, "relu").contains(&"in-place"), "{training}");
    // A view retains 0 B in both models, where the allocator counts candle's few hundred bytes
    // of bookkeeping: both err columns say `view` instead of -100%.
    assert_eq!(row(&training, "flat").iter().filter(|&&c| c == "view").count(), 2, "{training}");
    for out in [&inference, &training] {
        assert!(!out.contains("-0.0%") && !out.contains("+0.0%"), "{out}");
        // Warm-up caches are measured, not modelled (both predictions 0 B): said, not -100%.
        assert_eq!(row(out, "warm-up").iter().filter(|&&c| c == "modelled").count(), 2, "{out}");
    }
}
