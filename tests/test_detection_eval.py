"""`edgekit compare --eval FILE`: detection labels with boxes ([N, M, 5] in an .npz, with or without the inputs) give
mAP@0.5 per model, the reference's included, in the table and --json, equal to mAP computed from ONNX Runtime's
outputs directly; labels that do not fit the inputs, or a reference that is not a detector, are refused clearly."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from edgekit import detection as det  # noqa: E402
from edgekit import detection_metrics as dm  # noqa: E402
from edgekit.cli import main  # noqa: E402
from edgekit.convert import convert  # noqa: E402
from edgekit.converters.torch_export import export  # noqa: E402
from edgekit.zoo import detection as zoo  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory, trained_detector):
    """The detector trained ~120 steps, exported as a marked head and with NMS inside (also converted), and held-out
    images with labels: together in eval.npz, apart in images.npz + labels.npz."""
    root = tmp_path_factory.mktemp("det_eval")
    model = trained_detector(120)
    torch.save(model.state_dict(), root / "weights.pt")
    export("zoo:detector", root / "head.onnx", weights=str(root / "weights.pt"))
    export("zoo:detector", root / "nms.onnx", weights=str(root / "weights.pt"), nms={"max_det": 20})
    convert(root / "nms.onnx", root / "nms.tflite")
    test_images, test_labels = zoo.shapes_dataset(16, seed=1)
    x = zoo.to_input(test_images).numpy()
    np.savez(root / "eval.npz", image=x, labels=dm.padded_box_labels(test_labels))
    np.savez(root / "images.npz", image=x)
    np.savez(root / "labels.npz", labels=dm.padded_box_labels(test_labels))
    np.savez(root / "short.npz", labels=dm.padded_box_labels(test_labels[:5]))
    session = ort.InferenceSession(str(root / "head.onnx"), providers=["CPUExecutionProvider"])
    found = [det.postprocess_head(session.run(None, {"image": xi[None]})[0]) for xi in x]
    return root, dm.map50(found, test_labels)


def compare_cli(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_compare_eval_gives_map_per_model_in_the_table_and_json(files, tmp_path):
    root, head_map = files
    models = [root / "head.onnx", root / "nms.onnx", root / "nms.tflite"]
    result = compare_cli(*models, "--eval", root / "eval.npz", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    evaluation = json.loads((tmp_path / "r.json").read_text())["evaluation"]
    assert (evaluation["metric"], evaluation["images"]) == ("mAP@0.5", 16) and evaluation["boxes"] >= 16
    maps = [row["map50"] for row in evaluation["models"]]
    assert [row["model"] for row in evaluation["models"]] == [str(m) for m in models]
    assert head_map > 0.5 and maps[0] == pytest.approx(head_map, abs=1e-9)  # the reference: ORT's own head + numpy
    assert maps[1:] == pytest.approx([maps[0]] * 2, abs=0.02)  # NMS inside, ORT and LiteRT
    assert "mAP@0.5 against" in result.output and "nms.tflite" in result.output and f"{maps[0]:.4f}" in result.output


def test_labels_apart_from_the_inputs_give_the_same_map(files):
    from edgekit.compare import compare
    root, _ = files
    together = compare([root / "head.onnx", root / "nms.tflite"], eval_data=root / "eval.npz")
    apart = compare([root / "head.onnx", root / "nms.tflite"], inputs=root / "images.npz", eval_data=root / "labels.npz")
    assert apart["evaluation"]["models"] == together["evaluation"]["models"]
    assert together["inputs"]["source"].endswith("eval.npz")


@pytest.mark.parametrize("args, message", [
    (["--inputs", "images.npz", "--eval", "short.npz"], r"labels 5 image\(s\) and the inputs hold 16"),
    (["--eval", "images.npz"], r"must hold 'labels' \[N, M, 5\]"),
])
def test_eval_labels_that_do_not_fit_are_refused(files, args, message):
    import re
    root, _ = files
    result = compare_cli(root / "head.onnx", root / "nms.onnx", *[root / a if a.endswith(".npz") else a for a in args])
    assert result.exit_code == 2, result.output
    assert re.search(message, " ".join(result.output.split())) and "Traceback" not in result.output


def test_eval_on_a_model_that_is_not_a_detector_is_refused(tmp_path):
    export("zoo:mlp", tmp_path / "mlp.onnx")
    np.savez(tmp_path / "e.npz", x=np.zeros((2, 64), np.float32), labels=np.full((2, 1, 5), -1, np.float32))
    result = compare_cli(tmp_path / "mlp.onnx", tmp_path / "mlp.onnx", "--eval", tmp_path / "e.npz")
    assert result.exit_code == 2 and "--eval scores detections" in " ".join(result.output.split())
