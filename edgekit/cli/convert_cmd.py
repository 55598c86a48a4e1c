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
@click.option("--atol", type=float, default=1e-5, show_default=True, help="Absolute tolerance of validation.")
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="Tolerance relative to output scale.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random validation inputs.")
@click.option("--keep-invalid", is_flag=True, help="Write the file even when validation fails (exit code stays 5).")
@click.option("--force", is_flag=True, help="Allow the output to replace an input file (atomically).")
@json_option
@handle_errors
def command(model, to, output, input_shapes, nhwc_io, atol, rtol, seed, keep_invalid, force, json_path):
    """Compile an ONNX model to TFLite (float32) and validate it against ONNX Runtime.

    Exit code 4 lists every node that cannot be compiled; 5 means the outputs diverged (nothing written).
    """
    from edgekit.convert import convert
    from edgekit.errors import UnsupportedModelError, ValidationError

    try:
        with console.status("Reading the model …") as status:
            result = convert(model, output, to=to, input_shapes=list(input_shapes), nhwc_io=nhwc_io, atol=atol,
                             rtol=rtol, force=force, keep_invalid=keep_invalid, seed=seed,
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
        ok = o["nonfinite"] == 0 and o["max_abs"] <= result.atol + result.rtol * o["scale"]
        table.add_row(o["name"], f"{o['max_abs']:.2e}", f"{o['scale']:.3g}", f"{o['max_rel']:.2e}",
                      f"{o['cosine']:.6f}", "[green]yes[/]" if ok else "[red]no[/]")
    out.print(table)
    ops = ", ".join(f"{k}×{v}" for k, v in sorted(result.ops.items(), key=lambda kv: -kv[1]))
    console.print(f"Ops: {ops}")
    if result.io_layouts:
        console.print(f"I/O layouts: {result.io_layouts}")
    console.print(f"Compiled in {result.compile_seconds:.2f} s, validated in {result.validate_seconds:.2f} s, "
                  f"{result.size_bytes / 1e6:.2f} MB")
    if result.written:
        console.print(f"[green]Wrote[/] {result.output}")
