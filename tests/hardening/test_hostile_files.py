"""Zero-byte, truncated and random-bytes files of every format: recognised by content, clear error, no output."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import InvalidModelError
from edgekit.fileio import sniff_format

SUFFIXES = [".onnx", ".tflite", ".pt", ".pt2", ".ekb", ".safetensors"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True)


def damaged(kind: str, suffix: str, tmp_path, valid: bytes | None = None):
    rng = np.random.default_rng(len(suffix) + len(kind))
    data = {"empty": b"", "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
            "stub": b"\x00\x00\x00\x00TFL3", "truncated": (valid or b"PK\x03\x04" + b"\0" * 40)[: max(8, len(valid or b"") // 3)]}[kind]
    path = tmp_path / f"bad_{kind}{suffix}"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", ["empty", "random"])
def test_inspect_refuses_garbage(tmp_path, suffix, kind):
    path = damaged(kind, suffix, tmp_path)
    proc = cli("inspect", str(path))
    assert proc.returncode in (2, 3), proc.stderr
    assert path.name in proc.stderr and "Traceback" not in proc.stderr


def test_sniffing_goes_by_content_not_name(tmp_path, zoo_onnx):
    disguised = tmp_path / "model.tflite"
    disguised.write_bytes(zoo_onnx("mlp").read_bytes())
    assert sniff_format(disguised) == "onnx"
    with pytest.raises(InvalidModelError, match="although it is named '.onnx'"):
        sniff_format(damaged("random", ".onnx", tmp_path))


def test_truncated_zip_formats(tmp_path):
    import torch
    torch.save({"w": torch.zeros(3)}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    proc = cli("export", "zoo:mlp", "-o", str(tmp_path / "o.onnx"), "--weights", str(bad))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_garbage_weights_and_specs(tmp_path):
    for kind in ("empty", "random"):
        w = damaged(kind, ".pt", tmp_path)
        proc = cli("export", "zoo:mlp", "-o", str(tmp_path / "o.onnx"), "--weights", str(w))
        assert proc.returncode == 3 and w.name in proc.stderr and "Traceback" not in proc.stderr
        spec = damaged(kind, ".pt2", tmp_path)
        proc = cli("export", str(spec), "-o", str(tmp_path / "o.onnx"))
        assert proc.returncode in (2, 3) and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_torchscript_needs_explicit_opt_in(tmp_path):
    import torch
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "ts.pt")
    proc = cli("export", str(tmp_path / "ts.pt"), "-o", str(tmp_path / "o.onnx"), "--input-shape", "1x2")
    assert proc.returncode == 2 and "--trust-torchscript" in proc.stderr
    proc = cli("export", str(tmp_path / "ts.pt"), "-o", str(tmp_path / "o.onnx"), "--input-shape", "1x2",
               "--trust-torchscript", "--exporter", "torchscript")
    assert proc.returncode == 0, proc.stderr


def test_pt2_round_trip(tmp_path):
    import torch
    from edgekit.zoo import ZOO
    program = torch.export.export(ZOO["mlp"].build(), (torch.randn(1, 64),))
    torch.export.save(program, tmp_path / "m.pt2")
    assert sniff_format(tmp_path / "m.pt2") == "pt2"
    proc = cli("export", str(tmp_path / "m.pt2"), "-o", str(tmp_path / "m.onnx"))
    assert proc.returncode == 0, proc.stderr
