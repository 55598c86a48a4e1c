"""Why a pass left a match alone (onnxscript's `MatchResult.fail(reason)`): a fusion that does not fire is a slower
model that otherwise says nothing, so each reason reaches the conversion notes (Compiled.quantization["notes"],
printed by `edgekit convert`).

A pass calls `decline` where it has recognised its pattern's anchor (an activation after a fusable op, a
BatchNormalization after a Conv, a GELU's Erf/Tanh, a LayerNorm's mean subtraction) and then finds a reason not
to rewrite; a node that is simply not the pattern is not a decline.
"""
from __future__ import annotations


def decline(graph, rewrite: str, where: str, reason: str) -> None:
    """Record once on `graph` (IR Graph or TflGraph) that `rewrite` was not applied at `where`, and why."""
    note = f"{rewrite} not applied at {where}: {reason}"
    if note not in graph.declined:  # passes that rescan after each rewrite meet the same match again
        graph.declined.append(note)
