"""1-D CNNs common on the edge, in plain PyTorch, for the TFLite compiler's 1-D tests: a keyword-spotting CNN over
MFCC frames and a small dilated TCN with residual adds. Factories take no arguments and seed their weights and
BatchNorm statistics (so folding is exercised)."""
from __future__ import annotations

import torch
from torch import nn


def _randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    return model.eval()


class KeywordSpotter(nn.Module):
    """[1, 40 MFCC, 49 frames] -> 12 keyword logits."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(40, 64, 3, padding=1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, 64, 3, stride=2, padding=1, groups=64), nn.ReLU(),
            nn.Conv1d(64, 64, 1), nn.ReLU(),
            nn.MaxPool1d(2), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.classifier = nn.Linear(64, 12)

    def forward(self, mfcc):
        return self.classifier(self.features(mfcc))


class TemporalBlock(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.conv2(self.relu(self.conv1(x))))


class TCN(nn.Module):
    """[1, 6 IMU channels, 64 samples] -> [1, 16, 64] features (dilations 1, 2, 4)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(6, 16, 1)
        self.blocks = nn.Sequential(*(TemporalBlock(16, d) for d in (1, 2, 4)))

    def forward(self, imu):
        return self.blocks(self.stem(imu))


def keyword_spotter() -> nn.Module:
    torch.manual_seed(0)
    return _randomized(KeywordSpotter())


def tcn() -> nn.Module:
    torch.manual_seed(1)
    return _randomized(TCN())


#: factory -> example input shape
MODELS = {"keyword_spotter": "1x40x49", "tcn": "1x6x64"}
