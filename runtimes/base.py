"""The small interface every backend implements: describe I/O, run numpy arrays, close."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgekit.errors import EdgekitError, InvalidModelError, UsageError


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: np.dtype
    shape: tuple  # ints for static dims, str labels (or None) for dynamic ones
    layout: str | None = None  # e.g. "NCHW" / "NHWC" when known
    quantization: dict | None = None  # {"scale": [...], "zero_point": [...]} for quantized tensors

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)

    def describe(self) -> dict:
        return {"name": self.name, "dtype": np.dtype(self.dtype).name,
                "shape": [d if isinstance(d, int) else (d or "?") for d in self.shape], "layout": self.layout}


@dataclass
class Session:
    """A loaded model. Subclasses implement `_prepare` (validated feeds → backend form) and `_run_prepared`."""

    path: str
    runtime: str
    provider: str
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    threads: int | None = None
    metadata: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- public API
    def run(self, feeds: Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run once; feeds by name (dict), by position (list) or a single array; returns outputs by name."""
        return self.run_prepared(self.prepare(feeds))

    def prepare(self, feeds) -> Any:
        """Check feeds against the declared inputs once, so timing loops pay no checking cost."""
        return self._prepare(self._as_dict(feeds))

    def run_prepared(self, prepared: Any) -> dict[str, np.ndarray]:
        try:
            return self._run_prepared(prepared)
        except EdgekitError:
            raise
        except Exception as exc:  # ORT's Fail/InvalidArgument/... derive from Exception only; LiteRT raises RuntimeError
            raise InvalidModelError(
                f"{self.runtime} failed while running '{self.path}': {str(exc).strip().splitlines()[0][:400]}",
                hint="The model loads but cannot compute on these inputs; check it with `edgekit inspect` "
                     "and re-export or re-convert it.") from exc

    def runner(self, prepared: Any) -> Callable[[], Any]:
        """A zero-argument callable doing exactly the runtime's own run call on `prepared` feeds.

        Timing loops call this, so they measure the runtime, not edgekit: for ONNX Runtime it is `sess.run`,
        for LiteRT `set_tensor` + `invoke` + `get_tensor`. Its return value is the backend's raw output.
        """
        return functools.partial(self._run_prepared, prepared)

    def describe(self) -> dict:
        """Runtime, provider and I/O as plain data (for reports and --json)."""
        return {"path": self.path, "runtime": self.runtime, "provider": self.provider, "threads": self.threads,
                "inputs": [t.describe() for t in self.inputs], "outputs": [t.describe() for t in self.outputs]}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- helpers
    def _as_dict(self, feeds) -> dict[str, np.ndarray]:
        names = [t.name for t in self.inputs]
        if isinstance(feeds, np.ndarray):
            feeds = [feeds]
        if isinstance(feeds, Mapping):
            missing = [n for n in names if n not in feeds]
            extra = [n for n in feeds if n not in names]
            if missing or extra:
                raise UsageError(
                    f"Inputs do not match the model '{self.path}': missing {missing}, unexpected {extra}.",
                    hint=f"The model's inputs are {names}.")
            feeds = {n: feeds[n] for n in names}
        else:
            feeds = list(feeds)
            if len(feeds) != len(names):
                raise UsageError(f"The model '{self.path}' takes {len(names)} input(s) {names}, got {len(feeds)}.",
                                 hint="Pass one array per input, or a dict by name.")
            feeds = dict(zip(names, feeds))
        checked = {}
        for info in self.inputs:
            arr = np.asarray(feeds[info.name])
            if arr.ndim != len(info.shape) or any(
                    isinstance(d, int) and d >= 0 and d != s for d, s in zip(info.shape, arr.shape)):
                raise UsageError(
                    f"Input '{info.name}' has shape {list(arr.shape)}, but the model expects {info.describe()['shape']}.",
                    hint="Reshape the data, or re-export/convert the model with matching shapes.")
            if arr.dtype != info.dtype:
                if np.can_cast(arr.dtype, info.dtype, casting="same_kind"):
                    cast = arr.astype(info.dtype)
                    if arr.dtype.kind in "iu" and not np.array_equal(cast, arr):  # int64 ids -> an int32 input
                        raise UsageError(f"Input '{info.name}' is {arr.dtype} with values its {np.dtype(info.dtype).name}"
                                         f" input cannot hold.", hint="The compiled model takes "
                                         f"{np.dtype(info.dtype).name}: feed values within its range.")
                    arr = cast
                else:
                    raise UsageError(f"Input '{info.name}' has dtype {arr.dtype}, the model expects {np.dtype(info.dtype).name}.",
                                     hint="Convert the data to the expected dtype.")
            checked[info.name] = np.ascontiguousarray(arr)
        return checked

    def _prepare(self, feeds: dict[str, np.ndarray]) -> Any:
        return feeds

    def _run_prepared(self, prepared: Any) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError


class ProviderFallbackWarning(UserWarning):
    """A requested accelerator did not run (part of) the model; the CPU did."""


def warn_fallback(message: str) -> None:
    import warnings
    warnings.warn(message, ProviderFallbackWarning, stacklevel=4)


def json_dict(raw) -> dict:
    """A metadata value that should hold a JSON object (text, or already parsed) → that dict; {} when it is
    missing, not JSON or not an object: metadata from an untrusted file never raises here."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}
