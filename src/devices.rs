//! Training-step memory per device — on one device, or with the model split over `D` devices the
//! way the 2012 AlexNet was split over two GTX 580s (Krizhevsky, Sutskever, Hinton 2012, §3.2:
//! "half of the kernels (or neurons) on each GPU … the GPUs communicate only in certain layers").
//! `--fit` compares it with a catalog device's memory. Never imports candle.
//!
//! **Training memory, per device** (plain SGD with momentum, as in the 2012 paper, §5):
//! `weights + gradients + momentum + activations kept for backward + received activations`, where
//! - weights = the device's share of params and buffers × dtype size; gradients and momentum are
//!   the same size again (buffers have neither, but are small; they are counted once per role for
//!   simplicity — AlexNet has none);
//! - activations kept for backward = the network input (every device holds the whole batch) + every
//!   layer's output share, each once (× dtype size): an autograd graph keeps every intermediate
//!   until backward (../shared/CANDLE_NOTES.md, "Memory on CPU"); in-place ops, workspaces
//!   (im2col), activation gradients and allocator slack are not counted;
//! - received activations = for each layer that needs its whole input while its input is split
//!   (an *exchange*), the other devices' shares of that input, kept for the weight gradient.
//!
//! **How a layer splits over `D` devices** (model parallelism by channels): every layer's output
//! channels (dim 1; the last dim for `linear`) are divided among the devices, `⌈C/D⌉` on the
//! largest share, and so are its parameters (each output channel owns the same number of weights).
//! A layer *exchanges* when each of its output channels depends on every input channel while its
//! input is split: `linear`, `softmax`, and `conv2d` unless its `groups` is a multiple of `D` (a
//! grouped conv keeps each group on one device). The network input is replicated, so a conv on it
//! (AlexNet's conv1) does not exchange. For the Caffe AlexNet layout (groups 2 on conv2/4/5) and
//! `D = 2` this gives exactly the 2012 split: conv3, fc6, fc7 and fc8 exchange.

use crate::analysis::Analysis;
use crate::graph::Source;
use crate::hardware::Hardware;
use crate::shape::{add, mul};
use serde::Serialize;

/// Training-step memory of one device (the largest share), bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrainingMemory {
    /// Number of devices the model is split over.
    pub devices: u64,
    /// Batch size (whole batch, on every device).
    pub batch: u64,
    /// Weights (params and buffers) held by one device.
    pub weight_bytes: u64,
    /// Their gradients (= weight_bytes).
    pub gradient_bytes: u64,
    /// SGD momentum (= weight_bytes).
    pub momentum_bytes: u64,
    /// The input plus the device's share of every layer output, kept for backward.
    pub activation_bytes: u64,
    /// Other devices' activation shares received by exchanging layers, kept for backward.
    pub received_bytes: u64,
    /// Sum of the above.
    pub total_bytes: u64,
    /// Layers that gather their input from all devices.
    pub exchanging_layers: Vec<String>,
    /// The fit against a device's memory, with `--fit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
}

/// Whether one device's share fits in a catalog device's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fit {
    /// Catalog name (`gtx580`).
    pub hardware: String,
    /// Its memory, bytes.
    pub memory_bytes: u64,
    /// total_bytes ≤ memory_bytes.
    pub fits: bool,
    /// The largest batch whose training memory fits (0 if even the weights do not).
    pub max_batch: u64,
}

