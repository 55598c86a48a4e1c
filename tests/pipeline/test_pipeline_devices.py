"""The pipeline's `[[devices]]`: every variant benchmarked on every device through edgekit.remote, against a real
OpenSSH server on 127.0.0.1 whose "device" Python has only numpy, click, rich, LiteRT, ONNX Runtime and edgekit."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared sshd_device helper
import sshd_device  # noqa: E402
from sshd_device import sshd  # noqa: E402,F401 - the shared real-sshd fixture

from edgekit.errors import UsageError  # noqa: E402
from edgekit.pipeline import Variant, pipeline  # noqa: E402
from edgekit.pipeline.config import load_config  # noqa: E402
from edgekit.pipeline.report import recommend_on_devices  # noqa: E402

VARIANTS = ["onnx-fp32", "tflite-fp32", "tflite-int8"]


def _config(tmp_path: Path, devices: str, extra: str = "") -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(f"""{extra}
[model]
spec = "zoo:lenet"

[data]
eval_samples = 8

[variants]
include = {json.dumps(VARIANTS)}

[bench]
threads = [1]
runs = 20
{devices}""")
    return path


# ---------------------------------------------------------------- the config (no server needed)

def test_devices_in_a_pipeline_config_are_parsed_with_paths_relative_to_it(tmp_path):
    path = _config(tmp_path, '[[devices]]\nname = "pi5"\nurl = "ssh://pi@pi5.local"\nthreads = 4\n'
                             'python = "/opt/venv/bin/python"\n[[devices]]\nurl = "local"\n',
                   extra='ssh_config = "lab_ssh_config"')
    config = load_config(str(path))
    pi, local = config.devices
    assert (pi.name, pi.host, pi.user, pi.threads, pi.python) == ("pi5", "pi5.local", "pi", 4, "/opt/venv/bin/python")
    assert pi.ssh_config == str(tmp_path / "lab_ssh_config") and local.is_local
    assert config.as_dict()["devices"][0]["name"] == "pi5"


def test_a_pipeline_without_devices_has_none():
    assert load_config("zoo:lenet").devices == []


@pytest.mark.parametrize("devices, extra, needle", [
    ('[[devices]]\nurl = "ssh://a"\nport = 22\n', "", "port"),
    ('[[devices]]\nname = "a"\n', "", "no url"),
    ("", 'devices = "ssh://a"', "list of tables"),
    ('[[devices]]\nurl = "ssh://a"\n[[devices]]\nurl = "ssh://a"\n', "", "repeat"),
])
def test_bad_device_tables_are_usage_errors(tmp_path, devices, extra, needle):
    with pytest.raises(UsageError, match=needle):
        load_config(str(_config(tmp_path, devices, extra)))


def test_each_device_gets_its_own_recommendation_within_the_gate_and_budget():
    config = load_config("zoo:lenet", {"max_drop": 0.01, "latency_budget_ms": 5.0})

    def variant(name, delta, **p50):
        v = Variant(name, status="ok", accuracy={"metric": "cosine", "delta": delta})
        v.device_bench = {d: {"p50_ms": ms, "runtime": "litert", "threads": 4} for d, ms in p50.items()}
        return v
    variants = [variant("onnx-fp32", 0.0, a=2.0, b=9.0), variant("tflite-int8", -0.001, a=1.0, b=6.0),
                variant("tflite-fp16", -0.5, a=0.1, b=0.1)]     # fastest everywhere, but misses the accuracy gate
    devices = [{"name": n, "url": f"ssh://{n}", "status": "ok"} for n in ("a", "b")]
    devices.append({"name": "c", "url": "ssh://c", "status": "error", "error": {"message": "unreachable"}})
    a, b, c = recommend_on_devices(variants, config, devices)
    assert a["best"] == "tflite-int8" and "p50 1.000 ms" in a["best_reason"]
    assert b["best"] is None and "over it: onnx-fp32, tflite-int8" in b["best_reason"]
    assert c["best"] is None and "unreachable" in c["best_reason"]


# ---------------------------------------------------------------- against a real sshd



@pytest.fixture(scope="module")
def device_report(sshd, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-devices")
    python = sshd_device.device_python()
    devices = "".join(f'[[devices]]\nname = "{name}"\nurl = "ssh://{sshd.user}@127.0.0.1:{sshd.port}"\n'
                      f'python = "{python}"\ncache_dir = "{root / name}"\nthreads = 1\n'
                      for name in ("board-a", "board-b"))
    # nothing listens here: the device is reported and the others go on
    devices += f'[[devices]]\nname = "gone"\nurl = "ssh://{sshd.user}@127.0.0.1:{sshd_device.free_port()}"\n'
    path = _config(root, devices, extra=f'ssh_config = "{sshd.client_config}"')
    report = pipeline(str(path), root / "out")
    return root, report


def test_every_variant_is_benchmarked_on_every_reachable_device(device_report):
    _, report = device_report
    rows = {(r["variant"], r["device"]): r for r in report["device_rows"]}
    assert {d for _, d in rows} == {"board-a", "board-b", "gone"} and {v for v, _ in rows} == set(VARIANTS)
    for device in ("board-a", "board-b"):
        for variant in VARIANTS:
            row = rows[(variant, device)]
            assert row.get("p50_ms", 0) > 0, row
            assert row["threads"] == 1 and row["runtime"] == ("onnxruntime" if variant.startswith("onnx") else "litert")
        assert rows[("onnx-fp32", device)]["speedup"] == pytest.approx(1.0)
    assert all("error" in rows[(v, "gone")] and "p50_ms" not in rows[(v, "gone")] for v in VARIANTS)


def test_each_device_has_a_recommendation_and_an_unreachable_one_says_why(device_report):
    _, report = device_report
    devices = {d["name"]: d for d in report["devices"]}
    for name in ("board-a", "board-b"):
        d = devices[name]
        assert d["status"] == "ok" and d["environment"]["arch"] == "x86_64"
        assert "numpy" in d["environment"]["packages"] and "torch" not in d["environment"]["packages"]
        there = {r["variant"]: r["p50_ms"] for r in report["device_rows"] if r["device"] == name}
        assert d["best"] == min(there, key=there.get) and f"p50 {there[d['best']]:.3f} ms" in d["best_reason"]
    gone = devices["gone"]
    assert gone["status"] == "error" and gone["best"] is None and "could not be used" in gone["best_reason"]
    assert report["best"] in VARIANTS  # this machine's own recommendation is still made


def test_reports_show_the_devices_side_by_side(device_report):
    root, report = device_report
    md = (root / "out" / "report.md").read_text()
    section = md.split("## On devices", 1)[1]
    header = next(line for line in section.splitlines() if line.startswith("| variant"))
    assert header == "| variant | board-a | board-b | gone |"
    for name in ("board-a", "board-b"):
        best = next(d["best"] for d in report["devices"] if d["name"] == name)
        assert f"**{name}: {best}**" in section
    assert all(f"| {v} |" in section for v in VARIANTS)
    assert json.loads((root / "out" / "report.json").read_text())["devices"][0]["name"] == "board-a"
    html = (root / "out" / "report.html").read_text()
    assert '<table id="devices">' in html and "board-b" in html


def test_the_console_table_shows_the_devices_side_by_side_with_each_ones_recommendation(device_report, capsys):
    from edgekit.cli.pipeline_cmd import render
    _, report = device_report
    render(report)
    text = capsys.readouterr().out
    section = text.split("on devices", 1)[1]
    header = next(line for line in section.splitlines() if line.lstrip().startswith("variant"))
    assert header.split() == ["variant", "board-a", "board-b", "gone"]
    for row in report["device_rows"]:
        if row["device"] == "board-a":
            line = next(line for line in section.splitlines() if line.split()[:1] == [row["variant"]])
            assert f"{row['p50_ms']:.3f} ms" in line and "device not usable" in line
    for d in report["devices"]:
        assert f"Recommended on {d['name']}: {d['best'] or 'none'} — {d['best_reason'][:40]}" in section
