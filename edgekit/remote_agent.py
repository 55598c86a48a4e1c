"""The device side of `edgekit bench --device`: a standard-library-only script sent over SSH and run by the
device's Python as `python -c SOURCE OP ARGS...`, so it works whatever edgekit (if any) the device has.

Operations, each answering one `EDGEKIT-AGENT {json}` line on stdout:
  probe CACHE WANT_JSON   Python, edgekit version, runtimes, free space, which wanted files are cached
  upload CACHE NAME SHA SIZE   stdin → CACHE/.part-* (hashed while written) → verified → renamed to CACHE/NAME
  run CACHE SPEC_JSON     re-hash the cached files, run `python -m edgekit.bench JOB RESULT` in its own session,
                          relay its progress lines, answer its result
  clean CACHE             remove this cache's files
Everything written lives under CACHE (`.part-*` uploads, `.run-*` job folders) and is removed when the operation
ends, however it ends: the host closing the connection (Ctrl-C, a time limit) closes our stdin, which we watch;
SIGHUP/SIGTERM/SIGINT land in the same `finally`. The benchmark worker runs in its own process group and is
killed as a group. Kept compatible with Python 3.8 (a device's Python can be old; the probe reports it).
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TAG = "EDGEKIT-AGENT "
PROGRESS_TAG = "EDGEKIT-PROGRESS "
CACHED_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]+$")
CHUNK = 1 << 20


class Stop(Exception):
    """A signal asked us to stop; `finally` blocks clean up."""


_out_lock = threading.Lock()


def emit(line):
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def answer(payload):
    emit(TAG + json.dumps(payload) + "\n")


def error(kind, message, hint=None, code=7):
    return {"status": "error", "error": {"type": kind, "message": message, "hint": hint, "exit_code": code}}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_path(cache):
    cache = os.path.abspath(os.path.expanduser(cache))
    os.makedirs(cache, mode=0o700, exist_ok=True)
    return cache


def probe(cache, want_json):
    from importlib import util
    want = json.loads(want_json)
    cache = cache_path(cache)
    info = {"status": "ok", "python": sys.version.split()[0], "executable": sys.executable, "cache_dir": cache,
            "free_bytes": shutil.disk_usage(cache).free,
            "cached": [n for n in want.get("files", []) if CACHED_NAME.match(n) and os.path.isfile(os.path.join(cache, n))],
            "runtimes": {"onnxruntime": util.find_spec("onnxruntime") is not None,
                         "litert": any(util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))},
            "edgekit": None}
    try:
        import edgekit
        info["edgekit"] = getattr(edgekit, "__version__", "0")
        from edgekit import envinfo
        info["usable_cores"] = envinfo.usable_cores()
        info["environment"] = envinfo.fingerprint(threads=want.get("threads") or envinfo.usable_cores())
    except Exception as exc:  # noqa: BLE001 - reported: an edgekit that does not import is as good as none
        info["edgekit_error"] = "%s: %s" % (type(exc).__name__, exc)
    info["heavy_modules"] = sorted(m for m in ("torch", "onnx", "tensorflow") if m in sys.modules)
    answer(info)


def upload(cache, name, sha, size):
    """Receive exactly SIZE bytes on stdin; publish them as CACHE/NAME only if their sha256 is SHA."""
    if not CACHED_NAME.match(name):
        return answer(error("UsageError", "refused to write '%s' (not a content-hashed name)" % name, code=2))
    cache, size = cache_path(cache), int(size)
    free = shutil.disk_usage(cache).free
    if free < size + (16 << 20):
        return answer(_disk_full(cache, size, free))
    fd, part = tempfile.mkstemp(prefix=".part-", dir=cache)
    digest, got = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as fh:
            stdin = sys.stdin.buffer
            while got < size:
                block = stdin.read(min(CHUNK, size - got))
                if not block:
                    break
                digest.update(block)
                fh.write(block)
                got += len(block)
            fh.flush()
            os.fsync(fh.fileno())
        if got != size:
            return answer(error("EnvironmentProblem", "the upload of %s ended after %d of %d bytes" % (name, got, size),
                                "The connection dropped; run again."))
        if digest.hexdigest() != sha:
            return answer(error("EnvironmentProblem", "the upload of %s arrived with sha256 %s, expected %s"
                                % (name, digest.hexdigest(), sha), "The transfer was corrupted; run again."))
        os.replace(part, os.path.join(cache, name))
        answer({"status": "ok", "bytes": got})
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            return answer(_disk_full(cache, size, shutil.disk_usage(cache).free))
        raise
    finally:
        if os.path.exists(part):
            os.unlink(part)


def _disk_full(cache, size, free):
    return error("EnvironmentProblem",
                 "the device's disk is full: %s has %.1f MB free, the model needs %.1f MB"
                 % (cache, free / 2**20, size / 2**20),
                 "Free space on the device (edgekit bench --clean-device-cache removes cached models), "
                 "or point the device's cache_dir at a larger disk.")


def run(cache, spec_json):
    """Check each cached file's hash, then run the bench worker on the job; answer its result."""
    spec = json.loads(spec_json)
    cache = cache_path(cache)
    job = dict(spec["job"])
    for role, (name, sha) in spec["files"].items():
        path = os.path.join(cache, name)
        if not os.path.isfile(path):
            return answer(error("EnvironmentProblem", "%s is not in the device cache %s" % (name, cache),
                                "Run again to upload it."))
        actual = sha256_of(path)
        if actual != sha:
            os.unlink(path)
            return answer(error("EnvironmentProblem",
                                "refused to run: the cached copy %s on the device has sha256 %s, not the "
                                "model's %s (it changed after upload); the copy was removed" % (path, actual, sha),
                                "Run again to upload the model afresh."))
        job[role] = path
    run_dir = tempfile.mkdtemp(prefix=".run-", dir=cache)
    proc = None
    try:
        job_file, result_file = os.path.join(run_dir, "job.json"), os.path.join(run_dir, "result.json")
        with open(job_file, "w") as fh:
            json.dump(job, fh)
        proc = subprocess.Popen([sys.executable, "-m", "edgekit.bench", job_file, result_file],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        stderr_tail = []
        threading.Thread(target=lambda: stderr_tail.extend(proc.stderr), daemon=True).start()
        hung_up = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), hung_up.set()), daemon=True).start()
        threading.Thread(target=_relay, args=(proc.stdout,), daemon=True).start()
        kill_after = spec.get("kill_after")
        start = last_tick = time.monotonic()
        while proc.poll() is None:
            if hung_up.wait(0.1):
                raise Stop("the host went away")
            if time.monotonic() - last_tick > 0.5:  # drives the host's progress bar; fails fast if it is gone
                emit(PROGRESS_TAG + json.dumps({"phase": "tick", "elapsed_s": time.monotonic() - start}) + "\n")
                last_tick = time.monotonic()
            if kill_after and time.monotonic() - start > kill_after:
                _kill_group(proc)
                return answer(error("GateError", "the model was still running %.0f s after starting on the device; "
                                    "it was stopped" % kill_after,
                                    "Raise --time-limit, or check the model loads and runs at all.", code=6))
        if os.path.exists(result_file):
            with open(result_file) as fh:
                return answer({"status": "ok", "result": json.load(fh)})
        time.sleep(0.2)  # let the stderr reader finish
        tail = b"".join(stderr_tail).decode("utf-8", "replace")[-1500:].strip()
        return answer(error("InternalError", "the benchmark process died on the device (exit status %s) without "
                            "a result%s" % (proc.returncode, ": " + tail if tail else "."),
                            "A crash inside the runtime; try --threads 1, or report it with the model.", code=1))
    finally:
        if proc is not None and proc.poll() is None:
            _kill_group(proc)
        shutil.rmtree(run_dir, ignore_errors=True)


def _relay(stream):
    try:
        for line in stream:
            text = line.decode("utf-8", "replace")
            if text.startswith(PROGRESS_TAG):
                emit(text)
    except (OSError, ValueError):  # the host went away; the main thread notices through stdin
        pass


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def clean(cache):
    cache = os.path.abspath(os.path.expanduser(cache))
    removed = 0
    if os.path.isdir(cache):
        for name in os.listdir(cache):
            path = os.path.join(cache, name)
            if CACHED_NAME.match(name) or name.startswith(".part-"):
                os.unlink(path)
                removed += 1
            elif name.startswith(".run-"):
                shutil.rmtree(path, ignore_errors=True)
    answer({"status": "ok", "removed": removed, "cache_dir": cache})


def _on_signal(signum, frame):
    raise Stop("signal %d" % signum)


def main(argv):
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    ops = {"probe": probe, "upload": upload, "run": run, "clean": clean}
    try:
        ops[argv[0]](*argv[1:])
    except Stop:
        return 130
    except BrokenPipeError:
        return 141
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
