#!/usr/bin/env python3
"""Reference counts for LoRA adapters and KV-cache decoding on Llama-3-8B (issue 14 items 2-3),
counted by PyTorch, transformers and PEFT themselves on the meta device (no weights allocated).

- LoRA: PEFT's LoraConfig(r=16, lora_alpha=32, target_modules=[q_proj, k_proj, v_proj, o_proj])
  on LlamaForCausalLM built from meta-llama/Meta-Llama-3-8B's config.json: trainable params
  (requires_grad) and all params (PEFT's print_trainable_parameters), and
  FlopCounterMode / 2 of one forward at 128 tokens (adapters included).
- Saved tensors: PEFT LoRA r = 8 on fc1 of Linear(1024, 1024) → ReLU → Linear(1024, 10) (every
  other parameter frozen) at batch 256, in f32 on the CPU: the bytes of the distinct storages
  autograd saves (torch.autograd.graph.saved_tensors_hooks), parameters and the input excluded,
  and the output's bytes.
- KV cache: a forward of PROMPT tokens with use_cache=True (DynamicCache), then one decode step
  of 1 token at context CONTEXT (cache of CONTEXT - 1 tokens + the new one): the cache's key and
  value tensors' elements after the step (× 2 bytes for bf16) and FlopCounterMode / 2 of the step.

Run: python3 scripts/lora_kv_reference.py > tests/data/lora_kv_reference.json
(torch 2.x, transformers 5.x, peft 0.21; CPU only, a few seconds).
"""
import json

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCausalLM, LlamaConfig

LLAMA3 = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
              num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
              rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
              attention_bias=False, mlp_bias=False)


def model():
    cfg = LlamaConfig(**LLAMA3)
    cfg._attn_implementation = "eager"
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")


def macs(f):
    fc = FlopCounterMode(display=False)
    with fc, torch.no_grad():
        f()
    return fc.get_total_flops() // 2


def ids(n):
    with torch.device("meta"):
        return torch.zeros(1, n, dtype=torch.long)


def lora():
    from peft import LoraConfig, get_peft_model
    m = get_peft_model(model(), LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
    total = sum(p.numel() for p in m.parameters())
    return {"rank": 16, "targets": ["q", "k", "v", "o"], "trainable_params": trainable,
            "all_params": total, "seq": 128, "macs": macs(lambda: m(ids(128)))}


def saved():
    from peft import LoraConfig, get_peft_model
    nn = torch.nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.relu, self.fc2 = nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))

    m = get_peft_model(M(), LoraConfig(r=8, lora_alpha=8, target_modules=["fc1"]))
    x = torch.randn(256, 1024)
    params = {p.untyped_storage().data_ptr() for p in m.parameters()}
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = m(x)
    skip = params | {x.untyped_storage().data_ptr()}
    return {"saved_bytes": sum(b for k, b in seen.items() if k not in skip),
            "output_bytes": y.untyped_storage().nbytes(),
            "trainable_params": sum(p.numel() for p in m.parameters() if p.requires_grad)}


def kv(context):
    m = model()
    with torch.no_grad():
        out = m(ids(context - 1), use_cache=True)
    cache = out.past_key_values
    step = macs(lambda: m(ids(1), past_key_values=cache, use_cache=True))
    elements = 0
    for layer in cache.layers:
        elements += layer.keys.numel() + layer.values.numel()
    return {"context": context, "kv_cache_elements": elements, "kv_cache_bytes_bf16": 2 * elements,
            "decode_step_macs": step}


def main():
    res = {"llama-3-8b": {"lora": lora(), "kv_cache": kv(8192),
                          "prefill_128_macs": macs(lambda: model()(ids(128)))},
           "lora-mlp-saved": saved()}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
