"""Einsum equations that are matrix products: FULLY_CONNECTED for a constant right operand without batch
letters, else one BATCH_MATMUL whose adjX/adjY flags absorb a transposed operand; TRANSPOSE and RESHAPE only
where the letters' order or grouping leaves no other way.

Letters fall in four roles: batch (both operands and the output), contracted (both operands, not the
output), free of A and free of B (one operand and the output). Other equations (a letter summed within one
operand, a repeated letter, more than two operands) are unsupported, with the equation in the reason.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.ir import DYNAMIC
from edgekit.converters.tflite.registry import Unsupported, lowering
from edgekit.converters.tflite.tfl import dims_for_reshape

HINT = "Rewrite it with MatMul/Transpose in the model, or export without einsum."


def parse_equation(equation: str, ranks: list) -> tuple:
    """(operand letter strings, output letters) with any '...' spelled out as upper-case letters."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if not arrow:
        raise Unsupported(f"equation {equation!r} has no explicit output ('->')", hint=HINT)
    if len(terms) != len(ranks):
        raise Unsupported(f"equation {equation!r} names {len(terms)} operands for {len(ranks)} inputs")
    ellipsis = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    fill = "".join(chr(ord("Z") - i) for i in range(ellipsis))  # right-aligned, like numpy's broadcasting
    spelled = [t.replace("...", fill[ellipsis - (r - len(t.replace("...", ""))):]) for t, r in zip(terms, ranks)]
    return spelled, out.replace("...", fill)


@lowering("Einsum", since=12, emits=("BATCH_MATMUL", "FULLY_CONNECTED", "TRANSPOSE", "RESHAPE"))
def einsum(b, *operands, equation):
    y = b.outputs[0]
    if len(operands) != 2:
        raise Unsupported(f"equation {equation!r} has {len(operands)} operand(s); only products of two are supported",
                          hint=HINT)
    a, w = operands
    (ta, tw), out = parse_equation(equation, [a.rank, w.rank])
    batch, contract, free_a, free_w = _roles(equation, ta, tw, out)
    sizes = {**dict(zip(tw, w.shape)), **dict(zip(ta, a.shape)), **dict(zip(out, y.shape))}
    for group in (contract, free_a, free_w):
        if len(group) > 1 and any(sizes[c] == DYNAMIC for c in group):
            raise Unsupported(f"equation {equation!r}: a run-time size among the merged letters {group}",
                              hint="Fix the shapes with --input-shape.")
    if w.is_const and not batch:  # a dense layer: the weight matrix is laid out at compile time
        lhs = _arranged(b, a, ta, free_a + contract, [[c] for c in free_a] + [contract], sizes, "lhs")
        weight = np.transpose(w.const, [tw.index(c) for c in free_w + contract])
        weight = weight.reshape(_size(free_w, sizes), _size(contract, sizes)).astype(np.float32)
        _emit_then_restore(b, "FULLY_CONNECTED", [lhs, b.const(weight, hint="weight"), None],
                           [sizes[c] for c in free_a] + [weight.shape[0]], free_a + free_w, out, sizes, y,
                           keepNumDims=True)
        return
    lhs, adj_x = _operand(b, a, ta, batch, free_a, contract, sizes, "lhs")
    rhs, adj_y = _operand(b, w, tw, batch, contract, free_w, sizes, "rhs")
    shape = [sizes[c] for c in batch] + [_size(free_a, sizes), _size(free_w, sizes)]
    _emit_then_restore(b, "BATCH_MATMUL", [lhs, rhs], shape, batch + free_a + free_w, out, sizes, y,
                       adjX=adj_x, adjY=adj_y)


def _roles(equation: str, ta: str, tw: str, out: str) -> tuple:
    """(batch, contracted, free of A, free of B) letters, in the order they appear."""
    for term in (ta, tw, out):
        if len(set(term)) != len(term):
            raise Unsupported(f"equation {equation!r} repeats a letter in one term (a diagonal)", hint=HINT)
    summed = sorted((set(ta) ^ set(tw)) - set(out))
    if summed or not set(out) <= set(ta) | set(tw):
        raise Unsupported(f"equation {equation!r} sums letter(s) {summed} within one operand", hint=HINT)
    contract = [c for c in ta if c in tw and c not in out]
    if not contract:
        raise Unsupported(f"equation {equation!r} contracts no letter (an outer product)", hint=HINT)
    batch = [c for c in out if c in ta and c in tw]
    return batch, contract, [c for c in ta if c in out and c not in tw], [c for c in tw if c in out and c not in ta]


def _operand(b, value, term, batch, rows, cols, sizes, hint) -> tuple:
    """(tensor, adjoint): the operand as [batch..., rows, cols], or as [batch..., cols, rows] with the flag set."""
    letters = list(term)
    if letters == batch + cols + rows and letters != batch + rows + cols:
        return _arranged(b, value, term, letters, [[c] for c in batch] + [cols, rows], sizes, hint), True
    return _arranged(b, value, term, batch + rows + cols, [[c] for c in batch] + [rows, cols], sizes, hint), False


def _arranged(b, value, term, order, groups, sizes, hint) -> str:
    """`value` transposed to the letter `order` (only if it differs) and reshaped so each group is one
    dimension (only if that changes the shape)."""
    name = b.t(value)
    perm = [term.index(c) for c in order]
    if perm != list(range(len(perm))):
        moved = b.temp([value.shape[p] for p in perm], hint=f"{hint}_transposed")
        b.emit("TRANSPOSE", [name, b.ints(perm, "perm")], [moved])
        name = moved
    shape = [_size(g, sizes) for g in groups]
    if shape != b.shape_of(name):
        grouped = b.temp(shape, hint=f"{hint}_grouped")
        b.emit("RESHAPE", [name, b.ints(dims_for_reshape(shape))], [grouped])
        name = grouped
    return name


def _emit_then_restore(b, code, inputs, shape, natural, out, sizes, y, **options) -> None:
    """Emit the product, then split merged groups back into letters (RESHAPE) and order them as the output
    (TRANSPOSE); the last op writes the node's output."""
    steps = []
    letters_shape = [sizes[c] for c in natural]
    if shape != letters_shape:
        steps.append(("RESHAPE", letters_shape))
    if natural != out:
        steps.append(("TRANSPOSE", [sizes[c] for c in out]))
    dest = b.out(y) if not steps else b.temp(shape, hint="product")
    b.emit(code, inputs, [dest], **options)
    for i, (step, step_shape) in enumerate(steps):
        src, dest = dest, b.out(y) if i == len(steps) - 1 else b.temp(step_shape, hint="ungrouped")
        operand = b.ints(dims_for_reshape(step_shape)) if step == "RESHAPE" else \
            b.ints([natural.index(c) for c in out], "perm")
        b.emit(step, [src, operand], [dest])


def _size(letters, sizes) -> int:
    if len(letters) == 1:
        return sizes[letters[0]]
    return int(np.prod([sizes[c] for c in letters], dtype=np.int64)) if letters else 1
