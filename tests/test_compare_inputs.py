"""edgekit compare --inputs from images: read through edgekit.processing, so compare feeds the tensor calibration makes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "runtimes"))
from rt_models import conv_model, onnx_model  # noqa: E402

from edgekit.cli import main  # noqa: E402
from edgekit.compare import compare, image_feeds  # noqa: E402
from edgekit.errors import UsageError  # noqa: E402
from edgekit.quantize.calibration import open_source  # noqa: E402
from edgekit.runtimes import TensorInfo  # noqa: E402

# no layout: each model's own (NCHW for one, NHWC for the other) is taken from its input
SPEC = "resize=10;crop=8x8;scale=1/255;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;color=bgr"


@pytest.fixture
def images(tmp_path):
    from PIL import Image
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # not square: the crop matters
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_image_inputs_are_the_tensor_calibration_reads_in_either_layout(tmp_path, images):
    nchw = conv_model(tmp_path / "nchw.onnx", seed=3)
    nhwc = conv_model(tmp_path / "nhwc.onnx", seed=3, nhwc=True)
    calibrated = open_source(images, [TensorInfo("x", np.dtype(np.float32), (1, 3, 8, 8))], preprocess=SPEC).read("x", 0, 3)
    import edgekit.runtimes as runtimes
    for path in (nchw, nhwc):
        with runtimes.load(path) as sess:
            feeds = image_feeds(images, sess.inputs, SPEC)
        np.testing.assert_array_equal(feeds["x"], calibrated)  # reference terms: channels-first, whatever the model's
    for order in ([nchw, nhwc], [nhwc, nchw]):
        r = compare(order, inputs=images, preprocess=SPEC, atol=1e-5, rtol=1e-5)
        assert r["passed"], r
        assert r["inputs"]["shapes"] == {"x": [3, 3, 8, 8]}  # three images through a batch-1 model, row by row
        assert "3 image(s)" in r["inputs"]["source"]


def test_without_preprocess_the_reference_declares_its_own(tmp_path, images):
    """A model with edgekit.processing metadata (edgekit export writes it for zoo detectors) is fed as it declares."""
    identity = '<ir_version: 8, opset_import: ["" : 17]>\ng (float[1,3,8,8] x) => (float[1,3,8,8] y) { y = Identity(x) }'
    spec = {"resize": [10], "crop": [8, 8], "scale": 1 / 255, "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "color": "bgr"}
    own = onnx_model(identity, tmp_path / "own.onnx", {"edgekit.processing": {"preprocess": spec}})
    plain = onnx_model(identity, tmp_path / "plain.onnx")
    r = compare([own, plain], inputs=images, atol=0, rtol=0)
    assert r["passed"] and "preprocess the reference's own" in r["inputs"]["source"]
    import edgekit.runtimes as runtimes
    with runtimes.load(own) as sess:  # the metadata's table is the same spec as the text form
        np.testing.assert_array_equal(image_feeds(images, sess.inputs, spec)["x"], image_feeds(images, sess.inputs, SPEC)["x"])
    # the reference decides: with the plain model first, image calibration's default is used
    assert "default" in compare([plain, own], inputs=images)["inputs"]["source"]


def test_cli_takes_image_files_and_a_spec(tmp_path, images):
    a = conv_model(tmp_path / "a.onnx", seed=1)
    b = conv_model(tmp_path / "b.onnx", seed=1, scale=1.5)  # a different model: its outputs differ on real images
    files = sorted(images.iterdir())[:2]
    result = CliRunner().invoke(main, ["compare", str(a), str(b), "--inputs", str(files[0]), "--inputs", str(files[1]),
                                       "--preprocess", SPEC, "--json", "-"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["inputs"]["shapes"] == {"x": [2, 3, 8, 8]}
    assert report["candidates"][0]["outputs"][0]["max_abs"] > 0.01
    failing = CliRunner().invoke(main, ["compare", str(a), str(b), "--inputs", str(images), "--atol", "1e-6"])
    assert failing.exit_code == 5, failing.output


def test_image_input_errors_are_usage_errors(tmp_path, images):
    a = conv_model(tmp_path / "a.onnx")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="has no images"):
        compare([a, a], inputs=empty)
    with pytest.raises(UsageError, match="--preprocess reads image --inputs"):
        compare([a, a], preprocess=SPEC)
    with pytest.raises(UsageError, match="Unknown preprocessing option"):
        compare([a, a], inputs=images, preprocess="resise=8x8")
    (tmp_path / "note.txt").write_text("not an image")
    with pytest.raises(UsageError, match="Cannot read the image"):
        compare([a, a], inputs=[images, tmp_path / "note.txt"])
    result = CliRunner().invoke(main, ["compare", str(a), str(a), "--inputs", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "Traceback" not in result.output
