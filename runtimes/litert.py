"""LiteRT backend (ai-edge-litert's TFLite interpreter with XNNPACK); tflite-runtime as a fallback."""
from __future__ import annotations

import json

import numpy as np

from edgekit.errors import EnvironmentProblem, InvalidModelError
from edgekit.runtimes.base import Session, TensorInfo


def interpreter_class():
    """The Interpreter class of whichever TFLite runtime is installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # the retired package
    except ImportError as exc:
        raise EnvironmentProblem(
            "Running .tflite models needs LiteRT (the package 'ai-edge-litert'), which is not installed.",
            hint='Install it with: pip install "edgekit[tflite]".') from exc
    except Exception as exc:  # tflite-runtime's numpy-1 ABI fails in odd ways under numpy 2
        raise EnvironmentProblem(
            f"The installed 'tflite-runtime' does not work with numpy {np.__version__} ({exc}); it needs numpy < 2.",
            hint='Install LiteRT instead: pip uninstall -y tflite-runtime && pip install "edgekit[tflite]".') from exc
    return Interpreter


class LiteRtSession(Session):
    @classmethod
    def open(cls, path, threads: int | None = None, xnnpack: bool = True) -> "LiteRtSession":
        Interpreter = interpreter_class()
        kwargs = {"num_threads": int(threads) if threads else None}
        if isinstance(path, (bytes, bytearray)):
            kwargs["model_content"] = bytes(path)
            label = "<bytes>"
        else:
            kwargs["model_path"] = str(path)
            label = str(path)
        if not xnnpack:
            from ai_edge_litert.interpreter import OpResolverType
            kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            interp = Interpreter(**kwargs)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InvalidModelError(f"LiteRT could not load '{label}': {str(exc).strip().splitlines()[0][:400]}",
                                    hint="Check the file with `edgekit inspect`; re-convert it if it is damaged.") from exc
        meta = _metadata(interp)
        layouts = json.loads(meta.get("edgekit.io_layouts", "{}")) if meta.get("edgekit.io_layouts") else {}
        self = cls(path=label, runtime="litert", provider="cpu",
                   inputs=[_info(d, layouts) for d in interp.get_input_details()],
                   outputs=[_info(d, layouts) for d in interp.get_output_details()],
                   threads=threads, metadata=meta)
        self._interp = interp
        self._in_idx = [d["index"] for d in interp.get_input_details()]
        self._out = [(o.name, d["index"]) for o, d in zip(self.outputs, interp.get_output_details())]
        self._dynamic = any(-1 in list(d.get("shape_signature", [])) for d in interp.get_input_details())
        return self

    def _prepare(self, feeds):
        return [(idx, feeds[info.name]) for idx, info in zip(self._in_idx, self.inputs)]

    def _run_prepared(self, prepared):
        interp = self._interp
        if self._dynamic:
            resized = False
            for idx, arr in prepared:
                if list(interp.get_tensor(idx).shape) != list(arr.shape):
                    interp.resize_tensor_input(idx, arr.shape)
                    resized = True
            if resized:
                interp.allocate_tensors()
        for idx, arr in prepared:
            interp.set_tensor(idx, arr)
        interp.invoke()
        return {name: interp.get_tensor(idx) for name, idx in self._out}

    def runner(self, prepared):
        if self._dynamic:
            self._run_prepared(prepared)  # resize and allocate once, outside the timed calls
        interp, outs = self._interp, [idx for _, idx in self._out]
        set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor

        def run_once():
            for idx, arr in prepared:
                set_tensor(idx, arr)
            invoke()
            return [get_tensor(i) for i in outs]
        return run_once

    @property
    def native(self):
        return self._interp

    def close(self) -> None:
        self._interp = None


def _info(detail: dict, layouts: dict) -> TensorInfo:
    sig = detail.get("shape_signature")
    shape = tuple(int(d) if d >= 0 else None for d in (sig if sig is not None and len(sig) else detail["shape"]))
    q = detail.get("quantization_parameters") or {}
    quant = None
    if len(q.get("scales", [])):
        quant = {"scale": [float(s) for s in q["scales"]], "zero_point": [int(z) for z in q["zero_points"]]}
    return TensorInfo(detail["name"], np.dtype(detail["dtype"]), shape, layouts.get(detail["name"]), quant)


def _metadata(interp) -> dict:
    """edgekit.* metadata, stored by our compiler as a JSON metadata buffer named 'edgekit'."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
        raw = interp._interpreter.GetMetadata() if hasattr(interp._interpreter, "GetMetadata") else None
    except Exception:
        raw = None
    if isinstance(raw, dict) and "edgekit" in raw:
        try:
            return json.loads(raw["edgekit"])
        except ValueError:
            return {}
    return {}
