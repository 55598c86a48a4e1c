"""`edgekit.load`: a .tflite/.onnx model or an .ekb bundle → an app Model (edgekit.app), or a TextModel (edgekit.text)
when a tokenizer comes with it.

It sits above app, bundle and text because it chooses between them: app.Model knows nothing of bundles or
tokenizers, so those modules can build on it without an import cycle (tests/test_import_graph.py).
Needs numpy and one runtime; never imports torch or onnx.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from edgekit.app import Model
from edgekit.errors import UsageError
from edgekit.processing import Postprocess, Preprocess, processing_from_metadata

__all__ = ["load"]


def load(source: str | os.PathLike | bytes, *, runtime: str = "auto", provider: str = "auto",
         threads: int | None = None, public_key: str | os.PathLike | bytes | None = None,
         require_signature: bool = False, key: bytes | str | None = None, key_file: str | os.PathLike | None = None,
         preprocess: Mapping | None = None, postprocess: Mapping | None = None, labels: Sequence[str] | None = None,
         max_bytes: int | None = None, tokenizer: str | os.PathLike | bytes | None = None,
         max_length: int | None = None) -> Model:
    """Load a .tflite/.onnx model or an .ekb bundle (a path or bytes) into a callable Model.

    Bundles are checked before anything reaches a runtime: every file's SHA-256, the Ed25519 signature when
    `public_key` is given (required with `require_signature`), and an encrypted model is decrypted in memory
    with `key` / `key_file` / $EDGEKIT_BUNDLE_KEY. preprocess/postprocess/labels override a bundle's.
    runtime: auto | onnxruntime | litert; provider: auto | cpu | cuda; threads: intra-op threads.
    tokenizer: a tokenizer.json (path or bytes; a bundle may carry one) → an edgekit.text.TextModel with
    encode()/classify() for texts, truncating at `max_length` tokens (default: the model's own length).
    """
    from edgekit import runtimes

    manifest, checks, bundled_tokenizer = None, {}, None
    if _is_bundle(source):
        from edgekit.bundle.read import open_bundle
        opened = open_bundle(source, public_key=public_key, require_signature=require_signature, key=key,
                             key_file=key_file, max_bytes=max_bytes)
        manifest, model_bytes, checks = opened.manifest, opened.model, opened.checks
        bundled_tokenizer = opened.tokenizer
        session = runtimes.load(model_bytes, runtime=runtime, provider=provider, threads=threads)
        label = str(source) if not isinstance(source, (bytes, bytearray)) else f"<bundle {manifest.get('name')}>"
    else:
        if public_key is not None or require_signature or key is not None or key_file is not None:
            raise UsageError("Signatures and encryption apply to .ekb bundles; this is a plain model file.",
                             hint="Pack it with `edgekit bundle MODEL --sign KEY [--encrypt]`, or drop those options.")
        session = runtimes.load(source, runtime=runtime, provider=provider, threads=threads)
        label = str(source) if not isinstance(source, (bytes, bytearray)) else "<bytes>"
    manifest_ = manifest or {}
    try:
        # what neither the caller nor a bundle's manifest says comes from the model's own metadata (edgekit export
        # writes it for zoo detectors/segmenters; convert carries it into the .tflite)
        own = {} if all(v is not None for v in (labels, preprocess, postprocess)) else \
            processing_from_metadata(getattr(session, "metadata", None), f"'{label}'")
        labels = _first(labels, manifest_.get("labels"), own.get("labels"))
        labels = list(labels) if labels is not None else None
        pre_spec = _first(preprocess, manifest_.get("preprocess"), own.get("preprocess"))
        post_spec = _first(postprocess, manifest_.get("postprocess"), own.get("postprocess"))
        pre = Preprocess.from_spec(pre_spec, session.inputs) if pre_spec else None
        post = Postprocess.from_spec(post_spec or {}, session.outputs, labels) if post_spec is not None or labels else None
    except Exception:
        session.close()
        raise
    model = Model(session, manifest, pre, post, labels, label, checks)
    if tokenizer is not None or bundled_tokenizer is not None:
        from edgekit.text import attach_tokenizer
        return attach_tokenizer(model, tokenizer if tokenizer is not None else bundled_tokenizer,
                                model_bytes if manifest else source, max_length)
    return model


def _first(*values):
    return next((v for v in values if v is not None), None)


def _is_bundle(source) -> bool:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:2]) == b"PK"
    from edgekit.fileio import sniff_format
    return sniff_format(source) == "ekb"
