//! ONNX models (issue 15): tests/fixtures/onnx/*.onnx, exported from torchvision by
//! scripts/make_onnx_fixtures.py (initializer data stripped, dims kept), analyse to
//! torchvision's published totals, to the hand-written specs' totals, and row by row to the
//! per-layer dumps in tests/data/torchvision_layers (matched by module name); `netstat import`
//! writes a spec that analyses to the same rows; unmapped ops are one clear error.

use assert_cmd::Command;
use netstat::analysis::{Analysis, Overrides};
use std::collections::HashMap;

fn analyse(path: &str) -> Analysis {
    netstat::analyze_file(path, &Overrides::default()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every row of torchvision's per-layer dump for `model` is the model's row of the same name
/// (a module called k > 0 times before is `MODULE_k`, torch.fx's naming), except `Dropout`
/// modules: an eval-mode export has no node for them. Returns the rows matched.
fn rows_match(a: &Analysis, model: &str) -> usize {
    let rows: HashMap<&str, &netstat::analysis::LayerAnalysis> =
        a.layers.iter().map(|l| (a.layer_spec(l).id.name.as_str(), l)).collect();
    let path = format!("{}/tests/data/torchvision_layers/{model}.csv", env!("CARGO_MANIFEST_DIR"));
    let mut calls: HashMap<String, usize> = HashMap::new();
    let mut matched = 0;
    for rec in csv::Reader::from_path(&path).unwrap().records() {
        let rec = rec.unwrap();
        let (module, ty, out_shape) = (&rec[0], &rec[1], &rec[3]);
        let (params, macs): (u64, u64) = (rec[4].parse().unwrap(), rec[5].parse().unwrap());
        let k = calls.entry(module.to_owned()).or_default();
        let name = if *k == 0 { module.to_owned() } else { format!("{module}_{k}") };
        *k += 1;
        if ty == "Dropout" {
            assert!(!rows.contains_key(name.as_str()), "{model}: an eval export has no dropout {name}");
            continue;
        }
        let l = rows.get(name.as_str()).unwrap_or_else(|| panic!("{model}.onnx: no layer {name}"));
        assert_eq!(l.output.to_string(), out_shape, "{model}: {name} output shape");
        assert_eq!((l.params, l.macs), (params, macs), "{model}: {name} params, MACs");
        matched += 1;
    }
    matched
}

fn totals(a: &Analysis) -> (u64, u64) {
    (a.totals.params, a.totals.macs)
}

#[test]
fn alexnet_matches_torchvision_and_the_spec() {
    let a = analyse("tests/fixtures/onnx/alexnet.onnx");
    // torchvision alexnet.py `_meta`: 61,100,840 params, 0.71 GFLOPS = 714,188,480 MACs.
    assert_eq!(totals(&a), (61_100_840, 714_188_480));
    assert_eq!(totals(&a), totals(&analyse("specs/alexnet-torchvision.yaml")));
    // alexnet.csv: 21 rows, of which 2 dropouts.
    assert_eq!(rows_match(&a, "alexnet"), 19);
}

#[test]
fn resnet18_matches_torchvision_and_the_spec() {
    let a = analyse("tests/fixtures/onnx/resnet18.onnx");
    // torchvision resnet.py `_meta`: 11,689,512 params, 1,814,073,344 MACs.
    assert_eq!(totals(&a), (11_689_512, 1_814_073_344));
    assert_eq!(totals(&a), totals(&analyse("specs/resnet18.yaml")));
    // BatchNorm running mean + var: 2 · Σ BN channels = 2 · 4,800 = 9,600 buffers
    // (Σ = 64 + 4·64 + 4·128 + 128 + 4·256 + 256 + 4·512 + 512 = 4,800, one downsample BN per stage 2–4).
    assert_eq!(a.totals.buffers, 9_600);
    // resnet18.csv: 60 rows, no dropout.
    assert_eq!(rows_match(&a, "resnet18"), 60);
    // --batch applies to a model as to a spec: MACs scale with the batch, params do not.
    let o = Overrides { batch: Some(4), ..Default::default() };
    let b = netstat::analyze_file("tests/fixtures/onnx/resnet18.onnx", &o).unwrap();
    assert_eq!(totals(&b), (11_689_512, 4 * 1_814_073_344));
}

#[test]
fn mobilenet_v2_matches_torchvision_and_the_spec() {
    let a = analyse("tests/fixtures/onnx/mobilenet_v2.onnx");
    // torchvision mobilenetv2.py `_meta`: 3,504,872 params, 300,774,272 MACs.
    assert_eq!(totals(&a), (3_504_872, 300_774_272));
    assert_eq!(totals(&a), totals(&analyse("specs/mobilenet_v2.yaml")));
    // mobilenet_v2.csv: 141 rows, of which 1 dropout.
    assert_eq!(rows_match(&a, "mobilenet_v2"), 140);
}

#[test]
fn import_writes_a_spec_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["alexnet", "resnet18", "mobilenet_v2", "vit_b_16", "tiny_cnn"] {
        let onnx = format!("tests/fixtures/onnx/{model}.onnx");
        let yaml = dir.path().join(format!("{model}.yaml"));
        Command::cargo_bin("netstat").unwrap().args(["import", &onnx, "-o"]).arg(&yaml).assert().success();
        let csv = |path: &str| {
            let out = Command::cargo_bin("netstat").unwrap().args([path, "-f", "csv"]).output().unwrap();
            assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let (a, b) = (csv(&onnx), csv(yaml.to_str().unwrap()));
        assert_eq!(a, b, "{model}: the imported spec's rows differ from the model's");
        assert!(a.lines().count() > 5, "{model}");
    }
}

#[test]
fn an_unmapped_op_is_one_error_listing_every_unmapped_type() {
    // unknown_ops.onnx: Gemm, then Erf (node #1 "n0") and Cos (node #2), see the script.
    let out = Command::cargo_bin("netstat").unwrap().arg("tests/fixtures/onnx/unknown_ops.onnx").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: tests/fixtures/onnx/unknown_ops.onnx: node #1 \"n0\" (op Erf): netstat has no kind for Erf; \
         the model's unmapped op types (2 nodes): Cos, Erf. Pass --allow-unknown to count them as 0 params and 0 MACs\n"
    );
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["tests/fixtures/onnx/unknown_ops.onnx", "--allow-unknown", "-f", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("warning: node #1 \"n0\": unknown op Erf, counted as 0 params and 0 MACs"), "{err}");
    assert!(err.contains("warning: node #2 \"node_cos\": unknown op Cos"), "{err}");
    let csv = String::from_utf8(out.stdout).unwrap();
    // fc: Linear(4, 4) = 4·4 + 4 = 20 params, 16 MACs at batch 1; the unknown ops add nothing.
    assert!(csv.contains("\nfc,linear,1x4,20,16,"), "{csv}");
    assert!(csv.contains("\nspecial_erf [unknown op Erf],dropout,1x4,0,0,"), "{csv}");
    assert!(csv.contains("\ntotal,,,20,16,"), "{csv}");
}

#[test]
fn a_truncated_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::fs::read("tests/fixtures/onnx/tiny_cnn.onnx").unwrap();
    let p = dir.path().join("cut.onnx");
    std::fs::write(&p, &data[..1000]).unwrap();
    let out = Command::cargo_bin("netstat").unwrap().arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("cut.onnx: not a valid ONNX model:") && err.contains("a truncated file?"), "{err}");
}

