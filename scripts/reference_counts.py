#!/usr/bin/env python3
"""Reference params and MACs for the LLM / recurrent specs (issue 14), counted by PyTorch itself.

Each model is built from its published config.json values (written out below; no hub access)
on the meta device, so no weights are allocated:

    with torch.device("meta"): model = AutoModelForCausalLM.from_config(cfg)

params = sum of p.numel() over model.parameters() (tied weights counted once, as PyTorch does);
MACs = torch.utils.flop_counter.FlopCounterMode total / 2 for one forward at batch 1 and
SEQ tokens, where the routing is not data dependent (Mixtral's top-k routing needs values, so
its MACs are not counted here).

HF's rotary embedding computes its angles with a small matmul (inv_freq @ positions) that
FlopCounterMode does not count here (it runs in float32 outside the module's parameters'
autocast; the totals below equal the hand count without it), as netstat counts no RoPE work.

Run: python3 scripts/reference_counts.py > tests/data/reference_counts.json
(torch 2.x, transformers 4.x/5.x, CPU only).
"""
import json
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

SEQ = 128


def count(model, seq):
    params = sum(p.numel() for p in model.parameters())
    out = {"params": params}
    if seq is None:
        return out
    with torch.device("meta"):
        x = torch.zeros(1, seq, dtype=torch.long)
    fc = FlopCounterMode(display=False)
    with fc, torch.no_grad():
        model(x)
    macs = fc.get_total_flops() // 2
    out["seq"] = seq
    out["macs"] = macs
    return out


def count_image(model, shape):
    """params and FlopCounterMode / 2 of one forward of a float input of `shape`."""
    params = sum(p.numel() for p in model.parameters())
    fc = FlopCounterMode(display=False)
    with fc, torch.no_grad():
        model(torch.zeros(shape))
    return {"params": params, "macs": fc.get_total_flops() // 2}


class Res(torch.nn.Module):
    """GroupNorm(8) → SiLU → 3×3 conv, twice, plus the input (specs/unet-small.yaml `res`)."""

    def __init__(self, ch):
        super().__init__()
        nn = torch.nn
        self.norm1, self.conv1 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
        return self.conv2(torch.nn.functional.silu(self.norm2(h))) + x


class UNetSmall(torch.nn.Module):
    """The small diffusion U-Net of specs/unet-small.yaml, layer for layer."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.conv_in = nn.Conv2d(3, 32, 3, padding=1)
        self.down0 = Res(32)
        self.downsample = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.mid0 = Res(64)
        self.attn_norm = nn.GroupNorm(8, 64)
        self.attn = nn.MultiheadAttention(64, 4, batch_first=True)
        self.mid1 = Res(64)
        self.up_conv = nn.Conv2d(64, 32, 3, padding=1)
        self.up0_in = nn.Conv2d(64, 32, 3, padding=1)
        self.up0 = Res(32)
        self.norm_out = nn.GroupNorm(8, 32)
        self.conv_out = nn.Conv2d(32, 3, 3, padding=1)

    def forward(self, x):
        F = torch.nn.functional
        d0 = self.down0(self.conv_in(x))
        m = self.mid0(self.downsample(d0))
        n, c, h, w = m.shape
        t = self.attn_norm(m).reshape(n, c, h * w).permute(0, 2, 1)
        a = self.attn(t, t, t, need_weights=False)[0]
        m = self.mid1(a.permute(0, 2, 1).reshape(n, c, h, w) + m)
        u = self.up_conv(F.interpolate(m, scale_factor=2, mode="nearest"))
        u = self.up0(self.up0_in(torch.cat([u, d0], 1)))
        return self.conv_out(F.silu(self.norm_out(u)))


def causal_lm(cfg_cls, **kw):
    from transformers import AutoModelForCausalLM

    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")


def main():
    from transformers import LlamaConfig, MistralConfig, MixtralConfig, BertConfig, BertModel

    res = {"torch": torch.__version__}
    import transformers

    res["transformers"] = transformers.__version__
    res["seq"] = SEQ
    # meta-llama/Meta-Llama-3-8B config.json
    llama3 = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                  rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False, attention_bias=False)
    res["llama-3-8b"] = count(causal_lm(LlamaConfig, **llama3), SEQ)
    # mistralai/Mistral-7B-v0.1 config.json
    mistral = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                   rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=4096, tie_word_embeddings=False)
    res["mistral-7b"] = count(causal_lm(MistralConfig, **mistral), SEQ)
    # TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T config.json
    tiny = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    res["tinyllama-1.1b"] = count(causal_lm(LlamaConfig, **tiny), SEQ)
    # mistralai/Mixtral-8x7B-v0.1 config.json
    mixtral = dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                   rms_norm_eps=1e-5, rope_theta=1e6, num_local_experts=8, num_experts_per_tok=2,
                   tie_word_embeddings=False, sliding_window=None)
    m = causal_lm(MixtralConfig, **mixtral)
    r = count(m, None)
    # Active per token: everything but the 6 experts a token does not use in each layer.
    expert = 3 * 4096 * 14336
    r["active_params"] = r["params"] - 32 * (8 - 2) * expert
    res["mixtral-8x7b"] = r
    # google-bert/bert-base-uncased config.json (BertModel: embeddings, 12 layers, pooler)
    bcfg = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
    bcfg._attn_implementation = "eager"
    with torch.device("meta"):
        bert = BertModel(bcfg, add_pooling_layer=True)
    res["bert-base"] = count(bert, SEQ)

    # The LSTM language model of specs/lstm-lm.yaml: Embedding(10000, 256) → LSTM(256, 512,
    # num_layers=2, batch_first=True) → Linear(512, 10000).
    class LstmLm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(10000, 256)
            self.lstm = torch.nn.LSTM(256, 512, num_layers=2, batch_first=True)
            self.decoder = torch.nn.Linear(512, 10000)

        def forward(self, x):
            return self.decoder(self.lstm(self.embedding(x))[0])

    lm = LstmLm()
    # FlopCounterMode has no formula for the fused LSTM op: MACs by hand in the spec's test.
    res["lstm-lm"] = count(lm, None)
    res["unet-small"] = count_image(UNetSmall(), (1, 3, 32, 32))
    json.dump(res, sys.stdout, indent=2, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
