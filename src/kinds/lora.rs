//! LoRA adapters (`lora: {rank, alpha, targets}`) on `linear` and on the projections of
//! `multi_head_attention`: the rules both kinds share, in one place.
//!
//! Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models" (arXiv:2106.09685),
//! §4.1: a frozen weight `W₀` (out×in) plus a trainable low-rank update `ΔW = B·A`, `A` r×in,
//! `B` out×r, scaled by `alpha / r`: `h = W₀·x + (alpha/r)·B·A·x`. As PEFT's `lora.Linear`
//! (peft/tuners/lora/layer.py, `LoraLayer.update_layer` and `Linear.forward`): the base layer
//! is frozen (its weight *and* bias), `lora_A` and `lora_B` are bias-free `nn.Linear`s, and the
//! forward is `base(x) + lora_B(lora_A(dropout(x))) · scaling` (dropout 0: `nn.Identity`).
//!
//! Per adapted projection `in → out` on `rows` rows (tokens × batch):
//! - params `r·in + out·r` (A and B), all trainable; the base's stay counted in `params` and
//!   are frozen;
//! - MACs `rows·in·r + rows·r·out`: `x·Aᵀ`, then `·Bᵀ` (the same convention as `linear`; the
//!   scaling and the sum with the base output are elementwise, not counted). Merged weights
//!   (`W₀ + B·A` folded for inference) are not modelled;
//! - saved for backward: `x` (A's weight gradient; the projection's input, which its layer
//!   keeps anyway) and `x·Aᵀ` (B's weight gradient): `rows·r` new elements. The frozen base
//!   needs only its weight for the input gradient.
//!
//! Gradients and optimizer state exist for the adapters only ([`crate::kinds::Op::adapter_tensors`]).

use crate::error::SpecError;
use crate::shape::{add, checked_product, mul};
use crate::spec::fields::Fields;
use crate::spec::node::Value;

/// The fields of a `lora:` mapping.
pub const FIELDS: &[&str] = &["rank", "alpha", "targets"];

/// PEFT's `LoraConfig.lora_alpha` default (peft/tuners/lora/config.py).
pub const DEFAULT_ALPHA: f64 = 8.0;

/// An attention projection an adapter can target (Hugging Face `q_proj`, `k_proj`, `v_proj`,
/// `o_proj`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The query projection.
    Q,
    /// The key projection.
    K,
    /// The value projection.
    V,
    /// The output projection.
    O,
}

impl Target {
    /// The spelling in specs: `q`, `k`, `v`, `o`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Q => "q",
            Target::K => "k",
            Target::V => "v",
            Target::O => "o",
        }
    }
}

/// LoRA adapters on a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Lora {
    /// Rank r of A (r×in) and B (out×r).
    pub rank: u64,
    /// α: the update is scaled by α/r (default 8, PEFT's).
    pub alpha: f64,
    /// The adapted projections of an attention layer, in the order given (default `[q, v]`,
    /// PEFT's default `target_modules` for LLaMA-family models: `q_proj`, `v_proj`). Empty for a
    /// `linear`, which is one projection.
    pub targets: Vec<Target>,
}

