"""Run several models (any format, any runtime, or the PyTorch source) on identical inputs; compare their outputs.

The first model is the reference. Inputs are seeded random data, an .npz, or images read through
edgekit.processing (the spec calibration, apps and bundles share), in the reference's layout;
a model that declares channels-last I/O (metadata `edgekit.io_layouts`, e.g. {"x": "NHWC"}) gets its inputs
transposed to it and its outputs transposed back, and int8/uint8 I/O with quantization parameters is
quantized/dequantized, so every output is compared in the reference's terms.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import UsageError, ValidationError
# layouts and quantization live in edgekit.tensors (re-exported: the pipeline and tests import them from here)
from edgekit.tensors import (adapt_input, adapt_output, canonical_shape, is_channels_last,  # noqa: F401
                             quant_params as _quant, to_channels_first, to_channels_last)

SPEC_PREFIXES = ("zoo:",)


# ---------------------------------------------------------------- candidates

def is_spec(text: str) -> bool:
    """A PyTorch source spec (zoo:NAME, file.py:factory, package.module:factory) rather than a model file."""
    if text.startswith(SPEC_PREFIXES):
        return True
    if Path(text).exists():
        return False
    head, sep, tail = text.rpartition(":")
    return bool(sep) and bool(tail) and (head.endswith(".py") or ("/" not in head and "." in head))


@dataclass
class _Named:
    name: str
    shape: tuple


@dataclass
class _TorchInfo:
    name: str
    dtype: np.dtype
    shape: tuple
    layout: str | None = None
    quantization: dict | None = None

    def describe(self) -> dict:
        return {"name": self.name, "dtype": np.dtype(self.dtype).name, "shape": list(self.shape), "layout": self.layout}


class TorchSource:
    """A PyTorch module behind the same run interface as a runtime Session (for comparing against the source)."""

    runtime = "pytorch"
    provider = "cpu"

    def __init__(self, spec: str, input_shapes: list[str] | None = None, shapes_from: str = "--input-shape"):
        from edgekit.converters.torch_export import load_spec
        self.spec = self.path = spec
        self.shapes_from = shapes_from if input_shapes else "its own declaration"
        self.source = load_spec(spec, input_shapes=input_shapes)
        self.inputs = [_TorchInfo(i.name, np.dtype(i.dtype), tuple(i.shape)) for i in self.source.inputs]
        self.outputs = [_TorchInfo(n, np.dtype(np.float32), ()) for n in (self.source.output_names or [])]
        self.notes: list[str] = []

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from edgekit.onnx_io import flatten_outputs as _flatten
        args = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in self.inputs]
        try:
            with torch.no_grad():
                result = _flatten(self.source.module(*args))
        except Exception as exc:  # user code on shapes it may not take: say which shapes, from where
            shapes = ", ".join(f"{i.name} {'x'.join(map(str, feeds[i.name].shape))} {feeds[i.name].dtype}"
                               for i in self.inputs)
            raise UsageError(f"The PyTorch model '{self.spec}' failed on inputs {shapes} (shapes from "
                             f"{self.shapes_from}): {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}",
                             hint="Give its example inputs with --input-shape, one per input in order "
                                  "(NAME=1x16:int64 for integer inputs).") from exc
        arrays = [r.detach().cpu().numpy() if hasattr(r, "detach") else np.asarray(r) for r in result]
        names = [o.name for o in self.outputs]
        if len(names) != len(arrays):
            names = [f"output_{i}" for i in range(len(arrays))]
        return dict(zip(names, arrays))

    def close(self) -> None:
        pass


def _open(model: str, runtime: str, provider: str, threads: int | None):
    import warnings

    import edgekit.runtimes as runtimes
    from edgekit.runtimes.base import ProviderFallbackWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProviderFallbackWarning)  # reported through session.notes
        return runtimes.load(model, runtime=runtime, provider=provider, threads=threads)


# ---------------------------------------------------------------- compare()

def compare(models, *, runtime: str = "auto", provider: str = "auto", threads: int | None = None,
            batch: int | None = None, dims: dict | None = None, inputs=None, seed: int = 0,
            atol: float | None = None, rtol: float | None = None, min_cosine: float | None = None,
            input_shapes: list[str] | None = None, check: bool = False, preprocess=None, eval_data=None) -> dict:
    """Compare models[1:] against models[0] on the same inputs; returns a JSON-ready report.

    A PyTorch SPEC among the models runs at `input_shapes` (export's --input-shape strings: '1x3x32x32',
    'tokens=1x16:int64'), else at the input shapes of the first model file given (dynamic dims from `dims` and
    `batch`), else at the shapes the SPEC declares itself.

    inputs: None (seeded random data), an .npz keyed by input name (optional detection 'labels'), or images: an
    image file, a folder of them (sub-folders as classes, sorted as calibration reads them), or a list of those.
    Images feed the reference's one input through `preprocess` (edgekit.processing's spec in any form; default: the
    reference's own from its edgekit.processing metadata, else image calibration's, scale=1/255 and the layout from
    the channel axis), so compare sees the tensor calibration and an app with the same spec see.

    eval_data: an .npz with detection labels 'labels' [N, M, 5] (x1, y1, x2, y2 in model-input pixels, class; class < 0
    pads), one row per input image (the inputs' order; images as calibration lists them); it may also hold the inputs
    themselves (the keys --inputs reads), used when `inputs` is None. Detectors then get mAP@0.5 per model, the
    reference's too, in report["evaluation"] (labels inside an --inputs .npz do the same).

    Gates: an output fails when |got - ref| > atol + rtol * max|ref| (either given; the other counts as 0),
    when its cosine similarity is below `min_cosine`, or when it has NaN/Inf where the reference has none.
    `passed` is False if any output fails a gate; with `check=True` that raises ValidationError (exit 5).
    """
    from edgekit import metrics
    from edgekit.inputs import load_npz, random_array, resolve_shape

    models = [str(m) for m in models]
    if len(models) < 2:
        raise UsageError(f"compare needs at least two models, got {len(models)}.",
                         hint="Give a reference and one or more candidates: edgekit compare ref.onnx other.tflite.")
    for name, v in (("--atol", atol), ("--rtol", rtol)):
        if v is not None and v < 0:
            raise UsageError(f"{name} must be 0 or more, got {v}.")
    if min_cosine is not None and not -1 <= min_cosine <= 1:
        raise UsageError(f"--min-cosine must be between -1 and 1, got {min_cosine}.")
    if preprocess is not None and not (inputs and not _is_npz(inputs)):
        raise UsageError("--preprocess reads image --inputs, and no images were given.",
                         hint="Give image files or a folder with --inputs, or drop --preprocess.")
    if input_shapes and not any(is_spec(m) for m in models):
        raise UsageError("--input-shape sets the example inputs of a PyTorch SPEC, and no SPEC was given.",
                         hint="For dynamic dimensions of model files use --dim LABEL=SIZE or --batch N.")
    for m in models:  # fail fast on missing or garbage files before loading anything heavy
        if not is_spec(m):
            from edgekit.fileio import sniff_format
            sniff_format(m)

    opened: dict[int, object] = {}
    try:
        for i, m in enumerate(models):  # files first: their input shapes are the SPECs' default
            if not is_spec(m):
                opened[i] = _open(m, runtime, provider, threads)
        files = [opened[i] for i in sorted(opened)]
        for i, m in enumerate(models):
            if is_spec(m):
                opened[i] = _torch_source(m, input_shapes, files[0] if files else None, dims, batch)
    except BaseException:
        for s in opened.values():
            s.close()
        raise
    sessions = [opened[i] for i in range(len(models))]
    try:
        ref = sessions[0]
        # reference-layout (channels-first) inputs, generated once from the reference's declared inputs
        given, eval_arrays = None, load_npz(eval_data, None, what="evaluation file (--eval)") if eval_data is not None else None
        pre_label = preprocess if isinstance(preprocess, str) or preprocess is None else "given spec"
        if eval_arrays is not None and not inputs:
            given, ref_feeds = eval_arrays, _match_npz(eval_arrays, ref, eval_data)
        elif inputs and _is_npz(inputs):
            given = load_npz(_one(inputs), None)
            ref_feeds = _match_npz(given, ref, _one(inputs))
        elif inputs:
            if preprocess is None:  # the reference's own (edgekit.processing metadata), else image calibration's
                from edgekit.processing import processing_from_metadata
                preprocess = processing_from_metadata(getattr(ref, "metadata", None), f"'{models[0]}'").get("preprocess")
                pre_label = "the reference's own (edgekit.processing metadata)" if preprocess is not None else None
            ref_feeds = image_feeds(inputs, ref.inputs, preprocess)
        else:
            rng = np.random.default_rng(seed)
            ref_feeds = {}
            for info in ref.inputs:
                shape = resolve_shape(_Named(info.name, canonical_shape(info)), dims, batch)
                ref_feeds[info.name] = random_array(shape, _float_view(info), rng)
        outputs = []
        for sess in sessions:
            feeds = _feeds_for(sess, ref, ref_feeds)
            raw = _run_rows(sess, feeds)
            infos = {o.name: o for o in getattr(sess, "outputs", [])}
            outputs.append({k: adapt_output(np.asarray(v), infos.get(k)) for k, v in raw.items()})
        results = []
        reference_boxes = _detections_of(ref, outputs[0])
        labels = _box_labels(given, ref_feeds) if given is not None and reference_boxes is not None else None
        if eval_arrays is not None:
            labels = _eval_labels(eval_arrays, eval_data, ref_feeds, reference_boxes, models[0])
        scored = [(models[0], reference_boxes)]
        for sess, model, outs in zip(sessions[1:], models[1:], outputs[1:]):
            candidate_boxes = _detections_of(sess, outs) if reference_boxes is not None else None
            try:
                pairs, note = align_outputs(outputs[0], outs)
            except UsageError:
                if candidate_boxes is None:
                    raise
                # a head (decoded + NMS in numpy) against NMS inside: no common tensors, the same kind of boxes
                pairs, note = [], f"by their detections alone ({list(outputs[0])} vs {list(outs)})"
            diffs = []
            for ref_name, cand_name in pairs:
                try:
                    d = metrics.diff(ref_name, outputs[0][ref_name], outs[cand_name])
                except ValueError as exc:
                    diffs.append({"output": ref_name, "candidate_output": cand_name, "error": str(exc),
                                  "passed": False, "failed_gates": ["shape"]})
                    continue
                row = d.as_dict()
                row["output"] = row.pop("name")
                row["candidate_output"] = cand_name
                row["failed_gates"] = _gates(d, atol, rtol, min_cosine)
                row["passed"] = not row["failed_gates"]
                diffs.append(row)
            results.append({"model": model, "runtime": sess.runtime, "provider": sess.provider,
                            "alignment": note, "outputs": diffs, "passed": all(r["passed"] for r in diffs),
                            "notes": list(getattr(sess, "notes", []))})
            if candidate_boxes is not None:  # detectors: box for box against the reference (and mAP with labels)
                from edgekit.detection_metrics import judge
                results[-1]["detections"] = judge(reference_boxes, candidate_boxes, labels)
            scored.append((model, candidate_boxes))
        evaluation = _evaluation(scored, labels, eval_data or _one(inputs)) if labels is not None else None
    finally:
        for s in sessions:
            s.close()
    report = {
        "reference": {"model": models[0], "runtime": sessions[0].runtime, "provider": sessions[0].provider},
        "inputs": {"source": _describe_inputs(inputs or eval_data, pre_label, ref_feeds) if inputs or eval_data
                   else f"random (seed {seed})",
                   "shapes": {k: list(v.shape) for k, v in ref_feeds.items()},
                   "dtypes": {k: v.dtype.name for k, v in ref_feeds.items()}},
        "gates": {"atol": atol, "rtol": rtol, "min_cosine": min_cosine},
        "candidates": results,
        "passed": all(r["passed"] for r in results),
    }
    if evaluation is not None:
        report["evaluation"] = evaluation
    report = json_safe(report)
    if check and not report["passed"]:
        raise gate_failure(report)
    return report


def _torch_source(spec: str, input_shapes: list[str] | None, model_file, dims: dict | None,
                  batch: int | None) -> TorchSource:
    """The SPEC at --input-shape, else at `model_file`'s input shapes (if static), else at its own declared shapes."""
    if input_shapes:
        return TorchSource(spec, list(input_shapes))
    shapes = _shapes_of(model_file, dims, batch) if model_file is not None else None
    if not shapes:
        return TorchSource(spec)
    try:
        return TorchSource(spec, shapes, shapes_from=f"'{model_file.path}'")
    except UsageError as exc:
        raise UsageError(f"The input shapes of '{model_file.path}' ({', '.join(shapes)}) do not fit the PyTorch "
                         f"model '{spec}': {exc.message}",
                         hint="Give the SPEC's example inputs with --input-shape, one per input.") from exc


def _shapes_of(session, dims: dict | None, batch: int | None) -> list[str] | None:
    """A model file's inputs as --input-shape strings in channels-first order; None if a dimension has no value."""
    from edgekit.inputs import DTYPES, resolve_shape
    shapes = []
    for info in session.inputs:
        try:
            dims_ = resolve_shape(_Named(info.name, canonical_shape(info)), dims, batch)
        except UsageError:
            return None
        dtype = _float_view(info).name
        shapes.append("x".join(map(str, dims_)) + (f":{dtype}" if dtype in DTYPES else ""))
    return shapes


def json_safe(value):
    """Non-finite floats → "inf"/"-inf"/"nan" strings, so the report is strict JSON (SQNR of identical outputs is inf)."""
    if isinstance(value, float) and not np.isfinite(value):
        return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def gate_failure(report: dict) -> ValidationError:
    bad = [f"{c['model']}:{o['output']} ({', '.join(o['failed_gates'])})"
           for c in report["candidates"] for o in c["outputs"] if not o["passed"]]
    return ValidationError(f"Outputs differ from the reference '{report['reference']['model']}' beyond the gates "
                           f"{ {k: v for k, v in report['gates'].items() if v is not None} }: " + "; ".join(bad) + ".",
                           hint="See the table for max abs/rel error and cosine; loosen the gates only if the "
                                "difference is expected (e.g. quantization).")


def _gates(d, atol, rtol, min_cosine) -> list[str]:
    failed = []
    if (atol is not None or rtol is not None) and not d.within(atol or 0.0, rtol or 0.0):
        failed.append("tolerance")
    if min_cosine is not None and not d.cosine >= min_cosine:
        failed.append("cosine")
    if d.nonfinite and (atol is not None or rtol is not None or min_cosine is not None) and "tolerance" not in failed:
        failed.append("nonfinite")
    return failed


def _run_rows(sess, feeds: dict) -> dict:
    """Run the feeds; a model with a static batch of 1 given N rows (e.g. N images in --inputs) runs row by row and
    its outputs are stacked along axis 0."""
    infos = list(getattr(sess, "inputs", []))
    rows = {len(v) for v in feeds.values() if np.ndim(v)}
    if not infos or len(rows) != 1 or rows == {1} or not all(i.shape and i.shape[0] == 1 for i in infos):
        return sess.run(feeds)
    runs = [sess.run({k: v[r:r + 1] for k, v in feeds.items()}) for r in range(rows.pop())]
    return {k: np.concatenate([np.asarray(run[k]) for run in runs]) for k in runs[0]}


def _detections_of(sess, outputs: dict) -> list | None:
    """Per-image detection sets when the model's metadata or output names say its outputs are detections."""
    from edgekit.detection_metrics import detection_spec, to_detections
    spec = detection_spec(getattr(sess, "metadata", None), outputs)
    return to_detections(outputs, spec) if spec else None


def _box_labels(arrays: dict, ref_feeds: dict) -> list | None:
    """Labels with boxes from the --inputs file ('labels' [N, M, 5]: x1, y1, x2, y2, class; class < 0 pads)."""
    from edgekit.detection_metrics import box_labels
    labels = box_labels(arrays.get("labels"))
    n = len(next(iter(ref_feeds.values()))) if ref_feeds else 0
    return labels if labels is not None and len(labels) == n else None


def _eval_labels(arrays: dict, path, ref_feeds: dict, reference_boxes, reference: str) -> list:
    """--eval's labels with boxes, one row per input image; anything else is refused, never silently unused."""
    from edgekit.detection_metrics import box_labels
    if reference_boxes is None:
        raise UsageError(f"--eval scores detections, and the reference '{reference}' does not output any.",
                         hint="Give a detector first: outputs boxes/scores/classes/count (export --nms) or a head "
                              "marked by `edgekit export zoo:...`.")
    labels = box_labels(arrays.get("labels"))
    if labels is None:
        got = list(np.shape(arrays["labels"])) if "labels" in arrays else f"no 'labels' (keys {sorted(arrays)})"
        raise UsageError(f"'{path}' must hold 'labels' [N, M, 5] (x1, y1, x2, y2, class per box; class < 0 pads); "
                         f"it has {got}.", hint="numpy.savez(path, labels=padded_boxes) with boxes in input pixels.")
    n = len(next(iter(ref_feeds.values())))
    if len(labels) != n:
        raise UsageError(f"'{path}' labels {len(labels)} image(s) and the inputs hold {n}.",
                         hint="Give one labels row per input image, in the inputs' order.")
    return labels


def _evaluation(scored: list, labels: list, source) -> dict:
    """mAP@0.5 of every model whose outputs are detections (None for one whose are not) against the labels."""
    from edgekit.detection_metrics import map50
    return {"metric": "mAP@0.5", "labels": str(source), "images": len(labels),
            "boxes": int(sum(len(lab["classes"]) for lab in labels)),
            "models": [{"model": m, "map50": map50(found, labels) if found is not None else None}
                       for m, found in scored]}


def _float_view(info) -> np.dtype:
    """Inputs of a quantized (int8/uint8 with scale) reference are generated as float and quantized per model."""
    return np.dtype(np.float32) if _quant(info) else np.dtype(info.dtype)


def _one(inputs):
    return inputs if isinstance(inputs, (str, Path)) else inputs[0]


def _is_npz(inputs) -> bool:
    """One .npz (by content: the zip signature numpy writes) rather than images; a missing file reads as .npz so
    load_npz names it."""
    paths = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if len(paths) != 1:
        return False
    path = Path(paths[0])
    if path.is_dir():
        return False
    if not path.is_file() or path.suffix.lower() == ".npz":
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


def image_feeds(inputs, infos, preprocess=None) -> dict[str, np.ndarray]:
    """Images (files, folders, or a list of them) as the reference-terms array (channels-first, float for a
    quantized input) of a model's one input, each image through edgekit.processing as calibration reads it."""
    from edgekit.quantize.calibration import IMAGE_SUFFIXES, image_files, parse_image_spec, read_rgb_image

    infos = list(infos)
    if len(infos) != 1:
        raise UsageError(f"Images feed one input; the reference takes {len(infos)} {[i.name for i in infos]}.",
                         hint="Give an .npz keyed by input name instead.")
    files = []
    for p in map(Path, [inputs] if isinstance(inputs, (str, Path)) else inputs):
        if p.is_dir():
            found = [f for f, _ in image_files(p)[0]]
            if not found:
                raise UsageError(f"The folder '{p}' has no images ({', '.join(IMAGE_SUFFIXES)}).")
            files += found
        elif not p.is_file():
            raise UsageError(f"There is no file or folder '{p}'.", hint="Give image files, a folder, or an .npz.")
        elif p.suffix.lower() == ".npz":
            raise UsageError(f"'{p}' is an .npz among images; give either one .npz or images.")
        else:
            files.append(p)
    info = infos[0]
    view = _TorchInfo(info.name, _float_view(info), tuple(info.shape), info.layout)  # float: quantized per model
    pre = parse_image_spec(preprocess, view)
    x = np.concatenate([pre.apply(read_rgb_image(f), view) for f in files])
    if pre.layout == "NHWC" and is_channels_last(info.layout):
        x = to_channels_first(x)
    return {info.name: x}


def _describe_inputs(inputs, pre_label: str | None, feeds: dict) -> str:
    paths = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(p) for p in inputs]
    text = ", ".join(paths) if len(paths) <= 3 else f"{', '.join(paths[:3])} and {len(paths) - 3} more"
    if _is_npz(inputs):
        return text
    n = len(next(iter(feeds.values())))
    return f"{text} ({n} image(s), preprocess {pre_label or 'default: scale=1/255'})"


