"""Classification losses over run-time targets: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

The input entry at each target class is picked without a gather: EQUAL(target, class index) marks it, SELECT_V2
keeps it and zeros elsewhere, SUM over the class axis adds one term to zeros (exact, and an -inf elsewhere in the
row cannot turn into NaN as a multiplication by a one-hot would). An ignored target is first replaced by -1, which
marks no class, so it contributes neither loss nor weight. "mean" divides by the summed weights of the targets
kept (their count without weights), as the reference does.
"""
from __future__ import annotations

import numpy as np

from edgekit.converters.tflite.registry import Unsupported, lowering

LOSS_EMITS = ("RESHAPE", "EQUAL", "SELECT_V2", "SUM", "MUL", "NEG", "DIV", "MEAN")
LOG_SOFTMAX_EMITS = ("REDUCE_MAX", "SUB", "EXP", "LOG")


class _Emitter:
    def __init__(self, b):
        self.b = b

    def __call__(self, code, inputs, shape, dtype=np.float32, out=None, **options):
        out = out or self.b.temp(shape, dtype, hint=code.lower())
        self.b.emit(code, list(inputs), [out], **options)
        return out


def _require_classes(x) -> None:
    if x.rank < 2:
        raise Unsupported("the input must have a class axis (rank >= 2)")


def _target_tensor(b, target) -> str:
    if target.is_const:
        return b.ints(target.const, "target")
    if target.dtype != np.int32:
        raise Unsupported(f"the target is {target.dtype.name}; only int32 (or int64 that fits int32) is supported")
    return b.t(target)


def _flat(shape) -> list:
    """[N, C, D]: the spatial axes after the class axis as one, so no kernel sees more than 3 dimensions (LiteRT's
    broadcasting kernels and XNNPACK stop at 6, and the losses take any rank)."""
    return [shape[0], shape[1], int(np.prod(shape[2:], dtype=np.int64))]


def _nll(b, x, log_prob, target, weight, reduction, ignore_index) -> None:
    """The loss from `log_prob` (a [N, C, D] tensor) into the node's first output."""
    if reduction not in ("none", "sum", "mean"):
        raise Unsupported(f"reduction={reduction!r} is not an ONNX value")
    step = _Emitter(b)
    y = b.outputs[0]
    shape = _flat([int(d) for d in x.shape])
    classes, t_shape = shape[1], [shape[0], shape[2]]
    t = _target_tensor(b, target)
    if ignore_index is not None:
        ignored = step("EQUAL", [t, b.ints(np.full([1] * target.rank, ignore_index), "ignore_index")],
                       target.phys_shape, np.bool_)
        t = step("SELECT_V2", [ignored, b.ints(np.full([1] * target.rank, -1), "no_class"), t], target.phys_shape,
                 np.int32)
    t = step("RESHAPE", [t, b.ints([-1, 1, shape[2]], "target_shape")], [shape[0], 1, shape[2]], np.int32)
    hot = step("EQUAL", [t, b.ints(np.arange(classes).reshape(1, classes, 1), "classes")], shape, np.bool_)
    zeros = b.const(np.zeros([1, 1, 1], np.float32), hint="zero")
    class_axis = b.ints([1], "class_axis")
    picked = step("SUM", [step("SELECT_V2", [hot, log_prob, zeros], shape), class_axis], t_shape, keepDims=False)
    weighted = weight is not None or ignore_index is not None
    if weighted:
        if weight is None:
            w = b.const(np.ones([1, classes, 1], np.float32), hint="unit_weight")
        elif weight.is_const:
            w = b.const(np.asarray(weight.const, np.float32).reshape(1, classes, 1), hint="weight")
        else:
            w = step("RESHAPE", [b.t(weight), b.ints([1, classes, 1], "weight_shape")], [1, classes, 1])
        w_of_target = step("SUM", [step("SELECT_V2", [hot, w, zeros], shape), class_axis], t_shape, keepDims=False)
        if weight is not None:
            picked = step("MUL", [picked, w_of_target], t_shape)
    all_axes = b.ints([0, 1], "all_axes")
    if reduction == "none":
        loss = step("NEG", [picked], t_shape)
        step("RESHAPE", [loss, b.ints([-1, *target.shape[1:]], "loss_shape")], target.shape, out=b.out(y))
    elif reduction == "sum":
        step("NEG", [step("SUM", [picked, all_axes], [], keepDims=False)], [], out=b.out(y))
    elif weighted:
        total = step("SUM", [picked, all_axes], [], keepDims=False)
        count = step("SUM", [w_of_target, all_axes], [], keepDims=False)
        step("NEG", [step("DIV", [total, count], [])], [], out=b.out(y))
    else:
        step("NEG", [step("MEAN", [picked, all_axes], [], keepDims=False)], [], out=b.out(y))


def _flat_input(b, x) -> str:
    shape = [int(d) for d in x.shape]
    if len(shape) == 3:
        return b.t(x)
    return _Emitter(b)("RESHAPE", [b.t(x), b.ints([-1, *_flat(shape)[1:]], "flat_shape")], _flat(shape))


@lowering("NegativeLogLikelihoodLoss", since=12, emits=LOSS_EMITS)
def negative_log_likelihood_loss(b, x, target, weight=None, *, ignore_index=None, reduction="mean"):
    _require_classes(x)
    _nll(b, x, _flat_input(b, x), target, weight, reduction, ignore_index)


@lowering("SoftmaxCrossEntropyLoss", since=12, emits=LOSS_EMITS + LOG_SOFTMAX_EMITS)
def softmax_cross_entropy_loss(b, x, target, weight=None, *, ignore_index=None, reduction="mean"):
    """LogSoftmax over the class axis (x - m - LOG(SUM(EXP(x - m))), m the class maximum), then the NLL; the
    optional second output is that log-probability."""
    _require_classes(x)
    step = _Emitter(b)
    shape = _flat([int(d) for d in x.shape])
    reduced = [shape[0], 1, shape[2]]
    class_axis = b.ints([1], "class_axis")
    flat = _flat_input(b, x)
    shifted = step("SUB", [flat, step("REDUCE_MAX", [flat, class_axis], reduced, keepDims=True)], shape)
    log_sum = step("LOG", [step("SUM", [step("EXP", [shifted], shape), class_axis], reduced, keepDims=True)],
                   reduced)
    log_prob_out = b.outputs[1] if len(b.outputs) > 1 and b.outputs[1] is not None else None
    log_prob = step("SUB", [shifted, log_sum], shape,
                    out=b.out(log_prob_out) if log_prob_out is not None and x.rank == 3 else None)
    if log_prob_out is not None and x.rank != 3:
        step("RESHAPE", [log_prob, b.ints([-1, *x.shape[1:]], "log_prob_shape")], x.shape, out=b.out(log_prob_out))
    _nll(b, x, log_prob, target, weight, reduction, ignore_index)