impl Lora {
    /// Read field `lora` of a layer, if present. `attention`: whether the layer has projections
    /// to target (`targets` is refused on a `linear`).
    ///
    /// Errors: not a mapping, an unknown key, `rank` missing or not positive, `alpha` not a
    /// number, `targets` not a non-empty list of distinct `q`, `k`, `v`, `o`.
    pub fn parse(f: &Fields, attention: bool) -> Result<Option<Lora>, SpecError> {
        let Some(node) = f.get("lora") else { return Ok(None) };
        let Value::Map(entries) = &node.value else {
            return Err(f.err(
                node.loc,
                format!(
                    "`lora`: expected a mapping such as {{rank: 8, alpha: 16}}, got {}",
                    crate::spec::fields::describe(node)
                ),
            ));
        };
        for (k, _) in entries {
            let key = k.as_str().unwrap_or("");
            if !FIELDS.contains(&key) {
                return Err(f.err(
                    k.loc,
                    format!(
                        "`lora`: unknown field `{key}`{}; expected one of: {}",
                        crate::error::did_you_mean(key, FIELDS.iter().copied()),
                        FIELDS.join(", ")
                    ),
                ));
            }
        }
        let sub = Fields { file: f.file, node, layer: f.layer };
        let rank = sub.pos("rank")?.ok_or_else(|| f.err(node.loc, "`lora`: missing required field `rank`"))?;
        let alpha = sub.float("alpha")?.unwrap_or(DEFAULT_ALPHA);
        // alpha 0 scales the adapter to nothing (no gradient reaches it: `measure --train`
        // failed); negative or infinite scales are no adapter a trainer uses.
        if !(alpha > 0.0 && alpha.is_finite()) {
            return Err(f.err(
                sub.loc("alpha"),
                format!(
                    "`lora.alpha`: expected a positive number (the adapter is scaled by alpha / rank), got {alpha}"
                ),
            ));
        }
        let targets = match sub.get("targets") {
            None if attention => vec![Target::Q, Target::V],
            None => Vec::new(),
            Some(t) if !attention => {
                return Err(f.err(t.loc, "`lora.targets`: a linear layer is one projection; targets name the projections of a multi_head_attention"));
            }
            Some(t) => {
                let bad = || {
                    f.err(
                        t.loc,
                        format!(
                            "`lora.targets`: expected a non-empty list of q, k, v, o, got {}",
                            crate::spec::fields::describe(t)
                        ),
                    )
                };
                let Value::Seq(items) = &t.value else { return Err(bad()) };
                if items.is_empty() {
                    return Err(bad());
                }
                let mut v = Vec::new();
                for it in items {
                    let target = match it.as_str() {
                        Some("q" | "q_proj") => Target::Q,
                        Some("k" | "k_proj") => Target::K,
                        Some("v" | "v_proj") => Target::V,
                        Some("o" | "o_proj" | "out_proj") => Target::O,
                        _ => {
                            return Err(f.err(
                                it.loc,
                                format!(
                                    "`lora.targets`: expected q, k, v or o, got {}",
                                    crate::spec::fields::describe(it)
                                ),
                            ))
                        }
                    };
                    if v.contains(&target) {
                        return Err(f.err(it.loc, format!("`lora.targets`: {} is listed twice", target.name())));
                    }
                    v.push(target);
                }
                v
            }
        };
        Ok(Some(Lora { rank, alpha, targets }))
    }

    /// The update's scale α/r.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// The adapter tensors of one projection `inf → outf`: `[A = r·in, B = out·r]` elements
    /// (PEFT's `lora_A.weight`, `lora_B.weight`).
    pub fn tensors(&self, inf: u64, outf: u64) -> Result<[u64; 2], String> {
        Ok([mul(self.rank, inf, "LoRA A elements")?, mul(outf, self.rank, "LoRA B elements")?])
    }

    /// Params of one adapted projection: `r·in + out·r`.
    pub fn params(&self, inf: u64, outf: u64) -> Result<u64, String> {
        let [a, b] = self.tensors(inf, outf)?;
        add(a, b, "LoRA params")
    }

    /// MACs of one adapted projection over `rows` rows: `rows·in·r + rows·r·out` (`x·Aᵀ`, then
    /// `·Bᵀ`).
    pub fn macs(&self, rows: u64, inf: u64, outf: u64) -> Result<u64, String> {
        add(checked_product(&[rows, inf, self.rank])?, checked_product(&[rows, self.rank, outf])?, "LoRA MACs")
    }

    /// Elements one adapted projection saves for backward besides its input: `x·Aᵀ`, `rows·r`.
    pub fn saved(&self, rows: u64) -> Result<u64, String> {
        mul(rows, self.rank, "LoRA saved elements")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_projection() {
        // Hu et al. 2021 §4.1 on a 4096×4096 projection at r = 8: A 8·4096 = 32,768, B 4096·8 =
        // 32,768, 65,536 params; on 128 rows 128·4096·8 + 128·8·4096 = 8,388,608 MACs.
        let l = Lora { rank: 8, alpha: 16.0, targets: vec![] };
        assert_eq!(l.tensors(4096, 4096).unwrap(), [32_768, 32_768]);
        assert_eq!(l.params(4096, 4096).unwrap(), 65_536);
        assert_eq!(l.macs(128, 4096, 4096).unwrap(), 8_388_608);
        assert_eq!(l.saved(128).unwrap(), 1024);
        assert_eq!(l.scaling(), 2.0);
    }
}
