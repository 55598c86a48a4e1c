"""`edgekit optimize IN -o OUT`."""
from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli.common import console, emit_json, handle_errors, json_option, out


@click.command("optimize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The ONNX file to write.")
@click.option("--fix-shape", "fix_shapes", multiple=True, metavar="NAME=DIMS",
              help="Fix an input's dynamic dims, e.g. input=1x3x224x224. Repeatable.")
@click.option("--dim", "dims", default="", metavar="LABEL=SIZE,...",
              help="Sizes of dynamic dims for the validation inputs, e.g. seq=32.")
@click.option("--ort-fusions", is_flag=True,
              help="Also apply ONNX Runtime's fusions (com.microsoft ops): the result runs on ONNX Runtime ONLY.")
@click.option("--atol", type=float, default=1e-5, show_default=True, help="Absolute tolerance of the check.")
@click.option("--rtol", type=float, default=1e-4, show_default=True, help="Tolerance relative to output scale.")
@click.option("--force", is_flag=True, help="Allow the output to replace the input file (atomically).")
@json_option
@handle_errors
def command(model, output, fix_shapes, dims, ort_fusions, atol, rtol, force, json_path):
    """Clean up an ONNX graph (shape inference, constant folding, dead/Identity/Dropout removal, BatchNorm
    folding) keeping it portable, and check it still computes the same on seeded inputs."""
    from edgekit.inputs import parse_dims
    from edgekit.optimize import optimize

    with console.status(f"Optimizing {model} …"):
        result = optimize(model, output, fix_shapes=list(fix_shapes), ort_fusions=ort_fusions,
                          dims=parse_dims(dims), atol=atol, rtol=rtol, force=force)
    table = Table(title=f"Nodes by op type: {result.nodes_before} → {result.nodes_after}")
    for col in ("op type", "before", "after"):
        table.add_column(col, justify="right" if col != "op type" else "left")
    for op in sorted(set(result.ops_before) | set(result.ops_after),
                     key=lambda o: -max(result.ops_before.get(o, 0), result.ops_after.get(o, 0))):
        table.add_row(op, str(result.ops_before.get(op, 0)), str(result.ops_after.get(op, 0)))
    out.print(table)
    worst = max(result.validation, key=lambda v: v["max_abs"])
    console.print(f"Checked on seeded inputs: max abs difference {worst['max_abs']:.2e}, "
                  f"cosine {min(v['cosine'] for v in result.validation):.6f}.")
    for note in result.notes:
        console.print(f"Note: {note}")
    if result.ort_only:
        console.print("[yellow]The result contains ONNX Runtime-only fusions; it cannot be converted to TFLite.[/]")
    console.print(f"[green]Wrote[/] {result.path}")
    emit_json(result.as_dict(), json_path)
