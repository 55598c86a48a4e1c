"""Deployment bundles (.ekb): a model and its manifest.json in a zip, optionally Ed25519-signed and AES-GCM-encrypted.

Bundles are untrusted input. They are read in memory and never extracted; every zip entry is checked (flat
names only, no duplicates, symlinks or oversized entries, sizes checked while reading under a cap); the
manifest is strict JSON; the signature and every SHA-256 are checked before a model reaches a runtime.

| refusal | error (exit code) |
| --- | --- |
| damaged zip, bad entry name/size/type, hash or size mismatch, missing or unlisted file | InvalidModelError (3) |
| bad signature, signed by another key, unsigned when a key is given | InvalidModelError (3) |
| encrypted model that fails to decrypt or whose plaintext hash differs | InvalidModelError (3) |
| wrong or missing decryption key, unreadable key file | UsageError (2) |
| `cryptography` not installed (signing, encryption) | EnvironmentProblem (7) |
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import platform
import re
import stat
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from edgekit import __version__
from edgekit.deps import require
from edgekit.errors import EnvironmentProblem, InvalidModelError, UnsupportedModelError, UsageError
from edgekit.fileio import atomic_path, atomic_write, check_output, sniff_format, to_json
from edgekit.processing import (  # noqa: F401 (load_processing_file, parse_options: re-exported)
    Postprocess, Preprocess, load_processing_file, parse_options, parse_spec,
)

FORMAT = "edgekit-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
TOKENIZER = "tokenizer.json"
KEY_ENV = "EDGEKIT_BUNDLE_KEY"
MAX_MANIFEST_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 1024
DEFAULT_MAX_BYTES = 2 << 30          # per model file; load(..., max_bytes=) raises or lowers it
MAX_ENTRIES = 8
NONCE_BYTES = 12
AAD_PREFIX = "edgekit-bundle-v1:"    # AES-GCM associated data binds the ciphertext to its file name
MODEL_FORMATS = ("onnx", "tflite")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CRYPTO_PURPOSE = "Signing, verifying signatures and encrypting bundles"


# ------------------------------------------------------------------ keys

def keygen(output: str | os.PathLike, *, aes: bool = False, force: bool = False) -> dict:
    """Write an Ed25519 key pair NAME.key (private, mode 0600) and NAME.pub, and with `aes` NAME.aes (AES-256, 0600).

    Refuses to replace any existing key file unless `force`.
    """
    require("cryptography", _CRYPTO_PURPOSE)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    base = Path(output)
    if base.suffix in (".key", ".pub", ".aes"):
        base = base.with_suffix("")
    paths = {"private": base.with_name(base.name + ".key"), "public": base.with_name(base.name + ".pub")}
    if aes:
        paths["aes"] = base.with_name(base.name + ".aes")
    for path in paths.values():
        check_output(path, force=True)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise UsageError(f"Key file(s) {existing} already exist; edgekit never overwrites a key silently.",
                         hint="Choose another -o NAME, or pass --force to replace them (the old keys are lost).")
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    result = {"private_key": str(paths["private"]), "public_key": str(paths["public"]),
              "public_key_id": _public_key_id(private.public_key())}
    write_secret(paths["private"], private_pem)
    atomic_write(paths["public"], public_pem)
    if aes:
        secret = os.urandom(32)
        write_secret(paths["aes"], secret.hex() + "\n")
        result.update(aes_key=str(paths["aes"]), aes_key_id=_aes_key_id(secret))
    return result


def write_secret(dest: str | os.PathLike, data: bytes | str) -> Path:
    """Atomic write of a secret: readable by its owner only (0600) from the first byte on."""
    from edgekit.fileio import atomic_write
    try:
        return atomic_write(dest, data.encode() if isinstance(data, str) else data, mode=stat.S_IRUSR | stat.S_IWUSR)
    except EnvironmentProblem as exc:
        raise EnvironmentProblem(f"Could not write the key file '{dest}': {exc.message}",
                                 hint="Choose a directory you can write to, with free space.") from exc


def read_aes_key(key: bytes | str | None = None, key_file: str | os.PathLike | None = None) -> bytes | None:
    """The 256-bit AES key from `key`, else `key_file`, else $EDGEKIT_BUNDLE_KEY; None if none is given.

    Accepted forms: 64 hex digits, base64 of 32 bytes, or (files and bytes) the 32 raw bytes.
    """
    if key is not None:
        raw, origin = key, "the key given"
    elif key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise UsageError(f"The key file '{path}' does not exist.", hint="Make one with: edgekit keygen -o NAME --aes.")
        raw, origin = path.read_bytes()[:1024], f"the key file '{path}'"
    elif os.environ.get(KEY_ENV):
        raw, origin = os.environ[KEY_ENV], f"${KEY_ENV}"
    else:
        return None
    if isinstance(raw, (bytes, bytearray)) and len(raw) == 32 and not re.fullmatch(rb"[0-9a-fA-F\s]+", bytes(raw)):
        return bytes(raw)
    text = raw.decode("ascii", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    text = "".join(text.split())
    try:
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            return bytes.fromhex(text)
        decoded = base64.b64decode(text, validate=True)
        if len(decoded) == 32:
            return decoded
    except (ValueError, binascii.Error):
        pass
    raise UsageError(f"{origin[0].upper() + origin[1:]} is not a 256-bit AES key.",
                     hint="Give 64 hex digits or base64 of 32 bytes (edgekit keygen -o NAME --aes writes one).")


def _aes_key_id(secret: bytes) -> str:
    # a fingerprint that names the key in messages; it reveals nothing usable about a random 256-bit key
    return hashlib.sha256(b"edgekit-aes-key-id\0" + secret).hexdigest()[:16]


def _public_key_id(public_key) -> str:
    from cryptography.hazmat.primitives import serialization
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _load_private_key(path: str | os.PathLike):
    require("cryptography", _CRYPTO_PURPOSE)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"The signing key '{path}' does not exist.", hint="Make a key pair with: edgekit keygen -o NAME.")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError as exc:
        raise UsageError(f"The signing key '{path}' is protected by a passphrase, which edgekit does not read.",
                         hint="Use an unencrypted PEM key (edgekit keygen writes one, mode 0600).") from exc
    except ValueError as exc:
        raise UsageError(f"'{path}' is not a PEM private key ({exc}).",
                         hint="Give the NAME.key file written by edgekit keygen (NAME.pub is the public half).") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"The signing key '{path}' is a {type(key).__name__.replace('_', '')}, not an Ed25519 key.",
                         hint="Make an Ed25519 key pair with: edgekit keygen -o NAME.")
    return key


def _load_public_key(source: str | os.PathLike | bytes):
    require("cryptography", _CRYPTO_PURPOSE)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(source, (bytes, bytearray)):
        data, origin = bytes(source), "the public key given"
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"The public key '{path}' does not exist.", hint="Give the NAME.pub file from edgekit keygen.")
        data, origin = path.read_bytes()[:16384], f"'{path}'"
    try:
        key = serialization.load_pem_public_key(data) if data.lstrip().startswith(b"-----") else (
            Ed25519PublicKey.from_public_bytes(data))
    except ValueError as exc:
        raise UsageError(f"{origin} is not a PEM public key ({str(exc)[:200]}).",
                         hint="Give the NAME.pub file from edgekit keygen (NAME.key is the private half; keep it secret).") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{origin} is not an Ed25519 public key.", hint="Give the NAME.pub file from edgekit keygen.")
    return key


# ------------------------------------------------------------------ writing bundles

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
    signer = _load_private_key(sign) if sign else None
    secret = None
    if encrypt:
        require("cryptography", _CRYPTO_PURPOSE)
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
        encryption = {"algorithm": "AES-256-GCM", "key_id": _aes_key_id(secret), "nonce_bytes": NONCE_BYTES,
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
        "model": {"file": stored, "format": fmt, "size": len(data), "sha256": _sha256(data),
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
        "signing": {"algorithm": "Ed25519", "public_key_id": _public_key_id(signer.public_key())} if signer else None,
        "files": {fname: {"size": len(blob), "sha256": _sha256(blob)} for fname, blob in files.items()},
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
    """Counts of weight dtypes and quantization ops, when the format's schema package is installed."""
    if fmt == "onnx":
        try:
            import onnx
            proto = onnx.load_model_from_string(data)
        except Exception:
            return {}
        dtypes: dict[str, int] = {}
        for init in proto.graph.initializer:
            name = onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name
            dtypes[name] = dtypes.get(name, 0) + 1
        quant_ops: dict[str, int] = {}
        for node in proto.graph.node:
            if "quant" in node.op_type.lower() or node.op_type.startswith("QLinear") or node.op_type.endswith("Integer"):
                quant_ops[node.op_type] = quant_ops.get(node.op_type, 0) + 1
        return {"weight_dtypes": dtypes, "quant_ops": quant_ops}
    try:
        from ai_edge_litert import schema_py_generated as schema
        model = schema.Model.GetRootAs(data, 0)
        names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        dtypes, quantized = {}, 0
        for s in range(model.SubgraphsLength()):
            sub = model.Subgraphs(s)
            for t in range(sub.TensorsLength()):
                tensor = sub.Tensors(t)
                buf = model.Buffers(tensor.Buffer())
                if buf is not None and (buf.DataLength() or buf.Size()):
                    name = names.get(tensor.Type(), str(tensor.Type())).lower()
                    dtypes[name] = dtypes.get(name, 0) + 1
                q = tensor.Quantization()
                if q is not None and q.ScaleLength():
                    quantized += 1
        return {"weight_dtypes": dtypes, "quantized_tensors": quantized}
    except Exception:
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ reading bundles

