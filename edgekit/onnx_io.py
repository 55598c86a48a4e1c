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


# ---------------------------------------------------------------- validity

#: the checks `model_problems` runs, for reports that say what "valid" rests on
ONNX_CHECKS = ["edgekit graph checks (one writer per tensor, no cycles)", "onnx.checker"]


def model_problems(model) -> list[str]:
    """Why an ONNX model is invalid (empty: it is valid as far as the checks go).

    First edgekit's own graph checks, in every graph and subgraph: a tensor written by two nodes (or a node writing
    a graph input or initializer), and nodes that depend on each other in a cycle. Then, if those pass,
    onnx.checker on the nodes in dependency order (ONNX Runtime runs unsorted graphs; the checker alone would
    refuse them).
    """
    onnx = require("onnx", "Checking ONNX models")
    problems = _graph_problems(model.graph, "the graph")
    if problems:
        return problems
    order = dependency_order(model.graph)
    if order != list(range(len(model.graph.node))):
        sorted_model = onnx.ModelProto()
        sorted_model.CopyFrom(model)
        del sorted_model.graph.node[:]
        sorted_model.graph.node.extend(model.graph.node[i] for i in order)
        model = sorted_model
    if model.ByteSize() > EXTERNAL_DATA_THRESHOLD:
        return []  # the checker cannot take a message this large; the graph checks above are what there is
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError, and InferenceError from its shape checks
        text = str(exc).strip().splitlines()
        return [f"onnx.checker: {text[0][:400] if text else type(exc).__name__}"]
    return []


def dependency_order(graph) -> list[int] | None:
    """Node indices in an order where each node comes after the nodes it reads (stable); None if there is a cycle.

    Names that no node of this graph writes (inputs, initializers, outer-scope values) count as ready."""
    produced = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    waiting = [sum(1 for x in set(n.input) if x in produced and produced[x] != i) for i, n in enumerate(graph.node)]
    readers: dict[int, list[int]] = {}
    for i, n in enumerate(graph.node):
        for x in set(n.input):
            if x in produced and produced[x] != i:
                readers.setdefault(produced[x], []).append(i)
    import heapq
    ready = [i for i, w in enumerate(waiting) if w == 0 and not _reads_itself(graph.node[i])]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in readers.get(i, []):
            waiting[j] -= 1
            if waiting[j] == 0 and not _reads_itself(graph.node[j]):
                heapq.heappush(ready, j)
    return order if len(order) == len(graph.node) else None


def _reads_itself(node) -> bool:
    return bool(set(node.input) & set(o for o in node.output if o))


def _graph_problems(graph, where: str) -> list[str]:
    problems = []
    label = [n.name or f"{n.op_type} #{i}" for i, n in enumerate(graph.node)]
    outer = {i.name: "graph input" for i in graph.input} | {t.name: "initializer" for t in graph.initializer}
    writer: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in node.output:
            if not name:
                continue
            if name in writer:
                problems.append(f"tensor '{name}' in {where} is written by two nodes, '{label[writer[name]]}' and "
                                f"'{label[i]}'")
            elif name in outer:
                problems.append(f"node '{label[i]}' in {where} writes '{name}', which is a {outer[name]}")
            writer.setdefault(name, i)
    if not problems and dependency_order(graph) is None:
        problems.append(f"nodes in {where} depend on each other in a cycle: " + _cycle(graph, writer, label))
    for i, node in enumerate(graph.node):
        for attr in node.attribute:
            subgraphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for sub in subgraphs:
                problems += _graph_problems(sub, f"the '{attr.name}' subgraph of node '{label[i]}'")
    return problems


def _cycle(graph, writer: dict, label: list) -> str:
    """One cycle, as 'A → B → A' by node names."""
    state: dict[int, int] = {}

    def visit(i: int, path: list) -> list | None:
        state[i] = 1
        for x in graph.node[i].input:
            j = writer.get(x)
            if j is None:
                continue
            if state.get(j) == 1:
                return path[path.index(j):] + [j] if j in path else [i, i]
            if j not in state:
                found = visit(j, path + [j])
                if found:
                    return found
        state[i] = 2
        return None

    for start in range(len(graph.node)):
        if start not in state:
            found = visit(start, [start])
            if found:
                # the walk follows inputs back to their writers, so reverse it to read in data-flow order
                return " → ".join(f"'{label[k]}'" for k in reversed(found))
    return "(no single cycle found)"


# ------------------------------------------------------------------ metadata and outputs (shared by export, quantize, optimize, compare)

def set_metadata(proto, key: str, value: str) -> None:
    """Set one `metadata_props` entry of a model (or node), replacing an existing one with the same key."""
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    proto.metadata_props.add(key=key, value=value)


def opset_of(model) -> int:
    """The default-domain (ai.onnx) opset a model imports; 0 when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def all_nodes(graph):
    """Every node of a graph and, depth first, of the subgraphs its If/Loop/Scan attributes hold."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from all_nodes(attr.g)
            for g in attr.graphs:
                yield from all_nodes(g)


def module_path_of(node) -> str | None:
    """The PyTorch module path a node came from: dynamo's name scopes, or TorchScript's '/a/a.0/Op' names."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            import ast
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                continue
            scopes = [s for s in scopes[:-1] if s]
            return scopes[-1] if scopes else None
    if node.name.startswith("/") and node.name.count("/") >= 2:
        return node.name.strip("/").split("/")[-2]
    return None


def flatten_outputs(value) -> list:
    """A module's (nested tuple/list/dict) result as a flat list, in the order the ONNX exporter names outputs."""
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in flatten_outputs(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in flatten_outputs(v)]
    return [value]
