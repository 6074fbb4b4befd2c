//! Property tests (proptest) of the analytic shape, parameter and MAC rules on small random
//! configurations, 1,000 cases per property.
//!
//! Part 1 (here, no candle): each rule against an independent derivation.
//! - conv2d against conv_transpose2d (two files, two formulas): the transposed convolution with
//!   the same kernel, stride, padding and dilation, and `output_padding` = the remainder the
//!   convolution's floor dropped, maps the convolution's output back to its input shape, with the
//!   same weight count and the same MACs (it is the convolution's input gradient).
//! - pools against an enumeration of their windows, written from PyTorch's MaxPool2d docs:
//!   floor mode keeps the windows that fit in the padded input; `ceil_mode` (size rounded up)
//!   also keeps one partial window overhanging by less than a stride, "if it starts within the
//!   left padding or the input".
//! - linear against conv1d with kernel 1 (same params and MACs, per PyTorch's equivalence).
//! - multi_head_attention against the same network written as separate layers: three input
//!   projections, `Q·Kᵀ`, `A·V` and an output projection.
//!
//! Part 2 — the same configurations run in candle, comparing output shapes and parameter counts —
//! needs the candle runner (`netstat measure`, issue 5) and is not here yet.

// The size rules are written as PyTorch's docs state them (`span ≤ padded`, `p ≤ span / 2`).
#![allow(clippy::int_plus_one, clippy::manual_div_ceil)]

use netstat::analysis::{analyze, Analysis};
use netstat::spec::parse_bytes;
use proptest::prelude::*;

fn run(yaml: &str) -> Result<Analysis, String> {
    let spec = parse_bytes("p.yaml", yaml.as_bytes()).map_err(|e| e.to_string())?;
    analyze(spec).map_err(|e| e.to_string())
}

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() }
}

