"""Calibration and evaluation data: .npz, a folder of .npy files, a folder of images, or seeded random data.

Every source reads rows on demand (memory-mapped or streamed from the archive), so memory stays bounded by
one batch whatever the set's size. `check_source` reports every problem (names, shapes, dtypes, NaN/Inf,
constant tensors, empty sets, labels) in one UsageError before any calibration starts.
"""
from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import UsageError

LABELS_KEY = "labels"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SCAN_ROWS = 64  # rows per chunk when scanning a set for NaN/Inf and constant tensors


class DataSource:
    """Rows of model inputs (first axis = samples), read in slices; optional integer labels."""

    description = "data"

    def __len__(self) -> int:
        raise NotImplementedError

    def keys(self) -> list[str]:
        raise NotImplementedError

    def row_shape(self, key: str) -> tuple[int, ...]:
        raise NotImplementedError

    def dtype(self, key: str) -> np.dtype:
        raise NotImplementedError

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def has_labels(self) -> bool:
        return False

    def labels(self, start: int, stop: int) -> np.ndarray | None:
        return None

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- .npz

class _NpzMember:
    """One array inside an .npz, read by row ranges without loading the whole array."""

    def __init__(self, zf: zipfile.ZipFile, path: Path, info: zipfile.ZipInfo):
        self.zf, self.path, self.info = zf, path, info
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self.header_len = fh.tell()
        if dtype.hasobject:
            raise UsageError(f"'{path}' holds an object array '{info.filename}', which is not numeric data.",
                             hint="Save plain numeric arrays (numpy.savez).")
        self.shape, self.fortran, self.dtype = tuple(shape), fortran, dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
        self._memmap = None
        if info.compress_type == zipfile.ZIP_STORED and not fortran and shape:
            with open(path, "rb") as raw:  # the local file header tells where the member's bytes start
                raw.seek(info.header_offset)
                local = raw.read(30)
                name_len, extra_len = struct.unpack("<HH", local[26:30])
            offset = info.header_offset + 30 + name_len + extra_len + self.header_len
            self._memmap = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))

    def read(self, start: int, stop: int) -> np.ndarray:
        if not self.shape:
            return np.asarray(np.load(self.zf.open(self.info), allow_pickle=False))
        if self._memmap is not None:
            return np.array(self._memmap[start:stop])
        if self.fortran:  # rows are not contiguous on disk; rare (numpy.savez of a Fortran-ordered array)
            with self.zf.open(self.info) as fh:
                return np.array(np.lib.format.read_array(fh, allow_pickle=False)[start:stop])
        with self.zf.open(self.info) as fh:
            fh.seek(self.header_len + start * self.row_bytes)
            buf = fh.read((stop - start) * self.row_bytes)
        return np.frombuffer(buf, dtype=self.dtype).reshape((stop - start, *self.shape[1:])).copy()


class NpzSource(DataSource):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.description = f"'{self.path}'"
        try:
            self.zf = zipfile.ZipFile(self.path)
            names = [n for n in self.zf.namelist() if n.endswith(".npy")]
            self.members = {n[:-4]: _NpzMember(self.zf, self.path, self.zf.getinfo(n)) for n in names}
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise UsageError(f"Cannot read '{self.path}' as an .npz of arrays ({exc}).",
                             hint="Save inputs with numpy.savez(path, input_name=array, ..., labels=labels).") from exc

    def __len__(self):
        lens = [m.shape[0] for k, m in self.members.items() if m.shape]
        return min(lens) if lens else 0

    def keys(self):
        return [k for k in self.members if k != LABELS_KEY]

    def row_shape(self, key):
        return self.members[key].shape[1:]

    def dtype(self, key):
        return self.members[key].dtype

    def read(self, key, start, stop):
        return self.members[key].read(start, stop)

    @property
    def has_labels(self):
        return LABELS_KEY in self.members

    def labels(self, start, stop):
        return self.members[LABELS_KEY].read(start, stop) if self.has_labels else None

    def full_lengths(self) -> dict[str, int]:
        return {k: (m.shape[0] if m.shape else 0) for k, m in self.members.items()}

    def close(self):
        self.zf.close()


# ---------------------------------------------------------------- folder of .npy