@dataclass
class OpenedBundle:
    manifest: dict
    model: bytes | None                          # the plaintext model; None when it stayed encrypted
    checks: dict = field(default_factory=dict)   # what was verified, for reports
    tokenizer: bytes | None = None               # tokenizer.json of a text model, SHA-256 checked


def open_bundle(source: str | os.PathLike | bytes, *, public_key: str | os.PathLike | bytes | None = None,
                require_signature: bool = False, key: bytes | str | None = None,
                key_file: str | os.PathLike | None = None, decrypt: bool = True,
                max_bytes: int | None = None) -> OpenedBundle:
    """Check a bundle completely and return its manifest and model bytes (decrypted in memory).

    Order: zip entries → manifest JSON → signature (with `public_key`) → every file's size and SHA-256 →
    decryption and the plaintext's SHA-256. Any failure raises before the model is returned.
    """
    limit = int(max_bytes or DEFAULT_MAX_BYTES)
    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if require_signature and public_key is None:
        raise UsageError("A signature is required but no public key was given to check it with.",
                         hint="Pass the signer's NAME.pub (--public-key / public_key=).")
    with _open_zip(source, label) as zf:
        infos = _checked_entries(zf, label, limit)
        if MANIFEST not in infos:
            raise InvalidModelError(f"The bundle '{label}' has no {MANIFEST}.", hint="Re-create it with edgekit bundle.")
        manifest_bytes = _read_entry(zf, infos[MANIFEST], label, MAX_MANIFEST_BYTES)
        manifest = _parse_manifest(manifest_bytes, label)
        checks: dict[str, Any] = {"entries": len(infos)}
        checks["signature"] = _check_signature(zf, infos, manifest, manifest_bytes, public_key, label)
        listed = set(manifest["files"])
        unlisted = sorted(set(infos) - listed - {MANIFEST, SIGNATURE})
        missing = sorted(listed - set(infos))
        if unlisted:
            raise InvalidModelError(f"The bundle '{label}' contains file(s) {unlisted} that its manifest does not list.",
                                    hint="Only edgekit bundle output is accepted; re-create the bundle.")
        if missing:
            raise InvalidModelError(f"The bundle '{label}' is missing file(s) {missing} listed in its manifest.",
                                    hint="The bundle is incomplete; re-create or re-download it.")
        blobs = {}
        for fname, expected in sorted(manifest["files"].items()):
            blob = _read_entry(zf, infos[fname], label, min(limit, expected["size"]))
            if len(blob) != expected["size"] or _sha256(blob) != expected["sha256"]:
                raise InvalidModelError(f"The file '{fname}' in the bundle '{label}' does not match its SHA-256 "
                                        f"in the manifest: it was changed or damaged. Nothing was loaded.",
                                        hint="Re-download the bundle from a trusted source.")
            blobs[fname] = blob
        checks["files"] = {f: "sha256 ok" for f in sorted(blobs)}
    model_info = manifest["model"]
    payload = blobs[model_info["file"]]
    tokenizer = blobs[manifest["tokenizer"]["file"]] if manifest.get("tokenizer") else None
    if not model_info.get("encrypted"):
        checks["encryption"] = "none"
        return OpenedBundle(manifest, _check_plaintext(payload, model_info, label), checks, tokenizer)
    secret = read_aes_key(key, key_file) if decrypt else None
    if secret is None:
        if decrypt:
            raise UsageError(f"The model in '{label}' is encrypted and no key was given.",
                             hint=f"Pass --key-file FILE / key_file=, or set ${KEY_ENV}.")
        checks["encryption"] = f"{(manifest.get('encryption') or {}).get('algorithm')}, not decrypted (no key given)"
        return OpenedBundle(manifest, None, checks, tokenizer)
    plaintext = _decrypt(payload, secret, manifest, label)
    checks["encryption"] = f"{manifest['encryption']['algorithm']}, decrypted in memory"
    return OpenedBundle(manifest, _check_plaintext(plaintext, model_info, label), checks, tokenizer)


