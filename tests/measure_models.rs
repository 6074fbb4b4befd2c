//! Issue 5 acceptance on the transformer and mobile specs: resnet18, mobilenet_v2, vit_b_16 and
//! gpt2 are built in candle and run forward and one training step at batch 1. `measure` checks
//! on every run that the parameter count read from the weight store equals the analysis (at
//! build) and that every layer's output shape equals the analytic one (every forward), and
//! fails naming the layer otherwise; and after backward that every trainable variable got a
//! gradient. Here the parameter counts are also pinned to the published totals.
//!
//! Reduced inputs keep it inside CI on 2 cores (parameter counts do not depend on the input):
//! resnet18 and mobilenet_v2 at 3×32×32 (both reach 1×1 before their pool), gpt2 at 16 tokens
//! (the first 16 of its 1,024 positions). vit_b_16 runs at its full 3×224×224: its spec
//! reshapes the patches to a fixed [768, 196].

use netstat::analysis::Overrides;
use netstat::measure::{measure, Settings};

fn settings(train: bool) -> Settings {
    Settings { train, warmup: 0, iters: 1, fake_timings: true, layer_backward: false, ..Settings::default() }
}

/// Measure `spec` at batch 1 with input `input`, forward and training; the built parameters
/// must equal `published` and the analysis.
fn run(spec: &str, input: &[u64], published: u64) {
    let o = Overrides { batch: Some(1), input: Some(input.to_vec()), dtype: None, ..Default::default() };
    let a = netstat::analyze_file(spec, &o).unwrap();
    assert_eq!(a.totals.params, published, "{spec}: analysis");
    for train in [false, true] {
        let r = measure(&a, &settings(train)).unwrap_or_else(|e| panic!("{spec} train={train}: {e:#}"));
        assert_eq!(r.info.params_built, published, "{spec} train={train}: built");
        assert_eq!(r.layers.len(), a.layers.len(), "{spec}: one measured row per layer");
    }
}

#[test]
fn resnet18_at_32x32() {
    // 11,689,512 params (torchvision resnet.py `_meta`, specs/resnet18.yaml header).
    run("specs/resnet18.yaml", &[3, 32, 32], 11_689_512);
}

#[test]
fn mobilenet_v2_at_32x32() {
    // 3,504,872 params (torchvision mobilenetv2.py `_meta`).
    run("specs/mobilenet_v2.yaml", &[3, 32, 32], 3_504_872);
}

#[test]
fn vit_b_16_at_224x224() {
    // 86,567,656 params (torchvision vision_transformer.py `_meta`, specs/vit_b_16.yaml header).
    run("specs/vit_b_16.yaml", &[3, 224, 224], 86_567_656);
}

#[test]
fn gpt2_at_16_tokens() {
    // 124,439,808 params (Hugging Face GPT-2 small, lm_head tied to wte; specs/gpt2.yaml header).
    run("specs/gpt2.yaml", &[16], 124_439_808);
}
