"""Safe file I/O: every write is atomic, inputs are never clobbered, formats are sniffed by content."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator

from edgekit.errors import EnvironmentProblem, InvalidModelError, UsageError

TEMP_PREFIX = ".edgekit-tmp-"


def check_output(out: str | os.PathLike, inputs: tuple = (), *, force: bool = False) -> Path:
    """Validate an output path before any work starts: distinct from inputs, writable directory."""
    out = Path(out)
    for src in inputs:
        if src is not None and Path(src).exists() and out.exists() and os.path.samefile(src, out):
            if not force:
                raise UsageError(
                    f"The output path '{out}' is the same file as the input '{src}'.",
                    hint="Choose another output path, or pass --force to replace the input (atomically).",
                )
    if out.is_dir():
        raise UsageError(f"The output path '{out}' is a directory.", hint="Give a file path, e.g. model.onnx.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"The output directory '{parent}' does not exist.", hint="Create it first or choose another -o path.")
    if not os.access(parent, os.W_OK):
        raise EnvironmentProblem(f"The output directory '{parent}' is not writable.", hint="Choose a directory you can write to.")
    clean_stale_temps(parent)
    return out


def clean_stale_temps(directory: str | os.PathLike) -> None:
    """Remove temp files left behind by an edgekit process that was killed mid-write."""
    for stale in Path(directory).glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            pid = int(stale.name[len(TEMP_PREFIX):].split("-")[0])
            if pid != os.getpid() and not _pid_alive(pid):
                stale.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside `dest`; on success fsync and rename it over `dest`, else delete it.

    The destination therefore holds either nothing, the previous complete file, or the new complete file.
    `mode` fixes the permissions (e.g. 0o600 for secrets: the temp file is created 0600 and never widened);
    by default a replaced file keeps its mode and a new one gets 0644.
    """
    dest = Path(dest)
    directory = dest.parent if str(dest.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=dest.suffix, dir=directory)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp_path, mode)
        elif dest.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp_path, dest.stat().st_mode & 0o777)
        else:
            os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, dest)
        _fsync_dir(directory)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise EnvironmentProblem(f"The disk is full while writing '{dest}'; nothing was written.",
                                     hint="Free some space and run the command again.") from exc
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise EnvironmentProblem(f"Permission denied while writing '{dest}'; nothing was written.",
                                     hint="Choose a directory you can write to.") from exc
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write(dest: str | os.PathLike, data: bytes | str | Callable[[Path], None], mode: int | None = None) -> Path:
    """Write bytes/text, or let a callback write to the temp path, then publish atomically."""
    with atomic_path(dest, mode) as tmp:
        if callable(data):
            data(tmp)
        else:
            mode = "w" if isinstance(data, str) else "wb"
            with open(tmp, mode) as fh:
                fh.write(data)
    return Path(dest)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- format sniffing

FORMATS = ("onnx", "tflite", "pt2", "torchscript", "pickle", "safetensors", "ekb")


def sniff_format(path: str | os.PathLike) -> str:
    """Recognise a model file by its content; raise InvalidModelError with the reason if it is none."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"The file '{path}' does not exist.", hint="Check the path.")
    if path.is_dir():
        raise UsageError(f"'{path}' is a directory, not a model file.", hint="Give the path of a model file.")
    size = path.stat().st_size
    if size == 0:
        raise InvalidModelError(f"The file '{path}' is empty (0 bytes).", hint="Re-create or re-download it.")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    if head[:2] == b"PK":
        return _sniff_zip(path)
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        return "pickle"
    if len(head) >= 8 and int.from_bytes(head[:8], "little") < size and head[8:9] == b"{":
        return "safetensors"
    if head[:1] in (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x3a", b"\x42", b"\x52"):
        return "onnx"  # protobuf: ModelProto field tags (ir_version, producer, graph, opset_import, ...)
    suffix = path.suffix.lower()
    raise InvalidModelError(
        f"The file '{path}' is not a recognised model ({size} bytes; "
        f"its first bytes {head[:8].hex()} match no ONNX, TFLite, PyTorch or edgekit bundle file"
        + (f", although it is named '{suffix}'" if suffix else "") + ").",
        hint="Check that the file is complete and of the format its name says.",
    )


def _sniff_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidModelError(f"The file '{path}' looks like a zip archive but is corrupt or truncated ({exc}).",
                                hint="Re-create or re-download it.") from exc
    if "manifest.json" in names:
        return "ekb"
    if any(n.endswith("archive_format") or "/serialized_exported_program" in n or n.endswith(".json") and "/models/" in n for n in names):
        return "pt2"
    if any(n.endswith("/code/") or "/code/" in n or n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "pickle"
    raise InvalidModelError(f"The zip archive '{path}' is no model format edgekit knows (entries: {names[:5]}).",
                            hint="Give an .onnx, .tflite, .pt2, .pt/.pth state dict, .safetensors or .ekb file.")


# ------------------------------------------------------------------ the one JSON encoder (every --json, reports, manifests)

def jsonable(value):
    """`value` as plain JSON types: numpy scalars/arrays as numbers/lists, dtypes by name, paths and anything else as
    text. Non-finite floats become the strings "inf", "-inf" and "nan": JSON has no such numbers, and Python's
    `Infinity`/`NaN` tokens break strict readers (jq, JavaScript), so a machine reader checks for a string."""
    import math

    import numpy as np
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, np.dtype):
        return value.name
    return str(value)


def to_json(value, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """The JSON text of `value` through `jsonable` (finite floats as numbers, inf/NaN as strings); strict JSON."""
    import json
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys, allow_nan=False)
