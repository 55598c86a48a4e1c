"""Device side: semantic search over the lines of a text file with a sentence encoder.

    python search.py encoder.ekb corpus.txt "will it rain tomorrow" "how do I bake a cake" --top-k 3
    python search.py encoder.tflite corpus.txt "a slow computer" --tokenizer tokenizer.json --json

Every non-empty line of the file is embedded once (mean pooling, unit length), each query likewise, and the lines
are ranked by cosine similarity. Needs numpy, tokenizers, edgekit and one runtime; never torch or onnx.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

import edgekit
from edgekit.errors import EdgekitError


def search(model, lines: list[str], queries: list[str], top_k: int = 3) -> list[dict]:
    """For each query, the top_k lines by cosine similarity: {query, hits: [{line, text, score}]}."""
    corpus = model.encode(lines, normalize=True)
    asked = model.encode(queries, normalize=True)
    results = []
    for query, vector in zip(queries, asked):
        scores = corpus @ vector
        order = np.argsort(-scores, kind="stable")[:top_k]
        results.append({"query": query, "hits": [{"line": int(i) + 1, "text": lines[i], "score": round(float(scores[i]), 4)}
                                                 for i in order]})
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help=".ekb bundle with a tokenizer, or .onnx/.tflite with --tokenizer")
    parser.add_argument("corpus", help="a UTF-8 text file: one document per line")
    parser.add_argument("queries", nargs="+")
    parser.add_argument("--tokenizer", help="tokenizer.json (bundles carry their own)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        with open(args.corpus, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh if line.strip()]
        if not lines:
            raise edgekit.errors.UsageError(f"'{args.corpus}' has no non-empty lines to search.")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = edgekit.load(args.model, tokenizer=args.tokenizer, threads=args.threads)
            with model:
                results = search(model, lines, args.queries, args.top_k)
                runtime = model.runtime
        notes = [str(w.message) for w in caught]
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps({"runtime": runtime, "lines": len(lines), "notes": notes, "results": results}, indent=2))
        return 0
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for result in results:
        print(f"{result['query']}")
        for hit in result["hits"]:
            print(f"  {hit['score']:.3f}  line {hit['line']}: {hit['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
