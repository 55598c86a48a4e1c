"""Detectors judged by their boxes: `compare` reports matched-box agreement against the reference (and mAP@0.5 when
the inputs file has labels with boxes), and `quantize` measures its accuracy drop in mAP@0.5 points, on the trained
synthetic-shapes detector (zoo:detector)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from edgekit import detection as det  # noqa: E402
from edgekit import detection_metrics as dm  # noqa: E402
from edgekit.zoo import detection as zoo  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory, trained_detector):
    """The trained detector's weights and head (marked as a detection head), the head with NMS appended, and images
    with labels [N, 4, 5] for evaluation and calibration."""
    model = trained_detector(250)
    root = tmp_path_factory.mktemp("judge")
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "det.safetensors"))
    torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), str(root / "head.onnx"), input_names=["image"],
                      output_names=["detections"], opset_version=17, dynamo=False)
    head = det.mark_head(onnx.load(str(root / "head.onnx")), "detections")
    onnx.save(head, str(root / "head.onnx"))
    onnx.save(det.append_nms(head, conf=0.25, max_det=20), str(root / "nms.onnx"))
    onnx.save(det.append_nms(head, conf=0.7, max_det=20), str(root / "nms_strict.onnx"))
    test_images, test_labels = zoo.shapes_dataset(24, seed=1)
    np.savez(root / "eval.npz", image=zoo.to_input(test_images).numpy(), labels=dm.padded_box_labels(test_labels))
    calib_images, calib_labels = zoo.shapes_dataset(48, seed=2)
    np.savez(root / "calib.npz", image=zoo.to_input(calib_images).numpy(), labels=dm.padded_box_labels(calib_labels))
    return root


def test_compare_reports_box_agreement_and_map_for_detectors(files):
    from edgekit.compare import compare
    from edgekit.convert import convert
    convert(files / "nms.onnx", files / "nms.tflite")
    report = compare([files / "nms.onnx", files / "nms.tflite", files / "nms_strict.onnx"],
                     inputs=str(files / "eval.npz"))
    tflite, strict = (c["detections"] for c in report["candidates"])
    assert tflite["images"] == 24 and tflite["reference"] > 24  # every image ran, and the scenes hold boxes
    assert tflite["precision"] == tflite["recall"] == 1.0 and tflite["mean_iou"] > 0.99
    assert tflite["map50"] == pytest.approx(tflite["reference_map50"], abs=1e-6)
    assert tflite["reference_map50"] > 0.8
    # a stricter score threshold keeps a subset of the boxes: every kept box matches, some reference boxes don't
    assert strict["precision"] == 1.0 and strict["recall"] < 0.95 and strict["map50"] < strict["reference_map50"]
    from click.testing import CliRunner

    from edgekit.cli import main
    result = CliRunner().invoke(main, ["compare", str(files / "nms.onnx"), str(files / "nms.tflite"),
                                       "--inputs", str(files / "eval.npz")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "detections nms.tflite: boxes matched to the reference's (IoU >= 0.5, same class) precision 1.000 " \
           "recall 1.000" in text and f"mAP@0.5 {tflite['map50']:.4f}" in text


def test_compare_of_models_that_are_not_detectors_has_no_detection_section(zoo_onnx):
    from edgekit.compare import compare
    path = zoo_onnx("mlp")
    report = compare([path, path])
    assert "detections" not in report["candidates"][0]


def test_quantize_measures_the_int8_detector_in_map_points(files):
    from edgekit.quantize import AccuracyGate, Calibration, SpeedPolicy, quantize
    result = quantize(files / "head.onnx", files / "head_int8.onnx", calibration=Calibration(str(files / "calib.npz")),
                      gate=AccuracyGate(eval_data=str(files / "eval.npz"), max_drop=0.05), speed=SpeedPolicy("off"))
    acc = result.accuracy
    assert acc.metric == "map50" and acc.samples == 24
    assert acc.float_accuracy > 0.8 and acc.drop == pytest.approx(acc.float_accuracy - acc.accuracy)
    assert acc.drop <= 0.05
    meta = {p.key: p.value for p in onnx.load(str(files / "head_int8.onnx")).metadata_props}
    assert det.HEAD_KEY in meta  # the int8 model is still known to be a detection head
    # the figure is the mAP of the written model, computed here independently
    from edgekit.runtimes import load
    session = load(str(files / "head_int8.onnx"), runtime="onnxruntime")
    data = np.load(files / "eval.npz")
    found = [det.postprocess_head(session.run({"image": x[None]})["detections"]) for x in data["image"]]
    assert dm.map50(found, dm.box_labels(data["labels"])) == pytest.approx(acc.accuracy, abs=1e-6)


def test_without_box_labels_quantize_judges_matched_boxes_against_float(files, tmp_path):
    from edgekit.quantize import Calibration, SpeedPolicy, quantize
    data = np.load(files / "calib.npz")
    np.savez(tmp_path / "calib.npz", image=data["image"])
    result = quantize(files / "head.onnx", tmp_path / "int8.onnx", calibration=Calibration(str(tmp_path / "calib.npz")),
                      speed=SpeedPolicy("off"))
    acc = result.accuracy
    row = next(r for r in acc.outputs if r["output"] == "matched boxes")
    assert acc.metric == "box_agreement" and acc.float_accuracy is None
    assert acc.drop == pytest.approx(1 - min(row["precision"], row["recall"]))
    assert 0 <= acc.drop < 0.3


def test_detection_spec_reads_metadata_or_output_names():
    assert dm.detection_spec({}, ["boxes", "scores", "classes", "count"])["kind"] == "nms"
    assert dm.detection_spec({}, ["detections"]) is None  # an unmarked tensor is not assumed to be boxes
    spec = dm.detection_spec({det.HEAD_KEY: '{"output": "out", "format": "yolo"}'}, ["out"])
    assert spec == {"kind": "head", "output": "out", "box_format": "xywh"}
    assert dm.box_labels(np.zeros((3, 2))) is None


def test_the_pipeline_ranks_detector_variants_by_map(files, tmp_path):
    from edgekit.pipeline import pipeline
    (tmp_path / "pipeline.toml").write_text(f"""
