"""`edgekit verify BUNDLE [--public-key NAME.pub] [--key-file NAME.aes]`."""
from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli.common import console, emit_json, handle_errors, json_option, out


@click.command("verify")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@click.option("--public-key", type=click.Path(dir_okay=False), help="Check the Ed25519 signature with this NAME.pub.")
@click.option("--require-signature", is_flag=True, help="Fail unless the bundle is signed and checked (needs --public-key).")
@click.option("--key-file", type=click.Path(dir_okay=False),
              help="AES key: also decrypt an encrypted model in memory and check its hash ($EDGEKIT_BUNDLE_KEY works too).")
@click.option("--max-bytes", type=int, default=None, help="Largest model file accepted (default 2 GiB).")
@json_option
@handle_errors
def command(bundle_path, public_key, require_signature, key_file, max_bytes, json_path):
    """Verify an .ekb bundle: safe zip entries, manifest, signature and the SHA-256 of every file.

    Exit code 0 when every check passes; 3 when the bundle is damaged, altered, or not signed by the given
    key; 2 for a wrong or missing decryption key. Nothing is extracted or written.
    """
    from edgekit.bundle.read import verify

    report = verify(bundle_path, public_key=public_key, require_signature=require_signature, key_file=key_file,
                    max_bytes=max_bytes)
    _render(report)
    emit_json(report, json_path)


def _render(report: dict) -> None:
    checks = report["checks"]
    table = Table(title=f"Bundle {report['name']} (edgekit {report['edgekit_version']}, {report['created']})")
    for col in ("file", "bytes", "sha256", "check"):
        table.add_column(col)
    for fname, entry in report["files"].items():
        table.add_row(fname, str(entry["size"]), entry["sha256"][:16] + "…", f"[green]{checks['files'][fname]}[/]")
    out.print(table)
    model = report["model"]
    console.print(f"model: {model['format']}, {model['size']} bytes, sha256 {model['sha256'][:16]}…", soft_wrap=True)
    signature = checks["signature"]
    colour = "green" if signature.startswith("valid") else "yellow"
    console.print(f"signature: [{colour}]{signature}[/]", soft_wrap=True)
    console.print(f"encryption: {checks['encryption']}", soft_wrap=True)
    console.print("[green]OK[/]: every check passed.", soft_wrap=True)
