"""Bundles: what the manifest records, signing, encryption, and the refusal of every kind of tampering."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
from edgekit import bundle as B
from edgekit.cli import main
from edgekit.errors import InvalidModelError, UsageError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtimes"))
import rt_models  # noqa: E402  (tests/runtimes: the hand-built .tflite models)


def make_onnx(path: Path, metadata: dict | None = None) -> Path:
    """y = softmax-free logits of a 1x3x4x4 image: Flatten → MatMul (48 → 3)."""
    import onnx
    import onnx.parser
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,3,4,4] image) => (float[1,3] logits) {
      flat = Flatten(image)
      logits = MatMul(flat, w)
    }""")
    w = np.random.default_rng(0).standard_normal((48, 3)).astype(np.float32)
    model.graph.initializer.append(onnx.numpy_helper.from_array(w, "w"))
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture
def onnx_model(tmp_path):
    return make_onnx(tmp_path / "tiny.onnx", {
        "edgekit.quantization": json.dumps({"mode": "static-int8", "calibration": "digits", "nodes": 3}),
        "edgekit.validation": json.dumps({"reference": "pytorch", "cases": [{"max_abs": 1e-6, "ok": True}]}),
        "edgekit.version": "0.1.0"})


@pytest.fixture
def keys(tmp_path):
    return B.keygen(tmp_path / "release", aes=True)


def _x(seed=1):
    return np.random.default_rng(seed).standard_normal((1, 3, 4, 4)).astype(np.float32)


def _no_runtime(monkeypatch):
    """Fail the test if anything reaches a runtime (refusals must happen before)."""
    import edgekit.runtimes

    def refuse(*args, **kwargs):
        raise AssertionError("a refused bundle reached the runtime")
    monkeypatch.setattr(edgekit.runtimes, "load", refuse)


