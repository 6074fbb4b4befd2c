//! Decoder inference with a KV cache (`netstat memory --kv-cache`): the prefill of a prompt,
//! then one token at a time, each step attending to every cached key.
//!
//! **KV cache.** Each causal self-attention layer keeps the keys and values of every token seen
//! so far: `2 · kv_heads · head_dim · tokens · batch` elements of the activation dtype
//! (`kv_heads · head_dim` = W_kv, the K and V projection width; Pope et al. 2022, "Efficiently
//! Scaling Transformer Inference", §3.1; Hugging Face `DynamicCache`/`StaticCache`, whose
//! `key_cache[l]` is `batch × kv_heads × tokens × head_dim`). With a sliding `window` a layer
//! keeps only the last `window` tokens (Mistral's rolling buffer cache, Jiang et al. 2023 §2).
//! Summed over layers: `2 · layers · kv_heads · head_dim · context · batch · dtype bytes`.
//!
//! **Prefill** runs the spec as written on `prompt` tokens (the sequence length, dim 0 of the
//! input without batch, set to `prompt`): its MACs are the analysis' at that length, every
//! layer over every prompt token (the language-model head too). Its peak is the inference walk
//! ([`super::inference_timeline`]) with, at each layer, the cache of the attention layers run
//! so far (up to and including it) added: the cache is written as the prompt goes through.
//!
//! **Decode step** at context `c`: one new token per sequence, attending to `c` keys (the `c − 1`
//! cached and its own; the cache holds `c` tokens after the step). Its MACs are the analysis'
//! at sequence length 1 with each attention layer's score and context matmuls taken over `c`
//! keys instead of 1 ([`MultiHeadAttention::score_macs`]: `2·batch·min(window, c)·D` per
//! layer). Its peak is the inference walk at length 1 plus the whole cache at `c` tokens, held
//! from before the step (a preallocated cache, as `StaticCache` and vLLM's paged cache; a
//! growing `DynamicCache` also copies one layer's cache while it concatenates, not counted).
//!
//! The step's walk is the inference walk at length 1 with each attention layer reading `c`
//! keys: where the kind lists its forward ops (Hugging Face's eager grouped attention,
//! [`crate::kinds::Op::forward_pass`]), its `repeat_kv` copies of the cached K and V
//! (`2·batch·c·D` values) and its scores and probabilities (`batch·heads·c`) are live inside
//! the layer, and the causal mask is `batch·c`. Like the rest of the memory model: exact
//! tensor bytes, no allocator rounding, no kernel workspace.

use super::Options;
use crate::analysis::{analyze, Analysis};
use crate::error::SpecError;
use crate::kinds::multi_head_attention::MultiHeadAttention;
use crate::kinds::Kind;
use crate::shape::{add, checked_product, mul, DType};
use serde::Serialize;

/// One attention layer's KV cache at the decode step's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheLayer {
    /// The attention layer.
    pub name: String,
    /// Key/value heads (`kv_heads`, or `heads`).
    pub kv_heads: u64,
    /// Elements per head: D / heads.
    pub head_dim: u64,
    /// Tokens the layer keeps: the context, or `window` when that is smaller.
    pub cached_tokens: u64,
    /// `2 · kv_heads · head_dim · cached_tokens · batch · dtype bytes`.
    pub kv_cache_bytes: u64,
    /// MACs of the decode step's `q·Kᵀ` and `attn·V` in this layer: `2 · batch · cached_tokens · D`.
    pub decode_step_attention_macs: u64,
}

/// Prefill and one decode step of a decoder with a KV cache. Bytes, MACs, tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decode {
    /// Element type of the cache (the activation dtype).
    pub dtype: DType,
    /// Sequences decoded at once.
    pub batch: u64,
    /// Tokens of the prompt (the prefill's sequence length).
    pub prompt_tokens: u64,
    /// Tokens the decode step attends to, its own included; the cache holds this many after it.
    pub context_tokens: u64,
    /// Per attention layer, in execution order, at `context_tokens`.
    pub layers: Vec<CacheLayer>,
    /// Σ of the layers' cache at `context_tokens`.
    pub kv_cache_bytes: u64,
    /// The cache after the prefill (`prompt_tokens` per layer, window-limited).
    pub prefill_kv_cache_bytes: u64,
    /// MACs of the prefill: the analysis at `prompt_tokens`.
    pub prefill_macs: u64,
    /// Most bytes live during the prefill: input + weights + live outputs + the cache so far.
    pub prefill_peak_bytes: u64,
    /// The layer at which it is reached (`weights` if before any layer).
    pub prefill_peak_layer: String,
    /// MACs of one decode step at `context_tokens`.
    pub decode_step_macs: u64,
    /// Of them, the attention score and context matmuls over the cached keys.
    pub decode_step_attention_macs: u64,
    /// Most bytes live during the step: its inference walk at one token + the cache at
    /// `context_tokens`.
    pub decode_step_peak_bytes: u64,
    /// The layer at which it is reached.
    pub decode_step_peak_layer: String,
}

