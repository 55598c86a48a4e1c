"""The compiler pipeline: import → fold → check → IR passes → lower → TFLite passes → flatbuffer."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from edgekit.converters.tflite import passes, writer
from edgekit.converters.tflite.check import Problem, check_graph, raise_if_any
from edgekit.converters.tflite.importer import import_model, load_onnx
from edgekit.converters.tflite.ir import Graph
from edgekit.converters.tflite.registry import Unsupported, load_all, lookup
from edgekit.converters.tflite.tfl import Builder, TflGraph


@dataclass
class CompileOptions:
    input_shapes: dict | list | None = None
    nhwc_io: bool = False


@dataclass
class Compiled:
    model: object  # the schema's ModelT, kept so metadata can be replaced without recompiling
    graph: TflGraph
    io_layouts: dict
    input_shapes: dict  # input name -> shape as compiled (-1 for a dynamic batch)
    seconds: float
    metadata: dict = field(default_factory=dict)

    def to_bytes(self, metadata: dict | None = None) -> bytes:
        if metadata is not None:
            self.metadata = metadata
            writer.set_metadata(self.model, metadata)
        return writer.serialize(self.model)

    @property
    def op_histogram(self) -> dict:
        return self.graph.op_histogram()


def compile_onnx(model_or_path, input_shapes=None, nhwc_io: bool = False, metadata: dict | None = None,
                 source: str = "the model") -> Compiled:
    """Compile an ONNX model (path or ModelProto) to a TFLite model; UnsupportedModelError lists every bad node."""
    start = time.perf_counter()
    load_all()
    options = CompileOptions(input_shapes, nhwc_io)
    graph = import_model(load_onnx(model_or_path), input_shapes)
    for p in passes.FOLDING:
        p.run(graph)
    raise_if_any(check_graph(graph), source)
    for p in passes.IR_PASSES:
        p.run(graph, options)
    tgraph = lower(graph, source)
    for p in passes.TFLITE_PASSES:
        p.run(tgraph, options)
    model = writer.build_model(tgraph, metadata or {})
    shapes = {n: list(graph.values[n].shape) for n in graph.inputs}
    return Compiled(model, tgraph, dict(graph.io_layouts), shapes, time.perf_counter() - start, metadata or {})


def lower(graph: Graph, source: str = "the model") -> TflGraph:
    """Run every node's lowering; collect all Unsupported and raise them together."""
    tgraph, aliases, problems = TflGraph(), {}, []
    for name in graph.inputs:
        tgraph.inputs.append(Builder(tgraph, aliases, None, frozenset(), graph.opset).t(graph.values[name]))
    for node in graph.nodes:
        entry = lookup(node.op_type, graph.opset)
        b = Builder(tgraph, aliases, node, entry.emits, graph.opset)
        b.outputs = [graph.value(o) for o in node.outputs]
        try:
            entry(b, node, graph)
        except Unsupported as exc:
            problems.append(Problem(node.name, node.op_type, graph.opset, exc.reason, exc.hint))
    raise_if_any(problems, source)
    tgraph.outputs = [_output_tensor(tgraph, aliases, graph, name) for name in graph.outputs]
    return tgraph


def _output_tensor(tgraph: TflGraph, aliases: dict, graph: Graph, name: str) -> str:
    """The tensor of a model output, named as in ONNX; an output that aliases another tensor gets a copy."""
    source = aliases.get(name, name)
    if source == name and name in tgraph.tensors:
        return name
    value = graph.values[name]
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
    tgraph.tensors[name] = TflTensor(name, shape, np.dtype(value.dtype))
    shape_name = f"{name}/copy_shape"
    tgraph.tensors[shape_name] = TflTensor(shape_name, [len(shape)], np.dtype(np.int32), np.asarray(shape, np.int32))
    tgraph.ops.append(TflOp("RESHAPE", [source, shape_name], [name], origin=f"{name}/copy"))
    return name
