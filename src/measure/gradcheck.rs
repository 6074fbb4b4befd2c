//! Gradient check of every kind's candle module: analytic gradients (candle backward) against
//! central finite differences, in f64, on tiny shapes.
//!
//! For a network `y = f(x; θ)` and a fixed random `r`, the objective is `L = Σ y·r`; for every
//! element of the input and of every parameter (or a sample of 24 of them), the derivative
//! `(L(v + h) − L(v − h)) / 2h` with h = 1e-6 must match backward's to 1e-6 relative.

use super::net::{Net, NoProbe};
use crate::candle::build::{seeded_uniform, Pass};
use candle_core::{DType, Device, Tensor, Var};

/// Check the gradients of the network of `yaml`; returns the largest relative error seen.
pub fn check(yaml: &str) -> Result<f64, String> {
    let spec = crate::spec::parse_bytes("gradcheck.yaml", yaml.as_bytes()).map_err(|e| e.to_string())?;
    let a = crate::analysis::analyze(spec).map_err(|e| e.to_string())?;
    let dev = Device::Cpu;
    let net = Net::build(&a, DType::F64, &dev, 7, true).map_err(|e| format!("{e:#}"))?;
    let x = Var::from_tensor(&net.random_input(11).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    // Token ids are integers: no gradient flows to them.
    let float_input = net.vocab.is_none();
    let pass = Pass { train: true, step: 3 };
    let last = a.layers.last().expect("a layer").output.0.iter().map(|&d| d as usize).collect::<Vec<_>>();
    let r = seeded_uniform(5, "r", &last, 1.0, DType::F64, &dev).map_err(|e| e.to_string())?;
    let objective = || -> Result<Tensor, String> {
        let y = net.forward(x.as_tensor().clone(), pass, &mut NoProbe).map_err(|e| format!("{e:#}"))?;
        (y * &r).and_then(|t| t.sum_all()).map_err(|e| e.to_string())
    };
    let l = objective()?;
    let grads = l.backward().map_err(|e| e.to_string())?;
    let mut vars: Vec<(String, Var)> =
        net.params.vars.data().lock().expect("lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    if float_input {
        vars.push(("input".into(), x.clone()));
    }
    let mut worst = 0.0f64;
    let h = 1e-6;
    for (name, v) in &vars {
        let g = grads.get(v.as_tensor()).ok_or_else(|| format!("{name}: backward gave no gradient"))?;
        let g: Vec<f64> = g.flatten_all().and_then(|t| t.to_vec1()).map_err(|e| e.to_string())?;
        let orig: Vec<f64> = v.as_tensor().flatten_all().and_then(|t| t.to_vec1()).map_err(|e| e.to_string())?;
        let n = orig.len();
        let picks: Vec<usize> =
            if n <= 24 { (0..n).collect() } else { (0..24).map(|i| (i * n / 24 + i % 3).min(n - 1)).collect() };
        let set = |vals: &[f64]| {
            let t = Tensor::from_vec(vals.to_vec(), v.as_tensor().shape(), &dev).map_err(|e| e.to_string())?;
            v.set(&t).map_err(|e| e.to_string())
        };
        let scalar = |t: Tensor| t.to_scalar::<f64>().map_err(|e| e.to_string());
        for &i in &picks {
            let mut p = orig.clone();
            p[i] += h;
            set(&p)?;
            let lp = scalar(objective()?)?;
            p[i] = orig[i] - h;
            set(&p)?;
            let lm = scalar(objective()?)?;
            set(&orig)?;
            let fd = (lp - lm) / (2.0 * h);
            let err = (fd - g[i]).abs() / (1.0f64).max(fd.abs()).max(g[i].abs());
            if err > 1e-6 {
                return Err(format!("{name}[{i}]: backward {:.9} vs finite difference {fd:.9}", g[i]));
            }
            worst = worst.max(err);
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::check;

    /// A one-layer spec on an input `[C, H, W]` at batch 2.
    fn one(input: &str, layer: &str) -> String {
        format!("name: g\ninput: {input}\nbatch: 2\nlayers:\n  - {{name: l, {layer}}}\n")
    }

    fn ok(input: &str, layer: &str) {
        let y = one(input, layer);
        match check(&y) {
            Ok(e) => assert!(e <= 1e-6, "{layer}: {e}"),
            Err(e) => panic!("{layer}: {e}"),
        }
    }

    #[test]
    fn conv2d() {
        // Native padding (rows and columns left over agree): 7 + 2 − 3 = 6 → 4 rows, 0 left.
        ok("[2, 7, 7]", "kind: conv2d, c_out: 3, kernel: 3, stride: 2, padding: 1");
        // Width 8 leaves one column over where height 7 leaves none: explicit pad and crop.
        ok("[2, 7, 8]", "kind: conv2d, c_out: 3, kernel: 3, stride: 2, padding: 1");
        ok("[2, 6, 6]", "kind: conv2d, c_out: 2, kernel: [2, 3], padding: [0, 1, 2, 1], bias: false");
        ok("[4, 6, 6]", "kind: conv2d, c_out: 2, kernel: 3, groups: 2, dilation: 2");
        ok("[2, 5, 5]", "kind: conv2d, c_out: 3, kernel: 1, stride: 2");
        // Stride and dilation that differ between the axes (the dilated-kernel path).
        ok("[2, 7, 8]", "kind: conv2d, c_out: 3, kernel: [3, 2], stride: [1, 2], dilation: [2, 1], padding: 1");
    }

    #[test]
    fn depthwise_conv2d() {
        ok("[3, 7, 6]", "kind: conv2d, c_out: 3, kernel: 3, stride: 2, padding: 1, groups: 3");
        ok("[3, 6, 6]", "kind: conv2d, c_out: 3, kernel: 3, padding: same, groups: 3, dilation: 2");
    }

    #[test]
    fn max_pool2d() {
        ok("[2, 7, 7]", "kind: max_pool2d, kernel: 3, stride: 2");
        ok("[2, 6, 7]", "kind: max_pool2d, kernel: 3, stride: 2, padding: 1, ceil_mode: true");
        ok("[1, 8, 8]", "kind: max_pool2d, kernel: 2");
        ok("[1, 9, 9]", "kind: max_pool2d, kernel: 2, dilation: 2, stride: 1");
    }

    #[test]
    fn avg_pool2d() {
        ok("[2, 7, 7]", "kind: avg_pool2d, kernel: 3, stride: 2");
        ok("[2, 6, 7]", "kind: avg_pool2d, kernel: 3, stride: 2, padding: 1, ceil_mode: true");
        ok("[2, 6, 7]", "kind: avg_pool2d, kernel: 3, stride: 2, padding: 1, count_include_pad: false");
    }

    #[test]
    fn adaptive_avg_pool2d() {
        ok("[2, 5, 7]", "kind: adaptive_avg_pool2d, output_size: 1");
        ok("[2, 5, 7]", "kind: adaptive_avg_pool2d, output_size: [2, 3]");
    }

    #[test]
    fn lrn() {
        ok("[7, 3, 3]", "kind: lrn, size: 5, alpha: 0.1, beta: 0.75, k: 2");
        ok("[4, 3, 3]", "kind: lrn, size: 2, alpha: 0.5");
    }

    #[test]
    fn elementwise_and_shape_kinds() {
        ok("[2, 3, 3]", "kind: relu");
        ok("[2, 3, 3]", "kind: sigmoid");
        ok("[2, 3, 3]", "kind: tanh");
        ok("[3, 2, 2]", "kind: softmax, dim: 1");
        ok("[5]", "kind: softmax");
        ok("[2, 3, 3]", "kind: dropout, p: 0.5");
        ok("[2, 3, 3]", "kind: flatten");
    }

    #[test]
    fn lora_linear() {
        // LoRA (Hu et al. 2021): the base weight and bias are frozen (plain tensors, no Var);
        // A, B and the input must match finite differences.
        ok("[5]", "kind: linear, out_features: 3, lora: {rank: 2, alpha: 4}");
        ok("[4, 6]", "kind: linear, out_features: 3, bias: false, lora: {rank: 2}");
        let y = one("[5]", "kind: linear, out_features: 3, lora: {rank: 2}");
        let a = crate::analysis::analyze(crate::spec::parse_bytes("g.yaml", y.as_bytes()).unwrap()).unwrap();
        let net = super::Net::build(&a, super::DType::F64, &super::Device::Cpu, 7, true).unwrap();
        let mut vars: Vec<String> = net.params.vars.data().lock().unwrap().keys().cloned().collect();
        vars.sort();
        assert_eq!(vars, ["l.lora_A.weight", "l.lora_B.weight"]);
        let frozen: Vec<&str> = net.params.frozen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(frozen, ["l.weight", "l.bias"]);
        // 5·3 + 3 frozen, 2·5 + 3·2 = 16 trained: all 34 are the analysis' params.
        assert_eq!(net.params.elements(), a.totals.params);
        assert_eq!(a.totals.params, 34);
    }

    #[test]
    fn lora_attention() {
        // Adapters on every projection of a grouped-query, rotary, causal attention: the frozen
        // projections are no Var; A and B of each target and the input must check.
        let layer = "kind: multi_head_attention, heads: 2, kv_heads: 1, causal: true, rotary: true, lora: {rank: 2, alpha: 4, targets: [q, k, v, o]}";
        ok("[4, 8]", layer);
        let a = crate::analysis::analyze(crate::spec::parse_bytes("g.yaml", one("[4, 8]", layer).as_bytes()).unwrap())
            .unwrap();
        let net = super::Net::build(&a, super::DType::F64, &super::Device::Cpu, 7, true).unwrap();
        let vars = net.params.vars.data().lock().unwrap().len();
        assert_eq!(vars, 8, "A and B of 4 targets");
        assert_eq!(net.params.elements(), a.totals.params);
    }

    #[test]
    fn linear_and_batch_norm() {
        ok("[6]", "kind: linear, out_features: 4");
        ok("[3, 5]", "kind: linear, out_features: 2, bias: false");
        ok("[3, 4, 4]", "kind: batch_norm2d");
    }

    #[test]
    fn a_small_network_end_to_end() {
        let y = "name: g\ninput: [3, 9, 9]\nbatch: 2\nlayers:\n  - {name: c, kind: conv2d, c_out: 4, kernel: 3, padding: 1}\n  - {name: norm, kind: lrn, size: 3}\n  - {name: r, kind: relu}\n  - {name: p, kind: max_pool2d, kernel: 3, stride: 2}\n  - {name: f, kind: flatten}\n  - {name: d, kind: dropout, p: 0.3}\n  - {name: o, kind: linear, out_features: 3}\n";
        assert!(check(y).unwrap() <= 1e-6);
    }

    /// A spec of `layers` (YAML flow mappings, one a line) on an `input` at batch 2.
    fn net(input: &str, layers: &[&str]) {
        let mut y = format!("name: g\ninput: {input}\nbatch: 2\nlayers:\n");
        for l in layers {
            y.push_str(&format!("  - {l}\n"));
        }
        match check(&y) {
            Ok(e) => assert!(e <= 1e-6, "{y}: {e}"),
            Err(e) => panic!("{y}: {e}"),
        }
    }

    #[test]
    fn add_mul_concat_with_broadcasting() {
        // [2,3,4,4] + [2,3,1,1] broadcasts; the pooled branch gets the summed gradient.
        for k in ["add", "mul"] {
            net(
                "[3, 4, 4]",
                &[
                    "{name: p, kind: global_avg_pool, keepdim: true}",
                    "{name: t, kind: tanh, inputs: [input]}",
                    &format!("{{name: l, kind: {k}, inputs: [t, p, input]}}"),
                ],
            );
        }
        net("[3, 4]", &["{name: a, kind: tanh}", "{name: l, kind: concat, axis: -1, inputs: [a, input]}"]);
        net("[3, 4]", &["{name: a, kind: sigmoid}", "{name: l, kind: concat, inputs: [input, a]}"]);
    }

    #[test]
    fn conv1d() {
        ok("[4, 9]", "kind: conv1d, c_out: 4, kernel: 3, stride: 2, padding: 1, groups: 2");
        // 10 + 2 − 5 = 7 → 3 outputs at stride 2, one position left over: pad and crop.
        ok("[2, 10]", "kind: conv1d, c_out: 3, kernel: 3, stride: 2, padding: 1, dilation: 2");
        ok("[2, 6]", "kind: conv1d, c_out: 2, kernel: 1, bias: false");
    }

    #[test]
    fn conv_transpose2d() {
        ok("[4, 3, 3]", "kind: conv_transpose2d, c_out: 2, kernel: 3, stride: 2, padding: 1, output_padding: 1");
        ok("[4, 3, 2]", "kind: conv_transpose2d, c_out: 6, kernel: [2, 3], stride: [2, 1], groups: 2");
        ok("[2, 3, 3]", "kind: conv_transpose2d, c_out: 3, kernel: 3, dilation: 2, padding: 2, bias: false");
        ok("[2, 3, 4]", "kind: conv_transpose2d, c_out: 2, kernel: [2, 3], stride: [2, 1], dilation: [1, 2]");
    }

    #[test]
    fn activations() {
        ok("[2, 3, 3]", "kind: relu6");
        ok("[2, 3, 3]", "kind: silu");
        ok("[2, 3, 3]", "kind: gelu");
        ok("[2, 3, 3]", "kind: gelu, approximate: tanh");
        ok("[2, 3, 3]", "kind: hardswish");
        // 8·x spreads the input over ±8, past relu6's clip at 6 and hardswish's kinks at ±3.
        for k in ["relu6", "hardswish"] {
            let eight = "{name: s, kind: add, inputs: [input, input, input, input, input, input, input, input]}";
            net("[16]", &[eight, &format!("{{name: l, kind: {k}}}")]);
        }
    }

    #[test]
    fn layer_norm() {
        ok("[3, 4]", "kind: layer_norm");
        ok("[2, 3, 4]", "kind: layer_norm, normalized_shape: [3, 4]");
        ok("[3, 4]", "kind: layer_norm, bias: false, eps: 0.001");
        ok("[3, 4]", "kind: layer_norm, elementwise_affine: false");
    }

    #[test]
    fn rms_norm_and_gated_mlp() {
        ok("[3, 4]", "kind: rms_norm");
        ok("[2, 3, 4]", "kind: rms_norm, normalized_shape: [3, 4], eps: 0.001");
        ok("[3, 4]", "kind: rms_norm, elementwise_affine: false");
        ok("[3, 4]", "kind: gated_mlp, hidden: 6");
        ok("[5]", "kind: gated_mlp, hidden: 3, out_features: 2, bias: true");
    }

    #[test]
    fn mixture_of_experts() {
        ok("[3, 4]", "kind: mixture_of_experts, experts: 3, top_k: 2, hidden: 5");
        ok("[4]", "kind: mixture_of_experts, experts: 2, top_k: 1, hidden: 3");
    }

    #[test]
    fn one_d_pools_and_batch_norm() {
        ok("[2, 9]", "kind: max_pool1d, kernel: 3, stride: 2, padding: 1");
        ok("[2, 9]", "kind: max_pool1d, kernel: 2, dilation: 2, stride: 1, ceil_mode: true");
        ok("[2, 9]", "kind: avg_pool1d, kernel: 3, stride: 2, padding: 1, count_include_pad: false");
        ok("[3, 5]", "kind: batch_norm1d");
        ok("[3]", "kind: batch_norm1d, affine: false");
        ok("[4, 3, 3]", "kind: group_norm, num_groups: 2");
        ok("[4, 5]", "kind: group_norm, num_groups: 4, affine: false, eps: 0.01");
        ok("[2, 3, 2]", "kind: upsample, scale_factor: 2");
        ok("[2, 3, 2]", "kind: upsample, mode: bilinear, size: [5, 3]");
        ok("[2, 3, 2]", "kind: upsample, mode: bilinear, scale_factor: [1.5, 2], align_corners: true");
    }

    #[test]
    fn recurrent() {
        // Input [T, I] at batch 2 is N×T×I: batch_first.
        ok("[3, 4]", "kind: lstm, hidden_size: 3, batch_first: true");
        ok("[3, 4]", "kind: gru, hidden_size: 3, batch_first: true, num_layers: 2");
        ok("[3, 4]", "kind: rnn, hidden_size: 3, batch_first: true, bidirectional: true, bias: false");
        ok("[3, 4]", "kind: rnn, hidden_size: 2, batch_first: true, nonlinearity: relu");
        // T×N×I (PyTorch's default): the batch axis 2 is N = 2… read as T = 2 steps of N = 3.
        ok("[3, 4]", "kind: lstm, hidden_size: 2, bidirectional: true, num_layers: 2");
        ok("[3, 4]", "kind: gru, hidden_size: 2, bidirectional: true");
    }

    #[test]
    fn shape_kinds() {
        ok("[2, 3, 4]", "kind: reshape, shape: [4, -1]");
        ok("[2, 3, 4]", "kind: permute, dims: [0, 2, 3, 1]");
        ok("[2, 3, 4]", "kind: transpose, dim0: 1, dim1: -1");
        ok("[3, 4]", "kind: select, dim: 1, index: -1");
        ok("[3, 4]", "kind: slice, dim: 1, start: 1, end: 3");
        ok("[2, 5]", "kind: slice, dim: -1, start: -4, step: 2");
        ok("[2, 3, 4]", "kind: global_avg_pool");
        ok("[3, 4]", "kind: class_token");
        ok("[3, 4]", "kind: pos_embedding, length: 5");
    }

    #[test]
    fn matmul() {
        net(
            "[3, 4]",
            &[
                "{name: a, kind: linear, out_features: 5}",
                "{name: b, kind: linear, out_features: 5, inputs: [input]}",
                "{name: l, kind: matmul, transpose_b: true, inputs: [a, b]}",
            ],
        );
        net("[3, 4]", &["{name: t, kind: transpose}", "{name: l, kind: matmul, inputs: [input, t]}"]);
    }

    #[test]
    fn multi_head_attention() {
        ok("[4, 6]", "kind: multi_head_attention, heads: 2");
        ok("[4, 6]", "kind: multi_head_attention, heads: 3, causal: true, bias: false");
        // Grouped-query, multi-query, rotary and a sliding window (issue 14).
        ok("[5, 8]", "kind: multi_head_attention, heads: 4, kv_heads: 2, rotary: true, causal: true, window: 2");
        ok("[4, 8]", "kind: multi_head_attention, heads: 2, kv_heads: 1, bias: false, rotary: true, rope_theta: 500");
        // Cross-attention: keys and values of another width (kdim = vdim = 5).
        net(
            "[4, 6]",
            &[
                "{name: kv, kind: linear, out_features: 5}",
                "{name: l, kind: multi_head_attention, heads: 2, inputs: [input, kv, kv]}",
            ],
        );
    }

    #[test]
    fn embedding_tied_head_and_shared_layers() {
        // Integer ids: the table, the positions and the tied head get gradients (the input does not).
        net(
            "{shape: [5], dtype: i64}",
            &[
                "{name: wte, kind: embedding, num_embeddings: 7, embedding_dim: 4}",
                "{name: wpe, kind: pos_embedding}",
                "{name: ln, kind: layer_norm}",
                "{name: attn, kind: multi_head_attention, heads: 2, causal: true}",
                "{name: act, kind: gelu, approximate: tanh}",
                "{name: head, kind: linear, out_features: 7, bias: false, tied_to: wte}",
            ],
        );
        // `shares:` b uses a's weight and bias: one variable gets the gradient of both uses.
        net(
            "[4]",
            &[
                "{name: a, kind: linear, out_features: 4}",
                "{name: r, kind: tanh}",
                "{name: b, kind: linear, out_features: 4, shares: a}",
            ],
        );
    }

    #[test]
    fn candles_native_pool_backward_would_fail_this_check() {
        // The check can fail: candle's own max_pool2d scales a 2×2/2 pool's gradient by 1/4
        // (CANDLE_NOTES), so d(Σ pool(x))/dx at the max of [[1, 2], [3, 4]] is 0.25, not 1.
        let x = candle_core::Var::new(&[[[[1f64, 2.], [3., 4.]]]], &candle_core::Device::Cpu).unwrap();
        let y = x.as_tensor().max_pool2d(2).unwrap().sum_all().unwrap();
        let g = y.backward().unwrap();
        let g: Vec<f64> = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(g[3], 1.0, "candle fixed max_pool2d backward: the workaround may go");
    }
}
