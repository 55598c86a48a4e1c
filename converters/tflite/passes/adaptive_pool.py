"""Adaptive average pooling from PyTorch's decomposition: when the input size does not divide the output
size, torch.export gathers every window with a constant-index GatherND and averages it. The gathered
windows are a fixed linear map of the spatial positions, so the subgraph becomes one AdaptiveAveragePool
node holding that map as a [OH*OW, H*W] matrix (lowered on NHWC data as RESHAPE + BATCH_MATMUL + RESHAPE).

    ReduceMean(Transpose(GatherND(Transpose(x, [2,3,0,1]), I), [4,5,0,1,2,3]), axes=[3,5], keepdims=0)
        -> AdaptiveAveragePool(x, M),  M[oh*OW+ow, h*W+w] = #{(kh,kw): I[oh,kh,ow,kw] = (h,w)} / (KH*KW)

The masked variant torch emits for windows of unequal length (e.g. 3 -> 7) is not matched.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import Graph, Node, Value
from edgekit.converters.tflite.passes._patterns import reduce_axes, sole_user


def run(graph: Graph, options=None) -> None:
    while _fuse_one(graph):
        pass
    graph.prune()


def _fuse_one(graph: Graph) -> bool:
    consumers = graph.consumers()
    for front in graph.nodes:
        if front.op_type != "Transpose" or list(front.attrs.get("perm") or []) != [2, 3, 0, 1]:
            continue
        x = graph.value(front.inputs[0])
        if x is None or x.shape is None or x.rank != 4 or min(x.shape[2:]) < 1:
            continue
        gather = sole_user(graph, consumers, front.outputs[0], "GatherND")
        if gather is None or gather.attrs.get("batch_dims", 0) != 0:
            continue
        indices = graph.value(gather.inputs[1])
        if indices is None or not indices.is_const or indices.const.ndim != 5 or indices.const.shape[-1] != 2:
            continue
        back = sole_user(graph, consumers, gather.outputs[0], "Transpose")
        if back is None or list(back.attrs.get("perm") or []) != [4, 5, 0, 1, 2, 3]:
            continue
        mean = sole_user(graph, consumers, back.outputs[0], "ReduceMean")
        if mean is None or mean.attrs.get("keepdims", 1) != 0 or reduce_axes(graph, mean, 6) != [3, 5]:
            continue
        matrix = window_matrix(indices.const, x.shape[2], x.shape[3])
        m = graph.add_value(Value(f"{mean.name}/windows", np.dtype(np.float32), matrix.shape, const=matrix))
        fused = Node("AdaptiveAveragePool", f"{mean.name}/adaptive_pool", [front.inputs[0], m.name],
                     list(mean.outputs), domain="edgekit")
        graph.nodes[graph.nodes.index(mean)] = fused
        graph.remove_nodes([front, gather, back])
        return True
    return False


def window_matrix(indices: np.ndarray, h: int, w: int) -> np.ndarray:
    """[OH*OW, H*W]: row (oh, ow) averages the input positions its windows gather."""
    oh, kh, ow, kw, _ = indices.shape
    idx = indices.astype(np.int64) % np.asarray([h, w])  # GatherND accepts negative indices
    matrix = np.zeros([oh, ow, h * w], np.float64)
    flat = idx[..., 0] * w + idx[..., 1]  # [OH, KH, OW, KW]
    for i in range(oh):
        for j in range(ow):
            np.add.at(matrix[i, j], flat[i, :, j, :].ravel(), 1.0 / (kh * kw))
    return matrix.reshape(oh * ow, h * w).astype(np.float32)
