"""The detection example app (examples/detect_app): build once, then draw.py on a simulated device (torch and onnx,
and for .tflite onnxruntime, cannot be imported) finds the sample scenes' shapes, reports the boxes detect() gives
in-process, and writes PNGs with those boxes outlined in their class colours (and, with a segmenter, tinted)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
PIL = pytest.importorskip("PIL")

import edgekit  # noqa: E402
from edgekit.detection import iou_matrix  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "detect_app"
RUN_BLOCKED = ROOT / "tests" / "app" / "run_blocked.py"
WORKSTATION_ONLY = ["torch", "onnx", "onnxscript", "transformers", "safetensors", "sklearn"]
pytestmark = pytest.mark.slow


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"detect_app_{name}", APP / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("detect_app")
    _module("build").build(out, samples=4, segmenter=True)
    return out


def _draw_blocked(model: Path, folder: Path, out: Path, *extra: str, blocked=WORKSTATION_ONLY):
    proc = subprocess.run([sys.executable, str(RUN_BLOCKED), ",".join(blocked), str(APP / "draw.py"), str(model),
                           str(folder), str(out), "--json", *extra], capture_output=True, text=True, timeout=600)
    assert "BLOCKED-IMPORTS: []" in proc.stderr, proc.stderr
    return proc


@pytest.mark.parametrize("model, blocked", [("detector-tflite.ekb", WORKSTATION_ONLY + ["onnxruntime"]),
                                            ("detector-onnx.ekb", WORKSTATION_ONLY)])
def test_the_app_finds_the_shapes_and_draws_the_boxes_detect_gives(built, tmp_path, model, blocked):
    from PIL import Image
    proc = _draw_blocked(built / model, built / "samples", tmp_path, blocked=blocked)
    assert proc.returncode == 0, proc.stderr
    results = {r["file"]: r for r in json.loads(proc.stdout)}
    truth = json.loads((built / "samples_truth.json").read_text())
    assert sorted(results) == sorted(truth)
    found_truth = 0
    with edgekit.load(built / model) as detector:
        for name, result in results.items():
            want = detector.detect(built / "samples" / name)
            np.testing.assert_allclose(np.asarray(result["boxes"]).reshape(-1, 4), want.boxes, atol=0.01)
            assert result["labels"] == want.labels
            ious = iou_matrix(np.asarray(truth[name]["boxes"]), want.boxes)
            for t, label in enumerate(truth[name]["labels"]):  # each true shape found with its label
                hits = [k for k in np.flatnonzero(ious[t] >= 0.5) if want.labels[k] == label] if ious.size else []
                found_truth += bool(hits)
            drawn = np.asarray(Image.open(result["written"]))
            original = np.asarray(Image.open(built / "samples" / name).convert("RGB"))
            assert drawn.shape == original.shape
            draw = _module("draw")
            for box, cls in zip(want.boxes, want.classes):  # the outline's bottom edge holds the class colour
                x1, _, x2, y2 = (int(v) for v in box)
                rows = drawn[max(0, y2 - 2):y2 + 2, x1 + 4:x2 - 3]
                share = np.mean(np.all(rows == draw.colour(cls), axis=-1), axis=1)
                assert rows.size and share.max() > 0.8, (name, box)
    total = sum(len(t["labels"]) for t in truth.values())
    assert found_truth >= 0.8 * total, (found_truth, total)


def test_a_segmenter_tints_the_shapes(built, tmp_path):
    from PIL import Image
    proc = _draw_blocked(built / "detector-tflite.ekb", built / "samples", tmp_path, "--segmenter",
                         str(built / "segmenter.tflite"), blocked=WORKSTATION_ONLY + ["onnxruntime"])
    assert proc.returncode == 0, proc.stderr
    name = json.loads(proc.stdout)[0]["file"]
    with edgekit.load(built / "segmenter.tflite") as segmenter:
        mask = segmenter.segment(built / "samples" / name)
    drawn = np.asarray(Image.open(tmp_path / name), np.float32)
    original = np.asarray(Image.open(built / "samples" / name).convert("RGB"), np.float32)
    changed = np.any(np.abs(drawn - original) > 2, axis=-1)
    assert mask.any() and np.mean(changed[mask > 0]) > 0.95  # every shape pixel tinted
    assert mask.shape == original.shape[:2]


def test_a_file_that_is_not_an_image_is_reported_and_the_rest_are_drawn(built, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "ok.png").write_bytes((built / "samples" / "scene00.png").read_bytes())
    proc = _draw_blocked(built / "detector-tflite.ekb", folder, tmp_path / "out",
                         blocked=WORKSTATION_ONLY + ["onnxruntime"])
    assert proc.returncode == 1
    results = {r["file"]: r for r in json.loads(proc.stdout)}
    assert "is not an image file Pillow can read" in results["broken.png"]["error"]
    assert (tmp_path / "out" / "ok.png").is_file() and not (tmp_path / "out" / "broken.png").exists()
