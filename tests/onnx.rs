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

/// The rows of two analyses, by name: (kind, output shape, params, MACs).
fn rows(a: &Analysis) -> Vec<(String, String, String, u64, u64)> {
    a.layers
        .iter()
        .map(|l| {
            let s = a.layer_spec(l);
            (s.id.name.clone(), s.kind.name().to_owned(), l.output.to_string(), l.params, l.macs)
        })
        .collect()
}

#[test]
fn lstm_lm_matches_the_spec_row_by_row() {
    // specs/lstm-lm.yaml's model exported by torch.onnx: the Gather on the embedding table is
    // one embedding, the two ONNX LSTM nodes (and the exporter's gate-reordering Slices and
    // Concats, transposes and state reshapes) one 2-layer lstm, MatMul + Add one linear.
    let a = analyse("tests/fixtures/onnx/lstm_lm.onnx");
    // Params: PyTorch's sum of numel (scripts/make_onnx_fixtures.py, tests/data/reference_counts.json):
    // 11,368,208 = 10,000·256 + 3,678,208 (lstm) + 512·10,000 + 10,000.
    // MACs: 35·4·512·(256 + 512) + 35·4·512·(512 + 512) + 35·512·10,000 = 307,650,560 (the decoder's
    // 179,200,000 is FlopCounterMode's count; it has no formula for the fused LSTM).
    assert_eq!(totals(&a), (11_368_208, 307_650_560));
    let spec = analyse("specs/lstm-lm.yaml");
    assert_eq!(rows(&a), rows(&spec));
    let names: Vec<_> = rows(&a).into_iter().map(|r| (r.0, r.1)).collect();
    let want = [("embedding", "embedding"), ("lstm", "lstm"), ("decoder", "linear")];
    assert_eq!(names, want.map(|(n, k)| (n.to_owned(), k.to_owned())));
    // The input is the token ids: i64, as the spec's.
    assert_eq!(a.spec.input.dtype, spec.spec.input.dtype);
}

#[test]
fn gru_and_rnn_match_pytorch() {
    // recurrent.onnx: GRU(16, 32, num_layers=2, bidirectional, batch_first) → RNN(64, 24, relu,
    // batch_first) → Linear(24, 5) on 1×10×16. The GRU is two bidirectional ONNX GRU nodes; the
    // RNN is no ONNX RNN node but its loop unrolled (MatMul, Add, Relu per step): one layer each.
    let a = analyse("tests/fixtures/onnx/recurrent.onnx");
    // PyTorch (scripts/make_onnx_fixtures.py): 30,701 params, FlopCounterMode / 2 = 298,800 MACs.
    assert_eq!(totals(&a), (30_701, 298_800));
    let r = rows(&a);
    let get = |name: &str| r.iter().find(|x| x.0 == name).unwrap_or_else(|| panic!("no layer {name}: {r:?}")).clone();
    // GRU layer 0, per direction 3·32·16 + 3·32·32 + 2·96 = 4,800; layer 1 3·32·64 + 3·32·32 + 192
    // = 9,408; both directions: 28,416. MACs 2 dirs · 10 steps · 3·32·((16 + 32) + (64 + 32)) = 276,480.
    assert_eq!(get("gru"), ("gru".into(), "gru".into(), "1x10x64".into(), 28_416, 276_480));
    // RNN: 24·64 + 24·24 + 2·24 = 2,160; MACs 10·24·(64 + 24) = 21,120.
    assert_eq!(get("rnn"), ("rnn".into(), "rnn".into(), "1x10x24".into(), 2_160, 21_120));
    // fc: 24·5 + 5 = 125; MACs 10·24·5 = 1,200.
    assert_eq!(get("fc"), ("fc".into(), "linear".into(), "1x10x5".into(), 125, 1_200));
    assert_eq!(r.len(), 3, "{r:?}");
}

