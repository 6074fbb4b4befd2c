//! Memory per device — on one device, or with the model split over `D` devices the way the
//! 2012 AlexNet was split over two GTX 580s (Krizhevsky, Sutskever, Hinton 2012, §3.2: "half of
//! the kernels (or neurons) on each GPU … the GPUs communicate only in certain layers").
//!
//! Each device's share is computed by the memory model itself ([`super::model`] with
//! [`super::Options::devices`]): the same schedule, saved tensors, gradients, optimizer state and
//! peaks as one device, with every tensor replaced by this device's share of it (the largest
//! share). `--fit` searches the largest batch whose per-device training peak fits in a memory
//! size with [`super::fit`], the search `netstat memory --fit` uses.
//!
//! **How a layer splits over `D` devices** (model parallelism by channels): every layer's output
//! channels (dim 1; the last dim for `linear`) are divided among the devices, `⌈C/D⌉` on the
//! largest share, and so are its parameters, buffers and the tensors it saves for backward
//! (in proportion, rounded up). The network input and labels are
//! replicated. A layer *exchanges* when each of its output channels depends on every input
//! channel while its input is split (each kind says so, [`crate::kinds::Op::split`]): `linear`,
//! `softmax`, and convolutions unless their `groups` is a multiple of `D` (a grouped conv keeps
//! each group on one device). It receives
//! the other devices' shares of each input that comes from a layer and keeps them for its
//! weight gradient (until its backward). For the Caffe AlexNet layout (groups 2 on conv2/4/5)
//! and `D = 2` this gives exactly the 2012 split: conv3, fc6, fc7 and fc8 exchange.
//! Not modelled: the exchanged gradients in backward and communication buffers.

use super::{Memory, Optimizer, Options};
use crate::analysis::Analysis;
use crate::graph::Source;
use crate::hardware::Hardware;
use crate::shape::DType;
use serde::Serialize;

/// Each layer's channel count and exchange flag for a split over `devices` devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Devices (1: no split).
    pub devices: u64,
    /// Channels of each layer's output along its split dimension, by layer (1 when the output
    /// has rank < 2).
    pub channels: Vec<u64>,
    /// Whether each layer gathers its input from all devices, by layer (never for 1 device).
    pub exchanges: Vec<bool>,
    /// Each layer's execution position (its index into `Analysis::layers`), by layer.
    pub position: Vec<usize>,
}

impl Split {
    /// The split of `a` over `devices` devices.
    ///
    /// Errors: `devices` = 0.
    pub fn new(a: &Analysis, devices: u64) -> Result<Split, String> {
        if devices == 0 {
            return Err("--devices: expected at least 1 device, got 0".into());
        }
        let n = a.spec.layers.len();
        let (mut channels, mut exchanges, mut position) = (vec![1; n], vec![false; n], vec![0; n]);
        for (p, l) in a.layers.iter().enumerate() {
            position[l.index] = p;
            let rule = a.spec.layers[l.index].kind.op().split(devices);
            let (dim, gathers) = (rule.axis.dim(l.output.rank()), rule.gathers);
            channels[l.index] = l.output.0.get(dim).copied().filter(|_| l.output.rank() >= 2).unwrap_or(1);
            exchanges[l.index] =
                devices > 1 && gathers && a.graph.inputs[l.index].iter().any(|s| matches!(s, Source::Layer(_)));
        }
        Ok(Split { devices, channels, exchanges, position })
    }

    /// This device's (the largest) share of `elems` elements owned by layer `i`'s channels:
    /// `⌈elems · ⌈C / D⌉ / C⌉` (`elems / C · ⌈C / D⌉` when each channel owns the same number);
    /// `elems` itself for one device.
    pub fn share(&self, i: usize, elems: u64) -> Result<u64, String> {
        let c = self.channels[i];
        if self.devices == 1 || c == 0 {
            return Ok(elems);
        }
        let s = (elems as u128 * c.div_ceil(self.devices) as u128).div_ceil(c as u128);
        u64::try_from(s).map_err(|_| "share overflows u64".to_owned())
    }

    /// Bytes layer `i` receives from the other devices (`dtype` elements): for each input from
    /// a layer `j`, the whole input less `j`'s share of it; 0 unless `i` exchanges.
    pub fn received_bytes(&self, a: &Analysis, i: usize, dtype: DType) -> Result<u64, String> {
        if !self.exchanges[i] {
            return Ok(0);
        }
        let l = &a.layers[self.position[i]];
        let mut e = 0u64;
        for (shape, src) in l.input_shapes.iter().zip(&a.graph.inputs[i]) {
            if let Source::Layer(j) = *src {
                let whole = shape.elements()?;
                e = crate::shape::add(e, whole - self.share(j, whole)?, "received elements")?;
            }
        }
        super::bytes_of(e, dtype)
    }

