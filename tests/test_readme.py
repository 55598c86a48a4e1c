"""Every shell example in the README files runs as written (install lines excepted: CI runs those itself)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*/README.md"))]
BLOCK = re.compile(r"```(?:bash|sh|console)\n(.*?)```", re.S)


def shell_blocks(readme: Path) -> list[str]:
    return [b for b in BLOCK.findall(readme.read_text()) if "pip install" not in b]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_examples_run(readme, tmp_path):
    blocks = shell_blocks(readme)
    if not blocks:
        pytest.skip(f"{readme.name} has no runnable shell examples")
    script = "set -euo pipefail\n" + "\n".join(blocks)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # examples refer to examples/... as from the repo root
    env_root = str(readme.parent)
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "EDGEKIT_EXAMPLES": env_root})
    assert proc.returncode == 0, f"{readme}:\n{script}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