def _rewrite(src: Path, dest: Path, change) -> Path:
    """Copy a bundle entry by entry, letting `change(name, data)` return new bytes (or None to drop it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)
    return dest


def _flip(data: bytes, at: int | None = None) -> bytes:
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


# ------------------------------------------------------------------ keys

def test_keygen_writes_private_keys_0600_and_never_overwrites(tmp_path):
    result = B.keygen(tmp_path / "dev", aes=True)
    for name in ("dev.key", "dev.aes"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert (tmp_path / "dev.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert len(bytes.fromhex((tmp_path / "dev.aes").read_text().strip())) == 32
    before = (tmp_path / "dev.key").read_bytes()
    with pytest.raises(UsageError, match="already exist"):
        B.keygen(tmp_path / "dev")
    assert (tmp_path / "dev.key").read_bytes() == before
    again = B.keygen(tmp_path / "dev", force=True)
    assert again["public_key_id"] != result["public_key_id"]
    assert stat.S_IMODE((tmp_path / "dev.key").stat().st_mode) == 0o600


def test_aes_key_forms(tmp_path, monkeypatch):
    secret = os.urandom(32)
    (tmp_path / "hex").write_text(secret.hex() + "\n")
    (tmp_path / "raw").write_bytes(secret)
    import base64
    assert B.read_aes_key(key_file=tmp_path / "hex") == secret
    assert B.read_aes_key(key_file=tmp_path / "raw") == secret
    assert B.read_aes_key(key=base64.b64encode(secret).decode()) == secret
    monkeypatch.setenv(B.KEY_ENV, secret.hex())
    assert B.read_aes_key() == secret
    with pytest.raises(UsageError, match="not a 256-bit AES key"):
        B.read_aes_key(key="0123")


# ------------------------------------------------------------------ the manifest

def test_manifest_records_io_processing_labels_quantization_and_hashes(onnx_model, tmp_path):
    result = B.bundle(onnx_model, tmp_path / "tiny.ekb", labels=["cat", "dog", "bird"],
                      preprocess={"resize": "4x4", "layout": "NCHW", "scale": "1/255", "mean": "0.5,0.5,0.5",
                                  "std": [0.25]},
                      postprocess={"softmax": "true", "top_k": 2})
    m = result.manifest
    assert m["format"] == "edgekit-bundle" and m["edgekit_version"] == edgekit.__version__
    assert m["inputs"] == [{"name": "image", "dtype": "float32", "shape": [1, 3, 4, 4], "layout": None}]
    assert m["outputs"][0]["name"] == "logits"
    assert m["preprocess"]["resize"] == [4, 4] and m["preprocess"]["scale"] == pytest.approx(1 / 255)
    assert m["postprocess"] == {"output": "logits", "softmax": True, "top_k": 2}
    assert m["labels"] == ["cat", "dog", "bird"]
    assert m["quantization"]["declared"]["mode"] == "static-int8"
    assert m["quantization"]["weight_dtypes"] == {"float32": 1}
    assert m["validation"]["reference"] == "pytorch"
    data = onnx_model.read_bytes()
    assert m["model"]["sha256"] == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(result.path) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "model.onnx"]
        assert json.loads(zf.read("manifest.json")) == m
        assert m["files"]["model.onnx"]["sha256"] == hashlib.sha256(zf.read("model.onnx")).hexdigest()


def test_preprocessing_from_toml_file(onnx_model, tmp_path):
    (tmp_path / "pre.toml").write_text('labels = ["a", "b", "c"]\n[preprocess]\nlayout = "NCHW"\nscale = 0.5\n'
                                       '[postprocess]\nsoftmax = true\n')
    m = B.bundle(onnx_model, tmp_path / "t.ekb", preprocess=tmp_path / "pre.toml").manifest
    assert m["preprocess"]["scale"] == 0.5 and m["postprocess"]["softmax"] is True and m["labels"] == ["a", "b", "c"]


@pytest.mark.parametrize("options, message", [
    ({"preprocess": {"layout": "NCHW", "sizes": "4x4"}}, "Unknown preprocessing option"),
    ({"preprocess": {"layout": "NHW"}}, "has 3 axes"),
    ({"preprocess": {"layout": "NCHW", "mean": "1,2"}}, "has 3 channels"),
    ({"labels": ["a", "b"]}, "2 labels but output 'logits' has 3 classes"),
    ({"preprocess": {"input": "nope", "layout": "NCHW"}}, "no input named 'nope'"),
])
def test_bad_processing_is_a_usage_error_and_writes_nothing(onnx_model, tmp_path, options, message):
    with pytest.raises(UsageError, match=message):
        B.bundle(onnx_model, tmp_path / "bad.ekb", **options)
    assert not (tmp_path / "bad.ekb").exists()


def test_bench_records_figures_and_environment(onnx_model, tmp_path):
    m = B.bundle(onnx_model, tmp_path / "b.ekb", bench=True, bench_time=0.05).manifest
    bench = m["benchmark"]
    assert bench["runtime"] == "onnxruntime" and bench["latency"]["runs"] >= 10 and bench["latency"]["p50_ms"] > 0
    assert bench["environment"]["python"] and "packages" in bench["environment"]


def test_refuses_non_models(tmp_path, onnx_model):
    ekb = B.bundle(onnx_model, tmp_path / "a.ekb").path
    with pytest.raises(UsageError, match="already a bundle"):
        B.bundle(ekb, tmp_path / "b.ekb")
    (tmp_path / "junk.onnx").write_bytes(b"\x00" * 10)
    with pytest.raises(InvalidModelError):
        B.bundle(tmp_path / "junk.onnx", tmp_path / "c.ekb")


# ------------------------------------------------------------------ signing and encryption round trips

def test_signed_encrypted_bundle_loads_and_matches_the_plain_model(onnx_model, tmp_path, keys):
    out = B.bundle(onnx_model, tmp_path / "s.ekb", sign=keys["private_key"], encrypt=True, key_file=keys["aes_key"]).path
    raw = out.read_bytes()
    assert onnx_model.read_bytes()[:64] not in raw  # encrypted at rest
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "manifest.sig", "model.onnx.enc"]
    report = B.verify(out, public_key=keys["public_key"], key_file=keys["aes_key"])
    assert report["checks"]["signature"].startswith("valid")
    assert report["checks"]["encryption"] == "AES-256-GCM, decrypted in memory"
    x = _x()
    with edgekit.load(onnx_model) as plain, edgekit.load(out, public_key=keys["public_key"],
                                                         key_file=keys["aes_key"], threads=1) as model:
        np.testing.assert_array_equal(model(x)["logits"], plain(x)["logits"])
        assert model.checks["signature"].startswith("valid")
        assert model.session.threads == 1


def test_encrypted_tflite_bundle_loads_from_memory_on_litert(tmp_path, keys):
    w = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    model_path = tmp_path / "fc.tflite"
    model_path.write_bytes(rt_models.fully_connected(w, metadata={"edgekit.quantization": {"mode": "dynamic-int8"}}))
    out = B.bundle(model_path, tmp_path / "fc.ekb", encrypt=True, key_file=keys["aes_key"],
                   labels=["a", "b", "c", "d"], postprocess={"softmax": True, "top_k": 2}).path
    m = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert m["model"]["format"] == "tflite" and m["quantization"]["declared"] == {"mode": "dynamic-int8"}
    with edgekit.load(out, key_file=keys["aes_key"]) as model:
        assert model.runtime == "litert" and model.session.path == "<bytes>"
        x = np.arange(6, dtype=np.float32)[None]
        result = model(x, postprocess=True)
        expected = x @ w.T
        probs = np.exp(expected - expected.max()) / np.exp(expected - expected.max()).sum()
        np.testing.assert_allclose(result["y"], probs, rtol=1e-5)
        assert result.top_k[0][0].label == "abcd"[int(np.argmax(expected))]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc.ekb", "fc.tflite", "release.aes", "release.key",
                                                         "release.pub"]  # nothing decrypted to disk


def test_unsigned_bundle_needs_no_cryptography_but_reports_the_unchecked_signature(onnx_model, tmp_path, keys):
    out = B.bundle(onnx_model, tmp_path / "s.ekb", sign=keys["private_key"]).path
    assert B.verify(out)["checks"]["signature"] == "present, not checked (no public key given)"
    with pytest.raises(UsageError, match="no public key"):
        B.verify(out, require_signature=True)


# ------------------------------------------------------------------ refusals

@pytest.fixture
def signed(onnx_model, tmp_path, keys):
    return B.bundle(onnx_model, tmp_path / "signed.ekb", sign=keys["private_key"]).path


def _refused(monkeypatch, path, error=InvalidModelError, match=None, **kwargs):
    _no_runtime(monkeypatch)
    files_before = sorted(os.listdir(Path(path).parent))
    with pytest.raises(error, match=match):
        edgekit.load(path, **kwargs)
    with pytest.raises(error, match=match):
        B.verify(path, **{k: v for k, v in kwargs.items() if k in ("public_key", "key_file", "require_signature")})
    assert sorted(os.listdir(Path(path).parent)) == files_before  # nothing written


def test_flipped_model_byte_is_refused(signed, tmp_path, keys, monkeypatch):
    bad = _rewrite(signed, tmp_path / "bad.ekb", lambda n, d: _flip(d) if n == "model.onnx" else d)
    _refused(monkeypatch, bad, match="does not match its SHA-256", public_key=keys["public_key"])
    _refused(monkeypatch, bad, match="does not match its SHA-256")  # hashes are checked without a key too


def test_flipped_byte_in_the_archive_is_refused(signed, tmp_path, monkeypatch):
    data = signed.read_bytes()
    with zipfile.ZipFile(signed) as zf:
        info = zf.getinfo("model.onnx")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    bad = tmp_path / "bad.ekb"
    bad.write_bytes(_flip(data, start))
    _refused(monkeypatch, bad, match="damaged|SHA-256|decompress")


def test_flipped_manifest_byte_is_refused_by_the_signature(signed, tmp_path, keys, monkeypatch):
    def change(name, data):
        if name != "manifest.json":
            return data
        return data.replace(b'"name": "tiny"', b'"name": "tinz"')
    bad = _rewrite(signed, tmp_path / "bad.ekb", change)
    _refused(monkeypatch, bad, match="signature of .* does not match its manifest", public_key=keys["public_key"])


def test_flipped_manifest_hash_is_refused_even_unsigned(onnx_model, tmp_path, monkeypatch):
    plain = B.bundle(onnx_model, tmp_path / "p.ekb").path
    digest = hashlib.sha256(zipfile.ZipFile(plain).read("model.onnx")).hexdigest()
    swapped = digest[:10] + ("0" if digest[10] != "0" else "1") + digest[11:]
    bad = _rewrite(plain, tmp_path / "bad.ekb",
                   lambda n, d: d.replace(digest.encode(), swapped.encode()) if n == "manifest.json" else d)
    _refused(monkeypatch, bad, match="SHA-256")


def test_flipped_signature_is_refused(signed, tmp_path, keys, monkeypatch):
    bad = _rewrite(signed, tmp_path / "bad.ekb", lambda n, d: _flip(d, 5) if n == "manifest.sig" else d)
    _refused(monkeypatch, bad, match="signature", public_key=keys["public_key"])


def test_wrong_public_key_is_refused(signed, tmp_path, monkeypatch):
    other = B.keygen(tmp_path / "other")
    _refused(monkeypatch, signed, match="not signed by the public key given", public_key=other["public_key"])


def test_unsigned_bundle_is_refused_when_a_key_is_given(onnx_model, tmp_path, keys, monkeypatch):
    plain = B.bundle(onnx_model, tmp_path / "p.ekb").path
    _refused(monkeypatch, plain, match="not signed", public_key=keys["public_key"])


def test_missing_file_is_refused(signed, tmp_path, monkeypatch):
    bad = _rewrite(signed, tmp_path / "bad.ekb", lambda n, d: None if n == "model.onnx" else d)
    _refused(monkeypatch, bad, match="missing file")


def test_unlisted_file_is_refused(signed, tmp_path, monkeypatch):
    bad = _rewrite(signed, tmp_path / "bad.ekb", lambda n, d: d)
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("extra.bin", b"surprise")
    _refused(monkeypatch, bad, match="does not list")


@pytest.mark.parametrize("name, match", [
    ("../evil.onnx", "escapes the bundle"),
    ("/etc/evil", "escapes the bundle"),
    ("sub/../../evil", "escapes the bundle"),
    ("C:\\evil", "escapes the bundle"),
    ("dir/model.onnx", "not a plain file name"),
])
def test_entry_escaping_the_bundle_is_refused(signed, tmp_path, monkeypatch, name, match):
    bad = _rewrite(signed, tmp_path / "bad.ekb", lambda n, d: d)
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"x")
    _refused(monkeypatch, bad, match=match)
    assert not (tmp_path.parent / "evil.onnx").exists()


def test_duplicate_entry_is_refused(signed, tmp_path, monkeypatch):
    bad = _rewrite(signed, tmp_path / "bad.ekb", lambda n, d: d)
    with pytest.warns(UserWarning), zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("model.onnx", b"a second model")
    _refused(monkeypatch, bad, match="two entries")


def test_symlink_entry_is_refused(signed, tmp_path, monkeypatch):
    bad = _rewrite(signed, tmp_path / "bad.ekb", lambda n, d: d)
    link = zipfile.ZipInfo("link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr(link, "/etc/passwd")
    _refused(monkeypatch, bad, match="symbolic link")


def test_oversized_entries_are_refused_before_reading(onnx_model, tmp_path, monkeypatch):
    plain = B.bundle(onnx_model, tmp_path / "p.ekb").path
    _no_runtime(monkeypatch)
    with pytest.raises(InvalidModelError, match="over the limit"):
        edgekit.load(plain, max_bytes=100)
    bomb = _rewrite(plain, tmp_path / "bomb.ekb", lambda n, d: d)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (8 << 20))  # 8 MiB that compress to a few KB
    with pytest.raises(InvalidModelError, match="over the limit"):
        B.verify(bomb, max_bytes=1 << 20)


def test_declared_size_smaller_than_content_is_refused(onnx_model, tmp_path, monkeypatch):
    """A zip whose central directory under-declares an entry's size (a classic bomb trick)."""
    plain = B.bundle(onnx_model, tmp_path / "p.ekb").path
    data = bytearray(plain.read_bytes())
    with zipfile.ZipFile(plain) as zf:
        info = zf.getinfo("model.onnx")
    # find the central directory header of model.onnx and shrink its uncompressed size field
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = int.from_bytes(data[pos + 28:pos + 30], "little")
        if bytes(data[pos + 46:pos + 46 + name_len]) == b"model.onnx":
            data[pos + 24:pos + 28] = (info.file_size - 10).to_bytes(4, "little")
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    assert pos >= 0
    bad = tmp_path / "bad.ekb"
    bad.write_bytes(bytes(data))
    _refused(monkeypatch, bad, match="damaged|declares|SHA-256")


