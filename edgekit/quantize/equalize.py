"""Rescaling channels between layers, exact in float: cross-layer equalization (Nagel et al., "Data-Free
Quantization", 2019) and SmoothQuant (Xiao et al., 2023).

Rewrite, with a per-channel s > 0:  C(path(P(x)))  →  C'(path(P'(x)))  where P' = P / s (the producer's output
channels: weight rows, bias, LayerNorm scale and bias) and C' = C · s (the consumers' matching input channels).
Exact when every op on the path commutes with a positive per-channel scale: Relu, LeakyRelu, MaxPool,
AveragePool, Identity, Dropout, Clip with no upper bound and a lower bound of 0 or none, and Add of a
per-channel constant (scaled with it). Clip(0, 6) (ReLU6) is not positive-homogeneous: its bound is one number
for every channel, so min(x / s, 6) ≠ min(x, 6) / s, and such pairs are declined with that reason rather than
made approximately equal. Every result is also checked against the original on seeded inputs (`check_exact`).

- Equalization picks s from the weights alone: s = sqrt(r1 / r2) with r1 the range of the producer's output
  channel and r2 that of the consumers' input channel, so both become sqrt(r1 · r2) (the paper's optimum for a
  pair); chains are iterated until the scales settle.
- SmoothQuant picks s from the activations the consumer (MatMul/Gemm) reads: s = max|X_j|^α / max|W_j|^(1-α),
  moving an outlier channel's range into the weights, where per-channel weight quantization absorbs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PRODUCERS = ("Conv", "Gemm", "MatMul", "LayerNormalization")
CONSUMERS = ("Conv", "Gemm", "MatMul")
PATH_OPS = ("Relu", "LeakyRelu", "MaxPool", "AveragePool", "Identity", "Dropout", "Clip", "Add")
OUTLIER_RATIO = 8.0  # SmoothQuant only touches inputs whose largest channel range is this many times the median


@dataclass
class Pair:
    producer: object
    path: list
    consumers: list
    axis: int  # channel axis of the activation: 1 (NCHW) or -1

    @property
    def tensor(self) -> str:
        """The activation the consumers read."""
        return (self.path[-1] if self.path else self.producer).output[0]


@dataclass
class Rescaled:
    proto: object
    pairs: list[str] = field(default_factory=list)  # "producer → consumer" of each rescaled pair
    declined: list[str] = field(default_factory=list)  # why other candidate pairs were left alone


def find_pairs(proto, producers=PRODUCERS) -> tuple[list[Pair], list[str]]:
    """Producer → path → consumer(s) chains that can be rescaled exactly, and reasons for the near misses."""
    from onnx import numpy_helper
    graph = proto.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    uses: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            uses.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    pairs, declined = [], []
    for p in graph.node:
        if p.op_type not in producers or _producer_axis(p, inits) is None:
            continue
        if any(len(uses.get(w, [])) > 1 for w in p.input[1:] if w in inits):
            declined.append(f"{p.name}: its weights are shared with another node")
            continue
        path, t = [], p.output[0]
        reason = None
        while True:
            users = uses.get(t, [])
            if t in outputs or not users:
                break
            if len(users) == 1 and users[0].op_type in PATH_OPS:
                u = users[0]
                reason = _path_reason(u, t, inits, _producer_axis(p, inits))
                if reason:
                    break
                path.append(u)
                t = u.output[0]
                continue
            break
        users = uses.get(t, [])
        if reason or not users:
            if reason:
                declined.append(f"{p.name}: {reason}")
            continue
        axis = _producer_axis(p, inits)
        bad = [u for u in users if u.op_type not in CONSUMERS or _consumer_axis(u, inits) != axis
               or u.input[0] != t or any(len(uses.get(w, [])) > 1 for w in u.input[1:2])]
        if bad:
            if all(u.op_type in CONSUMERS or u.op_type in ("Flatten", "Reshape") for u in users):
                declined.append(f"{p.name} → {bad[0].name}: {bad[0].op_type} "
                                + ("spreads channels over features" if bad[0].op_type in ("Flatten", "Reshape")
                                   else "reads the channels on another axis or has non-constant weights"))
            continue
        pairs.append(Pair(p, path, users, axis))
    return pairs, declined


def _producer_axis(node, inits) -> int | None:
    """Channel axis of the producer's output, or None if its output channels cannot be scaled."""
    if node.op_type == "Conv":
        return 1 if _attr(node, "group", 1) == 1 and node.input[1] in inits else None
    if node.op_type == "Gemm":
        return -1 if node.input[1] in inits and _attr(node, "transA", 0) == 0 else None
    if node.op_type == "MatMul":
        return -1 if node.input[1] in inits and inits[node.input[1]].ndim == 2 else None
    if node.op_type == "LayerNormalization":
        ok = _attr(node, "axis", -1) == -1 and node.input[1] in inits and (len(node.input) < 3 or not node.input[2]
                                                                          or node.input[2] in inits)
        return -1 if ok else None
    return None


