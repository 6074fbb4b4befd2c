//! The roofline model (Williams, Waterman, Patterson, "Roofline: an insightful visual performance
//! model for multicore architectures", CACM 52(4), 2009) applied layer by layer: arithmetic
//! intensity, the bound (compute or memory) and a predicted time on one device of the
//! [`crate::hardware`] catalog. Never imports candle.
//!
//! Definitions (per layer, one forward pass over the batch):
//! - FLOPs = 2 · MACs (netstat's counting convention: conv/linear/attention multiply-accumulates).
//! - **bytes moved** = input bytes + weight bytes + output bytes: every input tensor read once
//!   (elements × its dtype size), every parameter and buffer read once (elements × the spec's
//!   dtype size) and the output written once (elements × dtype size). Caches, im2col workspaces
//!   and re-reads are not counted: this is the minimum traffic a perfect kernel would need.
//! - arithmetic intensity = FLOPs / bytes moved (FLOP per byte).
//! - compute time = FLOPs / peak FLOP/s (the peak for the spec's dtype, [`Hardware::peak_flops_per_s`]);
//!   memory time = bytes moved / peak bandwidth; predicted time = the larger of the two.
//! - bound = `compute` when compute time ≥ memory time (intensity ≥ the ridge point
//!   peak FLOP/s ÷ bandwidth), else `memory`. Layers with no FLOPs (ReLU, pooling) are memory-bound.
//!
//! The prediction is a lower bound on time: real kernels reach a fraction of either roof.
//! With measured times attached ([`Roofline::attach_measured`]) each layer shows the achieved
//! fraction of its bound = predicted time / measured time.

use crate::analysis::Analysis;
use crate::graph::Source;
use crate::hardware::Hardware;
use crate::shape::{add, mul};
use serde::Serialize;

/// Which roof limits a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// FLOPs / peak FLOP/s ≥ bytes / bandwidth.
    Compute,
    /// bytes / bandwidth > FLOPs / peak FLOP/s.
    Memory,
}

impl Bound {
    /// `compute` or `memory`.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Compute => "compute",
            Bound::Memory => "memory",
        }
    }
}

/// One layer on the roofline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRoofline {
    /// Input bytes + weight (params and buffers) bytes + output bytes.
    pub bytes_moved: u64,
    /// FLOPs / bytes moved, FLOP per byte.
    pub arithmetic_intensity: f64,
    /// The limiting roof.
    pub bound: Bound,
    /// max(FLOPs / peak FLOP/s, bytes moved / bandwidth), milliseconds.
    pub predicted_time_ms: f64,
    /// Measured time, milliseconds, when a measurement was attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_time_ms: Option<f64>,
    /// predicted / measured: the fraction of its roof the layer achieved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_fraction: Option<f64>,
}

/// A whole network on one device's roofline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Roofline {
    /// Catalog name of the device (`h200`).
    pub hardware: String,
    /// Its description.
    pub description: String,
    /// Which peak applies to the spec's dtype (`fp32`, `fp16`, `bf16`).
    pub peak_kind: String,
    /// That peak, FLOP/s.
    pub peak_flops_per_s: f64,
    /// Peak memory bandwidth, bytes/s.
    pub memory_bandwidth_bytes_per_s: f64,
    /// peak FLOP/s ÷ bandwidth, FLOP per byte.
    pub ridge_flops_per_byte: f64,
    /// One entry per analysed layer, in execution order (in reports: under each layer).
    #[serde(skip)]
    pub layers: Vec<LayerRoofline>,
    /// The whole network: Σ bytes moved, Σ FLOPs / Σ bytes, Σ predicted time (layers run one
    /// after another); its bound is the one whose layers take most of the predicted time
    /// (in reports: under the totals).
    #[serde(skip)]
    pub total: LayerRoofline,
}

