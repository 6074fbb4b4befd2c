//! Differential property tests, part 2 (part 1, analysis against independent derivations, is
//! tests/properties.rs): random small configurations of conv2d, conv_transpose2d, max_pool2d
//! and avg_pool2d (with padding and ceil_mode), linear and multi_head_attention, 1,000 cases per
//! kind, each checked three ways:
//!
//! 1. the analytic output shape equals the shape of candle's *own* op on the same input
//!    (`Tensor::conv2d`, `conv_transpose2d`, `max_pool2d_with_stride`, `avg_pool2d_with_stride`,
//!    `matmul`), which computes it from its own formula — not netstat's builder, which sizes
//!    some outputs from the analysis;
//! 2. the analytic parameter count equals the elements candle's VarMap holds after netstat's
//!    builder made the layer, and candle's own op accepts those weights;
//! 3. netstat's built layer (`netstat measure`'s module) gives the same values as candle's own
//!    op with the same weights (f64, |Δ| ≤ 1e-9·(1 + |y|)), so the runtime computes what it
//!    claims.
//!
//! Padding that candle's ops lack is made explicit: zeros for conv and average pooling,
//! −∞ for max pooling. Ceil mode (absent from candle) is the floor-mode pool of an input padded
//! on the right by `stride − 1` more, dropping a last window that starts in the right padding
//! (PyTorch's MaxPool2d/AvgPool2d docs: "sliding windows that would start in the right padded
//! region are ignored").

use candle_core::{DType, Device, Tensor};
use netstat::analysis::{analyze, Analysis};
use netstat::candle::build::Pass;
use netstat::measure::net::{Net, NoProbe};
use netstat::spec::parse_bytes;
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() }
}

/// Analyse a one-layer spec and build it in candle (f64, CPU, trainable weights, so that they
/// are candle `Var`s in the VarMap): the analysis, the net, an input, and the net's output.
fn built(yaml: &str) -> (Analysis, Net, Tensor, Tensor) {
    let spec = parse_bytes("p.yaml", yaml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let a = analyze(spec).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let net = Net::build(&a, DType::F64, &Device::Cpu, 7, true).unwrap_or_else(|e| panic!("{e:#}\n{yaml}"));
    let x = net.random_input(3).unwrap();
    let y = net
        .forward(x.clone(), Pass { train: false, step: 0 }, &mut NoProbe)
        .unwrap_or_else(|e| panic!("{e:#}\n{yaml}"));
    (a, net, x, y)
}

/// The layer's parameter `suffix` (e.g. `weight`, `q_proj.bias`) from the VarMap.
fn param(net: &Net, suffix: &str) -> Option<Tensor> {
    let data = net.params.vars.data().lock().unwrap();
    data.iter().find(|(k, _)| k.ends_with(&format!(".{suffix}"))).map(|(_, v)| v.as_tensor().clone())
}

fn dims(a: &Analysis) -> Vec<usize> {
    a.layers[0].output.0.iter().map(|&d| d as usize).collect()
}

/// Largest |a − b| / (1 + |b|) over all elements; infinite if any element is NaN (a NaN
/// output must fail the `≤ 1e-9` checks, and `f64::max` alone would drop it). The bound: in
/// f64 each output is a sum of at most ~200 products of values ≤ ~3 in size, so two summation
/// orders differ by ~1e-13; 1e-9 leaves room and still catches any wrong tap or window.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f64> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, |m: f64, d| {
        if d.is_nan() || m.is_infinite() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    })
}

fn with_bias(y: Tensor, b: Option<Tensor>) -> Tensor {
    match b {
        Some(b) => {
            let c = b.dim(0).unwrap();
            y.broadcast_add(&b.reshape((1, c, 1, 1)).unwrap()).unwrap()
        }
        None => y,
    }
}