#[test]
fn measure_runs_a_model_in_candle_like_a_spec() {
    // tiny_cnn: conv 3→8, 3×3, bias: 8·3·9 + 8 = 224; bn: 2·8 = 16; fc 512→10: 5,120 + 10 = 5,130;
    // 224 + 16 + 5,130 = 5,370 params, which candle must build.
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["measure", "tests/fixtures/onnx/tiny_cnn.onnx", "--warmup", "1", "--iters", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{text}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("params built 5,370 = analysis"), "{text}");
    for layer in ["conv", "bn", "relu", "pool", "view", "fc"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{layer} "))), "no row {layer}:\n{text}");
    }
}

#[test]
fn the_fixtures_are_far_below_the_decoding_limit() {
    // Measured, not asserted exactly: the limit must leave room for models 100 times larger.
    for model in ["alexnet", "resnet18", "mobilenet_v2", "vit_b_16"] {
        let data = std::fs::read(format!("tests/fixtures/onnx/{model}.onnx")).unwrap();
        let items = netstat::onnx::wire::check(&data).unwrap();
        assert!(items * 100 < netstat::onnx::wire::MAX_ITEMS, "{model}: {items} items");
    }
}

#[test]
fn vit_b_16_matches_torchvision_and_the_spec() {
    // The exporter writes each nn.MultiheadAttention as dozens of nodes (in-projection, head
    // split, scaled dot-product attention, merge, out-projection): one multi_head_attention each.
    let a = analyse("tests/fixtures/onnx/vit_b_16.onnx");
    // torchvision vision_transformer.py `_meta`: 86,567,656 params, 17,563,828,224 MACs.
    assert_eq!(totals(&a), (86_567_656, 17_563_828_224));
    assert_eq!(totals(&a), totals(&analyse("specs/vit_b_16.yaml")));
    let attention: Vec<_> = a.layers.iter().filter(|l| a.layer_spec(l).kind.name() == "multi_head_attention").collect();
    assert_eq!(attention.len(), 12);
    assert_eq!(a.layer_spec(attention[0]).id.name, "encoder.layers.encoder_layer_0.self_attention");
    // Per layer: 4·768² + 4·768 = 2,362,368 params; MACs: projections 4·197·768² = 464,781,312
    // plus Q·Kᵀ and A·V 2·197²·768 = 59,610,624, = 524,391,936.
    assert_eq!((attention[0].params, attention[0].macs), (2_362_368, 524_391_936));
    // vit_b_16.csv: 100 rows (conv_proj, 25 LayerNorm, 24 MLP Linear + head, 12 GELU), of which
    // 37 dropouts (the encoder's and three per block).
    assert_eq!(rows_match(&a, "vit_b_16"), 63);
}
