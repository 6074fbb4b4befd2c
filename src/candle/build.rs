//! The builder: each layer kind turns itself into a candle module ([`Build`], implemented in
//! each file in `src/kinds/`, dispatched by `Kind::candle`), with seeded random weights held
//! in a [`VarMap`].
//!
//! Weights come from netstat's own generator (SplitMix64 seeded by `--seed` and the variable
//! name): candle's CPU random generator cannot be seeded. Initialization follows PyTorch's
//! defaults for conv and linear layers: weights and biases uniform in ±1/√fan_in.

use crate::shape::Shape;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;

/// How a forward pass runs: training (dropout active, batch statistics) or inference, and the
/// step number (dropout masks are drawn from the seed, the layer and the step, so a pass can be
/// repeated exactly, as the gradient check needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Training mode.
    pub train: bool,
    /// Step number, mixed into random masks.
    pub step: u64,
}

/// A built layer: its forward function on candle tensors (NCHW for images).
pub trait Layer {
    /// Apply the layer to its inputs (one per `inputs:` entry, in order).
    fn forward(&self, xs: &[Tensor], pass: Pass) -> Result<Tensor>;
}

impl<F: Fn(&[Tensor], Pass) -> Result<Tensor>> Layer for F {
    fn forward(&self, xs: &[Tensor], pass: Pass) -> Result<Tensor> {
        self(xs, pass)
    }
}

/// How a kind builds its candle module, and what that module allocates.
pub trait Build {
    /// Build the module for the analysed input and output shapes (with batch), creating its
    /// weights through `cx`. Errors: a configuration the candle runtime does not support.
    fn build(&self, cx: &mut Ctx) -> Result<Box<dyn Layer>>;

    /// The candle memory rule: what the module [`Build::build`] makes allocates in a forward
    /// at `at`, op by op (its output, its peak in inference, what a training forward keeps
    /// for backward). It follows the builder's own choices (e.g. conv2d's lowering, chosen
    /// once beside both) so that the prediction describes the program measure runs.
    fn memory(&self, at: &super::model::At) -> super::model::CandleLayer;
}

/// Weights of a network: trainable ones in a [`VarMap`], frozen ones (`trainable: false`) as
/// plain tensors, and non-trainable buffers (BatchNorm running statistics).
pub struct Params {
    /// Trainable variables, named `LAYER.weight`, `LAYER.bias`, ….
    pub vars: VarMap,
    /// Frozen parameters (counted as params, never given to the optimizer).
    pub frozen: Vec<(String, Tensor)>,
    /// Elements of buffers created.
    pub buffer_elements: u64,
    /// Every parameter by name (trainable and frozen), for `shares:` and `tied_to`.
    by_name: std::collections::HashMap<String, Tensor>,
    /// Elements of every parameter stored so far (kept as they are stored: summing the store
    /// per layer would make a build quadratic in layers).
    elements: u64,
    seed: u64,
}

impl Params {
    /// Empty, with the seed of every weight.
    pub fn new(seed: u64) -> Params {
        Params {
            vars: VarMap::new(),
            frozen: Vec::new(),
            buffer_elements: 0,
            by_name: Default::default(),
            elements: 0,
            seed,
        }
    }

    /// Elements of all parameters, trainable and frozen, stored through [`Ctx`].
    pub fn elements(&self) -> u64 {
        self.elements
    }
}

/// What a kind's builder gets: its layer's name, shapes, dtype, device and the weight store.
pub struct Ctx<'a> {
    /// Layer name, the prefix of its variables.
    pub name: &'a str,
    /// Input shapes with batch, as analysed.
    pub inputs: &'a [Shape],
    /// Output shape with batch, as analysed.
    pub output: &'a Shape,
    /// Element type (f32, or f64 for the gradient check).
    pub dtype: DType,
    /// Device.
    pub device: &'a Device,
    /// Whether the layer's parameters are trained.
    pub trainable: bool,
    /// The weight store.
    pub params: &'a mut Params,
    /// `shares: OWNER`: every parameter this layer asks for is the owner's of the same suffix
    /// (the same tensor, so one variable gets both layers' gradients).
    pub shares: Option<&'a str>,
}

