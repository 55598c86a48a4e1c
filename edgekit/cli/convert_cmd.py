"""`edgekit convert IN.onnx --to tflite -o OUT.tflite`."""
from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli.common import console, emit_json, handle_errors, json_option, out


@click.command("convert")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--to", "to", type=click.Choice(["tflite"]), default="tflite", show_default=True, help="Target format.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .tflite file to write.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="SHAPE",
              help="Fix dynamic input dims: 1x3x224x224 (inputs in order) or NAME=1x3x224x224. Repeatable.")
@click.option("--nhwc-io", is_flag=True, help="Take and return 4-D tensors as NHWC (no transposes at the edges).")
@click.option("--precision", type=click.Choice(["auto", "float32", "fp16", "dynamic", "int8"]), default="auto",
              show_default=True, help="auto follows the model: QDQ → int8, ONNX dynamic quantization → dynamic "
              "(int8 weights, float activations), float16 → fp16, else float32. fp16/dynamic also apply to float32 "
              "models.")
@click.option("--fp16", is_flag=True, help="Same as --precision fp16: float16 weights, float32 compute.")
@click.option("--int8-io", is_flag=True, help="INT8 models: take and return int8 tensors (scales in the metadata).")
@click.option("--atol", type=float, default=None, help="Absolute tolerance of validation [default: by mode; int8: "
              "4 quantization steps of each output].")
@click.option("--rtol", type=float, default=None, help="Tolerance relative to output scale [default: by mode: "
              "float32 1e-4, fp16 1e-2, dynamic 5e-2].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random validation inputs.")
@click.option("--keep-invalid", is_flag=True, help="Write the file even when validation fails (exit code stays 5).")
@click.option("--force", is_flag=True, help="Allow the output to replace an input file (atomically).")
@json_option
@handle_errors
def command(model, to, output, input_shapes, nhwc_io, precision, fp16, int8_io, atol, rtol, seed, keep_invalid, force,
            json_path):
    """Compile an ONNX model to TFLite (float32, FP16, dynamic-range or INT8) and validate it against ONNX Runtime.

    Exit code 4 lists every node that cannot be compiled; 5 means the outputs diverged (nothing written).
    """
    from edgekit.convert import convert
    from edgekit.errors import UnsupportedModelError, UsageError, ValidationError

    if fp16 and precision not in ("auto", "fp16"):
        raise UsageError(f"--fp16 contradicts --precision {precision}.", hint="Give one of them.")
    precision = "fp16" if fp16 else precision

    try:
        with console.status("Reading the model …") as status:
            result = convert(model, output, to=to, input_shapes=list(input_shapes), nhwc_io=nhwc_io, atol=atol,
                             rtol=rtol, force=force, keep_invalid=keep_invalid, seed=seed, precision=precision,
                             int8_io=int8_io,
                             progress=lambda step: status.update(f"{step.capitalize()} …"))
    except ValidationError as exc:
        if getattr(exc, "result", None) is not None:
            _render(exc.result)
            emit_json(exc.result.as_dict(), json_path)
        raise
    except UnsupportedModelError as exc:
        emit_json({"error": "unsupported", "problems": getattr(exc, "problems", [])}, json_path)
        raise
    _render(result)
    emit_json(result.as_dict(), json_path)


def _render(result) -> None:
    table = Table(title="Validation against ONNX Runtime (seeded random inputs)")
    for col in ("output", "max abs", "scale", "max rel", "cosine", "ok"):
        table.add_column(col)
    for o in result.outputs:
        ok = o["passed"]  # convert()'s own per-output gate: the table cannot contradict the exit code
        table.add_row(o["name"], f"{o['max_abs']:.2e}", f"{o['scale']:.3g}", f"{o['max_rel']:.2e}",
                      f"{o['cosine']:.6f}", "[green]yes[/]" if ok else "[red]no[/]")
    out.print(table)
    ops = ", ".join(f"{k}×{v}" for k, v in sorted(result.ops.items(), key=lambda kv: -kv[1]))
    console.print(f"Ops: {ops}")
    if result.io_layouts:
        console.print(f"I/O layouts: {result.io_layouts}")
    _render_quantization(result)
    console.print(f"Compiled in {result.compile_seconds:.2f} s, validated in {result.validate_seconds:.2f} s, "
                  f"{result.size_bytes / 1e6:.2f} MB")
    if result.written:
        console.print(f"[green]Wrote[/] {result.output}")


def _render_quantization(result) -> None:
    q = result.quantization
    if result.mode == "float32" and not q.get("notes"):
        return
    line = f"Mode: [bold]{result.mode}[/]"
    if q.get("steps_off"):
        line += " — off ONNX Runtime by " + ", ".join(f"{k}: {v:.2f} steps" for k, v in q["steps_off"].items())
    tops = [f"{o['name']}: {o['top1_agreement']:.0%}" for o in result.outputs if o.get("top1_agreement") is not None]
    if tops and result.mode != "float32":
        line += "; top-1 agreement " + ", ".join(tops)
    console.print(line)
    from edgekit.convert import TOP1_MIN
    low = [o["name"] for o in result.outputs if (o.get("top1_agreement") or 1.0) < TOP1_MIN]
    if low and result.mode != "float32":
        console.print(f"  [yellow]top-1 agreement under {TOP1_MIN:.0%}[/] on {', '.join(low)} although the values are "
                      f"within tolerance: near-tied scores on random inputs flip easily; check with real data "
                      f"(edgekit compare --inputs data.npz).")
    for name, io in (q.get("io") or {}).items():
        console.print(f"  int8 I/O '{name}': scale {io['scale']:.6g}, zero point {io['zero_point']}")
    for island in q.get("islands") or []:
        console.print(f"  [yellow]float island[/] {', '.join(island['ops'])} ({len(island['nodes'])} node(s)): "
                      f"{island['reason']}")
    for note in q.get("notes") or []:
        console.print(f"  note: {note}")