[model]
spec = "zoo:detector"
weights = "{files / 'det.safetensors'}"

[data]
calibration = "{files / 'calib.npz'}"
eval = "{files / 'eval.npz'}"

[variants]
include = ["onnx-fp32", "onnx-int8", "tflite-fp32", "tflite-int8"]
speed = "off"

[bench]
threads = [1]
min_time = 0.1

[gate]
max_drop = 0.03
""")
    report = pipeline(str(tmp_path / "pipeline.toml"), tmp_path / "out")
    rows = {r["variant"]: r for r in report["rows"]}
    float_map = rows["onnx-fp32"]["accuracy"]["value"]
    assert all(r["accuracy"]["metric"] == "mAP@0.5" for r in rows.values())
    assert float_map > 0.8 and rows["tflite-fp32"]["accuracy"]["value"] == pytest.approx(float_map, abs=1e-6)
    best = report["best"]
    assert rows[best]["accuracy"]["value"] >= float_map - 0.03


def test_padded_box_labels_round_trip_through_box_labels():
    labels = [{"boxes": np.float32([[1, 2, 3, 4], [5, 6, 7, 8]]), "classes": np.int64([0, 2])},
              {"boxes": np.zeros((0, 4), np.float32), "classes": np.zeros(0, np.int64)}]
    padded = dm.padded_box_labels(labels)
    assert padded.shape == (2, 2, 5) and (padded[1, :, 4] == -1).all()
    back = dm.box_labels(padded)
    for want, got in zip(labels, back):
        np.testing.assert_array_equal(got["boxes"], want["boxes"])
        np.testing.assert_array_equal(got["classes"], want["classes"])
    with pytest.raises(ValueError, match="more than the width 1"):
        dm.padded_box_labels(labels, width=1)
