"""Reading ONNX files as untrusted data: decode errors become messages, external data stays in its directory."""
from __future__ import annotations

import os
from pathlib import Path

from edgekit.deps import require
from edgekit.errors import InvalidModelError
from edgekit.fileio import sniff_format

MAX_EXTERNAL_BYTES = 64 << 30  # a sanity cap: no single tensor is larger than this


def load_onnx(path: str | os.PathLike, *, external_data: bool = True):
    """Load an ONNX ModelProto from `path`; external data must live inside the model's directory."""
    onnx = require("onnx", "Reading ONNX models")
    path = Path(path)
    fmt = sniff_format(path)
    if fmt != "onnx":
        raise InvalidModelError(f"'{path}' is a {fmt} file, not an ONNX model.",
                                hint="Give an .onnx file (edgekit export makes one from PyTorch).")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:
        raise InvalidModelError(f"'{path}' is not a readable ONNX model ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:200] if str(exc) else 'decode error'}); "
                                f"it may be truncated or corrupt.", hint="Re-export or re-download it.") from exc
    if not model.graph.node and not model.graph.output:
        raise InvalidModelError(f"'{path}' decodes as protobuf but holds no ONNX graph.",
                                hint="Check that the file is an ONNX model and complete.")
    if external_data:
        check_external_data(model, path.parent)
        if _has_external(model):
            from onnx.external_data_helper import load_external_data_for_model
            try:
                load_external_data_for_model(model, str(path.parent))
            except Exception as exc:
                raise InvalidModelError(f"Cannot read the external data of '{path}': {exc}",
                                        hint="Keep the .data file(s) next to the model, complete.") from exc
    return model


def _external_tensors(model):
    from onnx.external_data_helper import _get_all_tensors, uses_external_data
    return [t for t in _get_all_tensors(model) if uses_external_data(t)]


def _has_external(model) -> bool:
    return bool(_external_tensors(model))


def check_external_data(model, base_dir: Path) -> None:
    """Refuse external-data references that leave `base_dir` or point past the end of their file."""
    base = base_dir.resolve()
    for tensor in _external_tensors(model):
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        where = f"tensor '{tensor.name}' refers to external data '{location}'"
        if not location or os.path.isabs(location) or location.startswith(("/", "\\")) or ".." in Path(location).parts:
            raise InvalidModelError(f"Refused: {where}, which is outside the model's directory.",
                                    hint="External data must be a relative path inside the model's folder.")
        target = base / location
        real = Path(os.path.realpath(target))
        if base not in real.parents and real != base:
            raise InvalidModelError(f"Refused: {where}, which resolves (through a link) to '{real}', "
                                    f"outside the model's directory.", hint="Copy the data file into the model's folder.")
        if not real.is_file():
            raise InvalidModelError(f"Refused: {where}, which does not exist.", hint="Put the data file next to the model.")
        st = real.stat()
        if st.st_nlink > 1:
            raise InvalidModelError(f"Refused: {where}, a hard link (it may point at a file outside the model's directory).",
                                    hint="Replace the link by a copy of the data.")
        try:
            offset = int(info.get("offset", 0) or 0)
            length = int(info["length"]) if "length" in info else st.st_size - offset
        except ValueError:
            raise InvalidModelError(f"Refused: {where} with a non-numeric offset or length.") from None
        if offset < 0 or length < 0 or length > MAX_EXTERNAL_BYTES or offset + length > st.st_size:
            raise InvalidModelError(f"Refused: {where} at offset {offset} length {length}, beyond the file's "
                                    f"{st.st_size} bytes.", hint="The data file is truncated or the model is corrupt.")


#: protobuf cannot serialize a message over 2 GiB; models near it keep their weights in a side file
EXTERNAL_DATA_THRESHOLD = (2 << 30) - (64 << 20)


def save_onnx(model, dest: str | os.PathLike) -> list[Path]:
    """Write `model` atomically; a model too large for one protobuf gets its weights in `<name>.data` beside it.

    The data file is written fresh under a temp name and renamed (never appended to an existing file), and only
    into the destination's own directory. Returns the files written.
    """
    from edgekit.fileio import atomic_path, atomic_write

    dest = Path(dest)
    if model.ByteSize() <= EXTERNAL_DATA_THRESHOLD:
        return [atomic_write(dest, model.SerializeToString())]
    import copy
    import tempfile

    onnx = require("onnx", "Writing ONNX models")
    from onnx.external_data_helper import convert_model_to_external_data

    data_name = dest.name + ".data"
    model = copy.deepcopy(model)
    with tempfile.TemporaryDirectory(dir=dest.parent if str(dest.parent) else ".", prefix=".edgekit-tmp-ext-") as tmp:
        convert_model_to_external_data(model, all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
        onnx.save_model(model, str(Path(tmp) / dest.name))  # writes tmp/<name> and tmp/<name>.data, both new
        with atomic_path(dest.parent / data_name) as data_tmp:
            os.replace(Path(tmp) / data_name, data_tmp)
        with atomic_path(dest) as model_tmp:
            os.replace(Path(tmp) / dest.name, model_tmp)
    return [dest.parent / data_name, dest]
