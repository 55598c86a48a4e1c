"""Elementwise math and activations: one row per op version (ONNX Runtime vs LiteRT), the edges of each composition
(overflow, halves, infinities, signs of Mod) against numpy, and the refused cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from _differential import as_model, assert_converts, model_text
from test_ops import Row, f32
from edgekit.converters.tflite import compile_onnx
from edgekit.errors import UnsupportedModelError

ONE = {"one": np.ones([1], np.float32)}
#: x mapped into (-1, 1) for the inverse sines and atanh, into (1, inf) for acosh
IN_UNIT = "t = Tanh(x)\n"
ABOVE_ONE = "a = Abs(x)\nt = Add(a, one)\n"
ARC = {"SUB", "ADD", "MUL", "SQRT", "ATAN2"}
ERF = {"ABS", "MUL", "ADD", "DIV", "EXP", "SUB", "SIGN"}
SOFTPLUS = {"ABS", "NEG", "EXP", "ADD", "LOG", "RELU"}
I32 = "int32[2,6] x, int32[2,6] z"

ROWS = [
    Row("Sin", 13, "y = Sin(x)", ops={"SIN": 1}),
    Row("Cos", 13, "y = Cos(x)", ops={"COS": 1}),
    Row("Tan", 13, "y = Tan(x)", ops={"SIN": 1, "COS": 1, "DIV": 1}),
    Row("Atan", 13, "y = Atan(x)", ops={"ATAN2": 1}),
    Row("Asin", 13, IN_UNIT + "y = Asin(t)", ops=ARC | {"TANH"}),
    Row("Acos", 13, IN_UNIT + "y = Acos(t)", ops=ARC | {"TANH"}),
    Row("Sinh", 13, "y = Sinh(x)", ops={"SUB": 3, "EXP": 2}),
    Row("Cosh", 13, "y = Cosh(x)", ops={"SUB": 2, "EXP": 2, "ADD": 1}),
    Row("Asinh", 13, "y = Asinh(x)", ops={"ABS", "MAXIMUM", "DIV", "MUL", "ADD", "SQRT", "LOG", "SIGN"}),
    Row("Acosh", 13, ABOVE_ONE + "y = Acosh(t)", ops={"ABS", "DIV", "SUB", "ADD", "MUL", "SQRT", "LOG"}, inits=ONE),
    Row("Atanh", 13, IN_UNIT + "y = Atanh(t)", ops={"TANH", "ADD", "SUB", "DIV", "LOG", "MUL"}),
    Row("Floor", 13, "y = Floor(x)", ops={"FLOOR": 1}),
    Row("Ceil", 13, "y = Ceil(x)", ops={"CEIL": 1}),
    Row("Round", 13, "y = Round(x)", ops={"ROUND": 1}),
    Row("Sign", 13, "y = Sign(x)", ops={"SIGN": 1}),
    Row("Sign", 13, "y = Sign(x)", inputs="int32[2,6] x", outputs="int32 y", ops={"SIGN": 1}, id="int32"),
    Row("Erf", 13, "y = Erf(x)", ops=ERF),
    Row("IsNaN", 13, "y = IsNaN(x)", outputs="bool y", ops={"NOT_EQUAL": 1}),
    Row("IsInf", 13, "y = IsInf(x)", outputs="bool y", ops={"ABS": 1, "EQUAL": 1}),
    Row("IsInf", 13, "y = IsInf <detect_negative=0> (x)", outputs="bool y", ops={"EQUAL": 1}, id="positive"),
    Row("IsInf", 13, "y = IsInf <detect_negative=0, detect_positive=0> (x)", outputs="bool y", ops={"LESS": 1},
        id="nothing"),
    Row("Mod", 13, "y = Mod <fmod=1> (x, z)", inputs="float[2,6] x, float[2,6] z", ops={"ABS", "FLOOR_MOD", "SIGN",
                                                                                      "MUL"}, id="fmod"),
    Row("Mod", 13, "y = Mod(x, z)", inputs=I32, outputs="int32 y", ops={"FLOOR_MOD": 1}, id="int32_floor"),
    Row("Mod", 13, "y = Mod <fmod=1> (x, z)", inputs=I32, outputs="int32 y", ops={"ABS", "FLOOR_MOD", "SIGN", "MUL"},
        id="int32_fmod"),
    Row("Mish", 18, "y = Mish(x)", ops=SOFTPLUS | {"TANH", "MUL"}),
    Row("Selu", 13, "y = Selu(x)", ops={"ELU", "RELU", "MINIMUM", "MUL", "ADD"}),
    Row("Selu", 13, "y = Selu <alpha=2.0, gamma=0.5> (x)", ops={"ELU", "RELU", "MINIMUM", "MUL", "ADD"}, id="attrs"),
    Row("Celu", 13, "y = Celu(x)", ops={"ELU": 1}),
    Row("Celu", 13, "y = Celu <alpha=0.5> (x)", ops={"MUL": 2, "ELU": 1}, id="alpha05"),
    Row("ThresholdedRelu", 13, "y = ThresholdedRelu <alpha=0.3> (x)", ops={"GREATER", "SELECT_V2"}),
    Row("Softsign", 13, "y = Softsign(x)", ops={"ABS", "ADD", "DIV"}),
    Row("Shrink", 13, "y = Shrink <bias=0.2, lambd=0.7> (x)", ops={"LESS", "GREATER", "ADD", "SUB", "SELECT_V2"}),
]
#: ONNX Runtime has no Swish-24 kernel yet: checked against numpy below (and by the conformance suite)
SWISH = [Row("Swish", 24, "y = Swish <alpha=1.5> (x)", ops={"MUL": 2, "LOGISTIC": 1}, id="alpha15"),
         Row("Swish", 24, "y = Swish(x)", ops={"MUL": 1, "LOGISTIC": 1}, id="alpha1")]
ROWS += SWISH
ROWS += [Row("Det", 11, "y = Det(x)", "float[4,3,3] x", ops={"RESHAPE", "GATHER", "MUL", "SUM"}, id="batch_3x3"),
         Row("Det", 11, "y = Det(x)", "float[2,2] x", ops={"RESHAPE", "GATHER", "MUL", "SUM"}, id="single_2x2")]


def _int_inputs(row):
    """Integer rows: Mod needs a divisor without zeros; mixed signs on both sides."""
    if not row.inputs.startswith("int32"):
        return None
    rng = np.random.default_rng(3)
    x = rng.integers(-50, 50, (2, 6), dtype=np.int32)
    z = rng.choice(np.array([-7, -3, -1, 1, 2, 5], np.int32), (2, 6))
    return {"x": x, "z": z} if "z" in row.inputs else {"x": x}


def _float_mod_inputs(row):
    if row.op != "Mod" or row.inputs.startswith("int32"):
        return None
    return {"x": f32(2, 6, scale=10), "z": (np.sign(f32(2, 6)) * (np.abs(f32(2, 6)) + 0.5)).astype(np.float32)}


@pytest.mark.parametrize("row", [r for r in ROWS if r not in SWISH], ids=lambda r: f"{r.op}-{r.id or r.opset}")
def test_op(row):
    assert_converts(row.text(), inputs=_int_inputs(row) or _float_mod_inputs(row), expect_ops=row.ops,
                    nhwc_io=row.nhwc_io)


# -- against numpy where ONNX Runtime cannot judge, and at the edges of each composition

def run(body: str, x, *others, opset: int = 13, out: str = "float y", **attrs_inits):
    """Compile a one-input (or more) model, run it in LiteRT, return the first output."""
    from ai_edge_litert.interpreter import Interpreter
    names = ["x", "z", "w"][:1 + len(others)]
    kinds = {np.dtype(np.float32): "float", np.dtype(np.int32): "int32"}
    inputs = ", ".join(f"{kinds[np.asarray(a).dtype]}[{','.join(map(str, np.shape(a)))}] {n}"
                       for n, a in zip(names, (x, *others)))
    compiled = compile_onnx(as_model(model_text(body, inputs, out, opset, **attrs_inits)))
    interp = Interpreter(model_content=compiled.to_bytes(), num_threads=1)
    interp.allocate_tensors()
    for detail, arr in zip(interp.get_input_details(), (x, *others)):
        interp.set_tensor(detail["index"], np.asarray(arr))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def close(got, want, rtol=1e-4):
    """Within 1e-4 of the output scale, NaN where NaN is expected, infinities exactly."""
    want = np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    finite = np.isfinite(want)
    assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]), (got, want)
    scale = np.abs(want[finite]).max()
    assert np.abs(got[finite] - want[finite]).max() <= rtol * scale, (got, want)


@pytest.mark.parametrize("row", SWISH, ids=lambda r: f"{r.op}-{r.id}")
def test_swish_matches_numpy(row):
    x = f32(2, 6, scale=4)
    alpha = 1.5 if "alpha" in row.body and "<" in row.body else 1.0
    close(run(row.body, x, opset=24), x / (1 + np.exp(-alpha * x.astype(np.float64))))


def test_round_halves_to_even_like_onnx():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49999997, -3.7], np.float32)
    assert np.array_equal(run("y = Round(x)", x), np.round(x))


def test_erf_across_its_range():
    x = np.linspace(-6, 6, 241, dtype=np.float32)
    from scipy.special import erf
    close(run("y = Erf(x)", x), erf(x.astype(np.float64)))


def test_hyperbolics_do_not_overflow_before_the_result_does():
    x = np.array([-88.5, -20, -1e-3, 0, 1e-3, 3, 88.5], np.float32)
    close(run("y = Sinh(x)", x), np.sinh(x.astype(np.float64)))
    close(run("y = Cosh(x)", x), np.cosh(x.astype(np.float64)))
    big = np.array([-3.4e38, -1e20, -2, -1e-3, 0, 0.5, 7, 1e20, 2.6e38, 3.4e38], np.float32)
    close(run("y = Asinh(x)", big), np.arcsinh(big.astype(np.float64)))


def test_inverse_functions_at_and_beyond_their_domain_edges():
    x = np.array([-1.5, -1, -0.999, 0, 0.5, 0.999, 1, 1.5], np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        close(run("y = Asin(x)", x), np.arcsin(x64))
        close(run("y = Acos(x)", x), np.arccos(x64))
        close(run("y = Atanh(x)", x), np.arctanh(x64))
        up = np.array([0, 0.5, 1, 1.0001, 2, 1e5, 1e20, 2.6e38, 3.4e38], np.float32)
        close(run("y = Acosh(x)", up), np.arccosh(up.astype(np.float64)))


def test_isnan_and_isinf_on_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0, -3, 3.4e38], np.float32)
    assert run("y = IsNaN(x)", x, out="bool y").tolist() == [True, False, False, False, False, False]
    assert run("y = IsInf(x)", x, out="bool y").tolist() == [False, True, True, False, False, False]
    assert run("y = IsInf <detect_positive=0> (x)", x, out="bool y").tolist() == [False, False, True, False, False,
                                                                                   False]
    assert not run("y = IsInf <detect_positive=0, detect_negative=0> (x)", x, out="bool y").any()


def test_fmod_is_exact_where_the_quotient_rounds():
    """x - trunc(x / y) · y would be off by y here; fmod(|x|, |y|) with x's sign is not."""
    x = np.array([5.3, -5.3, 1e7 + 1, -7.0, 0.0, 7.5, -7.5, 2.9999998], np.float32)
    y = np.array([2.0, 2.0, 0.1, 3.5, 3.0, -2.0, -2.0, 1.0], np.float32)
    assert np.array_equal(run("y = Mod <fmod=1> (x, z)", x, y), np.fmod(x, y))
    assert np.array_equal(run("y = Mod(x, z)", x, y), np.mod(x, y))


