"""The compiler pipeline: import → fold → check → IR passes → lower → TFLite passes → flatbuffer."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from edgekit.converters.tflite import kernel_check, passes, writer
from edgekit.converters.tflite.check import Problem, check_graph, raise_if_any
from edgekit.converters.tflite.importer import import_model, load_onnx
from edgekit.converters.tflite.ir import Graph
from edgekit.converters.tflite.registry import Unsupported, load_all, lookup
from edgekit.converters.tflite.tfl import Builder, TflGraph


#: what `precision` may ask for; "auto" takes the model's own (QDQ -> int8, dynamic -> dynamic, fp16 -> fp16)
PRECISIONS = ("auto", "float32", "fp16", "dynamic", "int8")


@dataclass
class CompileOptions:
    input_shapes: dict | list | None = None
    nhwc_io: bool = False
    int8_io: bool = False  # int8 models: integer inputs/outputs (their scales go in the metadata)
    precision: str = "auto"
    quantize_float_weights: bool = False  # dynamic mode: float dense weights become int8 (see passes.dynamic_range)
    float_nodes: tuple = ()  # int8 models: ONNX nodes computed in float between their Q/DQ (measured islands)


@dataclass
class Compiled:
    model: object  # the schema's ModelT, kept so metadata can be replaced without recompiling
    graph: TflGraph
    io_layouts: dict
    input_shapes: dict  # input name -> shape as compiled (-1 for a run-time dim: batch, tokens, height, ...)
    seconds: float
    metadata: dict = field(default_factory=dict)
    quantization: dict = field(default_factory=dict)  # mode, notes, float islands, int8 I/O parameters

    def to_bytes(self, metadata: dict | None = None) -> bytes:
        if metadata is not None:
            self.metadata = metadata
            writer.set_metadata(self.model, metadata)
        return writer.serialize(self.model)

    @property
    def op_histogram(self) -> dict:
        return self.graph.op_histogram()


def compile_onnx(model_or_path, input_shapes=None, nhwc_io: bool = False, metadata: dict | None = None,
                 source: str = "the model", int8_io: bool = False, precision: str = "auto",
                 float_nodes=()) -> Compiled:
    """Compile an ONNX model (path or ModelProto) to a TFLite model; UnsupportedModelError lists every bad node.

    precision: "auto" follows the model (QDQ → int8, ONNX dynamic quantization → dynamic-range, float16 → fp16,
    else float32); "fp16" / "dynamic" turn a float32 model into FP16 weights / dynamic-range int8 weights.
    """
    start = time.perf_counter()
    load_all()
    options = CompileOptions(input_shapes, nhwc_io, int8_io, precision, float_nodes=tuple(float_nodes))
    graph = import_model(load_onnx(model_or_path), input_shapes)
    for p in passes.FOLDING:
        p.run(graph, options)
    options.precision = resolve_precision(graph, precision, source)
    options.quantize_float_weights = precision == "dynamic" or bool(graph.quantization.pop("requantize_float_weights",
                                                                                              False))
    raise_if_any(check_graph(graph), source)
    for p in passes.IR_PASSES:
        p.run(graph, options)
    tgraph = lower(graph, source)
    for p in passes.TFLITE_PASSES:
        p.run(tgraph, options)
        if p in passes.SUBGRAPH_PASSES:
            for sub in tgraph.subgraphs:
                p.run(sub, options)
    raise_if_any(kernel_check.check(tgraph, graph), source)
    model = _written(tgraph, metadata or {}, graph, source)
    shapes = {n: list(graph.values[n].shape) for n in graph.inputs}
    quantization = dict(graph.quantization, mode=options.precision)
    if graph.declined or tgraph.declined:  # a fusion that did not fire is a slower model: the notes say why
        quantization["notes"] = [*quantization.get("notes", []), *graph.declined, *tgraph.declined]
    return Compiled(model, tgraph, dict(graph.io_layouts), shapes, time.perf_counter() - start, metadata or {},
                    quantization)


def _written(tgraph: TflGraph, metadata: dict, graph: Graph, source: str):
    """The writer's ModelT; an error it raises (kernel_check covers the known ones) is a collected problem."""
    try:
        return writer.build_model(tgraph, metadata)
    except Exception as exc:  # noqa: BLE001 - reported as a problem of the model, never a crash
        raise_if_any([Problem("(writer)", "", graph.opset, f"writing the TFLite file failed ({type(exc).__name__}: "
                                                            f"{exc})", "This is an edgekit bug: please report it.")],
                     source)