/// Put every layer of `a` on `hw`'s roofline.
///
/// Errors: a byte count overflowing u64 (message names the layer).
pub fn roofline(a: &Analysis, hw: &Hardware) -> Result<Roofline, String> {
    let (peak, peak_kind) = hw.peak_flops_per_s(a.spec.dtype);
    let bw = hw.memory_bandwidth_bytes_per_s;
    let dsize = a.spec.dtype.size();
    let mut layers = Vec::with_capacity(a.layers.len());
    let (mut total_bytes, mut total_flops, mut total_ms) = (0u64, 0u64, 0f64);
    let mut compute_ms = 0f64;
    for l in &a.layers {
        let name = &a.layer_spec(l).id.name;
        let ctx = |m: String| format!("layer \"{name}\": {m}");
        let mut bytes = 0u64;
        for (shape, src) in l.input_shapes.iter().zip(&a.graph.inputs[l.index]) {
            let size = match src {
                Source::Input => a.spec.input.dtype.size(),
                Source::Layer(_) => dsize,
            };
            let b = mul(shape.elements().map_err(ctx)?, size, "input bytes").map_err(ctx)?;
            bytes = add(bytes, b, "bytes moved").map_err(ctx)?;
        }
        let weights = mul(add(l.params, l.buffers, "weights").map_err(ctx)?, dsize, "weight bytes").map_err(ctx)?;
        bytes = add(bytes, weights, "bytes moved").map_err(ctx)?;
        bytes = add(bytes, l.output_bytes, "bytes moved").map_err(ctx)?;
        let flops = l.flops();
        let t_compute = flops as f64 / peak;
        let t_memory = bytes as f64 / bw;
        let bound = if flops > 0 && t_compute >= t_memory { Bound::Compute } else { Bound::Memory };
        let predicted_time_ms = t_compute.max(t_memory) * 1e3;
        total_bytes = add(total_bytes, bytes, "total bytes moved")?;
        total_flops = add(total_flops, flops, "total FLOPs")?;
        total_ms += predicted_time_ms;
        if bound == Bound::Compute {
            compute_ms += predicted_time_ms;
        }
        layers.push(LayerRoofline {
            bytes_moved: bytes,
            arithmetic_intensity: ratio(flops, bytes),
            bound,
            predicted_time_ms,
            measured_time_ms: None,
            achieved_fraction: None,
        });
    }
    Ok(Roofline {
        hardware: hw.name.clone(),
        description: hw.description.clone(),
        peak_kind: peak_kind.to_owned(),
        peak_flops_per_s: peak,
        memory_bandwidth_bytes_per_s: bw,
        ridge_flops_per_byte: peak / bw,
        layers,
        total: LayerRoofline {
            bytes_moved: total_bytes,
            arithmetic_intensity: ratio(total_flops, total_bytes),
            bound: if compute_ms >= total_ms - compute_ms && total_ms > 0.0 { Bound::Compute } else { Bound::Memory },
            predicted_time_ms: total_ms,
            measured_time_ms: None,
            achieved_fraction: None,
        },
    })
}

fn ratio(flops: u64, bytes: u64) -> f64 {
    if bytes == 0 {
        0.0
    } else {
        flops as f64 / bytes as f64
    }
}

impl Roofline {
    /// Attach measured per-layer times (milliseconds, one per layer in execution order) and
    /// compute each layer's achieved fraction = predicted / measured.
    ///
    /// Errors: a count that differs from the number of layers, or a time that is not positive.
    pub fn attach_measured(&mut self, times_ms: &[f64]) -> Result<(), String> {
        if times_ms.len() != self.layers.len() {
            return Err(format!("expected {} measured layer times, got {}", self.layers.len(), times_ms.len()));
        }
        if let Some(t) = times_ms.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
            return Err(format!("expected positive measured times, got {t}"));
        }
        for (l, &t) in self.layers.iter_mut().zip(times_ms) {
            l.measured_time_ms = Some(t);
            l.achieved_fraction = Some(l.predicted_time_ms / t);
        }
        let sum: f64 = times_ms.iter().sum();
        self.total.measured_time_ms = Some(sum);
        self.total.achieved_fraction = Some(self.total.predicted_time_ms / sum);
        Ok(())
    }

    /// The roof at arithmetic intensity `ai` (FLOP per byte): min(peak FLOP/s, `ai` × bandwidth),
    /// FLOP/s (Williams et al. 2009, eq. 1).
    pub fn attainable_flops_per_s(&self, ai: f64) -> f64 {
        self.peak_flops_per_s.min(ai * self.memory_bandwidth_bytes_per_s)
    }

    /// One line for tables: the device, its roofs and the predicted total.
    pub fn summary_line(&self) -> String {
        let mut s = format!(
            "roofline on {} ({}): {} peak {:.1} TFLOP/s, {:.1} GB/s, ridge {:.1} FLOP/B; \
             predicted {} (Σ per layer, lower bound)",
            self.hardware,
            self.description,
            self.peak_kind,
            self.peak_flops_per_s / 1e12,
            self.memory_bandwidth_bytes_per_s / 1e9,
            self.ridge_flops_per_byte,
            time_ms(self.total.predicted_time_ms)
        );
        if let Some(m) = self.total.measured_time_ms {
            s.push_str(&format!(
                "; measured {}, {:.0}% of the roofline",
                time_ms(m),
                100.0 * self.total.predicted_time_ms / m
            ));
        }
        s
    }
}

