"""Synthetic 3-axis accelerometer data (in g, 50 Hz) for four activities; numpy only, seeded.

still: gravity and sensor noise; walking: ~2 Hz sway; running: ~3 Hz strong bounce; shaking: ~7 Hz on all axes.
"""
from __future__ import annotations

import numpy as np

RATE_HZ = 50
ACTIVITIES = ("still", "walking", "running", "shaking")


def activity_signal(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n readings (n x 3, float32) of one activity, with random frequency, phase, tilt and noise."""
    t = np.arange(n) / RATE_HZ
    tilt = rng.normal(0, 0.1, 3)
    gravity = np.array([tilt[0], tilt[1], 1.0])
    phase = rng.uniform(0, 2 * np.pi, 3)
    if kind == "still":
        motion, noise = np.zeros((n, 3)), 0.02
    elif kind == "walking":
        f = rng.uniform(1.6, 2.3)
        amp = rng.uniform(0.2, 0.35) * np.array([0.8, 0.3, 1.0])
        motion, noise = amp * np.sin(2 * np.pi * f * t[:, None] + phase), 0.04
    elif kind == "running":
        f = rng.uniform(2.6, 3.4)
        amp = rng.uniform(0.8, 1.2) * np.array([0.5, 0.3, 1.0])
        motion, noise = amp * np.sin(2 * np.pi * f * t[:, None] + phase), 0.08
    elif kind == "shaking":
        f = rng.uniform(6.0, 9.0)
        amp = rng.uniform(0.4, 0.8) * np.ones(3)
        motion, noise = amp * np.sin(2 * np.pi * f * t[:, None] + phase), 0.08
    else:
        raise ValueError(f"unknown activity {kind!r}; known: {ACTIVITIES}")
    return (gravity + motion + rng.normal(0, noise, (n, 3))).astype(np.float32)


def training_windows(seed: int, per_class: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent windows (N x window x 3) and their class indices, shuffled."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, kind in enumerate(ACTIVITIES):
        for _ in range(per_class):
            xs.append(activity_signal(kind, window, rng))
            ys.append(label)
    order = rng.permutation(len(xs))
    return np.stack(xs)[order], np.array(ys, dtype=np.int64)[order]


def make_stream(seed: int, segments) -> tuple[np.ndarray, list[dict]]:
    """One continuous recording: segments = [(activity, seconds), ...] → readings (N x 3) and the truth."""
    rng = np.random.default_rng(seed)
    parts, truth, start = [], [], 0
    for kind, seconds in segments:
        n = int(round(seconds * RATE_HZ))
        parts.append(activity_signal(kind, n, rng))
        truth.append({"activity": kind, "start": start, "end": start + n})
        start += n
    return np.concatenate(parts), truth


def write_csv(path, readings: np.ndarray) -> None:
    with open(path, "w") as fh:
        fh.write("ax,ay,az\n")
        for row in readings:
            fh.write(",".join(f"{v:.4f}" for v in row) + "\n")
