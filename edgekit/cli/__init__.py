"""The `edgekit` command: a thin shell over the library; each command lives in its own module."""
from __future__ import annotations

import importlib

import click

from edgekit import __version__

#: command name → (module under edgekit.cli, one-line help). Modules load only when their command runs.
COMMANDS = {
    "export": "Export a PyTorch model (SPEC) to ONNX and validate it.",
    "inspect": "Show a model's inputs, outputs, ops, parameters, quantization and MACs.",
    "optimize": "Clean up an ONNX graph (folding, fusion) and check it still computes the same.",
    "quantize": "Quantize an ONNX model (static INT8, dynamic INT8, FP16) with accuracy report and blame.",
    "convert": "Compile an ONNX model to TFLite and validate it.",
    "bench": "Benchmark one or more models on ONNX Runtime or LiteRT.",
    "profile": "Per-node and per-op-type time breakdown of a model.",
    "compare": "Run models on identical inputs and compare their outputs.",
    "pipeline": "Export, optimize, quantize, convert, validate and benchmark every variant; report which to ship.",
    "bundle": "Pack a model with a manifest (optionally signed and encrypted) into an .ekb bundle.",
    "verify": "Verify an .ekb bundle's hashes and signature.",
    "keygen": "Make an Ed25519 signing key pair (and optionally an AES key).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"edgekit.cli.{name}_cmd")
        return module.command

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, text in COMMANDS.items()], col_max=12)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgekit")
@click.option("--debug", is_flag=True, envvar="EDGEKIT_DEBUG", help="Show full tracebacks.")
@click.pass_context
def main(ctx, debug):
    """edgekit — take a PyTorch model to an edge device, with the numbers to prove it.

    Exit codes: 0 ok, 1 internal error, 2 usage error, 3 invalid model, 4 unsupported model,
    5 validation failed, 6 gate failed, 7 environment problem.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
