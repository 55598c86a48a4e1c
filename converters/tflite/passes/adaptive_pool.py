"""Adaptive average pooling from PyTorch's decomposition: when the output size does not divide the input size,
torch.export gathers every window with a constant-index GatherND, then averages the windows (a ReduceMean, or
for windows of unequal length masked Where + Gather/Add + Div). All of it is a fixed linear map of the spatial
positions, so the region becomes one AdaptiveAveragePool node holding that map as a [OH*OW, H*W] matrix
(lowered on NHWC data as RESHAPE + BATCH_MATMUL + RESHAPE):

    ReduceMean(Transpose(GatherND(Transpose(x, [2,3,0,1]), I), [4,5,0,1,2,3]), axes=[3,5]) -> AdaptiveAveragePool(x, M)
    Div(Add(Gather(Where(mask, 0, Transpose(GatherND(Transpose(x, ...), I))), ...), ...), L) -> AdaptiveAveragePool(x, M)

The region runs from the Transpose to the first value shaped [N, C, OH, OW] that is its only way out; every
other input of the region must be constant. M is measured by running the region (ONNX reference evaluator)
on one-hot spatial probes, and the rewrite is made only if M reproduces the region on a random input.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Node, Value
from edgekit.converters.tflite.passes._patterns import fuse_all, sole_user

MAX_POSITIONS = 4096  # H*W probes; larger maps are not pooling heads


def run(graph: Graph, options=None) -> None:
    fuse_all(graph, _fuse_one)


def _fuse_one(graph: Graph) -> bool:
    consumers = graph.consumers()
    for front in graph.nodes:
        if front.op_type != "Transpose" or list(front.attrs.get("perm") or []) != [2, 3, 0, 1]:
            continue
        x = graph.value(front.inputs[0])
        if x is None or x.shape is None or x.rank != 4 or min(x.shape) < 1 or x.shape[2] * x.shape[3] > MAX_POSITIONS:
            continue
        gather = sole_user(graph, consumers, front.outputs[0], "GatherND")
        indices = graph.value(gather.inputs[1]) if gather is not None else None
        if indices is None or not indices.is_const:
            continue
        found = _region(graph, front, consumers)
        if found is None:
            continue
        region, exit_name = found
        matrix = _linear_map(graph, region, x, exit_name)
        if matrix is None:
            continue
        m = graph.add_value(Value(f"{exit_name}/windows", np.dtype(np.float32), matrix.shape, const=matrix))
        last = region[-1]
        fused = Node("AdaptiveAveragePool", f"{last.name}/adaptive_pool", [front.inputs[0], m.name], [exit_name],
                     domain="edgekit", module=last.module)
        graph.nodes[graph.nodes.index(last)] = fused
        graph.remove_nodes(region[:-1])
        return True
    return False


def _region(graph: Graph, front: Node, consumers: dict):
    """The nodes from `front` on that only read the region or constants, up to a single [N,C,OH,OW] exit."""
    x = graph.values[front.inputs[0]]
    inside, region = set(front.outputs), [front]
    start = graph.nodes.index(front)
    for node in graph.nodes[start + 1:]:
        reads = [n for n in node.inputs if n]
        if not any(n in inside for n in reads):
            continue
        if node.domain not in ("", "ai.onnx") or not all(n in inside or graph.values[n].is_const for n in reads):
            return None
        region.append(node)
        inside.update(o for o in node.outputs if o)
        members = {id(n) for n in region}
        frontier = [v for v in inside if v in graph.outputs or any(id(u) not in members for u in consumers.get(v, []))]
        if len(frontier) == 1 and frontier[0] in node.outputs:
            out = graph.values[frontier[0]]
            if out.shape is not None and out.rank == 4 and tuple(out.shape[:2]) == tuple(x.shape[:2]):
                return _with_scaling(graph, region, frontier[0], consumers)
        if len(region) > 256:
            return None
    return None


def _with_scaling(graph: Graph, region: list, exit_name: str, consumers: dict):
    """Extend the region over Mul/Div by constants right after it (the division by window lengths)."""
    while True:
        node = graph.sole_consumer(exit_name, consumers)
        if node is None or node.op_type not in ("Mul", "Div") or node.inputs[0] != exit_name \
                or not graph.values[node.inputs[1]].is_const or graph.values[node.outputs[0]].shape != \
                graph.values[exit_name].shape:
            return region, exit_name
        region.append(node)
        exit_name = node.outputs[0]


def _linear_map(graph: Graph, region: list, x: Value, exit_name: str):
    """[OH*OW, H*W] such that exit = M @ x over the spatial positions, or None if the region is not such a map."""
    n, c, h, w = (int(d) for d in x.shape)
    probes = np.eye(h * w, dtype=np.float32).reshape(h * w, 1, h, w)  # one one-hot position per sample
    response = _evaluate(graph, region, x.name, probes, exit_name)
    if response is None or response.shape[:2] != (h * w, 1):
        return None
    oh, ow = response.shape[2:]
    matrix = response.reshape(h * w, oh * ow).T.copy()
    sample = np.random.default_rng(0).standard_normal([n, c, h, w]).astype(np.float32)
    got = _evaluate(graph, region, x.name, sample, exit_name)
    want = np.einsum("pq,ncq->ncp", matrix, sample.reshape(n, c, h * w)).reshape(n, c, oh, ow)
    if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        return None
    return matrix


def _evaluate(graph: Graph, region: list, x_name: str, x: np.ndarray, exit_name: str):
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    consts = {n for node in region for n in node.inputs if n and graph.values[n].is_const}
    nodes = [helper.make_node(node.op_type, node.inputs, node.outputs,
                              **{k: onnx.numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v
                                 for k, v in node.attrs.items()}) for node in region]
    model = helper.make_model(helper.make_graph(
        nodes, "region", [helper.make_tensor_value_info(x_name, onnx.TensorProto.FLOAT, x.shape)],
        [helper.make_empty_tensor_value_info(exit_name)],
        [onnx.numpy_helper.from_array(np.asarray(graph.values[n].const), n) for n in consts]),
        opset_imports=[helper.make_opsetid("", graph.opset)])
    try:
        return np.asarray(ReferenceEvaluator(model).run([exit_name], {x_name: x})[0], dtype=np.float32)
    except Exception:  # an op the reference evaluator lacks, or shapes baked for another batch: leave it alone
        return None