    /// Names of the exchanging layers, in execution order.
    pub fn exchanging_names(&self, a: &Analysis) -> Vec<String> {
        a.graph.order.iter().filter(|&&i| self.exchanges[i]).map(|&i| a.spec.layers[i].id.name.clone()).collect()
    }
}

/// One device's training step (the largest share), bytes: the figures of [`Memory`] for
/// `devices` devices, with the fit against a device's memory when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceMemory {
    /// Number of devices the model is split over.
    pub devices: u64,
    /// Batch size (whole batch, on every device).
    pub batch: u64,
    /// The optimizer modelled.
    pub optimizer: Optimizer,
    /// Parameters, buffers and master weights held by one device.
    pub weight_bytes: u64,
    /// Their gradients.
    pub gradient_bytes: u64,
    /// The optimizer's state.
    pub optimizer_state_bytes: u64,
    /// Held for backward after the forward pass, received shares included.
    pub saved_activation_bytes: u64,
    /// Other devices' activation shares received by exchanging layers, kept for backward.
    pub received_bytes: u64,
    /// The most live on one device during the step.
    pub training_peak_bytes: u64,
    /// `phase name` of the stage that reaches it.
    pub training_peak_stage: String,
    /// Layers that gather their input from all devices.
    pub exchanging_layers: Vec<String>,
    /// The fit against a memory size, with `--fit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<Fit>,
}

/// The largest batch whose per-device training peak fits in a memory size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fit {
    /// The device it was read from (`gtx580`), or `None` for a size given as such.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<String>,
    /// The memory size, bytes.
    pub memory_bytes: u64,
    /// training_peak_bytes ≤ memory_bytes at the analysed batch.
    pub fits: bool,
    /// The largest batch whose training peak fits ([`super::fit`]); 0 if batch 1 does not.
    pub max_batch: u64,
}

impl DeviceMemory {
    /// The per-device figures of `m` (a [`Memory`] computed with `devices` devices).
    pub fn of(m: &Memory) -> DeviceMemory {
        DeviceMemory {
            devices: m.devices,
            batch: m.batch,
            optimizer: m.optimizer,
            weight_bytes: m.weight_bytes(),
            gradient_bytes: m.gradient_bytes,
            optimizer_state_bytes: m.optimizer_state_bytes,
            saved_activation_bytes: m.saved_activation_bytes,
            received_bytes: m.received_bytes,
            training_peak_bytes: m.training_peak_bytes,
            training_peak_stage: m.training_peak_stage.clone(),
            exchanging_layers: m.exchanging_layers.clone(),
            fit: None,
        }
    }

    /// Add the fit against `memory_bytes` (of device `hardware`, if it came from one): the
    /// largest batch by [`super::fit`] with the same options.
    ///
    /// Errors: the spec does not analyse at batch 1.
    pub fn with_fit(
        mut self,
        spec: &crate::spec::Spec,
        o: &Options,
        memory_bytes: u64,
        hardware: Option<&Hardware>,
    ) -> Result<Self, crate::error::SpecError> {
        let best = super::fit(spec, memory_bytes, o)?;
        self.fit = Some(Fit {
            hardware: hardware.map(|h| h.name.clone()),
            memory_bytes,
            fits: self.training_peak_bytes <= memory_bytes,
            max_batch: best.map_or(0, |m| m.batch),
        });
        Ok(self)
    }

