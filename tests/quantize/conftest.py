"""Real accuracy numbers in seconds: zoo models trained on scikit-learn's bundled digits, exported to ONNX.

The plain functions live in digits_models.py (importable from other test folders); the fixtures here cache per test
session.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from digits_models import HELD_OUT, export_onnx, train_lenet_digits  # tests/quantize is on sys.path


@pytest.fixture(scope="session")
def lenet_digits(tmp_path_factory):
    """(onnx path, npz path with 'image' and 'labels': training digits then the HELD_OUT ones, float accuracy)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lenet_digits")
    model, x, y = train_lenet_digits()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(x[-HELD_OUT:])).argmax(1).numpy() == y[-HELD_OUT:]).mean())
    onnx_path = export_onnx(model, x[:1], root / "lenet.onnx")
    # calibration: 240 training digits; evaluation (held out by --eval-fraction): the HELD_OUT digits
    data = root / "digits.npz"
    np.savez(data, image=np.concatenate([x[:240], x[-HELD_OUT:]]), labels=np.concatenate([y[:240], y[-HELD_OUT:]]))
    return onnx_path, data, acc


@pytest.fixture(scope="session")
def exporter():
    """export_onnx, for tests that export their own trained modules."""
    return export_onnx
