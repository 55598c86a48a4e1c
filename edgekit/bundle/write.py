"""Writing bundles (.ekb): `bundle()` packs a model, its manifest (I/O, processing, labels, quantization census,
validation and benchmark figures, SHA-256 of every file), an optional tokenizer, signature and encryption.

The workstation side: it loads the model in a runtime to read its I/O and takes the weight census from
edgekit.inspect; the format's names and limits come from edgekit.bundle.read, which enforces them.
"""
from __future__ import annotations

import json
import os
import platform
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from edgekit import __version__
from edgekit.bundle.keys import CRYPTO_PURPOSE, KEY_ENV, aes_key_id, load_private_key, public_key_id, read_aes_key
from edgekit.bundle.read import (AAD_PREFIX, FORMAT, FORMAT_VERSION, MANIFEST, MODEL_FORMATS, NONCE_BYTES, SIGNATURE,
                                 TOKENIZER, sha256)
from edgekit.deps import require
from edgekit.errors import InvalidModelError, UnsupportedModelError, UsageError
from edgekit.fileio import atomic_path, check_output, sniff_format, to_json
from edgekit.processing import Postprocess, Preprocess, load_processing_file, parse_options, parse_spec


@dataclass
class BundleResult:
    path: Path
    manifest: dict
    signed: bool
    encrypted: bool

    def as_dict(self) -> dict:
        return {"path": str(self.path), "signed": self.signed, "encrypted": self.encrypted, "manifest": self.manifest}


