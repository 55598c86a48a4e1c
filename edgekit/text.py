"""Text in apps: a Hugging Face `tokenizers` file turns sentences into the token ids a text model takes.

`edgekit.load(model, tokenizer="tokenizer.json")` returns a TextModel: `encode(texts)` mean-pools the model's token
states over the attention mask into one embedding per text (or passes a pooled [batch, hidden] output through);
`classify(texts)` labels texts with a sequence classifier. Ids and masks are fed in the dtype each input declares
(int64 in ONNX exports, int32 in compiled TFLite), padded to the model's fixed length or to the longest text.
Before any run the tokenizer's largest id is checked against the rows of the model's embedding table, read from
the graph itself (the Gather that takes the ids: an ONNX initializer, a TFLite constant) or `edgekit.text`
metadata. Needs numpy, `tokenizers` and one runtime; never torch or onnx (ONNX graphs are read from the protobuf
wire format directly).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit.app import Model, Prediction
from edgekit.errors import EnvironmentProblem, UnsupportedModelError, UsageError
from edgekit.runtimes.base import json_dict

__all__ = ["TextModel", "TruncationWarning", "attach_tokenizer", "load_tokenizer", "embedding_rows"]

ID_NAMES = ("input_ids", "ids", "tokens", "input")
MASK_HINTS = ("attention_mask", "mask")
TYPE_HINTS = ("token_type_ids", "segment_ids", "token_type")
BATCH = 32                 # texts per run on models with a dynamic batch (bounds memory on long lists)
MAX_TOKENIZER_BYTES = 64 << 20


class TruncationWarning(UserWarning):
    """A text was longer than the model takes; it was cut to the model's length."""


# ------------------------------------------------------------------ the tokenizer

