"""Tests mirror the source tree: the tests of a package live in the package's folder under tests/ (edgekit.pipeline →
tests/pipeline/, edgekit.converters.tflite.passes → tests/converters/tflite/passes/), so a reader finds a module's
tests where the module is (unique test module names: tests/test_packaging.py).

The packages are pyproject.toml's [tool.setuptools] packages, with its package-dir mapping for where each lives.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def packages() -> dict[str, Path]:
    """Dotted package name → its source folder."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = setup.get("package-dir", {})
    found = {}
    for name in setup["packages"]:
        base = max((p for p in dirs if name == p or name.startswith(p + ".")), key=len, default=None)
        rest = name[len(base):].lstrip(".").split(".") if base else name.split(".")
        found[name] = ROOT.joinpath(dirs[base] if base else "", *[r for r in rest if r])
    return found


def mirror_folder(package: str) -> Path:
    """edgekit → tests/, edgekit.converters.tflite → tests/converters/tflite/."""
    return TESTS.joinpath(*package.split(".")[1:])


def misplaced_tests() -> list[str]:
    """Test modules named for a package (test_<package>.py, test_<package>_*.py) that sit in the folder above the
    package's own test folder, unless that folder's package has a module of that name (edgekit/inspect.py keeps
    tests/test_inspect.py although converters/tflite has an inspect module: that one is not a package)."""
    found = []
    pkgs = packages()
    for name in pkgs:
        if "." not in name:
            continue
        parent, short = name.rsplit(".", 1)
        folder = mirror_folder(parent)
        own = {p.stem for p in pkgs[parent].glob("*.py")}  # the parent's own modules keep their tests beside them
        for path in sorted(folder.glob("test_*.py")):
            stem = path.stem[len("test_"):]
            if (stem == short or stem.startswith(short + "_")) and stem not in own:
                found.append(f"{path.relative_to(ROOT)} belongs in {mirror_folder(name).relative_to(ROOT)}/ "
                             f"({name} is a package)")
    return found


def test_the_package_map_reads_pyproject():
    pkgs = packages()
    assert pkgs["edgekit.pipeline"] == ROOT / "edgekit" / "pipeline"
    assert pkgs["edgekit.converters.tflite.passes"] == ROOT / "converters" / "tflite" / "passes"
    assert pkgs["edgekit.zoo"] == ROOT / "examples" / "zoo"
    assert all(path.is_dir() for path in pkgs.values()), pkgs


def test_package_tests_live_in_the_package_folder():
    assert misplaced_tests() == []


def test_a_package_test_at_the_top_level_is_caught(monkeypatch):
    """The check itself can fail: a tests/test_pipeline_x.py beside tests/pipeline/ is reported."""
    stray = TESTS / "converters" / "tflite" / "test_passes_stray_layout_probe.py"
    top = TESTS / "test_pipeline_stray_layout_probe.py"
    monkeypatch.setattr(Path, "glob", _with_extra(Path.glob, {TESTS: top, stray.parent: stray}))
    found = misplaced_tests()
    assert any("test_pipeline_stray_layout_probe.py belongs in tests/pipeline/" in f for f in found), found
    assert any("test_passes_stray_layout_probe.py belongs in tests/converters/tflite/passes/" in f for f in found), found


def _with_extra(glob, extra: dict):
    """Path.glob that also lists one made-up file per folder (nothing is written into the tree)."""
    def patched(self, pattern, *args, **kwargs):
        listed = list(glob(self, pattern, *args, **kwargs))
        return listed + ([extra[self]] if self in extra and pattern == "test_*.py" else [])
    return patched
