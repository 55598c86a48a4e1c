"""converters/torch_spec.py: each accepted SPEC form resolves to a module in eval mode with its example inputs, weights
load as a checked state dict, and each bad form is one UsageError naming what to give instead, with nothing written."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.converters.torch_spec import InputSpec, load_spec, load_weights  # noqa: E402
from edgekit.errors import InvalidModelError, UsageError  # noqa: E402

NET = textwrap.dedent("""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x, mask, scale=1.0):
            return self.fc(x) * mask * scale

    def make():
        torch.manual_seed(0)
        return Net()

    def needs_args(width):
        return Net()

    def not_a_module():
        return 42

    CONSTANT = 3
""")


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def files(folder) -> set:
    return {p.name for p in folder.iterdir()}


# ------------------------------------------------------------------ accepted forms

def test_a_zoo_name_resolves_with_the_entrys_inputs_and_output_names():
    from edgekit.zoo import ZOO
    source = load_spec("zoo:lenet")
    entry = ZOO["lenet"]
    assert isinstance(source.module, torch.nn.Module) and not source.module.training
    assert source.inputs == [InputSpec(n, tuple(s), d) for n, s, d in entry.inputs]
    assert source.output_names == list(entry.outputs) and source.spec == "zoo:lenet"


def test_a_zoo_entrys_declared_dynamic_axes_come_along():
    assert load_spec("zoo:transformer").dynamic_axes == {"tokens": {1: "seq"}}


def test_a_file_factory_resolves_and_its_required_forward_arguments_are_the_inputs(net_file, tmp_path):
    before_path, before = list(sys.path), files(tmp_path)
    source = load_spec(f"{net_file}:make", input_shapes=["1x4", "1x2"])
    assert type(source.module).__name__ == "Net" and not source.module.training
    assert source.inputs == [InputSpec("x", (1, 4)), InputSpec("mask", (1, 2))]  # `scale` has a default: not an input
    assert source.output_names is None
    assert sys.path == before_path  # the file's folder is on sys.path only while it is imported
    assert files(tmp_path) == before


def test_a_module_factory_resolves_from_an_importable_package(net_file, monkeypatch):
    monkeypatch.syspath_prepend(str(net_file.parent))
    monkeypatch.delitem(sys.modules, "net", raising=False)
    source = load_spec("net:make", input_shapes=["2x4", "2x2"])
    assert source.inputs == [InputSpec("x", (2, 4)), InputSpec("mask", (2, 2))]


def test_input_shapes_take_names_and_dtypes_when_given(net_file):
    source = load_spec(f"{net_file}:make", input_shapes=["a=1x4", "b=1x2:int64"])
    assert source.inputs == [InputSpec("a", (1, 4)), InputSpec("b", (1, 2), "int64")]


def test_an_exported_program_resolves_with_its_example_inputs(tmp_path):
    net = torch.nn.Linear(3, 5).eval()
    torch.export.save(torch.export.export(net, (torch.zeros(2, 3),)), tmp_path / "m.pt2")
    source = load_spec(str(tmp_path / "m.pt2"))
    assert source.inputs == [InputSpec("input", (2, 3), "float32")]
    x = torch.ones(2, 3)
    np.testing.assert_allclose(source.module(x).detach().numpy(), net(x).detach().numpy(), rtol=1e-6)


def test_a_torchscript_archive_needs_trust_and_then_input_shapes(tmp_path):
    torch.jit.script(torch.nn.Linear(3, 5)).save(str(tmp_path / "m.pt"))
    with pytest.raises(UsageError, match="TorchScript archive, which contains code that would run on load"):
        load_spec(str(tmp_path / "m.pt"))
    with pytest.raises(UsageError, match=r"does not declare example input shapes for \['input'\]"):
        load_spec(str(tmp_path / "m.pt"), trust_torchscript=True)
    source = load_spec(str(tmp_path / "m.pt"), input_shapes=["1x3"], trust_torchscript=True)
    assert source.inputs == [InputSpec("input", (1, 3))]


# ------------------------------------------------------------------ weights

@pytest.mark.parametrize("kind", ["pt", "safetensors", "wrapped"])
def test_weights_load_from_a_state_dict_in_any_accepted_file(net_file, tmp_path, kind):
    torch.manual_seed(7)
    trained = torch.nn.Linear(4, 2)
    state = {f"fc.{k}": v for k, v in trained.state_dict().items()}
    path = tmp_path / f"w.{kind}"
    if kind == "safetensors":
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        torch.save({"state_dict": state} if kind == "wrapped" else state, path)
    source = load_spec(f"{net_file}:make", weights=str(path), input_shapes=["1x4", "1x2"])
    assert torch.equal(source.module.fc.weight, trained.weight) and torch.equal(source.module.fc.bias, trained.bias)


def test_weights_that_do_not_fit_list_every_kind_of_mismatch(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Linear(2, 1))
    torch.save({"0.weight": torch.zeros(3, 4), "0.bias": torch.zeros(2), "extra": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(UsageError) as err:
        load_weights(model, str(tmp_path / "w.pt"))
    text = str(err.value)
    assert "missing keys ['1.bias', '1.weight']" in text and "unexpected keys ['extra']" in text
    assert "0.weight: file (3, 4) vs model (2, 4)" in text
    assert torch.count_nonzero(model[0].bias) > 0  # nothing was loaded


def test_weights_files_that_hold_no_state_dict_are_refused(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(UsageError, match="does not hold a state dict"):
        load_weights(torch.nn.Linear(1, 1), str(tmp_path / "list.pt"))
    (tmp_path / "m.onnx").write_bytes(b"\x08\x08\x12\x04test")
    with pytest.raises(UsageError, match="is a onnx file, not a weights file"):
        load_weights(torch.nn.Linear(1, 1), str(tmp_path / "m.onnx"))
    with pytest.raises(UsageError, match="does not exist"):
        load_weights(torch.nn.Linear(1, 1), str(tmp_path / "missing.pt"))


def test_a_pickle_that_needs_more_than_tensors_is_refused_not_unpickled(tmp_path):
    torch.save({"w": torch.zeros(1), "meta": InputSpec("x", (1,))}, tmp_path / "obj.pt")
    with pytest.raises(InvalidModelError, match="never falls back to unsafe unpickling"):
        load_weights(torch.nn.Linear(1, 1), str(tmp_path / "obj.pt"))


# ------------------------------------------------------------------ bad forms: one UsageError each, nothing written

BAD = [
    ("just-a-name", "Cannot read the model spec 'just-a-name'"),
    ("{dir}/missing.py:make", "The file '{dir}/missing.py' in spec"),
    ("{dir}/net.py:nope", "'{dir}/net.py' has no callable named 'nope'"),
    ("{dir}/net.py:CONSTANT", "has no callable named 'CONSTANT'"),
    ("{dir}/net.py:needs_args", "with no arguments failed"),
    ("{dir}/net.py:not_a_module", "returned a int, not a torch.nn.Module"),
    ("{dir}/broken.py:make", "Importing '{dir}/broken.py' failed: ZeroDivisionError"),
    ("no_such_pkg_xyz.models:make", "Cannot import the module 'no_such_pkg_xyz.models'"),
    ("zoo:nope", "There is no zoo model named 'nope'"),
    ("{dir}/weights.pt", "holds weights or a pickled object, not a model definition"),
    ("{dir}/weights.safetensors", "holds weights or a pickled object, not a model definition"),
    ("{dir}/model.onnx", "is already an onnx model; there is nothing to export"),
    ("{dir}/net.py:make", r"does not declare example input shapes for \['x', 'mask'\]"),
]


@pytest.mark.parametrize("spec, message", BAD, ids=[b[0].replace("{dir}/", "") for b in BAD])
def test_each_bad_spec_is_one_usage_error_and_writes_nothing(tmp_path, net_file, spec, message):
    from safetensors.torch import save_file
    (tmp_path / "broken.py").write_text("1 / 0\n")
    torch.save({"w": torch.zeros(1)}, tmp_path / "weights.pt")
    save_file({"w": torch.zeros(1)}, tmp_path / "weights.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"\x08\x08\x12\x04test")
    before_files, before_path, before_modules = files(tmp_path), list(sys.path), set(sys.modules)
    with pytest.raises(UsageError, match=message.replace("{dir}", str(tmp_path))) as err:
        load_spec(spec.replace("{dir}", str(tmp_path)))
    assert err.value.hint
    assert files(tmp_path) == before_files
    assert sys.path == before_path
    assert not {m for m in set(sys.modules) - before_modules if m.startswith("_edgekit_user_")} - {
        f"_edgekit_user_{abs(hash(str((tmp_path / 'net.py').resolve())))}"}  # a failed import leaves no module


def test_shapes_that_do_not_fit_the_inputs_are_refused(net_file):
    with pytest.raises(UsageError, match=r"takes 2 input\(s\) \['x', 'mask'\], but 1 --input-shape"):
        load_spec(f"{net_file}:make", input_shapes=["1x4"])
    with pytest.raises(UsageError, match="has rank 4"):
        load_spec("zoo:lenet", input_shapes=["1x28x28"])
