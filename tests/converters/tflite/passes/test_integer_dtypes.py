"""passes/integer_dtypes.py: run-time int64 becomes int32 (the notes say so), and integer arithmetic on types whose
LiteRT kernels are quantized or missing runs widened between CASTs, keeping ONNX's wrap-around; an int64 constant that
does not fit int32 next to run-time int64 is refused, never truncated."""
from __future__ import annotations

import numpy as np
import pytest

from _pass_case import assert_converts, compiled_ops, model_text
from edgekit.errors import UnsupportedModelError

INT32_NOTE = ("int64 inputs/outputs ['x', 'y'] are int32 in the TFLite model (LiteRT's kernels take int32); int64 data "
              "fed to it must fit int32 (edgekit's runtimes check and cast it)")


def io_dtypes(compiled) -> list[str]:
    g = compiled.graph
    return [g.tensors[n].dtype.name for n in [*g.inputs, *g.outputs]]


@pytest.mark.parametrize("body, op", [("y = Add(x, x)", "ADD"), ("y = Div(x, two)", "DIV")])
def test_run_time_int64_becomes_int32_and_the_notes_say_so(body, op):
    text = model_text(body, "int64[2,3] x", "int64 y", **({"two": np.array(2, np.int64)} if "two" in body else {}))
    compiled = assert_converts(text)
    assert [o.code for o in compiled.graph.ops] == [op]
    assert io_dtypes(compiled) == ["int32", "int32"]
    assert compiled.quantization["notes"] == [INT32_NOTE]


@pytest.mark.parametrize("dtype, op", [("int8", "Add"), ("uint8", "Mul"), ("int16", "Sub"), ("uint32", "Add")])
def test_narrow_integer_arithmetic_runs_widened_between_casts(dtype, op):
    text = model_text(f"y = {op}(x, x)", f"{dtype}[2,3] x", f"{dtype} y")
    compiled = assert_converts(text)
    assert [o.code for o in compiled.graph.ops] == ["CAST", "CAST", op.upper(), "CAST"]
    assert io_dtypes(compiled) == [dtype, dtype]


def test_int8_arithmetic_wraps_as_onnx_does():
    text = model_text("y = Add(x, x)", "int8[4] x", "int8 y")
    assert_converts(text, inputs={"x": np.array([100, -100, 127, -128], np.int8)})  # 200 -> -56: ORT and LiteRT agree


def test_a_narrow_comparison_is_widened_and_not_cast_back():
    assert compiled_ops(model_text("y = Less(x, z)", "int8[2,3] x, int8[2,3] z", "bool y")) == ["CAST", "CAST", "LESS"]


def test_int32_arithmetic_is_left_alone():
    assert compiled_ops(model_text("y = Mul(x, x)", "int32[2,3] x", "int32 y")) == ["MUL"]


def test_an_int64_constant_that_does_not_fit_int32_is_refused_not_truncated():
    text = model_text("y = Add(x, big)", "int64[2,3] x", "int64 y", big=np.array(2 ** 40, np.int64))
    with pytest.raises(UnsupportedModelError, match="ADD needs operands of one dtype in LiteRT, got int32, int64"):
        compiled_ops(text)