def _consumer_axis(node, inits) -> int | None:
    if node.op_type == "Conv":
        return 1 if _attr(node, "group", 1) == 1 and node.input[1] in inits else None
    if node.op_type == "Gemm":
        return -1 if node.input[1] in inits and _attr(node, "transA", 0) == 0 else None
    if node.op_type == "MatMul":
        return -1 if node.input[1] in inits and inits[node.input[1]].ndim == 2 else None
    return None


def _path_reason(node, t, inits, axis) -> str | None:
    """Why `node` on the path does not commute with a per-channel positive scale (None if it does)."""
    if node.op_type == "Clip":
        lo = _const(node, 1, inits, "min")
        hi = _const(node, 2, inits, "max")
        if hi is not None and np.isfinite(hi).all():
            return (f"{node.name} clips at {float(np.max(hi)):g}, one bound for every channel: Clip is not "
                    f"positive-homogeneous, so rescaling channels would change the result")
        if lo is not None and np.any(lo != 0):
            return f"{node.name} clips below at {float(np.min(lo)):g} (only 0 commutes with a positive scale)"
    if node.op_type == "Add":
        other = node.input[1] if node.input[0] == t else node.input[0]
        c = inits.get(other)
        if c is None:
            return f"{node.name} adds a computed tensor (a residual), which would need the same scale"
        if c.size > 1 and not _per_channel(c, axis):
            return f"{node.name} adds a constant that is not per-channel"
    return None


def _per_channel(c: np.ndarray, axis: int) -> bool:
    if axis == -1:
        return c.ndim >= 1 and all(d == 1 for d in c.shape[:-1])
    return c.ndim >= 3 and all(d == 1 for i, d in enumerate(c.shape) if i != c.ndim - 3)


def _const(node, index, inits, attr):
    if len(node.input) > index and node.input[index]:
        return inits.get(node.input[index], np.array(np.inf))
    v = _attr(node, attr, None)
    return None if v is None else np.array(v)


def _attr(node, name, default):
    import onnx
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


# ---------------------------------------------------------------- ranges and scaling

def _out_view(node, w: np.ndarray) -> np.ndarray:
    """The producer's weight as (output channel, everything else)."""
    if node.op_type == "Conv":
        return w.reshape(w.shape[0], -1)
    if node.op_type == "Gemm" and _attr(node, "transB", 0):
        return w
    return w.T  # Gemm without transB, MatMul: (K, N)


def _in_view(node, w: np.ndarray) -> np.ndarray:
    """The consumer's weight as (input channel, everything else)."""
    if node.op_type == "Conv":
        return np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)
    if node.op_type == "Gemm" and _attr(node, "transB", 0):
        return w.T
    return w


def consumer_ranges(pair: Pair, inits) -> np.ndarray:
    return np.max([np.abs(_in_view(u, inits[u.input[1]])).max(1) for u in pair.consumers], axis=0)


