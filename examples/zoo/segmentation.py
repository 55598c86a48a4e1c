"""A small U-Net-style segmenter for the synthetic shapes (edgekit.zoo.detection's generator, with its masks).

Encoder 64 → 32 → 16 pixels (strided convs), decoder back up with nearest Upsample and skip concatenations, a 1x1
conv to per-pixel logits [1, 1 + classes, 64, 64] (class 0 is background, k + 1 the shape class k). Trains in seconds
with cross-entropy; the app turns the logits into a class mask with `model.segment()` (edgekit.segmentation).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgekit.zoo.detection import SHAPES, SIZE, conv, shapes_dataset, to_input

__all__ = ["TinyUNet", "tiny_unet", "train", "shapes_masks", "to_input"]


class TinyUNet(nn.Module):
    def __init__(self, num_classes: int = 1 + len(SHAPES)):
        super().__init__()
        self.enc1 = conv(3, 8)                                    # 64x64
        self.enc2 = conv(8, 16, 2)                                # 32x32
        self.enc3 = nn.Sequential(conv(16, 32, 2), conv(32, 32))  # 16x16
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec2 = conv(32 + 16, 16)
        self.dec1 = conv(16 + 8, 8)
        self.classify = nn.Conv2d(8, num_classes, 1)

    def forward(self, image):
        e1 = self.enc1(image)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([self.up(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up(d2), e1], 1))
        return self.classify(d1)


def tiny_unet() -> nn.Module:
    torch.manual_seed(0)
    return TinyUNet().eval()


def shapes_masks(count: int, seed: int = 0, size: int = SIZE):
    """Images [count, size, size, 3] uint8 and their class masks [count, size, size] uint8 (0 = background)."""
    images, labels = shapes_dataset(count, seed=seed, size=size)
    return images, np.stack([lab["mask"] for lab in labels])


def train(model: TinyUNet, images, masks, steps: int = 120, batch: int = 16, lr: float = 2e-2, seed: int = 0):
    """Adam on per-pixel cross-entropy, one-cycle learning rate."""
    torch.manual_seed(seed)
    x_all = to_input(images)
    y_all = torch.from_numpy(np.asarray(masks, np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        loss = nn.functional.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()
