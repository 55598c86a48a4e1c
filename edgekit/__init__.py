"""edgekit: PyTorch models to edge devices — export, optimize, quantize, compile to TFLite, run and measure.

`import edgekit` stays light (numpy only); heavy pieces load on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path, **options):
    """Load a .onnx, .tflite or .ekb model for inference in an app (see edgekit.loading and edgekit.app)."""
    from edgekit.loading import load as _load
    return _load(path, **options)
