"""Reading bundles (.ekb) — the device side: open, check, decrypt in memory; needs numpy and one runtime, never
torch or onnx (tests/test_light_imports.py).

Bundles are untrusted input. They are read in memory and never extracted; every zip entry is checked (flat
names only, no duplicates, symlinks or oversized entries, sizes checked while reading under a cap); the
manifest is strict JSON; the signature and every SHA-256 are checked before a model reaches a runtime.
The format's names and limits live here, with the reader that enforces them; edgekit.bundle.write uses them.

| refusal | error (exit code) |
| --- | --- |
| damaged zip, bad entry name/size/type, hash or size mismatch, missing or unlisted file | InvalidModelError (3) |
| bad signature, signed by another key, unsigned when a key is given | InvalidModelError (3) |
| encrypted model that fails to decrypt or whose plaintext hash differs | InvalidModelError (3) |
| wrong or missing decryption key, unreadable key file | UsageError (2) |
| `cryptography` not installed (signing, encryption) | EnvironmentProblem (7) |
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.bundle.keys import CRYPTO_PURPOSE, KEY_ENV, aes_key_id, load_public_key, public_key_id, read_aes_key
from edgekit.deps import require
from edgekit.errors import InvalidModelError, UnsupportedModelError, UsageError

FORMAT = "edgekit-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
TOKENIZER = "tokenizer.json"
MAX_MANIFEST_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 1024
DEFAULT_MAX_BYTES = 2 << 30          # per model file; load(..., max_bytes=) raises or lowers it
MAX_ENTRIES = 8
NONCE_BYTES = 12
AAD_PREFIX = "edgekit-bundle-v1:"    # AES-GCM associated data binds the ciphertext to its file name
MODEL_FORMATS = ("onnx", "tflite")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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
            if len(blob) != expected["size"] or sha256(blob) != expected["sha256"]:
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
    verifier = load_public_key(public_key)
    given_id = public_key_id(verifier)
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
    require("cryptography", CRYPTO_PURPOSE)
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    given = aes_key_id(secret)
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
    if len(data) != model_info["size"] or sha256(data) != model_info["sha256"]:
        raise InvalidModelError(f"The model in '{label}' does not match the SHA-256 in its manifest. Nothing was loaded.",
                                hint="The bundle was altered; re-download it from a trusted source.")
    return data


def sha256(data: bytes) -> str:
    """The hex SHA-256 a manifest records for every file (and the plaintext model)."""
    return hashlib.sha256(data).hexdigest()
