"""What every command shares: error → exit-code mapping, --json output, consoles."""
from __future__ import annotations

import functools
import sys
import traceback

import click
from rich.console import Console
from rich.markup import escape

from edgekit.errors import EdgekitError, InternalError, UsageError

console = Console(stderr=True, highlight=False)   # human output and progress go to stderr...
out = Console(highlight=False, soft_wrap=True,   # ...and tables to stdout (wide when piped to a file)
              width=None if sys.stdout.isatty() else 160)


def json_option(f):
    return click.option("--json", "json_path", metavar="FILE", default=None,
                        help="Write the machine-readable result as JSON to FILE ('-' for stdout).")(f)


def input_shape_option(f):
    """--input-shape for a PyTorch SPEC, the same on every command that takes one (export, compare, pipeline);
    the values go to edgekit.converters.torch_export.load_spec, which parses them with edgekit.inputs.parse_shape."""
    return click.option("--input-shape", "input_shapes", multiple=True, metavar="SHAPE",
                        help="Example input shape of a PyTorch SPEC, one per input in order: 1x3x224x224, "
                             "optionally NAME=... and :dtype (tokens=1x16:int64).")(f)


def emit_json(data, json_path: str | None) -> None:
    if not json_path:
        return
    from edgekit.fileio import to_json
    text = to_json(data) + "\n"  # one encoder for every --json: finite floats as numbers, inf/NaN as "inf"/"nan"
    if json_path == "-":
        sys.stdout.write(text)
    else:
        from edgekit.fileio import atomic_write, check_output
        atomic_write(check_output(json_path), text)


def handle_errors(f):
    """Turn EdgekitError into a one-paragraph message and its exit code; anything else is an internal error."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = bool((ctx.find_root().obj or {}).get("debug"))
        try:
            return f(*args, **kwargs)
        except EdgekitError as exc:
            if debug:
                traceback.print_exc()
            fail(exc)
        except KeyboardInterrupt:
            console.print("[yellow]Interrupted.[/] Finished files are complete; nothing partial was left behind.")
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: say so, keep the traceback for --debug
            if debug:
                traceback.print_exc()
            fail(InternalError(f"edgekit hit an unexpected error: {type(exc).__name__}: {exc}",
                               hint="Run again with --debug for the traceback and report it."))
    return wrapper


def fail(exc: EdgekitError):
    text = escape(exc.message + (f" {exc.hint}" if exc.hint else ""))
    console.print(f"[bold red]{exc.title}:[/] {text}", soft_wrap=True)
    sys.exit(exc.exit_code)


def usage(message: str, hint: str | None = None) -> UsageError:
    return UsageError(message, hint=hint)
