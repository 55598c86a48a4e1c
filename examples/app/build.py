"""Workstation side of the example app: train the two models, export them, bundle them, write sample inputs.

    python examples/app/build.py --out app-build            # .onnx models and bundles
    python examples/app/build.py --out app-build --tflite   # also .tflite (edgekit's compiler)

Needs the workstation install (torch, scikit-learn for the digits data); the device needs none of it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pixels   # noqa: E402
import sensors  # noqa: E402

DIGITS_SPEC = f"{HERE / 'models.py'}:digits_cnn"
ACTIVITY_SPEC = f"{HERE / 'models.py'}:activity_mlp"
SAMPLE_SCALE = 4          # sample digit images are 32x32: each 8x8 pixel becomes a 4x4 block
STREAM_SEGMENTS = (("still", 6), ("walking", 8), ("running", 8), ("shaking", 6), ("walking", 6), ("still", 6))


class TfliteUnavailable(RuntimeError):
    """edgekit's ONNX → TFLite compiler cannot convert this model (yet); the message says why."""


def _torch():
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return torch


def _fit(module, x, y, *, epochs: int, seed: int, lr: float = 1e-2, batch: int = 64):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    module.eval()
    return module


def _accuracy(module, x, y) -> float:
    torch = _torch()
    with torch.no_grad():
        return float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def digits_pixels(values: np.ndarray) -> np.ndarray:
    """scikit-learn digits (0..16) → 8-bit gray pixels (0..255), as the sample images store them."""
    return np.round(values * (255 / 16)).astype(np.uint8)


def train_digits(seed: int = 0, epochs: int = 15) -> dict:
    """A tiny CNN on scikit-learn's digits; inputs preprocessed exactly as the bundle declares."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from models import digits_cnn
    _torch().manual_seed(seed)
    digits = load_digits()
    images = digits_pixels(digits.images)
    train_img, test_img, train_y, test_y = train_test_split(images, digits.target, test_size=0.25,
                                                            random_state=seed, stratify=digits.target)
    scaled = train_img.astype(np.float32) / 255
    mean, std = round(float(scaled.mean()), 4), round(float(scaled.std()), 4)
    prep = lambda img: ((img.astype(np.float32) / 255 - mean) / std)[:, None]  # noqa: E731  (N,1,8,8)
    module = _fit(digits_cnn(), prep(train_img), train_y.astype(np.int64), epochs=epochs, seed=seed)
    return {"module": module, "mean": mean, "std": std, "test_images": test_img, "test_labels": test_y,
            "accuracy": _accuracy(module, prep(test_img), test_y)}


def train_activity(seed: int = 0, epochs: int = 25) -> dict:
    from models import WINDOW, activity_mlp
    _torch().manual_seed(seed)
    x, y = sensors.training_windows(seed, per_class=300, window=WINDOW)
    mean = [round(float(v), 4) for v in x.reshape(-1, 3).mean(0)]
    std = [round(float(v), 4) for v in x.reshape(-1, 3).std(0)]
    norm = lambda w: ((w - np.float32(mean)) / np.float32(std)).astype(np.float32)  # noqa: E731
    module = _fit(activity_mlp(), norm(x), y, epochs=epochs, seed=seed, lr=3e-3)
    xv, yv = sensors.training_windows(seed + 1000, per_class=50, window=WINDOW)
    return {"module": module, "mean": mean, "std": std, "accuracy": _accuracy(module, norm(xv), yv)}


def export_onnx(module, spec: str, input_shape: str, out: Path) -> Path:
    """Save the trained weights and export through edgekit (validated against PyTorch)."""
    from safetensors.torch import save_file

    from edgekit.converters.torch_export import export
    weights = out.with_suffix(".safetensors")
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(weights))
    export(spec, out, weights=str(weights), input_shapes=[input_shape], force=True)
    return out


def convert_tflite(onnx_path: Path, out: Path) -> Path:
    """ONNX → TFLite with edgekit's own compiler (validated against ONNX Runtime), or TfliteUnavailable."""
    try:
        from edgekit.convert import convert
    except ImportError as exc:
        raise TfliteUnavailable(f"edgekit's TFLite compiler is not available yet ({exc})") from exc
    from edgekit.errors import EdgekitError
    try:
        convert(onnx_path, out, force=True)
    except EdgekitError as exc:
        raise TfliteUnavailable(f"edgekit.converters.tflite cannot convert {onnx_path.name} yet: {exc}") from exc
    return out


def image_layout(model_path: Path) -> str:
    """NCHW or NHWC, from the model's own metadata when it has it, else from its input shape."""
    from edgekit import runtimes
    with runtimes.load(model_path) as session:
        info = session.inputs[0]
    if info.layout in ("NCHW", "NHWC"):
        return info.layout
    return "NCHW" if info.shape[1] in (1, 3) else "NHWC"


