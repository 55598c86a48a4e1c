"""Linear algebra on small matrices: Det of 2×2 and 3×3 matrices by their cofactor formula (TFLite has no matrix
determinant; larger matrices would need a pivoting factorisation, which has no exact short composition).

    Det(x: [..., 2, 2]) -> a·d − b·c;  Det(x: [..., 3, 3]) -> Sarrus' six products, signed and summed
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.registry import Unsupported, lowering

#: flat indices of the factors of each signed product term (row-major n×n), and the terms' signs
TERMS = {2: ([[0, 1], [3, 2]], [1, -1]),
         3: ([[0, 1, 2, 2, 0, 1], [4, 5, 3, 4, 5, 3], [8, 6, 7, 6, 7, 8]], [1, 1, 1, -1, -1, -1])}


@lowering("Det", since=11, emits=("RESHAPE", "GATHER", "MUL", "SUM"))
def det(b, x):
    n = x.shape[-1] if x.shape and x.rank >= 2 else None
    if n not in TERMS or x.shape[-2] != n:
        raise Unsupported(f"Det of {list(x.shape)[-2:]} matrices; only 2×2 and 3×3 have a short exact composition",
                          hint="Compute larger determinants outside the model.")
    y = b.outputs[0]
    batch = int(np.prod(x.shape[:-2], dtype=np.int64))
    flat = b.temp([batch, n * n], hint="flat")
    b.emit("RESHAPE", [b.t(x), b.ints([batch, n * n])], [flat])
    factors, signs = TERMS[n]
    product = None
    for i, index in enumerate(factors):
        picked = b.temp([batch, len(index)], hint=f"factor{i}")
        b.emit("GATHER", [flat, b.ints(index, "index")], [picked], axis=1)
        if product is not None:
            combined = b.temp([batch, len(index)], hint=f"product{i}")
            b.emit("MUL", [product, picked], [combined])
            picked = combined
        product = picked
    signed = b.temp([batch, len(signs)], hint="signed")
    b.emit("MUL", [product, b.const(np.asarray([signs], np.float32), hint="signs")], [signed])
    summed = b.temp([batch], hint="det")
    b.emit("SUM", [signed, b.ints([1], "axis")], [summed], keepDims=False)
    b.emit("RESHAPE", [summed, b.ints(list(y.shape))], [b.out(y)])  # [] for one matrix: a scalar
