"""`edgekit pipeline CONFIG.toml | SPEC`."""
from __future__ import annotations

import click
from rich import box
from rich.markup import escape
from rich.table import Table

from edgekit.cli.common import console, emit_json, handle_errors, input_shape_option, json_option, out


@click.command("pipeline")
@click.argument("source", metavar="CONFIG.toml|SPEC")
@click.option("-o", "--output-dir", default="edgekit-out", show_default=True, type=click.Path(file_okay=False),
              help="Where artifacts, the step cache and the reports go.")
@click.option("--variants", help="Comma-separated subset, e.g. onnx-fp32,onnx-int8,tflite-fp32.")
@input_shape_option
@click.option("--calib", help="Calibration data (.npz, .npy folder, image folder) or 'random'.")
@click.option("--eval", "eval_data", help="Evaluation .npz keyed by input name, with optional 'labels'.")
@click.option("--threads", help="Comma-separated thread counts to benchmark, e.g. 1,2.")
@click.option("--max-drop", type=float, help="Accuracy gate: largest allowed drop vs float (0.01 = one point).")
@click.option("--latency-budget", type=float, help="Latency budget in ms (p50).")
@click.option("--fail-below", type=float, help="Exit 6 if the recommended variant's metric is below this value.")
@click.option("--ray", "ray_address", metavar="auto|ADDRESS",
              help="Build the variants as Ray tasks: 'auto' (this machine's cluster or a new local instance) or a "
                   "cluster's address. Overrides the config's [sweep] ray.")
@json_option
@handle_errors
def command(source, output_dir, variants, input_shapes, calib, eval_data, threads, max_drop, latency_budget,
            fail_below, ray_address, json_path):
    """Export, optimize, quantize, convert, validate and benchmark every variant; report which to ship.

    SOURCE is a pipeline config (TOML) or a model SPEC such as zoo:lenet. Exit 6 when no variant passes the
    gates, or the recommended one is below --fail-below.
    """
    from edgekit.errors import GateError, UsageError
    from edgekit.pipeline import pipeline

    overrides = {"variants": variants.split(",") if variants else None, "input_shapes": list(input_shapes) or None,
                 "calibration": calib, "eval": eval_data, "max_drop": max_drop, "latency_budget_ms": latency_budget,
                 "fail_below": fail_below, "ray": ray_address}
    if threads:
        try:
            overrides["threads"] = [int(t) for t in threads.split(",")]
        except ValueError:
            raise UsageError(f"--threads takes comma-separated integers, got '{threads}'.") from None
    with console.status("starting …") as status:
        def notify(step, state):
            colour = {"done": "green", "cached": "cyan", "running": "white"}.get(state, "yellow")
            if state == "running":
                status.update(f"{step} …")
            else:
                console.print(f"  [{colour}]{state:>11}[/] {step}")
        try:
            report, failure = pipeline(source, output_dir, overrides=overrides, notify=notify), None
        except GateError as exc:  # the library's gates (no variant passed, fail_below): show the report, then exit 6
            if getattr(exc, "report", None) is None:
                raise
            report, failure = exc.report, exc
    render(report)
    emit_json(report, json_path)
    if failure is not None:
        raise failure


def render(report: dict) -> None:
    from edgekit.pipeline.report import cell
    columns = [("variant", "variant"), ("threads", "thr"), ("size_mb", "MB"), ("p50_ms", "p50 ms"),
               ("speedup", "speedup"), ("value", "metric"), ("delta", "Δ"), ("status", "status")]
    metric = next(((r.get("accuracy") or {}).get("metric") for r in report["rows"] if r.get("accuracy")), "metric")
    table = Table(title=f"edgekit pipeline — {report['config']['spec']} (metric: {metric}; p90 and more in report.md)",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for _, header in columns:
        table.add_column(header, no_wrap=True)
    for row in report["rows"]:
        style = "bold green" if row["variant"] == report["best"] else ("" if row["status"] == "ok" else "red")
        table.add_row(*(row["status"] if k == "status" else cell(row, k) for k, _ in columns), style=style)
    out.print(table)
    if report.get("devices"):
        render_devices(report)
    from edgekit.pipeline.report import reasons
    for variant, reason in reasons(report):
        out.print(f"[yellow]{variant}[/]: {escape(reason.strip().splitlines()[0])}"
                  + (f" (+{len(reason.strip().splitlines()) - 1} more lines in report.md)" if "\n" in reason.strip() else ""))
    out.print(f"Evaluation: {escape(report['evaluation'])}.")
    if report["config"].get("calibration") in (None, "random"):
        out.print("[yellow]INT8 variants were calibrated on random data (no calibration set given): their accuracy "
                  "on real inputs is unknown. Pass --calib (and --eval with labels) for figures that mean something.[/]")
    out.print(f"Recommended: [bold]{report['best'] or 'none'}[/] — {report['best_reason']}.")
    if report.get("best_path"):
        out.print(f"Copied to {report['best_path']}.")
    out.print(f"Reports: {report['output_dir']}/report.md, report.html, report.json")


def render_devices(report: dict) -> None:
    """The `[[devices]]` table: a row per variant, a column per device (p50 there, speed-up over onnx-fp32 there),
    the recommended variant of each device in bold, then each device's recommendation and why."""
    from edgekit.pipeline.report import device_line, device_table
    names, rows = device_table(report)
    best = {d["name"]: d["best"] for d in report["devices"]}
    table = Table(title="on devices — p50 (speed-up over onnx-fp32 there); accuracy measured here",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    table.add_column("variant", no_wrap=True)
    for name in names:
        table.add_column(escape(name), no_wrap=True)
    for variant, cells in rows:
        table.add_row(escape(variant), *(f"[bold green]{escape(c)}[/]" if best.get(n) == variant else escape(c)
                                         for n, c in zip(names, cells)))
    out.print(table)
    for d in report["devices"]:
        out.print(f"Recommended on {escape(d['name'])}: [bold]{escape(str(d['best'] or 'none'))}[/] — "
                  f"{escape(d['best_reason'])}. Device: {escape(device_line(d))}.")
