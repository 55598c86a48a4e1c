"""The pipeline report: the recommendation, and report.md / report.json / report.html with PNG plots."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from edgekit.fileio import atomic_write, to_json

#: said under every table, so no row reads as a contradiction (p50 0.068 ms next to 8,468 inf/s from a 0.118 ms mean)
FIGURES_NOTE = ("Latency columns are percentiles and the mean of the same timed runs; inf/s is 1000 / mean latency "
                "(the sustained rate, outliers included); speed-up, the latency budget and the recommendation use p50.")

COLUMNS = [("variant", "variant"), ("format", "format"), ("runtime", "runtime/provider"), ("precision", "precision"),
           ("size_mb", "size (MB)"), ("p50_ms", "p50 (ms)"), ("p90_ms", "p90 (ms)"), ("mean_ms", "mean (ms)"),
           ("throughput", "inf/s (1000 / mean)"),
           ("speedup", "speedup vs float"), ("metric", "metric"), ("value", "value"), ("delta", "Δ vs float"),
           ("status", "status")]


def recommend(variants, config):
    """The fastest variant (best p50 over thread settings) within the accuracy gate and latency budget.

    Variants that miss the gate are marked 'failed gate' with the reason, in place.
    """
    candidates = []
    for v in variants:
        if v.status != "ok":
            continue
        why = accuracy_gate_failure(v, config)
        if why:
            v.status, v.reason = "failed gate", why
            continue
        p50s = [b["p50_ms"] for b in v.bench if "p50_ms" in b]
        if not p50s:
            v.status, v.reason = "failed", "could not be benchmarked: " + "; ".join(
                str((b.get("error") or {}).get("message", b.get("error"))) for b in v.bench)
            continue
        if config.latency_budget_ms and min(p50s) > config.latency_budget_ms:
            v.status = "failed gate"
            v.reason = f"p50 {min(p50s):.3f} ms is over the {config.latency_budget_ms} ms budget"
            continue
        candidates.append((min(p50s), v))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])[1]


def accuracy_gate_failure(v, config) -> str | None:
    """Why the variant's accuracy misses max_drop, or None when it is within it."""
    delta = v.accuracy.get("delta")
    if delta is None or -delta <= config.max_drop + 1e-12:
        return None
    return (f"{v.accuracy['metric']} drops by {-delta:.4f}, more than max_drop {config.max_drop}"
            + "".join(f"; {n}" for n in (v.details.get("notes") or []) if "accuracy search" in n))


def recommend_on_devices(variants, config, devices: list[dict]) -> list[dict]:
    """Per `[[devices]]` entry: the variant with the best p50 there among those within the accuracy gate (measured
    once, on this machine) and the latency budget (on that device). Each entry is the device's info plus best and
    best_reason."""
    out = []
    for device in devices:
        name, candidates, over = device["name"], [], []
        for v in variants:
            b = v.device_bench.get(name) or {}
            if not v.accuracy or accuracy_gate_failure(v, config) or b.get("p50_ms") is None:
                continue
            if config.latency_budget_ms and b["p50_ms"] > config.latency_budget_ms:
                over.append(v.name)
                continue
            candidates.append((b["p50_ms"], v, b))
        if device.get("status") != "ok":
            err = device.get("error") or {}
            best, reason = None, f"the device could not be used: {err.get('message', err)}"
        elif not candidates:
            best, reason = None, "no variant ran there within the accuracy gate" + (
                f" and the {config.latency_budget_ms} ms latency budget (over it: {', '.join(over)})" if over else "")
        else:
            p50, v, b = min(candidates, key=lambda c: c[0])
            best = v.name
            reason = (f"fastest there within the accuracy gate (max drop {config.max_drop:.3g})"
                      + (f" and the {config.latency_budget_ms} ms latency budget" if config.latency_budget_ms else "")
                      + f": p50 {p50:.3f} ms on {b.get('runtime')} ({b.get('threads')} threads)")
        out.append({**device, "best": best, "best_reason": reason})
    return out


def device_cell(row: dict | None) -> str:
    """A variant's figures on one device: p50 and the speed-up over onnx-fp32 there, or why there are none."""
    if row is None:
        return "–"
    if row.get("p50_ms") is None:
        err = row.get("error") or {}
        return "✗ " + short_reason(str(err.get("message", err) if isinstance(err, dict) else err), 60)
    speedup = f" ({row['speedup']:.2f}×)" if row.get("speedup") else ""
    return f"{row['p50_ms']:.3f} ms{speedup}"


