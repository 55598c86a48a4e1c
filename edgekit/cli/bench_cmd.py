"""`edgekit bench`: latency, throughput and memory of one or more models, as a comparison table."""
from __future__ import annotations

import click
from rich.markup import escape

from edgekit.cli.common import console, emit_json, fail, handle_errors, json_option, out


def parse_dim_options(values) -> dict[str, int]:
    from edgekit.inputs import parse_dims
    dims: dict[str, int] = {}
    for v in values:
        dims.update(parse_dims(v))
    return dims


def runtime_options(f):
    """--runtime, --provider, --threads: shared by bench, profile and compare."""
    f = click.option("--threads", type=int, default=None,
                     help="Intra-op threads (default: every usable core, for every runtime).")(f)
    f = click.option("--provider", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                     help="ONNX Runtime execution provider; cuda is an error where it is not installed.")(f)
    f = click.option("--runtime", type=click.Choice(["auto", "onnxruntime", "litert"]), default="auto",
                     show_default=True, help="Runtime (auto: by file format).")(f)
    return f


def input_options(f=None, *, images: bool = False):
    """--batch, --dim, --inputs, --seed: shared by bench, profile and compare (images=True: --inputs also takes
    image files and folders, repeatable, and arrives as a tuple)."""
    if f is None:
        return lambda g: input_options(g, images=images)
    f = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")(f)
    f = click.option("--inputs", "inputs", type=click.Path(dir_okay=images), default=None, multiple=images,
                     help="Real inputs: an .npz keyed by input name" + (
                         ", or images (files or a folder; repeatable) read through --preprocess" if images else "")
                     + " (random data matching dtype and range otherwise).")(f)
    f = click.option("--dim", "dims", multiple=True, metavar="LABEL=SIZE",
                     help="Size of a dynamic dimension, e.g. --dim seq=32 (repeatable, or comma-separated).")(f)
    f = click.option("--batch", type=int, default=None, help="Batch size for a dynamic (or size-1) first dimension.")(f)
    return f


def device_options(f):
    """--device, --devices, --ssh-config, --clean-device-cache: run on devices over SSH (edgekit.remote)."""
    f = click.option("--clean-device-cache", is_flag=True,
                     help="Empty each device's model cache first (alone, without MODELs: just that).")(f)
    f = click.option("--ssh-config", type=click.Path(dir_okay=False), default=None,
                     help="ssh_config file for the devices (default: ssh's own, ~/.ssh/config).")(f)
    f = click.option("--devices", "devices_file", type=click.Path(dir_okay=False), default=None,
                     help="A TOML file of [[devices]] (url, python, threads, cache_dir).")(f)
    f = click.option("--device", "device_urls", multiple=True, metavar="ssh://USER@HOST[:PORT]",
                     help="Run on this device over SSH (repeatable; 'local' adds this machine; "
                          "?python=PATH&threads=N after the address).")(f)
    return f


@click.command(name="bench")
@click.argument("models", nargs=-1, type=click.Path())
@runtime_options
@input_options
@click.option("--runs", type=int, default=None, help="Timed runs (default: as many as fit in --min-time).")
@click.option("--min-time", type=float, default=None,
              help="Seconds of timed runs per model, at least 10 runs (default 1.0).")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed runs before timing.")
@click.option("--time-limit", type=float, default=None, metavar="S",
              help="Stop a model's timing after S seconds (results so far are kept and marked); a model still "
                   "busy 10 s later (e.g. stuck loading) is stopped and reported.")
@click.option("--optimization", type=click.Choice(["disable", "basic", "extended", "all"]), default=None,
              help="ONNX Runtime graph-optimization level (default: all).")
@click.option("--samples", is_flag=True, help="Include every latency sample in the JSON.")
@click.option("--in-process", is_flag=True,
              help="Measure in this process instead of one fresh process per model (memory figures then "
                   "include everything loaded before).")