def load_tokenizer(source: str | os.PathLike | bytes):
    """A `tokenizers.Tokenizer` from a tokenizer.json path, its bytes, or its JSON text."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EnvironmentProblem(f"Text models need the Python package 'tokenizers', which is not installed ({exc}).",
                                 hint='Install it with: pip install "edgekit[text]".') from exc
    if isinstance(source, (bytes, bytearray)):
        text, label = _decode(bytes(source), "<tokenizer bytes>"), "<tokenizer bytes>"
    elif isinstance(source, str) and source.lstrip().startswith("{"):
        text, label = source, "<tokenizer JSON>"
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"The tokenizer file '{path}' does not exist.",
                             hint="Give the model's tokenizer.json (Hugging Face tokenizers format).")
        if path.stat().st_size > MAX_TOKENIZER_BYTES:
            raise UsageError(f"The tokenizer file '{path}' is {path.stat().st_size} bytes; a tokenizer.json is "
                             f"at most {MAX_TOKENIZER_BYTES >> 20} MiB.", hint="Check that this is a tokenizer file.")
        text, label = _decode(path.read_bytes(), str(path)), str(path)
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises its own Exception subclass for every parse failure
        raise UsageError(f"'{label}' is not a Hugging Face tokenizer file: {str(exc).splitlines()[0][:300]}",
                         hint="Give a tokenizer.json saved by `tokenizers` (Tokenizer.save) or transformers "
                              "(tokenizer.save_pretrained writes one for fast tokenizers).") from None
    return tokenizer, label


def _decode(data: bytes, label: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"The tokenizer '{label}' is not UTF-8 JSON.",
                         hint="Give the tokenizer.json file, not a vocabulary or a model file.") from None


def _largest_id(tokenizer) -> int:
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    return max(vocab.values(), default=-1)


def _pad_id(tokenizer) -> int:
    padding = tokenizer.padding
    if padding and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    for token in ("[PAD]", "<pad>", "<PAD>", "[pad]"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return 0


# ------------------------------------------------------------------ which input is which

@dataclass(frozen=True)
class TextInputs:
    ids: object                 # TensorInfo of the token ids
    mask: object | None         # the attention mask, when the model takes one
    types: object | None        # token type (segment) ids, fed as zeros
    length: int | None          # the fixed token length of a compiled model; None when dynamic
    batch: int | None           # the fixed batch (1 for most compiled models); None when dynamic

    @classmethod
    def of(cls, inputs: Sequence, source: str) -> "TextInputs":
        names = [i.name for i in inputs]
        shapes = {i.name: i.describe()["shape"] for i in inputs}
        ids = _find(inputs, ID_NAMES, exact=True) or next((i for i in inputs if np.dtype(i.dtype).kind in "iu"
                                                           and not _hinted(i, MASK_HINTS + TYPE_HINTS)), None)
        if ids is None or len(ids.shape) != 2 or np.dtype(ids.dtype).kind not in "iu":
            raise UsageError(f"The model '{source}' takes no token ids: its inputs are {shapes}.",
                             hint="A text model takes integer token ids [batch, tokens] (input_ids) and usually an "
                                  "attention_mask of the same shape.")
        rest = [i for i in inputs if i is not ids]
        mask = _find(rest, MASK_HINTS)
        types = _find([i for i in rest if i is not mask], TYPE_HINTS)
        unknown = [i.name for i in rest if i is not mask and i is not types]
        if unknown:
            raise UnsupportedModelError(f"The model '{source}' takes inputs {unknown} besides the token ids "
                                        f"'{ids.name}' and the mask; edgekit's text API fills only input_ids, "
                                        f"attention_mask and token_type_ids.", hint=f"Its inputs are {names}; call "
                                        f"the model with arrays instead (model({{name: array}})).")
        for extra in (mask, types):
            if extra is not None and len(extra.shape) != 2:
                raise UnsupportedModelError(f"Input '{extra.name}' of '{source}' has shape {shapes[extra.name]}; "
                                            f"the text API feeds [batch, tokens].")
        length = ids.shape[1] if isinstance(ids.shape[1], int) and ids.shape[1] > 0 else None
        batch = ids.shape[0] if isinstance(ids.shape[0], int) and ids.shape[0] > 0 else None
        return cls(ids, mask, types, length, batch)


def _hinted(info, hints) -> bool:
    return any(h in info.name.lower() for h in hints)


def _find(inputs, hints, exact: bool = False):
    for info in inputs:
        name = info.name.lower()
        if (name in hints) if exact else any(h in name for h in hints):
            return info
    return None


# ------------------------------------------------------------------ the embedding table, read from the model

def embedding_rows(model: bytes | str | os.PathLike, ids_input: str, metadata: dict | None = None) -> int | None:
    """Rows of the table the token ids index: `edgekit.text` metadata's vocab_size, else the Gather (ONNX) or
    GATHER / EMBEDDING_LOOKUP (TFLite) that takes `ids_input` (through casts and reshapes). None if not found."""
    text_meta = _text_metadata(metadata)
    if isinstance(text_meta.get("vocab_size"), int):
        return text_meta["vocab_size"]
    data = model if isinstance(model, (bytes, bytearray)) else _read(model)
    if not data:
        return None
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return _tflite_rows(bytes(data), ids_input)
    try:
        return _onnx_rows(memoryview(data), ids_input)
    except (IndexError, ValueError):  # not an ONNX protobuf after all: nothing to read, the runtime loaded it
        return None


def _text_metadata(metadata: dict | None) -> dict:
    return json_dict((metadata or {}).get("edgekit.text"))


def _read(path) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (OSError, TypeError):
        return None


_PASS_THROUGH = {"Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Clip", "Max", "Min"}
_TABLE_SOURCES = {"DequantizeLinear", "Cast", "Identity"}


def _onnx_rows(buf: memoryview, ids_input: str) -> int | None:
    """Walk ModelProto.graph (field 7) in the protobuf wire format: nodes (1) and initializers (5)."""
    graph = next((v for f, v in _fields(buf) if f == 7), None)
    if graph is None:
        return None
    nodes, tables = [], {}
    for field_no, value in _fields(graph):
        if field_no == 1:
            nodes.append(_node(value))
        elif field_no == 5:
            name, dims = _tensor_header(value)
            tables[name] = dims
    producers = {out: node for node in nodes for out in node[2]}
    reached, frontier = {ids_input}, [ids_input]
    while frontier:  # names the ids reach through casts and reshapes
        name = frontier.pop()
        for op, ins, outs, _ in nodes:
            if op in _PASS_THROUGH and ins and ins[0] == name:
                for out in outs:
                    if out not in reached:
                        reached.add(out)
                        frontier.append(out)
    for op, ins, _, axis in nodes:
        if op == "Gather" and len(ins) == 2 and ins[1] in reached and axis == 0:
            table = ins[0]
            for _ in range(4):
                if table in tables:
                    dims = tables[table]
                    return int(dims[0]) if dims else None
                node = producers.get(table)
                if node is None or node[0] not in _TABLE_SOURCES or not node[1]:
                    break
                table = node[1][0]
    return None


def _node(buf: memoryview):
    ins, outs, op, axis = [], [], "", 0
    for field_no, value in _fields(buf):
        if field_no == 1:
            ins.append(bytes(value).decode("utf-8", "replace"))
        elif field_no == 2:
            outs.append(bytes(value).decode("utf-8", "replace"))
        elif field_no == 4:
            op = bytes(value).decode("utf-8", "replace")
        elif field_no == 5:  # AttributeProto: name (1), i (3)
            attr = dict((f, v) for f, v in _fields(value) if f in (1, 3))
            if bytes(attr.get(1, b"")) == b"axis" and 3 in attr:
                axis = _signed(attr[3])
    return op, ins, outs, axis


def _tensor_header(buf: memoryview):
    dims, name = [], ""
    for field_no, value in _fields(buf):
        if field_no == 1:
            if isinstance(value, int):
                dims.append(_signed(value))
            else:  # packed
                pos = 0
                while pos < len(value):
                    v, pos = _varint(value, pos)
                    dims.append(_signed(v))
        elif field_no == 8:
            name = bytes(value).decode("utf-8", "replace")
    return name, dims


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview):
    """(field number, int for varints / memoryview for length-delimited) over one message; skips fixed fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field_no, value
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            yield field_no, buf[pos:pos + size]
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")


