"""Check a TFLite flatbuffer's structure in Python before LiteRT's native code sees it.

LiteRT trusts indices and offsets inside the file; a malformed one can read out of bounds or crash the process.
Every table read here goes through the flatbuffers accessors, which raise on bad offsets instead of crashing,
and every index and size the interpreter will use is bounds-checked. Buffers are never copied.

Past the bounds, the graph itself: subgraphs that call themselves or an ancestor (WHILE, IF, CALL_ONCE, ... :
LiteRT recurses until the stack overflows), control-flow ops without the options naming their subgraphs
(LiteRT then calls subgraph 0), a tensor written by two operators or over a subgraph input or a constant, and
an operator reading a tensor that a later operator writes (LiteRT runs operators in file order).
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
    problems = tflite_problems(data, label)
    if problems:
        raise _bad(label, "; ".join(problems))


def tflite_problems(data: bytes, label: str) -> list[str]:
    """Graph-level problems of a flatbuffer (empty: sound). Raises InvalidModelError where the bounds themselves
    are broken, since nothing past them can be read safely."""
    try:
        if not _verify(data, label):
            return []
        return _graph_problems(data)
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


def _verify(data: bytes, label: str) -> bool:
    """Bounds of every index and offset; False when there is no schema to read the file with."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite-runtime alone ships no schema: LiteRT's own flatbuffer verifier is all we have
        return False

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
    for d in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(d)
        s = sig.SubgraphIndex()
        if not 0 <= s < model.SubgraphsLength():
            raise _bad(label, f"signature {d} names subgraph {s}, but the model has {model.SubgraphsLength()}")
        n_tensors = model.Subgraphs(s).TensorsLength()
        for which, count, get in (("input", sig.InputsLength(), sig.Inputs), ("output", sig.OutputsLength(), sig.Outputs)):
            for j in range(count):
                idx = get(j).TensorIndex()
                if not 0 <= idx < n_tensors:
                    raise _bad(label, f"signature {d} maps an {which} to tensor {idx} of subgraph {s}, which has "
                                      f"{n_tensors} tensors")
    for m in range(model.MetadataLength()):
        if not 0 <= model.Metadata(m).Buffer() < n_buffers:
            raise _bad(label, f"metadata entry {m} uses buffer {model.Metadata(m).Buffer()} of {n_buffers}")
    return True


#: operators that call subgraphs, and the options table that says which (without it LiteRT calls subgraph 0)
CALLING_OPS = {"WHILE": "WhileOptions", "IF": "IfOptions", "CALL_ONCE": "CallOnceOptions", "CALL": "CallOptions",
               "STABLEHLO_WHILE": "StablehloWhileOptions", "STABLEHLO_CASE": "StablehloCaseOptions",
               "STABLEHLO_COMPOSITE": "StableHLOCompositeOptions"}


