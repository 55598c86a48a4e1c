"""ONNX Runtime backend (CPU and CUDA execution providers)."""
from __future__ import annotations

import functools

import numpy as np

from edgekit.deps import require
from edgekit.errors import EnvironmentProblem, InvalidModelError, UsageError
from edgekit.runtimes.base import Session, TensorInfo

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}


def _info(arg, layout=None) -> TensorInfo:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        raise UsageError(f"Tensor '{arg.name}' has type {arg.type}, which edgekit cannot feed yet.")
    shape = tuple(d if isinstance(d, int) else d for d in arg.shape)
    return TensorInfo(arg.name, np.dtype(dtype), shape, layout)


class OrtSession(Session):
    @classmethod
    def open(cls, path, provider: str = "auto", threads: int | None = None, optimization: str = "all",
             profile: bool = False, profile_prefix: str | None = None) -> "OrtSession":
        ort = require("onnxruntime", "Running ONNX models")
        available = ort.get_available_providers()
        if provider == "auto":
            wanted = [p for p in (PROVIDERS["cuda"], PROVIDERS["cpu"]) if p in available]
        elif provider in PROVIDERS:
            if PROVIDERS[provider] not in available:
                raise EnvironmentProblem(
                    f"Provider '{provider}' ({PROVIDERS[provider]}) is not available in this onnxruntime "
                    f"(available: {', '.join(available)}).",
                    hint='For CUDA install the GPU build in place of the CPU one: pip uninstall -y onnxruntime && '
                         'pip install "edgekit[gpu]" (needs an NVIDIA GPU with CUDA and cuDNN).')
            wanted = [PROVIDERS[provider]] + ([PROVIDERS["cpu"]] if provider != "cpu" else [])
        else:
            raise UsageError(f"Unknown provider '{provider}'.", hint="Choose auto, cpu or cuda.")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        if optimization not in OPT_LEVELS:
            raise UsageError(f"Unknown graph optimization level '{optimization}'.", hint=f"Choose one of {list(OPT_LEVELS)}.")
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[optimization])
        if profile:
            opts.enable_profiling = True
            if profile_prefix:
                opts.profile_file_prefix = profile_prefix
        source = bytes(path) if isinstance(path, (bytes, bytearray)) else str(path)
        try:
            sess = ort.InferenceSession(source, sess_options=opts, providers=wanted)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise InvalidModelError(f"ONNX Runtime could not load '{path if isinstance(path, str) else '<bytes>'}': "
                                    f"{str(exc).strip().splitlines()[0][:400]}",
                                    hint="Check the file with `edgekit inspect`; re-export it if it is damaged.") from exc
        meta = dict(sess.get_modelmeta().custom_metadata_map)
        layouts = _layouts(meta)
        self = cls(path=str(path) if not isinstance(path, (bytes, bytearray)) else "<bytes>",
                   runtime="onnxruntime", provider=sess.get_providers()[0].replace("ExecutionProvider", "").lower(),
                   inputs=[_info(a, layouts.get(a.name)) for a in sess.get_inputs()],
                   outputs=[_info(a, layouts.get(a.name)) for a in sess.get_outputs()],
                   threads=threads, metadata=meta)
        self._sess = sess
        self._output_names = [o.name for o in self.outputs]
        if provider == "cuda" and sess.get_providers()[0] != PROVIDERS["cuda"]:
            raise EnvironmentProblem("CUDA was requested but ONNX Runtime fell back to the CPU when creating the session.",
                                     hint="Check the CUDA/cuDNN installation matches onnxruntime-gpu.")
        return self

    def _run_prepared(self, prepared):
        values = self._sess.run(self._output_names, prepared)
        return dict(zip(self._output_names, values))

    def runner(self, prepared):
        return functools.partial(self._sess.run, self._output_names, prepared)

    def end_profiling(self) -> str:
        return self._sess.end_profiling()

    @property
    def native(self):
        """The onnxruntime.InferenceSession, for callers that need the runtime's own API."""
        return self._sess

    def close(self) -> None:
        self._sess = None


def _layouts(meta: dict) -> dict:
    import json
    try:
        return json.loads(meta.get("edgekit.io_layouts", "{}"))
    except ValueError:
        return {}
