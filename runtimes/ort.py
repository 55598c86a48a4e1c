"""ONNX Runtime backend (CPU and CUDA execution providers), with a check of where ORT placed each node."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile

import numpy as np

from edgekit.deps import require
from edgekit.errors import EnvironmentProblem, InvalidModelError, UnsupportedModelError, UsageError
from edgekit.runtimes.base import Session, TensorInfo, warn_fallback

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32, "tensor(uint32)": np.uint32, "tensor(int64)": np.int64, "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
CUDA_INSTALL_HINT = ('Install the GPU build in place of the CPU one: pip uninstall -y onnxruntime && '
                     'pip install "edgekit[gpu]" (onnxruntime-gpu; needs an NVIDIA GPU, its driver, CUDA 12 and cuDNN 9).')
#: ops ORT deliberately keeps on the CPU under CUDA (shape arithmetic); costly ops elsewhere are the real problem
SHAPE_OPS = {"Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Reshape", "ConstantOfShape", "Range",
             "Slice", "Cast", "Mul", "Add", "Sub", "Div", "Equal", "Where", "Expand", "NonZero"}


def short_provider(name: str) -> str:
    """'CUDAExecutionProvider' → 'cuda'."""
    return name.replace("ExecutionProvider", "").lower()


def _info(arg, layout=None, *, is_input: bool) -> TensorInfo:
    dtype = _ORT_TYPES.get(arg.type)
    if dtype is None:
        if is_input:
            raise UnsupportedModelError(f"Input '{arg.name}' has type {arg.type}, which edgekit cannot feed.",
                                        hint=f"edgekit feeds tensors of {sorted(t[7:-1] for t in _ORT_TYPES)}.")
        dtype = object  # sequences/maps/strings come back as Python objects
    shape = tuple(d if isinstance(d, int) else (d or None) for d in (arg.shape or ()))
    return TensorInfo(arg.name, np.dtype(dtype), shape, layout)


def resolve_providers(ort, provider: str) -> list[str]:
    """The provider list to ask ORT for; a missing explicit provider is an EnvironmentProblem with the fix."""
    available = ort.get_available_providers()
    if provider == "auto":
        return [p for p in (PROVIDERS["cuda"], PROVIDERS["cpu"]) if p in available]
    if provider not in PROVIDERS:
        raise UsageError(f"Unknown provider '{provider}'.", hint="Choose auto, cpu or cuda.")
    if PROVIDERS[provider] not in available:
        gpu_pkg = "onnxruntime-gpu" if "GPU" in (ort.get_device() or "") else "onnxruntime (CPU build)"
        raise EnvironmentProblem(
            f"Provider '{provider}' ({PROVIDERS[provider]}) is not available in the installed {gpu_pkg} "
            f"{getattr(ort, '__version__', '')} (available: {', '.join(available)}).", hint=CUDA_INSTALL_HINT)
    return [PROVIDERS[provider]] + ([PROVIDERS["cpu"]] if provider != "cpu" else [])


class OrtSession(Session):
    @classmethod
    def open(cls, path, provider: str = "auto", threads: int | None = None, optimization: str = "all",
             profile: bool = False, profile_prefix: str | None = None) -> "OrtSession":
        ort = require("onnxruntime", "Running ONNX models")
        wanted = resolve_providers(ort, provider)
        if optimization not in OPT_LEVELS:
            raise UsageError(f"Unknown graph optimization level '{optimization}'.", hint=f"Choose one of {list(OPT_LEVELS)}.")
        if threads is not None and int(threads) < 1:
            raise UsageError(f"The thread count must be at least 1, got {threads}.")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[optimization])
        can_record = hasattr(ort.InferenceSession, "get_provider_graph_assignment_info")
        if can_record:
            opts.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        if profile:
            opts.enable_profiling = True
            if profile_prefix:
                opts.profile_file_prefix = profile_prefix
        label = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
        source = bytes(path) if isinstance(path, (bytes, bytearray)) else str(path)
        sess = _create(ort, source, opts, wanted, label)
        try:  # names and metadata are UTF-8 by the ONNX spec; a damaged file may not be
            meta = dict(sess.get_modelmeta().custom_metadata_map)
            layouts = _layouts(meta)
            self = cls(path=label, runtime="onnxruntime", provider=short_provider(sess.get_providers()[0]),
                       inputs=[_info(a, layouts.get(a.name), is_input=True) for a in sess.get_inputs()],
                       outputs=[_info(a, layouts.get(a.name), is_input=False) for a in sess.get_outputs()],
                       threads=threads, metadata=meta)
        except UnicodeDecodeError as exc:
            raise InvalidModelError(f"'{label}' has names or metadata that are not valid UTF-8 ({exc}).",
                                    hint="The file is damaged; re-export it.") from exc
        self._sess = sess
        self._output_names = [o.name for o in self.outputs]
        self.options = {"optimization": optimization, "providers": list(sess.get_providers())}
        if PROVIDERS["cuda"] in wanted:
            if sess.get_providers()[0] != PROVIDERS["cuda"]:
                raise EnvironmentProblem(
                    f"CUDA was requested for '{label}' but ONNX Runtime could not start its CUDA provider and fell "
                    "back to the CPU.", hint="Check that the CUDA and cuDNN versions match the installed "
                                             "onnxruntime-gpu (see its install notes), and that a GPU is visible.")
            placement = (_recorded_placement(sess) if can_record
                         else _logged_placement(ort, source, opts, wanted))
            self.placement = placement
            self._note_cpu_fallback(placement)
        else:
            self.placement = _recorded_placement(sess) if can_record else None
        return self

    def _note_cpu_fallback(self, placement: dict[str, list[tuple[str, str]]]) -> None:
        on_cpu = placement.get("cpu", [])
        if not on_cpu:
            return
        heavy = [f"{name or '(unnamed)'} [{op}]" for op, name in on_cpu if op not in SHAPE_OPS]
        light = len(on_cpu) - len(heavy)
        total = sum(len(v) for v in placement.values())
        if heavy:
            msg = (f"{len(heavy)} of {total} compute node(s) of '{self.path}' run on the CPU, not CUDA: "
                   + ", ".join(heavy[:20]) + (" ..." if len(heavy) > 20 else "")
                   + (f" (plus {light} shape-arithmetic node(s) ORT keeps on the CPU on purpose)" if light else "")
                   + ". Data crosses between GPU and CPU around them; check the op types and dtypes CUDA supports.")
        else:
            msg = (f"{light} shape-arithmetic node(s) of '{self.path}' run on the CPU (ORT does this on purpose); "
                   "every compute node is on CUDA.")
        self.notes.append(msg)
        if heavy:
            warn_fallback(msg)

    def _run_prepared(self, prepared):
        values = self._sess.run(self._output_names, prepared)
        return dict(zip(self._output_names, values))

    def runner(self, prepared):
        return functools.partial(self._sess.run, self._output_names, prepared)

    def end_profiling(self) -> str:
        """Stop ORT's profiler; returns the path of its JSON trace."""
        return self._sess.end_profiling()

    @property
    def native(self):
        """The onnxruntime.InferenceSession, for callers that need the runtime's own API."""
        return self._sess

    def close(self) -> None:
        self._sess = None


