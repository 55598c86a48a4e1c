"""quantize()'s option groups: the grouped form and the flat keywords of earlier releases build the same model, and
each group refuses a bad value with the message `edgekit quantize` gives for that flag, before any work."""
from __future__ import annotations

import re

import numpy as np
import pytest

from edgekit.errors import UsageError
from edgekit.quantize import AccuracyGate, Calibration, Scheme, SpeedPolicy, Techniques, quantize
from tiny_models import tiny_cnn  # tests/quantize is on sys.path (pytest prepend import mode)


@pytest.fixture
def small(tmp_path):
    """A Conv → Relu → MatMul model and 24 seeded calibration rows."""
    model = tiny_cnn(tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    data = tmp_path / "calib.npz"
    np.savez(data, x=rng.standard_normal((24, 3, 8, 8)).astype(np.float32))
    return model, str(data)


def test_grouped_and_flat_keywords_write_the_same_model(small, tmp_path):
    model, data = small
    grouped = quantize(model, tmp_path / "grouped.onnx", mode="static", exclude=["fc"],
                       scheme=Scheme(per_channel=False), calibration=Calibration(data, method="entropy"),
                       gate=AccuracyGate(eval_fraction=0.5, blame=True, blame_top=2),
                       techniques=Techniques(equalize=True), speed=SpeedPolicy("off"))
    with pytest.deprecated_call(match="flat keywords"):
        flat = quantize(model, tmp_path / "flat.onnx", mode="static", exclude=["fc"], per_channel=False, calib=data,
                        calibrate_method="entropy", eval_fraction=0.5, blame=True, blame_top=2, equalize=True,
                        speed="off")
    assert (tmp_path / "grouped.onnx").read_bytes() == (tmp_path / "flat.onnx").read_bytes()
    assert grouped.as_dict() | {"path": None} == flat.as_dict() | {"path": None}
    assert grouped.plan.calibrate_method == "entropy" and not grouped.plan.per_channel and grouped.blame
    assert [t["technique"] for t in grouped.techniques] == ["equalization"]


BAD = [
    (lambda: Scheme(fmt="qlinear"), "--format 'qlinear' (choose qdq, qoperator)"),
    (lambda: Scheme(activation_type="int4"), "--activation-type 'int4' (choose auto, int8, uint8)"),
    (lambda: Scheme(weight_type="int16"), "--weight-type 'int16' (choose auto, int8, uint8)"),
    (lambda: Calibration("calib.npz", method="mse"), "--calibrate-method 'mse' (choose minmax, entropy, percentile)"),
    (lambda: AccuracyGate(max_drop=1.5), "--max-drop 1.5 (a fraction in [0, 1): 0.01 is one point)"),
    (lambda: AccuracyGate(max_drop=-0.1), "--max-drop -0.1 (a fraction in [0, 1): 0.01 is one point)"),
    (lambda: AccuracyGate(eval_fraction=1.0), "--eval-fraction 1.0 (between 0 and 1)"),
    (lambda: SpeedPolicy("fast"), "--speed 'fast' (choose search, check, off)"),
]


@pytest.mark.parametrize("make, problem", BAD, ids=[p.split()[0] for _, p in BAD])
def test_each_group_refuses_a_bad_value_with_the_flag_message(make, problem):
    with pytest.raises(UsageError) as err:
        make()
    assert err.value.message == f"Invalid option value(s): {problem}."
    assert err.value.exit_code == 2  # the documented exit code of a usage error


def test_one_group_names_all_its_bad_values_at_once():
    with pytest.raises(UsageError, match=re.escape("--max-drop 2 (a fraction") + ".*" + re.escape("--eval-fraction 0 ")):
        AccuracyGate(max_drop=2, eval_fraction=0)


def test_quantize_refuses_a_bad_mode_before_writing_anything(small, tmp_path):
    model, data = small
    with pytest.raises(UsageError) as err:
        quantize(model, tmp_path / "q.onnx", mode="int4", calibration=Calibration(data))
    assert err.value.message == "Invalid option value(s): --mode 'int4' (choose static, dynamic, fp16)."
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kw, problem", [
    (dict(speed="fast"), "--speed 'fast' (choose search, check, off)"),
    (dict(max_drop=1.5), "--max-drop 1.5 (a fraction in [0, 1): 0.01 is one point)"),
    (dict(fmt="qlinear"), "--format 'qlinear' (choose qdq, qoperator)"),
])
def test_flat_keywords_refuse_bad_values_with_the_same_message(small, tmp_path, kw, problem):
    model, data = small
    with pytest.raises(UsageError) as err:
        quantize(model, tmp_path / "q.onnx", calib=data, **kw)
    assert err.value.message == f"Invalid option value(s): {problem}."
    assert not (tmp_path / "q.onnx").exists()


def test_a_group_and_its_own_flat_keyword_together_are_refused(small, tmp_path):
    model, data = small
    with pytest.raises(TypeError, match="both calibration= and its old keyword 'calib'"):
        quantize(model, tmp_path / "q.onnx", calibration=Calibration(data), calib=data)
    with pytest.raises(TypeError, match="unexpected keyword argument 'calibrate'"):
        quantize(model, tmp_path / "q.onnx", calibrate="minmax")
    with pytest.raises(TypeError, match="takes a SpeedPolicy"):
        quantize(model, tmp_path / "q.onnx", calibration=Calibration(data), speed={"mode": "off"})
    assert not (tmp_path / "q.onnx").exists()

