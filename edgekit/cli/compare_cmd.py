"""`edgekit compare`: identical inputs to several models (or the PyTorch source); per-output error metrics."""
from __future__ import annotations

import click

from edgekit.cli.bench_cmd import input_options, parse_dim_options, runtime_options
from edgekit.cli.common import console, emit_json, handle_errors, input_shape_option, json_option, out


@click.command(name="compare")
@click.argument("models", nargs=-1, required=True)
@runtime_options
@input_options(images=True)
@click.option("--preprocess", metavar="SPEC", help="For image --inputs, edgekit.processing's spec as in quantize and "
              "bundle: 'resize=256;mean=0.485,0.456,0.406;std=0.229,0.224,0.225' or a .toml/.json file (default: the "
              "reference's own edgekit.processing metadata, else layout from the model input and scale=1/255).")
@click.option("--eval", "eval_data", metavar="FILE", type=click.Path(dir_okay=False),
              help="Detectors: an .npz with 'labels' [N, M, 5] (x1, y1, x2, y2 in input pixels, class; class < 0 pads), "
                   "one row per input image; it may hold the inputs too (used without --inputs). Adds mAP@0.5 per model.")
@input_shape_option
@click.option("--atol", type=float, default=None, help="Gate: absolute tolerance (with --rtol: |d| <= atol + rtol*max|ref|).")
@click.option("--rtol", type=float, default=None, help="Gate: tolerance relative to the reference output's scale.")
@click.option("--min-cosine", type=float, default=None, help="Gate: lowest cosine similarity allowed per output.")
@json_option
@handle_errors
def command(models, runtime, provider, threads, batch, dims, inputs, seed, preprocess, eval_data, input_shapes, atol,
            rtol, min_cosine, json_path):
    """Run MODELS on identical inputs and compare every output with the first (the reference).

    A MODEL is a model file (.onnx, .tflite: any runtime) or a PyTorch source SPEC (zoo:NAME,
    file.py:factory, package.module:factory); a SPEC runs at --input-shape (as for export), else at the
    input shapes of the first model file given, else at the shapes it declares. Outputs are matched by
    name, else by order; channels-last (NHWC) and quantized int8 I/O are converted to the reference's terms. --inputs
    takes an .npz or images (files, folders) read through --preprocess as calibration reads them. Reports max abs/rel error,
    cosine similarity, SQNR (dB) and top-1 agreement for class scores.

    Exit status 5 (validation failed) when an output misses a gate (--atol/--rtol, --min-cosine, or NaN/Inf
    where the reference is finite); without gates it only reports.

    \b
    Examples:
      edgekit compare zoo:lenet lenet.onnx lenet.tflite
      edgekit compare resnet.onnx resnet_int8.onnx --min-cosine 0.99
      edgekit compare model.py:make model.onnx --input-shape 1x3x64x64 --atol 1e-4
      edgekit compare net.onnx net_int8.tflite --inputs photos/ --preprocess 'resize=256;mean=0.485,0.456,0.406'
      edgekit compare det.onnx det_int8.tflite --eval shapes_val.npz
    """
    import warnings

    from edgekit.compare import compare, gate_failure
    from edgekit.runtimes.base import ProviderFallbackWarning

    warnings.simplefilter("ignore", ProviderFallbackWarning)
    with console.status(f"Running {len(models)} models on identical inputs..."):
        report = compare(list(models), runtime=runtime, provider=provider, threads=threads, batch=batch,
                         dims=parse_dim_options(dims), inputs=list(inputs) or None, seed=seed, atol=atol, rtol=rtol,
                         min_cosine=min_cosine, input_shapes=list(input_shapes), preprocess=preprocess,
                         eval_data=eval_data)
    if json_path != "-":  # stdout carries the JSON alone then
        render(report)
    emit_json(report, json_path)
    if not report["passed"]:
        raise gate_failure(report)


def _f(v, fmt) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return fmt.format(v)


def render(report: dict) -> None:
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    ref = report["reference"]
    table = Table(title=f"Against {ref['model']} ({ref['runtime']}/{ref['provider']})", title_justify="left")
    for col in ("model", "output", "max abs", "max rel", "cosine", "SQNR dB", "top-1", "gate"):
        table.add_column(col, justify="left" if col in ("model", "output", "gate") else "right",
                         no_wrap=col not in ("model", "output"))
    gated = any(v is not None for v in report["gates"].values())
    for cand in report["candidates"]:
        label = f"{escape(Path(cand['model']).name)}\n[dim]{cand['runtime']}/{cand['provider']}[/]"
        for o in cand["outputs"]:
            if "error" in o:
                table.add_row(label, escape(o["output"]), "-", "-", "-", "-", "-", "[red]FAIL[/]")
                console.print(f"[red]error[/] {escape(cand['model'])}: {escape(o['error'])}")
                continue
            result = ("[green]pass[/]" if o["passed"] else "[red]FAIL[/]") if gated else "[dim]-[/]"
            name = o["output"] if o["output"] == o["candidate_output"] else f"{o['output']} ~ {o['candidate_output']}"
            table.add_row(label, escape(name), _f(o["max_abs"], "{:.3g}"), _f(o["max_rel"], "{:.3g}"),
                          _f(o["cosine"], "{:.6f}"), _f(o["sqnr_db"], "{:.1f}"), _f(o["top1_agreement"], "{:.0%}"),
                          result)
    out.print(table)
    shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in report["inputs"]["shapes"].items())
    out.print(f"[dim]inputs: {escape(report['inputs']['source'])}: {escape(shapes)}[/]")
    for cand in report["candidates"]:
        if cand["alignment"] != "by name":
            console.print(f"[yellow]note[/] {escape(cand['model'])}: outputs matched {cand['alignment']}.")
        for note in cand["notes"]:
            console.print(f"[yellow]note[/] {escape(cand['model'])}: {escape(note)}")
        if cand.get("detections"):
            d = cand["detections"]
            out.print(f"detections {escape(Path(cand['model']).name)}: boxes matched to the reference's (IoU >= 0.5, "
                      f"same class) precision {d['precision']:.3f} recall {d['recall']:.3f} ({d['matched']} of "
                      f"{d['reference']} over {d['images']} image(s), mean IoU {d['mean_iou']:.3f})"
                      + (f"; mAP@0.5 {d['map50']:.4f} (reference {d['reference_map50']:.4f})" if "map50" in d else ""))
    if report.get("evaluation"):
        _render_evaluation(report["evaluation"])


def _render_evaluation(ev: dict) -> None:
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{ev['metric']} against {escape(ev['labels'])} ({ev['images']} image(s), {ev['boxes']} "
                        "labelled boxes)", title_justify="left")
    table.add_column("model")
    table.add_column(ev["metric"], justify="right")
    for row in ev["models"]:
        table.add_row(escape(Path(row["model"]).name), _f(row["map50"], "{:.4f}") if row["map50"] is not None
                      else "[dim]not detections[/]")
    out.print(table)
