"""Read an ONNX model into the IR: fix input shapes, run ONNX shape inference, keep constants as arrays."""
from __future__ import annotations

import os

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC, Graph, Node, Value
from edgekit.errors import InvalidModelError, UsageError


def load_onnx(model_or_path):
    """A ModelProto as is, or a file read as untrusted data (external data confined to its folder)."""
    import onnx
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    from edgekit.onnx_io import load_onnx as load_untrusted
    return load_untrusted(os.fspath(model_or_path))


def import_model(model, input_shapes=None) -> Graph:
    """ONNX ModelProto → IR Graph. `input_shapes`: {name: dims} or a list of dims in input order."""
    import onnx
    weights = model.graph.initializer
    model, stripped = _without_weights(model)  # the checker and shape inference serialize what they are given
    model = _topologically_sorted(model)
    try:  # dangling names, unknown ops, bad attributes: refuse before any pass trusts the graph
        onnx.checker.check_model(model)
    except Exception as exc:
        raise InvalidModelError(f"The ONNX model is malformed: {str(exc).strip().splitlines()[0][:300]}",
                                hint="Re-export it (edgekit export) or repair it; onnx.checker.check_model shows the "
                                     "problem.") from exc
    model, dynamic_dims = _with_input_shapes(model, input_shapes, stripped)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        raise InvalidModelError(f"ONNX shape inference failed on this model ({exc}).",
                                hint="Run `onnx.checker.check_model` on it; re-export if it is damaged.") from exc
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    values = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        values[vi.name] = Value(vi.name, *_type_of(vi))
    for init in weights:
        arr = _array_of(init)
        values[init.name] = Value(init.name, arr.dtype, tuple(arr.shape), const=arr)
    nodes = []
    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{i}"
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        module = next((p.value for p in node.metadata_props if p.key == "edgekit.module"), "")
        nodes.append(Node(node.op_type, name, list(node.input), list(node.output), attrs, node.domain, module))
        for out in node.output:
            if out and out not in values:
                values[out] = Value(out, np.dtype(np.float32), None)  # shape inference knew nothing
    inits = {i.name for i in weights}
    return Graph(values, nodes, [i.name for i in g.input if i.name not in inits], [o.name for o in g.output],
                 opset, g.name or "main", dynamic_dims=dynamic_dims)


#: initializers with more elements than this are left out of the copy the checker and shape inference read
STRIPPED_ELEMENTS = 4096


def _without_weights(model):
    """(a ModelProto sharing everything but the large initializers, which become graph inputs of their type and
    shape; the names of those), or (model, ()) when there are none.

    onnx.checker.check_model and infer_shapes serialize the model they are given and parse it again: VGG-11's
    531 MB of weights took them ~10 s (23 s on a loaded machine). Neither needs the values of a float weight; shape
    inference's data propagation reads small integer constants (shapes, axes), which stay. The initializers' own
    data is checked as the importer reads it (_array_of)."""
    import onnx
    graph = model.graph
    big = [t for t in graph.initializer if int(np.prod(t.dims, dtype=np.int64)) > STRIPPED_ELEMENTS]
    if not big:
        return model, ()
    names = {t.name for t in big}
    light = onnx.ModelProto()
    _copy_fields(model, light, skip=("graph",))
    _copy_fields(graph, light.graph, skip=("initializer",))
    light.graph.initializer.extend(t for t in graph.initializer if t.name not in names)
    listed = {i.name for i in graph.input}
    light.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                             for t in big if t.name not in listed)
    return light, tuple(sorted(names))


def _copy_fields(src, dst, skip=()) -> None:
    """Copy the set fields of protobuf message `src` into `dst`, except those named in `skip`."""
    for field, value in src.ListFields():
        if field.name in skip:
            continue
        if hasattr(value, "extend"):
            getattr(dst, field.name).extend(value)
        elif hasattr(value, "CopyFrom"):
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def _array_of(init) -> np.ndarray:
    """An initializer's values; data that does not match its declared shape is a malformed model."""
    import onnx
    try:
        return onnx.numpy_helper.to_array(init)
    except Exception as exc:
        raise InvalidModelError(f"The ONNX model is malformed: initializer '{init.name}' cannot be read "
                                f"({str(exc).strip().splitlines()[0][:200] if str(exc) else type(exc).__name__}).",
                                hint="Re-export it (edgekit export) or repair it.") from exc


