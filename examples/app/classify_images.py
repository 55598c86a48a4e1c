"""Classify every image in a folder with an edgekit model or bundle — the device side of the example app.

    python examples/app/classify_images.py digits.ekb app-build/digits
    python examples/app/classify_images.py digits.ekb photos/ --public-key release.pub --top-k 3 --json

Needs numpy, edgekit and one runtime (ai-edge-litert for .tflite, onnxruntime for .onnx); PNG and PGM/PPM
are decoded without Pillow. The bundle's manifest supplies resizing, normalization, layout and labels.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pixels  # noqa: E402

import edgekit  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402


def image_files(folder: Path) -> list[Path]:
    suffixes = pixels.NATIVE_SUFFIXES + (".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def classify_folder(model, folder: Path, top_k: int) -> list[dict]:
    results = []
    for path in image_files(folder):
        try:
            image = pixels.read_image(path)
        except (pixels.ImageError, OSError, ValueError) as exc:
            results.append({"file": path.name, "error": str(exc)})
            continue
        best = model.classify(image, top_k=top_k)[0]
        results.append({"file": path.name, "label": best[0].label, "score": round(best[0].score, 4),
                        "top_k": [{"label": p.label, "score": round(p.score, 4)} for p in best]})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .ekb bundle (or .tflite/.onnx with --preprocess-file)")
    parser.add_argument("folder", type=Path, help="folder of images (PNG, PGM/PPM, .npy; others need Pillow)")
    parser.add_argument("--top-k", type=int, default=1, help="how many labels per image (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument("--runtime", default="auto", choices=["auto", "litert", "onnxruntime"])
    parser.add_argument("--provider", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--public-key", help="accept the bundle only if signed by this NAME.pub")
    parser.add_argument("--key-file", help="AES key of an encrypted bundle (or set EDGEKIT_BUNDLE_KEY)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: '{args.folder}' is not a folder", file=sys.stderr)
        return 2
    try:
        model = edgekit.load(args.model, runtime=args.runtime, provider=args.provider, threads=args.threads,
                             public_key=args.public_key, require_signature=bool(args.public_key),
                             key_file=args.key_file)
        with model:
            start = time.perf_counter()
            results = classify_folder(model, args.folder, args.top_k)
            seconds = time.perf_counter() - start
            runtime = model.runtime
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps({"model": args.model, "runtime": runtime, "results": results}, indent=1))
    else:
        for r in results:
            print(f"{r['file']:<28} {r['error']}" if "error" in r else
                  f"{r['file']:<28} {r['label']:<12} {r['score']:.3f}")
        print(f"{len(results)} images in {seconds:.3f} s on {runtime}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
