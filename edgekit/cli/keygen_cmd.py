"""`edgekit keygen -o NAME [--aes] [--force]`."""
from __future__ import annotations

import click

from edgekit.cli.common import console, emit_json, handle_errors, json_option


@click.command("keygen")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="NAME",
              help="Key name: writes NAME.key (private, mode 0600) and NAME.pub (public).")
@click.option("--aes", is_flag=True, help="Also write NAME.aes, a random 256-bit AES key (mode 0600) for --encrypt.")
@click.option("--force", is_flag=True, help="Replace existing key files (the old keys are lost).")
@json_option
@handle_errors
def command(output, aes, force, json_path):
    """Make an Ed25519 signing key pair (and optionally an AES-256 key) for bundles.

    Sign with NAME.key (keep it secret); ship NAME.pub to devices to check signatures. Existing key files
    are never replaced without --force.
    """
    from edgekit.bundle.keys import keygen

    result = keygen(output, aes=aes, force=force)
    console.print(f"[green]Wrote[/] {result['private_key']} (private, keep it secret) and {result['public_key']} "
                  f"(public); key id {result['public_key_id']}", soft_wrap=True)
    if aes:
        console.print(f"[green]Wrote[/] {result['aes_key']} (AES-256, keep it secret); key id {result['aes_key_id']}", soft_wrap=True)
    emit_json(result, json_path)