def _graph_problems(data: bytes) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema
    model = schema.Model.GetRootAs(data, 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for c in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(c)
        codes.append(op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"))
    n_sub = model.SubgraphsLength()
    problems: list[str] = []
    calls: dict[int, list[tuple[int, str, str, int]]] = {s: [] for s in range(n_sub)}
    for s in range(n_sub):
        sg = model.Subgraphs(s)
        where = f"subgraph {s}{_name(sg)}"
        inputs = set(_ints(sg.InputsAsNumpy()))
        writer: dict[int, int] = {}
        ops = [sg.Operators(o) for o in range(sg.OperatorsLength())]
        for o, op in enumerate(ops):
            name = codes[op.OpcodeIndex()]
            refs = _subgraph_refs(schema, op)
            if name in CALLING_OPS and refs is None:
                problems.append(f"{name} operator {o} of {where} carries no {CALLING_OPS[name]} naming the "
                                f"subgraphs it calls")
            for field, target in refs or []:
                if not 0 <= target < n_sub:
                    problems.append(f"{name} operator {o} of {where} calls subgraph {target} ({_snake(field)}), but the model "
                                    f"has {n_sub} subgraphs")
                else:
                    calls[s].append((o, name, field, target))
            for t in _ints(op.OutputsAsNumpy()):
                tensor = f"tensor {t}{_name(sg.Tensors(t))}"
                if t in writer:
                    problems.append(f"{tensor} of {where} is written by two operators, {writer[t]} and {o}")
                elif t in inputs:
                    problems.append(f"operator {o} ({name}) of {where} writes {tensor}, an input of the subgraph")
                elif _is_constant(model, sg.Tensors(t)):
                    problems.append(f"operator {o} ({name}) of {where} writes {tensor}, a constant")
                writer.setdefault(t, o)
        for o, op in enumerate(ops):
            for t in _ints(op.InputsAsNumpy()):
                if t >= 0 and writer.get(t, -1) >= o and not sg.Tensors(t).IsVariable():
                    problems.append(f"operator {o} ({codes[op.OpcodeIndex()]}) of {where} reads tensor {t}"
                                    f"{_name(sg.Tensors(t))} before operator {writer[t]} writes it (operators run "
                                    f"in file order)")
    problems += _call_cycles(calls, model)
    return problems


def _subgraph_refs(schema, op) -> list[tuple[str, int]] | None:
    """(field, subgraph index) for every subgraph an operator's options name; None if it has no options table."""
    refs = None
    for kind, table, enum in ((op.BuiltinOptionsType(), op.BuiltinOptions(), schema.BuiltinOptions),
                              (op.BuiltinOptions2Type(), op.BuiltinOptions2(), schema.BuiltinOptions2)):
        if not kind or table is None:
            continue
        name = next((k for k, v in vars(enum).items() if v == kind and not k.startswith("_")), None)
        cls = getattr(schema, name, None) if name else None
        if cls is None:
            continue
        options = cls()
        options.Init(table.Bytes, table.Pos)
        fields = _subgraph_fields(cls)
        if not fields:
            continue
        refs = refs or []
        for field in fields:
            if field.endswith("Indices"):
                refs += [(field, int(getattr(options, field)(j))) for j in range(getattr(options, field + "Length")())]
            else:
                refs.append((field, int(getattr(options, field)())))
    return refs


def _subgraph_fields(cls) -> list[str]:
    """The accessors of an options table that name subgraphs (derived from the schema, never listed by hand)."""
    return [a for a in dir(cls) if a == "Subgraph" or a.endswith(("SubgraphIndex", "SubgraphIndices"))]


def _call_cycles(calls: dict, model) -> list[str]:
    """Each loop in the subgraph call graph once, as the path that closes it."""
    problems, seen_loops = [], set()
    state: dict[int, int] = {}  # 1: on the current path, 2: done

    def visit(s: int, path: list) -> None:
        state[s] = 1
        for o, name, field, target in calls[s]:
            step = path + [(s, o, name, field)]
            if state.get(target) == 1:
                loop = step[next(i for i, p in enumerate(step) if p[0] == target):]
                key = frozenset((p[0], p[1]) for p in loop)
                if key not in seen_loops:
                    seen_loops.add(key)
                    hops = " → ".join(f"subgraph {p[0]}{_name(model.Subgraphs(p[0]))} ({p[2]} operator {p[1]}, "
                                      f"{_snake(p[3])})" for p in loop)
                    what = "calls itself" if len(loop) == 1 else "calls an ancestor"
                    problems.append(f"subgraph {loop[-1][0]} {what}: {hops} → subgraph {target}; LiteRT would recurse "
                                    f"until it crashes")
            elif state.get(target) is None:
                visit(target, step)
        state[s] = 2

    for s in calls:
        if s not in state:
            visit(s, [])
    return problems


def _snake(field: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in field).lstrip("_")


def _name(table) -> str:
    raw = table.Name()
    return f" '{raw.decode('utf-8', 'replace')}'" if raw else ""


def _is_constant(model, tensor) -> bool:
    buffer = tensor.Buffer()
    if not buffer:
        return False
    buf = model.Buffers(buffer)
    return bool(buf.Size() if (buf.Offset() or buf.Size()) else buf.DataLength())


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
