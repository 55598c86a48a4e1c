"""`edgekit bench --device`: the same bench worker run on devices over SSH, results merged into one report.

Transport: the system OpenSSH client (`ssh`), not an SSH library. It is what the user already trusts and has set
up: their ~/.ssh/config (aliases, ProxyJump, ControlMaster, certificates, FIDO/hardware keys), their agent, and
their known_hosts decisions all apply unchanged; no crypto code or new dependency enters edgekit; it ships with
Linux, macOS and Windows 10+. An SSH library (paramiko, asyncssh) reads only part of ssh_config and keeps a second
host-key store. Every connection is forced to `BatchMode=yes` (never a password prompt; keys come from the agent
or config) and `StrictHostKeyChecking=yes` (an unknown or changed host key is refused, never learned), with agent
and port forwarding off. Files go over the same channel (`ssh … python -c AGENT upload` reading stdin), not scp.

On the device, `edgekit.remote_agent` (standard library only, sent as `python -c`) hashes each upload into a
content-addressed cache (`<cache_dir>/<sha256>.<ext>`, reused by later runs), re-checks the hash before every run,
and runs `python -m edgekit.bench` — the worker a local run uses — so a device needs only numpy, click, rich, one
runtime and edgekit (`pip install "edgekit[tflite]"`). Devices run in parallel (a thread per device, each driving
ssh processes); models on one device run one after another so they do not slow each other down.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from edgekit.errors import EdgekitError, EnvironmentProblem, UsageError

#: the oldest device-side edgekit whose `python -m edgekit.bench JOB RESULT` takes the jobs this one sends
MIN_DEVICE_EDGEKIT = "0.1.0"
DEFAULT_CACHE_DIR = "~/.cache/edgekit/models"
AGENT_TAG = "EDGEKIT-AGENT "
CONNECT_TIMEOUT_S = 15
CONTROL_PERSIST_S = 60  # an idle shared SSH session ends this long after its last use (if close_master missed it)
RUN_SLACK_S = 30.0  # past the agent's own kill deadline before the host gives up on the connection
_EXTENSIONS = {"onnx": "onnx", "tflite": "tflite"}


@dataclass
class Device:
    """One SSH-reachable device (or `local`, this machine)."""

    host: str
    user: str | None = None
    port: int | None = None
    name: str = ""
    python: str = "python3"
    threads: int | None = None
    cache_dir: str = DEFAULT_CACHE_DIR
    ssh_config: str | None = None
    ssh_options: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.name:
            self.name = self.host if self.is_local else (f"{self.user}@" if self.user else "") + self.host + (
                f":{self.port}" if self.port else "")

    @property
    def is_local(self) -> bool:
        return self.host == "local"

    @property
    def url(self) -> str:
        if self.is_local:
            return "local"
        return "ssh://" + (f"{self.user}@" if self.user else "") + self.host + (f":{self.port}" if self.port else "")


def parse_device(spec: str, **settings) -> Device:
    """`ssh://[user@]host[:port][?python=PATH&threads=N&cache=DIR&name=NAME]`, or `local`."""
    if spec == "local":
        return Device(host="local", **{k: v for k, v in settings.items() if k in ("name", "threads")})
    parts = urlsplit(spec)
    if parts.scheme != "ssh" or not parts.hostname:
        raise UsageError(f"'{spec}' is not a device address.",
                         hint="Write ssh://user@host[:port] (optionally ?python=/path/to/python&threads=4), "
                              "or 'local' for this machine.")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"The port in '{spec}' is not a number.", hint="Write ssh://user@host:2222.") from None
    if parts.password is not None:
        raise UsageError(f"'{spec}' carries a password; edgekit never puts one on a command line.",
                         hint="Load a key into your SSH agent (ssh-add) or name it with IdentityFile in ~/.ssh/config.")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"python", "threads", "cache", "name"}
    if unknown:
        raise UsageError(f"Unknown device setting(s) {sorted(unknown)} in '{spec}'.",
                         hint="Supported: python, threads, cache, name.")
    fields = dict(settings)
    if "python" in query:
        fields["python"] = query["python"]
    if "cache" in query:
        fields["cache_dir"] = query["cache"]
    if "name" in query:
        fields["name"] = query["name"]
    if "threads" in query:
        fields["threads"] = _positive_int(query["threads"], f"threads in '{spec}'")
    return Device(host=parts.hostname, user=unquote(parts.username) if parts.username else None, port=port, **fields)


def load_devices(path: str | os.PathLike) -> list[Device]:
    """Read a devices file:

        ssh_config = "~/.ssh/config.lab"        # optional, for every device
        [[devices]]
        name = "pi5"
        url = "ssh://pi@pi5.local"
        python = "/home/pi/venv/bin/python"     # default python3
        threads = 4                             # default: every usable core on the device
        cache_dir = "~/.cache/edgekit/models"   # default
    """
    import tomllib
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"The devices file '{path}' does not exist.", hint="Check the path.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"The devices file '{path}' is not valid TOML: {exc}.") from None
    return devices_from_config(raw, base_dir=path.parent, source=str(path))


def devices_from_config(raw: dict, *, base_dir: str | os.PathLike = ".", source: str = "the config") -> list[Device]:
    """`[[devices]]` tables (devices.toml, or a pipeline config) → Devices; top-level ssh_config applies to all."""
    entries = raw.get("devices", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"'devices' in {source} must be a list of tables ([[devices]]).")
    default_cfg = raw.get("ssh_config")
    devices = []
    for i, entry in enumerate(entries):
        unknown = set(entry) - {"name", "url", "python", "threads", "cache_dir", "ssh_config"}
        if unknown:
            raise UsageError(f"Unknown key(s) {sorted(unknown)} in device {i + 1} of {source}.",
                             hint="Supported: name, url, python, threads, cache_dir, ssh_config.")
        if "url" not in entry:
            raise UsageError(f"Device {i + 1} of {source} has no url.", hint='Add url = "ssh://user@host".')
        settings = {k: entry[k] for k in ("name", "python", "cache_dir") if k in entry}
        if "threads" in entry:
            settings["threads"] = _positive_int(entry["threads"], f"threads of device {i + 1} in {source}")
        cfg = entry.get("ssh_config", default_cfg)
        if cfg and entry["url"] != "local":
            cfg = os.path.expanduser(cfg)
            settings["ssh_config"] = str(cfg if os.path.isabs(cfg) else Path(base_dir) / cfg)
        devices.append(parse_device(entry["url"], **settings))
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise UsageError(f"Device names repeat in {source}: {names}.", hint="Give each device a distinct name.")
    return devices


def _positive_int(value, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}.")
    return n


# ---------------------------------------------------------------- the SSH transport

def ssh_argv(device: Device, remote_argv: list[str] | None, control_path: str | None = None) -> list[str]:
    """The ssh command line running `remote_argv` (quoted for the device's POSIX shell) on the device.

    With `control_path`, connections to the device share one SSH session (the first starts a master that
    lingers at most CONTROL_PERSIST_S; `close_master` ends it): one handshake per device instead of one per step.
    """
    argv = ["ssh", "-T", "-x", "-a",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ClearAllForwardings=yes",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
    if control_path:
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_path}",
                 "-o", f"ControlPersist={CONTROL_PERSIST_S}"]
    if device.ssh_config:
        argv += ["-F", device.ssh_config]
    if device.port:
        argv += ["-p", str(device.port)]
    if device.user:
        argv += ["-l", device.user]
    argv += [*device.ssh_options]
    if remote_argv is None:
        return argv
    return argv + ["--", device.host, " ".join(_shell_word(w) for w in remote_argv)]


def _shell_word(word: str) -> str:
    if word.startswith("~/"):  # let the device's shell expand the home directory, quote the rest
        return "~/" + shlex.quote(word[2:])
    return shlex.quote(word)


def _agent_source() -> str:
    return (Path(__file__).parent / "remote_agent.py").read_text()


class Connection:
    """Runs agent operations on one device; remembers its ssh processes so an interrupt can end them."""

    def __init__(self, device: Device, control_dir: str | None = None):
        self.device = device
        self.control_path = os.path.join(control_dir, "%C") if control_dir else None
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.closed = False

    def agent(self, op: str, *args: str, stdin_data=None, timeout: float | None = None, on_progress=None) -> dict:
        """Run one agent operation; its answer (a dict with "status"), or raise EnvironmentProblem for SSH faults.

        `stdin_data`: a path whose bytes are streamed to the agent, or None to keep stdin open (the agent takes
        its close as 'the host went away') until the answer arrives.
        """
        argv = ssh_argv(self.device, [self.device.python, "-c", _agent_source(), op, *args], self.control_path)
        with self._lock:
            if self.closed:
                raise KeyboardInterrupt
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self._procs.add(proc)
        stderr: list[bytes] = []
        err_thread = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
        err_thread.start()
        if stdin_data is not None:
            threading.Thread(target=_feed, args=(proc.stdin, stdin_data), daemon=True).start()
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer:
            timer.start()
        answer = None
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                if line.startswith(AGENT_TAG):
                    answer = json.loads(line[len(AGENT_TAG):])
                elif line.startswith("EDGEKIT-PROGRESS ") and on_progress is not None:
                    try:
                        on_progress(json.loads(line[len("EDGEKIT-PROGRESS "):]))
                    except ValueError:
                        pass
            proc.wait()
        finally:
            if timer:
                timer.cancel()
            if proc.poll() is None:
                proc.kill()  # closing the connection makes the agent kill its worker and remove its files
                proc.wait()
            with self._lock:
                self._procs.discard(proc)
            for stream in (proc.stdin,):
                try:
                    stream.close()
                except OSError:
                    pass
        err_thread.join(timeout=2)
        if answer is not None:
            return answer
        text = b"".join(stderr).decode("utf-8", "replace").strip()
        if timeout and proc.returncode in (-9, 137) and not self.closed:
            raise EnvironmentProblem(f"Device '{self.device.name}' did not answer within {timeout:.0f} s ({op}).",
                                     hint="Check the device is up and not overloaded; raise --time-limit.")
        raise ssh_error(self.device, proc.returncode, text)

    def close_master(self) -> None:
        """End the shared SSH session, if one was started."""
        if self.control_path:
            subprocess.run([*ssh_argv(self.device, None, self.control_path), "-O", "exit", self.device.host],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)

    def close(self) -> None:
        """Kill this device's ssh processes (Ctrl-C): the device sees its connections close and cleans up."""
        with self._lock:
            self.closed = True
            for proc in list(self._procs):
                if proc.poll() is None:
                    proc.kill()


def _feed(pipe, path) -> None:
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                pipe.write(block)
        pipe.close()
    except (OSError, ValueError):  # the connection ended first; its error is reported from the answer
        pass


def ssh_error(device: Device, returncode: int, stderr: str) -> EnvironmentProblem:
    """Turn what ssh (or the device's shell) said into an error naming the device and what to do."""
    where = f"Device '{device.name}' ({device.url})"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {returncode}"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "Host key for" in stderr and "has changed" in stderr:
        return EnvironmentProblem(f"{where}: its host key has CHANGED since it was recorded in known_hosts; "
                                  "refused to connect (this is what a man-in-the-middle looks like).",
                                  hint=f"If the device was reinstalled, remove the old key (ssh-keygen -R "
                                       f"{device.host}) and check the new one by connecting once with ssh.")
    if "Host key verification failed" in stderr or "No ED25519 host key is known" in stderr \
            or "host key is known" in stderr:
        return EnvironmentProblem(f"{where}: its host key is not in known_hosts, and edgekit does not accept "
                                  "unknown keys.", hint=f"Connect once with ssh {device.url.removeprefix('ssh://')} "
                                                        "and check the fingerprint, then run again.")
    if "Permission denied" in stderr:
        return EnvironmentProblem(f"{where}: login refused ({last}).",
                                  hint="edgekit uses keys only, never a password: load the key into your agent "
                                       "(ssh-add) or set IdentityFile for the host in ~/.ssh/config.")
    if returncode == 255:
        return EnvironmentProblem(f"{where} is unreachable: {last}",
                                  hint="Check the address and port, that the device is on and sshd runs, "
                                       f"and try: ssh {device.url.removeprefix('ssh://')}")
    if returncode == 127 or "not found" in stderr or "No such file" in stderr:
        return EnvironmentProblem(f"{where}: no Python at '{device.python}' ({last}).",
                                  hint="Install Python 3.10+ there, or name the interpreter: "
                                       "ssh://user@host?python=/path/to/python, or python = ... in devices.toml.")
    return EnvironmentProblem(f"{where}: the device-side helper failed (exit status {returncode}): {last}",
                              hint="Run again with --debug; check the device's Python runs at all.")


# ---------------------------------------------------------------- benchmarking on devices

def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_line(device: Device, formats) -> str:
    extras = ",".join(sorted({"onnx": "onnx", "tflite": "tflite"}[f] for f in formats)) or "tflite"
    return f'{device.python} -m pip install --upgrade "edgekit[{extras}]>={MIN_DEVICE_EDGEKIT}"'


def _version_tuple(v: str) -> tuple:
    out = []
    for part in v.split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part else ""
        if not digits or not part[:1].isdigit():
            break
        out.append(int(digits))
        if not part.isdigit():
            break
    return tuple(out)


def bench_devices(models, devices: list[Device], *, clean_cache: bool = False, threads: int | None = None,
                  progress=None, **options) -> dict:
    """Benchmark `models` on each device, devices in parallel; one report with a row per device × model.

    `options` are edgekit.bench.bench's (runtime, provider, batch, dims, inputs, seed, runs, min_time, warmup,
    time_limit, samples, optimization). `threads` overrides every device's own setting (default: the device's
    `threads`, else every usable core there). `clean_cache` empties each device's model cache first.
    `progress(event)` gets bench's events with "index" numbering device × model rows and "model" as
    "DEVICE: MODEL". A device that fails (unreachable, no edgekit) fails its rows; the others continue.
    """
    from concurrent.futures import ThreadPoolExecutor

    from edgekit import envinfo
    from edgekit.bench import compare_results
    from edgekit.fileio import sniff_format

    models = [str(m) for m in models]
    if not devices:
        raise UsageError("No device given.", hint="Use --device ssh://user@host or --devices devices.toml.")
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise UsageError(f"A device is named twice: {names}.", hint="Give each device once (or a distinct ?name=).")
    formats = {}
    for m in models:
        fmt = sniff_format(m)
        if fmt not in _EXTENSIONS:
            raise UsageError(f"'{m}' is a {fmt} file; bench runs .onnx and .tflite models.")
        formats[m] = fmt
    inputs = options.get("inputs")
    if inputs is not None and not Path(inputs).is_file():
        raise UsageError(f"The inputs file '{inputs}' does not exist.", hint="Give an .npz keyed by input name.")
    files = {m: (f"{file_sha256(m)}.{_EXTENSIONS[formats[m]]}", os.path.getsize(m)) for m in models}
    if inputs:
        files[inputs] = (f"{file_sha256(inputs)}.npz", os.path.getsize(inputs))
    notify = progress or (lambda event: None)
    lock = threading.Lock()

    def device_notify(event):
        with lock:
            notify(event)

    import tempfile
    control_dir = tempfile.mkdtemp(prefix="edgekit-ssh-")  # short: socket paths are limited to ~100 bytes
    connections = {d.name: Connection(d, control_dir) for d in devices if not d.is_local}
    runners = [_DeviceRun(d, i, models, formats, files, connections.get(d.name), clean_cache, threads, options,
                          device_notify) for i, d in enumerate(devices)]
    pool = ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="edgekit-device")
    try:
        futures = [pool.submit(r.run) for r in runners]
        outcomes = [f.result() for f in futures]
    except BaseException:
        for c in connections.values():
            c.close()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        for c in connections.values():
            try:
                c.close_master()
            except (OSError, subprocess.SubprocessError):
                pass
        import shutil
        shutil.rmtree(control_dir, ignore_errors=True)
    pool.shutdown()
    rows = [row for _, device_rows in outcomes for row in device_rows]
    comparison = compare_results(rows)
    for row, ratio in zip(rows, comparison):
        ratio["device"] = row["device"]
    return {
        "edgekit_bench": 1,
        "host": envinfo.fingerprint(),
        "settings": {**{k: v for k, v in options.items()}, "threads": threads, "models": models,
                     "inputs": inputs or f"random (seed {options.get('seed', 0)})", "isolated": True},
        "devices": [info for info, _ in outcomes],
        "models": rows,
        "comparison": comparison,
    }


