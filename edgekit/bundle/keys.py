"""Bundle keys: Ed25519 signing key pairs and AES-256 keys — generating, writing (0600), loading, fingerprints.

The signing and decryption checks themselves are in edgekit.bundle.read; this module only turns files, text
and $EDGEKIT_BUNDLE_KEY into key objects and gives every key a short id that names it in messages. Loading a
key needs `cryptography` (extra `bundle`), imported only when a key is used.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from pathlib import Path

from edgekit.deps import require
from edgekit.errors import EnvironmentProblem, UsageError
from edgekit.fileio import atomic_write, check_output

KEY_ENV = "EDGEKIT_BUNDLE_KEY"
CRYPTO_PURPOSE = "Signing, verifying signatures and encrypting bundles"


def keygen(output: str | os.PathLike, *, aes: bool = False, force: bool = False) -> dict:
    """Write an Ed25519 key pair NAME.key (private, mode 0600) and NAME.pub, and with `aes` NAME.aes (AES-256, 0600).

    Refuses to replace any existing key file unless `force`.
    """
    require("cryptography", CRYPTO_PURPOSE)
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
              "public_key_id": public_key_id(private.public_key())}
    write_secret(paths["private"], private_pem)
    atomic_write(paths["public"], public_pem)
    if aes:
        secret = os.urandom(32)
        write_secret(paths["aes"], secret.hex() + "\n")
        result.update(aes_key=str(paths["aes"]), aes_key_id=aes_key_id(secret))
    return result


def write_secret(dest: str | os.PathLike, data: bytes | str) -> Path:
    """Atomic write of a secret: readable by its owner only (0600) from the first byte on."""
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


def aes_key_id(secret: bytes) -> str:
    """A fingerprint that names an AES key in manifests and messages; it reveals nothing usable about a random
    256-bit key."""
    return hashlib.sha256(b"edgekit-aes-key-id\0" + secret).hexdigest()[:16]


def public_key_id(public_key) -> str:
    """The id a manifest and its messages name a signing key by: SHA-256 of the raw Ed25519 public key, 16 hex."""
    from cryptography.hazmat.primitives import serialization
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: str | os.PathLike):
    """The Ed25519 private key in an unencrypted PEM file (NAME.key from keygen); anything else is a UsageError."""
    require("cryptography", CRYPTO_PURPOSE)
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


def load_public_key(source: str | os.PathLike | bytes):
    """The Ed25519 public key from a PEM file (NAME.pub), PEM bytes or the 32 raw bytes."""
    require("cryptography", CRYPTO_PURPOSE)
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