/// The attention layer of analysed layer `l`, checked to be cacheable: causal self-attention.
fn attention<'a>(
    a: &'a Analysis,
    l: &crate::analysis::LayerAnalysis,
) -> Result<Option<&'a MultiHeadAttention>, SpecError> {
    let ls = a.layer_spec(l);
    let Kind::MultiHeadAttention(m) = &ls.kind else { return Ok(None) };
    let err = |msg: &str| Err(SpecError::new(&a.spec.file, ls.node.loc, format!("--kv-cache: {msg}")).in_layer(&ls.id));
    if l.input_shapes.len() > 1 {
        return err("a KV cache serves self-attention; this layer attends to another input (cross-attention)");
    }
    if !m.causal {
        return err("a KV cache serves causal attention (a decoder); this layer is not `causal: true`");
    }
    Ok(Some(m))
}

/// The error of a spec without an attention layer, at the input.
fn no_attention(at_input: impl Fn(String) -> SpecError) -> SpecError {
    at_input("--kv-cache: the spec has no multi_head_attention layer to cache keys and values for".into())
}

/// KV cache bytes of attention layer `m` on input `x` (N×L×D) holding `tokens` tokens.
fn cache_bytes(m: &MultiHeadAttention, x: &crate::shape::Shape, tokens: u64, d: DType) -> Result<u64, String> {
    let (n, width) = (x.0[0], m.kv_width(x.last()));
    mul(checked_product(&[2, n, m.keys_scored(tokens), width])?, d.size(), "KV cache bytes")
}

/// `a` re-analysed with sequence length `len` (dim 0 of the input without batch).
fn at_length(a: &Analysis, len: u64) -> Result<Analysis, SpecError> {
    if a.spec.input.shape.first() == Some(&len) {
        return Ok(a.clone());
    }
    let mut s = a.spec.clone();
    s.input.shape[0] = len;
    analyze(s)
}

