"""Text in the app API (edgekit.text): the example's tokenizer and tiny BERT built once, then encode/classify
against ONNX Runtime run directly, bundles with a tokenizer, bad input, and the search app with torch and onnx
blocked (on the .onnx bundle and, when edgekit's compiler converts the encoder, on the .tflite one)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

import edgekit  # noqa: E402
from edgekit.errors import InvalidModelError, UnsupportedModelError, UsageError  # noqa: E402
from edgekit.text import TruncationWarning, embedding_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "text_search"
RUN_BLOCKED = ROOT / "tests" / "app" / "run_blocked.py"
WORKSTATION_ONLY = ["torch", "onnx", "onnxscript", "transformers", "safetensors", "sklearn"]
pytestmark = pytest.mark.slow


def _load_build():
    spec = importlib.util.spec_from_file_location("text_search_build", APP / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("text")
    report = _load_build().build(out, tflite=True)
    return out, report


def _direct(path: Path, tokenizer: Path, texts: list[str]) -> list[np.ndarray]:
    """ONNX Runtime on each text alone, ids from tokenizers directly: the reference."""
    import onnxruntime as ort
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tokenizer))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = []
    for text in texts:
        ids = np.array([tok.encode(text).ids], np.int64)
        outs.append(sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0])
    return outs


def test_the_classifier_learns_the_corpus_topics(built):
    _, report = built
    assert report["trained_accuracy"] >= 0.9


def test_encode_is_the_masked_mean_of_onnx_runtime_token_states(built):
    out, _ = built
    lines = (out / "corpus.txt").read_text().splitlines()[:6]
    with edgekit.load(out / "encoder.onnx", tokenizer=out / "tokenizer.json") as model:
        got = model.encode(lines)                       # one padded batch
        unit = model.encode(lines, normalize=True)
        assert model.checks["vocabulary"].endswith("fit the 512-row embedding table")
        assert model.max_length == 64                   # from the edgekit.text metadata
    want = np.stack([states.mean(axis=0) for states in _direct(out / "encoder.onnx", out / "tokenizer.json", lines)])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(unit, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-5)


def test_classify_labels_texts_like_onnx_runtime(built):
    out, _ = built
    texts = ["Rain and wind are coming tonight.", "Fry the garlic in olive oil.",
             "Restart the computer after the update.", "The team won the match."]
    with edgekit.load(out / "classifier.onnx", tokenizer=out / "tokenizer.json") as model:
        preds = model.classify(texts, top_k=2)
        single = model.classify(texts[0])
    logits = np.stack(_direct(out / "classifier.onnx", out / "tokenizer.json", texts))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for row, p in zip(preds, probs):
        assert len(row) == 2 and row[0].index == int(p.argmax())
        assert row[0].score == pytest.approx(float(p.max()), abs=1e-5)
    assert [row[0].label for row in preds] == ["weather", "cooking", "computers", "sports"]  # labels from metadata
    assert single[0][0] == preds[0][0]


def test_a_bundle_carries_the_tokenizer_and_its_hash(built):
    out, _ = built
    data = (out / "tokenizer.json").read_bytes()
    with zipfile.ZipFile(out / "classifier.ekb") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert zf.read("tokenizer.json") == data
    import hashlib
    assert manifest["tokenizer"]["file"] == "tokenizer.json"
    assert manifest["files"]["tokenizer.json"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["tokenizer"]["embedding_rows"] == 512
    with edgekit.load(out / "classifier.ekb") as model:   # no tokenizer= needed
        assert model.classify("Snow and ice on the roads.")[0][0].label == "weather"
        assert model.checks["files"]["tokenizer.json"] == "sha256 ok"


def test_a_changed_tokenizer_in_a_bundle_is_refused(built, tmp_path):
    out, _ = built
    damaged = tmp_path / "damaged.ekb"
    with zipfile.ZipFile(out / "encoder.ekb") as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            blob = src.read(info)
            dst.writestr(info, blob.replace(b"[UNK]", b"[UNX]") if info.filename == "tokenizer.json" else blob)
    with pytest.raises(InvalidModelError, match="tokenizer.json.*SHA-256"):
        edgekit.load(damaged)


def test_long_texts_are_truncated_with_a_note(built):
    out, _ = built
    long_text = " ".join((out / "corpus.txt").read_text().splitlines())
    with edgekit.load(out / "encoder.onnx", tokenizer=out / "tokenizer.json") as model:
        with pytest.warns(TruncationWarning, match=r"1 of 2 texts were longer than the model's 64 tokens"):
            got = model.encode(["short text", long_text])
        assert got.shape == (2, 64) and np.all(np.isfinite(got))
        assert "truncated" in model.notes[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.encode(["short text"])  # no note when nothing is cut
            assert model.notes == []
    with edgekit.load(out / "encoder.onnx", tokenizer=out / "tokenizer.json", max_length=8) as model:
        with pytest.warns(TruncationWarning, match="8 tokens"):
            model.encode([long_text])


def test_empty_texts_and_empty_batches(built):
    out, _ = built
    with edgekit.load(out / "encoder.onnx", tokenizer=out / "tokenizer.json") as model:
        assert model.encode([]).shape == (0, 64)
        got = model.encode(["", "a cold wind"], normalize=True)   # "" is [CLS] [SEP]: a real, finite embedding
        assert got.shape == (2, 64) and np.all(np.isfinite(got))
    with edgekit.load(out / "classifier.onnx", tokenizer=out / "tokenizer.json") as model:
        assert model.classify([]) == []
        assert len(model.classify([""])[0]) == 1


def test_texts_with_no_tokens_embed_as_zeros_and_are_not_classified(built, tmp_path):
    out, _ = built
    from tokenizers import Tokenizer
    bare = Tokenizer.from_file(str(out / "tokenizer.json"))
    bare.post_processor = None  # no [CLS]/[SEP]: "" has no tokens at all
    bare.save(str(tmp_path / "bare.json"))
    with edgekit.load(out / "encoder.onnx", tokenizer=tmp_path / "bare.json") as model:
        got = model.encode(["", "rain"], normalize=True)
        assert np.all(got[0] == 0) and np.linalg.norm(got[1]) == pytest.approx(1.0, abs=1e-6)
        assert "no tokens" in model.notes[0]
    with edgekit.load(out / "classifier.onnx", tokenizer=tmp_path / "bare.json") as model:
        with pytest.raises(UsageError, match="Text 1 has no tokens"):
            model.classify(["rain", "   "])


def test_a_tokenizer_larger_than_the_embedding_table_is_refused_before_any_run(built, tmp_path):
    out, _ = built
    from tokenizers import Tokenizer
    big = Tokenizer.from_file(str(out / "tokenizer.json"))
    big.add_tokens([f"extra{i}" for i in range(20)])
    big.save(str(tmp_path / "big.json"))
    for model_file in ("encoder.onnx", "classifier.onnx"):
        with pytest.raises(UsageError, match=r"ids up to 531 .*embedding table of .* has 512 rows"):
            edgekit.load(out / model_file, tokenizer=tmp_path / "big.json")
    from edgekit.bundle import bundle
    with pytest.raises(UsageError, match="512 rows"):
        bundle(out / "encoder.onnx", tmp_path / "never.ekb", tokenizer=tmp_path / "big.json")
    assert not (tmp_path / "never.ekb").exists()


def test_embedding_rows_are_read_from_the_graph_without_the_onnx_package(built):
    out, _ = built
    data = (out / "encoder.onnx").read_bytes()
    assert embedding_rows(data, "input_ids") == 512
    assert embedding_rows(data, "attention_mask") is None
    assert embedding_rows(data, "input_ids", {"edgekit.text": json.dumps({"vocab_size": 300})}) == 300
    if (out / "encoder.tflite").exists():
        assert embedding_rows((out / "encoder.tflite").read_bytes(), "input_ids") == 512


def test_bad_tokenizers_and_bad_texts_are_usage_errors(built, tmp_path):
    out, _ = built
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    with pytest.raises(UsageError, match="not a Hugging Face tokenizer"):
        edgekit.load(out / "encoder.onnx", tokenizer=tmp_path / "vocab.txt")
    with pytest.raises(UsageError, match="does not exist"):
        edgekit.load(out / "encoder.onnx", tokenizer=tmp_path / "missing.json")
    with edgekit.load(out / "encoder.onnx", tokenizer=out / "tokenizer.json") as model:
        with pytest.raises(UsageError, match="item 1 is int"):
            model.encode(["fine", 3])
        with pytest.raises(UsageError, match="string or a list of strings"):
            model.encode(42)
    for model in ("encoder.onnx", "encoder.tflite"):  # dynamic tokens: the declared 64 (edgekit.text) is the limit
        if (out / model).exists():
            with pytest.raises(UsageError, match="longer than the 64 tokens"):
                edgekit.load(out / model, tokenizer=out / "tokenizer.json", max_length=100)


def test_a_model_without_token_ids_is_refused(zoo_onnx, built):
    out, _ = built
    with pytest.raises(UsageError, match="takes no token ids"):
        edgekit.load(zoo_onnx("mlp"), tokenizer=out / "tokenizer.json")


def test_the_tflite_encoder_takes_int32_ids_and_matches_onnx_runtime(built):
    out, report = built
    _tflite_or_skip(report)
    lines = (out / "corpus.txt").read_text().splitlines()
    with edgekit.load(out / "encoder.tflite", tokenizer=out / "tokenizer.json") as model:
        # one encoder with dynamic batch and tokens: each batch is padded only to its own longest text
        assert np.dtype(model.text_inputs.ids.dtype) == np.int32 and model.max_length == 64
        assert model.text_inputs.length is None and model.text_inputs.batch is None
        batches = [lines[:5], lines[5:6], lines[6:16]]
        widths = [model._tokenize(batch, 0)[0].shape for batch in batches]
        assert len({w[1] for w in widths}) > 1 and max(w[1] for w in widths) < 64, widths
        got = [model.encode(batch) for batch in batches]
    for batch, vectors in zip(batches, got):
        want = np.stack([s.mean(axis=0) for s in _direct(out / "encoder.onnx", out / "tokenizer.json", batch)])
        np.testing.assert_allclose(vectors, want, atol=1e-4, rtol=1e-3)


def _tflite_or_skip(report):
    """Skip only without LiteRT; with it, a refused or wrong-numbers conversion fails with the compiler's reason."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("LiteRT (ai-edge-litert) is not installed: the .tflite path cannot run")
    if report["tflite"] != "converted":
        pytest.fail(f"edgekit's compiler did not convert the encoder: {report['tflite']}")