class NpyDirSource(DataSource):
    """Either one stacked file per input (`<input>.npy`, optional `labels.npy`), or — for a one-input model —
    one file per sample (sorted by name), each holding the sample with or without a leading axis of 1."""

    def __init__(self, path: Path, input_names: list[str]):
        self.path = path
        self.description = f"the folder '{path}'"
        files = sorted(p for p in path.iterdir() if p.suffix == ".npy" and p.is_file())
        stems = {p.stem: p for p in files}
        self.stacked = bool(input_names) and all(n in stems for n in input_names)
        if self.stacked:
            self.arrays = {k: np.load(p, mmap_mode="r", allow_pickle=False) for k, p in stems.items()
                           if k in input_names or k == LABELS_KEY}
            self.files = []
        else:
            if len(input_names) != 1:
                raise UsageError(
                    f"The folder '{path}' has no file per input ({[n + '.npy' for n in input_names]}).",
                    hint="For a model with several inputs, save one stacked array per input: NAME.npy (+ labels.npy).")
            self.key = input_names[0]
            self.files = [p for p in files if p.stem != LABELS_KEY]
            self.arrays = {}
            self._labels = np.load(stems[LABELS_KEY], mmap_mode="r") if LABELS_KEY in stems else None
            self._first = np.load(self.files[0], mmap_mode="r", allow_pickle=False) if self.files else None

    def __len__(self):
        if self.stacked:
            return min(a.shape[0] if a.ndim else 0 for a in self.arrays.values())
        return len(self.files)

    def keys(self):
        return [k for k in self.arrays if k != LABELS_KEY] if self.stacked else [self.key]

    def row_shape(self, key):
        if self.stacked:
            return tuple(self.arrays[key].shape[1:])
        return tuple(self._first.shape) if self._first is not None else ()

    def dtype(self, key):
        return self.arrays[key].dtype if self.stacked else (self._first.dtype if self._first is not None else np.float32)

    def read(self, key, start, stop):
        if self.stacked:
            return np.array(self.arrays[key][start:stop])
        rows = []
        for p in self.files[start:stop]:
            try:
                rows.append(np.load(p, allow_pickle=False))
            except Exception as exc:
                raise UsageError(f"Cannot read '{p}' as a .npy array ({exc}).", hint="Remove or re-save it.") from exc
        shapes = {r.shape for r in rows}
        if len(shapes) > 1:
            raise UsageError(f"The .npy files in '{self.path}' have different shapes {sorted(shapes)}.",
                             hint="Every sample must have the model input's shape.")
        return np.stack(rows)

    @property
    def has_labels(self):
        return LABELS_KEY in self.arrays if self.stacked else self._labels is not None

    def labels(self, start, stop):
        src = self.arrays.get(LABELS_KEY) if self.stacked else self._labels
        return None if src is None else np.array(src[start:stop])


# ---------------------------------------------------------------- folder of images

# Image-folder calibration's defaults where the spec is silent (as before the spec was shared with the app):
# the layout from where the 1- or 3-channel axis is, and scale=1/255. Everything else reads as in an app or bundle.
CALIBRATION_IMAGE_DEFAULTS = {"kind": "image", "scale": "1/255"}


def parse_image_spec(spec, info):
    """The preprocessing of a folder of images (edgekit.processing's spec, in any of its forms) for input `info`.

    Calibration, the app and bundles share this spec, so the same text gives the same tensor everywhere. Old
    calibration text still reads: `order=` is `color=`, and `scale=255` (the old divisor) is read as 1/255 with
    a FutureWarning (see edgekit.processing.Preprocess)."""
    from edgekit.processing import Preprocess, parse_spec

    shape = info.shape
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise UsageError(f"Image calibration data needs a 4-D input with static C, H, W; '{info.name}' has shape "
                         f"{info.describe()['shape']}.", hint="Give the data as .npz or .npy instead.")
    values = {**CALIBRATION_IMAGE_DEFAULTS, "layout": "NCHW" if shape[1] in (1, 3) else "NHWC", **parse_spec(spec)}
    return Preprocess.from_spec(values, [info])


def read_rgb_image(p: Path) -> np.ndarray:
    """The decoded RGB image (HxWx3 uint8): the spec does the rest, exactly as in an app (compare reads it too)."""
    from edgekit.deps import require
    image_mod = require("PIL.Image", "Reading images")
    try:
        with image_mod.open(p) as img:
            return np.asarray(img.convert("RGB"))  # gray models: the spec's luma, as in an app
    except OSError as exc:
        raise UsageError(f"Cannot read the image '{p}' ({exc}).", hint="Remove or replace the file.") from exc


def image_files(path: Path) -> tuple[list[tuple[Path, int | None]], list[str]]:
    """A folder's images, sorted, with class indices when sub-folders are classes (as ImageFolder): (items, classes)."""
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if classes:
        return [(p, i) for i, c in enumerate(classes) for p in sorted((path / c).iterdir())
                if p.suffix.lower() in IMAGE_SUFFIXES], classes
    return [(p, None) for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES], []