impl Ctx<'_> {
    /// Input `i`'s dimensions as usize.
    pub fn input(&self, i: usize) -> Vec<usize> {
        self.inputs[i].0.iter().map(|&d| d as usize).collect()
    }

    /// A parameter `NAME.suffix` of `shape`, uniform in ±`bound` from the seeded generator;
    /// a [`Var`] when the layer is trainable. With `shares:` set, the owner's parameter.
    pub fn param(&mut self, suffix: &str, shape: &[usize], bound: f64) -> Result<Tensor> {
        if let Some(owner) = self.shares {
            return self.alias(owner, suffix, shape);
        }
        let name = format!("{}.{suffix}", self.name);
        let t = seeded_uniform(self.params.seed, &name, shape, bound, self.dtype, self.device)?;
        self.store(name, t)
    }

    /// A parameter `NAME.suffix` of `shape` filled with `value` (BatchNorm's γ = 1, β = 0).
    pub fn param_const(&mut self, suffix: &str, shape: &[usize], value: f64) -> Result<Tensor> {
        if let Some(owner) = self.shares {
            return self.alias(owner, suffix, shape);
        }
        let name = format!("{}.{suffix}", self.name);
        let t = Tensor::full(value, shape, self.device)?.to_dtype(self.dtype)?;
        self.store(name, t)
    }

    fn store(&mut self, name: String, t: Tensor) -> Result<Tensor> {
        self.params.elements += t.elem_count() as u64;
        let t = if self.trainable {
            let v = Var::from_tensor(&t)?;
            let t = v.as_tensor().clone();
            self.params.vars.data().lock().expect("var map lock").insert(name.clone(), v);
            t
        } else {
            self.params.frozen.push((name.clone(), t.clone()));
            t
        };
        self.params.by_name.insert(name, t.clone());
        Ok(t)
    }

    /// The owner's parameter `OWNER.suffix` ([`Ctx::shared`]), also filed under this layer's
    /// name so that a later `tied_to: THIS` finds it (the analysis accepts a tie to a layer
    /// that shares or is itself tied).
    pub fn alias(&mut self, owner: &str, suffix: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.shared(owner, suffix, shape)?;
        self.params.by_name.insert(format!("{}.{suffix}", self.name), t.clone());
        Ok(t)
    }

    /// The parameter `LAYER.suffix` an earlier layer created (`tied_to`, `shares:`), which must
    /// have `shape`. The tensor is the same one (a shared [`Var`] when trainable): no new elements.
    ///
    /// Errors: no such parameter (the layer has not been built, or has none), or another shape.
    pub fn shared(&self, layer: &str, suffix: &str, shape: &[usize]) -> Result<Tensor> {
        let name = format!("{layer}.{suffix}");
        let t = self.params.by_name.get(&name).ok_or_else(|| {
            candle_core::Error::msg(format!(
                "parameter {name} does not exist (yet) for layer \"{}\" to share",
                self.name
            ))
        })?;
        if t.dims() != shape {
            return Err(candle_core::Error::msg(format!(
                "shared parameter {name} is {:?}, layer \"{}\" needs {shape:?}",
                t.dims(),
                self.name
            )));
        }
        Ok(t.clone())
    }

    /// A constant buffer (running statistics) filled with `value`.
    pub fn buffer(&mut self, shape: &[usize], value: f64) -> Result<Tensor> {
        self.params.buffer_elements += shape.iter().product::<usize>() as u64;
        Tensor::full(value, shape, self.device)?.to_dtype(self.dtype)
    }

    /// A random stream for this layer (dropout masks), fixed by the seed and the layer name.
    pub fn stream(&self) -> u64 {
        mix(self.params.seed, self.name)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, fast, well-mixed 64-bit generator.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A seed from `seed` and a name (FNV-1a of the name, then mixed).
pub fn mix(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    SplitMix(seed ^ h).next_u64()
}

/// A tensor of `shape` uniform in ±`bound`, drawn from the stream of (`seed`, `name`).
pub fn seeded_uniform(
    seed: u64,
    name: &str,
    shape: &[usize],
    bound: f64,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let mut r = SplitMix(mix(seed, name));
    let n: usize = shape.iter().product();
    match dtype {
        DType::F64 => {
            Tensor::from_vec((0..n).map(|_| (2.0 * r.next_f64() - 1.0) * bound).collect::<Vec<f64>>(), shape, dev)
        }
        _ => Tensor::from_vec(
            (0..n).map(|_| ((2.0 * r.next_f64() - 1.0) * bound) as f32).collect::<Vec<f32>>(),
            shape,
            dev,
        )?
        .to_dtype(dtype),
    }
}
