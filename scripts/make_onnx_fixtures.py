#!/usr/bin/env python3
"""Make the ONNX test fixtures in tests/fixtures/onnx/ (issue 15).

Each model is exported with PyTorch's default exporter (torch.onnx.export, dynamo=True) from
torchvision (alexnet, resnet18, mobilenet_v2, vit_b_16) with weights=None, with optimize=False (the default optimize=True folds each
BatchNorm into the conv before it, so the file no longer has torchvision's parameters), then every initializer's data is stripped (its dims and dtype
kept), so a file is a few KiB to a few hundred KiB: netstat counts parameters from the dims and
never needs the values.

Made with torch 2.15.0, torchvision 0.29.2, onnx 1.23.2, onnxscript 0.7.2:
    python scripts/make_onnx_fixtures.py [OUT_DIR]
"""
import sys
import os

import onnx
import torch
import torchvision

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


def export(name: str, model: torch.nn.Module, x: torch.Tensor) -> None:
    model.eval()
    path = os.path.join(OUT, f"{name}.onnx")
    prog = torch.onnx.export(model, (x,), dynamo=True, optimize=False, external_data=False)
    m = strip(prog.model_proto)
    onnx.save(m, path)
    print(path, os.path.getsize(path), "bytes;", sum(p.numel() for p in model.parameters()), "params")


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


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    img = torch.randn(1, 3, 224, 224)
    export("alexnet", torchvision.models.alexnet(weights=None), img)
    export("resnet18", torchvision.models.resnet18(weights=None), img)
    export("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), img)
    export("vit_b_16", torchvision.models.vit_b_16(weights=None), img)
    export("tiny_cnn", TinyCnn(), torch.randn(1, 3, 16, 16))
    export("unknown_ops", Erf(), torch.randn(1, 4))
