"""A device installs numpy + one runtime: edgekit and edgekit.runtimes must work without torch and onnx."""
from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in {blocked!r}:
                raise ImportError('blocked for this test: ' + name)
    sys.meta_path.insert(0, Block())
""")


def run_blocked(code: str, blocked=("torch", "onnx", "onnxscript")) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK.format(blocked=set(blocked)) + textwrap.dedent(code)],
                          capture_output=True, text=True)


def test_runtimes_import_without_torch_or_onnx():
    proc = run_blocked("""
        import edgekit, edgekit.runtimes, edgekit.metrics, edgekit.inputs, edgekit.fileio
        import edgekit.bundle.read, edgekit.bundle.keys, edgekit.loading  # the device side of a bundle
        assert 'torch' not in sys.modules and 'onnx' not in sys.modules
        print('ok')
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_onnx_model_runs_without_torch_or_onnx_package(zoo_onnx):
    path = zoo_onnx("mlp")
    proc = run_blocked(f"""
        import numpy as np, edgekit.runtimes as rt
        with rt.load({str(path)!r}) as s:
            out = s.run(np.zeros((1, 64), np.float32))
        assert out['logits'].shape == (1, 10)
        assert 'torch' not in sys.modules and 'onnx' not in sys.modules
        print('ok')
    """)
    assert proc.returncode == 0, proc.stderr


def test_missing_torch_gives_install_hint():
    proc = run_blocked("""
        from edgekit.cli import main
        main(['export', 'zoo:mlp', '-o', '/tmp/never-written.onnx'])
    """)
    assert proc.returncode == 7, proc.stderr
    assert 'pip install "edgekit[export]"' in proc.stderr and "Traceback" not in proc.stderr


def test_signed_encrypted_bundle_loads_without_torch_or_onnx(zoo_onnx, tmp_path):
    """The device side of a bundle: open, check the signature, decrypt, run, with torch and onnx unimportable."""
    from edgekit.bundle import bundle, keygen
    keys = keygen(tmp_path / "release", aes=True)
    path = bundle(zoo_onnx("mlp"), tmp_path / "mlp.ekb", sign=keys["private_key"], encrypt=True,
                  key_file=keys["aes_key"]).path
    proc = run_blocked(f"""
        import numpy as np, edgekit
        model = edgekit.load({str(path)!r}, public_key={keys['public_key']!r}, require_signature=True,
                             key_file={keys['aes_key']!r})
        out = model(np.zeros((1, 64), np.float32))
        assert out['logits'].shape == (1, 10), out
        assert model.checks['signature'].startswith('valid'), model.checks
        assert 'torch' not in sys.modules and 'onnx' not in sys.modules
        print('ok')
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
