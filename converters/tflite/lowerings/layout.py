"""The compiler's own layout ops, inserted by passes: Relayout (change the physical layout of a value)
and PhysicalReshape (reshape a value's memory into its output's physical shape)."""
from __future__ import annotations

from edgekit.converters.tflite.registry import INTERNAL, lowering
from edgekit.converters.tflite.tfl import dims_for_reshape


@lowering("Relayout", domain=INTERNAL, emits=("TRANSPOSE",), dtypes=("float32", "int64", "int32", "int8"))
def relayout(b, x, *, perm=None):
    y = b.outputs[0]
    src = list(x.perm or range(x.rank))
    dst = list(y.perm or range(y.rank))
    b.emit("TRANSPOSE", [b.t(x), b.ints([src.index(d) for d in dst], "perm")], [b.out(y)])


@lowering("PhysicalReshape", domain=INTERNAL, emits=("RESHAPE",), dtypes=("float32", "int8"))
def physical_reshape(b, x):
    y = b.outputs[0]
    b.emit("RESHAPE", [b.t(x), b.ints(dims_for_reshape(y.phys_shape))], [b.out(y)])
