"""Writes are atomic: a killed writer or a full disk leaves nothing or the previous complete file."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from edgekit.errors import EnvironmentProblem, UsageError
from edgekit.fileio import TEMP_PREFIX, atomic_write, check_output


def temps(directory):
    return [p for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_sigkill_mid_write_keeps_previous_file_and_temp_is_cleaned(tmp_path):
    dest = tmp_path / "model.onnx"
    dest.write_bytes(b"previous complete file")
    started = tmp_path / "started"
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from edgekit.fileio import atomic_write
        def slow(tmp):
            with open(tmp, "wb") as fh:
                fh.write(b"partial" * 1000)
                fh.flush()
                Path({str(started)!r}).touch()
                time.sleep(60)
        atomic_write({str(dest)!r}, slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert started.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert dest.read_bytes() == b"previous complete file"
    assert len(temps(tmp_path)) == 1  # the killed process could not clean up...
    check_output(dest)                 # ...the next run does
    assert temps(tmp_path) == []


def test_injected_enospc_leaves_previous_file(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")

    def full_disk(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(EnvironmentProblem, match="disk is full"):
        atomic_write(dest, full_disk)
    assert dest.read_bytes() == b"old" and temps(tmp_path) == []


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs, when this machine lets us mount one (root in a container usually can)."""
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-ENOSPC test covers the logic")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_real_full_disk(tiny_fs):
    dest = tiny_fs / "big.bin"
    dest.write_bytes(b"old")
    with pytest.raises(EnvironmentProblem, match="disk is full"):
        atomic_write(dest, os.urandom(200_000))
    assert dest.read_bytes() == b"old" and temps(tiny_fs) == []


def test_real_full_disk_through_export_cli(tiny_fs):
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "export", "zoo:lenet", "-o", str(tiny_fs / "l.onnx")],
                          capture_output=True, text=True)
    assert proc.returncode == 7, proc.stderr
    assert "disk is full" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tiny_fs.iterdir()) == []


def test_input_is_never_the_output_without_force(tmp_path):
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x")
    with pytest.raises(UsageError, match="same file as the input"):
        check_output(src, (src,))
    link = tmp_path / "alias.onnx"
    os.link(src, link)
    with pytest.raises(UsageError, match="same file"):
        check_output(link, (src,))
    assert check_output(src, (src,), force=True) == src


def test_permissions_preserved_on_replace(tmp_path):
    dest = tmp_path / "f"
    dest.write_bytes(b"a")
    dest.chmod(0o600)
    atomic_write(dest, b"b")
    assert dest.read_bytes() == b"b" and (dest.stat().st_mode & 0o777) == 0o600
