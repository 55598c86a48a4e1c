"""`edgekit inspect MODEL`."""
from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli.common import emit_json, handle_errors, json_option, out


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--metadata", "show_metadata", is_flag=True, help="Also print every metadata entry in full.")
@click.option("--strict", is_flag=True, help="Exit 3 (invalid model) when the model is not valid.")
@json_option
@handle_errors
def command(model, show_metadata, strict, json_path):
    """Show a model's inputs, outputs, ops, parameters, quantization, MACs and file size (.onnx or .tflite),
    and whether it is valid: ONNX through onnx.checker and edgekit's graph checks (a tensor written twice, a
    cycle), TFLite through edgekit's verifier (bounds, subgraphs calling themselves, tensor writers, op order).

    An invalid model is described all the same, with "valid: no" and why; --strict makes that exit 3.
    """
    from edgekit.inspect import inspect, invalid_model_error

    info = inspect(model)
    if json_path != "-":
        render(info, show_metadata)
    emit_json(info, json_path)
    if strict and not info["valid"]:
        raise invalid_model_error(info)


def _shape(dims) -> str:
    return "x".join(str(d) for d in dims) if dims else "scalar"


def render(info: dict, show_metadata: bool = False) -> None:
    from rich.markup import escape
    out.print(f"[bold]{escape(info['file'])}[/]  {info['format'].upper()}  {info['file_size'] / 1e6:.2f} MB  "
              f"quantization: [bold]{info.get('quantization', '?')}[/]")
    if info["valid"]:
        out.print("valid: [green]yes[/]")
    else:
        out.print("valid: [bold red]no[/] — " + escape("; ".join(info["problems"])))
    for sig in info.get("signatures") or []:
        out.print(f"signature [bold]{escape(sig['key'])}[/]: inputs {escape(', '.join(sig['inputs']))}; "
                  f"outputs {escape(', '.join(sig['outputs']))}")
    io_table = Table(title="Inputs and outputs")
    for col in ("kind", "name", "dtype", "shape", "quantization"):
        io_table.add_column(col)
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            q = t.get("quantization")
            io_table.add_row(kind[:-1], t["name"], t["dtype"], _shape(t["shape"]),
                             f"scale {q['scale'][0]:.3g} zp {q['zero_point'][0]}" if q else "")
    out.print(io_table)
    facts = Table(show_header=False, title="Summary")
    facts.add_column()
    facts.add_column()
    if "opset" in info:
        facts.add_row("opset", ", ".join(f"{k} {v}" for k, v in info["opset"].items()))
    facts.add_row("nodes", str(info.get("nodes", "?")))
    facts.add_row("parameters", f"{info['parameter_count']:,}")
    for dtype, p in info["parameters"].items():
        facts.add_row(f"  {dtype}", f"{p['count']:,} values, {p['bytes'] / 1e6:.3f} MB in {p['tensors']} tensors")
    if info.get("macs") is not None:
        facts.add_row("MACs", f"{info['macs']:,} ({info['macs'] / 1e6:.2f} M)")
        for op, v in sorted(info.get("macs_by_op", {}).items(), key=lambda kv: -kv[1]):
            facts.add_row(f"  {op}", f"{v:,}")
    out.print(facts)
    _render_tensor_quantization(info.get("tensor_quantization"))
    ops = Table(title="Operators")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, n in info["ops"].items():
        ops.add_row(op, str(n))
    out.print(ops)
    meta = info.get("metadata") or {}
    if meta:
        mt = Table(title="Metadata", show_header=False)
        mt.add_column()
        mt.add_column(overflow="fold")
        for k, v in meta.items():
            text = v if isinstance(v, str) else __import__("json").dumps(v)
            mt.add_row(k, text if show_metadata or len(text) < 120 else text[:117] + "...")
        out.print(mt)


def _render_tensor_quantization(q: dict | None, limit: int = 40) -> None:
    """Per-tensor quantization of a .tflite model (the first `limit` tensors; --json has them all)."""
    if not q or not q.get("quantized"):
        return
    title = (f"Quantized tensors: {q['quantized']} ({q['activations']} activations, {q['constant']} constants; "
             f"{q['per_channel']} per-channel)" + (f" — mode {q['mode']}" if q.get("mode") else ""))
    table = Table(title=title)
    for col in ("tensor", "dtype", "kind", "scale", "zero point", "axis"):
        table.add_column(col)
    for t in q["tensors"][:limit]:
        per_channel = isinstance(t["scale"], list)
        scale = (f"{min(t['scale']):.3g}…{max(t['scale']):.3g} ({len(t['scale'])} ch)" if per_channel
                 else f"{t['scale']:.4g}")
        zp = "all 0" if per_channel and not any(t["zero_point"]) else str(t["zero_point"])
        table.add_row(t["name"], t["dtype"], "const" if t["constant"] else "activation", scale,
                      zp if len(zp) < 24 else zp[:21] + "...", str(t.get("axis", "")))
    if len(q["tensors"]) > limit:
        table.add_row(f"… {len(q['tensors']) - limit} more (--json lists all)", "", "", "", "", "")
    out.print(table)
    for island in q.get("float_islands") or []:
        out.print(f"float island: {', '.join(island['ops'])} — {island['reason']}")
