"""`edgekit quantize IN -o OUT --mode static|dynamic|fp16`."""
from __future__ import annotations

import math

import click
from rich.table import Table

from edgekit.cli.common import console, emit_json, handle_errors, json_option, out


class _Bars:
    """The library's progress interface drawn as rich progress bars on stderr."""

    def __init__(self, progress):
        self.progress, self.task = progress, None

    def start(self, label, total=None):
        self.task = self.progress.add_task(label, total=total)

    def advance(self, n=1):
        if self.task is not None:
            self.progress.advance(self.task, n)

    def done(self):
        if self.task is not None:
            total = self.progress.tasks[-1].total
            self.progress.update(self.task, total=total or 1, completed=total or 1)
        self.task = None


def _fraction(text):
    if text is None:
        return None
    text = str(text).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a number (write 0.01 or 1%).") from None


@click.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The ONNX file to write.")
@click.option("--mode", type=click.Choice(["static", "dynamic", "fp16"]), default="static", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["qdq", "qoperator"]), default="qdq", show_default=True,
              help="Static only: QDQ (portable, also feeds the TFLite compiler) or QOperator (ORT QLinear ops).")
@click.option("--per-tensor", is_flag=True, help="Per-tensor weight scales (default: per channel).")
@click.option("--calibrate-method", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax",
              show_default=True)
@click.option("--activation-type", type=click.Choice(["auto", "int8", "uint8"]), default="auto", show_default=True,
              help="auto: chosen for this CPU's int8 dot-product instructions.")
@click.option("--weight-type", type=click.Choice(["auto", "int8", "uint8"]), default="auto", show_default=True)
@click.option("--reduce-range/--no-reduce-range", default=None, help="7-bit weights (default: chosen for this CPU).")
@click.option("--exclude", "exclude", multiple=True, metavar="NAME|OP|MODULE",
              help="Keep in float: a node name, an op type, or a PyTorch module path (features.3). Repeatable.")
@click.option("--calib", metavar="DATA", help="Calibration data: .npz keyed by input name (optional 'labels'), "
              "a folder of .npy files or images, or 'random' (runs, but calibrates nothing meaningful).")
@click.option("--preprocess", metavar="SPEC", help="For image folders, the app/bundle syntax: "
              "'resize=256;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;color=rgb' or a .toml/.json file (defaults: "
              "layout from the model input, scale=1/255; resize=N then centre-crops to the input size).")
@click.option("--eval", "eval_data", metavar="DATA", help="Evaluation data (default: held-out part of --calib).")
@click.option("--eval-fraction", type=float, default=0.2, show_default=True,
              help="Part of --calib held out for evaluation when --eval is not given.")
@click.option("--batch", "batch_size", type=int, default=8, show_default=True,
              help="Batch size for models with a dynamic batch dimension.")
@click.option("--max-drop", metavar="X", default=None,
              help="Accuracy budget (0.01 or 1%): keep the fewest layers in float so the metric stays within X.")
@click.option("--max-float-layers", type=int, default=8, show_default=True, help="Search limit for --max-drop.")
@click.option("--blame", is_flag=True, help="Rank quantized tensors (static QDQ) or layers by quantization error "
              "(automatic when the gate fails).")
@click.option("--equalize/--no-equalize", default=None,
              help="Static: cross-layer equalization of Conv/Gemm/MatMul pairs first (exact in float; default: "
                   "tried by --max-drop before keeping anything in float).")
@click.option("--smoothquant/--no-smoothquant", default=None,
              help="Static: SmoothQuant for MatMul/Gemm inputs with outlier channels, strength chosen by the metric "
                   "(default: tried by --max-drop).")
@click.option("--bias-correction/--no-bias-correction", default=None,
              help="Static QDQ: empirical bias correction on the calibration data, kept where it helps (default: "
                   "tried by --max-drop).")
@click.option("--speed", type=click.Choice(["search", "check", "off"]), default="search", show_default=True,
              help="search: benchmark and keep slow-to-quantize layer types in float; check: compare only.")
