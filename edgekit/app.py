"""Models inside apps: `edgekit.load(.tflite | .onnx | .ekb | bytes)` → a callable `Model`.

A Model runs numpy arrays on LiteRT or ONNX Runtime (via edgekit.runtimes) and, when asked, applies the
preprocessing and postprocessing a bundle declares. Needs numpy and one runtime; never imports torch or onnx.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from edgekit.errors import UsageError

__all__ = ["load", "Model", "Outputs", "Prediction", "Detections", "Preprocess", "Postprocess", "resize"]

IMAGE_LAYOUTS = ("NCHW", "NHWC")
RESIZE_METHODS = ("bilinear", "area", "nearest")
COLORS = ("rgb", "bgr", "gray")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL's "L" mode


# ------------------------------------------------------------------ declared processing

@dataclass(frozen=True)
class Preprocess:
    """How raw app data becomes the model's input.

    Data arrive channel-last without the batch axis (an image HxWxC or HxW, a sequence TxC), or with a
    leading batch axis. Steps: colour conversion and resize (images), `x * scale`, `(x - mean) / std` per
    channel, transpose to `layout` (the model's, e.g. NCHW), add the batch axis, cast to the input dtype
    (quantizing with the input's scale/zero-point when the model takes int8/uint8).
    """

    input: str
    kind: str = "tensor"                 # "image" | "tensor"
    resize: tuple[int, int] | None = None
    resize_method: str = "bilinear"
    color: str | None = None             # "rgb" | "bgr" | "gray"; data are given RGB (or gray)
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: str | None = None            # the model input's layout: NCHW, NHWC, NTC, NCT, ...
    dtype: str | None = None             # defaults to the model input's dtype
    letterbox: bool = False              # images: keep the aspect ratio, pad the rest (grey 114, as YOLO models)

    KEYS = ("input", "kind", "resize", "resize_method", "color", "scale", "mean", "std", "layout", "dtype", "letterbox")

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], inputs: Sequence) -> "Preprocess":
        """Build from a manifest/TOML/JSON mapping (or CLI strings) and check it against the model's inputs."""
        spec = dict(spec)
        unknown = sorted(set(spec) - set(cls.KEYS))
        if unknown:
            raise UsageError(f"Unknown preprocessing option(s) {unknown}.", hint=f"Known options: {', '.join(cls.KEYS)}.")
        info = _pick(inputs, spec.get("input"), "input")
        layout = _text(spec.get("layout"), "layout")
        layout = layout.upper() if layout else (info.layout.upper() if info.layout else None)
        resize = _ints(spec.get("resize"), "resize")
        kind = _text(spec.get("kind"), "kind") or ("image" if resize or layout in IMAGE_LAYOUTS or spec.get("color") else "tensor")
        if kind not in ("image", "tensor"):
            raise UsageError(f"Unknown preprocessing kind '{kind}'.", hint="Choose image or tensor.")
        pre = cls(input=info.name, kind=kind, resize=resize,
                  resize_method=_choice(spec.get("resize_method", "bilinear"), RESIZE_METHODS, "resize_method"),
                  color=_choice(spec["color"], COLORS, "color") if spec.get("color") else None,
                  scale=_number(spec.get("scale"), "scale"), mean=_floats(spec.get("mean"), "mean"),
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
            if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1):
                raise UsageError(f"resize must be HEIGHTxWIDTH with positive sizes, got {self.resize}.")
        elif self.resize or self.color:
            raise UsageError("resize and color apply to images only.", hint="Add kind=image and an image layout.")
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
        size = self.resize or self._model_hw(info)
        prepared = [self._image(img, channels, size) for img in images]
        shapes = {p.shape for p in prepared}
        if len(shapes) > 1:
            raise UsageError(f"The images have different sizes {sorted(shapes)} and no resize is declared.",
                             hint="Declare resize=HxW in the preprocessing, or pass images of one size.")
        x = self._normalize(np.stack(prepared))
        return np.transpose(x, (0, 3, 1, 2)) if self.layout == "NCHW" else x

    def _model_hw(self, info) -> tuple[int, int] | None:
        h, w = info.shape[self.layout.index("H")], info.shape[self.layout.index("W")]
        return (h, w) if all(isinstance(d, int) and d > 0 for d in (h, w)) else None

    def _image(self, img: np.ndarray, channels: int, size) -> np.ndarray:
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
        if size is not None and tuple(img.shape[:2]) != tuple(size):
            img = letterbox(img, size, self.resize_method)[0] if self.letterbox else resize(img, size, self.resize_method)
        return img

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
        classes = info.shape[-1] if info.shape and isinstance(info.shape[-1], int) and info.shape[-1] > 0 else None
        if labels is not None and classes is not None and len(labels) != classes:
            raise UsageError(f"There are {len(labels)} labels but output '{info.name}' has {classes} classes.",
                             hint="Give one label per class, in class-index order.")
        return cls(output=info.name, softmax=_bool(spec.get("softmax", False), "softmax"), top_k=top_k)

    def as_dict(self) -> dict:
        return {"output": self.output, "softmax": self.softmax, **({"top_k": self.top_k} if self.top_k else {})}


class Prediction(NamedTuple):
    label: str
    index: int
    score: float


class Detections(NamedTuple):
    """One image's detections, best first: boxes [n, 4] (x1, y1, x2, y2 in the image's pixels), scores [n],
    classes [n] and their labels."""
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    labels: list


class Outputs(dict):
    """The model's outputs by name; after postprocessing also `.top_k`: per batch item, a list of Predictions."""

    top_k: list[list[Prediction]] | None = None


# ------------------------------------------------------------------ the model

@dataclass
class Model:
    """A loaded model: call it with arrays (or a dict by input name); outputs come back by name."""

    session: Any
    manifest: dict | None = None
    preprocessing: Preprocess | None = None
    postprocessing: Postprocess | None = None
    labels: list[str] | None = None
    source: str = ""
    checks: dict = field(default_factory=dict)  # what was verified when a bundle was opened

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.name}:{'x'.join(str(d) for d in i.describe()['shape'])}" for i in self.inputs)
        return f"<edgekit Model {self.source!r} on {self.session.runtime}/{self.session.provider} ({ins})>"

    @property
    def inputs(self):
        return self.session.inputs

    @property
    def outputs(self):
        return self.session.outputs

    @property
    def runtime(self) -> str:
        return self.session.runtime

    def __call__(self, data=None, /, *, preprocess: bool = False, postprocess: bool = False, **named) -> Outputs:
        """Run once. `data`: an array (single-input models), a list (one per input) or a dict by input name;
        inputs may also be given as keywords. preprocess/postprocess apply the declared steps."""
        if data is not None and named:
            raise UsageError("Give the inputs either positionally or by keyword, not both.")
        feeds = named if data is None else data
        if preprocess:
            feeds = self._preprocess(feeds)
        result = Outputs(self._run(feeds))
        if postprocess:
            self._postprocess(result)
        return result

    def _run(self, feeds) -> dict[str, np.ndarray]:
        """Run; a batch of N on a model with a fixed batch of 1 runs item by item and is concatenated."""
        items = self._split_batch(feeds)
        if items is None:
            return self.session.run(feeds)
        parts = [self.session.run(item) for item in items]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _split_batch(self, feeds) -> list[dict] | None:
        infos = self.inputs
        if isinstance(feeds, np.ndarray):
            feeds = [feeds]
        if isinstance(feeds, Mapping):
            if set(feeds) != {i.name for i in infos}:
                return None
            arrays = [np.asarray(feeds[i.name]) for i in infos]
        elif isinstance(feeds, (list, tuple)) and len(feeds) == len(infos):
            arrays = [np.asarray(f) for f in feeds]
        else:
            return None
        sizes = {a.shape[0] if a.ndim == len(i.shape) and a.ndim else None for a, i in zip(arrays, infos)}
        if len(sizes) != 1 or None in sizes or not all(i.shape and i.shape[0] == 1 for i in infos):
            return None
        n = sizes.pop()
        if n <= 1:
            return None
        return [{i.name: a[k:k + 1] for i, a in zip(infos, arrays)} for k in range(n)]

    def classify(self, data, top_k: int | None = None) -> list[list[Prediction]]:
        """Preprocess, run, postprocess; the top-k (label, index, score) per batch item."""
        result = self(data, preprocess=self.preprocessing is not None, postprocess=True)
        if top_k is not None:
            return [preds[:top_k] for preds in self._top_k(result[self._post().output], top_k)]
        return result.top_k

    def detect(self, image, conf: float = 0.25, iou: float = 0.45, max_det: int = 100) -> Detections:
        """Boxes in one RGB image (HxWx3, uint8 0-255 or float): resize or letterbox as the preprocessing says (default:
        plain resize, scale 1/255), run, then decode + NMS in numpy when the model ends in a yolo-format head
        [1, 4 + C, A]. A model with NMS inside (outputs boxes/scores/classes/count, see edgekit.detection.append_nms)
        already applied its own iou and conf: `conf` can only raise its threshold and `max_det` cut its list."""
        from edgekit import detection
        detection.check_thresholds(conf, iou, max_det)
        pre = self._detection_preprocess()
        info = next(i for i in self.inputs if i.name == pre.input)
        img = _rgb_image(image, pre._channels(info))
        size = pre.resize or pre._model_hw(info) or img.shape[:2]
        fitted, gain, pad = letterbox(img, size, pre.resize_method) if pre.letterbox else \
            (resize(img, size, pre.resize_method), (size[0] / img.shape[0], size[1] / img.shape[1]), (0.0, 0.0))
        result = self._run({pre.input: pre.apply(fitted, info)})
        found = self._detections(result, conf, iou, max_det)
        boxes = found["boxes"].astype(np.float32).reshape(-1, 4)
        boxes = (boxes - np.float32([pad[1], pad[0], pad[1], pad[0]])) / np.float32([gain[1], gain[0], gain[1], gain[0]])
        boxes = np.clip(boxes, 0, np.float32([img.shape[1], img.shape[0], img.shape[1], img.shape[0]]))
        classes = found["classes"].astype(np.int64)
        labels = [self.labels[c] if self.labels and 0 <= c < len(self.labels) else str(int(c)) for c in classes]
        return Detections(boxes, found["scores"].astype(np.float32), classes, labels)

    def _detection_preprocess(self) -> Preprocess:
        if self.preprocessing is not None:
            if self.preprocessing.kind != "image":
                raise UsageError(f"The model '{self.source}' declares {self.preprocessing.kind} preprocessing; detect() "
                                 "needs an image input.", hint="Declare kind=image with layout NCHW or NHWC.")
            return self.preprocessing
        image_inputs = [i for i in self.inputs if len(i.shape) == 4]
        if len(self.inputs) != 1 or not image_inputs:
            raise UsageError(f"detect() needs a model with one image input; '{self.source}' takes "
                             f"{[i.describe()['shape'] for i in self.inputs]}.")
        info = image_inputs[0]
        layout = "NCHW" if info.shape[1] in (1, 3) else "NHWC"
        return Preprocess.from_spec({"kind": "image", "layout": layout, "scale": 1 / 255}, self.inputs)

    def _detections(self, result: dict, conf: float, iou: float, max_det: int) -> dict:
        from edgekit import detection
        names = {o.name for o in self.outputs}
        if set(detection.OUTPUT_NAMES) <= names:
            found = detection.unpad({k: _dequantize(result[k], next(o for o in self.outputs if o.name == k))
                                     for k in detection.OUTPUT_NAMES})
            keep = found["scores"] > conf
            return {k: v[keep][:max_det] for k, v in found.items()}
        heads = [o for o in self.outputs if len(o.shape) == 3 and isinstance(o.shape[1], int) and o.shape[1] >= 5]
        if len(heads) != 1:
            raise UsageError(f"The model '{self.source}' has no detection output: expected boxes/scores/classes/count "
                             f"(NMS inside) or one head [1, 4 + classes, anchors]; it has "
                             f"{[(o.name, o.describe()['shape']) for o in self.outputs]}.",
                             hint="Export the detector's decoded head, or append NMS with `edgekit export --nms`.")
        head = _dequantize(result[heads[0].name], heads[0])
        return detection.postprocess_head(head, conf, iou, max_det)

    def _preprocess(self, feeds):
        if self.preprocessing is None:
            raise UsageError(f"The model '{self.source}' declares no preprocessing.",
                             hint="Bundle it with --preprocess, or pass preprocess={...} to edgekit.load.")
        pre = self.preprocessing
        info = next(i for i in self.inputs if i.name == pre.input)
        if isinstance(feeds, Mapping):
            return {**feeds, pre.input: pre.apply(feeds[pre.input], info)} if pre.input in feeds else feeds
        if len(self.inputs) == 1:
            return pre.apply(feeds, info)
        raise UsageError(f"The model '{self.source}' has {len(self.inputs)} inputs; pass a dict by name to preprocess one.")

    def _post(self) -> Postprocess:
        if self.postprocessing is None:
            return Postprocess.from_spec({}, self.outputs, self.labels)
        return self.postprocessing

    def _postprocess(self, result: Outputs) -> None:
        post = self._post()
        info = next(o for o in self.outputs if o.name == post.output)
        scores = _dequantize(result[post.output], info)
        if post.softmax:
            scores = softmax(scores)
        result[post.output] = scores
        result.top_k = self._top_k(scores, post.top_k or 1)

    def _top_k(self, scores: np.ndarray, k: int) -> list[list[Prediction]]:
        scores = np.asarray(scores, dtype=np.float32)
        rows = scores.reshape(-1, scores.shape[-1]) if scores.ndim > 1 else scores[None]
        labels = self.labels
        out = []
        for row in rows:
            order = np.argsort(-row, kind="stable")[:k]
            out.append([Prediction(labels[i] if labels and i < len(labels) else str(int(i)), int(i), float(row[i]))
                        for i in order])
        return out

    def describe(self) -> dict:
        """What runs where: runtime, provider, threads, I/O, declared processing, bundle checks."""
        s = self.session
        return {"source": self.source, "runtime": s.runtime, "provider": s.provider, "threads": s.threads,
                "inputs": [i.describe() for i in s.inputs], "outputs": [o.describe() for o in s.outputs],
                "preprocess": self.preprocessing.as_dict() if self.preprocessing else None,
                "postprocess": self.postprocessing.as_dict() if self.postprocessing else None,
                "labels": len(self.labels) if self.labels else None, "checks": self.checks}

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
        from edgekit.bundle import open_bundle
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
    labels = list(labels) if labels is not None else manifest_.get("labels")
    pre_spec = preprocess if preprocess is not None else manifest_.get("preprocess")
    post_spec = postprocess if postprocess is not None else manifest_.get("postprocess")
    try:
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


def _is_bundle(source) -> bool:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:2]) == b"PK"
    from edgekit.fileio import sniff_format
    return sniff_format(source) == "ekb"