@device_options
@json_option
@handle_errors
def command(models, runtime, provider, threads, batch, dims, inputs, seed, runs, min_time, warmup, time_limit,
            optimization, samples, in_process, device_urls, devices_file, ssh_config, clean_device_cache, json_path):
    """Benchmark MODEL files (.onnx, .tflite) on ONNX Runtime or LiteRT.

    Reports load time, first inference, latency (min/p50/p90/p99/mean/std), throughput, the peak memory the
    model adds (each model runs in its own process) and file size; several models give one table with ratios
    against the first.

    \b
    Examples:
      edgekit bench resnet.onnx
      edgekit bench resnet.onnx resnet_int8.onnx resnet.tflite --threads 1 --json bench.json
      edgekit bench resnet.tflite --device ssh://pi@pi5.local --device local
    """
    import warnings

    from edgekit.errors import UsageError
    if device_urls or devices_file or clean_device_cache:
        return _bench_on_devices(models, device_urls, devices_file, ssh_config, clean_device_cache, json_path,
                                 dict(runtime=runtime, provider=provider, threads=threads, batch=batch,
                                      dims=parse_dim_options(dims), inputs=inputs, seed=seed, runs=runs,
                                      min_time=min_time, warmup=warmup, time_limit=time_limit, samples=samples,
                                      optimization=optimization))
    if not models:
        raise UsageError("No model given.", hint="Name one or more .onnx/.tflite files.")

    from edgekit.bench import bench, error_from_dict
    from edgekit.runtimes.base import ProviderFallbackWarning

    warnings.simplefilter("ignore", ProviderFallbackWarning)  # printed from the result notes instead
    with _Progress(len(models), runs, min_time) as progress:
        report = bench(list(models), runtime=runtime, provider=provider, threads=threads, batch=batch,
                       dims=parse_dim_options(dims), inputs=inputs, seed=seed, runs=runs, min_time=min_time,
                       warmup=warmup, time_limit=time_limit, isolate=not in_process, keep_going=len(models) > 1,
                       samples=samples, optimization=optimization, progress=progress.update)
    if json_path != "-":  # stdout carries the JSON alone then
        render(report)
    emit_json(report, json_path)
    failed = [m for m in report["models"] if m["status"] != "ok"]
    if failed:
        fail(error_from_dict(failed[0]["error"]))


def _bench_on_devices(models, device_urls, devices_file, ssh_config, clean_device_cache, json_path, options):
    from edgekit.bench import error_from_dict
    from edgekit.errors import UsageError
    from edgekit.remote import bench_devices, clean_devices, load_devices, parse_device
    devices = load_devices(devices_file) if devices_file else []
    settings = {"ssh_config": ssh_config} if ssh_config else {}
    devices += [parse_device(url, **settings) for url in device_urls]
    if ssh_config:
        for d in devices:
            d.ssh_config = d.ssh_config or ssh_config
    if not devices:
        raise UsageError("--clean-device-cache needs devices.", hint="Add --device ssh://user@host or --devices FILE.")
    if not models:
        if not clean_device_cache:
            raise UsageError("No model given.", hint="Name one or more .onnx/.tflite files.")
        report = clean_devices(devices)
        for d in report["devices"]:
            console.print(f"{escape(d['name'])}: " + (f"removed {d['removed']} cached file(s) from {escape(d['cache_dir'])}"
                          if d["status"] == "ok" else f"[red]failed[/] {escape(d['error']['message'])}"))
        emit_json(report, json_path)
        return
    with _Progress(len(models) * len(devices), options["runs"], options["min_time"]) as progress:
        report = bench_devices(models, devices, clean_cache=clean_device_cache, progress=progress.update, **options)
    if json_path != "-":
        render_devices(report)
    emit_json(report, json_path)
    failed = [m for m in report["models"] if m["status"] != "ok"]
    if failed:
        fail(error_from_dict(failed[0]["error"]))