def verify(bundle_path: str | os.PathLike | bytes, *, public_key: str | os.PathLike | bytes | None = None,
           require_signature: bool = False, key: bytes | str | None = None,
           key_file: str | os.PathLike | None = None, max_bytes: int | None = None) -> dict:
    """Check a bundle (entries, manifest, signature, hashes; decryption when a key is given) → a report."""
    opened = open_bundle(bundle_path, public_key=public_key, require_signature=require_signature, key=key,
                         key_file=key_file, max_bytes=max_bytes,
                         decrypt=key is not None or key_file is not None or bool(os.environ.get(KEY_ENV)))
    m = opened.manifest
    return {"bundle": str(bundle_path) if not isinstance(bundle_path, (bytes, bytearray)) else "<bytes>",
            "ok": True, "name": m.get("name"), "edgekit_version": m.get("edgekit_version"),
            "created": m.get("created"), "model": m["model"], "inputs": m.get("inputs"), "outputs": m.get("outputs"),
            "preprocess": m.get("preprocess"), "postprocess": m.get("postprocess"),
            "labels": len(m["labels"]) if m.get("labels") else 0, "quantization": m.get("quantization"),
            "benchmark": m.get("benchmark"), "files": m["files"], "checks": opened.checks}


def _open_zip(source, label: str) -> zipfile.ZipFile:
    if isinstance(source, (bytes, bytearray)):
        fh = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"The bundle '{path}' does not exist.", hint="Check the path.")
        fh = path
    try:
        return zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidModelError(f"'{label}' is not a readable .ekb bundle: it is not a zip archive or the archive is "
                                f"damaged ({exc}).", hint="Give a bundle made by edgekit bundle; re-download it if it is damaged.") from exc


