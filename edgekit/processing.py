"""One preprocessing spec for every place raw data become a model input: calibration, apps, bundles, pipelines, compare.

A spec is a mapping (TOML/JSON table, bundle manifest) or text `KEY=VALUE;KEY=VALUE` (a CLI option, a pipeline
config value). The same spec gives the same tensor wherever it is applied (tests/test_processing.py checks
calibration, the app and a bundle against each other), so a model is calibrated on what it sees when deployed.
Needs numpy only (the device side imports it); decoding image files is the caller's job.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edgekit.errors import UsageError
from edgekit.tensors import dequantize as _dequantize, quantize as _to_dtype  # noqa: F401 (_dequantize: app, text)

__all__ = ["Preprocess", "Postprocess", "parse_spec", "parse_options", "load_processing_file", "resize", "letterbox",
           "center_crop", "softmax", "PROCESSING_KEY", "processing_metadata", "processing_from_metadata"]

IMAGE_LAYOUTS = ("NCHW", "NHWC")
RESIZE_METHODS = ("bilinear", "area", "nearest")
COLORS = ("rgb", "bgr", "gray")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL's "L" mode


# ------------------------------------------------------------------ declared processing

@dataclass(frozen=True)
class Preprocess:
    """How raw app data becomes the model's input.

    Data arrive channel-last without the batch axis (an image HxWxC or HxW, a sequence TxC), or with a
    leading batch axis. Steps: colour conversion, resize and centre crop (images), `x * scale`, `(x - mean) / std`
    per channel, transpose to `layout` (the model's, e.g. NCHW), add the batch axis, cast to the input dtype
    (quantizing with the input's scale/zero-point when the model takes int8/uint8).

    resize=HxW resizes to that size (letterbox=true: keeping the aspect ratio, padded); resize=N resizes the
    shorter side to N keeping the aspect ratio, then centre-crops to `crop` (default: the model's H and W), as
    torchvision's Resize(N) + CenterCrop do. `scale` is always a factor (`scale=1/255` maps 0-255 pixels to 0-1).
    Legacy: calibration's old syntax read `scale=255` as a divisor; for images a scale above 1 (a factor no image
    model takes) is still read that way, as 1/scale, with a FutureWarning; its `order=` key is read as `color=`.
    """

    input: str
    kind: str = "tensor"                 # "image" | "tensor"
    resize: tuple[int, ...] | None = None   # (H, W), or (N,): the shorter side, then a centre crop
    resize_method: str = "bilinear"
    color: str | None = None             # "rgb" | "bgr" | "gray"; data are given RGB (or gray)
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None            # the model input's layout: NCHW, NHWC, NTC, NCT, ...
    dtype: str | None = None             # defaults to the model input's dtype
    letterbox: bool = False              # images: keep the aspect ratio, pad the rest (grey 114, as YOLO models)
    crop: tuple[int, int] | None = None  # images: centre crop (H, W) after the resize

    KEYS = ("input", "kind", "resize", "resize_method", "color", "scale", "mean", "std", "layout", "dtype", "letterbox",
            "crop")
    LEGACY_KEYS = {"order": "color"}  # calibration's old --preprocess syntax

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], inputs: Sequence) -> "Preprocess":
        """Build from a manifest/TOML/JSON mapping (or CLI strings) and check it against the model's inputs."""
        spec = {cls.LEGACY_KEYS.get(k, k): v for k, v in parse_spec(spec).items()}
        unknown = sorted(set(spec) - set(cls.KEYS))
        if unknown:
            raise UsageError(f"Unknown preprocessing option(s) {unknown}.", hint=f"Known options: {', '.join(cls.KEYS)}.")
        info = _pick(inputs, spec.get("input"), "input")
        layout = _text(spec.get("layout"), "layout")
        layout = layout.upper() if layout else (info.layout.upper() if info.layout else None)
        resize = _ints(spec.get("resize"), "resize")
        crop = _ints(spec.get("crop"), "crop")
        kind = _text(spec.get("kind"), "kind") or (
            "image" if resize or crop or layout in IMAGE_LAYOUTS or spec.get("color") else "tensor")
        if kind not in ("image", "tensor"):
            raise UsageError(f"Unknown preprocessing kind '{kind}'.", hint="Choose image or tensor.")
        scale = _number(spec.get("scale"), "scale")
        if kind == "image" and scale is not None and scale > 1:
            warnings.warn(f"Preprocessing scale={scale:g} is read as the old calibration divisor, i.e. scale=1/{scale:g}; "
                          f"scale is a factor now: write scale=1/{scale:g}.", FutureWarning, stacklevel=2)
            scale = 1.0 / scale
        pre = cls(input=info.name, kind=kind, resize=resize, crop=crop,
                  resize_method=_choice(spec.get("resize_method", "bilinear"), RESIZE_METHODS, "resize_method"),
                  color=_choice(spec["color"], COLORS, "color") if spec.get("color") else None,
                  scale=scale, mean=_floats(spec.get("mean"), "mean"),
                  std=_floats(spec.get("std"), "std"), layout=layout,
                  dtype=_dtype_name(spec.get("dtype") or np.dtype(info.dtype).name),
                  letterbox=_bool(spec.get("letterbox", False), "letterbox"))
        pre._check(info)
        return pre

    def _check(self, info) -> None:
        rank = len(info.shape)
        if self.layout is not None:
            if len(set(self.layout)) != len(self.layout) or not self.layout.isalpha():
                raise UsageError(f"The layout '{self.layout}' must name each axis once, e.g. NCHW, NHWC, NTC.")
            if len(self.layout) != rank:
                raise UsageError(f"The layout '{self.layout}' has {len(self.layout)} axes but input '{info.name}' "
                                 f"has rank {rank} (shape {info.describe()['shape']}).",
                                 hint="Give the model input's own layout, e.g. NCHW for a 4-D image input.")
        if self.kind == "image":
            if self.layout not in IMAGE_LAYOUTS:
                raise UsageError(f"Image preprocessing needs layout NCHW or NHWC for input '{info.name}', got {self.layout}.",
                                 hint="Add layout=NCHW (PyTorch models) or layout=NHWC (TFLite-style models).")
            if self.resize is not None and (len(self.resize) not in (1, 2) or min(self.resize) < 1):
                raise UsageError(f"resize must be HEIGHTxWIDTH (or N: the shorter side) with positive sizes, "
                                 f"got {self.resize}.")
            if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 1):
                raise UsageError(f"crop must be HEIGHTxWIDTH with positive sizes, got {self.crop}.")
            if self.letterbox and (self.crop or (self.resize and len(self.resize) == 1)):
                raise UsageError("letterbox keeps the whole image; it does not combine with crop or resize=N.",
                                 hint="Use resize=HxW with letterbox=true, or resize=N (and crop=HxW) without it.")
            if self.resize and len(self.resize) == 1 and not (self.crop or self._model_hw(info)):
                raise UsageError(f"resize={self.resize[0]} (the shorter side) needs a crop size: input '{info.name}' "
                                 "has no static height and width.", hint="Add crop=HxW.")
        elif self.resize or self.color or self.crop:
            raise UsageError("resize, crop and color apply to images only.", hint="Add kind=image and an image layout.")
        if self.std is not None and any(s == 0 for s in self.std):
            raise UsageError(f"std must not contain zeros, got {list(self.std)}.")
        channels = self._channels(info)
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) not in (1, channels or len(values)):
                raise UsageError(f"{name} has {len(values)} values but input '{info.name}' has {channels} channels.",
                                 hint=f"Give 1 or {channels} values.")

    def _channels(self, info) -> int | None:
        if self.layout and "C" in self.layout:
            c = info.shape[self.layout.index("C")]
            return c if isinstance(c, int) and c > 0 else None
        return None

    def _data_axes(self) -> str | None:
        """The layout app data arrive in: the model layout without N, with C moved last."""
        if not self.layout:
            return None
        rest = "".join(a for a in self.layout if a not in "NC")
        return rest + ("C" if "C" in self.layout else "")

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k in self.KEYS
                if (v := getattr(self, k)) is not None and (k != "letterbox" or v)}

    def apply(self, data, info) -> np.ndarray:
        """Raw data (an array, or a list of images of any sizes) → the model's input array."""
        if self.kind == "image":
            x = self._image_batch(data, info)
        else:
            x = np.asarray(data, dtype=np.float32)
            axes = self._data_axes()
            if axes is None and x.ndim == len(info.shape) - 1 or axes is not None and x.ndim == len(axes):
                x = x[None]
            elif axes is not None and x.ndim != len(axes) + ("N" in self.layout):
                raise UsageError(f"Data for input '{info.name}' have shape {list(x.shape)}; expected "
                                 f"{len(axes)} axes ({axes}) or a batch of them.")
            x = self._normalize(x)
            if axes is not None and "N" in self.layout:
                x = np.transpose(x, [("N" + axes).index(a) for a in self.layout])
        return _to_dtype(x, np.dtype(self.dtype), info)

    def _image_batch(self, data, info) -> np.ndarray:
        if isinstance(data, np.ndarray) and data.ndim == 4:
            images = list(data)
        elif isinstance(data, (list, tuple)) and data and not np.isscalar(data[0]):
            images = [np.asarray(d) for d in data]
        else:
            images = [np.asarray(data)]
        channels = self._channels(info) or 3
        prepared = [self._image(img, channels, self._model_hw(info)) for img in images]
        shapes = {p.shape for p in prepared}
        if len(shapes) > 1:
            raise UsageError(f"The images have different sizes {sorted(shapes)} and no resize is declared.",
                             hint="Declare resize=HxW in the preprocessing, or pass images of one size.")
        x = self._normalize(np.stack(prepared))
        return np.transpose(x, (0, 3, 1, 2)) if self.layout == "NCHW" else x

    def _model_hw(self, info) -> tuple[int, int] | None:
        h, w = info.shape[self.layout.index("H")], info.shape[self.layout.index("W")]
        return (h, w) if all(isinstance(d, int) and d > 0 for d in (h, w)) else None

    def _image(self, img: np.ndarray, channels: int, model_hw) -> np.ndarray:
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
            raise UsageError(f"An image must be HxW or HxWxC with 1-4 channels, got shape {list(img.shape)}.")
        img = img.astype(np.float32)
        if img.shape[2] in (2, 4):  # drop alpha
            img = img[:, :, :-1]
        if channels == 1 and img.shape[2] == 3:
            img = (img @ _LUMA)[:, :, None]
        elif channels == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if self.color == "bgr" and img.shape[2] == 3:
            img = img[:, :, ::-1]
        if self.resize is not None and len(self.resize) == 1:
            crop = self.crop or model_hw
            gain = self.resize[0] / min(img.shape[:2])
            size = (max(crop[0], round(img.shape[0] * gain)), max(crop[1], round(img.shape[1] * gain)))
        else:
            size, crop = self.resize or model_hw, self.crop
        if size is not None and tuple(img.shape[:2]) != tuple(size):
            img = letterbox(img, size, self.resize_method)[0] if self.letterbox else resize(img, size, self.resize_method)
        return center_crop(img, crop) if crop is not None else img

    def _normalize(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32, copy=False)
        if self.scale is not None:
            x = x * np.float32(self.scale)
        if self.mean is not None:
            x = x - np.asarray(self.mean, dtype=np.float32)
        if self.std is not None:
            x = x / np.asarray(self.std, dtype=np.float32)
        return x


