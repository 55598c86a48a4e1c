"""The registry's contracts: declared emits are enforced, every pass states its rewrite, opset versions resolve."""
from __future__ import annotations

import pytest

from edgekit.converters.tflite import passes
from edgekit.converters.tflite.ir import Node
from edgekit.converters.tflite.registry import load_all, lookup
from edgekit.converters.tflite.tfl import Builder, TflGraph
from edgekit.errors import InternalError


def test_emitting_an_undeclared_builtin_is_an_error():
    b = Builder(TflGraph(), {}, Node("Relu", "r", ["x"], ["y"]), frozenset({"RELU"}), 13)
    b.emit("RELU", [], [])
    with pytest.raises(InternalError, match="does not declare"):
        b.emit("TANH", [], [])


def test_every_lowering_declares_what_it_emits_and_handles():
    for op, versions in load_all().items():
        for v in versions:
            assert v.dtypes and v.layout in ("logical", "nhwc", "any"), (op, v)
            assert v.fn.__module__.startswith("edgekit.converters.tflite.lowerings."), op


def test_every_pass_states_its_rewrite():
    for module in passes.FOLDING + passes.IR_PASSES + passes.TFLITE_PASSES:
        assert module.__doc__ and "->" in module.__doc__, module.__name__


@pytest.mark.parametrize("opset,since", [(11, 1), (12, 1), (13, 13), (21, 13)])
def test_opset_versions_resolve(opset, since):
    load_all()
    assert lookup("Softmax", opset).since == since