/// Per-device training memory of `a` split over `devices` devices (1: no split).
///
/// Errors: `devices` = 0, or a byte count overflowing u64.
pub fn training_memory(a: &Analysis, devices: u64) -> Result<TrainingMemory, String> {
    if devices == 0 {
        return Err("--devices: expected at least 1 device, got 0".into());
    }
    let d = devices;
    let dsize = a.spec.dtype.size();
    let mut weights = 0u64;
    let mut outputs = 0u64;
    let mut received = 0u64;
    let mut exchanging = Vec::new();
    // Elements of each layer's output share, by spec index, for the inputs of later layers.
    let mut share_of = vec![0u64; a.spec.layers.len()];
    for l in &a.layers {
        let spec = a.layer_spec(l);
        let ctx = |m: String| format!("layer \"{}\": {m}", spec.id.name);
        let split = spec.kind.op().split(d);
        let split_dim = split.axis.dim(l.output.rank());
        let elems = l.output.elements().map_err(ctx)?;
        let channels = l.output.0.get(split_dim).copied().filter(|_| l.output.rank() >= 2).unwrap_or(1);
        let out_share = share(elems, channels, d).map_err(ctx)?;
        share_of[l.index] = out_share;
        outputs = add(outputs, out_share, "activation elements").map_err(ctx)?;
        let w = add(l.params, l.buffers, "weights").map_err(ctx)?;
        weights = add(weights, share(w, channels, d).map_err(ctx)?, "weights").map_err(ctx)?;
        if d > 1 && split.gathers {
            let mut any = false;
            for (shape, src) in l.input_shapes.iter().zip(&a.graph.inputs[l.index]) {
                if let Source::Layer(j) = src {
                    let whole = shape.elements().map_err(ctx)?;
                    received = add(received, whole - share_of[*j], "received elements").map_err(ctx)?;
                    any = true;
                }
            }
            if any {
                exchanging.push(spec.id.name.clone());
            }
        }
    }
    let weight_bytes = mul(weights, dsize, "weight bytes")?;
    let activation_bytes = add(a.totals.input_bytes, mul(outputs, dsize, "activation bytes")?, "activation bytes")?;
    let received_bytes = mul(received, dsize, "received bytes")?;
    let mut total = mul(weight_bytes, 3, "weights, gradients and momentum")?;
    total = add(total, activation_bytes, "training memory")?;
    total = add(total, received_bytes, "training memory")?;
    Ok(TrainingMemory {
        devices: d,
        batch: a.spec.batch,
        weight_bytes,
        gradient_bytes: weight_bytes,
        momentum_bytes: weight_bytes,
        activation_bytes,
        received_bytes,
        total_bytes: total,
        exchanging_layers: exchanging,
        fit: None,
    })
}

/// The largest share of `elems` elements over `d` devices when split along a dimension of size
/// `channels`: `elems / channels · ⌈channels / d⌉` (elems is a multiple of channels).
fn share(elems: u64, channels: u64, d: u64) -> Result<u64, String> {
    if channels == 0 || !elems.is_multiple_of(channels) {
        // Not evenly owned per channel (cannot happen for netstat's kinds): keep it whole.
        return Ok(elems);
    }
    mul(elems / channels, channels.div_ceil(d), "share")
}

impl TrainingMemory {
    /// Compare with `hw`'s memory: fits or not, and the largest batch that fits (activations and
    /// received bytes grow linearly with the batch; weights, gradients and momentum do not).
    pub fn fit(mut self, hw: &Hardware) -> Self {
        let fixed = self.weight_bytes.saturating_mul(3);
        let per_batch = self.total_bytes - fixed;
        let per_sample = per_batch / self.batch.max(1);
        let max_batch = match hw.memory_bytes.checked_sub(fixed) {
            Some(room) if per_sample > 0 => room / per_sample,
            Some(_) => u64::MAX,
            None => 0,
        };
        self.fit = Some(Fit {
            hardware: hw.name.clone(),
            memory_bytes: hw.memory_bytes,
            fits: self.total_bytes <= hw.memory_bytes,
            max_batch,
        });
        self
    }

