"""passes/dropout.py: inference Dropout is the identity (its mask a constant); training mode is refused with a reason."""
from __future__ import annotations

import numpy as np
import pytest

from _pass_case import compiled_ops, model_text
from edgekit.errors import UnsupportedModelError


def test_inference_dropout_disappears():
    assert compiled_ops(model_text("a = Dropout(x)\n y = Relu(a)", "float[2,8] x", "float y")) == ["RELU"]


def test_dropout_with_a_constant_false_training_mode_disappears():
    text = ('<ir_version: 8, opset_import: ["" : 18]>\n'
            "g (float[2,8] x) => (float y) <float r = {0.5}, bool tm = {0}> {\n a, mk = Dropout(x, r, tm)\n y = Relu(a)\n}")
    assert compiled_ops(text) == ["RELU"]


def test_a_training_mode_given_by_a_constant_node_is_read_too():
    text = model_text("tm = Constant<value = bool {0}>()\n a, mk = Dropout(x, r, tm)\n y = Relu(a)", "float[2,8] x",
                      "float y", r=np.float32(0.5))
    assert compiled_ops(text) == ["RELU"]  # was refused: 'its mask output is used'


def test_training_mode_dropout_is_refused():
    text = ('<ir_version: 8, opset_import: ["" : 18]>\n'
            "g (float[2,8] x) => (float y) <float r = {0.5}, bool tm = {1}> {\n a = Dropout(x, r, tm)\n y = Relu(a)\n}")
    with pytest.raises(UnsupportedModelError, match="training_mode is not constant false"):
        compiled_ops(text)