/// Pad H and W (dims 2, 3) of `x`: `lo` before, `hi` after, with `value`.
fn pad_hw(x: &Tensor, lo: usize, hi: usize, value: f64) -> Tensor {
    netstat::candle::ops::pad(&netstat::candle::ops::pad(x, 2, lo, hi, value).unwrap(), 3, lo, hi, value).unwrap()
}

/// Candle's floor-mode pool on `x` padded by `p` (ceil mode: `s − 1` more on the right, then
/// a last window starting in the right padding dropped, per PyTorch's docs).
fn reference_pool(x: &Tensor, k: [usize; 2], s: [usize; 2], p: usize, ceil: bool, max: bool) -> Tensor {
    let fill = if max { f64::NEG_INFINITY } else { 0.0 };
    let extra = |s: usize| if ceil { s - 1 } else { 0 };
    let xp = netstat::candle::ops::pad(x, 2, p, p + extra(s[0]), fill).unwrap();
    let xp = netstat::candle::ops::pad(&xp, 3, p, p + extra(s[1]), fill).unwrap();
    let y = if max {
        xp.max_pool2d_with_stride((k[0], k[1]), (s[0], s[1])).unwrap()
    } else {
        xp.avg_pool2d_with_stride((k[0], k[1]), (s[0], s[1])).unwrap()
    };
    let (h, w) = (x.dim(2).unwrap(), x.dim(3).unwrap());
    // Windows start at i·s in padded coordinates; one starting at or past h + p starts in
    // the right padding and is ignored.
    let keep = |n: usize, s: usize, len: usize| if ceil && n > 0 && (n - 1) * s >= len + p { n - 1 } else { n };
    let (ho, wo) = (keep(y.dim(2).unwrap(), s[0], h), keep(y.dim(3).unwrap(), s[1], w));
    y.narrow(2, 0, ho).unwrap().narrow(3, 0, wo).unwrap()
}

