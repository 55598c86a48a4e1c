"""`edgekit export --nms` and the detection spec travelling through convert: the appended NMS keeps what numpy's
decode + NMS keeps (both box formats, ONNX Runtime and the compiled TFLite model), bad NMS options are refused before
anything is written, and the .tflite alone carries the ONNX model's edgekit.* metadata so detect() works on it."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from edgekit import detection as det
from edgekit.cli import main
from edgekit.errors import UsageError

pytest.importorskip("torch")


def ort_run(model, feeds):
    import onnxruntime as ort
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else open(model, "rb").read()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def identity_head(classes=3, anchors=40):
    """A model that passes its input through: the head values are whatever the test feeds."""
    info = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Identity", ["head_in"], ["head"])], "head",
                              [info("head_in", TensorProto.FLOAT, [1, 4 + classes, anchors])],
                              [info("head", TensorProto.FLOAT, [1, 4 + classes, anchors])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def random_head(rng, box_format, classes=3, anchors=40):
    """Clustered boxes (so NMS has work to do) in either format, class scores in [0, 1]."""
    centre = rng.uniform(10, 50, (anchors, 2)) // 12 * 12 + rng.normal(0, 1.5, (anchors, 2))
    size = rng.uniform(6, 20, (anchors, 2))
    rows = np.concatenate([centre, size], 1) if box_format == "xywh" else \
        np.concatenate([centre - size / 2, centre + size / 2], 1)
    scores = rng.uniform(0, 1, (anchors, classes)) ** 3
    return np.concatenate([rows, scores], 1).T[None].astype(np.float32)


@pytest.mark.parametrize("box_format", ["xywh", "xyxy"])
@pytest.mark.parametrize("agnostic", [False, True])
def test_appended_nms_keeps_what_numpy_keeps_in_both_box_formats(box_format, agnostic):
    from edgekit.converters.tflite import compile_onnx
    from edgekit.runtimes import load
    rng = np.random.default_rng(0)
    model = det.append_nms(identity_head(), conf=0.2, iou=0.4, max_det=15, agnostic=agnostic, box_format=box_format)
    tflite = load(compile_onnx(model).to_bytes(), runtime="litert")
    total = 0
    for _ in range(5):
        head = random_head(rng, box_format)
        want = det.postprocess_head(head, 0.2, 0.4, 15, agnostic=agnostic, box_format=box_format)
        for got in (det.unpad(ort_run(model, {"head_in": head})), det.unpad(tflite.run({"head_in": head}))):
            assert np.array_equal(got["classes"], want["classes"])
            np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-4)
            np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-6)
        total += len(want["boxes"])
    assert total > 10  # boxes were kept, and (clustered, 40 anchors) many were suppressed
    tflite.close()


def test_export_nms_from_the_cli_appends_decode_and_nms_to_the_validated_head(tmp_path, zoo_onnx):
    out = tmp_path / "det_nms.onnx"
    result = CliRunner().invoke(main, ["export", "zoo:detector", "-o", str(out), "--nms", "--nms-conf", "0.3",
                                       "--nms-iou", "0.5", "--max-det", "12", "--nms-agnostic"])
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == list(det.OUTPUT_NAMES)
    meta = {p.key: p.value for p in model.metadata_props}
    spec = json.loads(meta[det.DETECTIONS_KEY])
    assert (spec["conf"], spec["iou"], spec["max_det"], spec["agnostic"], spec["head_format"]) == \
        (0.3, 0.5, 12, True, "xywh")
    assert "edgekit.validation" in meta  # the head was validated against PyTorch before NMS was appended
    head = zoo_onnx("detector")  # the same export without --nms
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    want = det.postprocess_head(ort_run(head, {"image": x})["detections"], 0.3, 0.5, 12, agnostic=True)
    got = det.unpad(ort_run(model, {"image": x}))
    assert len(want["boxes"]) and np.array_equal(got["classes"], want["classes"])
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-3)


@pytest.mark.parametrize("args, message", [
    (["--nms", "--nms-conf", "1.5"], r"conf=1.5 is outside \[0, 1\]"),
    (["--nms", "--nms-iou", "-0.2"], r"iou=-0.2 is outside \[0, 1\]"),
    (["--nms", "--max-det", "0"], "max_det=0 must be a positive integer"),
    (["--max-det", "5", "--nms-agnostic"], "--max-det, --nms-agnostic only apply with --nms"),
    (["--nms", "--dynamic-batch"], "needs static shapes"),
    (["--nms", "--nms-head", "nope"], r"Choose the detection head among the outputs \['detections'\]"),
])
def test_bad_nms_options_are_refused_and_nothing_is_written(tmp_path, args, message):
    out = tmp_path / "det.onnx"
    result = CliRunner().invoke(main, ["export", "zoo:detector", "-o", str(out), *args])
    assert result.exit_code == UsageError.exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    import re
    assert re.search(message, " ".join(result.output.split())), result.output
    assert not out.exists()


def test_nms_on_a_head_that_is_not_a_detection_head_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["export", "zoo:mlp", "-o", str(tmp_path / "m.onnx"), "--nms"])
    assert result.exit_code == UsageError.exit_code, result.output
    assert "yolo-format head is [1, 4 + classes, anchors]" in " ".join(result.output.split())
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(UsageError, match="Unknown box format 'cxcy'"):
        det.nms_options(box_format="cxcy")
    with pytest.raises(UsageError, match="already has outputs named"):
        det.append_nms(det.append_nms(identity_head()), head="boxes")


def test_convert_carries_the_detection_spec_so_the_tflite_alone_detects(tmp_path):
    import edgekit
    from edgekit.convert import convert
    from edgekit.runtimes import load
    onnx_path, tflite_path = tmp_path / "nms.onnx", tmp_path / "nms.tflite"
    model = det.append_nms(identity_head(), conf=0.2, max_det=10)
    model.metadata_props.add(key="edgekit.labels_note", value="carried")
    onnx_path.write_bytes(model.SerializeToString())
    convert(onnx_path, tflite_path)
    meta = load(str(tflite_path), runtime="litert").metadata
    assert json.loads(meta[det.DETECTIONS_KEY]) == json.loads(
        {p.key: p.value for p in model.metadata_props}[det.DETECTIONS_KEY])
    assert meta["edgekit.labels_note"] == "carried" and meta["edgekit.source"] == "nms.onnx"
    head = random_head(np.random.default_rng(2), "xywh")
    got = det.unpad(load(str(tflite_path), runtime="litert").run({"head_in": head}))
    want = det.postprocess_head(head, 0.2, 0.45, 10)
    assert len(want["boxes"]) and np.array_equal(got["classes"], want["classes"])


def test_detect_on_the_converted_tflite_alone_gives_the_onnx_boxes(tmp_path):
    import edgekit
    from edgekit.convert import convert
    from edgekit.converters.torch_export import export
    onnx_path, tflite_path = tmp_path / "det.onnx", tmp_path / "det.tflite"
    export("zoo:detector", onnx_path, nms={"conf": 0.3, "max_det": 20})
    convert(onnx_path, tflite_path)
    image = np.random.default_rng(3).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    want = edgekit.load(onnx_path).detect(image, conf=0.3)
    got = edgekit.load(tflite_path).detect(image, conf=0.3)
    assert len(want.boxes) and np.array_equal(got.classes, want.classes)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=0.05)
