"""Models inside apps: `edgekit.load(.tflite | .onnx | .ekb | bytes)` (edgekit.loading) → a callable `Model`.

A Model runs numpy arrays on LiteRT or ONNX Runtime (via edgekit.runtimes) and, when asked, applies the
preprocessing and postprocessing a bundle declares. Needs numpy and one runtime; never imports torch or onnx.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

import numpy as np

from edgekit.errors import UsageError
from edgekit.processing import Postprocess, Preprocess, letterbox, resize, softmax  # noqa: F401 (re-exported)
from edgekit.tensors import dequantize as _dequantize  # noqa: F401 (text.py imports it from here)

__all__ = ["Model", "Outputs", "Prediction", "Detections", "Preprocess", "Postprocess", "resize"]


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
        img, result, _, gain, pad = self._run_image(image, "detect")
        found = self._detections(result, conf, iou, max_det)
        boxes = found["boxes"].astype(np.float32).reshape(-1, 4)
        boxes = (boxes - np.float32([pad[1], pad[0], pad[1], pad[0]])) / np.float32([gain[1], gain[0], gain[1], gain[0]])
        boxes = np.clip(boxes, 0, np.float32([img.shape[1], img.shape[0], img.shape[1], img.shape[0]]))
        classes = found["classes"].astype(np.int64)
        labels = [self.labels[c] if self.labels and 0 <= c < len(self.labels) else str(int(c)) for c in classes]
        return Detections(boxes, found["scores"].astype(np.float32), classes, labels)

    def segment(self, image) -> np.ndarray:
        """Class index per pixel of one RGB image (HxWx3 array, PIL image or image file), [H, W] uint8 at the image's
        size: the model's per-pixel class logits [1, C, h, w] (or [1, h, w, C]) resampled through the declared resize
        or letterbox (default: plain resize, scale 1/255), then the argmax. See edgekit.segmentation."""
        from edgekit import segmentation
        img, result, input_hw, gain, pad = self._run_image(image, "segment")
        prefer = "NHWC" if self._detection_preprocess().layout == "NHWC" else "NCHW"
        info, layout = segmentation.logits_output(self.outputs, input_hw, prefer=prefer)
        return segmentation.class_mask(_dequantize(result[info.name], info), layout, img.shape[:2], input_hw, gain, pad)

    def _run_image(self, image, what: str):
        """Fit one image into the model input as the preprocessing says and run it: (image, outputs, input (h, w),
        gain, pad); gain and pad map image pixels to input pixels (edgekit.processing.letterbox's)."""
        pre = self._detection_preprocess()
        if pre.crop or (pre.resize and len(pre.resize) == 1):
            raise UsageError(f"{what}() maps its results back through a resize or letterbox; the declared "
                             "preprocessing crops.",
                             hint="Declare resize=HxW (letterbox=true to keep the aspect ratio) without crop.")
        info = next(i for i in self.inputs if i.name == pre.input)
        img = _rgb_image(image, pre._channels(info), what)
        size = tuple(pre.resize or pre._model_hw(info) or img.shape[:2])
        fitted, gain, pad = letterbox(img, size, pre.resize_method) if pre.letterbox else \
            (resize(img, size, pre.resize_method), (size[0] / img.shape[0], size[1] / img.shape[1]), (0.0, 0.0))
        return img, self._run({pre.input: pre.apply(fitted, info)}), size, gain, pad

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
        from edgekit.detection_metrics import detection_spec
        infos = {o.name: o for o in self.outputs}
        # the model's metadata names its detection outputs and a head's box format (an SSD box coder gives xyxy)
        spec = detection_spec(getattr(self.session, "metadata", None), infos)
        if spec is not None and spec["kind"] == "nms":
            found = detection.unpad({k: _dequantize(result[v], infos[v]) for k, v in spec["names"].items()})
            keep = found["scores"] > conf
            return {k: v[keep][:max_det] for k, v in found.items()}
        if spec is not None:
            head = _dequantize(result[spec["output"]], infos[spec["output"]])
            return detection.postprocess_head(head, conf, iou, max_det, box_format=spec["box_format"])
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


def _rgb_image(image, channels: int | None, what: str = "detect") -> np.ndarray:
    """An HxWx3 float image from an array, a PIL image or an image file; clear errors for what is not an RGB image."""
    if isinstance(image, (str, os.PathLike)):
        image = _open_image(image)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        if image.mode not in ("RGB", "RGBA"):
            raise UsageError(f"The image is in PIL mode '{image.mode}'; the model takes RGB images.",
                             hint="Convert it with image.convert('RGB') if that is what you mean.")
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray) or image.dtype.kind not in "uif" or image.size == 0:
        raise UsageError(f"{what}() takes one image as an HxWx3 numpy array (or a PIL image or image file); got "
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


def _open_image(path) -> Any:
    """A decoded PIL image from a file (Pillow); a file that is not an image is a usage error, not a traceback."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        from edgekit.errors import EnvironmentProblem
        raise EnvironmentProblem(f"Reading the image file '{path}' needs Pillow, which is not installed.",
                                 hint="pip install pillow, or pass the decoded pixels as an HxWx3 array.") from None
    try:
        with Image.open(path) as opened:
            return opened.convert("RGBA") if opened.mode in ("P", "PA") else opened.copy()
    except FileNotFoundError:
        raise UsageError(f"There is no image file '{path}'.") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError(f"'{path}' is not an image file Pillow can read ({exc}).",
                         hint="Give a PNG, JPEG, BMP, ... file, or the decoded pixels as an HxWx3 array.") from None