#[test]
fn conv_transpose_resize_and_silu_match_pytorch() {
    let a = analyse("tests/fixtures/onnx/tiny_unet.onnx");
    // PyTorch (scripts/make_onnx_fixtures.py): 3,099 params, FlopCounterMode / 2 = 495,104 MACs.
    // By hand: enc 8·3·9 + 8 = 224, 16·16·8·27 = 55,296; mid 16·8·9 + 16 = 1,168, 8·8·16·72 =
    // 73,728; up 16·8·2·2 + 8 = 520, 16·8·8·(8·2·2) = 32,768 (on the input grid); dec 8·16·9 + 8 =
    // 1,160, 16·16·8·144 = 294,912; head 3·8 + 3 = 27, 40·40·3·8 = 38,400.
    assert_eq!(totals(&a), (3_099, 495_104));
    let kinds: Vec<(String, String, String)> = rows(&a).into_iter().map(|r| (r.0, r.1, r.2)).collect();
    let want = [
        ("enc", "conv2d", "1x8x16x16"),
        // Sigmoid + Mul: one silu.
        ("act", "silu", "1x8x16x16"),
        ("pool", "max_pool2d", "1x8x8x8"),
        ("mid", "conv2d", "1x16x8x8"),
        ("up", "conv_transpose2d", "1x8x16x16"),
        ("cat", "concat", "1x16x16x16"),
        ("dec", "conv2d", "1x8x16x16"),
        // Resize with scales [1, 1, 2, 2]: nearest ×2.
        ("upsample", "upsample", "1x8x32x32"),
        // Resize with sizes from Shape → Slice → Concat: bilinear to the declared 40×40.
        ("upsample_bilinear2d", "upsample", "1x8x40x40"),
        ("head", "conv2d", "1x3x40x40"),
    ];
    assert_eq!(kinds, want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())));
    let up = rows(&a).into_iter().find(|r| r.0 == "up").unwrap();
    assert_eq!((up.3, up.4), (520, 32_768));
}

#[test]
fn symbolic_dims_come_from_input_and_batch() {
    // dynamic.onnx's input is [batch, 3, height, width]: without --input its size is unknown.
    let out = Command::cargo_bin("netstat").unwrap().arg("tests/fixtures/onnx/dynamic.onnx").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("graph input \"x\" has a symbolic dimension 2 (height); give the input shape with --input"),
        "{err}"
    );
    // At batch 2, 3×32×32 (the export's own example), PyTorch (scripts/make_onnx_fixtures.py):
    // 618 params, FlopCounterMode / 2 = 885,056 MACs: conv 2·32·32·16·27 = 884,736, fc 2·16·10 = 320.
    let o = Overrides { batch: Some(2), input: Some(vec![3, 32, 32]), ..Default::default() };
    let a = netstat::analyze_file("tests/fixtures/onnx/dynamic.onnx", &o).unwrap();
    assert_eq!(totals(&a), (618, 885_056));
    // At batch 1, 3×64×48: conv 64·48·16·27 = 1,327,104, fc 160: 1,327,264.
    let o = Overrides { input: Some(vec![3, 64, 48]), ..Default::default() };
    assert_eq!(totals(&netstat::analyze_file("tests/fixtures/onnx/dynamic.onnx", &o).unwrap()), (618, 1_327_264));
    // A rank that is not the model's is refused.
    let o = Overrides { input: Some(vec![3, 64]), ..Default::default() };
    let e = netstat::analyze_file("tests/fixtures/onnx/dynamic.onnx", &o).unwrap_err().to_string();
    assert!(e.contains("--input has 2 dimensions, but graph input \"x\" has 3 besides the batch"), "{e}");
    // `netstat import --input --batch` writes them into the spec.
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["import", "tests/fixtures/onnx/dynamic.onnx", "--input", "3x32x32", "--batch", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("\ninput: [3, 32, 32]\nbatch: 2\n"), "{yaml}");
}