def _checked_entries(zf: zipfile.ZipFile, label: str, limit: int) -> dict[str, zipfile.ZipInfo]:
    """Every entry must be a plain, flat, uniquely named file of acceptable size; nothing is extracted."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InvalidModelError(f"The bundle '{label}' has {len(infos)} entries; a bundle has at most {MAX_ENTRIES}.",
                                hint="It was not made by edgekit bundle.")
    seen: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        shown = ascii(name)
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in re.split(r"[/\\]", name):
            raise InvalidModelError(f"The bundle '{label}' has an entry {shown} whose path escapes the bundle "
                                    f"(absolute or with '..'). Refused; nothing was extracted or loaded.",
                                    hint="Bundles from untrusted sources can be malicious; use one made by edgekit bundle.")
        if name in seen:
            raise InvalidModelError(f"The bundle '{label}' has two entries named {shown}. Refused.",
                                    hint="Duplicate names can hide a second file; re-create the bundle.")
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):
            raise InvalidModelError(f"The bundle '{label}' has an entry {shown} that is a symbolic link. Refused.",
                                    hint="Bundles hold plain files only.")
        if info.is_dir() or not _SAFE_NAME.match(name):
            raise InvalidModelError(f"The bundle '{label}' has an entry {shown}, which is not a plain file name "
                                    f"(letters, digits, '.', '_', '-'; no folders).", hint="Re-create the bundle.")
        if info.flag_bits & 0x1:
            raise InvalidModelError(f"The entry {shown} in '{label}' uses zip encryption, which bundles never do.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InvalidModelError(f"The entry {shown} in '{label}' uses compression method {info.compress_type}; "
                                    f"bundles use stored or deflate only.")
        cap = MAX_MANIFEST_BYTES if name == MANIFEST else MAX_SIGNATURE_BYTES if name == SIGNATURE else limit
        if info.file_size > cap:
            raise InvalidModelError(f"The entry {shown} in '{label}' declares {info.file_size} bytes, over the "
                                    f"limit of {cap} bytes. Refused.",
                                    hint="Pass a larger max_bytes to edgekit.load if you trust this bundle."
                                    if cap == limit else None)
        seen[name] = info
    return seen


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, cap: int) -> bytes:
    """Read one entry into memory, never more than `cap` bytes, and require exactly its declared size."""
    try:
        with zf.open(info) as fh:
            data = fh.read(cap + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise InvalidModelError(f"The entry '{info.filename}' in '{label}' is damaged ({exc}). Nothing was loaded.",
                                hint="Re-download the bundle.") from exc
    except Exception as exc:  # zlib.error and other decoder failures
        raise InvalidModelError(f"The entry '{info.filename}' in '{label}' cannot be decompressed ({exc}).",
                                hint="Re-download the bundle.") from exc
    if len(data) > cap:
        raise InvalidModelError(f"The entry '{info.filename}' in '{label}' holds more than {cap} bytes. Refused.")
    if len(data) != info.file_size:
        raise InvalidModelError(f"The entry '{info.filename}' in '{label}' holds {len(data)} bytes but declares "
                                f"{info.file_size}. Refused.", hint="Re-download the bundle.")
    return data


def _parse_manifest(data: bytes, label: str) -> dict:
    """Strict JSON (no duplicate keys, NaN or Infinity) with the fields a loader relies on."""
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"duplicate keys {dup}")
        return dict(pairs)

    def no_constants(token):
        raise ValueError(f"non-standard number {token}")

    try:
        manifest = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidModelError(f"The manifest of '{label}' is not valid JSON ({exc}).",
                                hint="The bundle was damaged or altered; re-create it.") from exc
    problems = []
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidModelError(f"'{label}' is not an edgekit bundle (its manifest has no \"format\": \"{FORMAT}\").")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UnsupportedModelError(f"The bundle '{label}' has format version {version!r}; this edgekit "
                                    f"({__version__}) reads version {FORMAT_VERSION}.", hint="Upgrade edgekit.")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        problems.append("no 'files' table")
    else:
        for fname, entry in files.items():
            if not (isinstance(fname, str) and _SAFE_NAME.match(fname) and fname not in (MANIFEST, SIGNATURE)
                    and isinstance(entry, dict) and isinstance(entry.get("size"), int) and entry["size"] >= 0
                    and isinstance(entry.get("sha256"), str) and _HEX64.match(entry["sha256"])):
                problems.append(f"bad file entry {fname!r}")
    model = manifest.get("model")
    if not isinstance(model, dict) or not isinstance(files, dict) or model.get("file") not in files:
        problems.append("'model.file' is not one of the listed files")
    elif model.get("format") not in MODEL_FORMATS or not isinstance(model.get("size"), int) or not (
            isinstance(model.get("sha256"), str) and _HEX64.match(model["sha256"])):
        problems.append("'model' needs format (onnx|tflite), size and sha256")
    elif model.get("encrypted") and not isinstance(manifest.get("encryption"), dict):
        problems.append("the model is marked encrypted but there is no 'encryption' table")
    tokenizer = manifest.get("tokenizer")
    if tokenizer is not None and not (isinstance(tokenizer, dict) and isinstance(files, dict)
                                      and tokenizer.get("file") in files and tokenizer.get("file") != (model if isinstance(model, dict) else {}).get("file")):
        problems.append("'tokenizer.file' is not one of the listed files")
    if problems:
        raise InvalidModelError(f"The manifest of '{label}' is malformed: {'; '.join(problems)}.",
                                hint="Re-create the bundle with edgekit bundle.")
    return manifest


def _check_signature(zf, infos, manifest: dict, manifest_bytes: bytes, public_key, label: str) -> str:
    has_signature = SIGNATURE in infos
    if public_key is None:
        return "present, not checked (no public key given)" if has_signature else "not signed"
    verifier = _load_public_key(public_key)
    given_id = _public_key_id(verifier)
    if not has_signature:
        raise InvalidModelError(f"The bundle '{label}' is not signed, but a public key was given to check it with.",
                                hint="Only signed bundles are accepted with --public-key; sign it: edgekit bundle --sign KEY.")
    signature = _read_entry(zf, infos[SIGNATURE], label, MAX_SIGNATURE_BYTES)
    from cryptography.exceptions import InvalidSignature
    try:
        verifier.verify(signature, manifest_bytes)
    except InvalidSignature:
        claimed = (manifest.get("signing") or {}).get("public_key_id") if isinstance(manifest.get("signing"), dict) else None
        if claimed and claimed != given_id:
            raise InvalidModelError(
                f"The bundle '{label}' was not signed by the public key given (key id {given_id}); its manifest "
                f"names signing key {claimed}. Refused; nothing was loaded.",
                hint="Check that you have the right NAME.pub for this bundle's publisher.") from None
        raise InvalidModelError(f"The signature of '{label}' does not match its manifest: the manifest or the "
                                f"signature was changed after signing. Refused; nothing was loaded.",
                                hint="Re-download the bundle from a trusted source.") from None
    return f"valid (Ed25519, key id {given_id})"


def _decrypt(payload: bytes, secret: bytes, manifest: dict, label: str) -> bytes:
    enc = manifest["encryption"]
    if enc.get("algorithm") != "AES-256-GCM":
        raise UnsupportedModelError(f"The bundle '{label}' is encrypted with {enc.get('algorithm')!r}; "
                                    f"edgekit reads AES-256-GCM.")
    require("cryptography", _CRYPTO_PURPOSE)
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    given = _aes_key_id(secret)
    if enc.get("key_id") and enc["key_id"] != given:
        raise UsageError(f"The decryption key given (key id {given}) is not the one '{label}' was encrypted with "
                         f"(key id {enc['key_id']}). Nothing was decrypted.",
                         hint=f"Pass the matching --key-file / ${KEY_ENV}.")
    nonce_bytes = enc.get("nonce_bytes", NONCE_BYTES)
    if not isinstance(nonce_bytes, int) or not 8 <= nonce_bytes <= 32 or len(payload) < nonce_bytes + 16:
        raise InvalidModelError(f"The encrypted model in '{label}' is too short or its nonce size is invalid.")
    aad = str(enc.get("associated_data", AAD_PREFIX + manifest["model"]["file"].removesuffix(".enc"))).encode()
    try:
        return AESGCM(secret).decrypt(payload[:nonce_bytes], payload[nonce_bytes:], aad)
    except InvalidTag:
        raise InvalidModelError(f"Decrypting the model in '{label}' failed its authentication check: the key is "
                                f"wrong or the ciphertext was altered. Nothing was loaded.",
                                hint="Check the key; re-download the bundle.") from None


def _check_plaintext(data: bytes, model_info: dict, label: str) -> bytes:
    if len(data) != model_info["size"] or _sha256(data) != model_info["sha256"]:
        raise InvalidModelError(f"The model in '{label}' does not match the SHA-256 in its manifest. Nothing was loaded.",
                                hint="The bundle was altered; re-download it from a trusted source.")
    return data
