"""The compiler's small IR: ONNX-level nodes over typed values, plus the physical layout of each value.

A `Value` keeps its ONNX (logical) shape; `perm` says how it is laid out in memory once lowered:
physical = numpy.transpose(logical, perm). `None` means "as in ONNX". Quantization parameters ride
along on values (`quant`) so INT8 lowering can slot in later without changing the IR.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

NHWC = (0, 2, 3, 1)  # logical NCHW -> physical NHWC
DYNAMIC = -1  # a dimension only known at run time (the batch, a token count, an image size; see check.DYNAMIC_OK)


def normalize_perm(perm) -> tuple | None:
    """Identity permutations are stored as None so equality tests stay simple."""
    if perm is None:
        return None
    perm = tuple(int(p) for p in perm)
    return None if perm == tuple(range(len(perm))) else perm


def permute(seq, perm) -> list:
    return list(seq) if perm is None else [seq[p] for p in perm]


@dataclass
class Value:
    name: str
    dtype: np.dtype
    shape: tuple | None  # logical ONNX shape; DYNAMIC for a run-time dim; None if unknown
    const: np.ndarray | None = None
    perm: tuple | None = None
    quant: dict | None = None  # {"scale": [...], "zero_point": [...], "axis": int} (see quantization.py)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def phys_shape(self) -> list:
        return permute(self.shape, self.perm)

    @property
    def is_dynamic(self) -> bool:
        return self.shape is not None and DYNAMIC in self.shape


@dataclass
class Node:
    op_type: str
    name: str
    inputs: list  # value names; '' for an omitted optional input
    outputs: list
    attrs: dict = field(default_factory=dict)
    domain: str = ""
    module: str = ""  # the PyTorch module path it came from (ONNX metadata_props 'edgekit.module'), if known


@dataclass
class Graph:
    values: dict  # name -> Value
    nodes: list
    inputs: list  # graph input names
    outputs: list
    opset: int
    name: str = "main"
    io_layouts: dict = field(default_factory=dict)  # graph input/output name -> "NHWC" where not ONNX layout
    quantization: dict = field(default_factory=dict)  # mode, notes, float islands, int8 I/O parameters
    dynamic_dims: dict = field(default_factory=dict)  # graph input -> {dim: label} of its run-time non-batch dims
    declined: list = field(default_factory=list)  # rewrites a pass matched but did not make, with why (passes._declined)

    def value(self, name: str) -> Value | None:
        return self.values.get(name) if name else None

    def producers(self) -> dict:
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict:
        users: dict = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def sole_consumer(self, name: str, consumers: dict | None = None) -> Node | None:
        """The one node reading `name`, or None if it has several readers or is a graph output."""
        users = (consumers if consumers is not None else self.consumers()).get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def fresh_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.values:
            name, i = f"{base}_{i}", i + 1
        return name

    def add_value(self, value: Value) -> Value:
        value.name = self.fresh_name(value.name)
        self.values[value.name] = value
        return value

    def remove_nodes(self, dead: Iterable[Node]) -> None:
        dead_ids = {id(n) for n in dead}
        self.nodes = [n for n in self.nodes if id(n) not in dead_ids]

    def prune(self) -> None:
        """Drop nodes whose outputs nobody reads, and values nothing refers to."""
        live = set(self.outputs)
        kept = []
        for node in reversed(self.nodes):
            if any(o in live for o in node.outputs):
                kept.append(node)
                live.update(i for i in node.inputs if i)
        self.nodes = kept[::-1]
        used = live | set(self.inputs) | {o for n in self.nodes for o in n.outputs}
        self.values = {k: v for k, v in self.values.items() if k in used}

    def op_histogram(self) -> dict:
        hist: dict = {}
        for node in self.nodes:
            hist[node.op_type] = hist.get(node.op_type, 0) + 1
        return hist
