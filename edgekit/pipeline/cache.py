"""Content-hashed step cache: a step reruns only when its inputs or settings change.

A step's record (`.cache/<step>.json`) is written after its artifact, both atomically, and holds the
artifact's hash, so an interrupted or partial file is never taken for a finished one.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgekit import __version__
from edgekit.fileio import atomic_write


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_hash(path: str | None) -> str | None:
    """Hash of a data file or directory (names, sizes and contents), for cache keys."""
    if not path or path == "random" or path.startswith("zoo:"):
        return path
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(str(f.relative_to(p)).encode())
            h.update(file_hash(f).encode())
        return h.hexdigest()
    if p.is_file():
        return file_hash(p)
    return path


class StepCache:
    def __init__(self, root: Path):
        self.dir = root / ".cache"
        self.dir.mkdir(parents=True, exist_ok=True)

    def key(self, step: str, settings: dict, inputs: list[str | Path | None]) -> str:
        payload = {"step": step, "edgekit": __version__, "settings": settings,
                   "inputs": [source_hash(str(i)) if i else None for i in inputs]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def lookup(self, step: str, key: str, artifact: Path) -> dict | None:
        record_path = self.dir / f"{step}.json"
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") != key:
            return None
        if record.get("artifact"):
            if not artifact.is_file() or file_hash(artifact) != record.get("artifact_hash"):
                return None
        return record

    def store(self, step: str, key: str, artifact: Path | None, result: dict) -> None:
        record = {"key": key, "artifact": str(artifact.name) if artifact else None,
                  "artifact_hash": file_hash(artifact) if artifact else None, "result": result}
        atomic_write(self.dir / f"{step}.json", json.dumps(record, indent=1, default=str))
