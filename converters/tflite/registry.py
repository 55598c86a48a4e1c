"""The one registry of lowerings, keyed by domain and op type (and the opset a version starts at).

ONNX's own ops live in the domain "" ("ai.onnx" is the same domain); ops that only the compiler's fusion passes
create (`Relayout`, `ChannelShuffle`, ...) live in "edgekit", so they never show up as supported ONNX ops.

A lowering is a function `fn(b, *inputs, **attributes)`: inputs are IR Values (None where an optional
input is omitted), attributes are its keyword-only parameters with the spec's defaults. It declares the
dtypes it handles, the TFLite builtins it may emit, and how it treats layouts:

- "logical": inputs arrive in ONNX layout (the layout pass inserts relayouts where needed);
- "nhwc": the 4-D data input arrives as NHWC and the output is NHWC (convolutions, pooling);
- "any": inputs share one layout, whatever it is; the lowering maps axes through `Value.perm`,
  and `out_perm(node, perm)` (default: the same) gives the output's layout.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable


class Unsupported(Exception):
    """Raised by a lowering (or the checks) for a node it cannot convert; collected, never shown alone."""

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


@dataclass(frozen=True)
class Lowering:
    domain: str
    op_type: str
    since: int
    fn: Callable
    emits: frozenset
    dtypes: tuple
    layout: str
    out_perm: Callable | None
    dynamic_batch: bool
    attributes: dict = field(default_factory=dict)  # name -> default
    max_inputs: int = 0

    def __call__(self, b, node, graph):
        inputs = [graph.value(name) for name in node.inputs]
        return self.fn(b, *inputs, **node.attrs)


REGISTRY: dict[tuple[str, str], list[Lowering]] = {}  # (domain, op type) -> versions, oldest first
INTERNAL = "edgekit"  # the domain of ops the compiler's passes create


def lowering(op_type: str, *, emits=(), since: int = 1, dtypes=("float32",), layout: str = "logical",
             out_perm: Callable | None = None, dynamic_batch: bool = True, domain: str = ""):
    """Register `fn` as the lowering of `op_type` (of `domain`) from opset `since` on."""
    def register(fn):
        params = inspect.signature(fn).parameters.values()
        attrs = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
        positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD][1:]  # drop the builder
        has_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        entry = Lowering(domain, op_type, since, fn, frozenset(emits), tuple(dtypes), layout, out_perm, dynamic_batch,
                         attrs, 10_000 if has_varargs else len(positional))
        versions = REGISTRY.setdefault((domain, op_type), [])
        if any(v.since == since for v in versions):
            raise ValueError(f"{op_type} (since opset {since}) is registered twice")
        versions.append(entry)
        versions.sort(key=lambda v: v.since)
        return fn
    return register


def lookup(op_type: str, opset: int, domain: str = "") -> Lowering | None:
    """The version of `op_type`'s lowering that applies at `opset`."""
    chosen = None
    for entry in versions_of(op_type, domain):
        if entry.since <= opset:
            chosen = entry
    return chosen


def versions_of(op_type: str, domain: str = "") -> list[Lowering]:
    return REGISTRY.get(("" if domain == "ai.onnx" else domain, op_type), [])


def load_all() -> dict:
    """Import every op-family module so its decorators run; returns the registry."""
    from edgekit.converters.tflite import lowerings  # noqa: F401 - imports the families
    return REGISTRY


def onnx_ops() -> dict[str, list[Lowering]]:
    """ONNX op type -> its lowerings, for ONNX's own domain only (what users can put in a model)."""
    return {op: versions for (domain, op), versions in sorted(load_all().items()) if domain == ""}
