"""`edgekit profile`: per-node and per-op-type time breakdown, MACs, GMAC/s and the provider of each node."""
from __future__ import annotations

import click

from edgekit.cli.bench_cmd import input_options, parse_dim_options, runtime_options
from edgekit.cli.common import console, emit_json, handle_errors, json_option, out


@click.command(name="profile")
@click.argument("model", type=click.Path())
@runtime_options
@input_options
@click.option("--runs", type=int, default=10, show_default=True, help="Profiled runs (times are means over them).")
@click.option("--warmup", type=int, default=3, show_default=True, help="Runs before profiling counts.")
@click.option("--top", type=int, default=15, show_default=True, help="Nodes to list (the JSON has all).")
@click.option("--optimization", type=click.Choice(["disable", "basic", "extended", "all"]), default="all",
              show_default=True, help="ONNX Runtime graph-optimization level (fusions rename and merge nodes).")
@json_option
@handle_errors
def command(model, runtime, provider, threads, batch, dims, inputs, seed, runs, warmup, top, optimization, json_path):
    """Show where MODEL spends its time: slowest nodes, time per op type, MACs and achieved GMAC/s.

    ONNX models are profiled with ONNX Runtime's profiler (per node, with the provider that ran it);
    for .tflite models LiteRT offers no per-op profiler in Python, so the report gives whole-model latency
    and the MACs of each op type.

    \b
    Example:
      edgekit profile resnet.onnx --top 10
    """
    import warnings

    from edgekit.profile import profile
    from edgekit.runtimes.base import ProviderFallbackWarning

    warnings.simplefilter("ignore", ProviderFallbackWarning)
    with console.status(f"Profiling {model} ({warmup} warm-up + {runs} runs)..."):
        result = profile(model, runtime=runtime, provider=provider, threads=threads, batch=batch,
                         dims=parse_dim_options(dims), inputs=inputs, seed=seed, runs=runs, warmup=warmup,
                         optimization=optimization)
    if json_path != "-":  # stdout carries the JSON alone then
        render(result, top)
    emit_json(result, json_path)


def _num(v, fmt="{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def _macs(v) -> str:
    if not v:
        return "-"
    return (f"{v / 1e9:.2f} G" if v >= 1e9 else f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} K" if v >= 1e3
            else f"{v} ")


def render(result: dict, top: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    timed = result["per_node"]
    if timed:
        table = Table(title=f"Slowest {min(top, len(result['nodes']))} of {len(result['nodes'])} nodes",
                      title_justify="left")
        for col in ("node", "op", "provider", "ms/run", "share", "MACs", "GMAC/s"):
            table.add_column(col, justify="left" if col in ("node", "op", "provider") else "right")
        for n in result["nodes"][:top]:
            table.add_row(escape(n["name"]), n["op_type"], n["provider"], _num(n["mean_us"] / 1000),
                          f"{n['share']:.1%}", _macs(n["macs"]), _num(n["gmacs_per_s"], "{:.1f}"))
        out.print(table)
    ops = Table(title="By op type" + ("" if timed else " (static: no per-op times, see note)"), title_justify="left")
    cols = (("op type", "nodes", "ms/run", "share", "MACs", "GMAC/s", "provider") if timed
            else ("op type", "nodes", "MACs", "share of MACs", "provider"))
    for col in cols:
        ops.add_column(col, justify="left" if col in ("op type", "provider") else "right")
    for g in result["op_types"]:
        if timed:
            ops.add_row(g["op_type"], str(g["count"]), _num(g["mean_us"] / 1000), _num(g["share"], "{:.1%}"),
                        _macs(g["macs"]), _num(g["gmacs_per_s"], "{:.1f}"), ", ".join(g["providers"]))
        else:
            ops.add_row(g["op_type"], str(g["count"]), _macs(g["macs"]), _num(g.get("share_of_macs"), "{:.1%}"),
                        ", ".join(g["providers"]))
    out.print(ops)
    line = (f"{escape(result['model'])}: {result['runtime']}/{result['provider']}, {result['threads']} threads, "
            f"{result['runs']} runs; {_num(result['run_ms'])} ms per run")
    if timed:
        line += f" ({_num(result['kernel_ms'])} ms in kernels, {_num(result['overhead_ms'])} ms between them)"
    if result.get("total_macs"):
        line += (f"; {_macs(result['total_macs'])}MACs, {_num(result['gmacs_per_s'], '{:.2f}')} GMAC/s achieved")
    if len(result.get("provider_share", {})) > 1:
        line += "; time by provider: " + ", ".join(f"{p} {s:.1%}" for p, s in result["provider_share"].items())
    out.print(line)
    for note in result.get("notes", []):
        console.print(f"[yellow]note[/] {escape(note)}")
