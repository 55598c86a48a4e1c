"""A small YOLO-style anchor-free detector and the synthetic shapes data it trains on in seconds.

The head is the Ultralytics v8 form at toy size: two levels (strides 8 and 16 on a 64x64 image), per anchor point 4
sides x 8 distribution-focal bins decoded with Softmax and a constant projection, grid/stride decode to
(cx, cy, w, h) in pixels, sigmoid class scores; one output [1, 4 + classes, anchors] ("yolo" format, see
edgekit.detection). Shapes: filled rectangles, circles and triangles of random colours on a noisy background.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

SHAPES = ("rectangle", "circle", "triangle")
SIZE = 64
STRIDES = (8, 16)
REG_MAX = 8


def conv(cin, cout, stride=1, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TinyDetector(nn.Module):
    def __init__(self, num_classes: int = len(SHAPES), size: int = SIZE, reg_max: int = REG_MAX):
        super().__init__()
        self.num_classes, self.reg_max = num_classes, reg_max
        self.stem = nn.Sequential(conv(3, 16, 2), conv(16, 32, 2), conv(32, 32, 1))
        self.down8 = conv(32, 48, 2)
        self.down16 = conv(48, 64, 2)
        self.heads = nn.ModuleList(nn.Sequential(conv(c, 48), nn.Conv2d(48, 4 * reg_max + num_classes, 1))
                                   for c in (48, 64))
        points, strides = [], []
        for s in STRIDES:
            n = size // s
            ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            points.append(np.stack([xs.ravel(), ys.ravel()], 1) * s + s / 2)
            strides.append(np.full((n * n, 1), s))
        self.register_buffer("points", torch.tensor(np.concatenate(points).T[None], dtype=torch.float32))  # [1,2,A]
        self.register_buffer("strides", torch.tensor(np.concatenate(strides).T[None], dtype=torch.float32))  # [1,1,A]
        self.register_buffer("proj", torch.arange(reg_max, dtype=torch.float32).view(1, 1, reg_max, 1))

    def raw(self, image):
        """[B, 4 * reg_max + C, A]: box-bin logits and class logits per anchor point."""
        p8 = self.down8(self.stem(image))
        p16 = self.down16(p8)
        return torch.cat([h(p).flatten(2) for h, p in zip(self.heads, (p8, p16))], 2)

    def distances(self, raw):
        """Expected left/top/right/bottom distances in strides, [B, 4, A] (Softmax over bins, projected)."""
        bins = raw[:, :4 * self.reg_max].view(raw.shape[0], 4, self.reg_max, -1)
        return (bins.softmax(2) * self.proj).sum(2)

    def forward(self, image):
        raw = self.raw(image)
        dist = self.distances(raw) * self.strides
        top_left, bottom_right = self.points - dist[:, :2], self.points + dist[:, 2:]
        boxes = torch.cat([(top_left + bottom_right) / 2, bottom_right - top_left], 1)
        return torch.cat([boxes, raw[:, 4 * self.reg_max:].sigmoid()], 1)


def tiny_detector() -> nn.Module:
    torch.manual_seed(0)
    return TinyDetector().eval()


# ------------------------------------------------------------------ data

def shapes_dataset(count: int, seed: int = 0, size: int = SIZE, max_objects: int = 3):
    """`count` RGB images [count, size, size, 3] uint8 and, per image, boxes [n, 4] (xyxy pixels), classes [n] and
    "mask" [size, size] uint8: 0 background, k + 1 where shape class k is painted (a later shape covers an earlier)."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), np.uint8)
    labels = []
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    for i in range(count):
        img = rng.normal(rng.uniform(40, 90), 12, (size, size, 3))
        boxes, classes = [], []
        painted = np.zeros((size, size), np.uint8)
        for _ in range(rng.integers(1, max_objects + 1)):
            w, h = rng.uniform(12, 34, 2)
            x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            box = np.asarray([x1, y1, x1 + w, y1 + h])
            if boxes and max(_iou(box, b) for b in boxes) > 0.2:
                continue
            kind = int(rng.integers(len(SHAPES)))
            if kind == 0:
                mask = (xs >= x1) & (xs < x1 + w) & (ys >= y1) & (ys < y1 + h)
            elif kind == 1:
                mask = ((xs - x1 - w / 2) / (w / 2)) ** 2 + ((ys - y1 - h / 2) / (h / 2)) ** 2 <= 1
            else:  # apex at the top centre, base along the bottom
                t = (ys - y1) / h
                mask = (t >= 0) & (t <= 1) & (np.abs(xs - x1 - w / 2) <= t * w / 2)
            img[mask] = rng.uniform(140, 255, 3)
            painted[mask] = kind + 1
            boxes.append(box)
            classes.append(kind)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
        labels.append({"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "classes": np.asarray(classes, np.int64),
                       "mask": painted})
    return images, labels


def _iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [0, 1] (the processing spec: scale 1/255, layout NCHW, plain resize)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


# ------------------------------------------------------------------ training

def _targets(model: TinyDetector, labels):
    """Center sampling: an anchor point inside a box and within 1.5 strides of its centre learns it."""
    pts = model.points[0].T.numpy()  # [A, 2]
    strides = model.strides[0, 0].numpy()
    n, a = len(labels), pts.shape[0]
    cls = np.zeros((n, model.num_classes, a), np.float32)
    dist = np.zeros((n, 4, a), np.float32)
    pos = np.zeros((n, a), bool)
    for i, lab in enumerate(labels):
        best_area = np.full(a, np.inf)
        for box, c in zip(lab["boxes"], lab["classes"]):
            centre = (box[:2] + box[2:]) / 2
            inside = np.all((pts > box[:2]) & (pts < box[2:]), 1)
            near = np.all(np.abs(pts - centre) <= 1.5 * strides[:, None], 1)
            area = (box[2] - box[0]) * (box[3] - box[1])
            take = inside & near & (area < best_area)
            sides = np.concatenate([pts - box[:2], box[2:] - pts], 1).T / strides  # [4, A]
            dist[i][:, take] = np.clip(sides[:, take], 0, model.reg_max - 1.01)
            cls[i][:, take] = 0
            cls[i][c, take] = 1
            pos[i] |= take
            best_area[take] = area
    return torch.from_numpy(cls), torch.from_numpy(dist), torch.from_numpy(pos)


def train(model: TinyDetector, images, labels, steps: int = 300, batch: int = 32, lr: float = 3e-3, seed: int = 0):
    """Adam on BCE (classes, every anchor) + L1 on the expected distances (anchors that own a box)."""
    torch.manual_seed(seed)
    x_all = to_input(images)
    cls_all, dist_all, pos_all = _targets(model, labels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    model.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        raw = model.raw(x_all[idx])
        cls_loss = nn.functional.binary_cross_entropy_with_logits(raw[:, 4 * model.reg_max:], cls_all[idx],
                                                                  reduction="sum") / max(1, int(pos_all[idx].sum()))
        pos = pos_all[idx]
        dist = model.distances(raw).permute(0, 2, 1)[pos]
        box_loss = (dist - dist_all[idx].permute(0, 2, 1)[pos]).abs().sum(1).mean() if pos.any() else raw.sum() * 0
        loss = cls_loss + box_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()