def write_digit_samples(folder: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """PNG files (32x32 gray) of held-out digits, and the truth {file: label}."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, (img, label) in enumerate(zip(images, labels)):
        name = f"digit_{i:03d}.png"
        big = np.kron(img, np.ones((SAMPLE_SCALE, SAMPLE_SCALE), np.uint8))
        (folder / name).write_bytes(pixels.encode_png(big))
        truth[name] = str(int(label))
    (folder.parent / f"{folder.name}_truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def to_toml(spec: dict) -> str:
    """{labels, preprocess, postprocess} → TOML text (the few value types these settings use)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)
    lines = [f"labels = {value(spec['labels'])}"]
    for table in ("preprocess", "postprocess"):
        lines += ["", f"[{table}]"] + [f"{k} = {value(v)}" for k, v in spec[table].items()]
    return "\n".join(lines) + "\n"


def build(out: str | Path, *, seed: int = 0, tflite: bool = False, samples: int = 60, sign: str | None = None,
          encrypt: bool = False, key_file: str | None = None) -> dict:
    """Everything the device needs, in `out`: models, bundles, sample images and a sensor recording."""
    from edgekit.bundle import bundle
    from models import ACTIVITIES

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"tflite": None}
    digits = train_digits(seed)
    activity = train_activity(seed)
    report["trained_accuracy"] = {"digits": digits["accuracy"], "activity": activity["accuracy"]}
    models = {"digits": export_onnx(digits["module"], DIGITS_SPEC, "image=1x1x8x8", out / "digits.onnx"),
              "activity": export_onnx(activity["module"], ACTIVITY_SPEC, "window=1x64x3", out / "activity.onnx")}
    formats = {"onnx": models}
    if tflite:
        try:
            formats["tflite"] = {k: convert_tflite(p, p.with_suffix(".tflite")) for k, p in models.items()}
            report["tflite"] = "converted"
        except TfliteUnavailable as exc:
            report["tflite"] = f"unavailable: {exc}"
    processing = {
        "digits": {"labels": [str(d) for d in range(10)],
                   "preprocess": {"kind": "image", "layout": "NCHW", "resize": [8, 8], "resize_method": "area",
                                  "color": "gray", "scale": 1 / 255, "mean": [digits["mean"]], "std": [digits["std"]]},
                   "postprocess": {"softmax": True, "top_k": 3}},
        "activity": {"labels": list(ACTIVITIES),
                     "preprocess": {"kind": "tensor", "layout": "NTC", "mean": activity["mean"], "std": activity["std"]},
                     "postprocess": {"softmax": True, "top_k": 2}}}
    for name, spec in processing.items():  # the same settings as files, for `edgekit bundle --preprocess FILE`
        (out / f"{name}.toml").write_text(to_toml(spec))
    extra = {"sign": sign, "encrypt": encrypt, "key_file": key_file}
    report["bundles"] = {}
    for fmt, paths in formats.items():
        suffix = "" if fmt == "onnx" else f"-{fmt}"
        for name, spec in processing.items():
            pre = dict(spec["preprocess"])
            if pre["kind"] == "image":
                pre["layout"] = image_layout(paths[name])  # a compiled model may take NHWC
            report["bundles"][f"{name}{suffix}"] = str(bundle(
                paths[name], out / f"{name}{suffix}.ekb", name=name, force=True, labels=spec["labels"],
                preprocess=pre, postprocess=spec["postprocess"], **extra).path)
    report["samples"] = len(write_digit_samples(out / "digits", digits["test_images"][:samples],
                                                digits["test_labels"][:samples]))
    readings, truth = sensors.make_stream(seed + 7, STREAM_SEGMENTS)
    sensors.write_csv(out / "activity_stream.csv", readings)
    (out / "activity_stream_truth.json").write_text(json.dumps(truth, indent=1))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="app-build", help="output folder (default: app-build)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tflite", action="store_true", help="also compile .tflite models and bundles")
    parser.add_argument("--samples", type=int, default=60, help="how many sample digit images to write")
    parser.add_argument("--sign", metavar="KEY", help="sign the bundles with this Ed25519 NAME.key")
    parser.add_argument("--encrypt", action="store_true", help="encrypt the bundled models (AES-GCM)")
    parser.add_argument("--key-file", help="AES key for --encrypt (or set EDGEKIT_BUNDLE_KEY)")
    args = parser.parse_args(argv)
    from edgekit.errors import EdgekitError
    try:
        report = build(args.out, seed=args.seed, tflite=args.tflite, samples=args.samples, sign=args.sign,
                       encrypt=args.encrypt, key_file=args.key_file)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
