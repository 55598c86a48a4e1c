"""Static QDQ keeps a normalisation's input in float when its one-step rounding is amplified (issue 13, item 4).

The pattern is a Vision Transformer's: a learned class-token row (values near zero) concatenated before the patch
rows, then LayerNorm. The patch rows set the concatenation's 8-bit step; the class row is only a few steps wide,
so LayerNorm turns one step of its rounding into tens of output steps, and ONNX Runtime's and LiteRT's ±1-step
rounding differences become a failed INT8 validation (the small HF ViT: 0.553 at scale 3.94)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgekit.quantize import build as b
from edgekit.quantize.amplifiers import AMPLIFY_STEPS, amplified_inputs

D, PATCHES = 64, 8


def _class_token_model(cls_spread: float) -> onnx.ModelProto:
    """x [1,PATCHES,D] → MatMul → Concat(class row, ·) → LayerNormalization → MatMul → y [1,PATCHES+1,D]; the
    patch rows' spread is about 4 (x ~ N(0,1), w1 ~ N(0,1/4), D=64), the class row's `cls_spread`."""
    rng = np.random.default_rng(0)
    cls = (rng.standard_normal((1, 1, D)) * cls_spread).astype(np.float32)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w1", rng.standard_normal((D, D)) / 2), ("cls", cls), ("gamma", np.ones(D)), ("beta", np.zeros(D)),
        ("w2", rng.standard_normal((D, D)) / 4))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="patch"),
             helper.make_node("Concat", ["cls", "h"], ["cat"], axis=1, name="concat"),
             helper.make_node("LayerNormalization", ["cat", "gamma", "beta"], ["norm"], axis=-1, name="ln"),
             helper.make_node("MatMul", ["norm", "w2"], ["y"], name="head")]
    graph = helper.make_graph(nodes, "cls_token", [helper.make_tensor_value_info("x", 1, [1, PATCHES, D])],
                              [helper.make_tensor_value_info("y", 1, [1, PATCHES + 1, D])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _calibrated(tmp_path, model):
    fm = b.prepare_float(model, tmp_path)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, PATCHES, D)).astype(np.float32)} for _ in range(8)]

    class Reader:
        def __init__(self, start, stop):
            self.rows = iter(feeds[start:stop])

        def get_next(self):
            return next(self.rows, None)

    return fm, b.calibrate(fm, Reader, len(feeds), "minmax", tmp_path), feeds


def test_a_narrow_class_row_before_layernorm_keeps_the_layernorm_input_float(tmp_path):
    fm, cache, feeds = _calibrated(tmp_path, _class_token_model(0.02))
    kept = amplified_inputs(fm.proto, cache, feeds)
    assert [(a.tensor, a.norm) for a in kept] == [("cat", "ln"), ("h", "ln")]
    assert kept[0].gain > 20 * AMPLIFY_STEPS
    # the walk climbs through the float Concat to the patch MatMul's output (an ordinary LayerNorm row: ~1.5 steps
    # per step) and stops at the MatMul's input, which the MatMul contracts (measured below one step)
    assert 1.2 < kept[1].gain < 2.0


def test_a_class_row_as_wide_as_the_patches_is_not_what_keeps_it_float(tmp_path):
    """With the class row as wide as the patches the Concat is kept only for the LayerNorm's ordinary ~1.5× gain;
    a 2-step limit keeps everything quantized, the default (no amplification) does not."""
    fm, cache, feeds = _calibrated(tmp_path, _class_token_model(4.0))
    assert amplified_inputs(fm.proto, cache, feeds, threshold=2.0) == []
    kept = amplified_inputs(fm.proto, cache, feeds)
    assert [a.tensor for a in kept] == ["cat", "h"] and all(a.gain < 2.0 for a in kept)


def test_quantize_reports_the_kept_tensor_and_the_int8_tflite_validates(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from edgekit.convert import convert
    from edgekit.quantize import Calibration, SpeedPolicy, quantize
    src, out = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(_class_token_model(0.02), src)
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((32, PATCHES, D)).astype(np.float32))
    result = quantize(src, out, mode="static", calibration=Calibration(str(tmp_path / "calib.npz")),
                      speed=SpeedPolicy("off"), force=True)
    assert "cat" in result.plan.float_tensors
    assert any("normalisation's output" in n and "cat (x" in n for n in result.notes)
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    amplified = json.loads(meta["edgekit.quantization"])["amplified_tensors"]
    assert [a["tensor"] for a in amplified] == ["cat", "h"] and amplified[0]["normalization"] == "ln"
    converted = convert(out, tmp_path / "int8.tflite", force=True)  # raises ValidationError if it does not match
    assert converted.mode == "int8" and min(o["cosine"] for o in converted.outputs) > 0.999


def test_the_class_row_of_the_qdq_model_follows_float_only_with_the_input_kept_float(tmp_path):
    """Why: quantized at the patches' step, the narrow class row is rounded away before LayerNorm rescales it."""
    import onnxruntime as ort
    fm, cache, feeds = _calibrated(tmp_path, _class_token_model(0.02))
    want = ort.InferenceSession(fm.proto.SerializeToString()).run(None, feeds[0])[0][0, 0]

    def class_row_error(plan):
        proto = b.build(fm, plan, tmp_path, cache)
        got = ort.InferenceSession(proto.SerializeToString()).run(None, feeds[0])[0][0, 0]
        return float(np.abs(got - want).max() / np.abs(want).max())

    plain = b.Plan(mode="static")
    assert class_row_error(plain) > 0.3
    assert class_row_error(plain.with_float_tensors("cat")) < 0.05
