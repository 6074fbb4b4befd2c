//! Today's networks (issue 14): the LLM and recurrent specs against reference counts that
//! scripts/reference_counts.py produced with PyTorch itself (transformers 5.25, torch 2.15: each
//! model built from its published config.json on the meta device, parameters summed, MACs =
//! FlopCounterMode / 2 for one forward at batch 1 and 128 tokens), stored in
//! tests/data/reference_counts.json. Every spec must reproduce them exactly.

use netstat::analysis::{analyze, Analysis};
use netstat::spec;

fn analyse(path: &str) -> Analysis {
    let s = spec::load(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    analyze(s).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string("tests/data/reference_counts.json").unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (params, MACs) of the reference for `model` (MACs 0 where the script could not count them).
fn counted(model: &str) -> (u64, u64) {
    let r = reference();
    let m = &r[model];
    (m["params"].as_u64().unwrap(), m["macs"].as_u64().unwrap_or(0))
}

#[test]
fn the_reference_is_the_published_llama_3_8b_count() {
    // Meta's model card: 8,030,261,248 parameters (issue 14), so the script's count is that model.
    assert_eq!(counted("llama-3-8b").0, 8_030_261_248);
    assert_eq!(reference()["seq"].as_u64(), Some(128));
}

#[test]
fn transformers_models_match_exactly() {
    for (spec, model) in [
        ("specs/llama-3-8b.yaml", "llama-3-8b"),
        ("specs/mistral-7b.yaml", "mistral-7b"),
        ("specs/tinyllama-1.1b.yaml", "tinyllama-1.1b"),
        ("specs/bert-base.yaml", "bert-base"),
    ] {
        let a = analyse(spec);
        assert_eq!((a.totals.params, a.totals.macs), counted(model), "{spec}");
    }
}

#[test]
fn llama_3_8b_by_hand() {
    // Embedding and lm_head 128,256·4,096 = 525,336,576 each; per layer attention
    // 2·4096² + 2·4096·1024 = 41,943,040, MLP 3·4096·14336 = 176,160,768, norms 2·4096 →
    // 218,112,000 · 32 = 6,979,584,000; final norm 4,096. Sum 8,030,261,248.
    // MACs at 128 tokens: every weight but the embedding and norms once per token,
    // 128 · (8,030,261,248 − 525,336,576 − 65·4,096) = 960,596,279,296, plus scores and
    // context 32 · 2·128²·4096 = 4,294,967,296 → 964,891,246,592.
    let a = analyse("specs/llama-3-8b.yaml");
    assert_eq!((a.totals.params, a.totals.macs), (8_030_261_248, 964_891_246_592));
}

#[test]
fn lstm_lm() {
    // Params from the script (PyTorch's own nn.LSTM); MACs by hand, the spec's header:
    // 35·4·512·768 + 35·4·512·1024 + 35·512·10,000 = 55,050,240 + 73,400,320 + 179,200,000.
    let a = analyse("specs/lstm-lm.yaml");
    assert_eq!(a.totals.params, counted("lstm-lm").0);
    assert_eq!((a.totals.params, a.totals.macs), (11_368_208, 307_650_560));
}

#[test]
fn mixtral_total_active_and_macs() {
    // Total and active params from the script (active = total − 32 layers · 6 unused experts ·
    // 3·4096·14336); MACs by hand in the spec's header (routing needs values: not countable on
    // the meta device).
    let a = analyse("specs/mixtral-8x7b.yaml");
    let r = reference();
    let active: u64 = a.totals.params
        - a.layers
            .iter()
            .filter_map(|l| match &a.layer_spec(l).kind {
                netstat::kinds::Kind::MixtureOfExperts(m) => Some(l.params - m.active_params(l.output.last()).unwrap()),
                _ => None,
            })
            .sum::<u64>();
    assert_eq!(a.totals.params, r["mixtral-8x7b"]["params"].as_u64().unwrap());
    assert_eq!(active, r["mixtral-8x7b"]["active_params"].as_u64().unwrap());
    assert_eq!((a.totals.params, active, a.totals.macs), (46_702_792_704, 12_879_925_248, 1_636_114_104_320));
}

#[test]
fn unet_small_matches_pytorch() {
    // UNetSmall in scripts/reference_counts.py is the spec written in torch.nn, layer for layer
    // (GroupNorm, nn.MultiheadAttention, F.interpolate nearest ×2, skip concatenation).
    let a = analyse("specs/unet-small.yaml");
    assert_eq!((a.totals.params, a.totals.macs), counted("unet-small"));
    // By hand, the attention on 256 tokens of 64: params 4·64² + 4·64 = 16,640; MACs
    // 4·256·64² + 2·256²·64 = 4,194,304 + 8,388,608 = 12,582,912.
    let attn = a.layers.iter().find(|l| a.layer_spec(l).kind.name() == "multi_head_attention").unwrap();
    assert_eq!((attn.params, attn.macs), (16_640, 12_582_912));
}

#[test]
fn tiny_llama_matches_transformers() {
    // specs/examples/tiny-llama.yaml: LlamaForCausalLM(hidden 64, intermediate 128, 2 layers,
    // 4 heads, 2 kv heads, vocab 128) at 32 tokens. By hand (the spec's header) and counted by
    // transformers 5.25 / torch 2.15 (`python3 scripts/pytorch_memory.py counts`: params summed,
    // FlopCounterMode / 2): 90,432 params, 2,883,584 MACs.
    let a = analyse("specs/examples/tiny-llama.yaml");
    assert_eq!((a.totals.params, a.totals.macs), (90_432, 2_883_584));
}