def test_manifest_must_be_strict_json(onnx_model, tmp_path, monkeypatch):
    plain = B.bundle(onnx_model, tmp_path / "p.ekb").path
    dup = _rewrite(plain, tmp_path / "dup.ekb",
                   lambda n, d: d.replace(b'{\n  "benchmark"', b'{\n  "name": "x",\n  "benchmark"', 1)
                   if n == "manifest.json" else d)
    _refused(monkeypatch, dup, match="duplicate keys")
    pickled = _rewrite(plain, tmp_path / "pickle.ekb", lambda n, d: b"\x80\x04N." if n == "manifest.json" else d)
    _refused(monkeypatch, pickled, match="not valid JSON")


def test_wrong_decryption_key_is_refused(onnx_model, tmp_path, keys, monkeypatch):
    out = B.bundle(onnx_model, tmp_path / "e.ekb", encrypt=True, key_file=keys["aes_key"]).path
    other = tmp_path / "other.aes"
    other.write_text(os.urandom(32).hex())
    _refused(monkeypatch, out, error=UsageError, match="not the one .* was encrypted with", key_file=other)
    _no_runtime(monkeypatch)
    with pytest.raises(UsageError, match="encrypted and no key was given"):
        edgekit.load(out)


def test_altered_ciphertext_fails_authentication(onnx_model, tmp_path, keys, monkeypatch):
    """An attacker who re-hashes an altered ciphertext (unsigned bundle) still cannot pass AES-GCM."""
    out = B.bundle(onnx_model, tmp_path / "e.ekb", encrypt=True, key_file=keys["aes_key"]).path
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        blob = _flip(zf.read("model.onnx.enc"), 40)
    manifest["files"]["model.onnx.enc"]["sha256"] = hashlib.sha256(blob).hexdigest()
    bad = _rewrite(out, tmp_path / "bad.ekb", lambda n, d: blob if n == "model.onnx.enc" else
                   json.dumps(manifest).encode() if n == "manifest.json" else d)
    _no_runtime(monkeypatch)
    with pytest.raises(InvalidModelError, match="authentication check"):
        edgekit.load(bad, key_file=keys["aes_key"])


