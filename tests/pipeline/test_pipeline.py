"""The pipeline end to end: LeNet trained on digits, every variant ok or explained, cache, report, rendering."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import UsageError
from edgekit.pipeline import pipeline
from edgekit.pipeline.config import VARIANTS, load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quantize"))  # tests/quantize: the digits helpers
import digits_models  # noqa: E402 - plain functions, no fixtures


@pytest.fixture(scope="module")
def digits_project(tmp_path_factory):
    """A trained LeNet (safetensors), calibration and labelled held-out eval sets, and a pipeline config."""
    import torch
    from safetensors.torch import save_file
    helpers = digits_models
    root = tmp_path_factory.mktemp("digits_project")
    model, x, y = helpers.train_lenet_digits()
    held = helpers.HELD_OUT
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "lenet.safetensors"))
    np.savez(root / "calib.npz", image=x[:200])
    np.savez(root / "eval.npz", image=x[-held:], labels=y[-held:])
    with torch.no_grad():
        float_acc = float((model(torch.from_numpy(x[-held:])).argmax(1).numpy() == y[-held:]).mean())
    (root / "pipeline.toml").write_text("""
[model]
spec = "zoo:lenet"
weights = "lenet.safetensors"

[data]
calibration = "calib.npz"
eval = "eval.npz"
eval_samples = 400

[bench]
threads = [2]
min_time = 0.3

