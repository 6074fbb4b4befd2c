#!/usr/bin/env python3
"""Make the ONNX test fixtures in tests/fixtures/onnx/ (issue 15).

Each model is exported with PyTorch's default exporter (torch.onnx.export, dynamo=True) from
torchvision (alexnet, resnet18, mobilenet_v2, vit_b_16) with weights=None, with optimize=False (the default optimize=True folds each
BatchNorm into the conv before it, so the file no longer has torchvision's parameters), then every initializer's data is stripped (its dims and dtype
kept), so a file is a few KiB to a few hundred KiB: netstat counts parameters from the dims and
never needs the values.

Also specs/lstm-lm.yaml's model (lstm_lm), GRU and RNN (recurrent), ConvTranspose and Resize
(tiny_unet), specs/unet-small.yaml's U-Net (unet_small: GroupNorm, attention), a model with symbolic batch, height and width (dynamic), slices of activations (slices), an LSTM with proj_size
(lstm_proj) and a classifier on an LSTM's h_n (lstm_last), which netstat refuses and, from the legacy exporter (dynamo=False), bare ONNX
LSTM/GRU/RNN nodes (legacy_rnn).

Made with torch 2.15.0, torchvision 0.29.2, onnx 1.23.2, onnxscript 0.7.2:
    python scripts/make_onnx_fixtures.py [OUT_DIR [NAME ...]]
"""
import sys
import os

import onnx
import torch
import torchvision
import torch.utils.flop_counter

from reference_counts import UNetSmall

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx")


def strip(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop every initializer's values (keep its name, dims and data type), and every node
    metadata entry but `namespace` (the module path netstat names layers by; the others hold
    stack traces and FX node dumps, most of the file)."""
    for t in model.graph.initializer:
        dims, dtype, name = list(t.dims), t.data_type, t.name
        t.Clear()
        t.name, t.data_type = name, dtype
        t.dims.extend(dims)
    for n in model.graph.node:
        keep = [(p.key, p.value) for p in n.metadata_props if p.key == "namespace"]
        del n.metadata_props[:]
        for k, v in keep:
            n.metadata_props.add(key=k, value=v)
    return model


def export(name: str, model: torch.nn.Module, x: torch.Tensor, dynamic_shapes=None) -> None:
    model.eval()
    path = os.path.join(OUT, f"{name}.onnx")
    prog = torch.onnx.export(
        model, (x,), dynamo=True, optimize=False, external_data=False, dynamic_shapes=dynamic_shapes
    )
    m = strip(prog.model_proto)
    onnx.save(m, path)
    params = sum(p.numel() for p in model.parameters())
    # PyTorch's own count: FlopCounterMode FLOPs / 2 (it has no formula for the fused LSTM,
    # GRU and RNN ops: those models' MACs are derived by hand in tests/onnx.rs).
    with torch.utils.flop_counter.FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    print(path, os.path.getsize(path), "bytes;", params, "params;", fc.get_total_flops() // 2, "MACs (FlopCounterMode / 2)")


class TinyCnn(torch.nn.Module):
    """A small CNN for `netstat measure` tests: conv, bn, relu, pool, linear."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.MaxPool2d(2)
        self.fc = torch.nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


class Erf(torch.nn.Module):
    """A model with an op netstat does not map (Erf, Cos): the unknown-op error test."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.cos(torch.special.erf(self.fc(x)))


class LstmLm(torch.nn.Module):
    """specs/lstm-lm.yaml's model (scripts/reference_counts.py's LstmLm): Embedding(10,000, 256)
    → LSTM(256, 512, num_layers=2, batch_first=True) → Linear(512, 10,000), on 35 token ids."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(10000, 256)
        self.lstm = torch.nn.LSTM(256, 512, num_layers=2, batch_first=True)
        self.decoder = torch.nn.Linear(512, 10000)

    def forward(self, x):
        return self.decoder(self.lstm(self.embedding(x))[0])


class Recurrent(torch.nn.Module):
    """GRU and RNN: GRU(16, 32, num_layers=2, bidirectional=True, batch_first=True) → RNN(64, 24,
    nonlinearity="relu", batch_first=True) → Linear(24, 5), on 10 steps of 16 features."""

    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(16, 32, num_layers=2, bidirectional=True, batch_first=True)
        self.rnn = torch.nn.RNN(64, 24, nonlinearity="relu", batch_first=True)
        self.fc = torch.nn.Linear(24, 5)

    def forward(self, x):
        return self.fc(self.rnn(self.gru(x)[0])[0])


class TinyUNet(torch.nn.Module):
    """ConvTranspose and Resize: conv → SiLU → max pool → conv → ConvTranspose2d(16, 8, 2,
    stride 2) → concat with the skip → conv → nearest ×2 upsample → bilinear resize to 40×40 →
    1×1 conv, on 3×16×16."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.enc = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.SiLU()
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Conv2d(8, 16, 3, padding=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = nn.Conv2d(16, 8, 3, padding=1)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        e = self.act(self.enc(x))
        u = self.up(self.mid(self.pool(e)))
        d = self.upsample(self.dec(torch.cat([u, e], 1)))
        d = torch.nn.functional.interpolate(d, size=(40, 40), mode="bilinear")
        return self.head(d)


class Dynamic(torch.nn.Module):
    """Symbolic dims: exported with a dynamic batch, height and width (`--batch`, `--input`
    set them): conv → ReLU → global average pool → flatten → linear."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu(self.conv(x))), 1))


