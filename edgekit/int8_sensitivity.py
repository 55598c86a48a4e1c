"""How far ONNX Runtime's own QDQ model moves when its inputs move imperceptibly: the INT8 reference's noise floor.

Why: INT8 validation holds LiteRT within 4 output steps of the QDQ model. A deep quantized net can be chaotic: when
its float inputs move by 1e-5 (relative), a few values land on the other side of a rounding boundary at some
re-quantization point, and the ±1-step flips compound through the layers. Measured on random-weight EfficientNet-B0:
the QDQ model moved 9 output steps under that perturbation while the float model moved 0.002 steps, and LiteRT was
10 steps from it. Two int8 implementations that disagree on a handful of roundings cannot agree more closely than
the reference agrees with itself, and no float island fixes that. When INT8 validation fails, convert reports this
number beside the difference so the user can tell a conversion error (differences far above it) from a quantized
model whose output is dominated by rounding (check it against float with real data: `edgekit compare`). The gate
itself does not move.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: relative size of the input perturbation: far below any input's quantization step, far above float32 rounding
PERTURBATION = 1e-5


def reference_sensitivity(onnx_source, input_shapes: dict, steps: dict[str, float], seeds=(0,),
                          threads: int | None = 1) -> dict[str, float]:
    """{output: the largest move of the QDQ model's output, in its quantization steps (`steps`), when every float
    input is multiplied by 1 + PERTURBATION·N(0, 1)} over the validation's seeded inputs; {} when the model has no
    float input to perturb (token ids: there is no imperceptible move of an integer)."""
    from edgekit import runtimes
    from edgekit.inputs import validation_feeds
    data = Path(onnx_source).read_bytes() if not isinstance(onnx_source, bytes) else onnx_source
    moved: dict[str, float] = {}
    with runtimes.load(data, runtime="onnxruntime", threads=threads) as ref:
        if not any(np.issubdtype(np.dtype(i.dtype), np.floating) for i in ref.inputs):
            return {}
        for seed in seeds:
            feeds = validation_feeds(ref.inputs, input_shapes, seed)
            noise = np.random.default_rng([seed, 1])
            nudged = {k: (v * (1 + PERTURBATION * noise.standard_normal(v.shape))).astype(v.dtype)
                      if np.issubdtype(v.dtype, np.floating) else v for k, v in feeds.items()}
            base, other = ref.run(feeds), ref.run(nudged)
            for name, step in steps.items():
                if name in base and step > 0:
                    a, b = np.asarray(base[name], np.float64), np.asarray(other[name], np.float64)
                    finite = np.isfinite(a) & np.isfinite(b)
                    move = float(np.abs(a[finite] - b[finite]).max(initial=0.0)) / step
                    moved[name] = max(moved.get(name, 0.0), move)
    return moved