[gate]
max_drop = 0.01
""")
    return root, float_acc


@pytest.fixture(scope="module")
def digits_report(digits_project):
    root, float_acc = digits_project
    events = []
    report = pipeline(str(root / "pipeline.toml"), root / "out", notify=lambda s, st: events.append((s, st)))
    return root, report, events, float_acc


def test_every_variant_is_ok_or_explained(digits_report):
    root, report, _, float_acc = digits_report
    rows = {r["variant"]: r for r in report["rows"]}
    assert set(rows) == set(VARIANTS)
    for row in rows.values():
        assert row["status"] in ("ok", "failed gate", "unavailable", "failed")
        if row["status"] != "ok":
            assert row["reason"], row
    fp32 = rows["onnx-fp32"]
    assert fp32["status"] == "ok" and fp32["p50_ms"] > 0
    assert abs(fp32["accuracy"]["accuracy"] - float_acc) < 1e-9  # the ONNX export scores exactly like PyTorch
    int8 = rows["onnx-int8"]
    assert int8["status"] in ("ok", "failed gate")
    assert int8["accuracy"]["accuracy"] >= float_acc - 0.01
    assert report["best"] in rows and rows[report["best"]]["status"] == "ok"
    assert Path(report["best_path"]).read_bytes() == Path(rows[report["best"]]["path"]).read_bytes()


def test_reports_written(digits_report):
    root, report, _, _ = digits_report
    out = root / "out"
    for name in ("report.md", "report.json", "report.html", "latency_vs_accuracy.png", "size_by_variant.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["best"] == report["best"]
    md = (out / "report.md").read_text()
    assert f"Recommended: {report['best']}" in md and "| onnx-int8 |" in md


def test_rerun_uses_the_cache_and_reruns_what_changed(digits_report, tmp_path):
    root, report, _, _ = digits_report
    out = tmp_path / "out"  # a copy, so the other tests keep reading the first run's reports
    shutil.copytree(root / "out", out)
    events = []
    pipeline(str(root / "pipeline.toml"), out, notify=lambda s, st: events.append((s, st)))
    ok = {r["variant"] for r in report["rows"] if r["status"] == "ok"}
    built = [s for s, st in events if st == "running" and (s in ok or s == "export")]
    assert built == [], f"steps rebuilt although nothing changed: {built}"
    (out / "onnx-int8.onnx").write_bytes(b"half a file")  # a damaged artifact is never trusted
    events.clear()
    pipeline(str(root / "pipeline.toml"), out, overrides={"variants": ["onnx-int8"]},
             notify=lambda s, st: events.append((s, st)))
    assert ("onnx-int8", "running") in events and ("onnx-fp32", "cached") in events


def test_html_renders_in_headless_chromium(digits_report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    root, report, _, _ = digits_report
    page = (root / "out" / "report.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,1200", page],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert '<table id="variants">' in dom and dom.count("data:image/png;base64,") == 2
    assert report["best"] in dom


def test_config_errors(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text("[model]\nspec = 'zoo:lenet'\n[gate]\nmax_drops = 0.1\n")
    with pytest.raises(UsageError, match="Unknown keys.*gate.max_drops"):
        load_config(str(bad))
    bad.write_text("[model\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(str(bad))
    with pytest.raises(UsageError, match="Unknown variants"):
        load_config("zoo:lenet", {"variants": ["onnx-int4"]})
    bad.write_text("[model]\nspec = 'zoo:lenet'\n[variants]\ninclude = 'onnx-fp32'\n[gate]\nmax_drop = '1%'\n")
    with pytest.raises(UsageError, match="wrong type: variants = 'onnx-fp32', max_drop = '1%'"):
        load_config(str(bad))
    bad.write_text("[model]\nspec = 'zoo:lenet'\n[data]\neval = 'missing.npz'\n")
    with pytest.raises(UsageError, match="missing.npz' does not exist"):
        load_config(str(bad))


def test_cli_zoo_default_and_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "pipeline", "zoo:mlp", "-o", str(tmp_path / "o"),
                           "--variants", "onnx-fp32,onnx-int8-dynamic,tflite-fp32", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert {r["variant"] for r in report["rows"]} == {"onnx-fp32", "onnx-int8-dynamic", "tflite-fp32"}
    assert "Recommended" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "pipeline", "zoo:mlp", "-o", str(tmp_path / "o"),
                           "--variants", "onnx-fp32", "--fail-below", "1.5"], capture_output=True, text=True)
    assert proc.returncode == 6 and "below --fail-below" in proc.stderr


def _close_variants_report() -> dict:
    """Eight variants within 0.02 ms and 1e-5 accuracy of each other: the case that made labels a smudge."""
    rows = []
    for i, name in enumerate(VARIANTS):
        p50 = 0.0650 + 0.0025 * i
        rows.append({"variant": name, "format": name.split("-")[0], "runtime": "onnxruntime", "provider": "cpu",
                     "threads": 2, "precision": name.split("-")[-1], "size_mb": 0.4 - 0.03 * i, "p50_ms": p50,
                     "p90_ms": p50 * 1.2, "mean_ms": p50 * 1.7, "throughput": 1000 / (p50 * 1.7), "speedup": 1.0,
                     "status": "ok", "reason": None,
                     "accuracy": {"metric": "accuracy", "value": 0.99999 + 1e-6 * (i % 3), "delta": 0.0}})
    assert len(rows) == 8
    return {"config": {"spec": "zoo:lenet"}, "rows": rows, "best": rows[2]["variant"], "best_reason": "fastest",
            "evaluation": "synthetic", "environment": {"cpu": {"model": "test"}}, "elapsed_s": 1.0}


def test_scatter_of_eight_close_variants_is_legible():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgekit.pipeline.report import latency_vs_accuracy
    report = _close_variants_report()
    fig = latency_vs_accuracy(report, plt)
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert [t.split(" (")[0] for t in texts] == [r["variant"] for r in report["rows"]]
    assert sum("recommended" in t for t in texts) == 1
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in legend.get_texts()]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])  # every label readable
    for axis in (ax.xaxis, ax.yaxis):
        assert axis.get_offset_text().get_text() == ""  # no "1e-5 + 9.999e-1"
        labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels  # enough decimals to tell ticks apart
        for label in labels:
            float(label.replace("\u2212", "-"))  # plain numbers, no 'e' notation
            assert "e" not in label
    plt.close(fig)


def test_every_throughput_figure_says_it_is_from_the_mean(tmp_path):
    from edgekit.pipeline.report import COLUMNS, FIGURES_NOTE, write_reports
    report = _close_variants_report()
    write_reports(report, tmp_path)
    assert dict(COLUMNS)["throughput"] == "inf/s (1000 / mean)" and "mean (ms)" in dict(COLUMNS).values()
    md = (tmp_path / "report.md").read_text()
    assert "| inf/s (1000 / mean) |" in md and FIGURES_NOTE in md
    row = next(line for line in md.splitlines() if line.startswith("| onnx-fp32 |"))
    p50, mean, rate = (float(row.split(" | ")[i]) for i in (5, 7, 8))
    assert mean > p50 and rate == pytest.approx(1000 / mean, rel=0.01)  # the rate matches the mean beside it


def test_report_of_eight_close_variants_renders_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    from edgekit.pipeline.report import write_reports
    write_reports(_close_variants_report(), tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "screenshot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,1200",
                    (tmp_path / "report.html").resolve().as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
