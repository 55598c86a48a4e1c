"""What opening a bundle costs: load time of a bare model vs a plain, a signed, and a signed+encrypted .ekb.

    python benchmarks/bundle_load.py            # ResNet-18 (about 45 MB of weights) on ONNX Runtime and LiteRT
    python benchmarks/bundle_load.py --quick    # LeNet, fewer repeats

Prints a markdown table: median seconds over the repeats for `edgekit.runtimes.load` of the bare file,
for the bundle checks alone (`open_bundle`: zip entries, SHA-256, signature, decryption), and for
`edgekit.load` of each bundle; and the bundle overhead relative to the bare load. Timings only, no pass/fail.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm the page cache and lazy imports
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="LeNet and 3 repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    zoo, shape = ("lenet", "1x1x28x28") if args.quick else ("resnet", "1x3x224x224")

    import edgekit
    from edgekit import runtimes
    from edgekit.bundle import bundle, keygen, open_bundle
    from edgekit.convert import convert
    from edgekit.converters.torch_export import export
    from edgekit.envinfo import fingerprint, summary

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_path = tmp / f"{zoo}.onnx"
        print(f"exporting zoo:{zoo} and compiling it to TFLite …", file=sys.stderr)
        export(f"zoo:{zoo}", onnx_path, input_shapes=[shape])
        tflite_path = tmp / f"{zoo}.tflite"
        convert(onnx_path, tflite_path)
        keys = keygen(tmp / "k", aes=True)
        rows = []
        for model in (onnx_path, tflite_path):
            fmt = model.suffix[1:]
            plain = bundle(model, tmp / f"{fmt}-plain.ekb").path
            signed = bundle(model, tmp / f"{fmt}-signed.ekb", sign=keys["private_key"]).path
            secure = bundle(model, tmp / f"{fmt}-secure.ekb", sign=keys["private_key"], encrypt=True,
                            key_file=keys["aes_key"]).path
            secure_opts = {"public_key": keys["public_key"], "key_file": keys["aes_key"]}
            bare = median_seconds(lambda: runtimes.load(model, threads=1).close(), repeats)
            cases = [
                ("bare file (runtimes.load)", None, bare),
                ("plain .ekb: checks only", plain, median_seconds(lambda: open_bundle(plain), repeats)),
                ("plain .ekb: edgekit.load", plain,
                 median_seconds(lambda: edgekit.load(plain, threads=1).close(), repeats)),
                ("signed .ekb: edgekit.load", signed, median_seconds(
                    lambda: edgekit.load(signed, threads=1, public_key=keys["public_key"]).close(), repeats)),
                ("signed+encrypted: checks only", secure,
                 median_seconds(lambda: open_bundle(secure, **secure_opts), repeats)),
                ("signed+encrypted: edgekit.load", secure, median_seconds(
                    lambda: edgekit.load(secure, threads=1, **secure_opts).close(), repeats)),
            ]
            size_mb = model.stat().st_size / 1e6
            for name, path, seconds in cases:
                rows.append((fmt, f"{size_mb:.1f}", name, seconds * 1000,
                             "—" if path is None else f"{seconds / bare:.2f}×"))
    print(f"Bundle load cost, zoo:{zoo}, median of {repeats} (machine: {summary(fingerprint(1))})\n")
    print("| format | model MB | what | ms | × bare load |")
    print("| --- | ---: | --- | ---: | ---: |")
    for fmt, mb, name, ms, ratio in rows:
        print(f"| {fmt} | {mb} | {name} | {ms:.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