@dataclass(frozen=True)
class Postprocess:
    """What to do with an output: dequantize (int outputs), softmax, and the top-k labels."""

    output: str
    softmax: bool = False
    top_k: int | None = None

    KEYS = ("output", "softmax", "top_k")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], outputs: Sequence, labels: Sequence[str] | None = None) -> "Postprocess":
        spec = dict(spec)
        unknown = sorted(set(spec) - set(cls.KEYS))
        if unknown:
            raise UsageError(f"Unknown postprocessing option(s) {unknown}.", hint=f"Known options: {', '.join(cls.KEYS)}.")
        info = _pick(outputs, spec.get("output"), "output")
        top_k = spec.get("top_k")
        if top_k is not None:
            top_k = int(_number(top_k, "top_k"))
            if top_k < 1:
                raise UsageError(f"top_k must be at least 1, got {top_k}.")
        # labels count a classifier's last axis ([N, C] or [C]); a detector's labels index its `classes` values and a
        # segmenter's its class axis, which a rank > 2 output does not say here (its boxes [1, n, 4], logits [1, C, h, w])
        classes = info.shape[-1] if 0 < len(info.shape) <= 2 and isinstance(info.shape[-1], int) and \
            info.shape[-1] > 0 else None
        if labels is not None and classes is not None and len(labels) != classes:
            raise UsageError(f"There are {len(labels)} labels but output '{info.name}' has {classes} classes.",
                             hint="Give one label per class, in class-index order.")
        return cls(output=info.name, softmax=_bool(spec.get("softmax", False), "softmax"), top_k=top_k)

    def as_dict(self) -> dict:
        return {"output": self.output, "softmax": self.softmax, **({"top_k": self.top_k} if self.top_k else {})}



