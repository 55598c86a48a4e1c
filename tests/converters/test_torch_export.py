"""Export: every zoo model with both exporters, dynamic axes, and every kind of bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

from edgekit.converters.torch_export import export
from edgekit.errors import InvalidModelError, UsageError, ValidationError
from edgekit.zoo import ZOO

SMALL = {"resnet": ["1x3x64x64"], "mobilenet": ["1x3x64x64"]}


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_every_zoo_model_exports_and_validates(tmp_path, name, exporter):
    out = tmp_path / f"{name}.onnx"
    result = export(f"zoo:{name}", out, input_shapes=SMALL.get(name), exporter=exporter)
    assert result.valid and out.is_file()
    assert result.exporter == exporter
    model = onnx.load(out)
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["edgekit.source"] == f"zoo:{name}"
    assert json.loads(meta["edgekit.validation"])["cases"][0]["ok"]
    assert [o.name for o in model.graph.output] == list(ZOO[name].outputs)


def test_module_paths_are_recorded(tmp_path):
    for exporter in ("dynamo", "torchscript"):
        out = tmp_path / f"lenet_{exporter}.onnx"
        export("zoo:lenet", out, exporter=exporter)
        model = onnx.load(out)
        paths = {n.op_type: [] for n in model.graph.node}
        for n in model.graph.node:
            paths[n.op_type] += [p.value for p in n.metadata_props if p.key == "edgekit.module"]
        assert paths["Conv"] == ["features.0", "features.3", "features.6"], exporter


def test_dynamic_batch_validated_at_two_sizes(tmp_path):
    result = export("zoo:mlp", tmp_path / "m.onnx", dynamic_batch=True)
    cases = {v["case"] for v in result.validation}
    assert len(cases) == 2 and any("x=3x64" in c for c in cases)
    model = onnx.load(tmp_path / "m.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("name,axis", [("gru", "x:1=seq"), ("transformer", "tokens:1=seq")])
def test_dynamic_sequence_length(tmp_path, name, axis):
    result = export(f"zoo:{name}", tmp_path / "m.onnx", dynamic_axes=[axis])
    assert result.valid
    assert any("33" in v["case"] for v in result.validation)


def test_data_dependent_control_flow_is_caught_by_validation(tmp_path):
    (tmp_path / "net.py").write_text(textwrap.dedent("""
        import torch
        class Net(torch.nn.Module):
            def forward(self, x):
                if x.sum() > 0:          # data-dependent: exporters trace one branch only
                    return x * 2
                return x - 1
        def make():
            return Net()
    """))
    logs = []
    with pytest.raises(ValidationError) as err:
        export(f"{tmp_path / 'net.py'}:make", tmp_path / "n.onnx", input_shapes=["2x3"], log=logs.append)
    assert "dynamo" in str(err.value) and "torchscript" in str(err.value)
    assert any("trying the TorchScript exporter" in m for m in logs)
    assert not (tmp_path / "n.onnx").exists()


def test_weights_safetensors_and_pt(tmp_path):
    import torch
    from safetensors.torch import save_file
    net = tmp_path / "net.py"
    net.write_text("import torch\ndef make():\n    torch.manual_seed(5)\n    return torch.nn.Linear(4, 2)\n")
    torch.manual_seed(9)
    trained = torch.nn.Linear(4, 2)
    save_file(trained.state_dict(), tmp_path / "w.safetensors")
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    x = np.ones((1, 4), np.float32)
    expected = trained(torch.from_numpy(x)).detach().numpy()
    import onnxruntime as ort
    for w in ("w.safetensors", "w.pt"):
        out = tmp_path / f"{w}.onnx"
        export(f"{net}:make", out, weights=str(tmp_path / w), input_shapes=["1x4"])
        got = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5)


# ------------------------------------------------------------------ bad input

def test_unknown_module_factory_and_zoo(tmp_path):
    with pytest.raises(UsageError, match="Cannot import the module 'no_such_pkg_xyz.models'"):
        export("no_such_pkg_xyz.models:make", tmp_path / "a.onnx")
    with pytest.raises(UsageError, match="has no callable named 'nope'"):
        export("edgekit.zoo.cnn:nope", tmp_path / "a.onnx")
    with pytest.raises(UsageError, match="no zoo model named 'nope'"):
        export("zoo:nope", tmp_path / "a.onnx")
    assert not list(tmp_path.iterdir())


def test_factory_returning_non_module(tmp_path):
    (tmp_path / "f.py").write_text("def make():\n    return 42\n")
    with pytest.raises(UsageError, match="returned a int, not a torch.nn.Module"):
        export(f"{tmp_path / 'f.py'}:make", tmp_path / "a.onnx", input_shapes=["1x2"])


def test_wrong_number_and_rank_of_shapes(tmp_path):
    with pytest.raises(UsageError, match="takes 1 input"):
        export("zoo:lenet", tmp_path / "a.onnx", input_shapes=["1x1x28x28", "1x2"])
    with pytest.raises(UsageError, match="has rank 4"):
        export("zoo:lenet", tmp_path / "a.onnx", input_shapes=["1x28x28"])
    with pytest.raises(UsageError, match="Cannot read the shape"):
        export("zoo:lenet", tmp_path / "a.onnx", input_shapes=["1x1x28xbig"])
    with pytest.raises(UsageError, match="failed on example inputs"):
        export("zoo:lenet", tmp_path / "a.onnx", input_shapes=["1x3x28x28"])
    assert not list(tmp_path.iterdir())


def test_weights_with_missing_and_unexpected_keys(tmp_path):
    import torch
    torch.save({"features.0.weight": torch.zeros(32, 1, 3, 3), "bogus.weight": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(UsageError) as err:
        export("zoo:lenet", tmp_path / "a.onnx", weights=str(tmp_path / "w.pt"))
    text = str(err.value)
    assert "missing keys" in text and "features.3.weight" in text and "unexpected keys ['bogus.weight']" in text
    assert not (tmp_path / "a.onnx").exists()


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    sentinel = tmp_path / "pwned"
    script = textwrap.dedent(f"""
        import os, pickle, torch
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {sentinel}",))
        torch.save({{"weight": Evil()}}, "{tmp_path / 'evil.pt'}")
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    with pytest.raises(InvalidModelError, match="never falls back to unsafe unpickling"):
        export("zoo:mlp", tmp_path / "a.onnx", weights=str(tmp_path / "evil.pt"))
    assert not sentinel.exists()
    proc = _cli("export", "zoo:mlp", "-o", str(tmp_path / "b.onnx"), "--weights", str(tmp_path / "evil.pt"))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert not sentinel.exists() and not (tmp_path / "b.onnx").exists()


