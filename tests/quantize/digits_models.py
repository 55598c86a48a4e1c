"""Digits models trained in seconds, as plain functions: the quantize fixtures (conftest.py), the outlier models
(outlier_models.py), the TFLite INT8 tests and the accuracy benchmark all import them from here (by path or with
tests/quantize on sys.path: the tests folder is not a package)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

HELD_OUT = 360  # the last samples of the shuffled digits, never trained on


def digits_28(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (N, 1, 28, 28) float32 in [0, 1] (8x8 upsampled 3x, padded by 2) and int64 labels,
    shuffled with `seed`."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    x = np.kron(x, np.ones((1, 3, 3), np.float32))
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))[:, None]
    order = np.random.default_rng(seed).permutation(len(x))
    return np.ascontiguousarray(x[order]), d.target[order].astype(np.int64)


def train_lenet_digits(epochs: int = 4, seed: int = 0):
    """ZOO['lenet'] trained on all but the last HELD_OUT digits (a few seconds on 1 CPU); → (module, x, y)."""
    import torch
    from edgekit.zoo import ZOO
    x, y = digits_28(seed)
    torch.manual_seed(seed)
    model = ZOO["lenet"].build()
    return train_classifier(model, x, y, epochs, 2e-3, seed), x, y


def train_classifier(net, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int):
    """Adam on cross-entropy over all but the last HELD_OUT samples, batches of 64 in a seeded order; → net.eval()."""
    import torch
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x[:-HELD_OUT]), torch.from_numpy(y[:-HELD_OUT])
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def export_onnx(module, example: np.ndarray, path: Path, input_name: str = "image", output_name: str = "logits") -> Path:
    """torch.onnx.export (dynamo) with the module path of each node recorded as edgekit.module, as edgekit does."""
    import contextlib
    import io
    import warnings

    import onnx
    import torch
    from edgekit.onnx_io import module_path_of
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (torch.from_numpy(example),), dynamo=True, input_names=[input_name],
                                    output_names=[output_name])
    proto = program.model_proto
    for node in proto.graph.node:
        path_ = module_path_of(node)
        if path_:
            node.metadata_props.add(key="edgekit.module", value=path_)
    onnx.save(proto, str(path))
    return path
