"""Property-based fuzzing: mutated ONNX and TFLite files never crash inspect, convert or the runtime loaders.

Each mutated file must either work or raise an EdgekitError (a clear message and exit code). The example count
is small here; `fuzz/run_fuzz.py` runs the same properties for longer (EDGEKIT_FUZZ_EXAMPLES).
"""
from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.errors import EdgekitError

EXAMPLES = int(os.environ.get("EDGEKIT_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 25, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# (relative position in the file, new byte), optionally a truncation point
mutations = st.tuples(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
                      st.one_of(st.none(), st.floats(0, 1)))


def mutate(data: bytes, mutation, structural: int | None = None) -> bytes:
    """Flip bytes (within the first `structural` bytes when given: the tables, not the weights) and maybe truncate."""
    edits, cut = mutation
    out = bytearray(data)
    span = min(structural or len(out), len(out))
    for where, value in edits:
        out[int(where * span)] = value
    if cut is not None:
        out = out[: int(cut * len(out))]
    return bytes(out)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    from edgekit.convert import convert
    from edgekit.converters.torch_export import export
    root = tmp_path_factory.mktemp("fuzz")
    export("zoo:lenet", root / "m.onnx")
    convert(root / "m.onnx", root / "m.tflite")
    return root, (root / "m.onnx").read_bytes(), (root / "m.tflite").read_bytes()


def survives(fn, *args) -> None:
    try:
        fn(*args)
    except EdgekitError:
        pass


def _load(path):
    import edgekit.runtimes as rt
    with rt.load(path) as session:
        from edgekit.inputs import random_inputs
        session.run(random_inputs(session.inputs, batch=1))


@FUZZ
@given(mutation=mutations)
def test_mutated_onnx(originals, mutation):
    from edgekit.convert import convert
    from edgekit.inspect import inspect
    root, onnx_bytes, _ = originals
    path = root / f"{uuid.uuid4().hex}.onnx"
    path.write_bytes(mutate(onnx_bytes, mutation, structural=4096))
    survives(inspect, path)
    survives(_load, path)
    survives(convert, path, root / f"{path.stem}.tflite")


@FUZZ
@given(mutation=mutations)
def test_mutated_tflite(originals, mutation):
    from edgekit.inspect import inspect
    root, _, tflite_bytes = originals
    path = root / f"{uuid.uuid4().hex}.tflite"
    data = mutate(tflite_bytes, mutation)
    path.write_bytes(data)
    survives(inspect, path)
    survives(_load, path)