def run_search(*args, blocked):
    proc = subprocess.run([sys.executable, str(RUN_BLOCKED), ",".join(blocked), str(APP / "search.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    leaked = [line for line in proc.stderr.splitlines() if line.startswith("BLOCKED-IMPORTS:")]
    assert leaked == ["BLOCKED-IMPORTS: []"], proc.stderr[-2000:]
    return proc


QUERIES = ("will it rain and snow", "bake a sweet cake", "the computer crashed", "who won the game")
EXPECTED_TOPIC = ("weather", "cooking", "computers", "sports")


def _check_search(proc, out: Path, runtime: str):
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["runtime"] == runtime and result["lines"] == 32
    build = _load_build()
    for res, topic in zip(result["results"], EXPECTED_TOPIC):
        assert build.topic_of(res["hits"][0]["line"] - 1) == topic, res


def test_search_app_on_an_onnx_bundle_without_torch_or_onnx(built):
    out, _ = built
    proc = run_search(out / "encoder.ekb", out / "corpus.txt", *QUERIES, "--json",
                      blocked=WORKSTATION_ONLY + ["ai_edge_litert"])
    _check_search(proc, out, "onnxruntime")


def test_search_app_on_the_tflite_model_and_bundle_without_torch_onnx_or_onnxruntime(built):
    out, report = built
    _tflite_or_skip(report)
    blocked = WORKSTATION_ONLY + ["onnxruntime"]
    _check_search(run_search(out / "encoder-tflite.ekb", out / "corpus.txt", *QUERIES, "--json", blocked=blocked),
                  out, "litert")
    _check_search(run_search(out / "encoder.tflite", out / "corpus.txt", *QUERIES, "--json", "--tokenizer",
                             out / "tokenizer.json", blocked=blocked), out, "litert")


def test_search_app_reports_a_mismatched_tokenizer_with_exit_code_2(built, tmp_path):
    out, _ = built
    from tokenizers import Tokenizer
    big = Tokenizer.from_file(str(out / "tokenizer.json"))
    big.add_tokens(["zzz"])
    big.save(str(tmp_path / "big.json"))
    proc = run_search(out / "encoder.onnx", out / "corpus.txt", "rain", "--tokenizer", tmp_path / "big.json",
                      blocked=WORKSTATION_ONLY)
    assert proc.returncode == 2 and "512 rows" in proc.stderr and "Traceback" not in proc.stderr
