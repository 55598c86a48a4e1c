"""edgekit bench --device: against a real OpenSSH server on 127.0.0.1 whose "device" Python is a separate venv
with only numpy, click, rich, LiteRT and ONNX Runtime (plus edgekit from a wheel, no dependencies)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "runtimes"))
import sshd_device  # noqa: E402
from sshd_device import sshd  # noqa: E402,F401 - the shared real-sshd fixture
from rt_models import conv_model, fully_connected  # noqa: E402

from edgekit.cli import main  # noqa: E402
from edgekit.errors import UsageError  # noqa: E402
from edgekit.remote import (Connection, bench_devices, file_sha256, load_devices, parse_device,  # noqa: E402
                            ssh_argv)

# ---------------------------------------------------------------- device addresses and files (no server needed)


def test_device_url_with_user_port_and_settings():
    d = parse_device("ssh://pi@board.local:2222?python=/opt/venv/bin/python&threads=4&cache=/data/ek")
    assert (d.user, d.host, d.port, d.python, d.threads, d.cache_dir) == (
        "pi", "board.local", 2222, "/opt/venv/bin/python", 4, "/data/ek")
    assert d.name == "pi@board.local:2222" and d.url == "ssh://pi@board.local:2222"


@pytest.mark.parametrize("spec, needle", [
    ("pi@board", "not a device address"), ("ssh://pi:secret@board", "password"),
    ("ssh://board:port", "port"), ("ssh://board?gpu=1", "Unknown device setting"), ("ssh://b?threads=0", "positive"),
])
def test_bad_device_urls_are_usage_errors(spec, needle):
    with pytest.raises(UsageError, match=needle):
        parse_device(spec)


def test_ssh_command_checks_host_keys_and_never_prompts():
    argv = ssh_argv(parse_device("ssh://pi@board:2222"), ["python3", "-c", "print('hi there')"])
    opts = " ".join(argv)
    assert "BatchMode=yes" in opts and "StrictHostKeyChecking=yes" in opts and "-a" in argv
    assert argv[-2:] == ["board", "python3 -c 'print('\"'\"'hi there'\"'\"')'"]


def test_devices_file(tmp_path):
    (tmp_path / "devices.toml").write_text('ssh_config = "lab_ssh_config"\n'
                                           '[[devices]]\nname = "pi5"\nurl = "ssh://pi@pi5"\nthreads = 4\n'
                                           'python = "~/venv/bin/python"\n'
                                           '[[devices]]\nurl = "local"\n')
    pi, local = load_devices(tmp_path / "devices.toml")
    assert (pi.name, pi.threads, pi.python, pi.ssh_config) == ("pi5", 4, "~/venv/bin/python",
                                                                str(tmp_path / "lab_ssh_config"))
    assert local.is_local
    assert ssh_argv(pi, [pi.python])[-1] == "~/venv/bin/python"  # the device's shell expands ~
    (tmp_path / "bad.toml").write_text('[[devices]]\nurl = "ssh://a"\nport = 22\n')
    with pytest.raises(UsageError, match="port"):
        load_devices(tmp_path / "bad.toml")


# ---------------------------------------------------------------- against a real sshd



@pytest.fixture(scope="module")
def device_py():
    return str(sshd_device.device_python())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote-models")
    tfl = root / "fc.tflite"
    tfl.write_bytes(fully_connected(np.eye(3, 4, dtype=np.float32)))
    return conv_model(root / "conv.onnx"), tfl


def device(sshd, python, cache, name=None):
    d = parse_device(sshd.url(python=python, cache=str(cache), name=name))
    d.ssh_config = str(sshd.client_config)
    return d


def leftovers(cache: Path) -> tuple[list[str], list[str]]:
    """Processes whose command line names the cache dir (ssh clients, agents, workers) and temp files in it."""
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(cache) in cmd and int(pid) != os.getpid():
            procs.append(f"{pid}: {cmd[:2000]}")
    temps = [p.name for p in cache.iterdir() if p.name.startswith((".part-", ".run-"))] if cache.exists() else []
    return procs, temps


def worker_pids(cache: Path) -> list[int]:
    """The bench workers running on the device: `python -m edgekit.bench CACHE/.run-*/job.json ...`."""
    return [int(p.split(":")[0]) for p in leftovers(cache)[0] if f"-m edgekit.bench {cache}/.run-" in p]


def upload_agent_pids(python: str, cache: Path) -> list[int]:
    """The device agents receiving an upload into `cache`: `PYTHON -c SOURCE upload CACHE NAME SHA SIZE`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if argv[0] == python and argv[3:5] == ["upload", str(cache)]:
            pids.append(int(pid))
    return pids