class _DeviceRun:
    """Everything done for one device: probe, upload what is missing, run each model, collect rows."""

    def __init__(self, device, index, models, formats, files, conn, clean_cache, threads, options, notify):
        self.device, self.index, self.models, self.formats, self.files = device, index, models, formats, files
        self.conn, self.clean_cache, self.threads, self.options, self.notify = conn, clean_cache, threads, options, notify

    def row_index(self, k: int) -> int:
        return self.index * len(self.models) + k

    def run(self) -> tuple[dict, list[dict]]:
        info = {"name": self.device.name, "url": self.device.url, "status": "ok"}
        try:
            if self.device.is_local:
                return self._run_local(info)
            return self._run_remote(info)
        except EdgekitError as exc:
            from edgekit.bench import _error_dict
            err = _error_dict(exc)
            info.update(status="error", error=err)
            rows = []
            for k, m in enumerate(self.models):
                row = {"model": m, "device": self.device.name, "status": "error", "error": err}
                self.notify({"index": self.row_index(k), "model": f"{self.device.name}: {m}", "phase": "start"})
                self.notify({"index": self.row_index(k), "model": f"{self.device.name}: {m}", "phase": "done",
                             "result": row})
                rows.append(row)
            return info, rows

    def _run_local(self, info):
        from edgekit.bench import bench
        threads = self.threads or self.device.threads

        def relay(event):
            self.notify({**event, "index": self.row_index(event["index"]),
                         "model": f"{self.device.name}: {event['model']}"})
        report = bench(self.models, threads=threads, keep_going=True, progress=relay, **self.options)
        info["environment"] = report["environment"]
        rows = [{**r, "device": self.device.name, "environment": report["environment"]} for r in report["models"]]
        return info, rows

    def _run_remote(self, info):
        dev, conn = self.device, self.conn
        t0 = time.monotonic()
        if self.clean_cache:
            cleaned = self._checked(conn.agent("clean", dev.cache_dir, timeout=120))
            info["cache_cleaned"] = cleaned["removed"]
        want = {"files": [name for name, _ in self.files.values()], "threads": self.threads or dev.threads}
        probe = self._checked(conn.agent("probe", dev.cache_dir, json.dumps(want), timeout=120))
        info["connect_s"] = time.monotonic() - t0
        info.update(python=probe["python"], executable=probe["executable"], cache_dir=probe["cache_dir"],
                    edgekit=probe["edgekit"])
        needed = set(self.formats.values())
        if probe["edgekit"] is None:
            why = f" (it failed to import: {probe['edgekit_error']})" if probe.get("edgekit_error") else ""
            raise EnvironmentProblem(f"Device '{dev.name}' has no edgekit for {probe['executable']}{why}.",
                                     hint=f"On the device: {install_line(dev, needed)}")
        if _version_tuple(probe["edgekit"]) < _version_tuple(MIN_DEVICE_EDGEKIT):
            raise EnvironmentProblem(f"Device '{dev.name}' has edgekit {probe['edgekit']}; benchmarking there "
                                     f"needs {MIN_DEVICE_EDGEKIT} or newer.",
                                     hint=f"On the device: {install_line(dev, needed)}")
        info["environment"] = probe["environment"]
        threads = self.threads or dev.threads or probe.get("usable_cores")
        cached = set(probe["cached"])
        info["uploads"] = []
        rows = []
        for k, model in enumerate(self.models):
            index, label = self.row_index(k), f"{dev.name}: {model}"
            self.notify({"index": index, "model": label, "phase": "start"})
            row = self._run_model(model, threads, cached, probe, info)
            row.update(model=model, device=dev.name)
            if row["status"] == "ok":
                row["environment"] = probe["environment"]
            self.notify({"index": index, "model": label, "phase": "done", "result": row})
            rows.append(row)
        return info, rows

    def _run_model(self, model, threads, cached, probe, info) -> dict:
        from dataclasses import asdict

        from edgekit.bench import KILL_GRACE_S, BenchJob
        fmt = self.formats[model]
        runtime = {"onnx": "onnxruntime", "tflite": "litert"}[fmt]
        if not probe["runtimes"][runtime]:
            package = {"onnxruntime": "onnxruntime", "litert": "ai-edge-litert"}[runtime]
            return _failed(EnvironmentProblem(
                f"Device '{self.device.name}' has no {'ONNX Runtime' if fmt == 'onnx' else 'LiteRT'} to run "
                f"'{model}' ({probe['executable']}).",
                hint=f"On the device: {self.device.python} -m pip install {package}"))
        try:
            for path in filter(None, (model, self.options.get("inputs"))):
                name, size = self.files[path]
                if name not in cached:
                    t0 = time.monotonic()
                    self._checked(self.conn.agent("upload", self.device.cache_dir, name, name.split(".")[0],
                                                  str(size), stdin_data=path))
                    cached.add(name)
                    info["uploads"].append({"file": path, "name": name, "bytes": size,
                                            "seconds": time.monotonic() - t0})
            opts = {k: v for k, v in self.options.items() if k in BenchJob.__dataclass_fields__}
            job = asdict(BenchJob(path="", threads=threads, **{**opts, "inputs": None}))
            model_name = self.files[model][0]
            spec_files = {"path": (model_name, model_name.split(".")[0])}
            if self.options.get("inputs"):
                name = self.files[self.options["inputs"]][0]
                spec_files["inputs"] = (name, name.split(".")[0])
            limit = self.options.get("time_limit")
            spec = {"job": job, "files": spec_files, "kill_after": limit + KILL_GRACE_S if limit else None}
            answer = self.conn.agent("run", self.device.cache_dir, json.dumps(spec),
                                     timeout=limit + KILL_GRACE_S + RUN_SLACK_S if limit else None,
                                     on_progress=lambda ev: self.notify(
                                         {**ev, "index": self.row_index(self.models.index(model)),
                                          "model": f"{self.device.name}: {model}"}))
            result = self._checked(answer)["result"]
            result["remote_path"] = result.get("model")
            return result
        except EdgekitError as exc:
            return _failed(exc)

    def _checked(self, answer: dict) -> dict:
        if answer.get("status") != "ok":
            from edgekit.bench import error_from_dict
            err = error_from_dict(answer["error"])
            err.message = f"Device '{self.device.name}': {err.message}"
            raise err
        return answer


def _failed(exc: EdgekitError) -> dict:
    from edgekit.bench import _error_dict
    return {"status": "error", "error": _error_dict(exc)}


def clean_devices(devices: list[Device]) -> dict:
    """Empty each device's model cache (in parallel); one entry per device, failures reported, not raised."""
    from concurrent.futures import ThreadPoolExecutor

    def clean(device: Device) -> dict:
        entry = {"name": device.name, "url": device.url}
        if device.is_local:
            return {**entry, "status": "ok", "removed": 0, "cache_dir": "-"}
        try:
            answer = Connection(device).agent("clean", device.cache_dir, timeout=120)
        except EdgekitError as exc:
            from edgekit.bench import _error_dict
            return {**entry, "status": "error", "error": _error_dict(exc)}
        return {**entry, **answer}
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        return {"edgekit_clean_device_cache": 1, "devices": list(pool.map(clean, devices))}