def apply_scale(proto, pair: Pair, s: np.ndarray) -> None:
    """Divide the producer's output channels by `s` and multiply the consumers' input channels by it (in place)."""
    from onnx import numpy_helper
    tensors = {t.name: t for t in proto.graph.initializer}
    arr = lambda name: numpy_helper.to_array(tensors[name])

    def put(name, value):
        tensors[name].CopyFrom(numpy_helper.from_array(value.astype(arr(name).dtype), name))

    p = pair.producer
    s = s.astype(np.float64)
    if p.op_type == "LayerNormalization":
        targets = [p.input[1]] + ([p.input[2]] if len(p.input) > 2 and p.input[2] else [])
        for name in targets:
            put(name, arr(name) / s)
    else:
        w = arr(p.input[1])
        if p.op_type == "Conv":
            put(p.input[1], w / s.reshape(-1, *[1] * (w.ndim - 1)))
        elif p.op_type == "Gemm" and _attr(p, "transB", 0):
            put(p.input[1], w / s[:, None])
        else:
            put(p.input[1], w / s[None, :])
        if len(p.input) > 2 and p.input[2] in tensors:
            b = arr(p.input[2])
            if b.size == s.size:
                put(p.input[2], b / s.reshape(b.shape))
    for node in pair.path:
        if node.op_type == "Add":
            c_name = next(i for i in node.input if i in tensors)
            c = arr(c_name)
            if c.size > 1:
                put(c_name, c / s.reshape(c.shape))
    for u in pair.consumers:
        w = arr(u.input[1])
        if u.op_type == "Conv":
            put(u.input[1], w * s.reshape(1, -1, *[1] * (w.ndim - 2)))
        elif u.op_type == "Gemm" and _attr(u, "transB", 0):
            put(u.input[1], w * s[None, :])
        else:
            put(u.input[1], w * s[:, None])


def equalize(proto, rounds: int = 20) -> Rescaled:
    """Cross-layer equalization of every exact Conv/Gemm/MatMul pair (a copy of `proto`)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    pairs, declined = find_pairs(model, producers=("Conv", "Gemm", "MatMul"))
    for _ in range(rounds):
        largest = 0.0
        for pair in pairs:
            inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            r1 = np.abs(_out_view(pair.producer, inits[pair.producer.input[1]])).max(1).astype(np.float64)
            r2 = consumer_ranges(pair, inits).astype(np.float64)
            s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-30)), 1.0)
            apply_scale(model, pair, s)
            largest = max(largest, float(np.abs(np.log(s)).max()))
        if largest < 1e-3:
            break
    return Rescaled(model, [f"{p.producer.name} → {', '.join(u.name for u in p.consumers)}" for p in pairs],
                    declined)


def smooth(proto, absmax: dict[str, np.ndarray], alpha: float) -> Rescaled:
    """SmoothQuant on every exact pair whose consumers are MatMul/Gemm and whose input has outlier channels."""
    import onnx
    from onnx import numpy_helper
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    pairs, declined = find_pairs(model)
    done = []
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for pair in pairs:
        if any(u.op_type not in ("MatMul", "Gemm") for u in pair.consumers):
            continue
        x = absmax.get(pair.tensor)
        if x is None or x.size == 0 or np.median(x) <= 0 or x.max() / np.median(x) < OUTLIER_RATIO:
            continue
        w = consumer_ranges(pair, inits).astype(np.float64)
        x = x.astype(np.float64)
        s = np.where((x > 0) & (w > 0), x ** alpha / np.maximum(w, 1e-30) ** (1 - alpha), 1.0)
        s = s / np.exp(np.mean(np.log(s)))  # keep the overall magnitude; only the ratios between channels matter
        apply_scale(model, pair, s)
        done.append(f"{pair.producer.name} → {', '.join(u.name for u in pair.consumers)}")
    return Rescaled(model, done, declined)


def smoothing_inputs(proto) -> list[str]:
    """The activations SmoothQuant could rescale (so their per-channel ranges can be measured once)."""
    pairs, _ = find_pairs(proto)
    return [p.tensor for p in pairs if all(u.op_type in ("MatMul", "Gemm") for u in p.consumers)]


def channel_absmax(values: np.ndarray, axis: int = -1) -> np.ndarray:
    v = np.moveaxis(np.abs(values), axis, 0)
    return v.reshape(v.shape[0], -1).max(1)


def check_exact(original, rescaled, atol: float = 1e-4, rtol: float = 1e-3) -> str | None:
    """None if `rescaled` computes what `original` does on seeded inputs, else what differs."""
    from edgekit.optimize import check_equivalent
    rows = check_equivalent(original, rescaled, atol=atol, rtol=rtol, seeds=(0, 1))
    bad = [r for r in rows if not r["ok"]]
    if bad:
        r = bad[0]
        return (f"output '{r['output']}' differs from the original by {r['max_abs']:.3g} (scale {r['scale']:.3g}) "
                f"on seeded inputs")
    return None
