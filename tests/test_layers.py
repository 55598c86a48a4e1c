"""edgekit's layers, checked on the import graph (read with `ast` by test_import_graph): each layer imports only
itself and the layers below it.

    base      utilities every other module uses: errors, files, inputs, tensors, timing, metrics, processing
    device    what an app on a phone or board imports: runtimes, edgekit.load, the app API, bundle reading
    host      the workflows: export, optimize, quantize, convert, compare, bench, profile, pipeline, the compiler
    cli       argument parsing and rendering over the host layer; nothing imports it

Why a test and not only folders: the device layer must stay installable with numpy and one runtime
(tests/test_light_imports.py proves that at run time for the imports a test happens to make); this proves it for every
import in the source, lazy ones included, so a host dependency cannot creep into the device side unseen.
"""
from __future__ import annotations

import pytest

from test_import_graph import import_graph  # tests/ is on sys.path

GRAPH = import_graph()  # parsed once per test process: every module's test reads it

BASE = {"edgekit.errors", "edgekit.deps", "edgekit.fileio", "edgekit.inputs", "edgekit.metrics", "edgekit.tensors",
        "edgekit.timing", "edgekit.envinfo", "edgekit.onnx_io", "edgekit.macs", "edgekit.processing"}
DEVICE_PACKAGES = ("edgekit.runtimes",)
DEVICE = {"edgekit", "edgekit.loading", "edgekit.app", "edgekit.text", "edgekit.detection", "edgekit.segmentation",
          "edgekit.detection_metrics", "edgekit.remote_agent", "edgekit.bundle.read", "edgekit.bundle.keys"}
CLI = "edgekit.cli"


def layer(module: str) -> int:
    """0 base, 1 device, 2 host, 3 cli."""
    if module in BASE:
        return 0
    if module in DEVICE or module.startswith(tuple(p + "." for p in DEVICE_PACKAGES)) or module in DEVICE_PACKAGES:
        return 1
    if module == CLI or module.startswith(CLI + "."):
        return 3
    return 2


NAMES = ("base", "device", "host", "cli")


def test_every_listed_module_exists():
    assert not (BASE | DEVICE | set(DEVICE_PACKAGES)) - set(GRAPH), "a layer lists a module that is gone"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_a_module_imports_only_its_layer_and_below(module):
    upward = sorted(d for d in GRAPH[module] if layer(d) > layer(module))
    assert not upward, (f"{module} ({NAMES[layer(module)]}) imports {', '.join(f'{d} ({NAMES[layer(d)]})' for d in upward)}"
                        " from a layer above it: move the shared piece down, or the module up")


def test_the_layers_are_told_apart():
    assert [layer(m) for m in ("edgekit.errors", "edgekit.runtimes.litert", "edgekit.convert", "edgekit.cli.common")] \
        == [0, 1, 2, 3]
