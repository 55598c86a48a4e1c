"""Classify a live stream of sensor readings in sliding windows — the streaming half of the example app.

    python examples/app/classify_stream.py activity.ekb app-build/activity_stream.csv
    some_sensor_reader | python examples/app/classify_stream.py activity.ekb - --hop 16 --json

Reads "ax,ay,az" lines (a header line is skipped) from a file or stdin as they arrive, keeps the last
WINDOW readings (the model's input length) and classifies every HOP new readings. Needs numpy, edgekit
and one runtime.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import edgekit
from edgekit.errors import EdgekitError


class SlidingWindow:
    """A fixed-size window over a stream: push readings, get a full window every `hop` pushes."""

    def __init__(self, length: int, channels: int, hop: int):
        self.buffer = np.zeros((length, channels), np.float32)
        self.length, self.hop = length, hop
        self.seen = 0

    def push(self, reading) -> np.ndarray | None:
        self.buffer = np.roll(self.buffer, -1, axis=0)
        self.buffer[-1] = reading
        self.seen += 1
        if self.seen >= self.length and (self.seen - self.length) % self.hop == 0:
            return self.buffer.copy()
        return None


def window_shape(model) -> tuple[int, int]:
    """(time steps, channels) of the model's input, read through the declared layout (e.g. NTC)."""
    info = model.inputs[0]
    layout = (model.preprocessing.layout if model.preprocessing and model.preprocessing.layout else "NTC")
    return int(info.shape[layout.index("T")]), int(info.shape[layout.index("C")])


def readings(lines, channels: int):
    """Parse numeric CSV lines; skip a header and blank lines; stop with a clear error on garbage."""
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            if number == 1:
                continue  # header
            raise ValueError(f"line {number}: not {channels} numbers: {line[:60]!r}") from None
        if len(values) != channels:
            raise ValueError(f"line {number}: expected {channels} values, got {len(values)}")
        yield values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .ekb bundle with tensor preprocessing (layout NTC) and labels")
    parser.add_argument("source", nargs="?", default="-", help="CSV file, or - for stdin (default)")
    parser.add_argument("--hop", type=int, default=16, help="classify every HOP readings (default 16)")
    parser.add_argument("--rate", type=float, default=50.0, help="sample rate in Hz, for timestamps (default 50)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runtime", default="auto", choices=["auto", "litert", "onnxruntime"])
    parser.add_argument("--public-key", help="accept the bundle only if signed by this NAME.pub")
    parser.add_argument("--key-file", help="AES key of an encrypted bundle (or set EDGEKIT_BUNDLE_KEY)")
    parser.add_argument("--json", action="store_true", help="one JSON object per window (JSON lines)")
    args = parser.parse_args(argv)
    if args.hop < 1:
        print("error: --hop must be at least 1", file=sys.stderr)
        return 2
    try:
        model = edgekit.load(args.model, runtime=args.runtime, threads=args.threads, public_key=args.public_key,
                             require_signature=bool(args.public_key), key_file=args.key_file)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    source = sys.stdin if args.source == "-" else open(args.source, encoding="utf-8")
    with model, source:
        length, channels = window_shape(model)
        window = SlidingWindow(length, channels, args.hop)
        try:
            for values in readings(source, channels):
                full = window.push(values)
                if full is None:
                    continue
                best = model.classify(full, top_k=1)[0][0]
                end = window.seen
                event = {"start": end - length, "end": end, "time_s": round(end / args.rate, 2),
                         "label": best.label, "score": round(best.score, 4)}
                print(json.dumps(event) if args.json else
                      f"{event['time_s']:8.2f} s  {best.label:<10} {best.score:.3f}", flush=True)
        except BrokenPipeError:  # the reader (e.g. `head`) stopped listening: a normal end for a stream
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except EdgekitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
