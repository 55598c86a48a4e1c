"""Every shell and python example in the README files runs as written (install lines excepted: CI runs those itself).

A README's python blocks run after its shell blocks, in the same scratch folder, so they use the models the shell
blocks built; the few names a block leaves to the reader (an image, a batch) are set by its README's entry in
PYTHON_SETUP. A README with python blocks and no entry there fails: say how its blocks get their inputs.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*/README.md"))]
BLOCK = re.compile(r"```(?:bash|sh|console)\n(.*?)```", re.S)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)

# README (relative to the repository root) -> code run before each of its python blocks: into the folder its shell
# blocks built, the placeholder inputs the block names defined from that folder's own samples.
PYTHON_SETUP = {
    "examples/app/README.md": """
import os
from pathlib import Path
import numpy as np
from PIL import Image
os.chdir("app-build")
image_uint8_hxw = np.asarray(Image.open(sorted(Path("digits").glob("*.png"))[0]).convert("L"))
batch_nchw_float32 = np.zeros((1, 1, 8, 8), np.float32)
""",
    "examples/detect_app/README.md": """
import os
import shutil
from pathlib import Path
os.chdir("detect-build")
shutil.copy(sorted(Path("samples").glob("*.png"))[0], "scene.png")
""",
    "examples/text_search/README.md": """
import os
os.chdir("text-build")
""",
}


def shell_blocks(readme: Path) -> list[str]:
    return [b for b in BLOCK.findall(readme.read_text()) if "pip install" not in b]


def python_blocks(readme: Path) -> list[str]:
    """Each python block as a shell step, after its README's setup (see PYTHON_SETUP)."""
    blocks = PYTHON_BLOCK.findall(readme.read_text())
    if not blocks:
        return []
    setup = PYTHON_SETUP.get(str(readme.relative_to(ROOT)))
    assert setup is not None, f"{readme} has python blocks but no entry in PYTHON_SETUP saying where their inputs come from"
    return [f"python - <<'EDGEKIT_README_PY'\n{setup}\n{block}EDGEKIT_README_PY" for block in blocks]


def test_every_python_block_is_run():
    """The blocks are found (a changed fence would silently run nothing) and each README with them has a setup."""
    found = {str(r.relative_to(ROOT)): len(python_blocks(r)) for r in READMES}
    assert {k for k, v in found.items() if v} == set(PYTHON_SETUP), found


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_examples_run(readme, tmp_path):
    blocks = shell_blocks(readme) + python_blocks(readme)
    if not blocks:
        pytest.skip(f"{readme.name} has no runnable examples")
    script = "set -euo pipefail\n" + "\n".join(blocks)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # examples refer to examples/... as from the repo root
    env_root = str(readme.parent)
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "EDGEKIT_EXAMPLES": env_root})
    assert proc.returncode == 0, f"{readme}:\n{script}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
