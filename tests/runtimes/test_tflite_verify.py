"""The TFLite verifier past the bounds: subgraph calls that recurse, control flow without its options, tensors
written twice or over inputs and constants, operators out of order, signatures pointing nowhere."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from rt_models import pack, while_counter  # noqa: E402

from edgekit.errors import InvalidModelError  # noqa: E402
from edgekit.runtimes.tflite_verify import tflite_problems, verify_tflite  # noqa: E402

pytest.importorskip("ai_edge_litert")


def _options(kind: str, **fields):
    from ai_edge_litert import schema_py_generated as schema
    options = getattr(schema, kind + "T")()
    for key, value in fields.items():
        setattr(options, key, value)
    return options


def test_a_sound_while_model_passes_and_runs():
    import edgekit.runtimes as runtimes
    data = pack(while_counter())
    assert tflite_problems(data, "ok") == []
    with runtimes.load(data, runtime="litert") as session:
        assert session.run({"x": np.float32([0])})["y"].tolist() == [10.0]


@pytest.mark.parametrize("cond, body, field", [(1, 0, "body_subgraph_index"), (0, 2, "cond_subgraph_index")])
def test_while_calling_its_own_subgraph(cond, body, field):
    (problem,) = tflite_problems(pack(while_counter(cond=cond, body=body)), "m")
    assert problem.startswith("subgraph 0 calls itself: subgraph 0 'main' (WHILE operator 0, " + field)


def test_if_in_the_body_calling_an_ancestor():
    from ai_edge_litert import schema_py_generated as schema
    model = while_counter()
    branch = schema.OperatorT()
    branch.opcodeIndex, branch.inputs, branch.outputs = 3, [0], []
    branch.builtinOptionsType = schema.BuiltinOptions.IfOptions
    branch.builtinOptions = _options("IfOptions", thenSubgraphIndex=1, elseSubgraphIndex=0)
    model.subgraphs[2].operators.append(branch)
    (problem,) = tflite_problems(pack(model), "m")
    assert problem.startswith("subgraph 2 calls an ancestor: subgraph 0 'main' (WHILE operator 0, "
                              "body_subgraph_index) → subgraph 2 'body' (IF operator 1, else_subgraph_index) → subgraph 0")


def test_call_once_loop_and_missing_options_and_bad_index():
    from ai_edge_litert import schema_py_generated as schema
    model = while_counter()
    init = schema.OperatorT()
    init.opcodeIndex, init.inputs, init.outputs = 4, [], []
    init.builtinOptionsType = schema.BuiltinOptions.CallOnceOptions
    init.builtinOptions = _options("CallOnceOptions", initSubgraphIndex=1)
    model.subgraphs[1].operators.insert(0, init)  # 'cond' runs itself once
    model.subgraphs[0].operators[0].builtinOptionsType = 0  # a WHILE that does not say what it calls
    model.subgraphs[0].operators[0].builtinOptions = None
    stray = schema.OperatorT()
    stray.opcodeIndex, stray.inputs, stray.outputs = 3, [0], []
    stray.builtinOptionsType = schema.BuiltinOptions.IfOptions
    stray.builtinOptions = _options("IfOptions", thenSubgraphIndex=7, elseSubgraphIndex=1)
    model.subgraphs[2].operators.append(stray)
    problems = tflite_problems(pack(model), "m")
    assert "WHILE operator 0 of subgraph 0 'main' carries no WhileOptions naming the subgraphs it calls" in problems
    assert any(p.startswith("subgraph 1 calls itself: subgraph 1 'cond' (CALL_ONCE operator 0") for p in problems)
    assert any("IF operator 1 of subgraph 2 'body' calls subgraph 7 (then_subgraph_index)" in p for p in problems)


def test_tensor_writers_and_operator_order():
    from ai_edge_litert import schema_py_generated as schema
    model = while_counter()
    body = model.subgraphs[2]
    twice = schema.OperatorT()
    twice.opcodeIndex, twice.inputs, twice.outputs = 2, [0, 1], [2]
    twice.builtinOptionsType, twice.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    body.operators.append(twice)
    over = schema.OperatorT()
    over.opcodeIndex, over.inputs, over.outputs = 2, [0, 0], [1]  # writes the constant 'one'
    over.builtinOptionsType, over.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    body.operators.insert(0, over)
    problems = tflite_problems(pack(model), "m")
    assert "tensor 2 'a1' of subgraph 2 'body' is written by two operators, 1 and 2" in problems
    assert "operator 0 (ADD) of subgraph 2 'body' writes tensor 1 'one', a constant" in problems
    model = while_counter()
    cond = model.subgraphs[1]
    cond.tensors.append(cond.tensors[2].__class__())
    late = cond.operators[0]
    late.inputs = [0, 3]  # reads tensor 3, which the op after it writes
    later = schema.OperatorT()
    later.opcodeIndex, later.inputs, later.outputs = 2, [0, 1], [3]
    later.builtinOptionsType, later.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()
    cond.tensors[3].name, cond.tensors[3].type, cond.tensors[3].shape = "late", schema.TensorType.FLOAT32, [1]
    cond.operators.append(later)
    assert tflite_problems(pack(model), "m") == [
        "operator 0 (LESS) of subgraph 1 'cond' reads tensor 3 'late' before operator 1 writes it (operators run "
        "in file order)"]


def test_signature_pointing_past_the_tensors_is_refused_as_unsafe():
    from ai_edge_litert import schema_py_generated as schema
    model = while_counter()
    sig, entry = schema.SignatureDefT(), schema.TensorMapT()
    entry.name, entry.tensorIndex = "x", 99
    sig.signatureKey, sig.subgraphIndex, sig.inputs, sig.outputs = "serving_default", 0, [entry], []
    model.signatureDefs = [sig]
    with pytest.raises(InvalidModelError, match="signature 0 maps an input to tensor 99 of subgraph 0"):
        tflite_problems(pack(model), "m")


def test_loading_a_recursive_model_is_refused_instead_of_crashing(tmp_path):
    """LiteRT itself overflows its stack on this file (a segfault); the runtime layer must refuse it first."""
    path = tmp_path / "loop.tflite"
    path.write_bytes(pack(while_counter(body=0)))
    with pytest.raises(InvalidModelError, match="calls itself"):
        verify_tflite(path.read_bytes(), str(path))
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "bench", str(path), "--runs", "1", "--warmup", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3 and "calls itself" in proc.stderr and "Traceback" not in proc.stderr