class ImageDirSource(DataSource):
    """Images in a folder (sorted); sub-folders are classes (labels = sorted folder index), as ImageFolder does."""

    def __init__(self, path: Path, info, spec):
        self.path, self.key, self.spec, self.info = path, info.name, spec, info
        self.description = f"the image folder '{path}'"
        self.items, self.classes = image_files(path)

    def __len__(self):
        return len(self.items)

    def keys(self):
        return [self.key]

    def row_shape(self, key):
        return tuple(self.info.shape[1:])

    def dtype(self, key):
        return np.dtype(self.spec.dtype)

    def read(self, key, start, stop):
        return np.concatenate([self.spec.apply(self._load(p), self.info) for p, _ in self.items[start:stop]])

    def _load(self, p: Path) -> np.ndarray:
        return read_rgb_image(p)

    @property
    def has_labels(self):
        return bool(self.classes)

    def labels(self, start, stop):
        return np.array([c for _, c in self.items[start:stop]], dtype=np.int64) if self.classes else None


# ---------------------------------------------------------------- random

class RandomSource(DataSource):
    """Seeded N(0,1) (or small-integer) rows: runs the machinery, but calibrates nothing meaningful."""

    description = "random data"

    def __init__(self, infos, count: int, seed: int = 0):
        from edgekit.inputs import random_array
        self.infos = {i.name: i for i in infos}
        self.count, self.seed, self._random_array = count, seed, random_array

    def __len__(self):
        return self.count

    def keys(self):
        return list(self.infos)

    def row_shape(self, key):
        return tuple(d if isinstance(d, int) and d > 0 else 1 for d in self.infos[key].shape[1:])

    def dtype(self, key):
        return np.dtype(self.infos[key].dtype)

    def read(self, key, start, stop):
        rows = []
        for i in range(start, stop):  # one generator per row: any slice gives the same rows
            rng = np.random.default_rng([self.seed, i, list(self.infos).index(key)])
            rows.append(self._random_array((1, *self.row_shape(key)), self.dtype(key), rng)[0])
        return np.stack(rows)


# ---------------------------------------------------------------- opening and checking

def open_source(spec: str | os.PathLike, infos, *, preprocess: str | None = None, random_count: int = 32,
                seed: int = 0) -> DataSource:
    """'random', an .npz file, a folder of .npy files or a folder of images → a DataSource."""
    if str(spec) == "random":
        return RandomSource(infos, random_count, seed)
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"The calibration data '{path}' does not exist.",
                         hint="Give an .npz keyed by input name, a folder of .npy files or images, or 'random'.")
    if path.is_file():
        if path.suffix.lower() == ".npy":
            raise UsageError(f"'{path}' is a single .npy file.",
                             hint="Put it in a folder named after the input (NAME.npy), or save an .npz keyed by input name.")
        return NpzSource(path)
    entries = [p for p in path.rglob("*") if p.is_file()]
    if any(p.suffix == ".npy" for p in entries):
        return NpyDirSource(path, [i.name for i in infos])
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries):
        if len(infos) != 1:
            raise UsageError(f"A folder of images can only feed a one-input model; this one has {len(infos)} inputs.",
                             hint="Save the inputs as an .npz keyed by input name.")
        return ImageDirSource(path, infos[0], parse_image_spec(preprocess, infos[0]))
    raise UsageError(f"The folder '{path}' holds no .npy files and no images.",
                     hint=f"Supported: NAME.npy per input, one .npy per sample, or images ({', '.join(IMAGE_SUFFIXES)}).")


@dataclass
class DataCheck:
    samples: int
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