def test_bundle_bytes_load_like_files(onnx_model, tmp_path, keys):
    out = B.bundle(onnx_model, tmp_path / "s.ekb", sign=keys["private_key"]).path
    with edgekit.load(out.read_bytes(), public_key=Path(keys["public_key"]).read_bytes()) as model:
        assert model(_x())["logits"].shape == (1, 3)
    with pytest.raises(InvalidModelError):
        edgekit.load(_flip(out.read_bytes(), 100), public_key=keys["public_key"])


# ------------------------------------------------------------------ CLI

@pytest.mark.parametrize("name", ["bundle", "verify", "keygen"])
def test_help(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_cli_round_trip_and_exit_codes(onnx_model, tmp_path):
    runner = CliRunner()
    k = str(tmp_path / "k")
    r = runner.invoke(main, ["keygen", "-o", k, "--aes"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["keygen", "-o", k])
    assert r.exit_code == 2 and "already exist" in r.stderr and "Traceback" not in r.output
    ekb = str(tmp_path / "m.ekb")
    r = runner.invoke(main, ["bundle", str(onnx_model), "-o", ekb, "--preprocess", "layout=NCHW",
                             "--preprocess", "mean=0.5", "--postprocess", "softmax", "--postprocess", "top_k=2",
                             "--sign", k + ".key", "--encrypt", "--key-file", k + ".aes", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):])["signed"] is True
    r = runner.invoke(main, ["verify", ekb, "--public-key", k + ".pub", "--key-file", k + ".aes", "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{\n"):])["checks"]["encryption"] == "AES-256-GCM, decrypted in memory"
    B.keygen(tmp_path / "other", aes=True)
    r = runner.invoke(main, ["verify", ekb, "--public-key", str(tmp_path / "other.pub")])
    assert r.exit_code == 3 and "not signed by the public key given" in r.stderr and "Traceback" not in r.output
    r = runner.invoke(main, ["verify", ekb, "--key-file", str(tmp_path / "other.aes")])
    assert r.exit_code == 2 and "decryption key" in r.stderr
    r = runner.invoke(main, ["verify", str(onnx_model)])
    assert r.exit_code == 3 and "not a readable .ekb bundle" in r.stderr
    r = runner.invoke(main, ["bundle", str(onnx_model), "-o", str(onnx_model)])
    assert r.exit_code == 2 and "same file as the input" in r.stderr
    r = runner.invoke(main, ["bundle", str(onnx_model), "-o", str(tmp_path / "x.ekb"), "--encrypt"],
                      env={B.KEY_ENV: ""})
    assert r.exit_code == 2 and "needs an AES key" in r.stderr