/// Number of pooling windows along one axis, by enumerating window starts (PyTorch MaxPool2d
/// docs): a window starts at `i·s` in padded coordinates and spans `d·(k − 1) + 1`.
fn windows(input: u64, k: u64, s: u64, p: u64, d: u64, ceil: bool) -> u64 {
    let padded = input + 2 * p;
    let span = d * (k - 1) + 1;
    let mut n = 0;
    let mut full = 0;
    loop {
        let start = n * s;
        let fits = start + span <= padded;
        if fits {
            full = n + 1;
        } else if !(ceil && n == full && start + span - padded < s && start < input + p) {
            // Beyond the last full window, ceil mode (output size rounded up) keeps one more that
            // overhangs the padded input by less than a stride, and only if it starts inside the
            // input or the left padding, not in the right padding (PyTorch MaxPool2d docs).
            break;
        }
        n += 1;
        if !fits {
            break;
        }
    }
    n
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn conv2d_and_its_transpose_invert_each_other(
        n in 1u64..3, g in 1u64..4, ci in 1u64..4, co in 1u64..4,
        h in 1u64..40, w in 1u64..40, kh in 1u64..6, kw in 1u64..6,
        s in 1u64..4, p in 0u64..3, d in 1u64..3, bias: bool,
    ) {
        let (c_in, c_out) = (ci * g, co * g);
        // The dilated kernel must fit the padded input: an input too small for it is grown to
        // the smallest that fits, so every generated case runs (no rejection).
        let fit = |x: u64, k: u64| x.max((d * (k - 1) + 1).saturating_sub(2 * p));
        let (h, w) = (fit(h, kh), fit(w, kw));
        let conv = run(&format!(
            "name: c\ninput: [{c_in}, {h}, {w}]\nbatch: {n}\nlayers:\n  - {{name: c, kind: conv2d, c_out: {c_out}, \
             kernel: [{kh}, {kw}], stride: {s}, padding: {p}, dilation: {d}, groups: {g}, bias: {bias}}}\n"
        )).unwrap();
        let out = &conv.layers[0].output.0;
        let (ho, wo) = (out[2], out[3]);
        // The remainder the floor division dropped: output_padding < stride, as PyTorch requires.
        let (oph, opw) = ((h + 2 * p - d * (kh - 1) - 1) % s, (w + 2 * p - d * (kw - 1) - 1) % s);
        let up = run(&format!(
            "name: t\ninput: [{c_out}, {ho}, {wo}]\nbatch: {n}\nlayers:\n  - {{name: t, kind: conv_transpose2d, \
             c_out: {c_in}, kernel: [{kh}, {kw}], stride: {s}, padding: {p}, dilation: {d}, groups: {g}, \
             output_padding: [{oph}, {opw}], bias: {bias}}}\n"
        )).unwrap();
        prop_assert_eq!(&up.layers[0].output.0, &vec![n, c_in, h, w]);
        let bias_of = |c: u64| if bias { c } else { 0 };
        prop_assert_eq!(conv.layers[0].params - bias_of(c_out), up.layers[0].params - bias_of(c_in));
        prop_assert_eq!(conv.layers[0].params - bias_of(c_out), c_out * (c_in / g) * kh * kw);
        prop_assert_eq!(conv.layers[0].macs, up.layers[0].macs);
    }

    #[test]
    fn pool_sizes_match_an_enumeration_of_windows(
        c in 1u64..4, h in 1u64..40, w in 1u64..40, kh in 1u64..6, kw in 1u64..6,
        s in 1u64..5, ph in 0u64..3, pw in 0u64..3, d in 1u64..3, ceil: bool, max: bool,
    ) {
        let d = if max { d } else { 1 };
        // PyTorch: padding at most half the (dilated) kernel, and the kernel fits the padded
        // input. Out-of-range draws are clamped into range rather than rejected: rejecting
        // discarded about half the draws and, by chance, could exceed proptest's limit of
        // 1,024 rejects.
        let half = |k: u64| (d * (k - 1) + 1) / 2;
        let (ph, pw) = (ph.min(half(kh)), pw.min(half(kw)));
        let fit = |x: u64, k: u64, p: u64| x.max((d * (k - 1) + 1).saturating_sub(2 * p));
        let (h, w) = (fit(h, kh, ph), fit(w, kw, pw));
        let kind = if max { format!("max_pool2d, dilation: {d}") } else { "avg_pool2d".to_owned() };
        let a = run(&format!(
            "name: p\ninput: [{c}, {h}, {w}]\nlayers:\n  - {{name: p, kind: {kind}, kernel: [{kh}, {kw}], \
             stride: {s}, padding: [{ph}, {pw}], ceil_mode: {ceil}}}\n"
        )).unwrap();
        let want = vec![1, c, windows(h, kh, s, ph, d, ceil), windows(w, kw, s, pw, d, ceil)];
        prop_assert_eq!(&a.layers[0].output.0, &want);
        prop_assert_eq!((a.layers[0].params, a.layers[0].macs), (0, 0));
    }

    #[test]
    fn linear_equals_a_kernel_1_conv1d(n in 1u64..4, l in 1u64..20, fin in 1u64..64, fout in 1u64..64, bias: bool) {
        let lin = run(&format!(
            "name: l\ninput: [{l}, {fin}]\nbatch: {n}\nlayers:\n  - {{name: fc, kind: linear, out_features: {fout}, bias: {bias}}}\n"
        )).unwrap();
        let conv = run(&format!(
            "name: c\ninput: [{fin}, {l}]\nbatch: {n}\nlayers:\n  - {{name: c, kind: conv1d, c_out: {fout}, kernel: 1, bias: {bias}}}\n"
        )).unwrap();
        prop_assert_eq!(&lin.layers[0].output.0, &vec![n, l, fout]);
        prop_assert_eq!(&conv.layers[0].output.0, &vec![n, fout, l]);
        prop_assert_eq!(lin.layers[0].params, conv.layers[0].params);
        prop_assert_eq!(lin.layers[0].params, fin * fout + if bias { fout } else { 0 });
        prop_assert_eq!(lin.layers[0].macs, conv.layers[0].macs);
    }

    #[test]
    fn attention_equals_its_projections_and_matmuls(
        n in 1u64..3, l in 1u64..24, heads in 1u64..5, per_head in 1u64..12, bias: bool, causal: bool,
    ) {
        let e = heads * per_head;
        let mha = run(&format!(
            "name: a\ninput: [{l}, {e}]\nbatch: {n}\nlayers:\n  - {{name: att, kind: multi_head_attention, \
             heads: {heads}, bias: {bias}, causal: {causal}}}\n"
        )).unwrap();
        let parts = run(&format!(
            "name: a\ninput: [{l}, {e}]\nbatch: {n}\nlayers:\n\
             \x20 - {{name: q, kind: linear, out_features: {e}, bias: {bias}, inputs: [input]}}\n\
             \x20 - {{name: k, kind: linear, out_features: {e}, bias: {bias}, inputs: [input]}}\n\
             \x20 - {{name: v, kind: linear, out_features: {e}, bias: {bias}, inputs: [input]}}\n\
             \x20 - {{name: scores, kind: matmul, transpose_b: true, inputs: [q, k]}}\n\
             \x20 - {{name: probs, kind: softmax, dim: -1}}\n\
             \x20 - {{name: ctx, kind: matmul, inputs: [probs, v]}}\n\
             \x20 - {{name: out, kind: linear, out_features: {e}, bias: {bias}}}\n"
        )).unwrap();
        prop_assert_eq!(&mha.layers[0].output.0, &vec![n, l, e]);
        prop_assert_eq!(&parts.layers.last().unwrap().output.0, &vec![n, l, e]);
        prop_assert_eq!(mha.totals.params, parts.totals.params);
        prop_assert_eq!(mha.totals.macs, parts.totals.macs);
    }
}

#[test]
fn window_enumeration_matches_pytorch_examples() {
    // Worked by hand in src/kinds/window.rs (PyTorch pooling_output_shape):
    // k3 s2 p1 on 64: floor 32, ceil 33; k2 s2 p1 ceil on 5: 4 windows by the ceil formula, the
    // 4th would start at 6 ≥ 5 + 1 (in the right padding) → 3. AlexNet pool 55 → 27.
    assert_eq!(windows(64, 3, 2, 1, 1, false), 32);
    assert_eq!(windows(64, 3, 2, 1, 1, true), 33);
    assert_eq!(windows(5, 2, 2, 1, 1, true), 3);
    assert_eq!(windows(55, 3, 2, 0, 1, false), 27);
}
