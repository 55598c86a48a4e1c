"""Workstation side of the text-search example: tokenizer, models, export, bundles.

    python examples/text_search/build.py --out text-build            # .onnx models and bundles
    python examples/text_search/build.py --out text-build --tflite   # also the encoder as .tflite

Trains a WordPiece tokenizer on corpus.txt with `tokenizers` (no download), fine-tunes a tiny BERT-style topic
classifier (built from a transformers BertConfig) on the corpus' four topics for a few seconds, and exports the
classifier and its encoder body (token states, for mean pooling) with edgekit's exporter; the same dynamic encoder
(batch and token length left to run time) is compiled to TFLite with edgekit's compiler, so the app pads each batch
only to its longest text. Needs torch, transformers and tokenizers; the device needs numpy, tokenizers and one
runtime.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _load_models():
    """This folder's models.py under a name of its own (examples/app has a models.py too: `import models` would
    take whichever was imported first in the process)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("text_search_models", HERE / "models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


models = _load_models()

ENCODER_SPEC = f"{HERE / 'models.py'}:sentence_encoder"
CLASSIFIER_SPEC = f"{HERE / 'models.py'}:topic_classifier"
EXPORT_TOKENS = 16           # the example length for export; tokens and batch stay dynamic in the ONNX files
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def corpus_lines(path: Path = HERE / "corpus.txt") -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def topic_of(index: int) -> str:
    """corpus.txt holds eight lines per topic, in the order of models.TOPICS."""
    return models.TOPICS[index // 8]


def train_tokenizer(lines: list[str], out: Path, vocab_size: int = models.VOCAB) -> Path:
    """A BERT-style WordPiece tokenizer (lowercase, accents stripped, [CLS] ... [SEP]) trained on `lines`."""
    from tokenizers import Tokenizer, decoders, models as tok_models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(tok_models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=1)
    tokenizer.train_from_iterator(lines, trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                             special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tokenizer.save(str(out))
    return out


def _batch(tokenizer, texts: list[str]):
    import torch
    enc = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in enc)
    ids = torch.zeros((len(texts), width), dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for row, e in enumerate(enc):
        ids[row, :len(e.ids)] = torch.tensor(e.ids)
        mask[row, :len(e.ids)] = 1
    return ids, mask


def train_classifier(tokenizer_path: Path, lines: list[str], steps: int = 60, seed: int = 0) -> dict:
    """Fine-tune the topic classifier on the corpus (seeded; a few seconds on 2 cores)."""
    import torch
    from tokenizers import Tokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    module = models.topic_classifier()
    labels = torch.tensor([models.TOPICS.index(topic_of(i)) for i in range(len(lines))])
    ids, mask = _batch(tokenizer, lines)
    opt = torch.optim.AdamW(module.parameters(), lr=2e-3)
    module.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(ids, mask), labels)
        loss.backward()
        opt.step()
    module.eval()
    with torch.no_grad():
        accuracy = float((module(ids, mask).argmax(1) == labels).float().mean())
    return {"module": module, "accuracy": accuracy, "loss": float(loss.detach())}


def save_weights(state: dict, out: Path) -> Path:
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def add_text_metadata(path: Path, **values) -> None:
    """`edgekit.text` metadata (max_length, labels) in an ONNX file: what the app reads besides the graph."""
    import onnx

    from edgekit.onnx_io import set_metadata
    from edgekit.onnx_io import save_onnx
    proto = onnx.load(str(path))
    set_metadata(proto, "edgekit.text", json.dumps(values))
    save_onnx(proto, path)


def export(spec: str, weights: Path, out: Path, *, dynamic: bool = True, tokens: int = EXPORT_TOKENS) -> Path:
    from edgekit.converters.torch_export import export as edgekit_export
    axes = [f"{name}:{dim}={label}" for name in ("input_ids", "attention_mask")
            for dim, label in ((0, "batch"), (1, "tokens"))] if dynamic else []
    edgekit_export(spec, out, weights=str(weights), force=True, dynamic_axes=axes,
                   input_shapes=[f"input_ids=1x{tokens}:int64", f"attention_mask=1x{tokens}:int64"])
    return out


def convert_tflite(onnx_path: Path, out: Path) -> str:
    """'converted', or why edgekit's compiler refused the model."""
    from edgekit.convert import convert
    from edgekit.errors import EdgekitError
    try:
        convert(onnx_path, out, force=True)
    except EdgekitError as exc:
        return f"refused: {exc}"
    return "converted"


def build(out: str | Path, *, tflite: bool = False, seed: int = 0, steps: int = 60) -> dict:
    from edgekit.bundle import bundle

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = corpus_lines()
    (out / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = train_tokenizer(lines, out / "tokenizer.json")
    trained = train_classifier(tokenizer, lines, steps=steps, seed=seed)
    state = trained["module"].state_dict()
    classifier_weights = save_weights(state, out / "classifier.safetensors")
    encoder_weights = save_weights({k[len("model."):]: v for k, v in state.items()
                                    if k.startswith("model.bert.") and ".pooler." not in k}, out / "encoder.safetensors")
    report = {"trained_accuracy": trained["accuracy"], "tokenizer": str(tokenizer)}

    encoder = export(ENCODER_SPEC, encoder_weights, out / "encoder.onnx")
    add_text_metadata(encoder, max_length=models.MAX_TOKENS)
    classifier = export(CLASSIFIER_SPEC, classifier_weights, out / "classifier.onnx")
    add_text_metadata(classifier, max_length=models.MAX_TOKENS, labels=list(models.TOPICS))
    bundle(encoder, out / "encoder.ekb", tokenizer=tokenizer, force=True)
    bundle(classifier, out / "classifier.ekb", tokenizer=tokenizer, labels=list(models.TOPICS), force=True)
    report["tflite"] = "not requested"
    if tflite:  # the dynamic encoder itself: LiteRT resizes batch and tokens per call (validated at two sizes each)
        report["tflite"] = convert_tflite(encoder, out / "encoder.tflite")
        if report["tflite"] == "converted":
            bundle(out / "encoder.tflite", out / "encoder-tflite.ekb", tokenizer=tokenizer, force=True)
    (out / "build.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="text-build")
    parser.add_argument("--tflite", action="store_true", help="also compile the encoder to .tflite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = build(args.out, tflite=args.tflite, seed=args.seed)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
