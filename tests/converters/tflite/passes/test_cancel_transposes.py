"""passes/cancel_transposes.py: back-to-back TRANSPOSEs collapse (to nothing when they cancel), a TRANSPOSE that only
moves size-1 dimensions becomes a RESHAPE, and RESHAPE chains become one."""
from __future__ import annotations

import numpy as np
import pytest

from _pass_case import compiled_ops, model_text


@pytest.mark.parametrize("body, x, inits, ops", [
    ("a = Transpose<perm=[0,2,1]>(x)\n b = Transpose<perm=[0,2,1]>(a)\n y = Relu(b)", "float[2,4,8] x", {}, ["RELU"]),
    ("a = Transpose<perm=[1,0,2]>(x)\n b = Transpose<perm=[0,2,1]>(a)\n y = Relu(b)", "float[2,4,8] x", {},
     ["RELU", "TRANSPOSE"]),  # two become one (the activation is moved first by the lowering's layout)
    ("a = Transpose<perm=[1,0,2]>(x)\n y = Relu(a)", "float[1,4,8] x", {}, ["RELU", "RESHAPE"]),
    ("a = Reshape(x, s1)\n b = Reshape(a, s2)\n y = Relu(b)", "float[2,4,8] x",
     {"s1": np.array([8, 8], np.int64), "s2": np.array([4, 16], np.int64)}, ["RESHAPE", "RELU"]),
], ids=["cancel", "merge", "size_one_moves", "reshape_chain"])
def test_layout_changes_collapse(body, x, inits, ops):
    assert compiled_ops(model_text(body, x, "float y", **inits)) == ops