    /// Lines for tables: the breakdown, the exchanges and the fit.
    pub fn summary(&self) -> String {
        use crate::report::units::bytes;
        let mut s = format!(
            "training memory per device ({} device{}, batch {}, {}): weights {} + gradients {} + optimizer state {} + \
             saved activations {} (received {}); peak {} at {}",
            self.devices,
            if self.devices == 1 { "" } else { "s" },
            self.batch,
            self.optimizer.name(),
            bytes(self.weight_bytes),
            bytes(self.gradient_bytes),
            bytes(self.optimizer_state_bytes),
            bytes(self.saved_activation_bytes),
            bytes(self.received_bytes),
            bytes(self.training_peak_bytes),
            self.training_peak_stage,
        );
        if self.devices > 1 {
            let ex = if self.exchanging_layers.is_empty() { "none".into() } else { self.exchanging_layers.join(", ") };
            s.push_str(&format!("\nlayers exchanging activations between devices: {ex}"));
        }
        if let Some(f) = &self.fit {
            let on = f.hardware.as_deref().map(|h| format!(" on {h}")).unwrap_or_default();
            s.push_str(&format!(
                "\nfit{on}: peak {} of {} per device — {}; largest batch whose training peak fits: {}",
                bytes(self.training_peak_bytes),
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
    use crate::memory::{model, Optimizer};

    fn alexnet_2012(batch: u64) -> Analysis {
        let o = Overrides { batch: Some(batch), ..Overrides::default() };
        crate::analyze_file(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/alexnet-2012.yaml"), &o).unwrap()
    }

    fn momentum(devices: u64) -> Options {
        Options { optimizer: Optimizer::Momentum, devices, ..Options::DEFAULT }
    }

    // AlexNet-2012 (Caffe bvlc_alexnet layout), f32, batch 128, SGD with momentum (the paper's):
    // params 60,965,224 → weights 243,860,896 B = gradients = momentum.
    // Held for backward after the forward pass, per image (no loss: the output is held):
    //   relu1 out 96·55·55 = 290,400 (saved by relu1, norm1); norm1's scratch (padded squares
    //   (96+4)·55·55 = 302,500 + base and divisor 2·290,400) = 883,300 and its output 290,400
    //   (pool1); pool1 out 96·27·27 = 69,984 (conv2); relu2 256·27·27 = 186,624; norm2 scratch
    //   (256+4)·27·27 = 189,540 + 2·186,624 = 562,788 and output 186,624; pool2 256·13·13 = 43,264;
    //   relu3, relu4 384·13·13 = 64,896 each; relu5 43,264; pool5 (= flatten, a view) 9,216;
    //   relu6, drop6, relu7, drop7 4,096 each; fc8 1,000 (conv outputs are freed: relu saves
    //   its output) = 2,713,040 floats = 10,852,160 B;
    //   + argmax indices of pool1, pool2, pool5 (69,984 + 43,264 + 9,216)·8 = 979,712 B
    //   + dropout masks 2·4,096·1 = 8,192 B = 11,840,064 B per image → × 128 = 1,515,528,192 B.
    // Two devices (every channel count even): each layer's tensors halve: 2,713,040/2 =
    //   1,356,520 floats = 5,426,080 B, + 979,712/2 = 489,856 + 8,192/2 = 4,096, + received: conv3
    //   gets the other half of pool2 (21,632), fc6 of flatten (4,608), fc7 of drop6 (2,048), fc8
    //   of drop7 (2,048) = 30,336 floats = 121,344 B → 6,041,376 B per image × 128 =
    //   773,296,128 B, of which received 121,344 · 128 = 15,532,032 B; weights
    //   60,965,224/2 · 4 = 121,930,448 B.
    #[test]
    fn alexnet_2012_on_one_device_and_on_two() {
        let a = alexnet_2012(128);
        assert_eq!(a.totals.params, 60_965_224);
        let m1 = model(&a, &momentum(1)).unwrap();
        let one = DeviceMemory::of(&m1);
        assert_eq!(
            (one.weight_bytes, one.gradient_bytes, one.optimizer_state_bytes),
            (243_860_896, 243_860_896, 243_860_896)
        );
        assert_eq!((one.saved_activation_bytes, one.received_bytes), (1_515_528_192, 0));
        assert!(one.exchanging_layers.is_empty());
        // One device is the memory model's training step itself.
        let plain = model(&a, &Options { optimizer: Optimizer::Momentum, ..Options::DEFAULT }).unwrap();
        assert_eq!(one.training_peak_bytes, plain.training_peak_bytes);
        assert_eq!(m1, plain);

        let two = DeviceMemory::of(&model(&a, &momentum(2)).unwrap());
        assert_eq!((two.weight_bytes, two.optimizer_state_bytes), (121_930_448, 121_930_448));
        assert_eq!((two.saved_activation_bytes, two.received_bytes), (773_296_128, 15_532_032));
        assert_eq!(two.exchanging_layers, ["conv3", "fc6", "fc7", "fc8"]);
        assert!(two.training_peak_bytes < one.training_peak_bytes);
    }

    #[test]
    fn fit_is_memory_fit() {
        // The largest batch on a 3 GiB GTX 580 is memory::fit's answer for the same options.
        let a = alexnet_2012(128);
        let gtx = crate::hardware::resolve("gtx580").unwrap();
        assert_eq!(gtx.memory_bytes, 3 << 30);
        for devices in [1, 2] {
            let o = momentum(devices);
            let m =
                DeviceMemory::of(&model(&a, &o).unwrap()).with_fit(&a.spec, &o, gtx.memory_bytes, Some(&gtx)).unwrap();
            let f = m.fit.unwrap();
            let best = crate::memory::fit(&a.spec, 3 << 30, &o).unwrap().unwrap();
            assert_eq!((f.max_batch, f.fits, f.hardware.as_deref()), (best.batch, true, Some("gtx580")));
            assert!(best.training_peak_bytes <= 3 << 30);
            let next = crate::memory::at_batch(&a.spec, best.batch + 1, &o).unwrap();
            assert!(next.training_peak_bytes > 3 << 30);
        }
    }

    #[test]
    fn zero_devices_is_an_error() {
        let e = model(&alexnet_2012(1), &momentum(0)).unwrap_err();
        assert!(e.message.contains("at least 1 device"), "{}", e.message);
    }
}
