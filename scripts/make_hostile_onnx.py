"""Write the hostile and tricky ONNX models of tests/fixtures/onnx/hostile/ (tests/onnx.rs).

Each is one node whose initializers disagree with its input or its attributes, or whose name or
op type holds control characters; initializers carry dims only (no data), as netstat needs.
Run: python3 scripts/make_hostile_onnx.py  (needs the `onnx` package from PyPI; 1.23.2 made them).
"""
import os

import onnx
from onnx import TensorProto, helper

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "onnx", "hostile")


def weight(name, dims):
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    return t


def save(stem, node, inits, in_dims, out_dims=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)
    y = helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, out_dims)
    g = helper.make_graph([node], "g", [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    with open(os.path.join(OUT, stem + ".onnx"), "wb") as f:
        f.write(m.SerializeToString())


os.makedirs(OUT, exist_ok=True)
conv = lambda **a: helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", **a)
# A [8, 5, 3, 3] weight on 3 channels: 8·5·9 + 8 = 368 held; a conv of 3 channels has 8·3·9 + 8 = 224.
save("conv_c_in", conv(), [weight("w", [8, 5, 3, 3]), weight("b", [8])], [1, 3, 16, 16])
# kernel_shape 5 on a 3×3 weight: 8·3·9 + 8 = 224 held; a 5×5 conv has 8·3·25 + 8 = 608.
save("conv_kernel", conv(kernel_shape=[5, 5]), [weight("w", [8, 3, 3, 3]), weight("b", [8])], [1, 3, 16, 16])
# A bias of 100 on 8 channels: 216 + 100 = 316 held; 224 counted.
save("conv_bias", conv(), [weight("w", [8, 3, 3, 3]), weight("b", [100])], [1, 3, 16, 16])
# Gemm without transB, W [8, 4] (K 8, 4 outputs) on x [1, 4]: 32 + 4 held; a linear 4 → 4 has 20.
save("gemm_k", helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g"), [weight("w", [8, 4]), weight("b", [4])], [1, 4])
# MatMul by [5, 8] on x [1, 4]: 40 held; a linear 4 → 8 has 32.
save("matmul_k", helper.make_node("MatMul", ["x", "w"], ["y"], name="m"), [weight("w", [5, 8])], [1, 4])
# BatchNormalization with a scale and bias of 5 on 3 channels: 10 held; 6 counted.
bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")
save("bn_c", bn, [weight(n, [5]) for n in "sbmv"], [1, 3, 4, 4])
# ConvTranspose weight [7, 8, 3, 3] on 3 channels: 504 held; 3·8·9 = 216 counted.
ct = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="ct")
save("conv_transpose_c_in", ct, [weight("w", [7, 8, 3, 3])], [1, 3, 16, 16])
# A carriage return in a node name ended `netstat import`'s YAML comment and started a layer.
relu = lambda name: helper.make_node("Relu", ["x"], ["y"], name=name)
save("name_cr", relu("r\r  - {name: evil, kind: linear, out_features: 1000000}  #"), [], [1, 4])
# An ESC sequence and a newline in an op type (printed in --allow-unknown's warning and row name).
odd = lambda op: helper.make_node(op, ["x"], ["y"], name="f")
save("op_esc", odd("Foo\x1b[31mRED\x1b[0m"), [], [1, 4], [1, 4])
save("op_newline", odd("Foo\n  - {name: evil, kind: linear, out_features: 1000000}  #"), [], [1, 4], [1, 4])
# Valid models that read one weight twice: counted once (`shares`, `tied_to`), not twice.
# Two Convs on one w [4, 4, 3, 3] and b [4] (4·4·9 + 4 = 148 parameters in the file).
x4 = [1, 4, 8, 8]
c1 = helper.make_node("Conv", ["x", "w", "b"], ["h"], name="conv1", pads=[1, 1, 1, 1])
r = helper.make_node("Relu", ["h"], ["hr"], name="relu")
c2 = helper.make_node("Conv", ["hr", "w", "b"], ["y"], name="conv2", pads=[1, 1, 1, 1])
g = helper.make_graph(
    [c1, r, c2], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, x4)],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    initializer=[weight("w", [4, 4, 3, 3]), weight("b", [4])],
)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), os.path.join(OUT, "shared_conv.onnx"))
# GPT-2's tied head: Gather(wte [50, 16]) then MatMul(·, Transpose(wte)): 800 parameters.
emb = helper.make_node("Gather", ["wte", "ids"], ["e"], name="wte")
tr = helper.make_node("Transpose", ["wte"], ["wte_t"], name="t", perm=[1, 0])
head = helper.make_node("MatMul", ["e", "wte_t"], ["y"], name="lm_head")
g = helper.make_graph(
    [emb, tr, head], "g",
    [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 6])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    initializer=[weight("wte", [50, 16])],
)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), os.path.join(OUT, "tied_lm_head.onnx"))
# A Gemm whose bias C of shape [1] broadcasts to 5 outputs: no bias netstat's linear has.
gemm = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)
save("gemm_bias_broadcast", gemm, [weight("w", [5, 7]), weight("b", [1])], [2, 7])
# nn.Conv1d(3, 8, 3, padding=1) then nn.BatchNorm1d(8), the rank between them undeclared:
# a batch_norm1d (it was mapped to batch_norm2d and refused by its rank check).
c = helper.make_node("Conv", ["x", "w", "b"], ["h"], name="conv", pads=[1, 1], kernel_shape=[3])
bn = helper.make_node("BatchNormalization", ["h", "s", "beta", "m", "v"], ["y"], name="bn")
g = helper.make_graph(
    [c, bn], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    initializer=[weight("w", [8, 3, 3]), weight("b", [8])] + [weight(n, [8]) for n in ["s", "beta", "m", "v"]],
)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)]), os.path.join(OUT, "conv1d_bn.onnx"))
