"""`edgekit export SPEC -o model.onnx`."""
from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli.common import console, emit_json, handle_errors, input_shape_option, json_option, out


@click.command("export")
@click.argument("spec")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The ONNX file to write.")
@click.option("--weights", type=click.Path(dir_okay=False), help="A state dict (.safetensors, or .pt/.pth loaded weights-only).")
@input_shape_option
@click.option("--dynamic-batch", is_flag=True, help="Make dimension 0 of every input dynamic ('batch').")
@click.option("--dynamic-axis", "dynamic_axes", multiple=True, metavar="INPUT:DIM=LABEL",
              help="Make one dimension dynamic, e.g. x:1=seq. Repeatable.")
@click.option("--zoo-dynamic", is_flag=True,
              help="zoo:NAME only: make the dimensions the zoo entry declares dynamic (zoo:transformer tokens:1=seq; "
                   "zoo:rnn/lstm/gru x:1=seq, which export but do not compile to TFLite). Off by default.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 18).")
@click.option("--exporter", type=click.Choice(["auto", "dynamo", "torchscript"]), default="auto", show_default=True,
              help="auto: dynamo first, then the TorchScript exporter.")
@click.option("--atol", type=float, default=1e-4, show_default=True, help="Absolute tolerance of validation.")
@click.option("--rtol", type=float, default=1e-3, show_default=True, help="Tolerance relative to output scale.")
@click.option("--keep-invalid", is_flag=True, help="Write the file even when validation fails (exit code stays 5).")
@click.option("--trust-torchscript", is_flag=True, help="Allow a TorchScript archive as SPEC (it runs its own code).")
@click.option("--force", is_flag=True, help="Allow the output to replace an input file (atomically).")
@click.option("--nms", is_flag=True,
              help="Append box decoding and NMS to a detection head [1, 4 + classes, anchors]: outputs boxes (xyxy), "
                   "scores, classes, count (TFLite: NON_MAX_SUPPRESSION_V5).")
@click.option("--nms-conf", type=float, default=None, help="With --nms: score threshold (default 0.25).")
@click.option("--nms-iou", type=float, default=None, help="With --nms: IoU threshold (default 0.45).")
@click.option("--max-det", type=int, default=None, help="With --nms: boxes kept at most (default 100).")
@click.option("--nms-agnostic", is_flag=True, help="With --nms: one NMS over all classes (default: per class).")
@click.option("--box-format", type=click.Choice(["xywh", "xyxy"]), default=None,
              help="With --nms: the head's box rows, centre+size (xywh, Ultralytics; default) or corners (xyxy).")
@click.option("--nms-head", default=None, help="With --nms: the head output's name (default: the only output).")
@json_option
@handle_errors
def command(spec, output, weights, input_shapes, dynamic_batch, dynamic_axes, zoo_dynamic, opset, exporter, atol, rtol,
            keep_invalid, trust_torchscript, force, nms, nms_conf, nms_iou, max_det, nms_agnostic, box_format,
            nms_head, json_path):
    """Export a PyTorch model to ONNX and validate it against PyTorch.

    SPEC is zoo:NAME, package.module:factory, path/to/file.py:factory (a callable returning an nn.Module),
    or a .pt2 file saved by torch.export.save.
    """
    from edgekit.converters.torch_export import export
    from edgekit.errors import UsageError, ValidationError

    nms_given = {"conf": nms_conf, "iou": nms_iou, "max_det": max_det, "agnostic": nms_agnostic or None,
                 "box_format": box_format, "head": nms_head}
    nms_given = {k: v for k, v in nms_given.items() if v is not None}
    if not nms and nms_given:
        flags = {"conf": "--nms-conf", "iou": "--nms-iou", "max_det": "--max-det", "agnostic": "--nms-agnostic",
                 "box_format": "--box-format", "head": "--nms-head"}
        raise UsageError(f"{', '.join(flags[k] for k in nms_given)} only apply with --nms.",
                         hint="Add --nms to append box decoding and NMS, or drop those options.")
    nms_kwargs = nms_given if nms else None
    try:
        with console.status(f"Exporting {spec} …"):
            result = export(spec, output, weights=weights, input_shapes=list(input_shapes), dynamic_batch=dynamic_batch,
                            dynamic_axes=list(dynamic_axes), opset=opset, exporter=exporter, atol=atol, rtol=rtol,
                            keep_invalid=keep_invalid, force=force, trust_torchscript=trust_torchscript,
                            nms=nms_kwargs, zoo_dynamic=zoo_dynamic, log=lambda msg: console.print(f"[yellow]{msg}[/]"))
    except ValidationError:
        raise
    _render(result)
    emit_json(result.as_dict(), json_path)


def _render(result) -> None:
    table = Table(title=f"Validation against PyTorch ({result.exporter} exporter, opset {result.opset})")
    for col in ("case", "output", "max abs", "max rel", "cosine", "ok"):
        table.add_column(col)
    for v in result.validation:
        table.add_row(v["case"], v["output"], f"{v['max_abs']:.2e}", f"{v['max_rel']:.2e}", f"{v['cosine']:.6f}",
                      "[green]yes[/]" if v["ok"] else "[red]no[/]")
    out.print(table)
    console.print(f"Exporter: {result.exporter_note}")
    if "count" in result.outputs:
        console.print(f"Appended box decoding and NMS: outputs {', '.join(result.outputs)}")
    console.print(f"[green]Wrote[/] {result.path}")
