"""edgekit: PyTorch models to edge devices — export, optimize, quantize, compile to TFLite, run and measure.

`import edgekit` stays light (numpy only); heavy pieces load on first use.

Four layers, each importing only itself and those below it (tests/test_layers.py walks every import to hold this):
    base    errors, deps, fileio, inputs, tensors, timing, metrics, macs, envinfo, onnx_io, processing
    device  runtimes/, loading (`edgekit.load`), app, text, detection, segmentation, bundle.read and .keys,
            remote_agent: what an app on a phone or board imports (numpy + one runtime)
    host    the workflows: converters/ (export, the TFLite compiler), optimize, quantize/, convert, compare, bench,
            profile, inspect, pipeline/, bundle.write, remote
    cli     cli/: parse, call one library function, render
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path, **options):
    """Load a .onnx, .tflite or .ekb model for inference in an app (see edgekit.loading and edgekit.app)."""
    from edgekit.loading import load as _load
    return _load(path, **options)
