"""Normalisations exporters decompose are measured like LayerNormalization (edgekit.quantize.amplifiers): F.normalize's
x / max(‖x‖, eps) (Swin-V2's cosine attention), (x − mean) / sqrt(var + eps), RMSNorm's x · rsqrt(mean(x²) + eps);
a Div by a constant or a Mul by a gate (even a squeeze-and-excitation gate computed from a mean) is not one."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgekit.quantize.amplifiers import normalizations


def _graph(nodes, inits=()):
    return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
                             [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])


def _found(graph):
    return [(n.name, n.data, n.output) for n in normalizations(graph)]


def test_l2_normalize_as_exported():
    g = _graph([helper.make_node("Relu", ["x"], ["h"]),
                helper.make_node("ReduceL2", ["h"], ["norm"], keepdims=1, axes=[-1]),
                helper.make_node("Clip", ["norm", "eps"], ["clipped"]),
                helper.make_node("Expand", ["clipped", "shape"], ["wide"]),
                helper.make_node("Div", ["h", "wide"], ["y"], name="normalize")],
               [("eps", 1e-12), ("shape", [1, 4, 8])])
    assert _found(g) == [("normalize", "h", "y")]


def test_layernorm_decomposed_and_rmsnorm():
    ln = _graph([helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1]),
                 helper.make_node("Sub", ["x", "mean"], ["centred"]),
                 helper.make_node("Mul", ["centred", "centred"], ["sq"]),
                 helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
                 helper.make_node("Add", ["var", "eps"], ["v"]),
                 helper.make_node("Sqrt", ["v"], ["std"]),
                 helper.make_node("Div", ["centred", "std"], ["y"], name="ln")], [("eps", 1e-5)])
    assert ("ln", "centred", "y") in _found(ln)
    rms = _graph([helper.make_node("Mul", ["x", "x"], ["sq"], name="square"),
                  helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[-1]),
                  helper.make_node("Add", ["ms", "eps"], ["v"]),
                  helper.make_node("Sqrt", ["v"], ["rms"]),
                  helper.make_node("Reciprocal", ["rms"], ["inv"]),
                  helper.make_node("Mul", ["x", "inv"], ["y"], name="rmsnorm")], [("eps", 1e-6)])
    assert _found(rms) == [("rmsnorm", "x", "y")]  # "square" (x · x) multiplies by x, no statistic of it


def test_a_constant_divisor_or_a_gate_is_not_a_normalisation():
    g = _graph([helper.make_node("Div", ["x", "k"], ["scaled"], name="scale"),
                helper.make_node("Sigmoid", ["scaled"], ["gate"]),
                helper.make_node("Mul", ["scaled", "gate"], ["swished"], name="swish"),
                helper.make_node("ReduceMean", ["swished"], ["pooled"], axes=[-1]),
                helper.make_node("Sigmoid", ["pooled"], ["excite"]),
                helper.make_node("Mul", ["swished", "excite"], ["y"], name="squeeze_excite")], [("k", 8.0)])
    assert _found(g) == []  # the squeeze-and-excitation gate is a statistic of its operand, but it does not divide


def test_a_decomposed_layernorm_keeps_its_narrow_class_row_float(tmp_path):
    """The ViT case of test_normalization_inputs with LayerNorm as opsets before 17 export it: found and kept."""
    from edgekit.quantize import build as b
    from edgekit.quantize.amplifiers import amplified_inputs
    rng = np.random.default_rng(0)
    d, patches = 64, 16
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in (
        ("w1", rng.standard_normal((d, d)) / 2), ("cls", rng.standard_normal((1, 1, d)) * 0.02),
        ("eps", 1e-5), ("two", 2.0), ("w2", rng.standard_normal((d, d)) / 4))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="patch"),
             helper.make_node("Concat", ["cls", "h"], ["cat"], axis=1, name="concat"),
             helper.make_node("ReduceMean", ["cat"], ["mean"], axes=[-1]),
             helper.make_node("Sub", ["cat", "mean"], ["centred"]),
             helper.make_node("Pow", ["centred", "two"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["v"]),
             helper.make_node("Sqrt", ["v"], ["std"]),
             helper.make_node("Div", ["centred", "std"], ["norm"], name="ln"),
             helper.make_node("MatMul", ["norm", "w2"], ["y"], name="head")]
    graph = helper.make_graph(nodes, "cls_token", [helper.make_tensor_value_info("x", 1, [1, patches, d])],
                              [helper.make_tensor_value_info("y", 1, [1, patches + 1, d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    fm = b.prepare_float(model, tmp_path)
    feeds = [{"x": np.random.default_rng(1 + k).standard_normal((1, patches, d)).astype(np.float32)}
             for k in range(8)]

    class Reader:
        def __init__(self, start, stop):
            self.rows = iter(feeds[start:stop])

        def get_next(self):
            return next(self.rows, None)

    cache = b.calibrate(fm, Reader, len(feeds), "minmax", tmp_path)
    kept = amplified_inputs(fm.proto, cache, feeds)
    assert (kept[0].tensor, kept[0].norm) == ("cat", "ln") and kept[0].gain > 20  # 175 output steps per step
