"""Detect shapes in every image of a folder and write each image with its boxes and labels drawn — the device side
of the detection example app.

    python examples/detect_app/draw.py detect-build/detector-tflite.ekb detect-build/samples drawn/
    python examples/detect_app/draw.py detect-build/detector.onnx photos/ drawn/ --conf 0.5 --json
    python examples/detect_app/draw.py detect-build/detector-tflite.ekb detect-build/samples drawn/ \
        --segmenter detect-build/segmenter.tflite      # also tint each pixel by its class

Needs numpy, Pillow, edgekit and one runtime (ai-edge-litert for .tflite, onnxruntime for .onnx); no torch, no onnx.
A plain .onnx/.tflite model runs with the default processing (plain resize, scale 1/255); a bundle brings its own
preprocessing and labels.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import edgekit
from edgekit.errors import EdgekitError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: one outline colour per class index (cycled), chosen to stand out on photos and on the synthetic scenes
PALETTE = [(255, 64, 64), (64, 220, 64), (64, 128, 255), (255, 200, 0), (255, 0, 255), (0, 230, 230)]
LINE = 2


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[int(index) % len(PALETTE)]


def draw(image: Image.Image, found, mask: np.ndarray | None = None) -> Image.Image:
    """A copy of `image` (RGB) with each box outlined in its class colour and 'label score' above it; with a class
    mask, non-background pixels are first tinted by the mask's class (class k + 1 in the box palette's colour k)."""
    canvas = image.convert("RGB")
    if mask is not None:
        pixels = np.asarray(canvas, np.float32)
        tint = np.asarray([(0, 0, 0)] + [colour(k) for k in range(int(mask.max()))], np.float32)[mask]
        shaded = np.where(mask[..., None] > 0, 0.55 * pixels + 0.45 * tint, pixels)
        canvas = Image.fromarray(shaded.round().astype(np.uint8))
    pen = ImageDraw.Draw(canvas)
    for box, label, cls, score in zip(found.boxes, found.labels, found.classes, found.scores):
        x1, y1, x2, y2 = (float(v) for v in box)
        pen.rectangle((x1, y1, x2, y2), outline=colour(cls), width=LINE)
        text = f"{label} {score:.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text)
        lift = bottom - top + 2
        y = y1 - lift if y1 >= lift else y1 + LINE
        pen.rectangle((x1, y, x1 + right - left + 2, y + lift), fill=colour(cls))
        pen.text((x1 + 1, y), text, fill=(0, 0, 0))
    return canvas


def run(model, folder: Path, out: Path, conf: float, segmenter=None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES):
        try:
            found = model.detect(path, conf=conf)
            mask = segmenter.segment(path) if segmenter is not None else None
        except EdgekitError as exc:  # one bad file does not stop the folder
            results.append({"file": path.name, "error": str(exc)})
            continue
        with Image.open(path) as image:
            drawn = draw(image, found, mask)
        target = out / (path.stem + ".png")
        drawn.save(target)
        results.append({"file": path.name, "written": str(target),
                        "boxes": [[round(float(v), 2) for v in box] for box in found.boxes],
                        "labels": list(found.labels), "scores": [round(float(s), 4) for s in found.scores]})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a detector: .ekb bundle, or .tflite/.onnx")
    parser.add_argument("folder", type=Path, help="folder of images")
    parser.add_argument("out", type=Path, help="folder for the drawn PNGs (created)")
    parser.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    parser.add_argument("--segmenter", help="a segmentation model; its class mask tints the drawn images")
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument("--json", action="store_true", help="print JSON instead of one line per image")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: '{args.folder}' is not a folder", file=sys.stderr)
        return 2
    try:
        model = edgekit.load(args.model, threads=args.threads)
        segmenter = edgekit.load(args.segmenter, threads=args.threads) if args.segmenter else None
        results = run(model, args.folder, args.out, args.conf, segmenter)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for r in results:
            print(f"{r['file']}: {r['error']}" if "error" in r else
                  f"{r['file']}: {len(r['boxes'])} boxes ({', '.join(r['labels']) or 'none'}) -> {r['written']}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