class LegacyRnn(torch.nn.Module):
    """ONNX LSTM, GRU and RNN nodes as other exporters write them (W, R, B initializers read
    directly), from PyTorch's legacy TorchScript exporter (dynamo=False): LSTM(16, 32,
    num_layers=2, bidirectional=True) → GRU(64, 8) → RNN(8, 6) → Linear(6, 3), batch_first, on
    5 steps of 16 features."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(16, 32, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = torch.nn.GRU(64, 8, batch_first=True)
        self.rnn = torch.nn.RNN(8, 6, batch_first=True)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.rnn(self.gru(self.lstm(x)[0])[0])[0])


class LstmProj(torch.nn.Module):
    """An LSTM with proj_size (weight_hr, h of width 4): netstat's lstm has no projection, so
    the import refuses it by name."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 16, proj_size=4, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


class LstmLast(torch.nn.Module):
    """A classifier on the LSTM's final state h_n (not its output): netstat's lstm gives the
    output of every step only, so the import refuses it by name rather than miscount."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


class Slices(torch.nn.Module):
    """ONNX Slice on activations: conv 3→8 → x[:, :, 2:10] → x[..., ::2] → channels [:4] and
    [4:] added → x[:, :, -4:] → 1×1 conv 4→2 → flatten → linear 64→10, on 3×16×16."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(4, 2, 1)
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x):
        w = self.conv(x)[:, :, 2:10][..., ::2]
        y = w[:, :4] + w[:, 4:]
        return self.fc(torch.flatten(self.head(y[:, :, -4:]), 1))


def export_legacy(name: str, model: torch.nn.Module, x: torch.Tensor) -> None:
    """PyTorch's legacy exporter (dynamo=False): no module paths, no shapes of inner values."""
    model.eval()
    path = os.path.join(OUT, f"{name}.onnx")
    torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"])
    onnx.save(strip(onnx.load(path)), path)
    with torch.utils.flop_counter.FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    params = sum(p.numel() for p in model.parameters())
    print(path, os.path.getsize(path), "bytes;", params, "params;", fc.get_total_flops() // 2, "MACs (FlopCounterMode / 2)")


def fixtures():
    """Each fixture's name and how to make it."""
    img = torch.randn(1, 3, 224, 224)
    d = torch.export.Dim
    dyn = {"x": {0: d("batch", min=1, max=1024), 2: d("height", min=8, max=4096), 3: d("width", min=8, max=4096)}}
    return {
        "alexnet": lambda: export("alexnet", torchvision.models.alexnet(weights=None), img),
        "resnet18": lambda: export("resnet18", torchvision.models.resnet18(weights=None), img),
        "mobilenet_v2": lambda: export("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), img),
        "vit_b_16": lambda: export("vit_b_16", torchvision.models.vit_b_16(weights=None), img),
        "tiny_cnn": lambda: export("tiny_cnn", TinyCnn(), torch.randn(1, 3, 16, 16)),
        "unknown_ops": lambda: export("unknown_ops", Erf(), torch.randn(1, 4)),
        "lstm_lm": lambda: export("lstm_lm", LstmLm(), torch.randint(0, 10000, (1, 35))),
        "recurrent": lambda: export("recurrent", Recurrent(), torch.randn(1, 10, 16)),
        "tiny_unet": lambda: export("tiny_unet", TinyUNet(), torch.randn(1, 3, 16, 16)),
        # Exported at batch 2, 32×32 (a dynamic dim must not be 1 when tracing); the file keeps
        # only the symbols batch, height and width.
        # specs/unet-small.yaml's network (scripts/reference_counts.py): GroupNorm, SiLU, attention, Resize.
        "unet_small": lambda: export("unet_small", UNetSmall(), torch.randn(1, 3, 32, 32)),
        "legacy_rnn": lambda: export_legacy("legacy_rnn", LegacyRnn(), torch.randn(1, 5, 16)),
        "lstm_last": lambda: export("lstm_last", LstmLast(), torch.randn(1, 5, 8)),
        "lstm_proj": lambda: export("lstm_proj", LstmProj(), torch.randn(1, 5, 8)),
        "dynamic": lambda: export("dynamic", Dynamic(), torch.randn(2, 3, 32, 32), dynamic_shapes=dyn),
        "slices": lambda: export("slices", Slices(), torch.randn(1, 3, 16, 16)),
    }


if __name__ == "__main__":
    # python scripts/make_onnx_fixtures.py [OUT_DIR [NAME ...]]: every fixture, or those named.
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    todo = fixtures()
    for name in sys.argv[2:] or list(todo):
        todo[name]()
