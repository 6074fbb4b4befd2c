//! A network built in candle from an analysed graph, run in the graph's execution order.
//!
//! Each layer's output is dropped right after its last consumer has run: the liveness schedule
//! of the analysis (graph consumers), so predicted and measured memory describe one program.
//! Every forward checks each layer's output shape against the analysis.

use crate::analysis::Analysis;
use crate::candle::build::{Ctx, Layer, Params, Pass};
use crate::graph::Source;
use crate::shape::Shape;
use candle_core::{DType, Device, Tensor};

/// Where a layer reads an input: the network input, or the output of the layer at this
/// position in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The network input.
    Input,
    /// Output of the layer at this execution position.
    At(usize),
}

/// One built layer.
pub struct NetLayer {
    /// Layer name.
    pub name: String,
    /// `kind:` spelling.
    pub kind: &'static str,
    /// Its spec index.
    pub index: usize,
    /// The module.
    pub module: Box<dyn Layer>,
    /// Its inputs.
    pub inputs: Vec<Slot>,
    /// Values whose last reader is this layer: dropped after it runs.
    pub frees: Vec<Slot>,
    /// The analysed output shape.
    pub expected: Vec<usize>,
}

/// A network ready to run.
pub struct Net {
    /// Layers in execution order.
    pub layers: Vec<NetLayer>,
    /// Weights.
    pub params: Params,
    /// Network input shape with batch.
    pub input: Vec<usize>,
    /// For integer inputs (token ids): ids are drawn in `0..vocab`.
    pub vocab: Option<usize>,
    /// Element type.
    pub dtype: DType,
    /// Device.
    pub device: Device,
}

/// What a probe is told around each layer of a forward pass.
pub trait Probe {
    /// Layer at execution position `pos` is about to run.
    fn before(&mut self, _pos: usize) {}
    /// It ran (its output computed and checked) and the values it last read were dropped.
    fn after(&mut self, _pos: usize) {}
}

/// A probe that records nothing.
pub struct NoProbe;
impl Probe for NoProbe {}

fn label(l: &NetLayer) -> String {
    format!("layer #{} \"{}\" ({})", l.index, l.name, l.kind)
}

impl Net {
    /// Build every layer of `a` with weights from `seed`, then check the parameter count of the
    /// weight store against the analysis. With `train` false every weight is a plain tensor: a
    /// [`candle_core::Var`] would make each op keep its inputs for backward (candle has no
    /// no-grad mode), and inference would hold every intermediate until the output is dropped.
    ///
    /// Errors: a configuration candle cannot run, a dtype other
    /// than f32/f64, a parameter count that differs from the analysis (naming the layer).
    pub fn build(a: &Analysis, dtype: DType, device: &Device, seed: u64, train: bool) -> anyhow::Result<Net> {
        let mut params = Params::new(seed);
        let mut pos_of = vec![usize::MAX; a.spec.layers.len()];
        for (pos, l) in a.layers.iter().enumerate() {
            pos_of[l.index] = pos;
        }
        let slot = |s: &Source| match *s {
            Source::Input => Slot::Input,
            Source::Layer(j) => Slot::At(pos_of[j]),
        };
        // Last reader of each value (by execution position).
        let mut last = vec![None::<usize>; a.layers.len()];
        let mut last_input = None;
        for (pos, l) in a.layers.iter().enumerate() {
            for s in &a.graph.inputs[l.index] {
                match slot(s) {
                    Slot::Input => last_input = Some(pos),
                    Slot::At(p) => last[p] = Some(pos),
                }
            }
        }
        let n = a.layers.len();
        let mut layers = Vec::with_capacity(n);
        for (pos, la) in a.layers.iter().enumerate() {
            let spec = a.layer_spec(la);
            let name = spec.id.name.clone();
            let kind = spec.kind.name();
            let before = params.elements();
            let b = spec.kind.candle();
            let mut cx = Ctx {
                name: &name,
                inputs: &la.input_shapes,
                output: &la.output,
                dtype,
                device,
                trainable: spec.trainable && train,
                params: &mut params,
                shares: spec.shares.as_ref().map(|r| r.name.as_str()),
            };
            let module = b
                .build(&mut cx)
                .map_err(|e| anyhow::anyhow!("layer #{} \"{name}\" ({kind}): candle cannot build it: {e}", la.index))?;
            let got = params.elements() - before;
            if got != la.params {
                anyhow::bail!(
                    "layer #{} \"{name}\" ({kind}): candle built {got} parameters, the analysis counts {}",
                    la.index,
                    la.params
                );
            }
            let inputs: Vec<Slot> = a.graph.inputs[la.index].iter().map(slot).collect();
            let mut frees: Vec<Slot> = Vec::new();
            for s in &inputs {
                let dead = match *s {
                    Slot::Input => last_input == Some(pos),
                    Slot::At(p) => last[p] == Some(pos),
                };
                if dead && !frees.contains(s) {
                    frees.push(*s);
                }
            }
            // An output nobody reads (other than the last layer's) dies at once.
            if last[pos].is_none() && pos + 1 != n {
                frees.push(Slot::At(pos));
            }
            layers.push(NetLayer {
                name,
                kind,
                index: la.index,
                module,
                inputs,
                frees,
                expected: la.output.0.iter().map(|&d| d as usize).collect(),
            });
        }
        let total = params.elements();
        if total != a.totals.params {
            anyhow::bail!("candle built {total} parameters in all, the analysis counts {}", a.totals.params);
        }
        Ok(Net {
            layers,
            params,
            input: a.input_shape().0.iter().map(|&d| d as usize).collect(),
            vocab: token_vocab(a)?,
            dtype,
            device: device.clone(),
        })
    }