/// Prefill of `prompt` tokens (default: the spec's sequence length, dim 0 of its input) and
/// one decode step at `context` tokens (default: `prompt + 1`) of the decoder `a`, under `o`
/// (its dtype and device split as for inference; the cache is in the activation dtype).
///
/// Errors (at the spec's input, or the attention layer at fault): the input has no sequence
/// dimension; `context` ≤ `prompt`; no attention layer; an attention layer that is not causal
/// self-attention; the spec does not analyse at length `prompt` or 1; a count overflows.
pub fn decode(a: &Analysis, o: &Options, prompt: Option<u64>, context: Option<u64>) -> Result<Decode, SpecError> {
    let spec = &a.spec;
    let at_input = |m: String| SpecError::new(&spec.file, spec.input.loc, m);
    let Some(&seq) = spec.input.shape.first() else {
        return Err(at_input("--kv-cache: the input has no sequence dimension".into()));
    };
    let prompt = prompt.unwrap_or(seq);
    let context = match context {
        Some(c) if c <= prompt => {
            return Err(at_input(format!(
                "--kv-cache: --context {c} must exceed the prompt ({prompt} tokens): a decode step adds a token to it"
            )))
        }
        Some(c) => c,
        None => add(prompt, 1, "context").map_err(at_input)?,
    };
    let dtype = o.amp.map(super::Amp::dtype).unwrap_or(spec.dtype);
    // A spec with no attention to cache is refused first: re-analysed at another length its
    // dim 0 (a CNN's channels) would fail for a reason that is not the user's.
    let mut any = false;
    for l in &a.layers {
        any |= attention(a, l)?.is_some();
    }
    if !any {
        return Err(no_attention(at_input));
    }

    // Prefill: the walk at `prompt` tokens, each attention layer's cache added from its row on.
    let pre = at_length(a, prompt)?;
    let rows = super::inference_timeline(&pre, o)?;
    let forward = rows.iter().filter(|r| r.phase == super::Phase::Forward);
    let (mut cache, mut peak, mut peak_layer) = (0u64, 0u64, String::from("weights"));
    for r in rows.iter().filter(|r| r.phase == super::Phase::Weights) {
        peak = r.peak_bytes;
    }
    for (l, r) in pre.layers.iter().zip(forward) {
        if let Some(m) = attention(&pre, l)? {
            let b = cache_bytes(m, &l.input_shapes[0], prompt, dtype).map_err(at_input)?;
            cache = add(cache, b, "KV cache bytes").map_err(at_input)?;
        }
        let p = add(r.peak_bytes, cache, "live bytes").map_err(at_input)?;
        if p > peak {
            (peak, peak_layer) = (p, r.name.clone());
        }
    }
    let prefill_kv_cache_bytes = cache;

    // Decode step: the walk at one token, plus the cache at `context`; scores over `context` keys.
    let step = at_length(a, 1)?;
    let (mut layers, mut total, mut macs, mut attn) = (Vec::new(), 0u64, 0u64, 0u64);
    for l in &step.layers {
        let mut m_l = l.macs;
        if let Some(m) = attention(&step, l)? {
            // A count at the context that overflows names the layer and the context asked for.
            let ls = step.layer_spec(l);
            let at_layer = |e: String| {
                SpecError::new(&spec.file, ls.node.loc, format!("--context {context}: {e}")).in_layer(&ls.id)
            };
            let x = &l.input_shapes[0];
            let (n, d) = (x.0[0], x.last());
            let over = m.score_macs(n, 1, context, d).map_err(at_layer)?;
            // The analysis at length 1 scored one key; the step scores `context`.
            m_l = add(m_l - m.score_macs(n, 1, 1, d).map_err(at_input)?, over, "MACs").map_err(at_layer)?;
            attn = add(attn, over, "MACs").map_err(at_layer)?;
            let b = cache_bytes(m, x, context, dtype).map_err(at_layer)?;
            total = add(total, b, "KV cache bytes").map_err(at_layer)?;
            layers.push(CacheLayer {
                name: step.layer_spec(l).id.name.clone(),
                kv_heads: m.kv_heads.unwrap_or(m.heads),
                head_dim: d / m.heads,
                cached_tokens: m.keys_scored(context),
                kv_cache_bytes: b,
                decode_step_attention_macs: over,
            });
        }
        macs = add(macs, m_l, "MACs").map_err(at_input)?;
    }
    if layers.is_empty() {
        return Err(no_attention(at_input));
    }
    let (mut step_peak, mut step_layer) = (0u64, String::from("weights"));
    // The one-token walk with each attention layer's ops over the cached keys.
    for r in super::inference_timeline_cached(&step, o, Some(context))?.iter().filter(|r| r.phase != super::Phase::Data)
    {
        let p = add(r.peak_bytes, total, "live bytes").map_err(at_input)?;
        if p > step_peak {
            (step_peak, step_layer) = (p, r.name.clone());
        }
    }
    Ok(Decode {
        dtype,
        batch: spec.batch,
        prompt_tokens: prompt,
        context_tokens: context,
        layers,
        kv_cache_bytes: total,
        prefill_kv_cache_bytes,
        prefill_macs: pre.totals.macs,
        prefill_peak_bytes: peak,
        prefill_peak_layer: peak_layer,
        decode_step_macs: macs,
        decode_step_attention_macs: attn,
        decode_step_peak_bytes: step_peak,
        decode_step_peak_layer: step_layer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(window: &str) -> Analysis {
        let y = format!(
            "name: tiny\ninput: {{shape: [4], dtype: i64}}\nlayers:\n  - {{name: emb, kind: embedding, num_embeddings: 10, embedding_dim: 8}}\n  - {{name: attn, kind: multi_head_attention, heads: 2, kv_heads: 1, bias: false, causal: true{window}}}\n  - {{name: head, kind: linear, out_features: 10, bias: false}}\n"
        );
        analyze(crate::spec::parse_bytes("tiny.yaml", y.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn tiny_decoder_by_hand() {
        // Embedding 10×8, attention D 8, 2 heads of 4, 1 kv head (W_kv 4), head 8 → 10, f32.
        // Params 80 + (64 + 32 + 32 + 64) + 80 = 352: 1,408 B of weights.
        let d = decode(&tiny(""), &Options::default(), None, Some(6)).unwrap();
        // Cache: 2 · 1 kv head · 4 · 6 tokens · 4 B = 192 B; after the 4-token prompt 128 B.
        // Attention of the step: 2 · 1 · 6 keys · 8 = 96 MACs.
        let want = CacheLayer {
            name: "attn".into(),
            kv_heads: 1,
            head_dim: 4,
            cached_tokens: 6,
            kv_cache_bytes: 192,
            decode_step_attention_macs: 96,
        };
        assert_eq!(d.layers, vec![want]);
        assert_eq!((d.kv_cache_bytes, d.prefill_kv_cache_bytes, d.prompt_tokens), (192, 128, 4));
        // Prefill MACs at 4 tokens: attention 4·(64 + 32 + 32 + 64) + 2·4·4·8 = 1,024, head
        // 4·80 = 320: 1,344. Decode step at 6: attention 192 + 2·1·6·8 = 288, head 80: 368.
        assert_eq!(d.prefill_macs, 1344);
        assert_eq!((d.decode_step_macs, d.decode_step_attention_macs), (368, 96));
        // Prefill walk: ids 4·8 = 32 B + weights 1,408 = 1,440; emb out 128 → 1,568; the causal
        // mask 4·4·4 = 64 → 1,632; the attention op by op (Q 128 B, K_w 64, P 2·4·4·4 = 128):
        // q, k, v 256 → 1,888; K, V repeated 256 → 2,144; scores 2,272, scaled 2,400 (scores
        // dropped), masked, softmax; the context 2,400 and its contiguous copy 2,528, + its cache
        // 128 = 2,656 at attn (the head's row: 1,440 + head out 160 + 128 = 1,728 + cache).
        assert_eq!((d.prefill_peak_bytes, d.prefill_peak_layer.as_str()), (2656, "attn"));
        // Step walk (the one-token forward's ops over the 6 cached keys; docs/memory.md): id
        // 8 B + 1,408 = 1,416; emb 32 → 1,448; mask 1·1·6 · 4 B = 24 → 1,472; q 32, k 16, v 16
        // → 1,536; K repeated over the cache 6·8 · 4 B = 192 → 1,728, the new token's k and v
        // dropped (the cache holds them) → 1,696; V repeated 192 → 1,888; scores 2·6 · 4 B = 48
        // → 1,936, scaled 1,984 (scores dropped → 1,936), masked, softmax likewise; the context
        // 32 → 1,968, contiguous 32 → 2,000; + the whole cache 192 = 2,192 at attn.
        assert_eq!((d.decode_step_peak_bytes, d.decode_step_peak_layer.as_str()), (2192, "attn"));
    }

    #[test]
    fn a_window_caps_the_cache_and_the_scores() {
        // window 3: 3 of the 6 tokens kept (2·1·4·3·4 = 96 B), scores over 3 keys (2·3·8 = 48).
        let d = decode(&tiny(", window: 3"), &Options::default(), None, Some(6)).unwrap();
        assert_eq!((d.layers[0].cached_tokens, d.kv_cache_bytes), (3, 96));
        assert_eq!((d.decode_step_macs, d.decode_step_attention_macs), (368 - 48, 48));
        // Prompt of 2 instead of the spec's 4, default context 3.
        let d = decode(&tiny(""), &Options::default(), Some(2), None).unwrap();
        assert_eq!((d.prompt_tokens, d.context_tokens, d.prefill_kv_cache_bytes), (2, 3, 64));
    }

    #[test]
    fn refusals() {
        let e = decode(&tiny(""), &Options::default(), None, Some(4)).unwrap_err();
        assert!(e.to_string().contains("--context 4 must exceed the prompt (4 tokens)"), "{e}");
        let y = "name: enc\ninput: [4, 8]\nlayers:\n  - {name: attn, kind: multi_head_attention, heads: 2}\n";
        let a = analyze(crate::spec::parse_bytes("enc.yaml", y.as_bytes()).unwrap()).unwrap();
        let e = decode(&a, &Options::default(), None, None).unwrap_err();
        assert!(
            e.to_string().contains("\"attn\" (multi_head_attention): --kv-cache: a KV cache serves causal attention"),
            "{e}"
        );
        let y = "name: mlp\ninput: [4, 8]\nlayers:\n  - {name: fc, kind: linear, out_features: 8}\n";
        let a = analyze(crate::spec::parse_bytes("mlp.yaml", y.as_bytes()).unwrap()).unwrap();
        let e = decode(&a, &Options::default(), None, None).unwrap_err();
        assert!(e.to_string().contains("no multi_head_attention layer"), "{e}");
        // A CNN: refused for having no attention, not for a conv at another "length" (its
        // channels: groups 4 does not divide 1 channel).
        let y = "name: cnn\ninput: [4, 9, 9]\nlayers:\n  - {name: c, kind: conv2d, c_out: 8, kernel: 3, groups: 4}\n";
        let a = analyze(crate::spec::parse_bytes("cnn.yaml", y.as_bytes()).unwrap()).unwrap();
        let e = decode(&a, &Options::default(), None, None).unwrap_err();
        assert!(e.to_string().contains("no multi_head_attention layer"), "{e}");
        // A context whose cache overflows u64 names the layer and the context (it named the input).
        let e = decode(&tiny(""), &Options::default(), None, Some(1 << 63)).unwrap_err().to_string();
        assert!(e.contains("layer #1 \"attn\" (multi_head_attention): --context 9223372036854775808: "), "{e}");
    }
}