/// One pooling configuration (max or average) against candle's own pool; the padding is
/// clamped to PyTorch's bound (≤ kernel/2) rather than rejected.
#[allow(clippy::too_many_arguments)]
fn pool_case(
    max: bool,
    n: usize,
    c: usize,
    [h, w]: [usize; 2],
    [kh, kw]: [usize; 2],
    [sh, sw]: [usize; 2],
    p: usize,
    ceil: bool,
) -> Result<(), TestCaseError> {
    let p = p.min(kh.min(kw) / 2);
    // The kernel fits the padded input: a smaller input is grown to the smallest that fits.
    let (h, w) = (h.max(kh.saturating_sub(2 * p)), w.max(kw.saturating_sub(2 * p)));
    let kind = if max { "max_pool2d" } else { "avg_pool2d" };
    let (a, net, x, y) = built(&format!(
        "name: m\ninput: [{c}, {h}, {w}]\nbatch: {n}\nlayers:\n  - {{name: m, kind: {kind}, \
         kernel: [{kh}, {kw}], stride: [{sh}, {sw}], padding: {p}, ceil_mode: {ceil}}}\n"
    ));
    let r = reference_pool(&x, [kh, kw], [sh, sw], p, ceil, max);
    prop_assert_eq!(dims(&a), r.dims().to_vec());
    prop_assert_eq!(a.totals.params, 0);
    prop_assert_eq!(net.params.elements(), 0);
    // Values: max pooling always; average pooling in floor mode, where every window lies in
    // the padded input, so candle's mean over k_h·k_w (padding zeros included) is PyTorch's
    // count_include_pad = true. In ceil mode PyTorch divides an overhanging window by its part
    // inside the padded input: a rule of its own, left to avg_pool2d.rs's unit tests and the
    // gradient check.
    if max || !ceil {
        prop_assert!(rel_diff(&y, &r) <= 1e-9);
    }
    Ok(())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn conv2d_with_per_axis_stride_and_dilation_matches_candle(
        n in 1usize..3, g in 1usize..3, ci in 1usize..3, co in 1usize..3,
        h in 1usize..10, w in 1usize..10, kh in 1usize..4, kw in 1usize..4,
        sh in 1usize..4, sw in 1usize..4, dh in 1usize..3, dw in 1usize..3, p in 0usize..3,
    ) {
        // candle's conv2d takes one stride and one dilation, so the reference dilates the
        // kernel by hand (index arithmetic, not netstat's helper), runs candle's conv at
        // stride 1 (candle sizes that output itself) and keeps every s-th row and column.
        // At least one of stride and dilation differs between the axes (the case under test):
        // an equal pair of strides is made unequal, so no draw is rejected.
        let sw = if sh == sw && dh == dw { sh % 3 + 1 } else { sw };
        let (c_in, c_out) = (ci * g, co * g);
        // The dilated kernel fits the padded input: a smaller input is grown to fit.
        let fit = |x: usize, k: usize, d: usize| x.max((d * (k - 1) + 1).saturating_sub(2 * p));
        let (h, w) = (fit(h, kh, dh), fit(w, kw, dw));
        let (a, net, x, y) = built(&format!(
            "name: c\ninput: [{c_in}, {h}, {w}]\nbatch: {n}\nlayers:\n  - {{name: c, kind: conv2d, c_out: {c_out}, \
             kernel: [{kh}, {kw}], stride: [{sh}, {sw}], padding: {p}, dilation: [{dh}, {dw}], groups: {g}}}\n"
        ));
        let wt = param(&net, "weight").unwrap();
        // Dilation by definition: weight tap (i, j) at (i·d_h, j·d_w) of a zero kernel.
        let (keh, kew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        let mut wd = vec![0f64; c_out * (c_in / g) * keh * kew];
        let wv: Vec<f64> = wt.flatten_all().unwrap().to_vec1().unwrap();
        for o in 0..c_out * (c_in / g) {
            for i in 0..kh {
                for j in 0..kw {
                    wd[o * keh * kew + i * dh * kew + j * dw] = wv[o * kh * kw + i * kw + j];
                }
            }
        }
        let wd = Tensor::from_vec(wd, (c_out, c_in / g, keh, kew), &Device::Cpu).unwrap();
        let full = pad_hw(&x, p, p, 0.0).conv2d(&wd, 0, 1, 1, g).unwrap();
        let pick = |t: &Tensor, dim: usize, s: usize| {
            let idx: Vec<u32> = (0..t.dim(dim).unwrap()).step_by(s).map(|i| i as u32).collect();
            let len = idx.len();
            t.index_select(&Tensor::from_vec(idx, len, &Device::Cpu).unwrap(), dim).unwrap()
        };
        let r = with_bias(pick(&pick(&full, 2, sh), 3, sw), param(&net, "bias"));
        prop_assert_eq!(dims(&a), r.dims().to_vec());
        prop_assert_eq!(a.totals.params, net.params.elements());
        // k_h·k_w·c_in/g·c_out + c_out (PyTorch's Conv2d; bias on by default).
        prop_assert_eq!(a.totals.params as usize, kh * kw * (c_in / g) * c_out + c_out);
        prop_assert!(rel_diff(&y, &r) <= 1e-9);
    }

    #[test]
    fn conv2d_matches_candle(
        n in 1usize..3, g in 1usize..4, ci in 1usize..3, co in 1usize..3,
        h in 1usize..10, w in 1usize..10, kh in 1usize..4, kw in 1usize..4,
        s in 1usize..4, p in 0usize..3, d in 1usize..3, bias: bool, depthwise: bool,
    ) {
        // depthwise: groups = c_in = c_out, the builder's own shifted-slice path.
        let (c_in, c_out) = if depthwise { (g, g) } else { (ci * g, co * g) };
        // The dilated kernel fits the padded input: a smaller input is grown to fit.
        let fit = |x: usize, k: usize| x.max((d * (k - 1) + 1).saturating_sub(2 * p));
        let (h, w) = (fit(h, kh), fit(w, kw));
        let (a, net, x, y) = built(&format!(
            "name: c\ninput: [{c_in}, {h}, {w}]\nbatch: {n}\nlayers:\n  - {{name: c, kind: conv2d, c_out: {c_out}, \
             kernel: [{kh}, {kw}], stride: {s}, padding: {p}, dilation: {d}, groups: {g}, bias: {bias}}}\n"
        ));
        let wt = param(&net, "weight").unwrap();
        // candle's own conv on the explicitly zero-padded input, padding 0.
        let r = with_bias(pad_hw(&x, p, p, 0.0).conv2d(&wt, 0, s, d, g).unwrap(), param(&net, "bias"));
        prop_assert_eq!(dims(&a), r.dims().to_vec());
        prop_assert_eq!(a.totals.params, net.params.elements());
        // k_h·k_w·(c_in/g)·c_out + c_out (PyTorch's Conv2d weight and bias).
        prop_assert_eq!(a.totals.params as usize, kh * kw * (c_in / g) * c_out + if bias { c_out } else { 0 });
        prop_assert!(rel_diff(&y, &r) <= 1e-9);
    }

    #[test]
    fn conv_transpose2d_matches_candle(
        n in 1usize..3, g in 1usize..3, ci in 1usize..3, co in 1usize..3,
        h in 1usize..7, w in 1usize..7, kh in 1usize..4, kw in 1usize..4,
        s in 1usize..4, p in 0usize..3, d in 1usize..3, op in 0usize..3, bias: bool,
    ) {
        let (c_in, c_out) = (ci * g, co * g);
        // PyTorch: output_padding < max(stride, dilation), and the output
        // (i − 1)·s − 2p + d·(k − 1) + output_padding + 1 must be ≥ 1, i.e.
        // 2p ≤ (i − 1)·s + d·(k − 1) + output_padding. Draws outside are clamped into range.
        let op = op % s.max(d);
        let room = |i: usize, k: usize| ((i - 1) * s + d * (k - 1) + op) / 2;
        let p = p.min(room(h, kh)).min(room(w, kw));
        let (a, net, x, y) = built(&format!(
            "name: t\ninput: [{c_in}, {h}, {w}]\nbatch: {n}\nlayers:\n  - {{name: t, kind: conv_transpose2d, c_out: {c_out}, \
             kernel: [{kh}, {kw}], stride: {s}, padding: {p}, output_padding: {op}, dilation: {d}, groups: {g}, bias: {bias}}}\n"
        ));
        let wt = param(&net, "weight").unwrap();
        // candle's own conv_transpose2d has no groups: one call per group, concatenated.
        let parts: Vec<Tensor> = (0..g)
            .map(|i| {
                let xi = x.narrow(1, i * ci, ci).unwrap();
                let wi = wt.narrow(0, i * ci, ci).unwrap();
                xi.conv_transpose2d(&wi, p, op, s, d).unwrap()
            })
            .collect();
        let r = with_bias(Tensor::cat(&parts, 1).unwrap(), param(&net, "bias"));
        prop_assert_eq!(dims(&a), r.dims().to_vec());
        prop_assert_eq!(a.totals.params, net.params.elements());
        // Weight [c_in, c_out/g, k_h, k_w] + c_out (PyTorch's ConvTranspose2d).
        prop_assert_eq!(a.totals.params as usize, c_in * (c_out / g) * kh * kw + if bias { c_out } else { 0 });
        prop_assert!(rel_diff(&y, &r) <= 1e-9);
    }

    #[test]
    fn max_pool2d_matches_candle(
        n in 1usize..3, c in 1usize..4, h in 1usize..12, w in 1usize..12,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4, p in 0usize..3, ceil: bool,
    ) {
        pool_case(true, n, c, [h, w], [kh, kw], [sh, sw], p, ceil)?;
    }

    #[test]
    fn avg_pool2d_matches_candle(
        n in 1usize..3, c in 1usize..4, h in 1usize..12, w in 1usize..12,
        kh in 1usize..5, kw in 1usize..5, sh in 1usize..4, sw in 1usize..4, p in 0usize..3, ceil: bool,
    ) {
        pool_case(false, n, c, [h, w], [kh, kw], [sh, sw], p, ceil)?;
    }

    #[test]
    fn linear_matches_candle(
        n in 1usize..3, l in 1usize..6, fin in 1usize..40, fout in 1usize..40, rank3: bool, bias: bool,
    ) {
        let input = if rank3 { format!("[{l}, {fin}]") } else { format!("[{fin}]") };
        let (a, net, x, y) = built(&format!(
            "name: l\ninput: {input}\nbatch: {n}\nlayers:\n  - {{name: l, kind: linear, out_features: {fout}, bias: {bias}}}\n"
        ));
        let wt = param(&net, "weight").unwrap();
        let mut r = x.broadcast_matmul(&wt.t().unwrap()).unwrap();
        if let Some(b) = param(&net, "bias") {
            r = r.broadcast_add(&b).unwrap();
        }
        prop_assert_eq!(dims(&a), r.dims().to_vec());
        prop_assert_eq!(a.totals.params, net.params.elements());
        prop_assert_eq!(a.totals.params as usize, fin * fout + if bias { fout } else { 0 });
        prop_assert!(rel_diff(&y, &r) <= 1e-9);
    }

    #[test]
    fn multi_head_attention_matches_candle(
        n in 1usize..3, l in 1usize..7, heads in 1usize..4, dh in 1usize..6, bias: bool, causal: bool,
    ) {
        let e = heads * dh;
        let (a, net, x, y) = built(&format!(
            "name: a\ninput: [{l}, {e}]\nbatch: {n}\nlayers:\n  - {{name: a, kind: multi_head_attention, heads: {heads}, \
             bias: {bias}, causal: {causal}}}\n"
        ));
        // Scaled dot-product attention per head (Vaswani et al. 2017, eq. 1), written here with
        // candle's matmul and an explicit softmax, on the layer's own projection weights.
        let proj = |name: &str, t: &Tensor| {
            let w = param(&net, &format!("{name}.weight")).unwrap();
            let y = t.broadcast_matmul(&w.t().unwrap()).unwrap();
            match param(&net, &format!("{name}.bias")) {
                Some(b) => y.broadcast_add(&b).unwrap(),
                None => y,
            }
        };
        let split = |t: Tensor| t.reshape((n, l, heads, dh)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
        let (q, k, v) = (split(proj("q_proj", &x)), split(proj("k_proj", &x)), split(proj("v_proj", &x)));
        let mut s = (q.matmul(&k.t().unwrap()).unwrap() / (dh as f64).sqrt()).unwrap();
        if causal {
            let m: Vec<f64> = (0..l).flat_map(|i| (0..l).map(move |j| if j > i { f64::NEG_INFINITY } else { 0.0 })).collect();
            s = s.broadcast_add(&Tensor::from_vec(m, (l, l), &Device::Cpu).unwrap()).unwrap();
        }
        let ex = s.broadcast_sub(&s.max_keepdim(3).unwrap()).unwrap().exp().unwrap();
        let pr = ex.broadcast_div(&ex.sum_keepdim(3).unwrap()).unwrap();
        let ctx = pr.matmul(&v).unwrap().transpose(1, 2).unwrap().contiguous().unwrap().reshape((n, l, e)).unwrap();
        let r = proj("out_proj", &ctx);
        prop_assert_eq!(dims(&a), r.dims().to_vec());
        prop_assert_eq!(a.totals.params, net.params.elements());
        // PyTorch nn.MultiheadAttention: in_proj 3·E² (+ 3·E), out_proj E² (+ E).
        prop_assert_eq!(a.totals.params as usize, 4 * e * e + if bias { 4 * e } else { 0 });
        prop_assert!(rel_diff(&y, &r) <= 1e-9);
    }
}
