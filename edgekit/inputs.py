"""Model inputs: seeded random data matching each input's dtype and range, or real data from .npz."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgekit.errors import UsageError

_SHAPE_RE = re.compile(r"^(?:(?P<name>[A-Za-z_][\w.:/-]*)=)?(?P<dims>\d+(?:x\d+)*)(?::(?P<dtype>[a-z0-9]+))?$")
DTYPES = {"float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"}


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...], str | None]:
    """'1x3x224x224', 'tokens=1x16:int64' → (name or None, dims, dtype or None)."""
    m = _SHAPE_RE.match(text.strip())
    if not m or (m["dtype"] and m["dtype"] not in DTYPES):
        raise UsageError(f"Cannot read the shape '{text}'.",
                         hint=f"Write dims joined by 'x', optionally a name and a dtype: 1x3x224x224, "
                              f"tokens=1x16:int64 (dtypes: {', '.join(sorted(DTYPES))}).")
    dims = tuple(int(d) for d in m["dims"].split("x"))
    if any(d <= 0 for d in dims):
        raise UsageError(f"The shape '{text}' has a zero dimension.", hint="Every dimension must be at least 1.")
    return m["name"], dims, m["dtype"]


def parse_dims(text: str) -> dict[str, int]:
    """'batch=4,seq=32' → {'batch': 4, 'seq': 32} (values for dynamic dimensions)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part or not part.split("=", 1)[1].isdigit():
            raise UsageError(f"Cannot read the dimension value '{part}'.", hint="Write LABEL=SIZE, e.g. seq=32.")
        k, v = part.split("=", 1)
        out[k] = int(v)
    return out


def resolve_shape(info, dims: dict[str, int] | None = None, batch: int | None = None) -> tuple[int, ...]:
    """Concrete shape of a runtime TensorInfo: dynamic dims from `dims` (by label) or `batch` (first dim)."""
    dims = dims or {}
    shape = []
    for i, d in enumerate(info.shape):
        if isinstance(d, int) and d >= 0:
            shape.append(batch if (i == 0 and batch and info.shape and _is_batch(d)) else d)
        elif isinstance(d, str) and d in dims:
            shape.append(dims[d])
        elif i == 0 and batch:
            shape.append(batch)
        else:
            label = d if isinstance(d, str) else f"dim {i}"
            raise UsageError(
                f"Input '{info.name}' has a dynamic dimension '{label}' (position {i}) with no value given.",
                hint=f"Give it a size, e.g. --dim {label if isinstance(d, str) else 'LABEL'}=8"
                     + (" or --batch N for the batch dimension." if i == 0 else "."))
    return tuple(shape)


def _is_batch(d: int) -> bool:
    return d == 1


def random_array(shape, dtype, rng: np.random.Generator, *, vocab: int | None = None) -> np.ndarray:
    """Seeded data in a plausible range: N(0,1) floats, small non-negative ints (valid as indices), bools."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        hi = vocab or 10
        if dtype == np.uint8:
            return rng.integers(0, 256, shape, dtype=np.uint8)
        if dtype == np.int8:
            return rng.integers(-128, 128, shape, dtype=np.int8)
        return rng.integers(0, hi, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def validation_feeds(infos, input_shapes: dict, seed: int) -> dict[str, np.ndarray]:
    """The seeded inputs validation feeds both runtimes for one sample: each input at its shape in `input_shapes`
    (a dynamic dim, -1, at 2), drawn in `infos` order from one generator seeded with `seed`. One home, so every
    diagnostic that replays a validation sample (islands, activation scales, the reference's sensitivity) sees the
    same arrays."""
    rng = np.random.default_rng(seed)
    return {i.name: random_array([2 if d == -1 else d for d in input_shapes[i.name]], i.dtype, rng) for i in infos}


def random_inputs(infos, seed: int = 0, dims: dict[str, int] | None = None, batch: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {i.name: resolve_shape(i, dims, batch) for i in infos}
    check_memory({i.name: (shapes[i.name], i.dtype) for i in infos})
    return {i.name: random_array(shapes[i.name], i.dtype, rng) for i in infos}


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or 8 GiB where that cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def check_memory(tensors: dict[str, tuple[tuple, np.dtype]], what: str = "the inputs") -> None:
    """Refuse, with the estimate, tensors that would need more than half the available memory."""
    sizes = {n: float(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize for n, (shape, dtype) in tensors.items()}
    total, limit = sum(sizes.values()), available_memory() / 2
    if total > limit:
        biggest = max(sizes, key=sizes.get)
        raise UsageError(f"{what.capitalize()} would need {total / 2**30:.1f} GiB "
                         f"('{biggest}' alone {sizes[biggest] / 2**30:.1f} GiB with shape {list(tensors[biggest][0])}), "
                         f"more than half the {limit * 2 / 2**30:.1f} GiB of memory available; nothing was allocated.",
                         hint="Use smaller shapes (--input-shape, --batch, --dim).")


def load_npz(path: str | Path, infos=None, what: str = "inputs file") -> dict[str, np.ndarray]:
    """Load inputs keyed by input name from an .npz; check names, ranks, static dims and dtypes against `infos`.
    `what` names the file in errors (an evaluation file is not an inputs file to the user who gave it)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"The {what} '{path}' does not exist.", hint="Give an .npz keyed by input name.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise UsageError(f"Cannot read '{path}' as an .npz of arrays ({exc}).",
                         hint="Save inputs with numpy.savez(path, input_name=array, ...).") from exc
    if infos is None:
        return arrays
    problems = []
    names = [i.name for i in infos]
    missing = [n for n in names if n not in arrays]
    extra = [k for k in arrays if k not in names and k != "labels"]
    if missing:
        problems.append(f"missing inputs {missing}")
    if extra:
        problems.append(f"unexpected keys {extra}")
    for info in infos:
        arr = arrays.get(info.name)
        if arr is None:
            continue
        if arr.ndim != len(info.shape) or any(isinstance(d, int) and d >= 0 and d != s and i > 0
                                              for i, (d, s) in enumerate(zip(info.shape, arr.shape))):
            problems.append(f"'{info.name}' has shape {list(arr.shape)}, the model expects {info.describe()['shape']}")
        elif not np.can_cast(arr.dtype, info.dtype, casting="same_kind"):
            problems.append(f"'{info.name}' has dtype {arr.dtype}, the model expects {np.dtype(info.dtype).name}")
    if problems:
        raise UsageError(f"The inputs in '{path}' do not match the model: " + "; ".join(problems) + ".",
                         hint=f"The model's inputs are {[i.describe() for i in infos]}.")
    return {n: arrays[n] for n in names}
