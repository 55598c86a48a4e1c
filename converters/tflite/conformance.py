"""ONNX's own backend node tests as the compiler's conformance suite: compile → LiteRT → compare with the
numpy-computed expected outputs.

Each direct node test (`onnx.backend.test.case.node.collect_testcases()`, the `_expanded` function bodies left out)
ends as one of:

- ``pass``: every output has the expected shape and matches (exact for integers and booleans, within
  ``1e-4 × output scale`` for floats, NaN where NaN is expected);
- ``refused``: the compiler raised its collected UnsupportedModelError / UsageError (the reason is kept);
- ``wrong``: it compiled and ran, and a value, shape or dtype is off: the worst outcome there is;
- ``error``: any other exception, in the compiler, the writer or LiteRT;
- ``crash`` / ``hang``: the worker process died or ran past its time limit.

Two forms run: "frozen" turns every graph input but the first into an initializer (how exported models carry weights,
shapes, axes, pads, scales and indices), "untouched" runs the test as ONNX wrote it. Cases run in worker processes
(forked children) so that an abort inside LiteRT is a ``crash`` row, never
the end of the run.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np

FORMS = ("frozen", "untouched")
OUTCOMES = ("pass", "refused", "wrong", "error", "crash", "hang")
FLOAT_RTOL = {"float16": 2e-3}  # of the output scale; 1e-4 for the rest


@dataclass
class Result:
    case: str
    op_type: str
    form: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0


def direct_cases() -> list:
    """The installed onnx package's direct node tests (one node each), in a stable order."""
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return sorted((c for c in cases if "expanded" not in c.name), key=lambda c: c.name)


def op_type_of(case) -> str:
    return case.model.graph.node[-1].op_type


def frozen(model, inputs: list):
    """`model` with every graph input but the first turned into an initializer holding its test value."""
    import onnx
    from onnx import numpy_helper
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph_inputs = list(fixed.graph.input)
    kept = graph_inputs[:1]
    for vi, value in zip(graph_inputs[1:], inputs[1:]):
        if not isinstance(value, np.ndarray):
            return None, None  # sequences and optionals cannot be initializers
        fixed.graph.initializer.append(numpy_helper.from_array(value, vi.name))
    if fixed.ir_version >= 4:  # before IR 4 every initializer must also be listed as a graph input
        del fixed.graph.input[:]
        fixed.graph.input.extend(kept)
    return fixed, inputs[:1]


def run_case(case, form: str) -> Result:
    """Compile one test case in `form` and compare LiteRT's outputs with the expected ones (in this process)."""
    from edgekit.errors import EdgekitError
    start = time.perf_counter()
    op = op_type_of(case)

    def result(outcome, detail=""):
        return Result(case.name, op, form, outcome, detail[:500], round(time.perf_counter() - start, 3))

    model = case.model
    inputs, expected = ([_array(v) for v in values] for values in case.data_sets[0])
    if not all(isinstance(x, np.ndarray) for x in inputs + expected):
        return result("refused", "sequence or optional values: TFLite tensors are plain arrays")
    if form == "frozen":
        model, inputs = frozen(model, list(inputs))
    names = [vi.name for vi in model.graph.input]
    try:
        from edgekit.converters.tflite import compile_onnx
        compiled = compile_onnx(model, source=case.name)
        data = compiled.to_bytes()
    except EdgekitError as exc:
        reason = str(exc).split(":\n", 1)[-1].strip()
        return result("refused", reason)
    except Exception as exc:  # noqa: BLE001 - every other exception is a defect to report
        return result("error", f"compile: {type(exc).__name__}: {exc}")
    try:
        outputs = _run_litert(data, dict(zip(names, inputs)), compiled.metadata)
    except _Refused as exc:
        return result("refused", str(exc))
    except Exception as exc:  # noqa: BLE001
        return result("error", f"LiteRT: {type(exc).__name__}: {exc}")
    out_names = [o.name for o in model.graph.output]
    problems = [p for name, want in zip(out_names, expected) if (p := mismatch(want, outputs.get(name)))]
    if problems and _expected_is_rounded(case, model, dict(zip(names, inputs)), expected, outputs, out_names):
        return result("pass", "matches ONNX Runtime; the test's expected values are rounded (within its own "
                              f"rtol={case.rtol}, atol={case.atol} of ONNX Runtime)")
    return result("wrong", f"{out_names}: " + "; ".join(problems)) if problems else result("pass")


def _expected_is_rounded(case, model, feeds: dict, expected: list, outputs: dict, out_names: list) -> bool:
    """A few tests write expected values to a few decimals: then LiteRT is judged against ONNX Runtime, and only when
    ONNX Runtime itself is within the test's own declared tolerance of those values."""
    try:
        import onnxruntime as ort
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        reference = session.run(out_names, feeds)
    except Exception:  # noqa: BLE001 - no second opinion: the mismatch stands
        return False
    for want, ref, name in zip(expected, reference, out_names):
        if want.dtype.kind != "f" or mismatch(np.asarray(ref, want.dtype), outputs.get(name)):
            return False
        if not np.allclose(ref, want, rtol=case.rtol, atol=case.atol, equal_nan=True):
            return False
    return True


def _array(value):
    """Test values come as arrays, numpy scalars or TensorProtos; sequences and optionals stay as they are."""
    import onnx
    if isinstance(value, onnx.TensorProto):
        from onnx import numpy_helper
        return numpy_helper.to_array(value)
    return np.asarray(value) if isinstance(value, np.generic) else value


class _Refused(Exception):
    """The test's inputs fall outside what the compiled model declares (e.g. int64 values beyond int32)."""