@click.option("--allow-slower", is_flag=True, help="Write the model even if it is slower than the float one.")
@click.option("--threads", type=int, default=None, help="Threads for benchmarking (default: runtime's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Allow the output to replace the input file (atomically).")
@json_option
@handle_errors
def command(model, output, mode, fmt, per_tensor, calibrate_method, activation_type, weight_type, reduce_range,
            exclude, calib, preprocess, eval_data, eval_fraction, batch_size, max_drop, max_float_layers, blame,
            equalize, smoothquant, bias_correction, speed, allow_slower, threads, seed, force, json_path):
    """Quantize an ONNX model with an accuracy report, per-layer blame and a speed check against float.

    Exit code 6 (gate failed) when --max-drop cannot be met, or the result is slower than the float model
    without --allow-slower; nothing is written then.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from edgekit.quantize import AccuracyGate, Calibration, Scheme, SpeedPolicy, Techniques, quantize

    groups = dict(scheme=Scheme(fmt=fmt, per_channel=not per_tensor, activation_type=activation_type,
                                weight_type=weight_type, reduce_range=reduce_range),
                  calibration=Calibration(calib, preprocess=preprocess, method=calibrate_method, batch_size=batch_size),
                  gate=AccuracyGate(eval_data=eval_data, eval_fraction=eval_fraction, max_drop=_fraction(max_drop),
                                    max_float_layers=max_float_layers, blame=blame),
                  techniques=Techniques(equalize=equalize, smoothquant=smoothquant, bias_correction=bias_correction),
                  speed=SpeedPolicy(speed, allow_slower=allow_slower, threads=threads))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bars:
        result = quantize(model, output, mode=mode, exclude=list(exclude), seed=seed, force=force,
                          progress=_Bars(bars), **groups)
    render(result)
    emit_json(result.as_dict(), json_path)


def render(result) -> None:
    plan, acc = result.plan, result.accuracy
    s = plan.summary()
    what = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in s.items()
                     if k not in ("excluded_nodes", "kept_float", "float_tensors"))
    console.print(f"Quantization: {what}.")
    hw = result.hardware
    if plan.mode != "fp16":
        console.print(f"CPU: {hw['isa']} → {hw['activation_type']} activations, {hw['weight_type']} weights"
                      f"{', reduce_range' if hw['reduce_range'] else ''}: {hw['reason']}.")
    table = Table(title=f"Accuracy against float on {acc.samples} samples")
    for col in ("output", "cosine", "max abs", "SQNR dB", "top-1 agreement"):
        table.add_column(col)
    for o in acc.outputs:
        table.add_row(o["output"], f"{o['cosine']:.6f}", f"{o['max_abs']:.3g}", _db(o["sqnr_db"]),
                      "-" if o["top1_agreement"] is None else f"{o['top1_agreement']:.2%}")
    out.print(table)
    if acc.accuracy is not None:
        out.print(f"Task accuracy: float {acc.float_accuracy:.2%}, quantized {acc.accuracy:.2%} "
                  f"(drop {acc.drop * 100:+.2f} points).")
    if result.techniques:
        tt = Table(title=f"Accuracy techniques ({acc.metric}, in the order tried)")
        for col in ("technique", "applied", "before", "after", "gain", "detail"):
            tt.add_column(col)
        for t in result.techniques:
            tt.add_row(t["technique"], "applied" if t["applied"] else "no", f"{t['before']:.4f}",
                       "-" if t["after"] is None else f"{t['after']:.4f}",
                       "-" if t["gain"] is None else f"{t['gain']:+.4f}", t["detail"])
        out.print(tt)
    if result.blame:
        tensors = result.blame[0].tensor is not None
        bt = Table(title=f"Blame: {'quantized tensors' if tensors else 'layers'} by quantization error (worst first)")
        for col in (("module", "tensor", "kind", "producer op") if tensors else ("layer", "op")) + (
                "local SQNR dB", "SQNR vs float dB", "drop if kept float"):
            bt.add_column(col)
        for r in result.blame[:10]:
            first = (r.module or "-", r.tensor, r.kind, r.op_type) if tensors else (r.label, r.op_type)
            bt.add_row(*first, _db(r.local_sqnr_db), _db(r.sqnr_db),
                       "-" if r.drop_if_float is None else f"{r.drop_if_float:+.4f}")
        out.print(bt)
    if plan.float_tensors:
        modules = result.data.get("float_tensor_modules", {})
        console.print("Tensors kept in float: " + ", ".join(modules.get(t, t) for t in plan.float_tensors) + ".")
    if plan.keep_float:
        modules = result.data.get("float_modules", {})
        console.print("Kept in float: " + ", ".join(f"{modules[n]} ({n})" if n in modules else n
                                                    for n in plan.keep_float) + ".")
    if result.speed:
        sp = result.speed
        colour = "red" if sp.slower else "green"
        console.print(f"[{colour}]Speed: p50 {sp.p50_ms:.3f} ms vs float {sp.float_p50_ms:.3f} ms "
                      f"({sp.speedup:.2f}x).[/]")
    for note in result.notes:
        console.print(f"Note: {note}")
    for warning in result.warnings:
        console.print(f"[bold red]Warning:[/] {warning}")
    console.print(f"[green]Wrote[/] {result.path}")


def _db(v):
    return "inf" if isinstance(v, float) and math.isinf(v) else (f"{v:.1f}" if isinstance(v, float) else str(v))