def _create(ort, source, opts, providers, label):
    from onnxruntime.capi import onnxruntime_pybind11_state as state
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented/... types
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, getattr(state, "NotImplemented", ())):
            raise UnsupportedModelError(f"ONNX Runtime {ort.__version__} cannot run '{label}': {first}",
                                        hint="An op or type in the model has no kernel in this ORT build; "
                                             "upgrade onnxruntime or re-export with a lower opset.") from exc
        if isinstance(exc, getattr(state, "NoSuchFile", ())):
            raise UsageError(f"ONNX Runtime cannot find '{label}' or a file it refers to: {first}",
                             hint="External data must sit beside the model.") from exc
        raise InvalidModelError(f"ONNX Runtime could not load '{label}': {first}",
                                hint="Check the file with `edgekit inspect`; re-export it if it is damaged.") from exc


def _recorded_placement(sess) -> dict[str, list[tuple[str, str]]]:
    """{provider: [(op_type, node name), ...]} from ORT's graph-assignment record (ORT ≥ 1.23)."""
    placement: dict[str, list[tuple[str, str]]] = {}
    try:
        for sub in sess.get_provider_graph_assignment_info():
            placement.setdefault(short_provider(sub.ep_name), []).extend((n.op_type, n.name) for n in sub.get_nodes())
    except UnicodeDecodeError:  # a node name that is not UTF-8: placement unknown, the model still runs
        return {}
    return placement


_PLACED_ALL = re.compile(r"All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)")
_PLACED_ON = re.compile(r"Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)")
_PLACED_NODE = re.compile(r"VerifyEachNodeIsAssignedToAnEp\]\s{2,}(\S+) \((.*)\)\s*$")


def parse_placement_log(text: str) -> dict[str, list[tuple[str, str]]]:
    """Node placement from ORT's verbose session log (older ORT without the assignment record).

    ORT prints 'All nodes placed on [EP]. Number of nodes: N' or, per EP, 'Node(s) placed on [EP]...' followed by
    one '  OpType (node name)' line per node.
    """
    placement: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        if m := _PLACED_ALL.search(line):
            placement[short_provider(m[1])] = [("?", "")] * int(m[2])
            current = None
        elif m := _PLACED_ON.search(line):
            current = placement.setdefault(short_provider(m[1]), [])
        elif current is not None and (m := _PLACED_NODE.search(line)):
            current.append((m[1], m[2]))
    return placement


def _logged_placement(ort, source, opts, providers) -> dict[str, list[tuple[str, str]]]:
    """Build a throwaway session with verbose logging, capturing ORT's stderr (fd 2) to read its placement log."""
    probe = ort.SessionOptions()
    probe.graph_optimization_level = opts.graph_optimization_level
    probe.log_severity_level = 0
    with tempfile.TemporaryFile() as log:
        with _redirect_fd(2, log.fileno()):
            ort.InferenceSession(source, sess_options=probe, providers=providers)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    return parse_placement_log(text)


@contextlib.contextmanager
def _redirect_fd(fd: int, target: int):
    saved = os.dup(fd)
    try:
        os.dup2(target, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _layouts(meta: dict) -> dict:
    try:
        layouts = json.loads(meta.get("edgekit.io_layouts", "{}"))
    except ValueError:
        return {}
    return layouts if isinstance(layouts, dict) else {}
