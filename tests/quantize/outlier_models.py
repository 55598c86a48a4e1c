"""Digits models with an injected outlier channel, trained in seconds, for the accuracy-technique tests and
benchmarks/bench_quantize_accuracy.py.

Each model is trained normally, then one channel between two layers is scaled up by OUTLIER and the next layer's
matching input weights scaled down by the same factor: the float function is unchanged, but a per-tensor INT8 scale
on that tensor leaves the other channels a handful of levels. Real networks grow such channels (MobileNets,
transformers); here the damage is known exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from digits_models import HELD_OUT, export_onnx, train_classifier  # tests/quantize is on sys.path

OUTLIER = 1000.0


def _digits(seed: int = 0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order], d.target[order].astype(np.int64)


def _train(net, x, y, epochs: int, lr: float, seed: int):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    return train_classifier(net, x, y, epochs, lr, seed)


def _accuracy(net, x, y) -> float:
    import torch
    with torch.no_grad():
        return float((net(torch.from_numpy(x[-HELD_OUT:])).argmax(1).numpy() == y[-HELD_OUT:]).mean())


def _save(net, x, y, root: Path, name: str, input_name: str):
    """→ (onnx path, npz path: 240 training samples to calibrate, then the HELD_OUT ones, float accuracy)."""
    root.mkdir(parents=True, exist_ok=True)
    path = export_onnx(net, x[:1], root / f"{name}.onnx", input_name=input_name)
    data = root / f"{name}.npz"
    np.savez(data, **{input_name: np.concatenate([x[:240], x[-HELD_OUT:]]),
                      "labels": np.concatenate([y[:240], y[-HELD_OUT:]])})
    return path, data, _accuracy(net, x, y)


def outlier_cnn(root: Path, seed: int = 0):
    """conv1 → ReLU → MaxPool → conv2 → ReLU → MaxPool → fc on 8x8 digits; conv1's output channel 0 ×OUTLIER and
    conv2's matching input weights ×1/OUTLIER (ReLU and max pooling commute with a positive scale)."""
    import torch
    from torch import nn

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.act1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.act2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(2)
            self.fc = nn.Linear(16 * 2 * 2, 10)

        def forward(self, x):
            x = self.pool1(self.act1(self.conv1(x)))
            x = self.pool2(self.act2(self.conv2(x)))
            return self.fc(torch.flatten(x, 1))

    x, y = _digits(seed)
    x = x[:, None]
    net = _train(CNN(), x, y, epochs=12, lr=3e-3, seed=seed)
    with torch.no_grad():
        net.conv1.weight[0] *= OUTLIER
        net.conv1.bias[0] *= OUTLIER
        net.conv2.weight[:, 0] /= OUTLIER
    return _save(net, x, y, Path(root), "outlier_cnn", "image")


def outlier_mlp(root: Path, seed: int = 0):
    """fc1 → ReLU → fc2 → ReLU → head on the 64 pixels; fc1's most active output unit ×OUTLIER, fc2's matching input
    ×1/OUTLIER (the most active, so the outlier is not a dead unit that quantizes to zero either way)."""
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 64)
            self.act1 = nn.ReLU()
            self.fc2 = nn.Linear(64, 32)
            self.act2 = nn.ReLU()
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))

    x, y = _digits(seed)
    x = x.reshape(len(x), 64)
    net = _train(MLP(), x, y, epochs=30, lr=3e-3, seed=seed)
    with torch.no_grad():
        unit = int(net.act1(net.fc1(torch.from_numpy(x))).mean(0).argmax())
        net.fc1.weight[unit] *= OUTLIER
        net.fc1.bias[unit] *= OUTLIER
        net.fc2.weight[:, unit] /= OUTLIER
    return _save(net, x, y, Path(root), "outlier_mlp", "x")


def outlier_transformer(root: Path, seed: int = 0):
    """A one-block pre-norm transformer over the 8 rows of a digit (8 tokens of 8 pixels); the FFN's LayerNorm
    output has channel 0 ×OUTLIER (its weight and bias), the FFN's first Linear input ×1/OUTLIER — the activation
    outlier SmoothQuant is for."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, d=32, heads=4):
            super().__init__()
            self.embed = nn.Linear(8, d)
            self.pos = nn.Parameter(torch.zeros(1, 8, d))
            self.norm1 = nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.norm2 = nn.LayerNorm(d)
            self.ff1 = nn.Linear(d, 64)
            self.act = nn.ReLU()
            self.ff2 = nn.Linear(64, d)
            self.head = nn.Linear(d, 10)

        def forward(self, x):
            h = self.embed(x) + self.pos
            n = self.norm1(h)
            h = h + self.attn(n, n, n, need_weights=False)[0]
            h = h + self.ff2(self.act(self.ff1(self.norm2(h))))
            return self.head(h.mean(1))

    x, y = _digits(seed)
    net = _train(Block(), x, y, epochs=25, lr=3e-3, seed=seed)
    with torch.no_grad():
        net.norm2.weight[0] *= OUTLIER
        net.norm2.bias[0] *= OUTLIER
        net.ff1.weight[:, 0] /= OUTLIER
    return _save(net, x, y, Path(root), "outlier_transformer", "rows")


MODELS = {"cnn": outlier_cnn, "mlp": outlier_mlp, "transformer": outlier_transformer}
