"""Output-comparison metrics shared by export validation, compare, quantize and convert."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class OutputDiff:
    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    scale: float  # max |reference|, so tolerances can be relative to output scale
    cosine: float
    sqnr_db: float
    top1_agreement: float | None = None  # for outputs that look like class scores
    nonfinite: int = 0  # NaN/Inf in the candidate where the reference is finite

    def within(self, atol: float, rtol: float) -> bool:
        """allclose-style: |a-b| <= atol + rtol*|ref|, judged at output scale."""
        return self.nonfinite == 0 and self.max_abs <= atol + rtol * self.scale

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def looks_like_class_scores(ref: np.ndarray) -> bool:
    return ref.ndim == 2 and 2 <= ref.shape[1] <= 100_000 and np.issubdtype(ref.dtype, np.floating)


def diff(name: str, ref: np.ndarray, got: np.ndarray) -> OutputDiff:
    """Compare a candidate output `got` against the reference `ref`."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.shape != got.shape:
        if ref.size == got.size:
            got = got.reshape(ref.shape)
        else:
            raise ValueError(f"output '{name}': shapes differ, reference {ref.shape} vs candidate {got.shape}")
    r = ref.astype(np.float64).ravel()
    g = got.astype(np.float64).ravel()
    finite = np.isfinite(r)
    nonfinite = int(np.sum(finite & ~np.isfinite(g)))
    r_f, g_f = r[finite & np.isfinite(g)], g[finite & np.isfinite(g)]
    err = np.abs(r_f - g_f)
    max_abs = float(err.max()) if err.size else 0.0
    scale = float(np.abs(r_f).max()) if r_f.size else 0.0
    max_rel = float((err / np.maximum(np.abs(r_f), 1e-6 * max(scale, 1e-12))).max()) if err.size else 0.0
    nr, ng = np.linalg.norm(r_f), np.linalg.norm(g_f)
    cosine = float(r_f @ g_f / (nr * ng)) if nr > 0 and ng > 0 else (1.0 if nr == ng else 0.0)
    noise = float(np.sum((r_f - g_f) ** 2))
    signal = float(np.sum(r_f ** 2))
    sqnr = float("inf") if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else float("-inf"))
    top1 = None
    if looks_like_class_scores(ref):
        top1 = float(np.mean(ref.argmax(1) == got.argmax(1)))
    return OutputDiff(name, tuple(ref.shape), max_abs, max_rel, scale, cosine, sqnr, top1, nonfinite)


def merge(diffs: list[OutputDiff]) -> OutputDiff:
    """Combine per-batch diffs of one output into the worst case (top-1 and cosine averaged)."""
    first = diffs[0]
    top1s = [d.top1_agreement for d in diffs if d.top1_agreement is not None]
    return OutputDiff(first.name, first.shape, max(d.max_abs for d in diffs), max(d.max_rel for d in diffs),
                      max(d.scale for d in diffs), float(min(d.cosine for d in diffs)),
                      float(min(d.sqnr_db for d in diffs)), float(np.mean(top1s)) if top1s else None,
                      sum(d.nonfinite for d in diffs))
