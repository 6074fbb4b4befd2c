//! Issue 14, item 6: the kinds of today's networks and a tiny Llama built and run in candle,
//! forward and one training step, with the counting allocator, against the candle memory model
//! (each kind's rule beside its builder, walked by src/measure/predict.rs), with the bounds the
//! CNNs meet (tests/measure_convs.rs): training, every layer's retained bytes within 3 % or a
//! few KiB of bookkeeping and the total within 1.5 %; inference, every layer's peak within 5 % or
//! 8 KiB (matmul kinds 35 %: gemm's packing buffers, as tests/measure_transformer.rs).
//! `measure` itself checks on every run that the built parameter count and every layer's output
//! shape equal the analysis (it fails naming the layer otherwise) and that every trainable
//! variable got a gradient; the gradient of every kind is checked against finite differences in
//! src/measure/gradcheck.rs.
//!
//! - specs/examples/tiny-llama.yaml: hidden 64, 2 layers, 4 heads, 2 key/value heads, rotary,
//!   SwiGLU, vocab 128, 32 tokens, at batch 8;
//! - tests/fixtures/llm_kinds.yaml: rms_norm, attention with kv_heads/rotary/window and
//!   multi-query, gated_mlp, mixture_of_experts, batch_norm1d, max_pool1d, avg_pool1d (on a
//!   permuted, strided view);
//! - tests/fixtures/recurrent_kinds.yaml: lstm (2 layers), gru (bidirectional), rnn (relu),
//!   a time-major lstm;
//! - tests/fixtures/image_kinds.yaml: group_norm, upsample nearest and bilinear, slice (a view;
//!   step 3 of a strided input and step 2 of a contiguous one as index_select copies).
//!
//! One test function: the counting allocator is process-wide.

mod common;

use netstat::analysis::Overrides;
use netstat::measure::result::Measured;
use netstat::measure::{measure, Settings};
use netstat::report::measured::error_percent;

#[global_allocator]
static ALLOC: netstat::measure::alloc::Counting = netstat::measure::alloc::Counting;

fn settings(train: bool) -> Settings {
    Settings { train, warmup: 2, iters: 2, fake_timings: true, layer_backward: false, ..Settings::default() }
}

/// Inference: every layer's peak within 5 % or 8 KiB of the model; matmul kinds within 35 %.
fn check_peaks(r: &Measured) {
    for m in &r.layers {
        let (got, want) = (m.peak_bytes.unwrap(), m.predicted_candle_peak_bytes);
        let e = error_percent(want, got).expect("a layer's measured peak is above 0 B");
        let bound = if matches!(m.kind, "linear" | "multi_head_attention") { 35.0 } else { 5.0 };
        assert!(
            e.abs() <= bound || got.abs_diff(want) <= 8 << 10,
            "{}: peak {got} measured, {want} predicted ({e:+.1}%)",
            m.name
        );
    }
}

/// Measure `spec` (batch from `o`) forward and training; params built equal `params`.
fn run(spec: &str, o: &Overrides, params: u64, slack: u64) {
    let a = netstat::analyze_file(spec, o).unwrap();
    assert_eq!(a.totals.params, params, "{spec}: analysis");
    let train = measure(&a, &settings(true)).unwrap_or_else(|e| panic!("{spec} train: {e:#}"));
    let infer = measure(&a, &settings(false)).unwrap_or_else(|e| panic!("{spec} inference: {e:#}"));
    for r in [&train, &infer] {
        assert_eq!(r.info.params_built, params, "{spec}: built");
        assert_eq!(r.layers.len(), a.layers.len(), "{spec}: one measured row per layer");
    }
    // Every row, printed when a check fails (cargo test shows a failing test's output).
    for (t, i) in train.layers.iter().zip(&infer.layers) {
        println!(
            "{spec} {:28} retained {:>9} vs {:>9} predicted; peak {:>9} vs {:>9} predicted",
            t.name,
            t.retained_bytes.unwrap(),
            t.predicted_candle_retained_bytes.unwrap(),
            i.peak_bytes.unwrap(),
            i.predicted_candle_peak_bytes
        );
    }
    common::check_retained(&train, 3.0, slack);
    check_peaks(&infer);
}

#[test]
fn tiny_llama_and_the_issue_14_kinds_in_candle() {
    // One thread: small matmuls and the pools' tiles are then in flight one at a time, as the
    // model counts them (tests/measure_convs.rs). Set before candle first uses rayon.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    assert_eq!(candle_core::utils::get_num_threads(), 1);

    // 90,432 params (the spec's header: by hand, and transformers' LlamaForCausalLM sums the same).
    let o = Overrides { batch: Some(8), ..Default::default() };
    run("specs/examples/tiny-llama.yaml", &o, 90_432, 12 << 10);

    // llm_kinds.yaml params by hand (D 128, 32 tokens):
    // proj 128·128 + 128 = 16,512; norm 128;
    // gqa (W_kv = 2·128/4 = 64, no bias) 128·128 + 2·128·64 + 128·128 = 49,152;
    // mqa (W_kv 32, bias) 128·128 + 2·128·32 + 128·128 + 2·128 + 2·32 = 41,280;
    // mlp 3·128·256 = 98,304; moe router 128·4 + 4·3·128·64 = 98,816; bn (C = 128) 2·128 = 256
    // → 16,512 + 128 + 49,152 + 41,280 + 98,304 + 98,816 + 256 = 304,448.
    run("tests/fixtures/llm_kinds.yaml", &Overrides::default(), 304_448, 16 << 10);

    // recurrent_kinds.yaml (I 64): proj 64·64 + 64 = 4,160;
    // lstm (H 512) 4·512·(64 + 512) + 8·512 = 1,183,744 and 4·512·(512 + 512) + 8·512 = 2,101,248;
    // gru (H 256, two directions, I 512) 2·(3·256·(512 + 256) + 6·256) = 1,182,720;
    // rnn (H 512, I 512) 512·512 + 512·512 + 2·512 = 525,312; time_major (H 512, I 512) 2,101,248
    // → 4,160 + 1,183,744 + 2,101,248 + 1,182,720 + 525,312 + 2,101,248 = 7,098,432.
    run("tests/fixtures/recurrent_kinds.yaml", &Overrides::default(), 7_098_432, 16 << 10);

    // image_kinds.yaml: conv 16·16 + 16 = 272; gn 2·16 = 32 → 304.
    run("tests/fixtures/image_kinds.yaml", &Overrides::default(), 304, 12 << 10);
}
