//! The model zoo (specs/*.yaml) against published numbers: six totals exactly, and every
//! per-layer row torchvision reports (tests/data/torchvision_layers/*.csv, copied from shared/reference, dumped with
//! forward hooks from torchvision 0.29.2) equal to netstat's row of the same name.

use netstat::analysis::{analyze, Analysis};
use netstat::spec;
use std::collections::HashMap;
use std::path::PathBuf;

fn analyse(path: &str) -> Analysis {
    let s = spec::load(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    analyze(s).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn totals(path: &str) -> (u64, u64) {
    let a = analyse(path);
    (a.totals.params, a.totals.macs)
}

#[test]
fn vgg16() {
    // torchvision vgg.py `_meta`: 138,357,544 params, 15.47 GFLOPS (= GMACs) → 15,470,264,320
    // (shared/reference/README.md, the project's reference data).
    assert_eq!(totals("specs/vgg16.yaml"), (138_357_544, 15_470_264_320));
}

#[test]
fn resnet18() {
    // torchvision resnet.py `_meta`: 11,689,512 params, 1,814,073,344 MACs.
    assert_eq!(totals("specs/resnet18.yaml"), (11_689_512, 1_814_073_344));
}

#[test]
fn resnet50_and_its_batchnorm_buffers() {
    // torchvision resnet.py `_meta` (v1.5): 25,557,032 params, 4,089,184,256 MACs.
    let a = analyse("specs/resnet50.yaml");
    assert_eq!((a.totals.params, a.totals.macs), (25_557_032, 4_089_184_256));
    // BatchNorm running mean + var = 2 · Σ BN channels = 2 · 26,560 = 53,120 buffer values
    // (shared/reference/README.md, the project's reference data), reported apart from params.
    assert_eq!(a.totals.buffers, 53_120);
}

#[test]
fn mobilenet_v2() {
    // torchvision mobilenetv2.py `_meta`: 3,504,872 params, 300,774,272 MACs.
    assert_eq!(totals("specs/mobilenet_v2.yaml"), (3_504_872, 300_774_272));
}

#[test]
fn vit_b_16() {
    // torchvision vision_transformer.py `_meta`: 86,567,656 params, 17,563,828,224 MACs.
    let a = analyse("specs/vit_b_16.yaml");
    assert_eq!((a.totals.params, a.totals.macs), (86_567_656, 17_563_828_224));
    // Of which the attention matmuls QKᵀ and A·V: 12 · 2 · 197² · 768 = 715,327,488 (README).
    let attn: u64 = a
        .layers
        .iter()
        .filter(|l| a.layer_spec(l).kind.name() == "multi_head_attention")
        .map(|l| l.macs - 4 * 197 * 768 * 768)
        .sum();
    assert_eq!(attn, 715_327_488);
}

#[test]
fn gpt2_with_tied_head() {
    // HF GPT2Config defaults, lm_head tied to wte, 1,024 tokens: 124,439,808 params;
    // MACs (FlopCounterMode / 2) 145,824,153,600 (shared/reference/README.md, the project's reference data). By hand:
    // per block 1024·(768·2304 + 768² + 2·768·3072) + 2·1024²·768 = 8,858,370,048, ×12 =
    // 106,300,440,576; lm_head 1024·768·50,257 = 39,523,713,024.
    assert_eq!(totals("specs/gpt2.yaml"), (124_439_808, 145_824_153_600));
}

#[test]
fn alexnet_torchvision() {
    // torchvision alexnet.py `_meta`: 61,100,840 params, 714,188,480 MACs.
    assert_eq!(totals("specs/alexnet-torchvision.yaml"), (61_100_840, 714_188_480));
}

/// tests/data/torchvision_layers: the per-layer dumps of torchvision 0.29.2, copied into the
/// repository with their source (its README.md), so a fresh clone tests without the shared folder.
fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/torchvision_layers")
}

#[test]
fn every_torchvision_layer_row_matches() {
    let dir = reference_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "alexnet, mobilenet_v2, resnet18, resnet50, vgg16, vit_b_16 in {}", dir.display());
    for f in files {
        let stem = f.file_stem().unwrap().to_str().unwrap().to_owned();
        let spec =
            if stem == "alexnet" { "specs/alexnet-torchvision.yaml".to_owned() } else { format!("specs/{stem}.yaml") };
        let a = analyse(&spec);
        let rows: HashMap<&str, &netstat::analysis::LayerAnalysis> =
            a.layers.iter().map(|l| (a.layer_spec(l).id.name.as_str(), l)).collect();
        let mut calls: HashMap<String, usize> = HashMap::new();
        let mut rdr = csv::Reader::from_path(&f).unwrap();
        let mut n = 0;
        for rec in rdr.records() {
            let rec = rec.unwrap();
            let (module, out_shape) = (&rec[0], &rec[3]);
            let (params, macs): (u64, u64) = (rec[4].parse().unwrap(), rec[5].parse().unwrap());
            // A module called k > 0 times before is named MODULE_k in the spec (torch.fx naming).
            let k = calls.entry(module.to_owned()).or_default();
            let name = if *k == 0 { module.to_owned() } else { format!("{module}_{k}") };
            *k += 1;
            let l = rows.get(name.as_str()).unwrap_or_else(|| panic!("{spec}: no layer {name} ({stem}.csv)"));
            assert_eq!(l.output.to_string(), out_shape, "{spec}: {name} output shape");
            assert_eq!(l.params, params, "{spec}: {name} params");
            assert_eq!(l.macs, macs, "{spec}: {name} MACs");
            n += 1;
        }
        assert!(n > 20, "{stem}.csv: only {n} rows");
    }
}