    /// A seeded random input of the network's shape, uniform in [−1, 1).
    /// For token specs, seeded ids uniform in `0..vocab` (i64, as PyTorch feeds them).
    pub fn random_input(&self, seed: u64) -> candle_core::Result<Tensor> {
        match self.vocab {
            Some(v) => random_ids(seed, &self.input, v, &self.device),
            None => crate::candle::build::seeded_uniform(seed, "input", &self.input, 1.0, self.dtype, &self.device),
        }
    }

    /// Run the layers in order on `x`, telling `probe` around each one; returns the last
    /// layer's output. The input is dropped after its last reader.
    ///
    /// Errors: a candle error or an output shape that differs from the analysis, naming the layer.
    pub fn forward(&self, x: Tensor, pass: Pass, probe: &mut dyn Probe) -> anyhow::Result<Tensor> {
        let mut input = Some(x);
        let mut vals: Vec<Option<Tensor>> = (0..self.layers.len()).map(|_| None).collect();
        for (pos, l) in self.layers.iter().enumerate() {
            probe.before(pos);
            let y = {
                let xs: Vec<Tensor> = l
                    .inputs
                    .iter()
                    .map(|s| match *s {
                        Slot::Input => input.clone().expect("input alive until its last reader"),
                        Slot::At(p) => vals[p].clone().expect("value alive until its last reader"),
                    })
                    .collect();
                l.module.forward(&xs, pass).map_err(|e| anyhow::anyhow!("{}: candle failed: {e}", label(l)))?
            };
            if y.dims() != l.expected.as_slice() {
                anyhow::bail!(
                    "{}: candle produced shape {}, the analysis says {}",
                    label(l),
                    Shape(y.dims().iter().map(|&d| d as u64).collect()),
                    Shape(l.expected.iter().map(|&d| d as u64).collect())
                );
            }
            vals[pos] = Some(y);
            for s in &l.frees {
                match *s {
                    Slot::Input => input = None,
                    Slot::At(p) => vals[p] = None,
                }
            }
            probe.after(pos);
        }
        Ok(vals.pop().flatten().expect("the last layer's output is kept"))
    }
}

/// For a spec whose input is integer (token ids), the number of ids every `embedding` reading
/// the input accepts (the smallest table); `None` for float inputs.
///
/// Errors: integer input that no embedding layer reads (there is no way to pick valid ids).
pub fn token_vocab(a: &Analysis) -> anyhow::Result<Option<usize>> {
    if !a.spec.input.dtype.is_int() {
        return Ok(None);
    }
    let mut vocab: Option<u64> = None;
    for l in &a.layers {
        if let crate::kinds::Kind::Embedding(e) = &a.layer_spec(l).kind {
            if a.graph.inputs[l.index].contains(&Source::Input) {
                vocab = Some(vocab.map_or(e.num_embeddings, |v| v.min(e.num_embeddings)));
            }
        }
    }
    match vocab {
        Some(v) => Ok(Some(v as usize)),
        None => anyhow::bail!(
            "the input is {} (token ids) but no embedding layer reads it: measure cannot choose valid ids",
            a.spec.input.dtype
        ),
    }
}