def device_table(report: dict) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(device names, [(variant, one cell per device)]) for the side-by-side table."""
    devices = report.get("devices") or []
    names = [d["name"] for d in devices]
    unusable = {d["name"] for d in devices if d.get("status") != "ok"}
    by_key = {(r["variant"], r["device"]): r for r in report.get("device_rows") or []}
    variants = list(dict.fromkeys(r["variant"] for r in report.get("device_rows") or []))
    return names, [(v, ["✗ device not usable (see above)" if n in unusable else device_cell(by_key.get((v, n)))
                        for n in names]) for v in variants]


def device_line(d: dict) -> str:
    env = d.get("environment") or {}
    where = ", ".join(str(x) for x in (env.get("arch"), env.get("cpu"), env.get("usable_cores") and
                                       f"{env['usable_cores']} cores") if x)
    return f"{d['name']} ({d['url']}{'; ' + where if where else ''})"


def cell(row: dict, key: str) -> str:
    acc = row.get("accuracy") or {}
    value = acc.get(key) if key in ("metric", "value", "delta") else row.get(key)
    if key == "runtime":
        return f"{row['runtime']}/{row['provider']} ({row['threads']}t)" if row.get("provider") else row["runtime"]
    if key == "status":
        return row["status"] + (f" ({short_reason(row['reason'])})" if row.get("reason") else "")
    if value is None:
        return "–"
    if key == "speedup":
        return f"{value:.2f}×"
    if key == "delta":
        return f"{value:+.4f}"
    if isinstance(value, float):
        return f"{value:.4f}" if key == "value" else f"{value:.3f}" if value < 100 else f"{value:.1f}"
    return str(value)


def short_reason(reason: str, limit: int = 90) -> str:
    first = reason.strip().splitlines()[0] if reason.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def reasons(report: dict) -> list[tuple[str, str]]:
    """(variant, full reason) for every variant that is not ok, once each."""
    seen = {}
    for row in report["rows"]:
        if row.get("reason") and row["variant"] not in seen:
            seen[row["variant"]] = row["reason"]
    return list(seen.items())


def techniques(report: dict) -> list[tuple[str, list[str]]]:
    """(variant, one line per accuracy technique the quantizer ran: metric before → after), once per variant."""
    seen: dict[str, list[str]] = {}
    for row in report["rows"]:
        steps = ((row.get("details") or {}).get("techniques") or [])
        if steps and row["variant"] not in seen:
            seen[row["variant"]] = [
                f"{t['technique']}: {t['metric']} {t['before']:.4f} → "
                + ("–" if t.get("after") is None else f"{t['after']:.4f}")
                + (" (applied)" if t["applied"] else " (not kept)") + f" — {t['detail']}" for t in steps]
    return list(seen.items())


def write_reports(report: dict, out: Path) -> None:
    plots = _plots(report, out)
    report["plots"] = [p.name for p in plots]
    atomic_write(out / "report.json", to_json(report))
    atomic_write(out / "report.md", _markdown(report))
    atomic_write(out / "report.html", _html(report, plots))


def _markdown(report: dict) -> str:
    lines = [f"# edgekit pipeline report — {report['config']['spec']}", ""]
    lines += [f"**Recommended: {report['best'] or 'none'}** — {report['best_reason']}.", "",
              f"Evaluation: {report['evaluation']}.", "",
              "| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in report["rows"]:
        lines.append("| " + " | ".join(cell(row, k).replace("|", "/") for k, _ in COLUMNS) + " |")
    lines += ["", FIGURES_NOTE]
    if report.get("devices"):
        names, table = device_table(report)
        lines += ["", "## On devices", "", "p50 latency on each device (speed-up over onnx-fp32 on the same device); "
                  "accuracy is measured once, on this machine.", ""]
        lines += [f"- **{d['name']}: {d['best'] or 'none'}** — {d['best_reason']}. Device: {device_line(d)}."
                  for d in report["devices"]]
        lines += ["", "| variant | " + " | ".join(n.replace("|", "/") for n in names) + " |",
                  "|---|" + "---|" * len(names)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in [v, *cells]) + " |" for v, cells in table]
    if techniques(report):
        lines += ["", "## Quantization accuracy techniques", ""]
        for variant, steps in techniques(report):
            lines += [f"- **{variant}**"] + [f"  - {s}" for s in steps]
    if reasons(report):
        lines += ["", "## Why some variants are not ok", ""]
        for variant, reason in reasons(report):
            lines += [f"### {variant}", "", "```", reason, "```", ""]
    env = report["environment"]
    lines += ["", f"Machine: {env.get('cpu', {}).get('model', '?') if isinstance(env.get('cpu'), dict) else env.get('cpu', '?')}; "
              f"elapsed {report['elapsed_s']:.1f} s.", ""]
    lines += [f"![{p}]({p})" for p in report.get("plots", [])]
    return "\n".join(lines) + "\n"


def _html(report: dict, plots: list[Path]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in COLUMNS)
    body = []
    for row in report["rows"]:
        cls = "ok" if row["status"] == "ok" else "bad"
        best = " best" if row["variant"] == report["best"] else ""
        body.append(f'<tr class="{cls}{best}">' + "".join(f"<td>{html.escape(cell(row, k))}</td>" for k, _ in COLUMNS)
                    + "</tr>")
    images = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{html.escape(p.stem.replace('_', ' '))}</figcaption></figure>" for p in plots)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>edgekit report — {html.escape(report['config']['spec'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;font-size:14px}}tr.bad td{{color:#a33}}tr.best td,td.best{{font-weight:bold;background:#efe}}
figure{{display:inline-block;margin:1em;vertical-align:top}}img{{max-width:100%}}</style></head>
<body><h1>edgekit pipeline report — {html.escape(report['config']['spec'])}</h1>
<p><b>Recommended: {html.escape(str(report['best'] or 'none'))}</b> — {html.escape(report['best_reason'])}.</p>
<p>Evaluation: {html.escape(report['evaluation'])}.</p>
<table id="variants"><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>
<p class="note">{html.escape(FIGURES_NOTE)}</p>
{_html_devices(report)}
<div id="plots">{images}</div>
{"".join(f"<h3>{html.escape(v)}: accuracy techniques</h3><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in steps)
         + "</ul>" for v, steps in techniques(report))}
{"".join(f"<h3>{html.escape(v)}</h3><pre>{html.escape(r)}</pre>" for v, r in reasons(report))}
</body></html>
"""