/// Milliseconds in a human unit: `12.3 µs`, `4.56 ms`, `1.23 s`.
pub fn time_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.1} µs", ms * 1e3)
    } else if ms < 1e3 {
        format!("{ms:.2} ms")
    } else {
        format!("{:.2} s", ms / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Overrides;
    use crate::hardware::resolve;

    fn alexnet() -> Analysis {
        crate::analyze_file(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/alexnet.yaml"), &Overrides::default()).unwrap()
    }

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() <= 1e-9 * want.abs().max(1e-12), "got {got}, want {want}");
    }

    // specs/alexnet.yaml (d2l layout), batch 1, f32. Bytes moved by hand:
    // conv1: input 3·224·224 = 150,528 el → 602,112 B; weights 96·3·11·11 + 96 = 34,944 → 139,776 B;
    //   output 96·54·54 = 279,936 el → 1,119,744 B; total 1,861,632 B.
    //   FLOPs 2 · 279,936 · 363 = 203,233,536; intensity 203,233,536 / 1,861,632 = 109.1696… FLOP/B.
    // fc1: input 6,400 el → 25,600 B; weights 26,218,496 → 104,873,984 B; output 4,096 el → 16,384 B;
    //   total 104,915,968 B. FLOPs 2 · 26,214,400 = 52,428,800; intensity 0.49972… FLOP/B.
    // relu1: input 1,119,744 B + output 1,119,744 B = 2,239,488 B; no FLOPs: memory-bound.
    const CONV1_BYTES: u64 = 602_112 + 139_776 + 1_119_744;
    const CONV1_FLOPS: f64 = 203_233_536.0;
    const FC1_BYTES: u64 = 25_600 + 104_873_984 + 16_384;
    const FC1_FLOPS: f64 = 52_428_800.0;
    const RELU1_BYTES: u64 = 2 * 1_119_744;

    #[test]
    fn alexnet_bytes_and_intensity() {
        let r = roofline(&alexnet(), &resolve("h200").unwrap()).unwrap();
        assert_eq!(r.layers[0].bytes_moved, CONV1_BYTES);
        assert_eq!(CONV1_BYTES, 1_861_632);
        close(r.layers[0].arithmetic_intensity, 203_233_536.0 / 1_861_632.0);
        assert_eq!(r.layers[1].bytes_moved, RELU1_BYTES);
        assert_eq!((r.layers[1].arithmetic_intensity, r.layers[1].bound), (0.0, Bound::Memory));
        assert_eq!(r.layers[14].bytes_moved, FC1_BYTES);
        assert_eq!(FC1_BYTES, 104_915_968);
        close(r.layers[14].arithmetic_intensity, 52_428_800.0 / 104_915_968.0);
    }

    /// (device, peak FLOP/s, bandwidth B/s, conv1 bound, conv1 ms, fc1 ms), all by hand:
    /// conv1 AI 109.17 is above every ridge (gtx580 1.581056e12/192.384e9 = 8.218; v100 15.7e12/900e9
    /// = 17.44; a100 19.5e12/2039e9 = 9.564; h100 67e12/3.35e12 = 20.0; h200 67e12/4.8e12 = 13.96):
    /// compute-bound, time = 203,233,536 / peak. fc1 AI 0.4997 is below every ridge: memory-bound,
    /// time = 104,915,968 / bandwidth.
    /// - gtx580: conv1 203,233,536 / 1.581056e12 s = 0.128542… ms; fc1 104,915,968 / 192.384e9 s = 0.545346… ms
    /// - v100:   conv1 / 15.7e12 = 0.0129448… ms;  fc1 / 900e9  = 0.116573… ms
    /// - a100:   conv1 / 19.5e12 = 0.0104222… ms;  fc1 / 2039e9 = 0.0514546… ms
    /// - h100:   conv1 / 67e12   = 0.00303334… ms; fc1 / 3.35e12 = 0.0313182… ms
    /// - h200:   conv1 / 67e12   = 0.00303334… ms; fc1 / 4.8e12  = 0.0218575… ms
    #[test]
    fn alexnet_on_every_catalog_device() {
        let a = alexnet();
        let cases = [
            ("gtx580", 1.581056e12, 192.384e9, 0.128_542_908_0, 0.545_346_640_1),
            ("v100", 15.7e12, 900e9, 0.012_944_811_2, 0.116_573_297_8),
            ("a100", 19.5e12, 2039e9, 0.010_422_232_6, 0.051_454_618_9),
            ("h100", 67e12, 3.35e12, 0.003_033_336_4, 0.031_318_199_4),
            ("h200", 67e12, 4.8e12, 0.003_033_336_4, 0.021_857_493_3),
        ];
        for (dev, peak, bw, conv1_ms, fc1_ms) in cases {
            let r = roofline(&a, &resolve(dev).unwrap()).unwrap();
            assert_eq!((r.peak_flops_per_s, r.memory_bandwidth_bytes_per_s, r.peak_kind.as_str()), (peak, bw, "fp32"));
            assert!(r.ridge_flops_per_byte < 109.0 && r.ridge_flops_per_byte > 0.5, "{dev}");
            assert_eq!(r.layers[0].bound, Bound::Compute, "{dev}");
            close(r.layers[0].predicted_time_ms, CONV1_FLOPS / peak * 1e3);
            assert!(
                (r.layers[0].predicted_time_ms - conv1_ms).abs() < 1e-9,
                "{dev} conv1 {}",
                r.layers[0].predicted_time_ms
            );
            assert_eq!(r.layers[14].bound, Bound::Memory, "{dev}");
            close(r.layers[14].predicted_time_ms, FC1_BYTES as f64 / bw * 1e3);
            assert!(
                (r.layers[14].predicted_time_ms - fc1_ms).abs() < 1e-9,
                "{dev} fc1 {}",
                r.layers[14].predicted_time_ms
            );
            assert!(FC1_FLOPS / peak * 1e3 < fc1_ms, "{dev}: fc1 memory time exceeds its compute time");
            // ReLU: bytes / bandwidth.
            close(r.layers[1].predicted_time_ms, RELU1_BYTES as f64 / bw * 1e3);
            // The total is the sum of the layers.
            close(r.total.predicted_time_ms, r.layers.iter().map(|l| l.predicted_time_ms).sum());
        }
    }

    #[test]
    fn half_precision_uses_the_tensor_peak_and_half_the_bytes() {
        // bf16 on the h200: conv1 bytes halve to 930,816; FLOPs stay 203,233,536; the peak is
        // 989.5e12 → 203,233,536 / 989.5e12 s = 0.000205390… ms vs memory 930,816 / 4.8e12 s = 0.000193920 ms:
        // still compute-bound (AI 218.3 ≥ ridge 989.5/4.8 = 206.1).
        let o = Overrides { dtype: Some(crate::shape::DType::Bf16), ..Default::default() };
        let a = crate::analyze_file(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/alexnet.yaml"), &o).unwrap();
        let r = roofline(&a, &resolve("h200").unwrap()).unwrap();
        assert_eq!(r.peak_kind, "bf16");
        assert_eq!(r.layers[0].bytes_moved, 1_861_632 / 2);
        assert_eq!(r.layers[0].bound, Bound::Compute);
        close(r.layers[0].predicted_time_ms, 203_233_536.0 / 989.5e12 * 1e3);
    }

    #[test]
    fn the_roof_is_bandwidth_times_intensity_up_to_the_peak() {
        // h200: bandwidth 4.8e12 B/s, fp32 peak 67e12 FLOP/s, ridge 67 / 4.8 = 13.958… FLOP/B.
        let r = roofline(&alexnet(), &resolve("h200").unwrap()).unwrap();
        assert_eq!(r.attainable_flops_per_s(1.0), 4.8e12);
        assert_eq!(r.attainable_flops_per_s(10.0), 48e12);
        assert_eq!(r.attainable_flops_per_s(100.0), 67e12);
        close(r.attainable_flops_per_s(r.ridge_flops_per_byte), 67e12);
    }

    #[test]
    fn measured_times_give_the_achieved_fraction() {
        let mut r = roofline(&alexnet(), &resolve("gtx580").unwrap()).unwrap();
        let n = r.layers.len();
        assert!(r.attach_measured(&[1.0]).unwrap_err().contains(&format!("expected {n} measured layer times, got 1")));
        let times: Vec<f64> = r.layers.iter().map(|l| l.predicted_time_ms * 4.0).collect();
        r.attach_measured(&times).unwrap();
        close(r.layers[0].achieved_fraction.unwrap(), 0.25);
        assert!(r.summary_line().contains("25% of the roofline"), "{}", r.summary_line());
    }
}
