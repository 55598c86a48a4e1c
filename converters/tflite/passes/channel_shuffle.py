"""Channel-shuffle fusion: ShuffleNet's view/transpose/view on the channel axis becomes one ChannelShuffle
node, which runs in whatever layout its input has (NHWC after convolutions), so no relayout surrounds it.

    Reshape(Transpose(Reshape(x: [N,C,H,W], [N,g,C/g,H,W]), perm=[0,2,1,3,4]), [N,C,H,W]) -> ChannelShuffle<group=g>(x)

Both intermediates must have no other reader (a grouped transpose left unfused for that says why in the notes,
passes._declined). The lowering (lowerings/fused.py) moves the channels with one
RESHAPE + TRANSPOSE (of the two channel factors only) + RESHAPE.
"""
from __future__ import annotations

from edgekit.converters.tflite.ir import Graph, Node
from edgekit.converters.tflite.passes._declined import decline
from edgekit.converters.tflite.passes._patterns import fuse_all, sole_user


def run(graph: Graph, options=None) -> None:
    fuse_all(graph, _fuse_one)


def _fuse_one(graph: Graph) -> bool:
    consumers = graph.consumers()
    for split in graph.nodes:
        if split.op_type != "Reshape" or split.domain not in ("", "ai.onnx"):
            continue
        x, grouped = graph.value(split.inputs[0]), graph.value(split.outputs[0])
        if x is None or x.shape is None or x.rank != 4 or grouped.shape is None or grouped.rank != 5:
            continue
        n, c, h, w = x.shape
        g = grouped.shape[1]
        if g <= 1 or c < 0 or c % g or list(grouped.shape) != [n, g, c // g, h, w]:
            continue
        swap = sole_user(graph, consumers, split.outputs[0], "Transpose")
        if swap is None or list(swap.attrs.get("perm") or []) != [0, 2, 1, 3, 4]:
            continue
        merge = sole_user(graph, consumers, swap.outputs[0], "Reshape")
        if merge is None or graph.values[merge.outputs[0]].shape != x.shape:
            decline(graph, "channel shuffle fusion", f"'{swap.name}'", "the transposed groups are read elsewhere or not "
                    "reshaped back to the input's shape (a 5-D TRANSPOSE is kept)")
            continue
        fused = Node("ChannelShuffle", f"{merge.name}/channel_shuffle", [split.inputs[0]], list(merge.outputs),
                     {"group": int(g)}, domain="edgekit", module=merge.module)
        graph.nodes[graph.nodes.index(merge)] = fused
        graph.remove_nodes([split, swap])
        return True
    return False
