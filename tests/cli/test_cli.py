"""The CLI surface: every command's --help, version, exit-code table."""
from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgekit.cli import COMMANDS, main
from edgekit.errors import EXIT_CODES


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_of_every_command(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_top_level_help_lists_commands_and_exit_codes():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    commands = result.output.split("\nCommands:\n", 1)
    assert len(commands) == 2, result.output  # a heading of its own, as Options: has
    listed = [line.split()[0] for line in commands[1].splitlines() if line.startswith("  ") and line[2] != " "]
    assert listed == list(COMMANDS)
    flat = " ".join(result.output.split())
    for code, cls in EXIT_CODES.items():
        assert f"{code} {cls.title}" in flat


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "edgekit" in result.output