def _topologically_sorted(model):
    """The model with its nodes in dependency order (ONNX Runtime runs unsorted graphs, e.g. the float16 models its
    converter writes with Casts appended last; the checker refuses them). Unchanged if already sorted or cyclic."""
    import onnx
    from edgekit.onnx_io import dependency_order
    order = dependency_order(model.graph)
    if order is None or order == list(range(len(model.graph.node))):
        return model  # a cycle is left to the checker
    nodes = list(model.graph.node)
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.node[:]
    fixed.graph.node.extend(nodes[i] for i in order)
    return fixed


def _with_input_shapes(model, input_shapes, weights=()):
    """A copy of `model` whose graph inputs have the given dims, and {input: {dim: label}} of the non-batch dims left
    dynamic: they stay -1 through the compiler where every op on their path can take a run-time size (check.py
    refuses the others, naming the op and the dim)."""
    import onnx
    model = onnx.ModelProto.FromString(model.SerializeToString()) if input_shapes else model
    inits = {i.name for i in model.graph.initializer} | set(weights)  # weights: initializers made inputs
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    given = _shapes_by_name(input_shapes, [i.name for i in graph_inputs])
    dynamic = {}
    for inp in graph_inputs:
        dims = inp.type.tensor_type.shape.dim
        if inp.name in given:
            want = given[inp.name]
            if len(want) != len(dims):
                raise UsageError(f"--input-shape gives {len(want)} dims for '{inp.name}', which has rank {len(dims)}.",
                                 hint="Give one size per dimension, e.g. 1x3x224x224.")
            for d, size in zip(dims, want):
                if d.HasField("dim_value") and d.dim_value != size:
                    raise UsageError(f"--input-shape sets '{inp.name}' to {list(want)}, but the model fixes it to "
                                     f"{[x.dim_value if x.HasField('dim_value') else x.dim_param for x in dims]}.",
                                     hint="Only dynamic dimensions can be set.")
                d.Clear()
                d.dim_value = size
        for pos, d in enumerate(dims):
            if not d.HasField("dim_value") and pos > 0:
                dynamic.setdefault(inp.name, {})[pos] = d.dim_param or "?"
    return model, dynamic


def dynamic_dims_text(dynamic_dims: dict) -> str:
    """"'x' dim 1 (seq), ..." for the messages that ask for --input-shape."""
    return ", ".join(f"'{name}' dim {pos} ({label})" for name, dims in dynamic_dims.items()
                     for pos, label in dims.items())


def static_because(op_type: str) -> str | None:
    """Why an op needs static sizes (for refusals of a dynamic dim), or None when it is not a known case."""
    return _STATIC_BECAUSE.get(op_type)


#: why an op needs its input sizes at compile time (the rest of the compiler lowers shapes as constants too)
_STATIC_BECAUSE = {
    "LSTM": "unrolled over the sequence length", "GRU": "unrolled over the sequence length",
    "RNN": "unrolled over the sequence length", "Scan": "unrolled over its iterations",
    "Reshape": "its target shape is computed from the input's shape", "Expand": "its shape is computed at run time",
    "Tile": "its repeats are computed at run time", "Range": "its length is computed at run time",
    "ConstantOfShape": "its shape is computed at run time", "Slice": "its bounds are computed at run time",
}


def _shapes_by_name(input_shapes, names) -> dict:
    if not input_shapes:
        return {}
    if isinstance(input_shapes, dict):
        unknown = [k for k in input_shapes if k not in names]
        if unknown:
            raise UsageError(f"--input-shape names {unknown}, which are not inputs of the model.",
                             hint=f"The model's inputs are {names}.")
        return {k: tuple(v) for k, v in input_shapes.items()}
    shapes = list(input_shapes)
    if len(shapes) > len(names):
        raise UsageError(f"{len(shapes)} input shapes given for {len(names)} inputs {names}.",
                         hint="Give one --input-shape per input, or name them: NAME=DIMS.")
    return {n: tuple(s) for n, s in zip(names, shapes)}


def _type_of(vi):
    import onnx
    tt = vi.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else np.dtype(np.float32)
    if not tt.HasField("shape"):
        return dtype, None
    return dtype, tuple(int(d.dim_value) if d.HasField("dim_value") else DYNAMIC for d in tt.shape.dim)


def _attr_value(attr):
    import onnx
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    return value