def _html_devices(report: dict) -> str:
    if not report.get("devices"):
        return ""
    names, table = device_table(report)
    best = {d["name"]: d["best"] for d in report["devices"]}
    items = "".join(f"<li><b>{html.escape(d['name'])}: {html.escape(str(d['best'] or 'none'))}</b> — "
                    f"{html.escape(d['best_reason'])}. Device: {html.escape(device_line(d))}.</li>"
                    for d in report["devices"])
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join("<tr><td>" + html.escape(v) + "</td>" + "".join(
        f'<td class="{"best" if best.get(n) == v else ""}">{html.escape(c)}</td>' for n, c in zip(names, cells))
        + "</tr>" for v, cells in table)
    return (f'<h2>On devices</h2><p>p50 latency on each device (speed-up over onnx-fp32 on the same device); '
            f'accuracy is measured once, on this machine.</p><ul id="device-recommendations">{items}</ul>'
            f'<table id="devices"><thead><tr><th>variant</th>{head}</tr></thead><tbody>{body}</tbody></table>')


def _plots(report: dict, out: Path) -> list[Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths = [_save(latency_vs_accuracy(report, plt), out / "latency_vs_accuracy.png")]
    sizes = {}
    for r in report["rows"]:
        if r.get("size_mb") is not None:
            sizes[r["variant"]] = r["size_mb"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.barh(list(sizes), list(sizes.values()), color="#4a7")
    ax.set_xlabel("size (MB)")
    ax.set_title("model size by variant")
    fig.tight_layout()
    paths.append(_save(fig, out / "size_by_variant.png"))
    plt.close("all")
    return paths


MARKERS = "osD^vP<>Xph"


def latency_vs_accuracy(report: dict, plt):
    """The scatter of p50 latency against the metric, one marker and colour per point and a legend under the
    axes: variants often land within a hair of each other (eight int8/fp16/fp32 variants at 0.05-0.07 ms and
    99.99 % accuracy), where text labels at the points overlap into a smudge. Ticks are plain numbers (no offset
    or scientific notation); matplotlib picks the decimals from the tick spacing."""
    from matplotlib.ticker import ScalarFormatter
    points = [(r, (r.get("accuracy") or {}).get("value")) for r in report["rows"] if r.get("p50_ms") is not None]
    points = [(r, v) for r, v in points if v is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = plt.get_cmap("tab10").colors
    for i, (r, value) in enumerate(points):
        best = r["variant"] == report["best"]
        label = f"{r['variant']} ({r['threads']}t): {r['p50_ms']:.6g} ms, {value:.6g}" + (" — recommended" if best else "")
        ax.scatter(r["p50_ms"], value, s=170 if best else 60, marker="*" if best else MARKERS[i % len(MARKERS)],
                   color=colours[i % len(colours)], edgecolors="black", linewidths=0.5, alpha=0.85, label=label,
                   zorder=3 if best else 2)
    metric = next(((r.get("accuracy") or {}).get("metric") for r, _ in points), "metric")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel(metric)
    ax.set_title("latency vs accuracy")
    ax.grid(alpha=0.3)
    for axis in (ax.xaxis, ax.yaxis):
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        axis.set_major_formatter(formatter)
    if points:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False,
                  title=f"variant (threads): p50, {metric}", title_fontsize=8)
    return fig


def _save(fig, dest: Path) -> Path:
    def write(tmp):
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    atomic_write(dest, write)
    return dest
