"""Check a TFLite flatbuffer's structure in Python before LiteRT's native code sees it.

LiteRT trusts indices and offsets inside the file; a malformed one can read out of bounds or crash the process.
Every table read here goes through the flatbuffers accessors, which raise on bad offsets instead of crashing,
and every index and size the interpreter will use is bounds-checked. Buffers are never copied.
"""
from __future__ import annotations

import numpy as np

from edgekit.errors import InvalidModelError

MAX_TENSOR_ELEMENTS = 1 << 34   # 16 Gi elements: no edge model declares a larger tensor
MAX_TOTAL_BYTES = 1 << 36       # 64 GiB of declared activations+weights: refuse before allocating
_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 4, 15: 4, 16: 2, 17: 1,
             18: 1}  # TensorType → bytes; string/resource/variant (5, 14, 16) have no fixed size


def verify_tflite(data: bytes, label: str) -> None:
    """Raise InvalidModelError naming what is wrong, or return if the structure is sound."""
    try:
        _verify(data, label)
    except InvalidModelError:
        raise
    except Exception as exc:  # struct.error, IndexError, ... from a bad offset
        raise InvalidModelError(f"'{label}' is not a valid TFLite model: its flatbuffer structure is corrupt "
                                f"({type(exc).__name__}: {exc}).", hint="Re-convert or re-download the model.") from exc


def verify_tflite_file(path: str) -> None:
    """verify_tflite on a file's bytes (the flatbuffer accessors keep views alive, so no mmap)."""
    with open(path, "rb") as fh:
        verify_tflite(fh.read(), path)


def _bad(label: str, what: str) -> InvalidModelError:
    return InvalidModelError(f"'{label}' is not a valid TFLite model: {what}.",
                             hint="Re-convert or re-download the model.")


def _verify(data: bytes, label: str) -> None:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite-runtime alone ships no schema: LiteRT's own flatbuffer verifier is all we have
        return

    size = len(data)
    if size < 16 or bytes(data[4:8]) != b"TFL3":
        raise _bad(label, f"it has {size} bytes and {'no' if bytes(data[4:8]) != b'TFL3' else 'only a stub of a'} "
                          f"TFL3 header")
    root = int.from_bytes(bytes(data[:4]), "little")
    if not 8 <= root < size - 4:
        raise _bad(label, f"its root table offset {root} lies outside the {size}-byte file")
    model = schema.Model.GetRootAs(data, 0)
    n_buffers = model.BuffersLength()
    n_codes = model.OperatorCodesLength()
    if model.SubgraphsLength() < 1:
        raise _bad(label, "it has no subgraph")
    for b in range(n_buffers):
        buf = model.Buffers(b)
        offset, length = buf.Offset(), buf.Size()
        if offset or length:
            if offset < 0 or length < 0 or offset + length > size or offset + length < offset:
                raise _bad(label, f"buffer {b} points at bytes {offset}..{offset + length}, beyond the {size}-byte file")
        else:
            start, length = _vector_span(buf, 4)
            if start + length > size:
                raise _bad(label, f"buffer {b} holds {length} bytes from offset {start}, beyond the {size}-byte file "
                                  f"(truncated?)")
    for code in range(n_codes):
        model.OperatorCodes(code).BuiltinCode()
    total = 0
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        n_tensors = sg.TensorsLength()
        for t in range(n_tensors):
            total += _check_tensor(sg.Tensors(t), t, s, n_buffers, model, label)
        if total > MAX_TOTAL_BYTES:
            raise _bad(label, f"its tensors declare {total / 2**30:.1f} GiB in all, more than edgekit will allocate")
        for which, values in (("input", sg.InputsAsNumpy()), ("output", sg.OutputsAsNumpy())):
            for idx in _ints(values):
                if not 0 <= idx < n_tensors:
                    raise _bad(label, f"subgraph {s} names tensor {idx} as an {which}, but it has {n_tensors} tensors")
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            if not 0 <= op.OpcodeIndex() < n_codes:
                raise _bad(label, f"operator {o} of subgraph {s} uses opcode {op.OpcodeIndex()} of {n_codes}")
            for which, values in (("input", op.InputsAsNumpy()), ("output", op.OutputsAsNumpy()),
                                  ("intermediate", op.IntermediatesAsNumpy())):
                for idx in _ints(values):
                    if idx == -1 and which == "input":
                        continue  # an omitted optional input
                    if not 0 <= idx < n_tensors:
                        raise _bad(label, f"operator {o} of subgraph {s} has {which} tensor index {idx}, "
                                          f"but the subgraph has {n_tensors} tensors")


def _vector_span(table, field_offset: int) -> tuple[int, int]:
    """(start, length) of a vector field of a flatbuffer table, (0, 0) when absent."""
    o = table._tab.Offset(field_offset)
    if not o:
        return 0, 0
    return table._tab.Vector(o), table._tab.VectorLen(o)


def _ints(values) -> list[int]:
    return [] if isinstance(values, int) else [int(v) for v in np.asarray(values).ravel()]


def _check_tensor(tensor, t: int, s: int, n_buffers: int, model, label: str) -> int:
    shape = _ints(tensor.ShapeAsNumpy())
    if any(d < 0 for d in shape):
        raise _bad(label, f"tensor {t} of subgraph {s} has a negative dimension in shape {shape}")
    elements = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if elements > MAX_TENSOR_ELEMENTS:
        raise _bad(label, f"tensor {t} of subgraph {s} declares shape {shape} ({elements:.3g} elements), "
                          f"more than edgekit will allocate")
    buffer = tensor.Buffer()
    if not 0 <= buffer < max(n_buffers, 1):
        raise _bad(label, f"tensor {t} of subgraph {s} uses buffer {buffer}, but the model has {n_buffers} buffers")
    itemsize = _ITEMSIZE.get(tensor.Type())
    if buffer and itemsize and n_buffers:
        buf = model.Buffers(buffer)
        stored = buf.Size() if (buf.Offset() or buf.Size()) else buf.DataLength()
        if stored and stored < elements * itemsize and tensor.Type() not in (17, 18):  # int4/uint4 are packed
            raise _bad(label, f"tensor {t} of subgraph {s} needs {elements * itemsize} bytes but its buffer holds {stored}")
    return elements * (itemsize or 1)