    /// Lines for tables: the breakdown, the exchanges and the fit.
    pub fn summary(&self) -> String {
        use crate::report::units::bytes;
        let mut s = format!(
            "training memory per device ({} device{}, batch {}): weights {} + gradients {} + momentum {} + \
             activations {} + received {} = {}",
            self.devices,
            if self.devices == 1 { "" } else { "s" },
            self.batch,
            bytes(self.weight_bytes),
            bytes(self.gradient_bytes),
            bytes(self.momentum_bytes),
            bytes(self.activation_bytes),
            bytes(self.received_bytes),
            bytes(self.total_bytes)
        );
        if self.devices > 1 {
            let ex = if self.exchanging_layers.is_empty() { "none".into() } else { self.exchanging_layers.join(", ") };
            s.push_str(&format!("\nlayers exchanging activations between devices: {ex}"));
        }
        if let Some(f) = &self.fit {
            s.push_str(&format!(
                "\nfit on {}: {} of {} per device — {}; largest batch that fits: {}",
                f.hardware,
                bytes(self.total_bytes),
                bytes(f.memory_bytes),
                if f.fits { "fits" } else { "does NOT fit" },
                f.max_batch
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Overrides;
    use crate::hardware::resolve;

    fn alexnet_2012(batch: u64) -> Analysis {
        let o = Overrides { batch: Some(batch), ..Overrides::default() };
        crate::analyze_file(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/alexnet-2012.yaml"), &o).unwrap()
    }

    // AlexNet-2012 (Caffe bvlc_alexnet layout), f32, batch 128, by hand:
    // params 60,965,224 → weights 243,860,896 B; ×3 (weights, gradients, momentum) = 731,582,688 B.
    // input 3·227·227·128·4 = 79,148,544 B.
    // outputs per image: conv1/relu1/norm1 3 × 96·55·55 = 3 × 290,400; pool1 96·27·27 = 69,984;
    //   conv2/relu2/norm2 3 × 256·27·27 = 3 × 186,624; pool2 256·13·13 = 43,264;
    //   conv3/relu3/conv4/relu4 4 × 384·13·13 = 4 × 64,896; conv5/relu5 2 × 43,264; pool5, flatten 2 × 9,216;
    //   fc6/relu6/drop6/fc7/relu7/drop7 6 × 4,096; fc8 1,000
    //   = 871,200 + 69,984 + 559,872 + 43,264 + 259,584 + 86,528 + 18,432 + 24,576 + 1,000 = 1,934,440 elements
    //   → × 128 × 4 = 990,433,280 B.
    // One device: 731,582,688 + 79,148,544 + 990,433,280 = 1,801,164,512 B (1.68 GiB) ≤ 3 GiB = 3,221,225,472: fits.
    //   Largest batch: (3,221,225,472 − 731,582,688) / ((79,148,544 + 990,433,280) / 128 = 8,356,108) = 297.9 → 297.
    // Two devices: every channel count is even, so weights and outputs halve: 365,791,344 + 79,148,544
    //   (input replicated) + 495,216,640; received: conv3 gets the other half of pool2 (21,632 per image),
    //   fc6 of flatten (4,608), fc7 of drop6 (2,048), fc8 of drop7 (2,048) = 30,336 × 128 × 4 = 15,532,032 B.
    //   Total 365,791,344 + 79,148,544 + 495,216,640 + 15,532,032 = 955,688,560 B (0.89 GiB) per device: fits.
    #[test]
    fn alexnet_2012_on_one_gtx580_and_on_two() {
        let a = alexnet_2012(128);
        assert_eq!(a.totals.params, 60_965_224);
        let gtx = resolve("gtx580").unwrap();
        let one = training_memory(&a, 1).unwrap().fit(&gtx);
        assert_eq!(one.weight_bytes, 243_860_896);
        assert_eq!(one.activation_bytes, 79_148_544 + 990_433_280);
        assert_eq!(one.received_bytes, 0);
        assert_eq!(one.total_bytes, 1_801_164_512);
        let f = one.fit.as_ref().unwrap();
        assert_eq!((f.fits, f.max_batch, f.memory_bytes), (true, 297, 3_221_225_472));
        assert!(one.exchanging_layers.is_empty());

        let two = training_memory(&a, 2).unwrap().fit(&gtx);
        assert_eq!(two.weight_bytes, 121_930_448);
        assert_eq!(two.activation_bytes, 79_148_544 + 495_216_640);
        assert_eq!(two.received_bytes, 15_532_032);
        assert_eq!(two.total_bytes, 955_688_560);
        assert_eq!(two.exchanging_layers, ["conv3", "fc6", "fc7", "fc8"]);
        assert!(two.fit.as_ref().unwrap().fits);
    }

    #[test]
    fn at_batch_512_one_gtx580_is_too_small_and_two_suffice() {
        // Batch 512: one device 731,582,688 + 512 · 8,356,108 = 5,009,909,984 B > 3 GiB;
        // two devices 365,791,344 + 512 · (618,348 + 3,868,880 + 121,344) = 365,791,344 + 512 · 4,608,572
        //   = 2,725,380,208 B ≤ 3,221,225,472: fits.
        let a = alexnet_2012(512);
        let gtx = resolve("gtx580").unwrap();
        let one = training_memory(&a, 1).unwrap().fit(&gtx);
        assert_eq!((one.total_bytes, one.fit.unwrap().fits), (5_009_909_984, false));
        let two = training_memory(&a, 2).unwrap().fit(&gtx);
        assert_eq!((two.total_bytes, two.fit.as_ref().unwrap().fits), (2_725_380_208, true));
    }

    #[test]
    fn zero_devices_is_an_error() {
        assert!(training_memory(&alexnet_2012(1), 0).unwrap_err().contains("at least 1 device"));
    }
}
