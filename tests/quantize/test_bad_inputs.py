"""Bad calibration data and bad requests fail before any calibration, with one message naming every problem,
and write nothing."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.errors import UsageError
from edgekit.quantize import Calibration, SpeedPolicy, quantize
from edgekit.quantize.calibration import NpyDirSource, NpzSource, open_source
from tiny_models import tiny_cnn  # tests/quantize is on sys.path (pytest prepend import mode)


@pytest.fixture
def model(tmp_path):
    return tiny_cnn(tmp_path / "m.onnx")


def good(n=20):
    return np.random.default_rng(1).standard_normal((n, 3, 8, 8)).astype(np.float32)


NO_SPEED = SpeedPolicy("off")


def _fails(model, tmp_path, match, calib=None):
    out = tmp_path / "q.onnx"
    with pytest.raises(UsageError, match=match):
        quantize(model, out, calibration=Calibration(calib), speed=NO_SPEED)
    assert not out.exists()
    assert not list(tmp_path.glob(".edgekit-tmp-*"))


@pytest.mark.parametrize("arrays, match", [
    ({"x": good()[:, :, :4]}, r"shape \[3, 4, 8\]"),
    ({"x": good().astype(np.complex64)}, "dtype complex64"),
    ({"image": good()}, r"no data for the input\(s\) \['x'\].*unexpected key"),
    ({"x": np.where(np.arange(20)[:, None, None, None] == 3, np.nan, good())}, "NaN/Inf"),
    ({"x": np.full((20, 3, 8, 8), 0.5, np.float32)}, "constant"),
    ({"x": np.repeat(good()[:1], 20, axis=0)}, "identical"),
    ({"x": good()[:0]}, "empty"),
    ({"x": good(), "labels": np.zeros(20, np.float32) + 0.5}, "integer array"),
])
def test_bad_calibration_data(model, tmp_path, arrays, match):
    data = tmp_path / "calib.npz"
    np.savez(data, **arrays)
    _fails(model, tmp_path, match, calib=str(data))


def test_every_problem_listed_at_once(model, tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, x=good()[:, :2], extra=good())
    with pytest.raises(UsageError) as err:
        quantize(model, tmp_path / "q.onnx", calibration=Calibration(str(data)), speed=NO_SPEED)
    assert "unexpected key(s) ['extra']" in str(err.value) and "shape [2, 8, 8]" in str(err.value)


def test_static_needs_calibration_data(model, tmp_path):
    _fails(model, tmp_path, "needs calibration data")


def test_empty_folder(model, tmp_path):
    (tmp_path / "empty").mkdir()
    _fails(model, tmp_path, "no .npy files and no images", calib=str(tmp_path / "empty"))


def test_already_quantized_model_is_refused(model, tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, x=good())
    first = tmp_path / "first.onnx"
    quantize(model, first, calibration=Calibration(str(data)), speed=NO_SPEED)
    _fails(first, tmp_path, "already quantized", calib=str(data))


def test_output_equal_to_input_is_refused(model, tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, x=good())
    before = model.read_bytes()
    with pytest.raises(UsageError, match="same file"):
        quantize(model, model, calibration=Calibration(str(data)), speed=NO_SPEED)
    assert model.read_bytes() == before


def test_random_calibration_warns(model, tmp_path):
    r = quantize(model, tmp_path / "q.onnx", calibration=Calibration("random"), speed=NO_SPEED)
    assert any("not meaningful" in w for w in r.warnings)


# ---------------------------------------------------------------- readers stream rows

@pytest.mark.parametrize("compressed", [False, True])
def test_npz_rows_read_in_slices(tmp_path, compressed):
    x = good(50)
    path = tmp_path / "d.npz"
    (np.savez_compressed if compressed else np.savez)(path, x=x, labels=np.arange(50))
    src = NpzSource(path)
    assert len(src) == 50 and src.has_labels
    np.testing.assert_array_equal(src.read("x", 17, 23), x[17:23])
    np.testing.assert_array_equal(src.labels(40, 50), np.arange(40, 50))
    if not compressed:
        assert src.members["x"]._memmap is not None  # memory-mapped, not loaded


def test_npy_folder_stacked_and_per_sample(tmp_path):
    x = good(6)
    stacked = tmp_path / "stacked"
    stacked.mkdir()
    np.save(stacked / "x.npy", x)
    per = tmp_path / "per"
    per.mkdir()
    for i in range(6):
        np.save(per / f"{i:03d}.npy", x[i])
    from edgekit.runtimes import TensorInfo
    infos = [TensorInfo("x", np.dtype(np.float32), (1, 3, 8, 8))]
    for folder in (stacked, per):
        src = open_source(folder, infos)
        assert isinstance(src, NpyDirSource) and len(src) == 6
        np.testing.assert_array_equal(src.read("x", 2, 5), x[2:5])


def test_image_folder_with_preprocessing(model, tmp_path):
    from PIL import Image
    folder = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        for i in range(6):
            arr = np.random.default_rng(i + (cls == "dog") * 10).integers(0, 256, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / cls / f"{i}.png")
    from edgekit.runtimes import TensorInfo
    info = TensorInfo("x", np.dtype(np.float32), (1, 3, 8, 8))
    src = open_source(folder, [info], preprocess="resize=10;mean=0.5,0.5,0.5;std=0.25,0.25,0.25")
    rows = src.read("x", 0, 3)
    assert rows.shape == (3, 3, 8, 8) and rows.dtype == np.float32
    assert list(src.labels(4, 8)) == [0, 0, 1, 1]
    r = quantize(model, tmp_path / "q.onnx", calibration=Calibration(str(folder), preprocess="resize=10"),
                 speed=NO_SPEED)
    assert r.accuracy.samples > 0


def test_cli_exit_codes(model, tmp_path):
    from edgekit.cli import main
    data = tmp_path / "calib.npz"
    np.savez(data, x=good()[:, :1])
    res = CliRunner().invoke(main, ["quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calib", str(data)])
    assert res.exit_code == 2 and "shape" in res.output
    np.savez(data, x=good())
    res = CliRunner().invoke(main, ["quantize", str(model), "-o", str(tmp_path / "q.onnx"), "--calib", str(data),
                                    "--speed", "off", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert '"mode": "static"' in res.output
