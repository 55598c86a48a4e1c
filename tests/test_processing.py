"""One preprocessing spec (edgekit.processing): calibration, the app and bundles turn the same image into the same tensor.

The model under test is `y = Identity(x)`, so what an app gets back is exactly the tensor it fed: no runtime
numerics stand between the three paths being compared.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import edgekit
from edgekit.errors import UsageError
from edgekit.processing import Preprocess, parse_spec
from edgekit.quantize.calibration import open_source
from edgekit.runtimes import TensorInfo

SPEC = "layout=NCHW;resize=10;crop=8x8;scale=1/255;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;color=bgr"


@pytest.fixture
def identity_onnx(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "identity.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture
def image_folder(tmp_path):
    from PIL import Image
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)  # not square: the crop matters
    Image.fromarray(pixels).save(folder / "0.png")
    return folder, pixels


def test_calibration_the_app_and_a_bundle_make_the_same_tensor_from_one_image(identity_onnx, image_folder, tmp_path):
    from edgekit.bundle import bundle
    folder, pixels = image_folder
    info = TensorInfo("x", np.dtype(np.float32), (1, 3, 8, 8))
    calibrated = open_source(folder, [info], preprocess=SPEC).read("x", 0, 1)

    with edgekit.load(identity_onnx, preprocess=parse_spec(SPEC)) as app:
        in_app = app(pixels, preprocess=True)["y"]
    bundle(identity_onnx, tmp_path / "m.ekb", preprocess=SPEC)
    with edgekit.load(tmp_path / "m.ekb") as bundled:
        from_bundle = bundled(pixels, preprocess=True)["y"]

    assert calibrated.shape == (1, 3, 8, 8) and calibrated.dtype == np.float32
    np.testing.assert_array_equal(calibrated, in_app)
    np.testing.assert_array_equal(calibrated, from_bundle)
    # and it is the spec's tensor: channel 0 is the image's blue (bgr), normalised with the first mean/std
    assert abs(float(calibrated[0, 0].mean()) * 0.229 + 0.485 - float(pixels[2:10, 3:13, 2].mean()) / 255) < 0.05


def test_old_calibration_text_reads_as_it_did(image_folder):
    """`scale=255` was calibration's divisor and `order=` its colour key: old commands give the same tensor, warned."""
    folder, _ = image_folder
    info = TensorInfo("x", np.dtype(np.float32), (1, 3, 8, 8))
    new = open_source(folder, [info], preprocess="resize=10;scale=1/255;color=rgb;layout=NCHW").read("x", 0, 1)
    with pytest.warns(FutureWarning, match="scale=1/255"):
        old = open_source(folder, [info], preprocess="resize=10;scale=255;order=rgb;layout=nchw").read("x", 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = open_source(folder, [info], preprocess="resize=10").read("x", 0, 1)  # scale=1/255 by default, as before
    np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(new, default)
    assert 0.0 <= new.min() and new.max() <= 1.0


def test_one_syntax_in_every_form(tmp_path):
    info = TensorInfo("x", np.dtype(np.float32), (1, 3, 8, 8), layout="NCHW")
    (tmp_path / "pre.toml").write_text('[preprocess]\nresize = "10"\ncrop = [8, 8]\nscale = "1/255"\n')
    forms = ["resize=10;crop=8x8;scale=1/255", ["resize=10", "crop=8x8", "scale=1/255"],
             {"resize": 10, "crop": [8, 8], "scale": 1 / 255}, tmp_path / "pre.toml", str(tmp_path / "pre.toml")]
    specs = {Preprocess.from_spec(parse_spec(f), [info]) for f in forms}
    assert len(specs) == 1 and specs.pop().as_dict()["crop"] == [8, 8]


def test_spec_errors_are_one_paragraph(tmp_path):
    info = TensorInfo("x", np.dtype(np.float32), (1, 3, 8, 8), layout="NCHW")
    for text, message in [("resize=10;letterbox=true", "letterbox keeps the whole image"),
                          ("crop=8", "crop must be HEIGHTxWIDTH"), ("colour=rgb", "Unknown preprocessing option"),
                          (str(tmp_path / "missing.toml"), "does not exist")]:
        with pytest.raises(UsageError, match=message):
            Preprocess.from_spec(parse_spec(text), [info])
    with pytest.raises(UsageError, match="Cannot crop 8x8"):
        Preprocess.from_spec({"resize": "6x6", "crop": "8x8"}, [info]).apply(np.zeros((12, 16, 3), np.uint8), info)


def test_a_pipeline_calibrates_on_an_image_folder_with_its_preprocess(tmp_path):
    """[data] preprocess reaches calibration: the pipeline builds int8 from images; a spec that does not fit the
    model's input fails that variant with the spec's own message (it was read as a path before, then ignored)."""
    from PIL import Image

    from edgekit.pipeline import pipeline
    images = tmp_path / "digits"
    for cls in ("a", "b"):
        (images / cls).mkdir(parents=True)
        for i in range(8):
            pixels = np.random.default_rng([i, cls == "b"]).integers(0, 256, (30, 34, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(images / cls / f"{i}.png")
    base = """
[model]
spec = "zoo:lenet"
[data]
calibration = "digits"
eval_samples = 4
preprocess = "{pre}"
[variants]
include = ["onnx-int8"]
speed = "off"
[bench]
threads = [1]
min_time = 0.05
[gate]
max_drop = 0.99  # an untrained LeNet scored on random inputs: this test is about what reaches calibration
"""
    (tmp_path / "ok.toml").write_text(base.format(pre="resize=30;crop=28x28;scale=1/255;mean=0.1307;std=0.3081"))
    report = pipeline(str(tmp_path / "ok.toml"), tmp_path / "out-ok")
    variant = next(r for r in report["rows"] if r["variant"] == "onnx-int8")
    assert variant["status"] == "ok", variant

    (tmp_path / "bad.toml").write_text(base.format(pre="mean=0.5,0.5,0.5"))
    report = pipeline(str(tmp_path / "bad.toml"), tmp_path / "out-bad", check_gates=False)  # its only variant fails
    variant = next(r for r in report["rows"] if r["variant"] == "onnx-int8")
    assert variant["status"] != "ok" and "mean has 3 values" in variant["reason"], variant

    (tmp_path / "typo.toml").write_text(base.format(pre="colour=gray"))
    with pytest.raises(UsageError, match=r"\[data\] preprocess has unknown option"):
        pipeline(str(tmp_path / "typo.toml"), tmp_path / "out-typo")
