"""The option groups of `edgekit.quantize.quantize`: what the quantized numbers look like (`Scheme`), the data
they are calibrated on (`Calibration`), what the result must keep (`AccuracyGate`), the accuracy techniques tried
(`Techniques`) and what a slower model means (`SpeedPolicy`).

Each group is frozen and checks its own values when made, so a bad value fails where it was written, with the
message `edgekit quantize` gives for the same flag. `from_flat` maps the keyword form quantize() had before the
groups (26 flat keywords) onto them, for one release.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from edgekit.errors import UsageError

MODES = ("static", "dynamic", "fp16")
FORMATS = ("qdq", "qoperator")
METHODS = ("minmax", "entropy", "percentile")
SPEED = ("search", "check", "off")
TYPES = ("auto", "int8", "uint8")

__all__ = ["Scheme", "Calibration", "AccuracyGate", "Techniques", "SpeedPolicy", "check_mode", "from_flat",
           "MODES", "FORMATS", "METHODS", "SPEED"]


def _refuse(problems: list[str]) -> None:
    if problems:
        raise UsageError("Invalid option value(s): " + "; ".join(problems) + ".")


def check_mode(mode: str) -> None:
    """The quantization mode stays a plain keyword (it decides which other groups matter), checked here."""
    _refuse([] if mode in MODES else [f"--mode '{mode}' (choose {', '.join(MODES)})"])


@dataclass(frozen=True)
class Scheme:
    """How the quantized model stores its numbers (static and dynamic modes): QDQ or QOperator graphs, per-channel
    weight scales, the integer types ('auto': chosen for this CPU's int8 instructions) and 7-bit weights
    (None: chosen for this CPU)."""
    fmt: str = "qdq"
    per_channel: bool = True
    activation_type: str = "auto"
    weight_type: str = "auto"
    reduce_range: bool | None = None

    def __post_init__(self):
        problems = [] if self.fmt in FORMATS else [f"--format '{self.fmt}' (choose {', '.join(FORMATS)})"]
        for flag, v in (("--activation-type", self.activation_type), ("--weight-type", self.weight_type)):
            if v not in TYPES:
                problems.append(f"{flag} '{v}' (choose {', '.join(TYPES)})")
        _refuse(problems)


@dataclass(frozen=True)
class Calibration:
    """The data static INT8 takes its ranges from: an .npz, a folder of .npy files or images (read with
    `preprocess`, the processing-spec syntax), or 'random'; the range method; the batch for dynamic-batch models."""
    data: str | None = None
    preprocess: str | None = None
    method: str = "minmax"
    batch_size: int = 8

    def __post_init__(self):
        _refuse([] if self.method in METHODS else
                [f"--calibrate-method '{self.method}' (choose {', '.join(METHODS)})"])


@dataclass(frozen=True)
class AccuracyGate:
    """What the quantized model is measured on and must keep: evaluation data (default: the last `eval_fraction`
    of the calibration data, at most `max_eval` rows), the budget `max_drop` met by keeping at most
    `max_float_layers` layers in float (None: report only), and the per-layer blame (`blame`: always; else when
    the budget is missed) with its `blame_top` worst layers tried in float."""
    eval_data: str | None = None
    eval_fraction: float = 0.2
    max_eval: int = 500
    max_drop: float | None = None
    max_float_layers: int = 8
    blame: bool = False
    blame_top: int = 5

    def __post_init__(self):
        problems = []
        if self.max_drop is not None and not (0 <= self.max_drop < 1):
            problems.append(f"--max-drop {self.max_drop} (a fraction in [0, 1): 0.01 is one point)")
        if not (0 < self.eval_fraction < 1):
            problems.append(f"--eval-fraction {self.eval_fraction} (between 0 and 1)")
        _refuse(problems)


@dataclass(frozen=True)
class Techniques:
    """Static mode's accuracy techniques: True runs it (bias correction and SmoothQuant's strength still kept only
    where they improve the metric), False never, None only when `max_drop` is given and not met, before any tensor
    is kept in float. Bias correction is a QDQ technique: QOperator never runs it."""
    equalize: bool | None = None
    smoothquant: bool | None = None
    bias_correction: bool | None = None


@dataclass(frozen=True)
class SpeedPolicy:
    """The speed check against the float model: 'search' also keeps layer types in float that quantizing made
    slower, 'check' only compares, 'off' skips it; a model slower than float is refused unless `allow_slower`.
    `threads` is the benchmark's (and evaluation's) thread count, None: the runtime's."""
    mode: str = "search"
    allow_slower: bool = False
    threads: int | None = None

    def __post_init__(self):
        _refuse([] if self.mode in SPEED else [f"--speed '{self.mode}' (choose {', '.join(SPEED)})"])


# The flat keywords quantize() took before the groups, as (group, field). Kept for one release so scripts written
# against it keep working; this table and from_flat() are the only place that knows them.
_FLAT = {"fmt": (Scheme, "fmt"), "per_channel": (Scheme, "per_channel"),
         "activation_type": (Scheme, "activation_type"), "weight_type": (Scheme, "weight_type"),
         "reduce_range": (Scheme, "reduce_range"),
         "calib": (Calibration, "data"), "preprocess": (Calibration, "preprocess"),
         "calibrate_method": (Calibration, "method"), "batch_size": (Calibration, "batch_size"),
         **{k: (AccuracyGate, k) for k in ("eval_data", "eval_fraction", "max_eval", "max_drop", "max_float_layers",
                                           "blame", "blame_top")},
         **{k: (Techniques, k) for k in ("equalize", "smoothquant", "bias_correction")},
         "speed": (SpeedPolicy, "mode"), "allow_slower": (SpeedPolicy, "allow_slower"),
         "threads": (SpeedPolicy, "threads")}


def from_flat(groups: dict[type, object | None], flat: dict) -> dict[type, object]:
    """→ every group, made from the old flat keywords in `flat` where the group itself was not given (None).

    A flat keyword for a group that was also given is ambiguous and refused, like an unknown keyword."""
    if isinstance(groups.get(SpeedPolicy), str):  # the old `speed="off"`: the keyword the SpeedPolicy group took
        flat, groups = {**flat, "speed": groups[SpeedPolicy]}, {**groups, SpeedPolicy: None}
    for cls, given in groups.items():
        if given is not None and not isinstance(given, cls):
            raise TypeError(f"quantize() takes a {cls.__name__} for its {cls.__name__} group, not {given!r}")
    unknown = sorted(set(flat) - set(_FLAT))
    if unknown:
        raise TypeError(f"quantize() got an unexpected keyword argument '{unknown[0]}'")
    values: dict[type, dict] = {cls: {} for cls in groups}
    for key, v in flat.items():
        cls, name = _FLAT[key]
        if groups[cls] is not None:
            raise TypeError(f"quantize() got both {cls.__name__.lower()}= and its old keyword '{key}'")
        values[cls][name] = v
    if flat:
        warnings.warn("quantize()'s flat keywords (" + ", ".join(sorted(flat)) + ") are deprecated: pass the "
                      "groups Scheme, Calibration, AccuracyGate, Techniques and SpeedPolicy instead.",
                      DeprecationWarning, stacklevel=3)
    return {cls: given if given is not None else cls(**values[cls]) for cls, given in groups.items()}
