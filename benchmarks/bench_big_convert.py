"""How far big weights convert from disk speed: VGG-11-BN (531 MB of float32 weights, random, seeded) through
`edgekit.convert.convert`, timed stage by stage, next to the time this machine takes to read the same ONNX file.

    python benchmarks/bench_big_convert.py [--repeat 3] [--onnx /tmp/vgg11_bn.onnx] [--compare DIR]

--compare DIR runs each repeat twice, alternating, in child processes: once with this tree's edgekit and once with
the `edgekit` package found under DIR (PYTHONPATH=DIR, e.g. an older commit laid out as an importable package), so
both columns see the same moments of a shared machine.

The model is written here in plain torch (torchvision's vgg11_bn layer for layer: 8 conv-BN-ReLU blocks,
adaptive 7x7 average pool, three Linear layers 25088→4096→4096→1000), so torchvision is not needed; it is exported
once (TorchScript exporter, 1x3x224x224) and reused. Each stage is the sum of the calls that make it, timed by
wrapping them for the run only:
  import     reading the file and the importer (load_onnx, import_model: checker, shape inference, initializers)
  compile    the rest of compile_onnx (folding, passes, lowering, the writer's ModelT)
  serialize  every flatbuffer serialization (writer.serialize)
  validate   LiteRT's prepare check, the activation scales, ONNX Runtime vs LiteRT
  write      the atomic write of the .tflite
"disk read" is reading the ONNX file's bytes (warm page cache, as convert sees it right after export).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: torchvision's cfg "A" with batch norm: channels per conv, "M" a 2x2 max pool
VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
STAGES = ("import", "compile", "serialize", "validate", "write")


def vgg11_bn(seed: int = 0):
    """VGG-11-BN with seeded random weights and non-trivial batch-norm statistics (eval mode)."""
    import torch
    from torch import nn
    torch.manual_seed(seed)
    layers, channels = [], 3
    for v in VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            channels = v
    model = nn.Sequential(
        nn.Sequential(*layers), nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(1),
        nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                      nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000)))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
    return model.eval()


def export(path: Path) -> None:
    import torch
    with torch.no_grad():
        torch.onnx.export(vgg11_bn(), (torch.randn(1, 3, 224, 224),), str(path), input_names=["x"],
                          output_names=["logits"], opset_version=17, dynamo=False)


@contextlib.contextmanager
def stage_timers(totals: dict):
    """Wrap the calls that make each stage so their seconds add up in `totals` (restored on exit)."""
    from edgekit import convert as convert_mod, fileio
    from edgekit.converters.tflite import compiler, writer
    wrapped = [(compiler, "load_onnx", "import"), (compiler, "import_model", "import"),
               (writer, "serialize", "serialize"), (convert_mod, "check_litert_prepares", "validate"),
               (convert_mod, "_activation_scales", "validate"), (convert_mod, "validate_tflite", "validate"),
               (fileio, "atomic_write", "write"), (compiler, "compile_onnx", "compile")]
    originals = [(mod, name, getattr(mod, name)) for mod, name, _ in wrapped]

    def timed(fn, stage):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[stage] = totals.get(stage, 0.0) + time.perf_counter() - start
        return call
    try:
        for mod, name, stage in wrapped:
            setattr(mod, name, timed(getattr(mod, name), stage))
        yield  # edgekit.converters.tflite.compile_onnx looks compiler.compile_onnx up at each call
    finally:
        for mod, name, fn in originals:
            setattr(mod, name, fn)


def one_run(onnx_path: Path, out: Path) -> dict:
    from edgekit.convert import convert
    totals: dict = {}
    start = time.perf_counter()
    with stage_timers(totals):
        result = convert(onnx_path, out, force=True)
    totals["total"] = time.perf_counter() - start
    totals["compile"] -= totals.get("import", 0.0)  # compile_onnx's own time holds the import
    assert result.passed, result.outputs
    totals["size"] = result.size_bytes
    return totals


def disk_read(path: Path) -> float:
    start = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    return time.perf_counter() - start


def child_run(onnx_path: Path, pythonpath: str | None) -> dict:
    """one_run in a fresh process (this tree's edgekit, or the one under `pythonpath`)."""
    env = dict(os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    out = subprocess.run([sys.executable, __file__, "--child", "--onnx", str(onnx_path)], env=env, check=True,
                         capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--onnx", default=os.path.join(tempfile.gettempdir(), "edgekit_vgg11_bn.onnx"))
    parser.add_argument("--compare", metavar="DIR", help="also time the edgekit package under DIR (before)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    onnx_path = Path(args.onnx)
    if not onnx_path.exists():
        export(onnx_path)
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one_run(onnx_path, Path(tmp) / "vgg.tflite")))
        return
    size = onnx_path.stat().st_size
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"VGG-11-BN ONNX {size / 1e6:.0f} MB")
    columns = {"before": args.compare, "after": None} if args.compare else {"this tree": None}
    runs: dict = {name: [] for name in columns}
    reads = []
    for _ in range(args.repeat):  # interleaved, so a busy moment of a shared machine does not land on one column
        for name, path in columns.items():
            reads.append(disk_read(onnx_path))
            runs[name].append(child_run(onnx_path, path))
    read_s = statistics.median(reads)
    print(f"disk read {read_s:.2f} s ({size / read_s / 1e6:.0f} MB/s); .tflite {runs[name][0]['size'] / 1e6:.0f} MB")
    print(f"{'stage':>10} " + " ".join(f"{name + ' median s':>18}   {'runs':<17}" for name in columns))
    for stage in (*STAGES, "total"):
        cells = []
        for name in columns:
            values = [r.get(stage, 0.0) for r in runs[name]]
            cells.append(f"{statistics.median(values):>18.2f}   {' '.join(f'{v:.1f}' for v in values):<17}")
        print(f"{stage:>10} " + " ".join(cells))
    for name in columns:
        print(f"{name}: total / disk read {statistics.median(r['total'] for r in runs[name]) / read_s:.1f}x")


if __name__ == "__main__":
    main()