def test_encrypt_with_key_from_environment(onnx_model, tmp_path, monkeypatch):
    secret = os.urandom(32).hex()
    monkeypatch.setenv(B.KEY_ENV, secret)
    out = B.bundle(onnx_model, tmp_path / "e.ekb", encrypt=True).path
    with edgekit.load(out) as model:
        assert model.checks["encryption"] == "AES-256-GCM, decrypted in memory"
    monkeypatch.setenv(B.KEY_ENV, os.urandom(32).hex())
    with pytest.raises(UsageError, match="decryption key"):
        edgekit.load(out)


def test_manifest_json_is_never_unpickled(onnx_model, tmp_path):
    """The reader parses JSON only: a pickle that would run code on load is just invalid JSON."""
    plain = B.bundle(onnx_model, tmp_path / "p.ekb").path
    marker = tmp_path / "pwned"
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    bad = _rewrite(plain, tmp_path / "bad.ekb", lambda n, d: payload if n == "manifest.json" else d)
    with pytest.raises(InvalidModelError, match="not valid JSON"):
        edgekit.load(bad)
    assert not marker.exists()


def test_quantization_ops_are_counted_from_the_graph(tmp_path):
    import onnx
    import onnx.parser
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,4] x) => (float[1,4] y) {
      q = QuantizeLinear(x, s, z)
      y = DequantizeLinear(q, s, z)
    }""")
    model.graph.initializer.extend([onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                                    onnx.numpy_helper.from_array(np.array(0, np.int8), "z")])
    (tmp_path / "qdq.onnx").write_bytes(model.SerializeToString())
    q = B.bundle(tmp_path / "qdq.onnx", tmp_path / "q.ekb").manifest["quantization"]
    assert q["quant_ops"] == {"QuantizeLinear": 1, "DequantizeLinear": 1}
    assert q["weight_dtypes"] == {"float32": 1, "int8": 1} and q["declared"] is None


def test_missing_cryptography_names_the_extra(onnx_model, tmp_path):
    """Signing without the `cryptography` package: EnvironmentProblem (exit 7) with the pip line."""
    import subprocess
    import sys
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'cryptography':
            raise ImportError('not installed')
sys.meta_path.insert(0, Block())
from edgekit.bundle import bundle, keygen
from edgekit.errors import EdgekitError
try:
    keygen({str(tmp_path / 'k')!r})
except EdgekitError as exc:
    print(exc.exit_code, exc)
bundle({str(onnx_model)!r}, {str(tmp_path / 'plain.ekb')!r})  # plain bundles need no cryptography
import edgekit
print(edgekit.load({str(tmp_path / 'plain.ekb')!r}).runtime)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("7 ") and 'pip install "edgekit[bundle]"' in first
    assert second == "onnxruntime"
    assert not (tmp_path / "k.key").exists()


def test_cli_bad_preprocessing_exits_2_without_traceback(onnx_model, tmp_path):
    r = CliRunner().invoke(main, ["bundle", str(onnx_model), "-o", str(tmp_path / "x.ekb"),
                                  "--preprocess", "sizes=4x4"])
    assert r.exit_code == 2 and "Unknown preprocessing option" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "x.ekb").exists()
