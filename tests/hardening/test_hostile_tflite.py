"""Malformed TFLite flatbuffers are refused by edgekit's verifier before LiteRT's native code reads them."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgekit.errors import InvalidModelError

LOAD = textwrap.dedent("""
    import sys
    import edgekit.runtimes as rt
    from edgekit.errors import EdgekitError
    try:
        with rt.load(sys.argv[1]) as s:
            s.run([__import__('numpy').zeros([d or 1 for d in i.shape], i.dtype) for i in s.inputs])
    except EdgekitError as exc:
        print(type(exc).__name__, exc.message)
        sys.exit(exc.exit_code)
""")


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """A small real model compiled by edgekit (Conv + Relu + FC)."""
    from edgekit.convert import convert
    from edgekit.converters.torch_export import export
    root = tmp_path_factory.mktemp("tfl")
    export("zoo:mlp", root / "m.onnx")
    convert(root / "m.onnx", root / "m.tflite")
    return (root / "m.tflite").read_bytes()


def mutate(valid: bytes, change) -> bytes:
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers
    model = schema.ModelT.InitFromPackedBuf(valid, 0)
    change(model)
    builder = flatbuffers.Builder(len(valid) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def first(obj, attr: str, value: int) -> None:
    """Replace the first entry of an index vector (the object API hands out read-only arrays)."""
    values = [int(v) for v in getattr(obj, attr)]
    values[0] = value
    setattr(obj, attr, values)


CASES = {
    "operator output index -1": lambda m: first(m.subgraphs[0].operators[0], "outputs", -1),
    "operator input out of range": lambda m: first(m.subgraphs[0].operators[0], "inputs", 10_000),
    "subgraph input out of range": lambda m: first(m.subgraphs[0], "inputs", 999),
    "subgraph output -1": lambda m: first(m.subgraphs[0], "outputs", -1),
    "tensor buffer out of range": lambda m: setattr(m.subgraphs[0].tensors[0], "buffer", 77_777),
    "opcode index out of range": lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 500),
    "absurd shape": lambda m: setattr(m.subgraphs[0].tensors[0], "shape", [1 << 20, 1 << 20, 1 << 10]),
    "negative dimension": lambda m: setattr(m.subgraphs[0].tensors[0], "shape", [1, -5]),
    "buffer offset near 2**64": lambda m: (setattr(m.buffers[1], "offset", 2**64 - 8), setattr(m.buffers[1], "size", 16),
                                           setattr(m.buffers[1], "data", None)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_models_are_refused_in_process(valid, tmp_path, case):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(mutate(valid, CASES[case]))
    proc = subprocess.run([sys.executable, "-c", LOAD, str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, (case, proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "not a valid TFLite model" in proc.stdout


@pytest.mark.parametrize("data", [b"\x00\x00\x00\x00TFL3", b"\x10\x00\x00\x00TFL3" + b"\xff" * 8,
                                  b"\x18\x00\x00\x00TFL3" + bytes(range(40))])
def test_stubs_and_bad_root_offsets(tmp_path, data):
    bad = tmp_path / "stub.tflite"
    bad.write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", LOAD, str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]


def test_truncations_are_refused(valid, tmp_path):
    from edgekit.runtimes.tflite_verify import verify_tflite
    accepted = []
    for cut in np.linspace(8, len(valid) - 16, 25).astype(int):  # the last bytes may be alignment padding
        try:
            verify_tflite(valid[:cut], "cut")
            accepted.append(int(cut))
        except InvalidModelError:
            pass
    assert accepted == [], f"truncated to these sizes, the model still passed verification: {accepted}"


def test_valid_model_passes(valid):
    from edgekit.runtimes.tflite_verify import verify_tflite
    verify_tflite(valid, "ok")