def _match_npz(arrays: dict, ref, path) -> dict:
    names = [i.name for i in ref.inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise UsageError(f"The inputs in '{path}' do not match the reference model: missing inputs {missing} "
                         f"(the file has {sorted(arrays)}).", hint=f"The reference's inputs are {names}.")
    return {n: arrays[n] for n in names}


def _feeds_for(sess, ref, ref_feeds: dict) -> dict:
    """Map reference feeds onto this model's inputs: by name when all names match, else by position."""
    names = [i.name for i in sess.inputs]
    ref_names = list(ref_feeds)
    if len(names) != len(ref_names):
        raise UsageError(f"'{sess.path}' takes {len(names)} input(s) {names}; the reference takes "
                         f"{len(ref_names)} {ref_names}.", hint="Compare models with the same inputs.")
    by_name = set(names) == set(ref_names)
    feeds = {}
    for pos, info in enumerate(sess.inputs):
        src = ref_feeds[info.name] if by_name else ref_feeds[ref_names[pos]]
        arr = adapt_input(src, info)
        if not np.can_cast(arr.dtype, info.dtype, casting="same_kind"):
            raise UsageError(f"Input '{info.name}' of '{sess.path}' is {np.dtype(info.dtype).name}; the reference's "
                             f"is {src.dtype.name}.", hint="Compare models with the same input types.")
        feeds[info.name] = arr.astype(info.dtype, copy=False)
    return feeds


def align_outputs(ref: dict, cand: dict) -> tuple[list[tuple[str, str]], str]:
    """Pairs (reference output, candidate output): by name if every reference name exists, else by order."""
    if all(k in cand for k in ref):
        return [(k, k) for k in ref], "by name"
    if len(ref) != len(cand):
        raise UsageError(f"The models have different output counts ({len(ref)} vs {len(cand)}) and names "
                         f"({list(ref)} vs {list(cand)}).", hint="Compare models that compute the same outputs.")
    return list(zip(ref, cand)), "by position (names differ)"
