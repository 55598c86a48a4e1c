"""Deployment bundles (.ekb): a model and its manifest.json in a zip, optionally Ed25519-signed and AES-GCM-encrypted.

One module per job: `keys` (key pairs and AES keys: generate, load, fingerprint), `write` (`bundle()`), `read`
(`open_bundle()`, `verify()`: the device side, numpy + one runtime, never torch or onnx). The names below are the
public API; `from edgekit.bundle import bundle, verify, keygen, open_bundle` keeps working.
"""
from __future__ import annotations

from edgekit.bundle.keys import KEY_ENV, keygen, read_aes_key, write_secret
from edgekit.bundle.read import (DEFAULT_MAX_BYTES, FORMAT, FORMAT_VERSION, MANIFEST, SIGNATURE, TOKENIZER, OpenedBundle,
                                 open_bundle, verify)
from edgekit.bundle.write import BundleResult, bundle, load_labels
from edgekit.processing import load_processing_file, parse_options  # re-exported, as before the split

__all__ = ["DEFAULT_MAX_BYTES", "FORMAT", "FORMAT_VERSION", "KEY_ENV", "MANIFEST", "SIGNATURE", "TOKENIZER",
           "BundleResult", "OpenedBundle", "bundle", "keygen", "load_labels", "load_processing_file", "open_bundle",
           "parse_options", "read_aes_key", "verify", "write_secret"]