# ------------------------------------------------------------------ numeric helpers

def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def letterbox(img: np.ndarray, size: Sequence[int], method: str = "bilinear", fill: float = 114.0):
    """Resize keeping the aspect ratio and pad to size=(h, w) centred: (image, (gain_y, gain_x), (pad_y, pad_x))."""
    h, w = int(size[0]), int(size[1])
    gain = min(h / img.shape[0], w / img.shape[1])
    nh, nw = max(1, round(img.shape[0] * gain)), max(1, round(img.shape[1] * gain))
    top, left = (h - nh) // 2, (w - nw) // 2
    out = np.full((h, w, img.shape[2]), fill, np.float32)
    out[top:top + nh, left:left + nw] = resize(img, (nh, nw), method) if (nh, nw) != img.shape[:2] else img
    return out, (nh / img.shape[0], nw / img.shape[1]), (float(top), float(left))


def _rgb_image(image, channels: int | None) -> np.ndarray:
    """An HxWx3 float image from an array or a PIL image; clear errors for what is not an RGB image."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        if image.mode not in ("RGB", "RGBA"):
            raise UsageError(f"The image is in PIL mode '{image.mode}'; the model takes RGB images.",
                             hint="Convert it with image.convert('RGB') if that is what you mean.")
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray) or image.dtype.kind not in "uif" or image.size == 0:
        raise UsageError(f"detect() takes one image as an HxWx3 numpy array (or a PIL image); got "
                         f"{type(image).__name__}{' of ' + str(image.dtype) if isinstance(image, np.ndarray) else ''}.",
                         hint="Decode the file first, e.g. numpy.asarray(PIL.Image.open(path).convert('RGB')).")
    if image.ndim == 2 or image.ndim == 3 and image.shape[2] == 1:
        if channels == 3:
            raise UsageError(f"The image is grayscale (shape {list(image.shape)}); the model takes RGB images.",
                             hint="Give an HxWx3 RGB image (np.repeat(gray[..., None], 3, axis=2) if that is meant).")
        image = image.reshape(image.shape[0], image.shape[1], 1)
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise UsageError(f"An image must be HxWx3 (RGB) or HxWx4 (RGBA), got shape {list(image.shape)}.")
    if not np.all(np.isfinite(image)):
        raise UsageError("The image holds NaN or infinite values.")
    return image[:, :, :3].astype(np.float32)


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


def _to_dtype(x: np.ndarray, dtype: np.dtype, info) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        q = info.quantization
        if q and q.get("scale"):
            scale = np.float32(q["scale"][0])
            zero = q["zero_point"][0] if q.get("zero_point") else 0
            x = np.round(x / scale) + zero
        bounds = np.iinfo(dtype)
        return np.clip(np.round(x), bounds.min, bounds.max).astype(dtype)
    return np.ascontiguousarray(x.astype(dtype, copy=False))


def _dequantize(values: np.ndarray, info) -> np.ndarray:
    values = np.asarray(values)
    q = info.quantization
    if np.issubdtype(values.dtype, np.integer) and q and q.get("scale"):
        zero = q["zero_point"][0] if q.get("zero_point") else 0
        return (values.astype(np.float32) - np.float32(zero)) * np.float32(q["scale"][0])
    return values.astype(np.float32, copy=False)


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