def check_source(source: DataSource, infos, *, role: str = "calibration") -> DataCheck:
    """Every problem with the data, in one UsageError, before any model runs on it."""
    problems: list[str] = []
    names = [i.name for i in infos]
    keys = source.keys()
    n = len(source)
    missing = [k for k in names if k not in keys]
    extra = [k for k in keys if k not in names]
    if missing:
        problems.append(f"no data for the input(s) {missing}")
    if extra:
        problems.append(f"unexpected key(s) {extra} (the model's inputs are {names})")
    if isinstance(source, NpzSource):
        lengths = {k: v for k, v in source.full_lengths().items() if k in names or k == LABELS_KEY}
        if len(set(lengths.values())) > 1:
            problems.append(f"the arrays hold different numbers of samples {lengths}")
    if n == 0:
        problems.append("the set is empty (0 samples)")
    usable = []
    for info in infos:
        if info.name not in keys:
            continue
        shape = source.row_shape(info.name)
        want = info.shape[1:]
        if len(shape) != len(want) or any(isinstance(d, int) and d > 0 and d != s for d, s in zip(want, shape)):
            problems.append(f"'{info.name}' samples have shape {list(shape)}, the model expects "
                            f"{[d if isinstance(d, int) else '?' for d in want]} per sample "
                            f"(arrays are N x {'x'.join(str(d) if isinstance(d, int) else '?' for d in want)})")
            continue
        dtype = source.dtype(info.name)
        if not np.can_cast(dtype, info.dtype, casting="same_kind"):
            problems.append(f"'{info.name}' has dtype {dtype}, the model expects {np.dtype(info.dtype).name}")
            continue
        usable.append(info.name)
    if source.has_labels and n:
        lab = source.labels(0, min(n, SCAN_ROWS))
        boxes = lab.ndim == 3 and lab.shape[-1] == 5  # detection labels, see edgekit.detection_metrics.box_labels
        if not boxes and (not np.issubdtype(lab.dtype, np.integer) or lab.ndim != 1):
            problems.append(f"'labels' must be a 1-D integer array (class index per sample) or, for a detector, "
                            f"[N, boxes, 5] (x1, y1, x2, y2, class; class -1 pads), got {lab.dtype} "
                            f"with shape {list(lab.shape)}")
    check = DataCheck(samples=n)
    if n and usable and not problems:
        _scan_values(source, usable, n, problems, check)
    if problems:
        raise UsageError(f"The {role} data in {source.description} cannot be used: " + "; ".join(problems) + ".",
                         hint=f"The model's inputs are {[i.describe() for i in infos]}; give N samples per input "
                              f"with the shape after the batch dimension.")
    return check


def _scan_values(source: DataSource, keys: list[str], n: int, problems: list[str], check: DataCheck) -> None:
    stats = {k: {"nonfinite": 0, "min": np.inf, "max": -np.inf, "first": None, "varies": False} for k in keys}
    for start in range(0, n, SCAN_ROWS):
        stop = min(n, start + SCAN_ROWS)
        for k in keys:
            rows = source.read(k, start, stop)
            s = stats[k]
            if np.issubdtype(rows.dtype, np.floating):
                bad = ~np.isfinite(rows)
                s["nonfinite"] += int(bad.sum())
                rows = np.where(bad, 0, rows)
            if rows.size:
                s["min"] = min(s["min"], float(rows.min()))
                s["max"] = max(s["max"], float(rows.max()))
                if s["first"] is None:
                    s["first"] = rows[0].copy()
                if not s["varies"]:
                    s["varies"] = bool(np.any(rows != s["first"]))
    for k, s in stats.items():
        if s["nonfinite"]:
            problems.append(f"'{k}' contains {s['nonfinite']} NaN/Inf value(s)")
        elif s["min"] == s["max"]:
            problems.append(f"'{k}' is constant (every value is {s['min']:g}), which calibrates nothing")
        elif not s["varies"] and n > 1:
            problems.append(f"every sample of '{k}' is identical, which calibrates only one point")
        check.ranges[k] = (s["min"], s["max"])


# ---------------------------------------------------------------- feeding the model

def batch_size_for(infos, requested: int) -> int:
    """The model's static batch size if it has one, else `requested`."""
    sizes = {i.shape[0] for i in infos if i.shape and isinstance(i.shape[0], int) and i.shape[0] > 0}
    return sizes.pop() if len(sizes) == 1 else requested


def iter_batches(source: DataSource, infos, start: int, stop: int, batch: int):
    """Yield (feeds, labels or None) for rows [start, stop) in batches of `batch` (a short last batch only when
    the model's batch dimension is dynamic)."""
    static = any(isinstance(i.shape[0], int) and i.shape[0] > 0 for i in infos if i.shape)
    for b0 in range(start, stop, batch):
        b1 = min(stop, b0 + batch)
        if static and b1 - b0 != batch:
            break
        feeds = {i.name: np.ascontiguousarray(source.read(i.name, b0, b1).astype(i.dtype, copy=False)) for i in infos}
        yield feeds, source.labels(b0, b1)


def make_reader(source: DataSource, infos, start: int, stop: int, batch: int,
                on_batch: Callable[[int], None] | None = None):
    """An onnxruntime CalibrationDataReader over rows [start, stop), streaming one batch at a time."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.rewind()

        def rewind(self):
            self._it = iter_batches(source, infos, start, stop, batch)

        def get_next(self):
            item = next(self._it, None)
            if item is None:
                return None
            if on_batch:
                on_batch(len(next(iter(item[0].values()))))
            return item[0]

    return _Reader()