#[test]
fn the_new_fixtures_import_to_specs_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["lstm_lm", "recurrent", "tiny_unet", "legacy_rnn", "unet_small"] {
        let onnx = format!("tests/fixtures/onnx/{model}.onnx");
        let yaml = dir.path().join(format!("{model}.yaml"));
        Command::cargo_bin("netstat").unwrap().args(["import", &onnx, "-o"]).arg(&yaml).assert().success();
        let b = analyse(yaml.to_str().unwrap());
        assert_eq!(rows(&analyse(&onnx)), rows(&b), "{model}: the imported spec's rows differ from the model's");
    }
}

#[test]
fn report_dir_takes_models_and_refuses_a_spec_and_a_model_of_one_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("tests/fixtures/onnx/tiny_cnn.onnx", dir.path().join("tiny_cnn.onnx")).unwrap();
    let out = dir.path().join("out");
    let run = |d: &std::path::Path| {
        Command::cargo_bin("netstat").unwrap().arg("report").arg(d).arg("--out").arg(&out).output().unwrap()
    };
    let o = run(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // tiny_cnn: 5,370 params (measure_runs_a_model_in_candle_like_a_spec), in its CSV's total row.
    let csv = std::fs::read_to_string(out.join("tiny_cnn.csv")).unwrap();
    assert!(csv.contains("\ntotal,,,5370,"), "{csv}");
    std::fs::write(
        dir.path().join("tiny_cnn.yaml"),
        "name: t\ninput: [4]\nlayers:\n  - {name: fc, kind: linear, out_features: 2}\n",
    )
    .unwrap();
    let o = run(dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("would both write the report file tiny_cnn.md: rename one of them"), "{err}");
}

#[test]
fn bare_onnx_recurrent_nodes_match_pytorch() {
    // legacy_rnn.onnx, from PyTorch's legacy exporter (dynamo=False): ONNX LSTM, GRU and RNN nodes
    // reading W [dirs, G·H, I], R [dirs, G·H, H], B [dirs, 2·G·H] initializers, one node per layer,
    // without module paths. LSTM(16, 32, num_layers=2, bidirectional) → GRU(64, 8) → RNN(8, 6) →
    // Linear(6, 3), batch_first, 1×5×16.
    let a = analyse("tests/fixtures/onnx/legacy_rnn.onnx");
    // Params: PyTorch's 39,781 (scripts/make_onnx_fixtures.py). MACs by hand, T = 5: LSTM layer 0
    // 2·5·4·32·(16 + 32) = 61,440, layer 1 2·5·4·32·(64 + 32) = 122,880; GRU 5·3·8·(64 + 8) =
    // 8,640; RNN 5·6·(8 + 6) = 420; fc 5·6·3 = 90: 193,470.
    assert_eq!(totals(&a), (39_781, 193_470));
    let by_kind: Vec<(String, u64, u64)> = rows(&a).into_iter().filter(|r| r.4 > 0).map(|r| (r.1, r.3, r.4)).collect();
    // LSTM layer 0 per direction 4·32·16 + 4·32·32 + 8·32 = 6,400, both 12,800; layer 1 per
    // direction 4·32·64 + 4·32·32 + 8·32 = 12,544, both 25,088; GRU 3·8·64 + 3·8·8 + 6·8 = 1,776;
    // RNN 6·8 + 6·6 + 2·6 = 96; fc 6·3 + 3 = 21.
    let want = [
        ("lstm", 12_800, 61_440),
        ("lstm", 25_088, 122_880),
        ("gru", 1_776, 8_640),
        ("rnn", 96, 420),
        ("linear", 21, 90),
    ];
    assert_eq!(by_kind, want.map(|(k, p, m)| (k.to_owned(), p, m)));
}

#[test]
fn an_lstm_with_a_projection_is_refused_by_name() {
    // lstm_proj.onnx: LSTM(8, 16, proj_size=4): PyTorch's weight_ih 64×8, weight_hh 64×4,
    // weight_hr 4×16 and two biases of 64 are 960 params; the exporter writes all but weight_hr
    // (512 + 256 + 64 + 64 = 896, the file's initializers), and netstat's lstm (no projection:
    // 4·16·8 + 4·16·16 + 2·64 = 1,664) reproduces neither: refused, not miscounted.
    let out = Command::cargo_bin("netstat").unwrap().arg("tests/fixtures/onnx/lstm_proj.onnx").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("(op LSTM): netstat has no kind for nn.LSTM lstm whose parameters (4 tensors, 896 elements) are not those of netstat's lstm (hidden_size 16, num_layers 1: 1664 elements): proj_size?"),
        "{err}"
    );
}