def render_devices(report: dict) -> None:
    """One row per device × model, ratios against the first row that ran."""
    from pathlib import Path

    from rich.table import Table

    from edgekit.envinfo import summary
    table = Table(title="edgekit bench on devices", title_justify="left")
    for name, justify in [("device", "left"), ("model", "left"), ("runtime", "left"), ("threads", "right"),
                          ("load ms", "right"), ("p50 ms", "right"), ("p90 ms", "right"), ("p99 ms", "right"),
                          ("mean ms", "right"), ("inf/s (1/mean)", "right"), ("peak mem Δ", "right"),
                          ("p50 vs first", "right"), ("speed-up", "right")]:
        table.add_column(name, justify=justify)
    for row, ratio in zip(report["models"], report["comparison"]):
        head = [escape(row["device"]), escape(Path(row["model"]).name)]
        if row["status"] != "ok":
            table.add_row(*head, f"[red]failed[/]: {escape(row['error']['message'])}", *[""] * 10)
            continue
        lat = row["latency"]
        table.add_row(*head, f"{row['runtime']}/{row['provider']}", str(row["threads"]), _fmt_ms(row["load_ms"]),
                      f"[bold]{_fmt_ms(lat['p50_ms'])}[/]", _fmt_ms(lat["p90_ms"]), _fmt_ms(lat["p99_ms"]),
                      _fmt_ms(lat["mean_ms"]), _fmt_rate(row["throughput"]["inferences_per_s"]),
                      f"{row['memory']['peak_rss_delta_mb']:.1f} MB",
                      f"{ratio['p50_ratio']:.2f}×" if ratio.get("p50_ratio") else "-",
                      f"{ratio['speedup']:.2f}×" if ratio.get("speedup") else "-")
    out.print(table)
    for d in report["devices"]:
        if d["status"] == "ok":
            up = d.get("uploads", [])
            sent = f"; uploaded {len(up)} file(s), {_fmt_size(sum(u['bytes'] for u in up))}" if up else \
                ("; models from its cache" if "uploads" in d else "")
            out.print(f"[dim]{escape(d['name'])}: {escape(summary(d['environment']))}{escape(sent)}[/]")
    for row in report["models"]:
        for note in row.get("notes", []):
            console.print(f"[yellow]note[/] {escape(row['device'])}: {escape(row['model'])}: {escape(note)}")
    for row in [r for r in report["models"] if r["status"] != "ok"][1:]:
        if row["error"].get("hint"):
            console.print(f"[red]failed[/] {escape(row['device'])}: {escape(row['model'])}: "
                          f"{escape(row['error']['hint'])}")


class _Progress:
    """A rich progress bar per model; the timing phase advances by elapsed time against the expected time."""

    def __init__(self, n_models: int, runs, min_time):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        self.runs, self.min_time = runs, min_time
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[phase]}"),
                                 TimeElapsedColumn(), console=console, transient=True)
        self.tasks: dict[int, int] = {}
        self.timing: dict[int, tuple[float, float]] = {}  # row → (timing started, expected seconds)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def update(self, event: dict) -> None:
        import time

        from edgekit.timing import DEFAULT_MIN_TIME, MIN_RUNS
        idx, phase = event["index"], event["phase"]
        if phase == "start":
            self.tasks[idx] = self.progress.add_task(str(event["model"]), total=1.0, phase="starting")
            self.timing.pop(idx, None)
            return
        task = self.tasks.get(idx)
        if task is None:
            return
        if phase == "load":
            self.progress.update(task, phase="loading", completed=0.02)
        elif phase == "timing":
            per_run_s = max(event.get("warmup_ms") or 0.0, 1e-6) / 1000
            if self.runs:
                expected_s = self.runs * per_run_s
            else:
                expected_s = max(self.min_time or DEFAULT_MIN_TIME, MIN_RUNS * per_run_s)
            self.timing[idx] = (time.monotonic(), expected_s)
            self.progress.update(task, phase="timing", completed=0.05)
        elif phase == "tick" and idx in self.timing and self.timing[idx][1]:
            started, expected_s = self.timing[idx]
            frac = min(0.99, 0.05 + 0.95 * (time.monotonic() - started) / expected_s)
            self.progress.update(task, completed=frac)
        elif phase == "done":
            status = event["result"]["status"]
            self.progress.update(task, completed=1.0, phase="done" if status == "ok" else "failed")