# ------------------------------------------------------------------ the one syntax

def parse_options(items: Sequence[str]) -> dict:
    """`KEY=VALUE` items (a bare KEY means true; each item may hold several, separated by ';') → dict of strings."""
    out: dict[str, Any] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in str(item).split(";"))):
            key, sep, value = part.partition("=")
            key = key.strip().lower().replace("-", "_")
            if not key:
                raise UsageError(f"Cannot read the option '{part}'.", hint="Write KEY=VALUE, e.g. resize=224x224.")
            out[key] = value.strip() if sep else True
    return out


def parse_spec(spec: Mapping | str | os.PathLike | Sequence[str] | None) -> dict:
    """A preprocessing spec in any of its forms → the mapping `Preprocess.from_spec` reads.

    A mapping (TOML/JSON table, bundle manifest) as is; text `KEY=VALUE;KEY=VALUE` (or a list of KEY=VALUE
    items); a .toml/.json file path (its [preprocess] table, or the whole file when it is just the options).
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, os.PathLike) or isinstance(spec, str) and "=" not in spec and spec.strip():
        return dict(load_processing_file(spec).get("preprocess") or {})
    return parse_options([spec] if isinstance(spec, str) else list(spec))


def load_processing_file(path: str | os.PathLike) -> dict:
    """A .toml or .json file: [preprocess], [postprocess] and `labels`, or the preprocessing options alone."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"The preprocessing file '{path}' does not exist.",
                         hint="Give a .toml/.json file, or the options as KEY=VALUE;KEY=VALUE.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib
            doc = tomllib.loads(text)
        else:
            doc = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"Cannot read '{path}': {exc}.", hint="Use TOML (.toml) or JSON (.json).") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"'{path}' must hold a table/object of options.")
    if {"preprocess", "postprocess", "labels"} & set(doc):
        return _processing_tables(doc, f"'{path}'")
    return {"preprocess": doc}


