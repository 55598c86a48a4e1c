"""LiteRT backend (ai-edge-litert's TFLite interpreter with XNNPACK); tflite-runtime as a fallback."""
from __future__ import annotations

import json
import sys

import numpy as np

from edgekit.errors import EnvironmentProblem, InvalidModelError, UsageError
from edgekit.runtimes.base import Session, TensorInfo, json_dict


LITERT_HINT = 'Install LiteRT with: pip install "edgekit[tflite]" (the package ai-edge-litert).'


def _installed(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def interpreter_class():
    """The Interpreter class of whichever TFLite runtime is installed: LiteRT, else the retired tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError as exc:
        litert_error = exc
    if _installed("ai-edge-litert"):
        raise EnvironmentProblem(f"LiteRT (ai-edge-litert {_installed('ai-edge-litert')}) is installed but fails "
                                 f"to import: {litert_error}.",
                                 hint="Reinstall it: pip install --force-reinstall ai-edge-litert.") from litert_error
    legacy = _installed("tflite-runtime")
    if legacy is None:
        raise EnvironmentProblem("Running .tflite models needs LiteRT (the package 'ai-edge-litert'), "
                                 f"which is not installed ({litert_error}).", hint=LITERT_HINT) from litert_error
    if int(np.__version__.split(".")[0]) >= 2:
        # tflite-runtime wheels are built against numpy 1's ABI; importing them under numpy 2 fails or crashes
        raise EnvironmentProblem(
            f"Only the retired 'tflite-runtime' {legacy} is installed, and it works only with numpy < 2 "
            f"(numpy {np.__version__} is installed).",
            hint=f"{LITERT_HINT} Or keep tflite-runtime and pin numpy: pip install 'numpy<2'.")
    try:
        from tflite_runtime.interpreter import Interpreter
    except Exception as exc:
        raise EnvironmentProblem(f"The installed 'tflite-runtime' {legacy} fails to import: {exc}.",
                                 hint=LITERT_HINT) from exc
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
        if threads is not None and int(threads) < 1:
            raise UsageError(f"The thread count must be at least 1, got {threads}.")
        if not xnnpack:
            resolver = sys.modules[Interpreter.__module__].OpResolverType
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        from edgekit.runtimes.tflite_verify import verify_tflite, verify_tflite_file
        if "model_content" in kwargs:
            verify_tflite(kwargs["model_content"], label)
        else:
            verify_tflite_file(label)
        try:
            interp = Interpreter(**kwargs)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise InvalidModelError(f"LiteRT could not load '{label}': {str(exc).strip().splitlines()[0][:400]}",
                                    hint="Check the file with `edgekit inspect`; re-convert it if it is damaged.") from exc
        meta = _metadata(kwargs.get("model_content") or label)
        layouts, labels = _layouts(meta), json_dict(meta.get("edgekit.dim_labels"))
        self = cls(path=label, runtime="litert", provider="cpu",
                   inputs=[_info(d, layouts, labels) for d in interp.get_input_details()],
                   outputs=[_info(d, layouts, labels) for d in interp.get_output_details()],
                   threads=threads, metadata=meta)
        self._interp = interp
        self._in_idx = [d["index"] for d in interp.get_input_details()]
        self._out = [(o.name, d["index"]) for o, d in zip(self.outputs, interp.get_output_details())]
        self._dynamic = any(-1 in list(d.get("shape_signature", [])) for d in interp.get_input_details())
        self._shapes = {d["index"]: tuple(d["shape"]) for d in interp.get_input_details()}
        self._sized = tuple(self._shapes[i] for i in self._in_idx)  # the input shapes allocated now
        self.options = {"xnnpack": xnnpack, "package": _package_label(Interpreter)}
        return self

    def _prepare(self, feeds):
        return [(idx, feeds[info.name]) for idx, info in zip(self._in_idx, self.inputs)]

    def _size_for(self, prepared, sizes: tuple) -> None:
        """Resize the dynamic inputs to these arrays' shapes and re-allocate, only when they differ from the
        allocated ones (allocation plans every tensor: far dearer than a call at an unchanged size)."""
        if sizes == self._sized:
            return
        interp = self._interp
        for idx, arr in prepared:
            if self._shapes[idx] != arr.shape:
                interp.resize_tensor_input(idx, arr.shape)
                self._shapes[idx] = arr.shape
        interp.allocate_tensors()
        self._sized = sizes

    def _run_prepared(self, prepared):
        interp = self._interp
        if self._dynamic:
            self._size_for(prepared, tuple(arr.shape for _, arr in prepared))
        for idx, arr in prepared:
            interp.set_tensor(idx, arr)
        interp.invoke()
        return {name: interp.get_tensor(idx) for name, idx in self._out}

    def runner(self, prepared):
        interp, outs = self._interp, [idx for _, idx in self._out]
        set_tensor, invoke, get_tensor = interp.set_tensor, interp.invoke, interp.get_tensor
        sizes = tuple(arr.shape for _, arr in prepared) if self._dynamic else None
        if sizes is not None:
            self._size_for(prepared, sizes)  # resize and allocate once, outside the timed calls

        def run_once():
            if sizes is not None and self._sized is not sizes:  # a run at another size came in between
                self._size_for(prepared, sizes)
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


def _package_label(interpreter_cls) -> str:
    dist = "tflite-runtime" if interpreter_cls.__module__.startswith("tflite_runtime") else "ai-edge-litert"
    return f"{dist} {_installed(dist) or ''}".strip()


def _layouts(meta: dict) -> dict:
    return json_dict(meta.get("edgekit.io_layouts"))


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _info(detail: dict, layouts: dict, labels: dict | None = None) -> TensorInfo:
    """A tensor's description; a run-time dim carries its ONNX name (edgekit.dim_labels, by ONNX position) where the
    compiler recorded one, so `--dim tokens=32` sizes a .tflite as it sizes the .onnx (else None)."""
    sig = detail.get("shape_signature")
    dims = sig if sig is not None and len(sig) else detail["shape"]
    named = (labels or {}).get(detail["name"]) or {}
    order = (0, 2, 3, 1) if layouts.get(detail["name"]) == "NHWC" and len(dims) == 4 else range(len(dims))
    shape = tuple(int(d) if d >= 0 else (named.get(str(pos)) or None) for d, pos in zip(dims, order))
    q = detail.get("quantization_parameters") or {}
    quant = None
    if len(q.get("scales", [])):
        quant = {"scale": [float(s) for s in q["scales"]], "zero_point": [int(z) for z in q["zero_points"]]}
    return TensorInfo(detail["name"], np.dtype(detail["dtype"]), shape, layouts.get(detail["name"]), quant)


def _metadata(model: bytes | str) -> dict:
    """edgekit.* metadata, stored by our compiler as a JSON metadata buffer named 'edgekit' in the flatbuffer."""
    if isinstance(model, str):
        try:
            model = _read_bytes(model)
        except OSError:
            return {}
    return read_edgekit_metadata(model)


def read_edgekit_metadata(model_bytes: bytes, *, others: bool = False) -> dict:
    """The flatbuffer's `metadata` entries, parsed with the schema's generated reader (no private interpreter API):
    the keys of the JSON entry our compiler writes ('edgekit'), each other 'edgekit*' entry's text, and with
    others=True every remaining entry as '<N bytes>'. The one TFLite metadata reader (sessions, bundles, inspect);
    an unreadable entry is skipped: metadata informs, and a model LiteRT loads is never refused over it."""
    try:
        from ai_edge_litert import schema_py_generated as fb
        model = fb.Model.GetRootAs(model_bytes, 0)
        count = model.MetadataLength()
    except (ImportError, ValueError, IndexError, AttributeError):
        return {}
    found: dict = {}
    for i in range(count):
        try:
            entry = model.Metadata(i)
            name = (entry.Name() or b"").decode("utf-8", "replace")
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            data = b"" if isinstance(raw, int) else bytes(raw)
            if name == "edgekit":
                value = json.loads(data.decode("utf-8")) if data else {}
                found.update(value if isinstance(value, dict) else {})
            elif name.startswith("edgekit"):
                found[name] = data.decode("utf-8", "replace")
            elif others:
                found[name] = f"<{len(data)} bytes>"
        except (ValueError, IndexError, UnicodeDecodeError, AttributeError):
            continue
    return found
