#!/usr/bin/env python3
"""One training step measured in PyTorch (CPU): the reference figures of tests/data/pytorch_memory.csv
for the tiny Llama (specs/examples/tiny-llama.yaml) and the LSTM language model (specs/lstm-lm.yaml).

The method of shared/reference/pytorch_memory.md (which measured the six vision networks of the
same file):
- every tensor byte comes from the CPU allocator's own events, recorded by
  torch.profiler.profile(profile_memory=True) around the whole run, model construction included
  (so the live total starts at 0 B); stage markers (record_function) cut it into data, weights,
  forward, loss (the backward seed), backward and optimizer;
- a figure "after STAGE" is the live total at the stage's end; a peak is the highest live total at
  the end of any top-level ATen op (an aten:: op not called by another aten:: op) in the stage:
  temporaries allocated and freed inside one op are left out (netstat's definition);
- saved activations = live after forward − data − weights, cross-checked against the bytes that
  torch.autograd.graph.saved_tensors_hooks sees (each saved tensor's storage once, parameters and
  the network input excluded): both figures are printed and must agree;
- no loss (neither spec has one): backward is seeded with torch.ones_like(output), held until
  backward returns; the caller holds the output for the whole step;
- Adam with fused=True (netstat's default optimizer model), lr 1e-3;
- the inference peak is a separate process: a torch.no_grad() forward of the same model.

Models, layer for layer as their specs:
- tiny-llama: transformers' LlamaForCausalLM from LlamaConfig(vocab 128, hidden 64, intermediate
  128, 2 layers, 4 heads, 2 key/value heads, RMSNorm eps 1e-5, no tied embeddings),
  attn_implementation "eager" (the math path: softmax probabilities saved), on 32 token ids;
- lstm-lm: Embedding(10,000, 256) → LSTM(256, 512, num_layers=2, batch_first=True) →
  Linear(512, 10,000), on 35 token ids, on ATen's native recurrent path (aten/src/ATen/native/RNN.cpp:
  one LSTM cell of basic ops per step, what netstat models; torch.backends.mkldnn.enabled = False).
  x86 CPU builds run oneDNN's fused LSTM by default instead (MkldnnRnnLayerBackward0), which saves a
  per-layer uint8 workspace; mode "train-onednn" prints that run's figures on stderr (docs/memory.md
  quotes them), they are not reference rows.

Run (torch 2.x, transformers 5.x, CPU; under a minute):
    python3 scripts/pytorch_memory.py > /tmp/rows.csv
    python3 scripts/pytorch_memory.py counts     # params and FlopCounterMode / 2 on stderr
    python3 scripts/pytorch_memory.py trace tiny-llama 8 > /tmp/trace.txt
    python3 scripts/pytorch_memory.py trace tiny-llama 8 infer > /tmp/trace-infer.txt
prints the CSV rows (net,batch,figure,optimizer,pytorch_bytes) and, on stderr, the saved-tensor
cross-check and the parameter counts. `trace NET BATCH` prints one training step's timeline, one
line per top-level ATen op: the live bytes at its end (what the peaks are taken from), the
change, and the autograd node running it in backward; docs/memory.md's backward nodes of
`gated_mlp`, `rms_norm`, grouped attention and `lstm` were read off it. With `infer`, the same
for one torch.no_grad() forward: the forward steps of those kinds were read off it.
"""
import subprocess
import sys

NETS = [("tiny-llama", 1), ("tiny-llama", 8), ("lstm-lm", 1), ("lstm-lm", 8)]


def build(net):
    import torch

    if net == "tiny-llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(
            vocab_size=128,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            max_position_embeddings=128,
            attention_dropout=0.0,
        )
        cfg._attn_implementation = "eager"
        model = LlamaForCausalLM(cfg)

        def run(ids):
            return model(input_ids=ids, use_cache=False).logits

        return model, run, (32, 128)

    class LSTMLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(10000, 256)
            self.lstm = torch.nn.LSTM(256, 512, num_layers=2, batch_first=True)
            self.decoder = torch.nn.Linear(512, 10000)

        def forward(self, ids):
            return self.decoder(self.lstm(self.embedding(ids))[0])

    model = LSTMLM()
    return model, model, (35, 10000)


def timeline(prof):
    """(allocations [(t, bytes)], top-level ATen op end times, stage name → (start, end))."""
    from torch._C._profiler import _EventType

    allocs, ends, stages = [], [], {}

    def walk(e, in_aten):
        if e.tag == _EventType.Allocation:
            allocs.append((e.start_time_ns, e.typed[1].alloc_size))
            return
        name = e.name
        if name.startswith("stage:"):
            stages[name[6:]] = (e.start_time_ns, e.end_time_ns)
        aten = name.startswith("aten::")
        if aten and not in_aten:
            ends.append(e.end_time_ns)
        for c in e.children:
            walk(c, in_aten or aten)

    for r in prof.profiler.kineto_results.experimental_event_tree():
        walk(r, False)
    allocs.sort()
    times, running, total = [], [], 0
    for t, b in allocs:
        total += b
        times.append(t)
        running.append(total)
    return (times, running), sorted(ends), stages


def live_at(allocs, t):
    """Live bytes at time t: every allocation (and free, negative) recorded up to t."""
    import bisect

    return allocs[1][bisect.bisect_right(allocs[0], t) - 1] if allocs[0] and t >= allocs[0][0] else 0