def _fmt_ms(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def _fmt_rate(v) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _fmt_size(n) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render(report: dict) -> None:
    """One column per model (reads well for 1-5 models in a terminal), one row per figure."""
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from edgekit.envinfo import summary
    models = report["models"]
    ratios = {r["model"]: r for r in report.get("comparison", [])}
    table = Table(title="edgekit bench", title_justify="left")
    table.add_column("")
    for m in models:
        table.add_column(escape(Path(m["model"]).name), justify="right")

    def cell(m, fn):
        if m["status"] != "ok":
            return "[red]failed[/]"
        try:
            return fn(m)
        except (KeyError, TypeError):
            return "-"
    rows = [
        ("runtime", lambda m: f"{m['runtime']}/{m['provider']}"),
        ("threads", lambda m: str(m["threads"] or "default")),
        ("batch", lambda m: str(m["batch"])),
        ("file size", lambda m: _fmt_size(m["file_size_bytes"])),
        ("load ms", lambda m: _fmt_ms(m["load_ms"])),
        ("first run ms", lambda m: _fmt_ms(m["first_ms"])),
        ("min ms", lambda m: _fmt_ms(m["latency"]["min_ms"])),
        ("p50 ms", lambda m: f"[bold]{_fmt_ms(m['latency']['p50_ms'])}[/]"),
        ("p90 ms", lambda m: _fmt_ms(m["latency"]["p90_ms"])),
        ("p99 ms", lambda m: _fmt_ms(m["latency"]["p99_ms"])),
        ("mean ± std ms", lambda m: f"{_fmt_ms(m['latency']['mean_ms'])} ± {_fmt_ms(m['latency']['std_ms'])}"),
        ("timed runs", lambda m: str(m["latency"]["runs"]) + (" (stopped)" if m["latency"]["stopped_early"] else "")),
        ("inferences/s (1/mean)", lambda m: _fmt_rate(m["throughput"]["inferences_per_s"])),
        ("samples/s (1/mean)", lambda m: _fmt_rate(m["throughput"]["samples_per_s"])),
        ("peak memory Δ", lambda m: f"{m['memory']['peak_rss_delta_mb']:.1f} MB"),
    ]
    if len(models) > 1:
        rows += [("p50 vs first", lambda m: f"{ratios[m['model']]['p50_ratio']:.2f}×"),
                 ("speed-up vs first", lambda m: f"{ratios[m['model']]['speedup']:.2f}×"),
                 ("memory vs first", lambda m: f"{ratios[m['model']]['memory_ratio']:.2f}×"),
                 ("size vs first", lambda m: f"{ratios[m['model']]['size_ratio']:.2f}×")]
    for label, fn in rows:
        table.add_row(label, *(cell(m, fn) for m in models))
    out.print(table)
    env = report["environment"]
    out.print(f"[dim]{escape(summary(env))}; inputs {escape(str(report['settings']['inputs']))}; "
              f"memory: peak RSS over the process baseline after imports[/]")
    for m in models:
        for note in m.get("notes", []):
            console.print(f"[yellow]note[/] {escape(m['model'])}: {escape(note)}")
    for m in [m for m in models if m["status"] != "ok"][1:]:  # the first failure ends the command, printed then
        console.print(f"[red]failed[/] {escape(m['model'])}: {escape(m['error']['message'])}")
