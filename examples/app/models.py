"""The example app's two PyTorch models (workstation side only: needs torch).

Export specs: examples/app/models.py:digits_cnn and examples/app/models.py:activity_mlp.
"""
from __future__ import annotations

import torch
from torch import nn

WINDOW = 64          # sensor samples per window (1.28 s at 50 Hz)
AXES = 3             # accelerometer x, y, z
ACTIVITIES = ("still", "walking", "running", "shaking")


class DigitsCNN(nn.Module):
    """8x8 grayscale digit (NCHW) → 10 logits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(16 * 4 * 4, 10)

    def forward(self, image):
        return self.classifier(torch.flatten(self.features(image), 1))


class ActivityMLP(nn.Module):
    """A window of 3-axis accelerometer readings (NTC: 1 x 64 x 3) → 4 activity logits."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(WINDOW * AXES, 64), nn.ReLU(), nn.Linear(64, len(ACTIVITIES)))

    def forward(self, window):
        return self.net(window)


def digits_cnn() -> nn.Module:
    return DigitsCNN().eval()


def activity_mlp() -> nn.Module:
    return ActivityMLP().eval()