#[test]
fn measure_runs_the_recurrent_and_upsampling_models() {
    // The candle build makes exactly the analysed parameters (counts derived in the tests above).
    for (model, params) in [("recurrent", "30,701"), ("tiny_unet", "3,099"), ("legacy_rnn", "39,781")] {
        let out = Command::cargo_bin("netstat")
            .unwrap()
            .args(["measure", &format!("tests/fixtures/onnx/{model}.onnx"), "--warmup", "1", "--iters", "1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{model}: {}{text}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(&format!("params built {params} = analysis")), "{model}: {text}");
    }
}

#[test]
fn unet_small_matches_the_spec_row_by_row() {
    // specs/unet-small.yaml's network (scripts/reference_counts.py UNetSmall) exported: each
    // nn.GroupNorm (Reshape → InstanceNormalization → Reshape → Mul → Add) is one group_norm, each
    // F.silu (Sigmoid · Mul) one silu, the nn.MultiheadAttention one layer, F.interpolate one upsample.
    let a = analyse("tests/fixtures/onnx/unet_small.onnx");
    // tests/data/reference_counts.json (PyTorch: params summed, FlopCounterMode / 2): 259,491
    // params, 132,317,184 MACs.
    assert_eq!(totals(&a), (259_491, 132_317_184));
    let spec = analyse("specs/unet-small.yaml");
    let (ra, rs) = (rows(&a), rows(&spec));
    // Every row in order: same kind, output shape, params and MACs.
    let strip = |r: &[(String, String, String, u64, u64)]| -> Vec<_> {
        r.iter().map(|x| (x.1.clone(), x.2.clone(), x.3, x.4)).collect()
    };
    assert_eq!(strip(&ra), strip(&rs));
    // Module rows carry the spec's names (its blocks are the modules: `down0.norm1`); the
    // functional ops are named by PyTorch's exporter (`down0.silu` where the spec says `down0.act1`).
    let named = ra.iter().zip(&rs).filter(|(x, y)| x.0 == y.0).count();
    assert!(ra.iter().zip(&rs).filter(|(x, _)| x.3 > 0).all(|(x, y)| x.0 == y.0), "{ra:?}");
    // 44 rows, of which 16 functional: 8 silu in the blocks and act_out, 2 reshapes, 2 permutes,
    // attn_add, the upsample (`upsample_nearest2d`) and the skip concat (`cat`).
    assert_eq!((ra.len(), named), (44, 28));
}

#[test]
fn an_lstm_read_by_its_final_state_is_refused_by_name() {
    // lstm_last.onnx: `_, (h, _) = lstm(x); fc(h[-1])`. netstat's lstm gives the output of every
    // step ([1, 5, 16]), not h_n ([1, 1, 16]): mapping the module would mis-shape fc's input.
    let out = Command::cargo_bin("netstat").unwrap().arg("tests/fixtures/onnx/lstm_last.onnx").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("(op LSTM): netstat has no kind for nn.LSTM lstm whose result the model reads is not its output of every step (h_n or c_n?"),
        "{err}"
    );
}

#[test]
fn slices_of_activations_are_slice_layers() {
    // scripts/make_onnx_fixtures.py `Slices`: PyTorch counts 884 params and FlopCounterMode / 2 =
    // 56,192 MACs. By hand: conv 8·3·9 + 8 = 224 params, 16·16·8·27 = 55,296 MACs; head 2·4 + 2 =
    // 10, 4·8·2·4 = 256; fc 64·10 + 10 = 650, 640. 224 + 10 + 650 = 884; 55,296 + 256 + 640 = 56,192.
    let a = analyse("tests/fixtures/onnx/slices.onnx");
    assert_eq!(totals(&a), (884, 56_192));
    let want = [
        ("conv", "conv2d", "1x8x16x16"),
        // x[:, :, 2:10]: 10 − 2 = 8 rows.
        ("slice", "slice", "1x8x8x16"),
        // x[..., ::2]: ⌈16 / 2⌉ = 8 columns.
        ("slice_1", "slice", "1x8x8x8"),
        // x[:, :4] and x[:, 4:] of 8 channels.
        ("slice_2", "slice", "1x4x8x8"),
        ("slice_3", "slice", "1x4x8x8"),
        ("add", "add", "1x4x8x8"),
        // x[:, :, -4:] of 8 rows: 4.
        ("slice_4", "slice", "1x4x4x8"),
        ("head", "conv2d", "1x2x4x8"),
        ("view", "flatten", "1x64"),
        ("fc", "linear", "1x10"),
    ];
    let kinds: Vec<(String, String, String)> = rows(&a).into_iter().map(|r| (r.0, r.1, r.2)).collect();
    assert_eq!(kinds, want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned())));
    assert!(rows(&a).iter().filter(|r| r.1 == "slice").all(|r| (r.3, r.4) == (0, 0)));

    // The imported spec has the same rows, and candle builds and runs it (step 2 included).
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("slices.yaml");
    let import = ["import", "tests/fixtures/onnx/slices.onnx", "-o"];
    Command::cargo_bin("netstat").unwrap().args(import).arg(&yaml).assert().success();
    assert_eq!(rows(&analyse(yaml.to_str().unwrap())), rows(&a));
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["measure", "tests/fixtures/onnx/slices.onnx", "--warmup", "1", "--iters", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{text}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("params built 884 = analysis"), "{text}");
}