def wait_clean(cache: Path, seconds: float = 15.0) -> tuple[list[str], list[str]]:
    deadline = time.monotonic() + seconds
    while True:
        found = leftovers(cache)
        if not any(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_tflite_and_onnx_on_one_device_with_the_models_cached(sshd, device_py, models, tmp_path):
    cache = tmp_path / "cache"
    dev = device(sshd, device_py, cache)
    report = bench_devices(models, [dev], runs=20, warmup=2)
    info = report["devices"][0]
    assert info["status"] == "ok" and info["executable"] == device_py and len(info["uploads"]) == 2
    for row, model in zip(report["models"], models):
        assert row["status"] == "ok", row.get("error")
        assert row["model"] == str(model) and row["device"] == dev.name
        assert row["latency"]["runs"] == 20 and 0 < row["latency"]["p50_ms"] <= row["latency"]["p99_ms"]
        assert row["load_ms"] > 0 and row["memory"]["peak_rss_delta_mb"] >= 0
        assert row["remote_path"] == str(cache / f"{file_sha256(model)}.{model.suffix[1:]}")
        packages = row["environment"]["packages"]
        assert {"numpy", "onnxruntime", "ai-edge-litert"} <= set(packages) and not {"torch", "onnx"} & set(packages)
    assert [r["runtime"] for r in report["models"]] == ["onnxruntime", "litert"]
    assert report["comparison"][1]["p50_ratio"] == pytest.approx(
        report["models"][1]["latency"]["p50_ms"] / report["models"][0]["latency"]["p50_ms"])
    again = bench_devices(models, [dev], runs=5, warmup=0)
    assert again["devices"][0]["uploads"] == [] and all(r["status"] == "ok" for r in again["models"])
    assert wait_clean(cache) == ([], [])


def test_device_python_has_no_torch_or_onnx(device_py):
    proc = subprocess.run([device_py, "-c", "import importlib.util as u; print([m for m in ('torch', 'onnx', "
                                            "'onnxscript', 'tensorflow') if u.find_spec(m)])"],
                          capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_cli_two_devices_at_once_and_json(sshd, device_py, models, tmp_path):
    urls = [sshd.url(python=device_py, cache=str(tmp_path / c), name=c) for c in ("board-a", "board-b")]
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", *map(str, models), "--device", urls[0], "--device", urls[1],
                                    "--ssh-config", str(sshd.client_config), "--runs", "10", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "board-a" in res.output and "board-b" in res.output and "p50 vs first" in res.output
    report = json.loads(out.read_text())
    assert [(r["device"], Path(r["model"]).name) for r in report["models"]] == [
        ("board-a", "conv.onnx"), ("board-a", "fc.tflite"), ("board-b", "conv.onnx"), ("board-b", "fc.tflite")]
    assert all(r["status"] == "ok" for r in report["models"]) and len(report["comparison"]) == 4


def test_devices_file_and_clean_device_cache(sshd, device_py, models, tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "devices.toml").write_text(
        f'ssh_config = "{sshd.client_config}"\n[[devices]]\nname = "bench-board"\nurl = "{sshd.url()}"\n'
        f'python = "{device_py}"\nthreads = 1\ncache_dir = "{cache}"\n')
    res = CliRunner().invoke(main, ["bench", str(models[1]), "--devices", str(tmp_path / "devices.toml"),
                                    "--runs", "5", "--json", "-"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout[res.stdout.index("{"):])
    assert report["models"][0]["threads"] == 1 and len(list(cache.glob("*.tflite"))) == 1
    res = CliRunner().invoke(main, ["bench", "--devices", str(tmp_path / "devices.toml"), "--clean-device-cache"])
    assert res.exit_code == 0 and "removed 1 cached file" in res.output, res.output
    assert list(cache.iterdir()) == []


def test_unreachable_device_is_reported_and_the_others_continue(sshd, device_py, models, tmp_path):
    dead = parse_device(f"ssh://root@127.0.0.1:{sshd_device.free_port()}?name=dead")
    dead.ssh_config = str(sshd.client_config)
    report = bench_devices([models[1]], [dead, device(sshd, device_py, tmp_path / "c", "alive")], runs=5)
    bad, good = report["models"]
    assert good["status"] == "ok" and report["devices"][1]["status"] == "ok"
    assert bad["status"] == "error" and "unreachable" in bad["error"]["message"] and bad["error"]["exit_code"] == 7
    assert "Connection refused" in bad["error"]["message"]


def test_device_without_edgekit_gets_the_pip_line(sshd, models, tmp_path):
    bare = str(sshd_device.bare_python())
    res = CliRunner().invoke(main, ["bench", *map(str, models), "--device", sshd.url(python=bare, cache=str(tmp_path)),
                                    "--ssh-config", str(sshd.client_config), "--runs", "3"])
    assert res.exit_code == 7, res.output
    assert "has no edgekit" in res.output
    assert f'{bare} -m pip install --upgrade "edgekit[onnx,tflite]>=0.1.0"' in " ".join(res.output.split())


def test_too_old_edgekit_gets_the_pip_line(sshd, device_py, models, tmp_path):
    (tmp_path / "old" / "edgekit").mkdir(parents=True)
    (tmp_path / "old" / "edgekit" / "__init__.py").write_text('__version__ = "0.0.9"\n')
    wrapper = tmp_path / "python-old"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "old"} exec {device_py} "$@"\n')
    wrapper.chmod(0o755)
    report = bench_devices([models[1]], [device(sshd, str(wrapper), tmp_path / "c")], runs=3)
    err = report["models"][0]["error"]
    assert "has edgekit 0.0.9" in err["message"] and "0.1.0 or newer" in err["message"]
    assert err["hint"] == f'On the device: {wrapper} -m pip install --upgrade "edgekit[tflite]>=0.1.0"'


def test_missing_runtime_on_the_device_is_a_clear_error(sshd, device_py, models, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None\n")
    wrapper = tmp_path / "python-no-ort"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "site"} exec {device_py} "$@"\n')
    wrapper.chmod(0o755)
    report = bench_devices(models, [device(sshd, str(wrapper), tmp_path / "c")], runs=3)
    onnx_row, tflite_row = report["models"]
    assert tflite_row["status"] == "ok"
    assert "has no ONNX Runtime" in onnx_row["error"]["message"]
    assert onnx_row["error"]["hint"] == f"On the device: {wrapper} -m pip install onnxruntime"


def test_changed_or_unknown_host_key_is_refused(sshd, device_py, models, tmp_path):
    good = sshd.known_hosts.read_text()
    try:
        sshd.trust_host_key(sshd_device.keygen(tmp_path / "other_host_key"))
        report = bench_devices([models[1]], [device(sshd, device_py, tmp_path / "c")], runs=3)
        err = report["models"][0]["error"]
        assert "host key has CHANGED" in err["message"] and "ssh-keygen -R" in err["hint"]
        sshd.known_hosts.write_text("")
        err = bench_devices([models[1]], [device(sshd, device_py, tmp_path / "c")], runs=3)["models"][0]["error"]
        assert "not in known_hosts" in err["message"]
    finally:
        sshd.known_hosts.write_text(good)
    assert not (tmp_path / "c").exists()  # nothing ran, nothing was written


def test_a_cached_model_whose_hash_changed_is_refused_then_uploaded_afresh(sshd, device_py, models, tmp_path):
    cache = tmp_path / "cache"
    dev = device(sshd, device_py, cache)
    assert bench_devices([models[1]], [dev], runs=3)["models"][0]["status"] == "ok"
    cached = next(cache.glob("*.tflite"))
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    cached.write_bytes(bytes(data))
    row = bench_devices([models[1]], [dev], runs=3)["models"][0]
    assert row["status"] == "error" and "refused to run" in row["error"]["message"]
    assert file_sha256(models[1]) in row["error"]["message"] and not cached.exists()
    assert bench_devices([models[1]], [dev], runs=3)["models"][0]["status"] == "ok"
    assert cached.read_bytes() == models[1].read_bytes()


def test_an_upload_with_the_wrong_hash_or_cut_short_leaves_nothing(sshd, device_py, models, tmp_path):
    cache = tmp_path / "cache"
    dev = device(sshd, device_py, cache)
    name = "0" * 64 + ".tflite"
    answer = Connection(dev).agent("upload", str(cache), name, "0" * 64, str(models[1].stat().st_size),
                                   stdin_data=models[1])
    assert answer["status"] == "error" and "expected" in answer["error"]["message"]
    # cut short: half the bytes, then the connection dies
    argv = ssh_argv(dev, [device_py, "-c", (Path(__file__).parents[1] / "edgekit/remote_agent.py").read_text(),
                          "upload", str(cache), name, "0" * 64, "100000000"])
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"x" * 50_000)
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while not any(p.name.startswith(".part-") for p in cache.glob(".*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert wait_clean(cache) == ([], []) and list(cache.iterdir()) == []


def _run_cli_until_the_worker_runs(sshd, dev_url, model, cache, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "bench", str(model), "--device", dev_url,
                             "--ssh-config", str(sshd.client_config), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker_pids(cache):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the worker never started on the device: {proc.communicate()}")


def test_ctrl_c_leaves_no_process_and_no_file_on_the_device(sshd, device_py, models, tmp_path):
    cache = tmp_path / "cache"
    proc = _run_cli_until_the_worker_runs(sshd, sshd.url(python=device_py, cache=str(cache)), models[1], cache,
                                          "--runs", "100000000")
    proc.send_signal(signal.SIGINT)  # the edgekit process alone: it must end its ssh connections itself
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert wait_clean(cache) == ([], [])
    assert [p.suffix for p in cache.iterdir()] == [".tflite"]  # the verified cached model stays


@pytest.mark.slow
def test_a_hung_worker_on_the_device_is_killed_after_the_time_limit(sshd, device_py, models, tmp_path):
    cache = tmp_path / "cache"
    proc = _run_cli_until_the_worker_runs(sshd, sshd.url(python=device_py, cache=str(cache)), models[1], cache,
                                          "--runs", "100000000", "--time-limit", "1")
    for pid in worker_pids(cache):
        os.kill(pid, signal.SIGSTOP)  # frozen: it cannot stop at its own time limit
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 6, err
    assert b"was still running 11 s after starting on the device" in err
    assert wait_clean(cache) == ([], [])


def test_a_full_device_disk_is_a_clear_error(sshd, device_py, models, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk")
    try:
        big = tmp_path / "big.tflite"
        big.write_bytes(models[1].read_bytes() + b"\0" * (4 << 20))  # LiteRT ignores trailing bytes; 4 MB + 16 MB margin
        row = bench_devices([big], [device(sshd, device_py, small / "cache")], runs=3)["models"][0]
        assert row["status"] == "error" and "disk is full" in row["error"]["message"], row
        assert "--clean-device-cache" in row["error"]["hint"]
        assert [p.name for p in (small / "cache").iterdir()] == []
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_ctrl_c_during_an_upload_leaves_no_partial_file_on_the_device(sshd, device_py, models, tmp_path):
    cache = tmp_path / "cache"
    big = tmp_path / "big.tflite"
    big.write_bytes(models[1].read_bytes() + b"\0" * (64 << 20))  # LiteRT ignores trailing bytes; seconds to send
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "bench", str(big), "--device",
                             sshd.url(python=device_py, cache=str(cache)), "--ssh-config", str(sshd.client_config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (cache.exists() and any(p.name.startswith(".part-") for p in cache.iterdir())):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"the upload never started on the device: {proc.communicate()}")
        time.sleep(0.01)
    # the agent receiving it is frozen, so the upload is half done when Ctrl-C arrives (64 MB can otherwise be in
    # flight in the pipe and socket buffers before a poll sees the partial file)
    agents = upload_agent_pids(device_py, cache)
    assert agents, leftovers(cache)
    for pid in agents:
        os.kill(pid, signal.SIGSTOP)
    assert any(p.name.startswith(".part-") for p in cache.iterdir()), "the upload finished before Ctrl-C"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    for pid in agents:
        os.kill(pid, signal.SIGCONT)  # it finds its connection gone
    assert proc.returncode == 130, err
    assert wait_clean(cache) == ([], [])
    assert list(cache.iterdir()) == []  # neither the partial upload nor an unverified model