def _run_litert(data: bytes, feeds: dict, metadata: dict) -> dict:
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=data, num_threads=1)
    details = {d["name"]: d for d in interp.get_input_details()}
    cast = {}
    for name, value in feeds.items():
        if name not in details:
            raise _Refused(f"input '{name}' was folded away")
        want = np.dtype(details[name]["dtype"])
        converted = value.astype(want)
        if want != value.dtype and not np.array_equal(converted.astype(value.dtype), value, equal_nan=True):
            raise _Refused(f"input '{name}' is {value.dtype} with values the compiled model's {want} cannot hold")
        cast[name] = converted
        if list(details[name]["shape"]) != list(value.shape):
            interp.resize_tensor_input(details[name]["index"], value.shape)
    interp.allocate_tensors()
    for name, value in cast.items():
        interp.set_tensor(details[name]["index"], value)
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def mismatch(want: np.ndarray, got) -> str:
    """Why `got` is not `want` ('' if it is)."""
    if got is None:
        return "output missing"
    got = np.asarray(got)
    if tuple(got.shape) != tuple(want.shape):
        return f"shape {list(got.shape)} != expected {list(want.shape)}"
    if want.dtype.kind in "biu" or want.dtype == np.bool_:
        if got.dtype.kind not in "biu" and got.dtype != np.bool_:
            return f"dtype {got.dtype} where {want.dtype} is expected"
        bad = got.astype(np.int64) != want.astype(np.int64)
        return f"{int(bad.sum())} of {want.size} values differ (first: got {got[bad][:3]}, want {want[bad][:3]})" \
            if bad.any() else ""
    if want.dtype.kind != "f":
        return f"expected dtype {want.dtype} cannot be compared"
    if got.dtype.kind != "f":
        return f"dtype {got.dtype} where {want.dtype} is expected"
    w, g = want.astype(np.float64), got.astype(np.float64)
    nan_w, nan_g = np.isnan(w), np.isnan(g)
    if (nan_w != nan_g).any():
        return f"NaN at {int((nan_w != nan_g).sum())} positions where the expected has {'none' if not nan_w.any() else 'others'}"
    inf_w = np.isinf(w)
    if (np.isinf(g) != inf_w).any() or (w[inf_w] != g[inf_w]).any():
        return "infinities differ"
    finite = ~(nan_w | inf_w)
    if not finite.any():
        return ""
    err = np.abs(w[finite] - g[finite])
    scale = float(np.abs(w[finite]).max())
    tol = FLOAT_RTOL.get(want.dtype.name, 1e-4) * max(scale, 1e-6)
    return f"max abs error {err.max():.3g} > {tol:.3g} (output scale {scale:.3g})" if err.max() > tol else ""


# -- running many cases, each in a forked child

def run_all(cases: list | None = None, forms=FORMS, timeout: float = 60.0, jobs: int = 1,
            progress=None) -> list[Result]:
    """Run cases (all direct ones by default), each in a forked child process so that an abort or a hang inside
    LiteRT costs one ``crash``/``hang`` row, never the run. `jobs` children run at once."""
    import select
    _preload()
    cases = direct_cases() if cases is None else cases
    todo = [(c, f) for c in cases for f in forms]
    running: dict = {}  # read fd -> (pid, case, form, deadline, chunks)
    results: list[Result] = []
    while todo or running:
        while todo and len(running) < max(1, jobs):
            case, form = todo.pop(0)
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: run one case, write its JSON, leave without cleanup handlers
                os.close(read_fd)
                quiet = os.open(os.devnull, os.O_WRONLY)  # LiteRT's INFO lines; failures travel in the result
                os.dup2(quiet, 1)
                os.dup2(quiet, 2)
                code = 0
                try:
                    row = run_case(case, form)
                    os.write(write_fd, json.dumps(asdict(row)).encode())
                except BaseException:  # noqa: BLE001 - the parent reports the death
                    code = 1
                finally:
                    os._exit(code)
            os.close(write_fd)
            running[read_fd] = (pid, case, form, time.monotonic() + timeout, [])
        ready, _, _ = select.select(list(running), [], [], 0.5)
        now = time.monotonic()
        for fd in list(running):
            pid, case, form, deadline, chunks = running[fd]
            if fd in ready:
                chunk = os.read(fd, 1 << 16)
                if chunk:
                    chunks.append(chunk)
                    continue
                _, status = os.waitpid(pid, 0)
                row = _finished(case, form, b"".join(chunks), status)
            elif now > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                row = Result(case.name, op_type_of(case), form, "hang", f"no answer within {timeout:.0f} s")
            else:
                continue
            os.close(fd)
            del running[fd]
            results.append(row)
            if progress:
                progress(row)
    return results


def _finished(case, form: str, payload: bytes, status: int) -> Result:
    if payload:
        return Result(**json.loads(payload))
    why = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit status {os.WEXITSTATUS(status)}"
    return Result(case.name, op_type_of(case), form, "crash", f"the process died ({why})")


def _preload() -> None:
    """Import the heavy modules once, before forking, so each child starts warm."""
    import onnx.reference  # noqa: F401
    from ai_edge_litert import interpreter  # noqa: F401
    from edgekit.converters.tflite.registry import load_all
    load_all()


def summarize(results: list[Result]) -> dict:
    """Per op type and form: counts of each outcome, and the distinct refusal reasons."""
    table: dict = {}
    for r in results:
        op = r.op_type or r.case
        entry = table.setdefault(op, {f: {o: 0 for o in OUTCOMES} for f in FORMS})
        entry[r.form][r.outcome] += 1
    return table