def trace(net, batch, mode="train"):
    """Print live bytes at the end of every top-level ATen op of one training step (no optimizer),
    with the autograd node each backward op runs under; mode "infer": of one torch.no_grad()
    forward (the inference peak's timeline)."""
    import bisect

    import torch
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    torch.set_num_threads(2)
    if net == "lstm-lm":
        torch.backends.mkldnn.enabled = False
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        seq, vocab = {"tiny-llama": (32, 128), "lstm-lm": (35, 10000)}[net]
        ids = torch.randint(0, vocab, (batch, seq))
        model, run, _ = build(net)
        model.train()
        if mode == "infer":
            with torch.no_grad():
                out = run(ids)
        else:
            out = run(ids)
            with record_function("stage:backward"):
                out.backward(torch.ones_like(out))
    allocs, ops = [], []

    def walk(e, in_aten, node):
        if e.tag == _EventType.Allocation:
            allocs.append((e.start_time_ns, e.typed[1].alloc_size))
            return
        if e.name.startswith("autograd::engine::evaluate_function:"):
            node = e.name.split(": ", 1)[1]
        aten = e.name.startswith("aten::")
        if aten and not in_aten:
            ops.append((e.end_time_ns, e.name, node))
        for c in e.children:
            walk(c, in_aten or aten, node)

    for r in prof.profiler.kineto_results.experimental_event_tree():
        walk(r, False, "")
    allocs.sort()
    times, running, total = [], [], 0
    for t, b in allocs:
        total += b
        times.append(t)
        running.append(total)
    prev = 0
    print("live_bytes,change,autograd_node,aten_op")
    for t, name, node in sorted(ops):
        i = bisect.bisect_right(times, t) - 1
        live = running[i] if i >= 0 else 0
        print(f"{live},{live - prev},{node},{name}")
        prev = live


def measure(net, batch, mode):
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    torch.set_num_threads(2)
    if net == "lstm-lm" and mode != "train-onednn":
        torch.backends.mkldnn.enabled = False
    saved = {}
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with record_function("stage:data"):
            model_seq = {"tiny-llama": (32, 128), "lstm-lm": (35, 10000)}[net]
            ids = torch.randint(0, model_seq[1], (batch, model_seq[0]))
        with record_function("stage:weights"):
            model, run, _ = build(net)
            model.train()
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in model.buffers())
        keep = {p.untyped_storage().data_ptr() for p in model.parameters()} | {ids.untyped_storage().data_ptr()}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in keep:
                saved[s.data_ptr()] = s.nbytes()
            return t

        if mode == "infer":
            with torch.no_grad(), record_function("stage:forward"):
                out = run(ids)
            del out
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
            with record_function("stage:forward"), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                out = run(ids)
            with record_function("stage:loss"):
                seed = torch.ones_like(out)
            with record_function("stage:backward"):
                out.backward(seed)
                del seed
            with record_function("stage:optimizer"):
                opt.step()
    allocs, ends, stages = timeline(prof)

    def after(stage):
        return live_at(allocs, stages[stage][1])

    def peak(first, last):
        lo, hi = stages[first][0], stages[last][1]
        return max([live_at(allocs, lo)] + [live_at(allocs, t) for t in ends if lo <= t <= hi])

    data, weights = after("data"), after("weights") - after("data")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{net} batch {batch} {mode}: {n_params} params, data {data} B, weights {weights} B "
          f"(params {params} + buffers {buffers})", file=sys.stderr)
    assert weights == params + buffers, "model construction left tensors behind"
    if mode == "infer":
        return [("inference_peak", "", peak("forward", "forward"))]
    fwd = after("forward")
    hooks = sum(saved.values())
    if mode == "train-onednn":
        print(f"  oneDNN LSTM: saved activations {fwd - data - weights} B, after forward {fwd} B, "
              f"backward peak {peak('backward', 'backward')} B, training peak {peak('forward', 'optimizer')} B",
              file=sys.stderr)
        return []
    print(f"  saved: live after forward − data − weights {fwd - data - weights} B; "
          f"saved_tensors_hooks {hooks} B + output {out.numel() * out.element_size()} B", file=sys.stderr)
    return [
        ("saved_activations", "", fwd - data - weights),
        ("after_forward", "", fwd),
        ("backward_peak", "", peak("backward", "backward")),
        ("after_backward", "", after("backward")),
        ("after_optimizer", "adam", after("optimizer")),
        ("training_peak", "adam", peak("forward", "optimizer")),
    ]


def counts():
    """Params and FlopCounterMode / 2 of one forward at batch 1 (the specs' headers quote them)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    for net in ["tiny-llama", "lstm-lm"]:
        model, run, (seq, vocab) = build(net)
        fc = FlopCounterMode(display=False)
        with fc, torch.no_grad():
            run(torch.zeros(1, seq, dtype=torch.long))
        params = sum(p.numel() for p in model.parameters())
        # FlopCounterMode has no LSTM formula: lstm-lm's MACs are the decoder's only.
        print(f"{net}: {params} params, {fc.get_total_flops() // 2} MACs (FlopCounterMode / 2)", file=sys.stderr)


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "counts":
        counts()
        return
    if len(sys.argv) in (4, 5) and sys.argv[1] == "trace":
        trace(sys.argv[2], int(sys.argv[3]), *sys.argv[4:])
        return
    if len(sys.argv) == 4:
        net, batch, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        for fig, opt, b in measure(net, batch, mode):
            print(f"{net},{batch},{fig},{opt},{b}")
        return
    # One fresh process per run, as the reference.
    for net, batch in NETS:
        for mode in ["train", "infer"] + (["train-onednn"] if net == "lstm-lm" else []):
            out = subprocess.run([sys.executable, __file__, net, str(batch), mode], check=True,
                                 capture_output=True, text=True)
            sys.stderr.write("".join(l + "\n" for l in out.stderr.splitlines() if not l.startswith(("USDT", "ERROR"))))
            sys.stdout.write(out.stdout)


if __name__ == "__main__":
    main()