def _tflite_rows(data: bytes, ids_input: str) -> int | None:
    try:
        from ai_edge_litert import schema_py_generated as fb
    except ImportError:  # tflite-runtime alone ships no schema reader; metadata is the only source then
        return None
    try:
        model = fb.Model.GetRootAs(data, 0)
        graph = model.Subgraphs(0)
        codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
                 for i in range(model.OperatorCodesLength())]
        names = {graph.Inputs(i): (graph.Tensors(graph.Inputs(i)).Name() or b"").decode() for i in range(graph.InputsLength())}
        reached = {t for t, n in names.items() if n == ids_input}
        ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
        op = fb.BuiltinOperator
        # FLOOR_MOD: edgekit's compiler wraps negative Gather indices as ids mod rows before the GATHER
        passing = {op.CAST, op.RESHAPE, op.SQUEEZE, op.EXPAND_DIMS, op.FLOOR_MOD}
        for o in ops:  # operators are stored in execution order
            code = codes[o.OpcodeIndex()]
            ins = list(o.InputsAsNumpy()) if o.InputsLength() else []
            if code in passing and ins and ins[0] in reached:
                reached.update(int(t) for t in o.OutputsAsNumpy())
            table = ins[0] if code == op.GATHER and len(ins) == 2 and ins[1] in reached else \
                ins[1] if code == op.EMBEDDING_LOOKUP and len(ins) == 2 and ins[0] in reached else None
            if table is not None:
                shape = graph.Tensors(int(table)).ShapeAsNumpy()
                return int(shape[0]) if not isinstance(shape, int) and len(shape) else None
    except (AttributeError, IndexError, ValueError, TypeError):
        return None
    return None