def _processing_tables(doc: Mapping, where: str) -> dict:
    extra = sorted(set(doc) - {"preprocess", "postprocess", "labels"})
    if extra:
        raise UsageError(f"{where} has unknown top-level keys {extra}.",
                         hint="Use the tables [preprocess] and [postprocess] and a `labels` list.")
    return {k: doc[k] for k in ("preprocess", "postprocess", "labels") if k in doc}


#: model metadata key (ONNX metadata_props; convert carries it into the .tflite) holding the model's own processing in
#: the processing file's form {"preprocess": {...}, "postprocess": {...}, "labels": [...]}: edgekit.load reads it for a
#: plain .onnx/.tflite (a bundle's manifest and load()'s arguments come first), so the file alone detects or classifies
PROCESSING_KEY = "edgekit.processing"


def processing_metadata(processing: Mapping) -> dict[str, str]:
    """{PROCESSING_KEY: JSON} for a model's metadata, from a processing file's tables (checked: known keys only)."""
    tables = _processing_tables(processing, "The model's processing")
    if "preprocess" in tables:
        tables["preprocess"] = parse_spec(tables["preprocess"])
    return {PROCESSING_KEY: json.dumps(tables, sort_keys=True)}


def processing_from_metadata(metadata: Mapping | None, source: str = "the model") -> dict:
    """The processing a model declares in its metadata (PROCESSING_KEY), {} when none; unreadable → UsageError."""
    raw = (metadata or {}).get(PROCESSING_KEY)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        doc = exc
    if not isinstance(doc, Mapping):
        raise UsageError(f"The '{PROCESSING_KEY}' metadata of {source} is not a JSON object ({str(doc)[:80]}).",
                         hint="Pass preprocess=/postprocess=/labels= to edgekit.load, or re-export the model.")
    return _processing_tables(doc, f"The '{PROCESSING_KEY}' metadata of {source}")


# ------------------------------------------------------------------ numeric helpers