def test_int32_mod_follows_each_sign_rule():
    x = np.array([7, -7, 7, -7, 0, 13], np.int32)
    y = np.array([3, 3, -3, -3, 5, -13], np.int32)
    assert np.array_equal(run("y = Mod <fmod=1> (x, z)", x, y, out="int32 y"), np.fmod(x, y))
    assert np.array_equal(run("y = Mod(x, z)", x, y, out="int32 y"), np.mod(x, y))


# -- refusals

def test_celu_with_a_non_positive_alpha_is_refused():
    model = as_model(model_text("y = Celu <alpha=-1.0> (x)", "float[2,3] x", "float y", 13))
    with pytest.raises(UnsupportedModelError, match="alpha=-1.0: CELU is defined for a positive alpha"):
        compile_onnx(model)


def test_mod_of_mixed_dtypes_is_refused():
    from edgekit.converters.tflite.lowerings.math import mod
    from edgekit.converters.tflite.registry import Unsupported

    class Value:
        def __init__(self, dtype):
            self.dtype = np.dtype(dtype)

    class Builder:
        outputs = [Value(np.float32)]

    with pytest.raises(Unsupported, match=r"operands of different dtypes \(float32, int32\)"):
        mod(Builder(), Value(np.float32), Value(np.int32))


def test_atan_needs_static_shapes():
    model = as_model(model_text("y = Atan(x)", "float[N,3] x", "float y", 13))
    with pytest.raises(UnsupportedModelError, match="ATAN2 needs operands of one shape"):
        compile_onnx(model)
    assert math.isfinite(run("y = Atan(x)", np.ones([2, 3], np.float32)).sum())