def test_output_equal_to_input_and_unwritable_dir(tmp_path):
    (tmp_path / "f.py").write_text("import torch\ndef make():\n    return torch.nn.Linear(2, 2)\n")
    before = (tmp_path / "f.py").read_bytes()
    with pytest.raises(UsageError, match="same file as the input"):
        export(f"{tmp_path / 'f.py'}:make", tmp_path / "f.py", input_shapes=["1x2"])
    assert (tmp_path / "f.py").read_bytes() == before
    with pytest.raises(UsageError, match="does not exist"):
        export("zoo:mlp", tmp_path / "missing_dir" / "a.onnx")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    if os.access(ro, os.W_OK):  # root ignores mode bits: use a read-only mount instead
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)]).returncode:
            pytest.skip("cannot make an unwritable directory here (root without mount rights)")
    try:
        proc = _cli("export", "zoo:mlp", "-o", str(ro / "a.onnx"))
        assert proc.returncode == 7 and "not writable" in proc.stderr, proc.stderr
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_validation_failure_keeps_previous_file(tmp_path):
    (tmp_path / "f.py").write_text(textwrap.dedent("""
        import torch
        class Branchy(torch.nn.Module):
            def forward(self, x):
                return x * 2 if x.sum() > 0 else x - 1   # traced for one branch only
        def make():
            return Branchy()
    """))
    out = tmp_path / "a.onnx"
    out.write_bytes(b"previous complete file")
    with pytest.raises(ValidationError, match="Nothing was written"):
        export(f"{tmp_path / 'f.py'}:make", out, input_shapes=["2x3"])
    assert out.read_bytes() == b"previous complete file"
    with pytest.raises(ValidationError, match="kept"):
        export(f"{tmp_path / 'f.py'}:make", out, input_shapes=["2x3"], keep_invalid=True)
    assert onnx.load(out).graph.node
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgekit-tmp")]


def test_cli_exit_codes_and_messages(tmp_path):
    proc = _cli("export", "zoo:nope", "-o", str(tmp_path / "a.onnx"))
    assert proc.returncode == 2 and "usage error" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("export", "zoo:mlp", "-o", str(tmp_path / "a.onnx"), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["valid"] is True
