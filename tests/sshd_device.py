"""A real OpenSSH server on 127.0.0.1 and a "device" Python for the remote-bench tests.

`SshServer` starts Debian's sshd on a free port with a generated host key, authorizing a generated user key;
`client_config` is an ssh_config naming that key and a known_hosts holding the host key (~/.ssh is never read or
written). `device_python()` is a venv with only numpy, click, rich, ai-edge-litert, onnxruntime and edgekit
installed from a wheel of this tree (--no-deps): the dependencies are cached under /tmp keyed by pyproject, the
wheel is rebuilt only when the package's source changes.
"""
from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import sys

import pytest
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
DEVICE_PACKAGES = ["numpy", "click", "rich", "ai-edge-litert", "onnxruntime"]
VENV_ROOT = Path(tempfile.gettempdir())
PACKAGE_DIRS = ("edgekit", "runtimes", "converters", "examples/zoo")


def sshd_missing_reason() -> str | None:
    if not os.path.exists(SSHD) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return ("OpenSSH server not installed (apt-get install -y openssh-server); "
                f"sshd={os.path.exists(SSHD)} ssh={bool(shutil.which('ssh'))}")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


class SshServer:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_pub = keygen(root / "host_key")
        user_pub = keygen(root / "user_key")
        (root / "authorized_keys").write_text(user_pub + "\n")
        (root / "sshd_config").write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 50:30:100
MaxSessions 50
LogLevel ERROR
""")
        self.known_hosts = root / "known_hosts"
        self.trust_host_key(self.host_pub)
        self.client_config = root / "ssh_config"
        self.client_config.write_text(f"""\
Host *
    IdentityFile {root}/user_key
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile {self.known_hosts}
    GlobalKnownHostsFile /dev/null
    LogLevel ERROR
""")
        self.proc = None

    def trust_host_key(self, pub: str) -> None:
        kind, key = pub.split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {kind} {key}\n")

    def url(self, python: str | None = None, cache: str | None = None, name: str | None = None) -> str:
        query = "&".join(f"{k}={v}" for k, v in (("python", python), ("cache", cache), ("name", name)) if v)
        return f"ssh://{self.user}@127.0.0.1:{self.port}" + (f"?{query}" if query else "")

    def start(self) -> "SshServer":
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "wb"))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 15 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def _locked(name: str):
    with open(VENV_ROOT / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _source_hash() -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    for folder in PACKAGE_DIRS:
        for path in sorted((REPO / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def device_python() -> Path:
    """The device venv's python, with the current tree's edgekit installed from a wheel (no dependencies)."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + " ".join(DEVICE_PACKAGES).encode()).hexdigest()[:12]
    venv = VENV_ROOT / f"edgekit-test-device-venv-{key}"
    with _locked(venv.name):
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
            subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", *DEVICE_PACKAGES], check=True,
                           capture_output=True)
            (venv / ".complete").write_text("ok")
        source = _source_hash()
        marker = venv / ".edgekit-source"
        if not marker.exists() or marker.read_text() != source:
            with tempfile.TemporaryDirectory(prefix="edgekit-wheel-") as tmp:
                tree = Path(tmp) / "src"
                for name in ("pyproject.toml", "README.md"):
                    tree.mkdir(exist_ok=True)
                    shutil.copy(REPO / name, tree / name)
                for folder in PACKAGE_DIRS:
                    shutil.copytree(REPO / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
                subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                                "-w", str(Path(tmp) / "wheels"), str(tree)], check=True, capture_output=True)
                wheel = next((Path(tmp) / "wheels").glob("edgekit-*.whl"))
                subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps",
                                "--force-reinstall", str(wheel)], check=True, capture_output=True)
            marker.write_text(source)
    return venv / "bin/python"


def bare_python() -> Path:
    """A venv with nothing installed: a device without edgekit (or numpy)."""
    venv = VENV_ROOT / "edgekit-test-device-bare-venv"
    with _locked(venv.name):
        if not (venv / "bin/python").exists():
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    return venv / "bin/python"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    reason = sshd_missing_reason()
    if reason:
        pytest.skip(reason)
    try:
        server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"sshd could not be started here: {exc}")
    yield server
    server.stop()