def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def center_crop(img: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The centre (h, w) of an HxWxC image (the extra pixel of an odd margin goes to the bottom/right, as PIL's crop)."""
    h, w = int(size[0]), int(size[1])
    if img.shape[0] < h or img.shape[1] < w:
        raise UsageError(f"Cannot crop {h}x{w} from an image of {img.shape[0]}x{img.shape[1]}.",
                         hint="Resize to at least the crop size first (resize=N or resize=HxW).")
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[top:top + h, left:left + w]


def letterbox(img: np.ndarray, size: Sequence[int], method: str = "bilinear", fill: float = 114.0):
    """Resize keeping the aspect ratio and pad to size=(h, w) centred: (image, (gain_y, gain_x), (pad_y, pad_x))."""
    h, w = int(size[0]), int(size[1])
    gain = min(h / img.shape[0], w / img.shape[1])
    nh, nw = max(1, round(img.shape[0] * gain)), max(1, round(img.shape[1] * gain))
    top, left = (h - nh) // 2, (w - nw) // 2
    out = np.full((h, w, img.shape[2]), fill, np.float32)
    out[top:top + nh, left:left + nw] = resize(img, (nh, nw), method) if (nh, nw) != img.shape[:2] else img
    return out, (nh / img.shape[0], nw / img.shape[1]), (float(top), float(left))


def resize(img: np.ndarray, size: Sequence[int], method: str = "bilinear") -> np.ndarray:
    """Resize an HxWxC float image to size=(h, w) with numpy only.

    bilinear: a triangle filter widened when shrinking (antialiased, like PIL's BILINEAR); area: the mean
    of the covered pixels (exact for integer factors); nearest: the pixel under each output centre.
    """
    h, w = int(size[0]), int(size[1])
    rows = _resize_weights(img.shape[0], h, method)
    cols = _resize_weights(img.shape[1], w, method)
    out = np.einsum("oh,hwc->owc", rows, img.astype(np.float32), optimize=True)
    return np.einsum("pw,owc->opc", cols, out, optimize=True)


def _resize_weights(n_in: int, n_out: int, method: str) -> np.ndarray:
    """(n_out, n_in) matrix of resampling weights along one axis; pixel i covers [i, i+1)."""
    if method not in RESIZE_METHODS:
        raise UsageError(f"Unknown resize method '{method}'.", hint=f"Choose one of {', '.join(RESIZE_METHODS)}.")
    scale = n_in / n_out
    centers = (np.arange(n_out) + 0.5) * scale
    src = np.arange(n_in)
    if method == "nearest":
        weights = np.zeros((n_out, n_in), dtype=np.float32)
        weights[np.arange(n_out), np.minimum(np.floor(centers).astype(int), n_in - 1)] = 1.0
        return weights
    if method == "area":
        lo = (np.arange(n_out) * scale)[:, None]
        weights = np.clip(np.minimum(lo + scale, src[None] + 1) - np.maximum(lo, src[None]), 0, None)
    else:
        support = max(scale, 1.0)
        weights = np.clip(1.0 - np.abs((src[None] + 0.5 - centers[:, None]) / support), 0, None)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------------ spec value parsing (TOML/JSON values or CLI strings)

def _pick(infos: Sequence, name: str | None, what: str):
    names = [i.name for i in infos]
    if name is None:
        if not infos:
            raise UsageError(f"The model has no {what}s.")
        return infos[0]
    for info in infos:
        if info.name == name:
            return info
    raise UsageError(f"The model has no {what} named '{name}'.", hint=f"Its {what}s are {names}.")


def _text(value, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{name} must be text, got {value!r}.")
    return value.strip()


def _choice(value, choices, name: str) -> str:
    text = (_text(value, name) or "").lower()
    if text not in choices:
        raise UsageError(f"Unknown {name} '{value}'.", hint=f"Choose one of {', '.join(choices)}.")
    return text


def _number(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"{name} must be a number, got {value!r}.")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"{name} must be a number (or a fraction like 1/255), got '{value}'.") from None


def _floats(value, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, str):
        items = [v for v in value.split(",") if v.strip()]
    else:
        items = [value]
    values = tuple(_number(v, name) for v in items)
    if not values:
        raise UsageError(f"{name} needs at least one value.")
    return values


def _ints(value, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else str(value).lower().replace(",", "x").split("x")
    try:
        return tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be sizes like 224x224, got '{value}'.") from None


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{name} must be true or false, got '{value}'.")


def _dtype_name(value) -> str:
    try:
        return np.dtype(value).name
    except TypeError:
        raise UsageError(f"Unknown dtype '{value}'.", hint="Use float32, float16, int8, uint8, int64, ...") from None