/// Seeded token ids of `shape`, uniform in `0..vocab`, as an i64 tensor.
pub fn random_ids(seed: u64, shape: &[usize], vocab: usize, dev: &Device) -> candle_core::Result<Tensor> {
    let mut r = crate::candle::build::SplitMix(crate::candle::build::mix(seed, "input"));
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| (r.next_u64() % vocab as u64) as i64).collect::<Vec<i64>>(), shape, dev)
}

/// The training loss of a network output: cross-entropy against seeded labels for an N×K
/// output, else the mean of squares. Returns a scalar.
pub fn loss(y: &Tensor, seed: u64) -> candle_core::Result<Tensor> {
    if y.rank() == 2 {
        let (n, k) = y.dims2()?;
        let mut r = crate::candle::build::SplitMix(crate::candle::build::mix(seed, "labels"));
        let labels: Vec<u32> = (0..n).map(|_| (r.next_u64() % k as u64) as u32).collect();
        let labels = Tensor::from_vec(labels, n, y.device())?;
        candle_nn::loss::cross_entropy(y, &labels)
    } else {
        y.sqr()?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candle::build::Pass;

    fn analysis(yaml: &str) -> Analysis {
        crate::analysis::analyze(crate::spec::parse_bytes("t.yaml", yaml.as_bytes()).unwrap()).unwrap()
    }

    const NET: &str = "name: t\ninput: [3, 8, 8]\nlayers:\n  - {name: c, kind: conv2d, c_out: 4, kernel: 3}\n  - {name: r, kind: relu}\n  - {name: f, kind: flatten}\n  - {name: o, kind: linear, out_features: 5}\n";

    #[test]
    fn builds_runs_and_matches_the_analysis() {
        // conv 4·3·3·3 + 4 = 112, linear 4·6·6·5 + 5 = 725: 837 parameters.
        let a = analysis(NET);
        let net = Net::build(&a, DType::F32, &Device::Cpu, 1, true).unwrap();
        assert_eq!(net.params.elements(), 837);
        let y = net.forward(net.random_input(2).unwrap(), Pass { train: false, step: 0 }, &mut NoProbe).unwrap();
        assert_eq!(y.dims(), &[1, 5]);
        // Same seed, same weights: the forward is repeatable.
        let net2 = Net::build(&a, DType::F32, &Device::Cpu, 1, true).unwrap();
        let y2 = net2.forward(net.random_input(2).unwrap(), Pass { train: false, step: 0 }, &mut NoProbe).unwrap();
        let d = (y - y2).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0);
    }

    #[test]
    fn a_wrong_analytic_shape_or_param_count_is_an_error_naming_the_layer() {
        let mut a = analysis(NET);
        a.layers[1].output.0[1] = 5; // relu "r" said to output 1×5×6×6 instead of 1×4×6×6
        let net = Net::build(&a, DType::F32, &Device::Cpu, 1, true).unwrap();
        let e = net.forward(net.random_input(2).unwrap(), Pass { train: false, step: 0 }, &mut NoProbe).unwrap_err();
        assert_eq!(e.to_string(), "layer #1 \"r\" (relu): candle produced shape 1x4x6x6, the analysis says 1x5x6x6");
        let mut a = analysis(NET);
        a.layers[0].params = 111;
        let e = Net::build(&a, DType::F32, &Device::Cpu, 1, true).err().unwrap();
        assert_eq!(e.to_string(), "layer #0 \"c\" (conv2d): candle built 112 parameters, the analysis counts 111");
    }

    #[test]
    fn values_are_freed_after_their_last_reader() {
        // b and c both read a; a dies after c (its last reader), b after nothing reads it.
        let a = analysis("name: t\ninput: [4]\nlayers:\n  - {name: a, kind: relu}\n  - {name: b, kind: relu}\n  - {name: c, kind: relu, inputs: [a]}\n");
        let net = Net::build(&a, DType::F32, &Device::Cpu, 1, true).unwrap();
        assert_eq!(net.layers[0].frees, vec![Slot::Input]);
        assert_eq!(net.layers[1].frees, vec![Slot::At(1)]);
        assert_eq!(net.layers[2].frees, vec![Slot::At(0)]);
    }
}
