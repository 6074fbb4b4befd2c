//! `embedding`: a lookup table of `num_embeddings` vectors of size `embedding_dim` (PyTorch
//! `nn.Embedding`); takes integer ids (`input: {shape: [L], dtype: i64}`).
//!
//! Shape: `N×…` ids → `N×…×embedding_dim`. Params: `num_embeddings · embedding_dim`.
//! 0 MACs: a gather, not a multiply (torchvision `_ops` / FlopCounterMode count none).

use super::{Cost, KindError, KindSpec, Op, Peer, PeerClass, Saved, Split};
use crate::error::SpecError;
use crate::shape::{checked_product, Shape};
use crate::spec::fields::Fields;

/// An embedding table.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Rows of the table (vocabulary size).
    pub num_embeddings: u64,
    /// Size of each vector.
    pub embedding_dim: u64,
}

impl KindSpec for Embedding {
    const NAME: &'static str = "embedding";
    const FIELDS: &'static [&'static str] = &["num_embeddings", "embedding_dim"];
    fn parse(f: &Fields) -> Result<Self, SpecError> {
        Ok(Embedding { num_embeddings: f.req_pos("num_embeddings")?, embedding_dim: f.req_pos("embedding_dim")? })
    }
}

impl Op for Embedding {
    /// Parameter tensors: one (PyTorch's `weight`).
    fn param_tensors(&self, inputs: &[Shape]) -> Result<Vec<u64>, KindError> {
        Ok(vec![self.analyze(inputs)?.params])
    }

    /// Peers: an `nn.Embedding` leaf (its table counts as a leaf's parameters in torchinfo).
    fn peer(&self, _output: &Shape) -> Peer {
        Peer { class: PeerClass::Embedding, bias: 0, torchinfo_leaf: true }
    }

    /// Split along dim 1, no exchange.
    fn split(&self, _devices: u64) -> Split {
        Split::CHANNELS
    }

    /// Saved for backward: the ids (PyTorch `embedding_backward(grad, indices, …)`).
    fn saved(&self, _inputs: &[Shape], _output: &Shape) -> Result<Vec<Saved>, KindError> {
        Ok(vec![Saved::Input(0)])
    }

    fn analyze(&self, inputs: &[Shape]) -> Result<Cost, KindError> {
        let mut out = inputs[0].0.clone();
        out.push(self.embedding_dim);
        let output = Shape(out);
        output.elements()?;
        Ok(Cost { output, params: checked_product(&[self.num_embeddings, self.embedding_dim])?, buffers: 0, macs: 0 })
    }
    fn takes_int_ids(&self) -> bool {
        true
    }

    /// Under `--eager-references`, the output is held until the innermost enclosing block ends:
    /// Hugging Face's models bind it as `inputs_embeds` for their forward (`LlamaModel`,
    /// `GPT2Model`, `BertEmbeddings`). Measured: the tiny Llama's inference trace
    /// (scripts/pytorch_memory.py) frees `model.embed_tokens`' output only when the model returns.
    fn caller_keeps_output(&self) -> bool {
        true
    }
}

impl crate::candle::build::Build for Embedding {
    /// `index_select` of rows of the `[num_embeddings, embedding_dim]` table by integer ids
    /// (any shape; flattened, then reshaped to `ids.shape × dim`). Backward scatters into the
    /// table (candle's IndexSelect backward is index_add). Weights uniform in ±√3 (unit
    /// variance, like PyTorch's N(0, 1)).
    fn build(&self, cx: &mut crate::candle::build::Ctx) -> candle_core::Result<Box<dyn crate::candle::build::Layer>> {
        let (v, d) = (self.num_embeddings as usize, self.embedding_dim as usize);
        let w = cx.param("weight", &[v, d], 3f64.sqrt())?;
        let out: Vec<usize> = cx.output.0.iter().map(|&d| d as usize).collect();
        Ok(Box::new(move |xs: &[candle_core::Tensor], _| {
            w.index_select(&xs[0].flatten_all()?, 0)?.reshape(out.as_slice())
        }))
    }

    /// Candle memory: one op, its output.
    fn memory(&self, at: &crate::candle::model::At) -> crate::candle::model::CandleLayer {
        at.plain()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::run;
    use super::*;

    #[test]
    fn gpt2_wte() {
        // GPT-2 wte: 50,257·768 = 38,597,376 params; 1×1024 ids → 1×1024×768; a gather: 0 MACs.
        let c = run::<Embedding>("{num_embeddings: 50257, embedding_dim: 768}", &[1, 1024]).unwrap();
        assert_eq!((c.output, c.params, c.macs), (Shape(vec![1, 1024, 768]), 38_597_376, 0));
    }
}
