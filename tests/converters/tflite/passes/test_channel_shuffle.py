"""passes/channel_shuffle.py: ShuffleNet's reshape/transpose/reshape on the channel axis becomes one ChannelShuffle,
lowered as RESHAPE + TRANSPOSE of the two channel factors + RESHAPE in NHWC, with no relayout around it."""
from __future__ import annotations

import numpy as np

from _pass_case import compiled_ops, declined, model_text

SPLIT, MERGE = np.array([1, 2, 4, 4, 4], np.int64), np.array([1, 8, 4, 4], np.int64)


def test_channel_shuffle_after_a_conv_needs_no_relayout():
    w = np.random.default_rng(3).standard_normal((8, 8, 1, 1)).astype(np.float32)
    body = "c = Conv(x, w)\n a = Reshape(c, s1)\n b = Transpose<perm=[0,2,1,3,4]>(a)\n r = Reshape(b, s2)\n y = Conv(r, w)"
    ops = compiled_ops(model_text(body, "float[1,8,4,4] x", "float y", w=w, s1=SPLIT, s2=MERGE))
    assert ops == ["TRANSPOSE", "CONV_2D", "RESHAPE", "TRANSPOSE", "RESHAPE", "CONV_2D", "TRANSPOSE"]


def test_grouped_channels_read_elsewhere_stay_a_transpose_and_say_why():
    body = "a = Reshape(x, s1)\n b = Transpose<perm=[0,2,1,3,4]>(a)\n y = Reshape(b, s2)\n z = Neg(b)"
    text = model_text(body, "float[1,8,4,4] x", "float y, float z", s1=SPLIT, s2=MERGE)
    assert "TRANSPOSE" in compiled_ops(text)
    assert declined(text) == ["channel shuffle fusion not applied at 'Transpose_1': the transposed groups are read "
                              "elsewhere or not reshaped back to the input's shape (a 5-D TRANSPOSE is kept)"]