/// Initializers whose dims disagree with the input or the attributes (tests/fixtures/onnx/hostile,
/// scripts/make_hostile_onnx.py): the mapping took only c_out (or the output width) from the
/// weight and reported a parameter count the file does not hold, exit 0. Now exit 2 naming the
/// node, with what the initializers hold and what the kind counts.
#[test]
fn initializers_that_disagree_with_the_input_are_refused_by_node() {
    for (stem, node, held, counted) in [
        // [8, 5, 3, 3] + 8 = 368 held; on 3 channels 8·3·3·3 + 8 = 224.
        ("conv_c_in", "#0 \"conv\" (Conv)", 368, 224),
        // [8, 3, 3, 3] + 8 = 224 held; kernel_shape 5: 8·3·5·5 + 8 = 608.
        ("conv_kernel", "#0 \"conv\" (Conv)", 224, 608),
        // 216 + a bias of 100 = 316 held; 224 counted.
        ("conv_bias", "#0 \"conv\" (Conv)", 316, 224),
        // W [8, 4] without transB + bias 4 = 36 held; a linear 4 → 4 has 16 + 4 = 20.
        ("gemm_k", "#0 \"g\" (Gemm)", 36, 20),
        // [5, 8] = 40 held; a linear 4 → 8 without bias has 32.
        ("matmul_k", "#0 \"m\" (MatMul)", 40, 32),
        // scale 5 + bias 5 = 10 held; batch_norm2d of 3 channels has 6.
        ("bn_c", "#0 \"bn\" (BatchNormalization)", 10, 6),
        // [7, 8, 3, 3] = 504 held; 3 channels → 8: 3·8·3·3 = 216.
        ("conv_transpose_c_in", "#0 \"ct\" (ConvTranspose)", 504, 216),
    ] {
        let p = format!("tests/fixtures/onnx/hostile/{stem}.onnx");
        let out = Command::cargo_bin("netstat").unwrap().arg(&p).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{stem}");
        let err = String::from_utf8(out.stderr).unwrap();
        let want = format!("node {node}: its initializers hold {held} parameters, but a ");
        assert!(err.contains(&want) && err.contains(&format!(" has {counted}: ")), "{stem}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// Control characters in node names and op types stay escaped: a `\r` in a name ended `netstat
/// import`'s YAML comment and added a layer `evil` (exit 0); an ESC sequence or a newline in an
/// op type reached the terminal through `--allow-unknown`'s warning.
#[test]
fn node_names_and_op_types_cannot_add_layers_or_lines() {
    let run = |args: &[&str]| Command::cargo_bin("netstat").unwrap().args(args).output().unwrap();
    let out = run(&["import", "tests/fixtures/onnx/hostile/name_cr.onnx"]);
    assert!(out.status.success());
    let spec = String::from_utf8(out.stdout).unwrap();
    assert!(!spec.contains('\r') && spec.contains("# #0 \"r\\r  - {name: evil"), "{spec}");
    let out = run(&["tests/fixtures/onnx/hostile/name_cr.onnx", "-f", "csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(!csv.contains("evil") && csv.contains("\nRelu_0,relu,"), "{csv}");
    for (stem, escaped) in [("op_esc", "Foo\\u{1b}[31mRED"), ("op_newline", "Foo\\n  - {name: evil")] {
        let out = run(&["--allow-unknown", &format!("tests/fixtures/onnx/hostile/{stem}.onnx"), "-f", "csv"]);
        assert!(out.status.success(), "{stem}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains('\u{1b}') && err.contains(escaped), "{err}");
        let csv = String::from_utf8(out.stdout).unwrap();
        assert!(!csv.contains('\u{1b}') && !csv.contains("\n  - {name"), "{csv}");
    }
}

/// A weight two nodes read is counted once, as a spec says it with `shares` or `tied_to`
/// (scripts/make_hostile_onnx.py); each was counted twice. A Gemm bias that broadcasts is
/// refused by node (the check of initializers had called its dims wrong).
#[test]
fn a_weight_read_twice_is_counted_once() {
    let run = |args: &[&str]| Command::cargo_bin("netstat").unwrap().args(args).output().unwrap();
    // Two Convs on one w [4, 4, 3, 3] and b [4]: 4·4·9 + 4 = 148 parameters (296 before).
    let out = run(&["tests/fixtures/onnx/hostile/shared_conv.onnx", "-f", "csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.contains("\nconv2,conv2d,1x4x8x8,0,") && csv.contains("\ntotal,,,148,"), "{csv}");
    // Gather(wte [50, 16]) and MatMul by its transpose: 50·16 = 800 (1,600 before); the head's
    // MACs stay: 6 tokens · 16 · 50 = 4,800.
    let out = run(&["tests/fixtures/onnx/hostile/tied_lm_head.onnx", "-f", "csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.contains("\nlm_head,linear,1x6x50,0,4800,") && csv.contains("\ntotal,,,800,4800,"), "{csv}");
    let spec = String::from_utf8(run(&["import", "tests/fixtures/onnx/hostile/tied_lm_head.onnx"]).stdout).unwrap();
    assert!(spec.contains("tied_to: \"wte\""), "{spec}");
    let out = run(&["tests/fixtures/onnx/hostile/gemm_bias_broadcast.onnx"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("node #0 \"fc\" (op Gemm): netstat has no kind for Gemm with a bias of shape [1] for 5 outputs"),
        "{err}"
    );
}

/// nn.Conv1d then nn.BatchNorm1d with the rank between them undeclared is a batch_norm1d: it was
/// mapped to batch_norm2d and refused by its rank check. Conv 8·3·3 + 8 = 80 params; the
/// norm's scale and shift 2·8 = 16, its running mean and variance 16 buffers.
#[test]
fn a_batch_norm_after_a_conv1d_is_batch_norm1d() {
    let out = Command::cargo_bin("netstat")
        .unwrap()
        .args(["tests/fixtures/onnx/hostile/conv1d_bn.onnx", "-f", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.contains("\nbn,batch_norm1d,1x8x16,16,") && csv.contains("\ntotal,,,96,"), "{csv}");
}