def resolve_precision(graph: Graph, precision: str, source: str = "the model") -> str:
    """The mode to compile in: the model's own (set by the folding passes), or the one asked for if it fits."""
    from edgekit.errors import UsageError
    if precision not in PRECISIONS:
        raise UsageError(f"Unknown precision '{precision}'.", hint=f"Choose one of: {', '.join(PRECISIONS)}.")
    found = graph.quantization.get("mode", "float32")
    if precision == "auto" or precision == found:
        graph.quantization["mode"] = found
        return found
    if found in ("int8", "dynamic"):
        raise UsageError(f"{source} is already quantized ({found}); it cannot be compiled as {precision}.",
                         hint="Compile the float32 model it came from, or leave the precision on auto.")
    if precision == "int8":
        raise UsageError(f"{source} is a {found} model; full-integer INT8 needs calibrated quantization parameters.",
                         hint="Quantize it first: edgekit quantize MODEL --mode static --calib DATA, then convert "
                              "the QDQ model it writes.")
    graph.quantization["mode"] = precision
    return precision


def lower(graph: Graph, source: str = "the model") -> TflGraph:
    """Run every node's lowering; collect all Unsupported and raise them together."""
    tgraph, aliases, problems = TflGraph(), {}, []
    for name in graph.inputs:
        tgraph.inputs.append(Builder(tgraph, aliases, None, frozenset(), graph.opset).t(graph.values[name]))
    for node in graph.nodes:
        entry = lookup(node.op_type, graph.opset, node.domain)
        b = Builder(tgraph, aliases, node, entry.emits, graph.opset)
        b.outputs = [graph.value(o) for o in node.outputs]
        try:
            entry(b, node, graph)
        except Unsupported as exc:
            problems.append(Problem(node.name, node.op_type, graph.opset, exc.reason, exc.hint))
        except Exception as exc:  # a case the lowering's checks missed (often a malformed model): report, don't crash
            problems.append(Problem(node.name, node.op_type, graph.opset,
                                    f"the lowering failed unexpectedly ({type(exc).__name__}: {exc})",
                                    "If the model is valid, this is an edgekit bug: please report it with the model."))
    raise_if_any(problems, source)
    tgraph.outputs = [_output_tensor(tgraph, aliases, graph, name) for name in graph.outputs]
    return tgraph


def _output_tensor(tgraph: TflGraph, aliases: dict, graph: Graph, name: str) -> str:
    """The tensor of a model output, named as in ONNX; an output that aliases another tensor gets a copy."""
    source = aliases.get(name, name)
    if source == name and name in tgraph.tensors:
        return name
    value = graph.values[name]
    if source not in tgraph.tensors:
        from edgekit.errors import UnsupportedModelError
        raise UnsupportedModelError(
            f"The model output '{name}' does not depend on any input: it folds to a constant at compile time, and a "
            f"TFLite model cannot return a constant.", hint="Remove that output, or compute it outside the model.")
    producer = tgraph.producers().get(source)
    if producer is not None and source not in tgraph.outputs and source not in tgraph.inputs \
            and len(tgraph.consumers().get(source, [])) == 0:
        producer.outputs = [name if o == source else o for o in producer.outputs]
        tgraph.tensors[name] = tgraph.tensors.pop(source)
        tgraph.tensors[name].name = name
        for k, v in list(aliases.items()):
            if v == source:
                aliases[k] = name
        return name
    from edgekit.converters.tflite.tfl import TflOp, TflTensor
    import numpy as np
    shape = list(tgraph.tensors[source].shape)
    tgraph.tensors[name] = TflTensor(name, shape, np.dtype(value.dtype), quant=tgraph.tensors[source].quant)
    shape_name = f"{name}/copy_shape"
    tgraph.tensors[shape_name] = TflTensor(shape_name, [len(shape)], np.dtype(np.int32), np.asarray(shape, np.int32))
    tgraph.ops.append(TflOp("RESHAPE", [source, shape_name], [name], origin=f"{name}/copy"))
    return name