# ------------------------------------------------------------------ the model with a tokenizer

class TextModel(Model):
    """A Model with a tokenizer: encode() for sentence embeddings, classify() for texts.

    Batches always come back batch-shaped: encode(["a"]) and encode("a") are both [1, hidden]; classify returns
    one list of Predictions per text. `notes` holds what the last call changed (truncations, empty texts).
    """

    tokenizer = None
    text_inputs: TextInputs | None = None
    max_length: int | None = None
    vocab_rows: int | None = None
    notes: list[str] = []

    def encode(self, texts: str | Sequence[str], *, normalize: bool = False, batch_size: int = BATCH) -> np.ndarray:
        """Embeddings [len(texts), hidden] in float32: the mean of the token states where the attention mask is 1
        (a model whose output is already [batch, hidden] is passed through); `normalize` scales each to unit length.
        A text with no tokens at all embeds as zeros (noted)."""
        texts = self._texts(texts)
        output = self._embedding_output()
        parts = []
        for start in range(0, len(texts), batch_size):
            ids, mask = self._tokenize(texts[start:start + batch_size], start)
            result = self._run(self._feeds(ids, mask))
            states = _dequantize(result[output.name], output)
            if states.ndim == 3:
                weights = mask[:, :states.shape[1], None].astype(np.float32)
                counts = weights.sum(axis=1)
                states = (states * weights).sum(axis=1) / np.maximum(counts, 1.0)
            parts.append(states.reshape(len(ids), -1).astype(np.float32, copy=False))
        if not parts:
            hidden = output.shape[-1] if isinstance(output.shape[-1], int) and output.shape[-1] > 0 else 0
            return np.zeros((0, hidden), np.float32)
        embeddings = np.concatenate(parts)
        if normalize:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.where(norms > 0, norms, 1.0)
        return embeddings

    def classify(self, data, top_k: int | None = None) -> list[list[Prediction]]:
        """Texts (a string or a list of strings) → the top-k (label, index, score) per text, scores softmaxed;
        anything else goes to the array classifier of Model."""
        if not _is_text(data):
            return super().classify(data, top_k)
        texts = self._texts(data)
        post = self._post()
        info = next(o for o in self.outputs if o.name == post.output)
        k = top_k or post.top_k or 1
        preds: list[list[Prediction]] = []
        for start in range(0, len(texts), BATCH):
            ids, mask = self._tokenize(texts[start:start + BATCH], start, refuse_empty=True)
            scores = _dequantize(self._run(self._feeds(ids, mask))[post.output], info)
            if scores.ndim != 2:
                raise UnsupportedModelError(f"Output '{post.output}' of '{self.source}' has shape {list(scores.shape)}; "
                                            f"classify() needs logits [batch, classes].",
                                            hint="Use encode() for token states, or name the logits output in "
                                                 "postprocess={'output': ...}.")
            preds += self._top_k(_softmax(scores), k)
        return preds

    # -- steps

    def _texts(self, texts) -> list[str]:
        self.notes = []
        if isinstance(texts, str):
            return [texts]
        if isinstance(texts, np.ndarray) and texts.dtype.kind == "U":
            texts = texts.tolist()
        if not isinstance(texts, (list, tuple)):
            raise UsageError(f"Texts must be a string or a list of strings, got {type(texts).__name__}.")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise UsageError(f"Texts must be strings; item {bad[0]} is {type(texts[bad[0]]).__name__} "
                             f"({texts[bad[0]]!r:.60}).", hint="Decode bytes first (b.decode('utf-8')).")
        return list(texts)

    def _embedding_output(self):
        floats = [o for o in self.outputs if np.dtype(o.dtype).kind == "f" or o.quantization]
        by_rank = [o for o in floats if len(o.shape) == 3] or [o for o in floats if len(o.shape) == 2]
        if not by_rank:
            raise UnsupportedModelError(f"The model '{self.source}' has no embedding output: its outputs are "
                                        f"{[(o.name, o.describe()['shape']) for o in self.outputs]}.",
                                        hint="encode() needs token states [batch, tokens, hidden] or pooled "
                                             "embeddings [batch, hidden].")
        return by_rank[0]

    def _tokenize(self, texts: list[str], offset: int, refuse_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and the mask [n, length] (int64): truncated to the model's length, padded to the fixed length
        or the longest text."""
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        lengths = [len(e.ids) for e in encodings]
        cut = [(offset + i, len(e.ids) + sum(len(o.ids) for o in e.overflowing))
               for i, e in enumerate(encodings) if e.overflowing]
        if cut:
            shown = ", ".join(f"text {i}: {n} tokens" for i, n in cut[:5]) + (" ..." if len(cut) > 5 else "")
            note = (f"{len(cut)} of {len(texts)} texts were longer than the model's {self.max_length} tokens and "
                    f"were truncated ({shown}).")
            self.notes.append(note)
            warnings.warn(note, TruncationWarning, stacklevel=3)
        empty = [offset + i for i, n in enumerate(lengths) if n == 0]
        if empty:
            if refuse_empty:
                raise UsageError(f"Text {empty[0]} has no tokens ({texts[empty[0] - offset]!r:.40}), so there is "
                                 f"nothing to classify.", hint="Drop empty texts before classifying.")
            self.notes.append(f"texts {empty} have no tokens; their embeddings are zeros.")
        width = self.text_inputs.length or max(max(lengths, default=1), 1)
        ids = np.full((len(texts), width), _pad_id(self.tokenizer), np.int64)
        mask = np.zeros((len(texts), width), np.int64)
        for row, enc in enumerate(encodings):
            n = min(len(enc.ids), width)
            ids[row, :n] = enc.ids[:n]
            mask[row, :n] = enc.attention_mask[:n]
        return ids, mask

    def _feeds(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        inputs = self.text_inputs
        feeds = {inputs.ids.name: _as_input(ids, inputs.ids)}
        if inputs.mask is not None:
            feeds[inputs.mask.name] = _as_input(mask, inputs.mask)
        if inputs.types is not None:
            feeds[inputs.types.name] = _as_input(np.zeros_like(ids), inputs.types)
        return feeds


def _as_input(values: np.ndarray, info) -> np.ndarray:
    """int64 ids/mask → the dtype the input declares (int32 in compiled TFLite, float or bool masks), range-checked."""
    dtype = np.dtype(info.dtype)
    if dtype.kind in "iu":
        bounds = np.iinfo(dtype)
        if values.size and (values.min() < bounds.min or values.max() > bounds.max):
            raise UsageError(f"Input '{info.name}' is {dtype.name}, which cannot hold the ids "
                             f"{int(values.min())}..{int(values.max())}.",
                             hint="The tokenizer does not fit this model; use the model's own tokenizer.")
    return np.ascontiguousarray(values.astype(dtype))


def _dequantize(values, info) -> np.ndarray:
    from edgekit.app import _dequantize as dequantize
    return dequantize(values, info)


def _softmax(x: np.ndarray) -> np.ndarray:
    from edgekit.app import softmax
    return softmax(x)


def _is_text(data) -> bool:
    if isinstance(data, str):
        return True
    if isinstance(data, np.ndarray):
        return data.dtype.kind == "U"
    return isinstance(data, (list, tuple)) and (not data or all(isinstance(d, str) for d in data))


def attach_tokenizer(model: Model, tokenizer: str | os.PathLike | bytes, model_data: bytes | str | os.PathLike,
                     max_length: int | None = None) -> TextModel:
    """Model + tokenizer → TextModel, with every check made before any run: the model takes token ids, the
    tokenizer's ids fit the embedding table, truncation at the model's length. Closes the session on failure."""
    try:
        return _attach(model, tokenizer, model_data, max_length)
    except Exception:
        model.close()
        raise


def check_tokenizer(tokenizer: str | os.PathLike | bytes, model_data: bytes, session) -> tuple[bytes, dict]:
    """For bundles: the tokenizer file's bytes and a summary, after the checks load() makes (it parses, the model
    takes token ids, its ids fit the embedding table)."""
    data = bytes(tokenizer) if isinstance(tokenizer, (bytes, bytearray)) else None
    if data is None:
        path = Path(tokenizer)
        if not path.is_file():
            raise UsageError(f"The tokenizer file '{path}' does not exist.", hint="Give the model's tokenizer.json.")
        data = path.read_bytes()
    tok, label = load_tokenizer(data if isinstance(tokenizer, (bytes, bytearray)) else tokenizer)
    inputs = TextInputs.of(session.inputs, session.path)
    rows, largest = _check_vocabulary(tok, label, inputs, model_data, dict(session.metadata or {}), session.path)
    return data, {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                  "vocabulary": largest + 1, "embedding_rows": rows}


def _check_vocabulary(tok, label: str, inputs: TextInputs, model_data, metadata: dict, source: str):
    rows = embedding_rows(model_data, inputs.ids.name, metadata)
    largest = _largest_id(tok)
    if rows is not None and largest >= rows:
        raise UsageError(f"The tokenizer '{label}' has ids up to {largest} ({tok.get_vocab_size(with_added_tokens=True)}"
                         f" tokens), but the embedding table of '{source}' has {rows} rows: ids {rows} and above "
                         f"would index outside it.", hint="Use the tokenizer the model was trained with (its "
                         "tokenizer.json), or a model whose vocabulary holds the tokenizer's.")
    if largest > np.iinfo(inputs.ids.dtype).max:
        raise UsageError(f"The tokenizer '{label}' has ids up to {largest}, which the {np.dtype(inputs.ids.dtype).name} "
                         f"input '{inputs.ids.name}' cannot hold.", hint="Use the model's own tokenizer.")
    return rows, largest


def _attach(model: Model, tokenizer, model_data, max_length) -> TextModel:
    tok, label = load_tokenizer(tokenizer)
    inputs = TextInputs.of(model.inputs, model.source)
    metadata = dict(model.session.metadata or {})
    rows, largest = _check_vocabulary(tok, label, inputs, model_data, metadata, model.source)
    declared = _text_metadata(metadata).get("max_length")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise UsageError(f"max_length must be a positive number of tokens, got {max_length!r}.")
    # a fixed token length, else the longest text the model declares (a dynamic model's position table ends there)
    longest = inputs.length or (declared if isinstance(declared, int) else None)
    if max_length is not None and longest is not None and max_length > longest:
        raise UsageError(f"max_length={max_length} is longer than the {longest} tokens the model "
                         f"'{model.source}' takes.", hint=f"Give at most {longest}.")
    limit = max_length or inputs.length or (declared if isinstance(declared, int) else None) or \
        (tok.truncation or {}).get("max_length")
    tok.no_padding()
    if limit:
        tok.enable_truncation(int(limit))
    else:
        tok.no_truncation()
    text_model = TextModel(model.session, model.manifest, model.preprocessing, model.postprocessing,
                           model.labels or _metadata_labels(metadata), model.source, model.checks)
    text_model.tokenizer, text_model.text_inputs = tok, inputs
    text_model.max_length, text_model.vocab_rows = (int(limit) if limit else None), rows
    text_model.notes = []
    text_model.checks = {**model.checks, "tokenizer": label, "vocabulary": (
        f"{largest + 1} ids fit the {rows}-row embedding table" if rows is not None else
        "not checked: no embedding table found in the model or its metadata")}
    return text_model


def _metadata_labels(metadata: dict) -> list[str] | None:
    labels = _text_metadata(metadata).get("labels")
    return [str(x) for x in labels] if isinstance(labels, list) and labels else None