def bundle(model: str | os.PathLike, output: str | os.PathLike, *, name: str | None = None,
           preprocess: Mapping | str | os.PathLike | None = None, postprocess: Mapping | None = None,
           labels: Sequence[str] | str | os.PathLike | None = None, sign: str | os.PathLike | None = None,
           encrypt: bool = False, key: bytes | str | None = None, key_file: str | os.PathLike | None = None,
           bench: bool = False, bench_time: float = 1.0, threads: int | None = None, force: bool = False,
           log: Callable[[str], None] = lambda msg: None,
           tokenizer: str | os.PathLike | None = None) -> BundleResult:
    """Pack MODEL (.onnx or .tflite) with a manifest into the zip `output` (.ekb).

    preprocess: a mapping (see edgekit.processing.Preprocess), `KEY=VALUE;...` text, or a .toml/.json file, which
    may also hold [postprocess] and `labels`, or a list of at most one such file and KEY=VALUE items that override
    its [preprocess] (what `edgekit bundle --preprocess` passes); `postprocess` and `labels` given here override
    the file's; labels: a list or a .txt (one per line) / .json file; sign: an Ed25519
    NAME.key; encrypt: AES-256-GCM with `key` / `key_file` / $EDGEKIT_BUNDLE_KEY; bench: time the model
    here (edgekit.bench) and record the figures with this machine's fingerprint; tokenizer: a tokenizer.json
    (checked against the model's embedding table) stored as tokenizer.json with its SHA-256, never encrypted.
    """
    from edgekit import runtimes

    model = Path(model)
    fmt = sniff_format(model)
    if fmt not in MODEL_FORMATS:
        raise UsageError(f"'{model}' is a {fmt} file; bundles hold .onnx or .tflite models.",
                         hint="It is already a bundle." if fmt == "ekb" else
                         "Export it first (edgekit export), or convert it (edgekit convert).")
    output = check_output(output, (model,), force=force)
    processing = _processing(preprocess, postprocess, labels)
    signer = load_private_key(sign) if sign else None
    secret = None
    if encrypt:
        require("cryptography", CRYPTO_PURPOSE)
        secret = read_aes_key(key, key_file)
        if secret is None:
            raise UsageError("--encrypt needs an AES key, and none was given.",
                             hint=f"Pass --key-file FILE (make one with: edgekit keygen -o NAME --aes) or set ${KEY_ENV}.")
    elif key is not None or key_file is not None:
        raise UsageError("A decryption key was given but --encrypt was not.", hint="Add --encrypt, or drop the key.")

    data = model.read_bytes()
    log(f"loading {model.name} to read its inputs and outputs")
    try:
        session = runtimes.load(data, threads=threads)
    except InvalidModelError as exc:
        if fmt == "onnx" and "external" in exc.message.lower():
            raise UnsupportedModelError(f"'{model}' keeps its weights in external data files, which bundles do not hold.",
                                        hint="Save the model with its weights inside the .onnx file (under 2 GB).") from exc
        raise
    with session:
        metadata = _model_metadata(fmt, data, session)
        pre = Preprocess.from_spec(processing["preprocess"], session.inputs) if processing.get("preprocess") else None
        labels_ = processing.get("labels")
        post_spec = processing.get("postprocess")
        if post_spec is None and labels_:
            post_spec = {}
        post = Postprocess.from_spec(post_spec, session.outputs, labels_) if post_spec is not None else None
        figures = _bench(session, bench_time, threads, log) if bench else None
        io_info = {"inputs": [_tensor(t) for t in session.inputs], "outputs": [_tensor(t) for t in session.outputs]}
        quant = _quantization_summary(fmt, data, metadata, session)
        if tokenizer is not None:
            from edgekit.text import check_tokenizer
            tokenizer_data, tokenizer_info = check_tokenizer(tokenizer, data, session)

    model_file = f"model.{fmt}"
    files: dict[str, bytes] = {}
    encryption = None
    if secret is not None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        nonce = os.urandom(NONCE_BYTES)
        stored = model_file + ".enc"
        files[stored] = nonce + AESGCM(secret).encrypt(nonce, data, (AAD_PREFIX + model_file).encode())
        encryption = {"algorithm": "AES-256-GCM", "key_id": aes_key_id(secret), "nonce_bytes": NONCE_BYTES,
                      "associated_data": AAD_PREFIX + model_file}
    else:
        stored = model_file
        files[stored] = data
    if tokenizer is not None:
        files[TOKENIZER] = tokenizer_data
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name or model.stem,
        "created": _timestamp(),
        "edgekit_version": __version__,
        "created_with": {"python": platform.python_version(), "platform": platform.platform()},
        "model": {"file": stored, "format": fmt, "size": len(data), "sha256": sha256(data),
                  "encrypted": encryption is not None, "source_name": model.name},
        **io_info,
        "preprocess": pre.as_dict() if pre else None,
        "postprocess": post.as_dict() if post else None,
        "labels": list(labels_) if labels_ else None,
        **({"tokenizer": {"file": TOKENIZER, **tokenizer_info}} if tokenizer is not None else {}),
        "quantization": quant,
        "validation": metadata.get("edgekit.validation"),
        "benchmark": figures,
        "model_metadata": {k: v for k, v in metadata.items() if k != "edgekit.validation"},
        "encryption": encryption,
        "signing": {"algorithm": "Ed25519", "public_key_id": public_key_id(signer.public_key())} if signer else None,
        "files": {fname: {"size": len(blob), "sha256": sha256(blob)} for fname, blob in files.items()},
    }
    manifest_bytes = (to_json(manifest, sort_keys=True) + "\n").encode()
    entries = [(MANIFEST, manifest_bytes, zipfile.ZIP_DEFLATED)]
    if signer is not None:
        entries.append((SIGNATURE, signer.sign(manifest_bytes), zipfile.ZIP_STORED))
    # models are stored, not deflated: weights barely compress, and inflating costs more load time than reading
    entries += [(fname, blob, zipfile.ZIP_STORED) for fname, blob in files.items()]
    with atomic_path(output) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            for fname, blob, method in entries:
                info = zipfile.ZipInfo(fname, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                info.external_attr = 0o644 << 16
                zf.writestr(info, blob)
    return BundleResult(output, json.loads(manifest_bytes), signer is not None, encryption is not None)


def _processing(preprocess, postprocess, labels) -> dict:
    """Merge the preprocessing file/mapping/items, postprocessing and labels into one dict."""
    merged: dict[str, Any] = {}
    if isinstance(preprocess, (str, os.PathLike)) and "=" not in str(preprocess):
        merged.update(load_processing_file(preprocess))
    elif isinstance(preprocess, (list, tuple)):
        files = [p for p in preprocess if "=" not in str(p)]
        if len(files) > 1:
            raise UsageError(f"Give at most one preprocessing file, got {[str(f) for f in files]}.")
        if files:
            merged.update(load_processing_file(files[0]))
        options = parse_options([p for p in preprocess if "=" in str(p)])
        if options or files:
            merged["preprocess"] = {**(merged.get("preprocess") or {}), **options}
    elif preprocess is not None:
        merged["preprocess"] = parse_spec(preprocess)
    if postprocess is not None:
        merged["postprocess"] = {**(merged.get("postprocess") or {}), **dict(postprocess)}
    if isinstance(labels, (str, os.PathLike)):
        merged["labels"] = load_labels(labels)
    elif labels is not None:
        merged["labels"] = [str(x) for x in labels]
    return merged


def load_labels(path: str | os.PathLike) -> list[str]:
    """Labels from a .json list or a text file with one label per line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"The labels file '{path}' does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            labels = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"Cannot read the labels file '{path}': {exc}.") from exc
        if not isinstance(labels, list):
            raise UsageError(f"The labels file '{path}' must hold a JSON list of strings.")
        return [str(x) for x in labels]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _tensor(info) -> dict:
    d = info.describe()
    if info.quantization:
        d["quantization"] = info.quantization
    return d


def _model_metadata(fmt: str, data: bytes, session) -> dict:
    """edgekit.* metadata: ONNX metadata_props (via the runtime), TFLite metadata buffers named edgekit*."""
    raw = dict(session.metadata or {})
    if fmt == "tflite" and not raw:
        from edgekit.runtimes.litert import read_edgekit_metadata
        raw = read_edgekit_metadata(data)
    return {k: _maybe_json(v) for k, v in raw.items() if str(k).startswith("edgekit")}


def _maybe_json(value):
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _quantization_summary(fmt: str, data: bytes, metadata: dict, session) -> dict:
    """The quantization the model declares (edgekit.quantization metadata) and what its tensors show."""
    summary: dict[str, Any] = {"declared": metadata.get("edgekit.quantization")}
    quant_io = {t.name: t.quantization for t in [*session.inputs, *session.outputs] if t.quantization}
    summary["quantized_io"] = quant_io or None
    summary.update(_tensor_census(fmt, data))
    return summary


def _tensor_census(fmt: str, data: bytes) -> dict:
    """edgekit.inspect's counts of weight dtypes and quantization ops/tensors; empty when the format's schema
    package (onnx, ai_edge_litert) is not installed here."""
    from edgekit.inspect import tensor_census
    try:
        return tensor_census(fmt, data)
    except ImportError:
        return {}


def _bench(session, bench_time: float, threads, log) -> dict:
    from edgekit.bench import time_session
    from edgekit.envinfo import fingerprint
    from edgekit.inputs import random_inputs

    log(f"benchmarking for about {bench_time:g} s")
    feeds = random_inputs(session.inputs, seed=0, batch=1)
    stats = time_session(session, feeds, min_time=bench_time)
    return {"runtime": session.runtime, "provider": session.provider, "threads": threads,
            "inputs": {k: list(v.shape) for k, v in feeds.items()}, "latency": stats.as_dict(samples=False),
            "environment": fingerprint(threads)}


def _timestamp() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")  # reproducible builds
    t = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
